"""The synthesis, place-and-route and ASIC flows: Yosys and nextpnr through YoWASP.

Flows (:func:`run_flow`):

* ``ice40`` (``up5k`` default, ``hx8k``) and ``ecp5`` (``25f`` default, ``85f``): ``synth_ice40``
  / ``synth_ecp5`` of the bare design gives the resource counts; the design wrapped in the
  serial I/O harness (:func:`boards.harness.harness_verilog`) is placed and routed with nextpnr
  once per seed against a clock target. Fmax is the median over the seeds, with its spread.
  The default mode requires every seed to meet the target; the exploration mode passes
  ``--timing-allow-fail`` and only measures.
* ``asic``: generic ``synth``, flip-flop enables and resets lowered to gates, ``abc -g`` to a
  simple gate library (NOT, AND, NAND, OR, NOR, XOR, XNOR, ANDNOT, ORNOT, MUX); reports gate
  counts, NAND2 equivalents (:data:`boards.devices.NAND2_WEIGHTS`), flip-flops and the logic
  depth (``ltp -noff``: the longest path between flip-flops, in gates). Memories are kept as
  macros and reported in bits, not gates. Then (unless ``pnr=False``) the liberty flow of
  :mod:`boards.liberty`: the design mapped to the OSU 0.18 um standard cells and timed with
  OpenSTA: area in um^2, the critical path and Fmax (``liberty`` in the result; when the
  library or OpenSTA is not installed, ``liberty`` holds the error and how to install them).

Every report also has the resources of each block (an unflattened synthesis of the same
design). :func:`run_job` runs a picklable job (a design spec, :mod:`boards.specs`) in any
executor: the command line, the sweep's process pool, pytest-xdist, Dask, Ray.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import time

from contract.files import RTL_SOURCES, source_fingerprint

from .design import Design
from .devices import (
    ASIC_GATES,
    DEFAULT_TARGET_MHZ,
    DEVICES,
    check_device,
    fpga_resources,
    nand2_equivalents,
)
from .errors import FlowError, ToolTimeout
from .harness import harness_verilog
from .logs import (
    parse_ltp,
    parse_nextpnr_endpoints,
    parse_nextpnr_log,
    parse_yosys_blocks,
    parse_yosys_stat,
    resource_blocks,
)
from .specs import make_design
from .tools import run_tool, source_commit, tool, tool_versions

__all__ = ["run_flow", "run_job", "ROUTERS", "KEEP_REPLICAS", "ABC9_REINTEGRATE_ASSERT",
           "HARNESS_NOFLATTEN_NOTE"]


# Yosys script lines: the flip-flops behind wires marked ``keep`` (the register copies of
# ``hw.stages.replicas``) get ``keep`` themselves, so that ``opt_merge`` leaves the copies apart.
# ``keep`` also stops ``opt_dff``, so it runs on them first: a kept register's synchronous reset
# and enable then go into the flip-flop (ECP5: LSR, CE) rather than into a LUT before its D
# input, which the original and its copy would share (a PE's pending carry and its copy, both
# cleared at a restart, would take the carry through one LUT placed between them).
#: nextpnr's routers (``--router``); router1 is its default. On the ECP5-85F router1 stalls on
#: the FMA and int8 arrays (docs/synthesis.md), router2 routes them.
ROUTERS = ("router1", "router2")

KEEP_REPLICAS = ("proc", "opt_clean",
                 "select -set replicas a:keep w:* %i %ci1 t:$dff %i", "opt_dff @replicas",
                 "select -set replicas a:keep w:* %i %ci1 t:$*dff* %i",
                 "setattr -set keep 1 @replicas", "select -clear")


# Yosys 0.70's ABC9 reintegration fails this assertion on some flattened harnesses (the 4x4
# int8 MAC array on ECP5: its DSP multipliers with the harness's shift registers). The design
# alone synthesises; the harness is then synthesised again without flattening (nextpnr
# flattens the hierarchy itself), and the result says so.
ABC9_REINTEGRATE_ASSERT = "Assert `GetSize(conn.first) == GetSize(conn.second)' failed"
HARNESS_NOFLATTEN_NOTE = ("harness synthesised with -noflatten (Yosys ABC9 reintegration "
                          "assertion on the flattened harness)")
# Yosys's warnings when a net has two drivers (it keeps one): the netlist is then not the
# design (seen: synth_ice40 -dsp absorbing reset-less product registers into SB_MAC16 kept
# their init value as the product). A synthesis that warns so fails.
DRIVER_CONFLICTS = ("Driver-driver conflict", "multiple conflicting drivers",
                    "Drivers conflicting with")


def _harness_script(synth, opts, *, flatten=True):
    return ["design -load source", "read_verilog harness.v",
            f"{synth} -top densehw_harness {opts}{'' if flatten else ' -noflatten'} "
            "-json harness.json",
            "log DENSEHW_STAT_HARNESS", "stat"]


def _synth_fpga(design, board, dev, workdir, timeout, *, harness=True):
    """Synthesise the design alone (its resources) and, if ``harness``, inside the harness (the
    netlist that nextpnr places). Returns ``(cells, seconds, note)``; ``note`` is ``None``
    unless the harness needed the fallback above."""
    synth = "synth_ice40" if board == "ice40" else "synth_ecp5"
    opts = " ".join(dev["synth_opts"])
    head = ["read_verilog design.v", *KEEP_REPLICAS, "design -save source"]
    script = "\n".join([
        *head,
        f"{synth} -top {design.top} {opts}",
        "log DENSEHW_STAT",
        "stat",
        *(_harness_script(synth, opts) if harness else []),
        ""])
    (workdir / "synth.ys").write_text(script)
    note, t0 = None, time.monotonic()
    try:
        _, log, secs = run_tool([tool("yosys"), "-q", "-l", "synth.log", "-s", "synth.ys"],
                            workdir, "synth.log", timeout)
    except FlowError:
        log = (workdir / "synth.log").read_text(errors="replace") \
            if (workdir / "synth.log").exists() else ""
        stat_done = "DENSEHW_STAT" in log and "DENSEHW_STAT_HARNESS" not in log
        if not (stat_done and ABC9_REINTEGRATE_ASSERT in log.split("DENSEHW_STAT", 1)[1]):
            raise
        (workdir / "synth_harness.ys").write_text(
            "\n".join([*head, *_harness_script(synth, opts, flatten=False), ""]))
        run_tool([tool("yosys"), "-q", "-l", "synth_harness.log", "-s", "synth_harness.ys"],
             workdir, "synth_harness.log", timeout)
        secs, note = time.monotonic() - t0, HARNESS_NOFLATTEN_NOTE
    _check_drivers(workdir)
    bare = log[:log.find("DENSEHW_STAT_HARNESS")] if "DENSEHW_STAT_HARNESS" in log else log
    cells = parse_yosys_stat(bare, marker="DENSEHW_STAT")
    if harness and not (workdir / "harness.json").exists():
        raise FlowError(f"Yosys wrote no netlist (log {workdir / 'synth.log'})")
    return cells, secs, note


def _check_drivers(workdir):
    """Raise :class:`FlowError` if a synthesis log of ``workdir`` has one of
    :data:`DRIVER_CONFLICTS`."""
    for name in ("synth.log", "synth_harness.log"):
        path = workdir / name
        text = path.read_text(errors="replace") if path.exists() else ""
        for line in text.splitlines():
            if any(warning in line for warning in DRIVER_CONFLICTS):
                raise FlowError(f"synthesis resolved a net with two drivers, so its netlist is "
                                f"not the design ({path}): {line.strip()[:160]}")


def _pnr(board, dev, workdir, seed, target_mhz, explore, timeout, router=None):
    exe = tool(f"nextpnr-{board}")
    log_name, report_name = f"pnr_seed{seed}.log", f"pnr_seed{seed}.json"
    cmd = [exe, *dev["pnr"], "--json", "harness.json", "--freq", f"{target_mhz:g}",
           "--seed", str(seed), "-l", log_name, "--quiet",
           "--report", report_name, "--detailed-timing-report"]
    if router is not None:
        cmd += ["--router", router]
    cmd += ["--pcf-allow-unconstrained"] if board == "ice40" else ["--lpf-allow-unconstrained"]
    if explore:
        cmd.append("--timing-allow-fail")
    (workdir / report_name).unlink(missing_ok=True)
    try:
        returncode, log, secs = run_tool(cmd, workdir, log_name, timeout, ok_codes=None)
    except ToolTimeout:
        # stopped (the placer can stall near full utilisation): what the log holds so far
        log_path = workdir / log_name
        res = parse_nextpnr_log(log_path.read_text(errors="replace") if log_path.exists()
                                else "")
        res.update(seed=seed, returncode=None, seconds=round(float(timeout), 1),
                   timed_out=True, fmax_mhz=None, passed=False,
                   endpoints={"error": f"stopped after {timeout:g} s"})
        return res
    res = parse_nextpnr_log(log)
    res.update(seed=seed, returncode=returncode, seconds=round(secs, 1), timed_out=False)
    try:
        report = json.loads((workdir / report_name).read_text())
        res["endpoints"] = parse_nextpnr_endpoints(report, 1000.0 / target_mhz)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        res["endpoints"] = {"error": f"{report_name}: {exc}"}
    return res


def _synth_asic(design, workdir, timeout):
    script = "\n".join([
        "read_verilog design.v",
        f"synth -top {design.top} -flatten -run :fine",
        "opt -fast -full",
        "techmap",
        "opt -fast",
        "dfflegalize -cell $_DFF_P_ 01",
        f"abc -g {ASIC_GATES}",
        "opt_clean",
        "log DENSEHW_STAT",
        "stat",
        "select t:$mem_v2",
        "write_json -selected memories.json",
        "select -clear",
        "ltp -noff",
        ""])
    (workdir / "asic.ys").write_text(script)
    _, log, secs = run_tool([tool("yosys"), "-q", "-l", "asic.log", "-s", "asic.ys"], workdir,
                        "asic.log", timeout)
    cells = parse_yosys_stat(log, marker="DENSEHW_STAT")
    return cells, parse_ltp(log), _memory_bits(workdir / "memories.json"), secs


# Yosys 0.70's ABC reintegration asserts (``count_id(wire->name) == 0``) on some unflattened
# modules where one net has several names (a register copy feeding several PEs' ports, as in
# the array's PE grid); dropping the internal names first avoids it and changes no cell.
BLOCKS_PREP = ("opt_clean -purge",)


def _synth_blocks(design, board, dev, workdir, timeout) -> dict:
    """Resources per block: the design synthesised again without flattening (``blocks.ys``,
    ``blocks.log``), each module's own cells. Logic optimised across module boundaries in the
    flat netlist is counted where it is in this one, so the blocks' total (``total``) is close
    to, not equal to, the headline count. A failure is reported in ``error``, not raised: the
    headline figures do not depend on it."""
    if board == "asic":
        synth = [f"synth -top {design.top} -run :fine", "opt -fast -full", "techmap",
                 "opt -fast", "dfflegalize -cell $_DFF_P_ 01", f"abc -g {ASIC_GATES}",
                 "opt_clean"]
    else:
        synth = [f"{'synth_ice40' if board == 'ice40' else 'synth_ecp5'} -top {design.top} "
                 f"{' '.join(dev['synth_opts'])} -noflatten"]
    (workdir / "blocks.ys").write_text("\n".join(
        ["read_verilog design.v", *KEEP_REPLICAS, *BLOCKS_PREP, *synth, "log DENSEHW_STAT_BLOCKS",
         "stat",
         ""]))
    try:
        _, log, secs = run_tool([tool("yosys"), "-q", "-l", "blocks.log", "-s", "blocks.ys"],
                            workdir, "blocks.log", timeout)
        blocks = resource_blocks(board, parse_yosys_blocks(log), design.top)
    except FlowError as exc:
        return {"blocks": [], "error": str(exc)}
    key = "nand2_eq" if board == "asic" else "luts"
    return {"blocks": blocks, "total": round(sum(b[key] for b in blocks), 1), "unit": key,
            "seconds": round(secs, 1), "error": None}


def _param_int(v) -> int:
    """A Yosys JSON parameter: an int, or a string of binary digits."""
    return v if isinstance(v, int) else int(v, 2)


def _memory_bits(path: pathlib.Path) -> int:
    """Total bits of the ``$mem_v2`` cells in a Yosys JSON netlist (0 if none)."""
    if not path.exists():
        return 0
    bits = 0
    for mod in json.loads(path.read_text()).get("modules", {}).values():
        for cell in mod.get("cells", {}).values():
            if cell.get("type", "").startswith("$mem"):
                p = cell.get("parameters", {})
                bits += _param_int(p.get("WIDTH", 0)) * _param_int(p.get("SIZE", 0))
    return bits


def _seed_failure(run: dict, workdir: pathlib.Path, seed_timeout: float) -> str | None:
    """Why a place-and-route seed gave no Fmax (``None`` when it did)."""
    seed, log = run["seed"], f"{workdir}/pnr_seed{run['seed']}.log"
    if run.get("timed_out"):
        return (f"nextpnr seed {seed} was stopped after {seed_timeout:g} s without a timing "
                f"report (the time limit per seed; log {log})")
    if run["fmax_mhz"] is None:
        return (f"nextpnr seed {seed} gave no timing report (exit {run['returncode']}, "
                f"log {log}): {run['error'] or 'no error line'}")
    return None


def _liberty(design: Design, workdir: pathlib.Path, timeout: float) -> dict:
    """The liberty flow's result; ``{"error": ...}`` when its tools are not installed."""
    from .liberty import LibertyError, library_path, run_liberty, sta_path

    try:
        library_path(), sta_path()
    except LibertyError as exc:
        return {"error": str(exc)}
    return run_liberty(design.verilog, design.top, workdir / "liberty", timeout=timeout)


def run_flow(design: Design, *, board: str, device: str | None = None, workdir,
             seeds=(1, 2, 3), target_mhz: float | None = None, explore: bool = False,
             pnr: bool = True, timeout: float = 3600, pnr_timeout: float | None = None,
             pnr_jobs: int = 1, blocks: bool = True, router: str | None = None) -> dict:
    """Synthesise (and place and route) ``design``; return the input of
    :func:`boards.report.summarise`: resources, per-seed timing, tool versions, runtimes.
    ``pnr_jobs`` tool runs go at the same time after synthesis: the nextpnr seeds and the
    per-block synthesis (the sweep and the bench keep 1 and run points in parallel instead).

    ``timing_met`` tells whether every seed met ``target_mhz``; callers in the default mode
    (``explore=False``) must treat a miss as a failure (the command line writes the report, then
    exits non-zero). Raises :class:`FlowError` when a tool fails, and in the default mode when
    place and route gives no timing report (e.g. the design does not fit). In exploration
    mode a seed without a timing report is named in ``pnr_error`` and Fmax is the median of
    the seeds that placed (none when no seed did).

    ``timeout`` (seconds) limits each tool run; ``pnr_timeout``, when given, limits each
    nextpnr seed instead. A seed stopped at its limit counts as a seed without a timing report
    (``timed_out`` in its run): the other seeds go on, so exploration near a full device is not
    held up by one placer that stalls.

    ``router``: nextpnr's router (:data:`ROUTERS`; ``None``: nextpnr's default, router1).

    ``blocks=False`` skips the per-block synthesis (``breakdown`` is ``None``); on an FPGA
    without place and route the harness is not synthesised either (resources only)."""
    device = check_device(board, device)
    dev = DEVICES[board][device]
    for name, value in (("timeout", timeout), ("pnr_timeout", pnr_timeout)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not value > 0):
            raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    if router is not None and router not in ROUTERS:
        raise ValueError(f"router must be one of {', '.join(ROUTERS)}, not {router!r}")
    seed_timeout = pnr_timeout or timeout
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "design.v").write_text(design.verilog)
    t0 = time.monotonic()
    result = {"board": board, "device": device, "device_name": dev["name"],
              "design": design.name, "kind": design.kind, "top": design.top,
              "config": design.config, "macs_per_cycle": design.macs_per_cycle,
              "tool_versions": tool_versions(board), "explore": explore,
              "rtl_fingerprint": source_fingerprint(RTL_SOURCES), "commit": source_commit()}
    if board == "asic":
        cells, depth, mem_bits, secs = _synth_asic(design, workdir, timeout)
        gates = {k: v for k, v in cells.items() if not k.startswith("$mem")
                 and not k.startswith("$_DFF")}
        result.update(cells=cells, gates=sum(gates.values()),
                      ffs=sum(v for k, v in cells.items() if k.startswith("$_DFF")),
                      nand2_eq=nand2_equivalents(cells), logic_depth=depth,
                      memories=sum(v for k, v in cells.items() if k.startswith("$mem")),
                      memory_bits=mem_bits,
                      synth_seconds=round(secs, 1), seeds=[], runs=[],
                      breakdown=_synth_blocks(design, board, dev, workdir, timeout)
                      if blocks else None)
        if pnr:
            result["liberty"] = _liberty(design, workdir, timeout)
        result["seconds"] = round(time.monotonic() - t0, 1)
        return result
    target_mhz = float(target_mhz or DEFAULT_TARGET_MHZ[board])
    (workdir / "harness.v").write_text(harness_verilog(design))
    cells, secs, note = _synth_fpga(design, board, dev, workdir, timeout, harness=pnr)
    if note:
        result["synth_note"] = note
    result.update(cells=cells, **fpga_resources(board, cells), synth_seconds=round(secs, 1),
                  capacity={"luts": dev["luts"], "brams": dev["brams"], "dsps": dev["dsps"]},
                  target_mhz=target_mhz, seeds=list(seeds) if pnr else [], runs=[])
    if not pnr:
        result["breakdown"] = (_synth_blocks(design, board, dev, workdir, timeout) if blocks
                               else None)
    else:
        # the seeds and the per-block synthesis are independent runs on the same netlist:
        # ``pnr_jobs`` at a time, the seeds first (the blocks fill a slot a seed leaves)
        from concurrent.futures import ThreadPoolExecutor

        workers = max(1, min(int(pnr_jobs), len(seeds) + 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending = [pool.submit(_pnr, board, dev, workdir, s, target_mhz, explore,
                                   seed_timeout, router) for s in seeds]
            per_block = (pool.submit(_synth_blocks, design, board, dev, workdir, timeout)
                         if blocks else None)
            runs = [f.result() for f in pending]
            result["breakdown"] = per_block.result() if blocks else None
        failed = []
        for run in runs:
            result["runs"].append(run)
            msg = _seed_failure(run, workdir, seed_timeout)
            if msg is None:
                continue
            if not explore:
                raise FlowError(msg)
            failed.append(msg)
        if failed:
            # exploration keeps the synthesis and the seeds that placed (a seed's placer can
            # stall near full utilisation while others finish); the failures are named
            result["pnr_error"] = "; ".join(failed)
        fmaxes = [r["fmax_mhz"] for r in result["runs"] if r["fmax_mhz"] is not None]
    if pnr and fmaxes:
        result.update(fmax_mhz=round(statistics.median(fmaxes), 2),
                      fmax_min_mhz=min(fmaxes), fmax_max_mhz=max(fmaxes),
                      fmax_spread_mhz=round(max(fmaxes) - min(fmaxes), 2),
                      timing_met=all(r["passed"] for r in result["runs"]))
    result["seconds"] = round(time.monotonic() - t0, 1)
    return result


def run_job(job: dict) -> dict:
    """Picklable job: ``{"spec", "board", "device", "workdir", "seeds", "target_mhz",
    "explore", "pnr", "pnr_timeout", "blocks", "router"}`` -> the report summary (with
    ``"error"`` set instead of raising when a flow fails, so one failing point does not stop a
    sweep)."""
    from boards.report import summarise

    try:
        design = make_design(job["spec"], board=job["board"])
        res = run_flow(design, board=job["board"], device=job.get("device"),
                       workdir=job["workdir"], seeds=tuple(job.get("seeds", (1, 2, 3))),
                       target_mhz=job.get("target_mhz"), explore=job.get("explore", True),
                       pnr=job.get("pnr", True), pnr_timeout=job.get("pnr_timeout"),
                       blocks=job.get("blocks", True), router=job.get("router"))
        return summarise(res)
    except Exception as exc:    # noqa: BLE001 - one broken point must not stop a sweep
        return {"spec": job["spec"], "board": job["board"], "device": job.get("device"),
                "error": f"{type(exc).__name__}: {exc}"}
