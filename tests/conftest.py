import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Simulators and YoWASP tools installed by `make setup` live in the venv's bin.
_VENV_BIN = pathlib.Path(sys.executable).parent
os.environ["PATH"] = f"{_VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
