#!/usr/bin/env bash
# CI's fuzzing step (run by scripts/test.sh after the tests): every fuzz target for a short while on the
# committed seeds and crash inputs.   scripts/fuzz-ci.sh [SECONDS per target, default 20]
# Fails when any target finds a crash; the input is written to fuzz/regressions/TARGET/ (keep it there
# as a regression fixture once the parser is fixed: `swift test --filter FuzzCorpusReplayTests` replays it).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${MUWA_FUZZ_CI_SECONDS:-20}}
failed=()
start=$(date +%s)
for target in safetensors torch config tokenizer adapter payload dataset; do
    scripts/fuzz.sh "$target" "$seconds" || failed+=("$target")
done
echo "fuzz-ci: 7 targets × ${seconds}s in $(( $(date +%s) - start ))s (build included)"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz-ci: crashes in: ${failed[*]} (inputs in fuzz/regressions/)" >&2
    exit 1
fi
