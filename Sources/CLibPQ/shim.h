// libpq, PostgreSQL's C client library (Debian: libpq-dev; header under /usr/include/postgresql).
#include <libpq-fe.h>
