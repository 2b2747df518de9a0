#!/usr/bin/env bash
# Quick start for the daemon: builds muwad, finds a PostgreSQL, migrates it, runs `muwad serve`, sends a
# ping job (and a generate job on a model) through it, shows the results and `muwad status`, and stops.
#
# The database: a private PostgreSQL unless MUWA_DATABASE_URL or PG* say otherwise (scripts/lib-daemon.sh).
#
#   scripts/quickstart-daemon.sh                          # private server, tiny test model
#   MUWA_DATABASE_URL=postgres://u@db/muwa scripts/quickstart-daemon.sh
#   MUWA_QUICKSTART_MODEL=/srv/models/opt-125m scripts/quickstart-daemon.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-daemon.sh
model=${MUWA_QUICKSTART_MODEL:-$root/Tests/Fixtures/models/pre-ln-f32}
# Payloads may name models only under the daemon's model roots (default: its state directory and /srv/muwa).
start_daemon --concurrency 2 --model-roots "$(realpath "$model" 2>/dev/null || echo "$model")"

ping=$(sql "SELECT muwa.enqueue('ping', '{\"hello\": \"world\", \"sleep_ms\": 300}')")
echo "quickstart: enqueued ping job $ping" >&2
wait_for "$ping"

if [ -f "$model/config.json" ]; then
    payload=$(printf '{"model": "%s", "prompt": "Hello, my name is", "max_new_tokens": 12}' "$model")
    gen=$(sql "SELECT muwa.enqueue('generate', '$payload')")
    echo "quickstart: enqueued generate job $gen on $model (the test model has random weights: expect gibberish)" >&2
    wait_for "$gen"
    show "SELECT idx, text, finish_reason FROM muwa.generations WHERE job_id = $gen ORDER BY idx"
fi

"$bin" status --database-url "$url"
