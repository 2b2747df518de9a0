#!/usr/bin/env bash
# The test command (README, CI): installs system packages, starts a private PostgreSQL, runs `swift test`.
# Extra arguments go to `swift test` (e.g. --filter TokenizerTests); without any, it also runs scripts/fuzz-ci.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
pgdir=$(mktemp -d /tmp/muwa-test-pg.XXXXXX)
port=${MUWA_TEST_PG_PORT:-$((40000 + RANDOM % 20000))}
trap 'scripts/pg-private.sh stop "$pgdir"; rm -rf "$pgdir"' EXIT
export MUWA_TEST_DATABASE_URL=$(scripts/pg-private.sh start "$pgdir" "$port")
export MUWA_TEST_PG_DIR="$pgdir" MUWA_TEST_PG_PORT="$port"
echo "test.sh: PostgreSQL for tests at: $MUWA_TEST_DATABASE_URL" >&2
scripts/lint.sh
swift build --build-tests
# The whole run (no arguments: CI) first fuzzes every parser briefly (scripts/fuzz-ci.sh: 7 targets × 20 s on
# the committed seeds and crash inputs); MUWA_SKIP_FUZZ=1 skips it. Before the tests, so that the run still
# ends on XCTest's summary line.
if [[ $# -eq 0 && -z ${MUWA_SKIP_FUZZ:-} ]]; then
    scripts/fuzz-ci.sh
fi
# The suite is XCTest; Swift Testing is disabled so the run ends on XCTest's summary line.
swift test --skip-build --disable-swift-testing "$@"
