"""Host-side driver of the generated multi-branch array ``densehw_branch_array``.

:func:`branch_gemm_rtl` tiles a branch GEMM onto a :class:`BranchArrayConfig`, streams it
through the Verilog in a cocotb simulation (Icarus or Verilator, :mod:`sim.branch_tb`, driven
with cocotbext-axi over the AXI4-Stream and AXI4-Lite ports as ``docs/branches.md``
specifies) and returns the results with the array's performance counters. :func:`run_branch_layers`
runs several layers back to back in one simulator process.

The exchange with the simulator goes through ``build/sim_branch/<config.name>/<sim>/<tag>/``:
``job.json`` and ``.npy`` inputs in, ``results.json`` and ``.npy`` result beats and frame
lengths out. The host checks every layer: ``STATUS.DONE`` set, ``ERROR`` zero, exactly ``N*M``
result beats, ``tlast`` at the end of every tile and nowhere else, no bits set above the
result's width.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.array import result_order
from contract.branch_array import BranchArrayConfig
from sim.array_driver import LayerResult

__all__ = ["BranchLayer", "BRANCH_TOP", "BRANCH_BUILD_ROOT",
           "branch_verilog", "build_branch_array", "run_branch_layers", "branch_gemm_rtl",
           "default_branch_config", "check_branch_layer", "BranchRunError"]

ROOT = Path(__file__).resolve().parents[1]
BRANCH_BUILD_ROOT = ROOT / "build" / "sim_branch"
BRANCH_TOP = "densehw_branch_array"
_RECIPE = "densehw-branch-build-1"


class BranchRunError(RuntimeError):
    """The simulation did not run, or a layer broke the interface rules."""


@dataclass
class BranchLayer:
    """One GEMM for the branch array: ``x_codes`` (N, K) activation codes, ``w_codes`` (M, K)
    weight codes; for the float path raw ``scale_fmt`` patterns ``scale_x`` (int) and
    ``scale_w`` (int or (M,)); ``relu``; ``stall`` overrides the run's stall probability.

    ``abort_after``: start the layer, stream for that many clocks, then pulse ``rst`` (no result;
    the next layer must run cleanly). ``merge_frames``: ``"act"`` or ``"wgt"`` sends that stream
    as one frame (``tlast`` on its last beat only): the results must still be right and
    ``ERROR.ACT_FRAMING`` / ``WGT_FRAMING`` set (then cleared)."""

    x_codes: object
    w_codes: object
    scale_x: object = None
    scale_w: object = None
    relu: bool = False
    stall: float | None = None
    abort_after: int | None = None
    merge_frames: str | None = None

    @property
    def scaled(self) -> bool:
        return self.scale_x is not None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(np.shape(self.x_codes)[0]), int(np.shape(self.x_codes)[1]),
                int(np.shape(self.w_codes)[0]))


def check_branch_layer(config: BranchArrayConfig, layer: BranchLayer) -> None:
    """Raise ``ValueError`` unless ``layer`` can run on ``config``."""
    if not isinstance(config, BranchArrayConfig):
        raise TypeError(f"config must be a BranchArrayConfig, not {config!r}")
    x, w = np.asarray(layer.x_codes), np.asarray(layer.w_codes)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"codes must be (N, K) and (M, K), not {x.shape} and {w.shape}")
    n, k, m = layer.shape
    if k > config.depth:
        raise ValueError(f"K={k} exceeds the array's depth {config.depth}; use a "
                         f"BranchArrayConfig with depth >= {k}")
    config.check_layer(n, k, m)
    for what, arr, bits in (("activation", x, config.abits), ("weight", w, config.wbits)):
        if arr.dtype.kind not in "iu" or (arr.size and (arr.min() < 0 or arr.max() >> bits)):
            raise ValueError(f"{what} codes must be integers in [0, {(1 << bits) - 1}]")
    if layer.scaled:
        if not config.float_path:
            raise ValueError(f"{config.name} has no float path (out_fmt None): scales given")
        if layer.scale_w is None:
            raise ValueError("scale_x without scale_w")
        sw = np.broadcast_to(np.asarray(layer.scale_w, dtype=np.int64), (m,))
        for value in (int(layer.scale_x), *sw.tolist()):
            fmt = config.scale_fmt
            body = value & ~fmt.sign_mask
            if value >> fmt.width or value & fmt.sign_mask or body == 0 or body >= fmt.pos_inf:
                raise ValueError(f"scale {value:#x} is not a finite positive {fmt.name} value")
    if layer.abort_after is not None and (not isinstance(layer.abort_after, int)
                                          or layer.abort_after < 1):
        raise ValueError(f"abort_after must be a positive int, not {layer.abort_after!r}")
    if layer.merge_frames not in (None, "act", "wgt"):
        raise ValueError(f"merge_frames must be None, 'act' or 'wgt', not "
                         f"{layer.merge_frames!r}")
    if layer.stall is not None and not 0 <= layer.stall <= 0.9:
        raise ValueError(f"stall must be in [0, 0.9], not {layer.stall!r}")


def branch_verilog(config: BranchArrayConfig) -> str:
    """The top's Verilog for ``config``, cached under ``build/sim_branch``."""
    from sim.runner import cached_verilog

    def gen():
        from hw.branches.top import generate_branch_verilog
        return generate_branch_verilog(config, name=BRANCH_TOP)

    return cached_verilog(config, BRANCH_BUILD_ROOT / config.name, BRANCH_TOP, gen)


def build_branch_array(config: BranchArrayConfig, sim: str, *, waves: bool = False):
    """Generate (cached) and build the top for ``sim`` once per RTL content; returns
    ``(runner, build_dir, seconds_spent_building)``."""
    from sim.runner import build_top, check_sim

    check_sim(sim)
    try:
        return build_top(BRANCH_TOP, branch_verilog(config), BRANCH_BUILD_ROOT / config.name / sim,
                         sim, waves=waves, recipe=_RECIPE)
    except RuntimeError as exc:
        raise BranchRunError(str(exc)) from None


def _write_job(run_dir, config, layers, *, seed, stall, probes):
    entries = []
    for i, layer in enumerate(layers):
        n, k, m = layer.shape
        np.save(run_dir / f"x{i}.npy", np.asarray(layer.x_codes, dtype=np.uint8))
        np.save(run_dir / f"w{i}.npy", np.asarray(layer.w_codes, dtype=np.uint8))
        if layer.scaled:
            np.save(run_dir / f"sw{i}.npy", np.broadcast_to(
                np.asarray(layer.scale_w, dtype=np.int64), (m,)).copy())
        entries.append({"n": n, "k": k, "m": m, "relu": bool(layer.relu),
                        "scale_x": int(layer.scale_x) if layer.scaled else None,
                        "stall": stall if layer.stall is None else float(layer.stall),
                        "abort_after": layer.abort_after, "merge_frames": layer.merge_frames})
    (run_dir / "job.json").write_text(json.dumps(
        {"config": config.to_dict(), "seed": int(seed), "layers": entries,
         "probes": bool(probes)}, indent=1))


def _decode(config, beats, scaled):
    """Result beats -> int64 values: exact integers sign-extended, or raw out_fmt bits."""
    width = config.res_tdata_width
    if scaled:
        return beats.astype(np.int64) & ((1 << config.out_fmt.width) - 1)
    raw = [int(b) for b in beats]
    return np.array([v - (1 << width) if v >> (width - 1) else v for v in raw], dtype=np.int64)


def _collect(run_dir, config, layers, entries):
    out = []
    for i, layer in enumerate(layers):
        n, k, m = layer.shape
        res = LayerResult(index=i, shape=(n, k, m), y=None, aborted=bool(layer.abort_after))
        out.append(res)
        e = entries.get(str(i))
        if e is None:
            res.problems.append("the bench wrote no result (simulation ended early)")
            continue
        res.counters = e.get("counters", {})
        res.status, res.error = int(e.get("status", 0)), int(e.get("error", 0))
        res.bench_cycles = int(e.get("bench_cycles", 0))
        res.wall_s = float(e.get("wall_s", 0.0))
        res.problems += e.get("problems", [])
        if layer.abort_after:
            continue
        beats = np.load(run_dir / f"res{i}.npy")
        frames = np.load(run_dir / f"frames{i}.npy").tolist()
        order = result_order(config, n, k, m)
        want_frames = [r * c for _, r, _, c in config.tiles(n, k, m)]
        if beats.size != len(order):
            res.problems.append(f"{beats.size} result beats, expected {len(order)}")
        if frames != want_frames:
            res.problems.append(f"tlast framing: frames of {frames[:8]} beats, expected "
                                f"{want_frames[:8]}")
        values = _decode(config, beats, layer.scaled)
        if layer.scaled and beats.size and int(beats.max()) >> config.out_fmt.width:
            res.problems.append("float results with bits set above out_fmt's width")
        count = min(beats.size, len(order))
        y = np.zeros((n, m), dtype=np.int64)
        idx = np.asarray(order[:count], dtype=np.int64).reshape(-1, 3)
        y[idx[:, 0], idx[:, 1]] = values[:count]
        res.y = y
    return out


def run_branch_layers(config: BranchArrayConfig, layers, *, sim: str = "verilator",
                      seed: int = 1, stall: float = 0.0, tag: str = "run", probes: bool = False,
                      raise_on_problem: bool = False):
    """Run ``layers`` back to back on the RTL of ``config`` in one simulator process; returns
    ``(results, info)`` with a :class:`sim.array_driver.LayerResult` per layer (``y``: exact
    integers, or raw ``out_fmt`` bits for the float path) and ``info`` (``build_s``,
    ``sim_s``, ``wall_s``, ``run_dir``, ``problems`` of the whole run: identification
    registers, START probes, a failed simulator)."""
    from sim.runner import check_sim, run_cocotb

    check_sim(sim)
    layers = list(layers)
    if not layers:
        raise ValueError("run_branch_layers needs at least one layer")
    if not 0 <= stall <= 0.9:
        raise ValueError(f"stall must be in [0, 0.9], not {stall!r}")
    for layer in layers:
        check_branch_layer(config, layer)
    t0 = time.perf_counter()
    runner, bdir, build_s = build_branch_array(config, sim)
    run_dir = bdir.parent / tag
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    _write_job(run_dir, config, layers, seed=seed, stall=stall, probes=probes)
    log = run_dir / "sim.log"
    t1 = time.perf_counter()
    error = run_cocotb(runner, top=BRANCH_TOP, test_module="sim.branch_tb", build_dir=bdir,
                       run_dir=run_dir, testcases=["run_branch_job"],
                       env={"DENSEHW_BRANCH_JOB": str(run_dir), "COCOTB_LOG_LEVEL": "WARNING"},
                       log=log, results_xml=run_dir / "results.xml")
    sim_s = time.perf_counter() - t1
    result_json = run_dir / "results.json"
    data = json.loads(result_json.read_text()) if result_json.exists() else {}
    problems = list(data.get("ident_problems", []))
    if error or data.get("fatal") or not data:
        problems.insert(0, data.get("fatal") or error or "the bench wrote no results.json")
    results = _collect(run_dir, config, layers, data.get("layers", {}))
    info = {"build_s": build_s, "sim_s": sim_s, "wall_s": time.perf_counter() - t0,
            "run_dir": run_dir, "log": log, "problems": problems}
    every = problems + [f"layer {r.index} {r.shape}: {p}" for r in results for p in r.problems]
    if raise_on_problem and every:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise BranchRunError(f"{sim} run of {config.name} failed: " + "; ".join(every[:5])
                             + f" (log {log})\n{tail}")
    return results, info


def default_branch_config(*, wbits, abits, k, out_fmt=None, scale_fmt=None, rows=4, cols=4,
                          lanes=8) -> BranchArrayConfig:
    """The array the CLI backends build when no ``--array-config`` is given: ``rows x cols``
    PEs, ``lanes`` per chunk (fewer when the codes are wide), the smallest power-of-two depth
    ``>= max(16, K)``, the float path only when ``out_fmt`` is given."""
    if k > 1 << 16:
        raise ValueError(f"K={k} exceeds the largest array depth 65536")
    lanes = min(lanes, 256 // max(wbits, abits))
    depth = max(16, lanes, 1 << max(0, (k - 1).bit_length()))
    return BranchArrayConfig(wbits=wbits, abits=abits, rows=rows, cols=cols, lanes=lanes,
                             depth=depth, out_fmt=out_fmt, scale_fmt=scale_fmt)


def branch_gemm_rtl(x_codes, w_codes, *, config: BranchArrayConfig, scale_x=None, scale_w=None,
                    relu=False, sim: str = "verilator", stall: float = 0.0, seed: int = 1,
                    tag: str | None = None, keep: bool = False):
    """``Y`` (N, M) int64 of one GEMM on the RTL (exact integers; raw ``out_fmt`` bits with
    scales) and a dict of stats (counters, MAC utilization, seconds). Raises
    :class:`BranchRunError` on any interface problem and ``ValueError`` on bad inputs."""
    layer = BranchLayer(np.asarray(x_codes), np.asarray(w_codes), scale_x, scale_w, bool(relu))
    tag = tag or f"gemm-{os.getpid()}"
    results, info = run_branch_layers(config, [layer], sim=sim, seed=seed, stall=stall, tag=tag,
                                      raise_on_problem=True)
    res = results[0]
    if not keep:
        shutil.rmtree(info["run_dir"], ignore_errors=True)
    busy = int(res.counters.get("CYCLES_BUSY", 0))
    n, k, m = res.shape
    slots = busy * config.rows * config.cols * config.lanes
    stats = {"cycles_busy": busy, **{name.lower(): int(v) for name, v in res.counters.items()},
             "macs": n * k * m, "mac_utilization": n * k * m / slots if slots else 0.0,
             "sim": sim, "config": config.name, "build_s": info["build_s"],
             "sim_s": info["sim_s"], "layer_s": res.wall_s, "wall_s": info["wall_s"]}
    return res.y, stats
