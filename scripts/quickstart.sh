#!/usr/bin/env bash
# Quick start: installs the system packages, builds muwad (release) and runs the main job offline on the
# committed tiny OPT checkpoint. Set MUWA_MODEL to point at a real checkpoint directory instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product muwad
bin=$(swift build -c release --show-bin-path)/muwad
model=${MUWA_MODEL:-Tests/Fixtures/models/pre-ln-f32}
echo "== muwad generate on $model"
"$bin" generate --model "$model" --prompt "Hello, my name is" --prompt "The capital of France is" --max-new-tokens 16 --json
echo "== muwad score"
"$bin" score --model "$model" --text "The quick brown fox jumps over the lazy dog."
if [ -x scripts/quickstart-daemon.sh ]; then
    echo "== the daemon: a private PostgreSQL (unless MUWA_DATABASE_URL is set), migrate, serve, one job through"
    scripts/quickstart-daemon.sh
fi
