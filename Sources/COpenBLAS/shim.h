// The OpenBLAS CBLAS interface (Debian: libopenblas-dev puts cblas.h on the include path).
#include <cblas.h>
// openblas_set_num_threads / openblas_get_num_threads
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
