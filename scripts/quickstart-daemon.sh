#!/usr/bin/env bash
# Quick start for the daemon: builds muwad, finds a PostgreSQL, migrates it, runs `muwad serve`, sends a
# ping job (and a generate job on a model) through it, shows the results and `muwad status`, and stops.
#
# With no database configured it starts a private PostgreSQL of its own (initdb in .muwa-local/pg, a
# private unix socket; as the `postgres` user when run as root) through scripts/pg-private.sh, and stops
# it again at the end. Pointed at a real server (MUWA_DATABASE_URL, or libpq's PGHOST/PGDATABASE/
# PGSERVICE) it uses that instead and leaves it running.
#
#   scripts/quickstart-daemon.sh                          # private server, tiny test model
#   MUWA_DATABASE_URL=postgres://u@db/muwa scripts/quickstart-daemon.sh
#   MUWA_QUICKSTART_MODEL=/srv/models/opt-125m scripts/quickstart-daemon.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/install-deps.sh
config=${MUWA_QUICKSTART_CONFIG:-release}
# Extra `swift build` flags, e.g. SWIFT_BUILD_FLAGS="--scratch-path .build-other".
read -r -a build_flags <<<"${SWIFT_BUILD_FLAGS:-}"
echo "quickstart: building muwad ($config)…" >&2
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
    echo "quickstart: using the database at MUWA_DATABASE_URL" >&2
elif [ -n "${PGHOST:-}${PGDATABASE:-}${PGSERVICE:-}" ]; then
    url=""
    echo "quickstart: using the database libpq's PG* variables point at" >&2
else
    pgdir=${MUWA_QUICKSTART_PG_DIR:-$root/.muwa-local/pg}
    # The server runs as `postgres` when we are root: it must be able to reach the directory.
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$(dirname "$pgdir")" 2>/dev/null; then
        mkdir -p "$(dirname "$pgdir")"
        runuser -u postgres -- test -x "$(dirname "$pgdir")" 2>/dev/null || pgdir=/var/tmp/muwa-quickstart-pg
    fi
    port=${MUWA_QUICKSTART_PG_PORT:-55439}
    url=$(scripts/pg-private.sh start "$pgdir" "$port")
    echo "quickstart: started a private PostgreSQL: $url" >&2
fi

sql() { psql ${url:+"$url"} -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

"$bin" migrate --database-url "$url"

"$bin" serve --database-url "$url" --poll-interval 1s --grace-period 10s --concurrency 2 &
daemon=$!

wait_for() {  # job id → waits until it is finished, prints its row
    for _ in $(seq 1 600); do
        status=$(sql "SELECT status FROM muwa.jobs WHERE id = $1")
        case $status in succeeded|failed|cancelled) break ;; esac
        sleep 0.2
    done
    psql ${url:+"$url"} -X -c "SELECT id, kind, status, attempt, result FROM muwa.jobs WHERE id = $1"
}

ping=$(sql "SELECT muwa.enqueue('ping', '{\"hello\": \"world\", \"sleep_ms\": 300}')")
echo "quickstart: enqueued ping job $ping" >&2
wait_for "$ping"

model=${MUWA_QUICKSTART_MODEL:-$root/Tests/Fixtures/models/pre-ln-f32}
if [ -f "$model/config.json" ]; then
    payload=$(printf '{"model": "%s", "prompt": "Hello, my name is", "max_new_tokens": 12}' "$model")
    gen=$(sql "SELECT muwa.enqueue('generate', '$payload')")
    echo "quickstart: enqueued generate job $gen on $model (the test model has random weights: expect gibberish)" >&2
    wait_for "$gen"
    psql ${url:+"$url"} -X -c "SELECT idx, output->>'text' AS text, output->>'finish_reason' AS finish FROM muwa.job_outputs WHERE job_id = $gen ORDER BY idx"
fi

"$bin" status --database-url "$url"
