"""Host-side driver of the generated PE array ``densehw_array``: GEMM and conv2d on the RTL.

:func:`gemm_rtl` tiles ``Y = round_out(X @ W.T + bias)`` onto an :class:`ArrayConfig`, streams it
through the Verilog in a cocotb simulation (Icarus or Verilator, :mod:`sim.array_tb`, driven
with cocotbext-axi over the AXI4-Stream and AXI4-Lite ports exactly as ``docs/array.md``
specifies) and returns the raw output bits with the array's performance counters.
:func:`run_layers` runs several layers back to back in one simulator process (different shapes,
ReLU, bias, ``e0`` modes, and layers aborted by a reset in the middle).

The exchange with the simulator goes through files in ``build/sim_array/<config.name>/<sim>/
<tag>/``: ``job.json`` plus ``.npy`` inputs per layer in, ``results.json`` plus ``.npy`` result
beats (in stream order) and frame lengths out. The host checks every layer here: ``STATUS.DONE``
set, ``ERROR`` zero, exactly ``N*M`` result beats, ``tlast`` exactly at the end of every tile
(frame lengths ``rows_valid * cols_valid``), no beat after the last one.

``K`` must not exceed the array's ``depth``: the contract rounds each dot product once, so a
longer ``K`` cannot be split into passes whose partial results are rounded; such a GEMM is
rejected with a ``ValueError``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract.array import ArrayConfig, activation_lanes, result_order

__all__ = ["Layer", "LayerResult", "RunOutcome", "ArrayRunError", "TOP", "BUILD_ROOT",
           "array_verilog", "build_array", "run_layers", "gemm_rtl", "conv2d_rtl",
           "default_config", "check_layer", "perf_summary", "stall_triple"]

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "sim_array"
TOP = "densehw_array"
_RECIPE = "densehw-array-build-1"


class ArrayRunError(RuntimeError):
    """The simulation did not run, or a layer broke the interface rules (lost, extra or
    misframed beats, ERROR bits, DONE missing)."""


# -- layers -------------------------------------------------------------------------------------

@dataclass
class Layer:
    """One GEMM for the array: raw ``x_bits`` (N, K), ``codes`` (M, K), ``e0`` (int: per tensor
    through register ``E0``; (M,) ints: per channel through the channel headers), optional
    ``bias_bits`` (M,) raw ``out_fmt`` patterns, ``relu``; on MX arrays ``scales``
    (N, ceil(K / 32)) E8M0 patterns.

    ``abort_after``: start the layer, stream for that many clocks, then pulse ``rst`` (the layer
    yields no result; the next layer must run cleanly). ``stall``: per-layer override of the
    run's stall probability (0..0.9), one for every stream or three: activation, weight, result
    streams. ``merge_frames``: ``"act"`` or ``"wgt"`` sends that
    stream as one frame (``tlast`` on its last beat only): the layer must still produce the
    right results and set ``ERROR.ACT_FRAMING`` / ``WGT_FRAMING`` (cleared afterwards)."""

    x_bits: object
    codes: object
    e0: object
    bias_bits: object = None
    relu: bool = False
    abort_after: int | None = None
    stall: float | None = None
    merge_frames: str | None = None
    scales: object = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(np.shape(self.x_bits)[0]), int(np.shape(self.x_bits)[1]),
                int(np.shape(self.codes)[0]))

    @property
    def per_channel(self) -> bool:
        return np.ndim(self.e0) == 1


def check_layer(config: ArrayConfig, layer: Layer) -> None:
    """Raise ``ValueError`` unless ``layer`` can run on ``config`` (shapes, K <= depth, codes,
    patterns and offsets in range)."""
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")
    x, c = np.asarray(layer.x_bits), np.asarray(layer.codes)
    if x.ndim != 2 or c.ndim != 2:
        raise ValueError(f"X must be (N, K) and codes (M, K), not {x.shape} and {c.shape}")
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"X has K={x.shape[1]} but codes have K={c.shape[1]}")
    n, k, m = layer.shape
    if k > config.depth:
        raise ValueError(
            f"K={k} exceeds the array's depth {config.depth}: the contract rounds each dot "
            f"product once, so K cannot be split into passes; use an ArrayConfig with "
            f"depth >= {k}")
    config.check_layer(n, k, m)
    if x.dtype.kind not in "iu" or c.dtype.kind not in "iu":
        raise ValueError(f"X and codes must be integer arrays, not {x.dtype} and {c.dtype}")
    fin, fout = config.in_fmt, config.out_fmt
    if x.size and (int(x.min()) < 0 or int(x.max()) >> fin.width):
        raise ValueError(f"X holds a value outside the raw {fin.name} patterns "
                         f"[0, {(1 << fin.width) - 1}]")
    activation_lanes(config, x, layer.scales)            # raises on missing or bad scales
    if c.size and (int(c.min()) < 0 or int(c.max()) >> config.wbits):
        raise ValueError(f"codes hold a value outside [0, {(1 << config.wbits) - 1}] "
                         f"(B={config.wbits})")
    e0 = np.asarray(layer.e0)
    if e0.ndim not in (0, 1) or (e0.ndim == 1 and e0.shape != (m,)):
        raise ValueError(f"e0 must be an int or ({m},) ints, not shape {e0.shape}")
    if e0.dtype.kind not in "iu":
        raise ValueError(f"e0 must be integers, not {e0.dtype}")
    bad = e0[(e0 < config.e0_min) | (e0 > config.e0_max)] if e0.ndim else (
        e0 if not config.e0_min <= int(e0) <= config.e0_max else np.array([]))
    if np.size(bad):
        raise ValueError(f"e0={int(np.ravel(bad)[0])} is outside the array's range "
                         f"[{config.e0_min}, {config.e0_max}]")
    if layer.bias_bits is not None:
        b = np.asarray(layer.bias_bits)
        if b.shape != (m,) or b.dtype.kind not in "iu":
            raise ValueError(f"bias must be ({m},) integers, not {b.shape} {b.dtype}")
        if b.size and (int(b.min()) < 0 or int(b.max()) >> fout.width):
            raise ValueError(f"bias holds a value outside the raw {fout.name} patterns")
    if layer.abort_after is not None and (not isinstance(layer.abort_after, int)
                                          or layer.abort_after < 1):
        raise ValueError(f"abort_after must be a positive int, not {layer.abort_after!r}")
    if layer.merge_frames not in (None, "act", "wgt"):
        raise ValueError(f"merge_frames must be None, 'act' or 'wgt', not "
                         f"{layer.merge_frames!r}")
    if layer.stall is not None:
        stall_triple(layer.stall)


def stall_triple(stall) -> tuple[float, float, float]:
    """``stall`` (one probability, or one per stream: activation, weight, result) as three
    floats in [0, 0.9]; ``ValueError`` otherwise."""
    values = [stall] * 3 if isinstance(stall, (int, float)) else list(np.ravel(stall))
    if len(values) != 3 or not all(isinstance(v, (int, float, np.floating, np.integer))
                                   and 0 <= v <= 0.9 for v in values):
        raise ValueError(f"stall must be a probability in [0, 0.9] or three of them "
                         f"(activation, weight, result), not {stall!r}")
    return tuple(float(v) for v in values)


@dataclass
class LayerResult:
    """What one layer did: ``y`` (N, M) int64 raw ``out_fmt`` bits (None for an aborted
    layer), the performance counters, ``STATUS``/``ERROR`` after the layer, the clocks from
    ``START`` to ``DONE`` seen by the bench, and ``problems`` (interface rule violations)."""

    index: int
    shape: tuple
    y: np.ndarray | None
    counters: dict = field(default_factory=dict)
    status: int = 0
    error: int = 0
    bench_cycles: int = 0
    beats: int = 0
    problems: list = field(default_factory=list)
    aborted: bool = False
    wall_s: float = 0.0

    @property
    def macs(self) -> int:
        n, k, m = self.shape
        return n * k * m


@dataclass
class RunOutcome:
    sim: str
    config: ArrayConfig
    results: list
    run_dir: Path
    log: Path
    build_s: float
    wall_s: float
    sim_s: float
    ident_problems: list = field(default_factory=list)
    probe_problems: list = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        out = list(self.ident_problems) + list(self.probe_problems)
        for r in self.results:
            out += [f"layer {r.index} {r.shape}: {p}" for p in r.problems]
        return out


def perf_summary(config: ArrayConfig, result: LayerResult) -> dict:
    """Cycles and MAC utilization of a finished layer from its counters."""
    busy = int(result.counters.get("CYCLES_BUSY", 0))
    slots = busy * config.rows * config.cols
    return {"cycles_busy": busy, "cycles_active": int(result.counters.get("CYCLES_ACTIVE", 0)),
            "stall_act": int(result.counters.get("STALL_ACT", 0)),
            "stall_wgt": int(result.counters.get("STALL_WGT", 0)),
            "stall_res": int(result.counters.get("STALL_RES", 0)),
            "stall_drain": int(result.counters.get("STALL_DRAIN", 0)),
            "bench_cycles": result.bench_cycles, "macs": result.macs,
            "mac_utilization": result.macs / slots if slots else 0.0}


# -- build --------------------------------------------------------------------------------------

def array_verilog(config: ArrayConfig) -> str:
    """``hw.array_top.generate_array_verilog(config)``, cached under ``build/sim_array``."""
    from sim.runner import cached_verilog

    def gen():
        from hw.array_top import generate_array_verilog
        return generate_array_verilog(config, name=TOP)

    return cached_verilog(config, BUILD_ROOT / config.name, TOP, gen)


def build_array(config: ArrayConfig, sim: str, *, waves: bool = False,
                verilog: str | None = None, variant: str | None = None):
    """Generate (cached) and build ``densehw_array`` for ``config`` on ``sim`` once per RTL
    content; returns ``(runner, build_dir, seconds_spent_building)``. ``verilog``/``variant``:
    build this RTL text instead, in ``<sim>-<variant>`` (checker self-tests)."""
    from sim.runner import build_top, check_sim

    check_sim(sim)
    if (verilog is None) != (variant is None):
        raise ValueError("a replacement RTL text needs its own variant folder, and vice versa")
    folder = BUILD_ROOT / config.name / (sim + (f"-{variant}" if variant else ""))
    text = array_verilog(config) if verilog is None else verilog
    try:
        return build_top(TOP, text, folder, sim, waves=waves, recipe=_RECIPE)
    except RuntimeError as exc:
        raise ArrayRunError(str(exc)) from None


# -- running ------------------------------------------------------------------------------------

def _write_job(run_dir: Path, config: ArrayConfig, layers, *, seed, stall, timeout_factor,
               check_ident, probes) -> None:
    entries = []
    for i, layer in enumerate(layers):
        n, k, m = layer.shape
        np.save(run_dir / f"x{i}.npy", np.asarray(layer.x_bits, dtype=np.uint64))
        np.save(run_dir / f"codes{i}.npy", np.asarray(layer.codes, dtype=np.uint8))
        if layer.per_channel:
            np.save(run_dir / f"e0_{i}.npy", np.asarray(layer.e0, dtype=np.int64))
        if layer.bias_bits is not None:
            np.save(run_dir / f"bias{i}.npy", np.asarray(layer.bias_bits, dtype=np.uint64))
        if layer.scales is not None:
            np.save(run_dir / f"scales{i}.npy", np.asarray(layer.scales, dtype=np.int64))
        entries.append({
            "n": n, "k": k, "m": m, "relu": bool(layer.relu),
            "e0": None if layer.per_channel else int(layer.e0),
            "per_channel": layer.per_channel, "bias": layer.bias_bits is not None,
            "scales": layer.scales is not None,
            "abort_after": layer.abort_after,
            "stall": stall_triple(stall if layer.stall is None else layer.stall),
            "merge_frames": layer.merge_frames,
        })
    job = {"config": config.to_dict(), "seed": int(seed), "layers": entries,
           "timeout_factor": float(timeout_factor), "check_ident": bool(check_ident),
           "probes": bool(probes)}
    (run_dir / "job.json").write_text(json.dumps(job, indent=1))


def _collect(run_dir: Path, config: ArrayConfig, layers, entries: dict) -> list[LayerResult]:
    out = []
    fout = config.out_fmt
    for i, layer in enumerate(layers):
        n, k, m = layer.shape
        e = entries.get(str(i))
        res = LayerResult(index=i, shape=(n, k, m), y=None, aborted=bool(layer.abort_after))
        out.append(res)
        if e is None:
            res.problems.append("the bench wrote no result (simulation ended early)")
            continue
        res.counters = e.get("counters", {})
        res.status, res.error = int(e.get("status", 0)), int(e.get("error", 0))
        res.bench_cycles = int(e.get("bench_cycles", 0))
        res.wall_s = float(e.get("wall_s", 0.0))
        res.problems += e.get("problems", [])
        if layer.abort_after:
            res.beats = int(e.get("beats_before_reset", 0))
            continue
        beats = np.load(run_dir / f"res{i}.npy")
        frames = np.load(run_dir / f"frames{i}.npy").tolist()
        res.beats = int(beats.size)
        order = result_order(config, n, k, m)
        tiles = config.tiles(n, k, m)
        want_frames = [r * c for _, r, _, c in tiles]
        if beats.size != len(order):
            res.problems.append(f"{beats.size} result beats, expected {len(order)} "
                                f"({'lost' if beats.size < len(order) else 'extra'} beats)")
        if frames != want_frames:
            common = min(len(frames), len(want_frames))
            first = next((j for j in range(common) if frames[j] != want_frames[j]), common)
            res.problems.append(
                f"tlast framing: {len(frames)} frames, expected {len(want_frames)}; first "
                f"difference at frame {first}: "
                f"{frames[first] if first < len(frames) else None} beats, expected "
                f"{want_frames[first] if first < len(want_frames) else None}")
        if int(beats.max(initial=0)) >> fout.width:
            res.problems.append("result beats with bits set above the output width")
        y = np.zeros((n, m), dtype=np.int64)
        count = min(beats.size, len(order))
        idx = np.asarray(order[:count], dtype=np.int64).reshape(-1, 3)
        y[idx[:, 0], idx[:, 1]] = beats[:count].astype(np.int64) & ((1 << fout.width) - 1)
        res.y = y
    return out


def run_layers(config: ArrayConfig, layers, *, sim: str = "verilator", seed: int = 1,
               stall=0.0, tag: str = "run", waves: bool = False,
               timeout_factor: float = 1.0, check_ident: bool = True, probes: bool = False,
               raise_on_problem=False, verilog: str | None = None,
               variant: str | None = None) -> RunOutcome:
    """Run ``layers`` (:class:`Layer`) back to back on the RTL of ``config`` in one simulator
    process. ``stall``: probability that a source holds ``tvalid`` low and that the result sink
    holds ``tready`` low on a clock (one for every stream, or three: activation, weight,
    result; per-layer override ``Layer.stall``).
    ``check_ident``: compare the identification registers first; ``probes``: also check the
    ``ERROR`` bits of ``START`` with bad shapes/offsets and of ``START`` while busy.
    Returns a :class:`RunOutcome`; ``raise_on_problem`` raises :class:`ArrayRunError` on any
    interface problem instead."""
    from sim.runner import check_sim, run_cocotb

    check_sim(sim)
    layers = list(layers)
    if not layers:
        raise ValueError("run_layers needs at least one layer")
    stall_triple(stall)
    for layer in layers:
        check_layer(config, layer)
    t0 = time.perf_counter()
    runner, bdir, build_s = build_array(config, sim, waves=waves, verilog=verilog,
                                        variant=variant)
    run_dir = bdir.parent / tag
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    _write_job(run_dir, config, layers, seed=seed, stall=stall, timeout_factor=timeout_factor,
               check_ident=check_ident, probes=probes)
    log, result_json, xml = run_dir / "sim.log", run_dir / "results.json", run_dir / "results.xml"
    env = {"DENSEHW_ARRAY_JOB": str(run_dir), "COCOTB_LOG_LEVEL": "WARNING"}
    plusargs = [f"+dumpfile_path={run_dir / (TOP + '.fst')}"] if waves and sim == "icarus" \
        else []
    t1 = time.perf_counter()
    error = run_cocotb(runner, top=TOP, test_module="sim.array_tb", build_dir=bdir,
                       run_dir=run_dir, testcases=["run_job"], env=env, waves=waves,
                       plusargs=plusargs, log=log, results_xml=xml)
    sim_s = time.perf_counter() - t1
    data = json.loads(result_json.read_text()) if result_json.exists() else {}
    if not data and error is None:
        error = "the bench wrote no results.json"
    results = _collect(run_dir, config, layers, data.get("layers", {}))
    outcome = RunOutcome(sim=sim, config=config, results=results, run_dir=run_dir, log=log,
                         build_s=build_s, wall_s=time.perf_counter() - t0, sim_s=sim_s,
                         ident_problems=list(data.get("ident_problems", [])),
                         probe_problems=list(data.get("probe_problems", [])))
    if error or data.get("fatal"):
        outcome.ident_problems.insert(0, data.get("fatal") or error)
    if raise_on_problem and outcome.problems:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise ArrayRunError(f"{sim} run of {config.name} failed: "
                            + "; ".join(outcome.problems[:5]) + f" (log {log})\n{tail}")
    return outcome


def default_config(*, in_fmt, out_fmt=None, wbits, k, e0=0, rows=4, cols=4,
                   mx_block=0) -> ArrayConfig:
    """The array the CLI backends build when no ``--array-config`` is given: ``rows x cols``
    PEs, the smallest power-of-two ``depth >= max(16, K)``, ``e0`` range [-8, 7] widened to
    cover the GEMM's offsets; ``mx_block`` 32 for MX activations (default scale window)."""
    e0s = np.atleast_1d(np.asarray(e0, dtype=np.int64))
    lo, hi = min(-8, int(e0s.min())), max(7, int(e0s.max()))
    if lo < -64 or hi > 64:
        raise ValueError(f"e0 range [{int(e0s.min())}, {int(e0s.max())}] is outside what the "
                         f"array supports ([-64, 64])")
    if k > 1 << 16:
        raise ValueError(f"K={k} exceeds the largest array depth 65536: the contract rounds "
                         f"once, so K cannot be split into passes")
    depth = max(16, 1 << max(0, (k - 1).bit_length()))
    return ArrayConfig(in_fmt=in_fmt, out_fmt=out_fmt, wbits=wbits, rows=rows, cols=cols,
                       depth=depth, e0_min=lo, e0_max=hi, mx_block=mx_block)


def gemm_rtl(x_bits, codes, e0, *, config: ArrayConfig, bias_bits=None, relu=False,
             sim: str = "verilator", stall: float = 0.0, seed: int = 1, tag: str | None = None,
             waves: bool = False, keep: bool = False, scales=None):
    """``Y`` (N, M) int64 raw ``out_fmt`` bits of one GEMM on the RTL, and a dict of stats
    (cycles, counters, MAC utilization; seconds: ``build_s``, ``sim_s`` the simulator process,
    ``layer_s`` the layer inside the bench, ``wall_s`` everything). The run folder (``tag``,
    default ``gemm-<pid>``) is removed after a successful run unless ``keep`` or ``waves``. Raises
    :class:`ArrayRunError` on any interface problem and ``ValueError`` on bad inputs."""
    e0 = np.asarray(e0, dtype=np.int64) if np.ndim(e0) else int(e0)
    layer = Layer(np.asarray(x_bits), np.asarray(codes), e0,
                  None if bias_bits is None else np.asarray(bias_bits), bool(relu),
                  scales=None if scales is None else np.asarray(scales))
    tag = tag or f"gemm-{os.getpid()}"
    out = run_layers(config, [layer], sim=sim, seed=seed, stall=stall, tag=tag, waves=waves,
                     raise_on_problem=True)
    res = out.results[0]
    if not (keep or waves):
        shutil.rmtree(out.run_dir, ignore_errors=True)
    stats = perf_summary(config, res)
    stats.update(cycles=stats["cycles_busy"], sim=sim, wall_s=out.wall_s, build_s=out.build_s,
                 sim_s=out.sim_s, layer_s=res.wall_s, config=config.name,
                 run_dir=str(out.run_dir) if keep or waves else None)
    return res.y, stats


def conv2d_rtl(x_bits, codes, e0, *, config: ArrayConfig, kernel, stride=1, padding=0,
               bias_bits=None, relu=False, **kwargs):
    """2-D convolution on the RTL: ``x_bits`` (S, C, H, W) raw ``in_fmt`` patterns, ``codes``
    (M, C*kh*kw) in PyTorch's ``weight.reshape(M, -1)`` order. The convolution is defined as
    the GEMM over :func:`sw.conv.im2col` (zero padding enters as ``+0`` activations, real
    terms of every dot product), the same lowering as :func:`sw.conv.conv2d_golden`.
    Returns ``(Y (S, M, OH, OW) int64 raw bits, stats)``."""
    from sw.conv import col2out, im2col

    x = np.asarray(x_bits)
    cols, (s, oh, ow) = im2col(x, kernel=kernel, stride=stride, padding=padding)
    y, stats = gemm_rtl(cols, codes, e0, config=config, bias_bits=bias_bits, relu=relu,
                        **kwargs)
    return col2out(y, s, oh, ow), stats
