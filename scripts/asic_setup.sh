#!/usr/bin/env bash
# The ASIC timing flow's Debian packages, installed only when missing: OpenSTA (static timing)
# and the OSU 0.18 um standard-cell library with its liberty file (boards/liberty.py). Idempotent.
set -euo pipefail
missing=()
command -v sta >/dev/null 2>&1 || missing+=(opensta)
[ -f /usr/share/qflow/tech/osu018/osu018_stdcells.lib ] || missing+=(qflow-tech-osu018)
if [ ${#missing[@]} -gt 0 ]; then
    echo "asic-setup: installing ${missing[*]} with apt"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
