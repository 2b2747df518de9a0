#!/usr/bin/env bash
# Installs the system packages muwa needs (Debian/Ubuntu): OpenBLAS, libpq, PostgreSQL, pkg-config, and
# systemd (its systemd-analyze checks the unit in the tests).
# Idempotent; skips apt when everything is already there. Needs root (or sudo).
set -euo pipefail
need=(libopenblas-dev libpq-dev postgresql pkg-config systemd)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "install-deps: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "install-deps: swift is not on PATH (Swift 5.9 or newer is required)" >&2; exit 1; }
