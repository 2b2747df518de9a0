#!/usr/bin/env bash
# Formatting check (scripts/test.sh runs it before the tests): swift-format with the project's .swift-format
# (4-space indent, 120 columns; only layout rules, no renames) over every tracked Swift file, except
# Sources/Storage/EmbeddedSQL.swift, which scripts/embed-sql.sh generates. Fix: scripts/lint.sh --fix.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files 'Sources/*.swift' 'Tests/*.swift' 'Package.swift' | grep -v '^Sources/Storage/EmbeddedSQL.swift$')
if [[ ${1:-} == --fix ]]; then
    swift format format --in-place "${files[@]}"
fi
if ! swift format lint --strict "${files[@]}"; then
    echo "lint.sh: formatting differs from .swift-format; run scripts/lint.sh --fix" >&2
    exit 1
fi
echo "lint.sh: ${#files[@]} files formatted as .swift-format says" >&2
