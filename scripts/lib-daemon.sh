# Shared by scripts/quickstart-daemon.sh and scripts/recipe.sh (source it; not run on its own):
# builds muwad, finds or starts a PostgreSQL, migrates it, starts `muwad serve`, and offers sql / wait_for.
#
# With no database configured it starts a private PostgreSQL of its own (initdb in .muwa-local/pg, a
# private unix socket; as the `postgres` user when run as root) through scripts/pg-private.sh, and stops
# it again at the end. Pointed at a real server (MUWA_DATABASE_URL, or libpq's PGHOST/PGDATABASE/
# PGSERVICE) it uses that instead and leaves it running.
root=$PWD

scripts/install-deps.sh
config=${MUWA_QUICKSTART_CONFIG:-release}
# Extra `swift build` flags, e.g. SWIFT_BUILD_FLAGS="--scratch-path .build-other".
read -r -a build_flags <<<"${SWIFT_BUILD_FLAGS:-}"
echo "muwa: building muwad ($config)…" >&2
swift build -c "$config" "${build_flags[@]}" --product muwad >&2
bin="$(swift build -c "$config" "${build_flags[@]}" --show-bin-path)/muwad"
export MUWA_MIGRATIONS_DIR="$root/migrations"

pgdir=""
cleanup() {
    [ -n "${daemon:-}" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
    [ -n "$pgdir" ] && scripts/pg-private.sh stop "$pgdir" || true
}
trap cleanup EXIT

if [ -n "${MUWA_DATABASE_URL:-}" ]; then
    url=$MUWA_DATABASE_URL
    echo "muwa: using the database at MUWA_DATABASE_URL" >&2
elif [ -n "${PGHOST:-}${PGDATABASE:-}${PGSERVICE:-}" ]; then
    url=""
    echo "muwa: using the database libpq's PG* variables point at" >&2
else
    pgdir=${MUWA_QUICKSTART_PG_DIR:-$root/.muwa-local/pg}
    # The server runs as `postgres` when we are root: it must be able to reach the directory.
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$(dirname "$pgdir")" 2>/dev/null; then
        mkdir -p "$(dirname "$pgdir")"
        runuser -u postgres -- test -x "$(dirname "$pgdir")" 2>/dev/null || pgdir=/var/tmp/muwa-quickstart-pg
    fi
    port=${MUWA_QUICKSTART_PG_PORT:-55439}
    url=$(scripts/pg-private.sh start "$pgdir" "$port")
    echo "muwa: started a private PostgreSQL: $url" >&2
fi

sql() { psql ${url:+"$url"} -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }
show() { psql ${url:+"$url"} -X -c "$1"; }

"$bin" migrate --database-url "$url"

start_daemon() {  # extra `muwad serve` flags
    "$bin" serve --database-url "$url" --poll-interval 1s --grace-period 10s "$@" &
    daemon=$!
}

wait_for() {  # job id → waits until it is finished, prints its row
    for _ in $(seq 1 3000); do
        status=$(sql "SELECT status FROM muwa.jobs WHERE id = $1")
        case $status in succeeded|failed|cancelled) break ;; esac
        sleep 0.2
    done
    show "SELECT id, kind, status, attempt, left(result::text, 200) AS result, errors->-1->>'message' AS error FROM muwa.jobs WHERE id = $1"
}
