import os
import pathlib
import shutil
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Simulators and YoWASP tools installed by `make setup` live in the venv's bin.
_VENV_BIN = pathlib.Path(sys.executable).parent
os.environ["PATH"] = f"{_VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="module")
def formal_root(request):
    """The folder of one test module's formal proofs, ``build/formal/test-<module>-<pid>/``
    (visible to the YoWASP tools). Passing proofs remove their own runs; the broken variants'
    runs (``broken_*``, failures expected and checked in place) are removed at the end, and
    the folder when it is empty. A failing proof keeps its run for inspection."""
    from hw.formal import default_root

    module = request.module.__name__.rsplit(".", 1)[-1]
    path = default_root() / f"{module}-{os.getpid()}"
    yield path
    if path.exists():
        for run in path.glob("broken_*"):
            shutil.rmtree(run, ignore_errors=True)
        if not any(path.iterdir()):
            path.rmdir()


@pytest.fixture(scope="module")
def simulated_board():
    """The default array's board image (``LinkTop``) under Verilator on a pseudo-terminal
    (:class:`boards.board_sim.SimulatedBoard`); skipped without Verilator."""
    if shutil.which("verilator") is None:
        pytest.skip("verilator not installed")
    from boards.board_sim import SimulatedBoard

    with SimulatedBoard() as board:
        yield board
