#!/usr/bin/env bash
# A private PostgreSQL server for tests and the quick start: initdb in a directory of its own, listening
# only on a private unix socket and a loopback port. Runs as the `postgres` user when invoked as root
# (the server refuses to run as root).
#   scripts/pg-private.sh start DIR [PORT]   -> prints the libpq conninfo on stdout
#   scripts/pg-private.sh stop DIR
set -euo pipefail
cmd=${1:?usage: pg-private.sh start|stop DIR [PORT]}
dir=${2:?usage: pg-private.sh start|stop DIR [PORT]}
port=${3:-55432}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/pg_ctl" ] || { echo "pg-private: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    mkdir -p "$dir/sock"; [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir/sock"
    if ! as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
            -o "-k $dir/sock -p $port -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" >/dev/null ||
            { cat "$dir/server.log" >&2; exit 1; }
    fi
    echo "host=$dir/sock port=$port user=postgres dbname=postgres"
    ;;
stop)
    [ -f "$dir/data/PG_VERSION" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
*) echo "usage: pg-private.sh start|stop DIR [PORT]" >&2; exit 2 ;;
esac
