"""The PE array's part of ``make sim``: random layers back to back on one array, by category.

An :class:`ArrayJob` names an :class:`~contract.array.ArrayConfig` and how many layers of each
category to run; :func:`job_layers` draws them from the seed and :func:`run_job` runs them back
to back in one simulator process (:func:`sim.array_driver.run_layers`, the cocotb bench
:mod:`sim.array_tb`), compares every output with the golden model and returns one table row
per category. Categories:

``error path``
    ``START`` with K = 0, K > depth, N = 0, M = 0, N = 2**24, E0 outside its range (each must
    set its ``ERROR`` bit and not start), ``START`` while busy (``START_BUSY``), then two layers
    whose activation or weight stream lacks its inner ``tlast`` s (right results,
    ``ACT_FRAMING`` / ``WGT_FRAMING`` set and cleared).
``random layers``
    Ragged shapes (N, M up to about three tiles, K from 1 to 96 or the depth), every value
    flavor, bias or not, ReLU or not, per-tensor or per-channel ``e0``, an independent stall
    probability in 0..90 % on each of the three streams.
``specials``
    One layer of each special flavor (inf/NaN, exact cancellation and the sign of zero,
    overflow, underflow, all-zero terms).
``90% stalls``
    90 % stalls on the activation stream alone, the weight stream alone, the result stream
    alone, and on all three.
``K = depth``
    Layers of the largest K, ragged N and M.
``reset mid-layer``
    A layer cut by a reset at a random clock (from its first weight word to its last result),
    followed by a layer that must be right.

Every layer also passes the bench's interface checks: ``N*M`` result beats, ``tlast`` exactly at
the end of every tile, ``DONE`` set, ``ERROR`` as expected, nothing after the last beat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from contract.array import ArrayConfig

from .array_driver import ArrayRunError, run_layers
from .array_layers import SPECIAL_FLAVORS, abort_point, golden, mismatches, random_layer

__all__ = ["ArrayJob", "ARRAY_CONFIGS", "CATEGORIES", "job_layers", "run_job", "describe"]

CATEGORIES = ("error path", "random layers", "specials", "90% stalls", "K = depth",
              "reset mid-layer")
STALL_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)

#: The arrays of ``make sim`` (and of the soak): the default 4x4 and three more that together
#: cover every format as input and output, B = 2..5, an array wider than 4 columns with the
#: ``"spread"`` floorplan and both PE pipelines.
ARRAY_CONFIGS = (
    ArrayConfig(),
    ArrayConfig(in_fmt="fp8_e5m2", out_fmt="fp16", wbits=2, rows=2, cols=6, depth=64,
                e0_min=-4, e0_max=3, pipeline=1, floorplan="spread"),
    ArrayConfig(in_fmt="bf16", out_fmt="fp32", wbits=5, rows=2, cols=3, depth=32,
                e0_min=-16, e0_max=15),
    ArrayConfig(in_fmt="fp32", out_fmt="bf16", wbits=4, rows=3, cols=2, depth=16, pipeline=1),
)


@dataclass
class ArrayJob:
    """One array configuration and the size of its run: ``random`` random layers, ``resets``
    reset episodes, ``full`` layers with K = depth, ``kmax`` the largest K of a random layer
    (besides some at the depth); ``specials``/``error_path``/``stalls``: run those categories."""

    config: ArrayConfig
    label: str = ""
    random: int = 40
    resets: int = 3
    full: int = 1
    kmax: int = 96
    specials: bool = True
    error_path: bool = True
    stalls: bool = True


def describe(config: ArrayConfig) -> str:
    """``fp16 B=3 4x4 d512`` (``->out`` when the output format differs)."""
    out = "" if config.out_fmt == config.in_fmt else f"->{config.out_fmt.name}"
    return (f"{config.in_fmt.name}{out} B={config.wbits} {config.rows}x{config.cols} "
            f"d{config.depth}")


def _shape(cfg, rng, kmax):
    n = int(rng.integers(1, 3 * cfg.rows + 2))
    m = int(rng.integers(1, 3 * cfg.cols + 2))
    kmax = min(kmax, cfg.depth)
    k = int(rng.integers(1, kmax + 1)) if rng.random() < 0.9 else int(
        rng.integers(kmax // 2 + 1, cfg.depth + 1))
    return n, k, m


def _stalls(rng):
    return tuple(float(rng.choice(STALL_LEVELS)) for _ in range(3))


def job_layers(job: ArrayJob, seed: int) -> list[tuple[str, object]]:
    """``[(category, Layer)]`` of ``job`` for ``seed``, in run order: the error path first, the
    other categories shuffled into the random layers (settings change from layer to layer)."""
    cfg = job.config
    rng = np.random.default_rng([seed, 0xA77A])
    first, rest = [], []
    if job.error_path:
        first.append(("error path", random_layer(cfg, rng, *_shape(cfg, rng, job.kmax),
                                                 merge_frames="act", stall=_stalls(rng))))
        first.append(("error path", random_layer(cfg, rng, *_shape(cfg, rng, job.kmax),
                                                 merge_frames="wgt", per_channel=True,
                                                 stall=_stalls(rng))))
    rest += [("random layers", random_layer(cfg, rng, *_shape(cfg, rng, job.kmax),
                                            stall=_stalls(rng))) for _ in range(job.random)]
    if job.specials:
        rest += [("specials", random_layer(cfg, rng, *_shape(cfg, rng, job.kmax), flavor=fl,
                                           stall=_stalls(rng))) for fl in SPECIAL_FLAVORS]
    if job.stalls:
        for probs in ((0.9, 0, 0), (0, 0.9, 0), (0, 0, 0.9), (0.9, 0.9, 0.9)):
            n, k, m = _shape(cfg, rng, min(job.kmax, 24))
            rest.append(("90% stalls", random_layer(cfg, rng, n, k, m, stall=probs)))
    for _ in range(job.full):
        n, m = int(rng.integers(1, 2 * cfg.rows + 2)), int(rng.integers(1, 2 * cfg.cols + 2))
        rest.append(("K = depth", random_layer(cfg, rng, n, cfg.depth, m, stall=_stalls(rng))))
    order = rng.permutation(len(rest))
    rest = [rest[i] for i in order]
    # each reset episode: a layer cut somewhere between its first weight word and its last
    # result, then a layer that must be right; placed at random points of the run
    for _ in range(job.resets):
        n, k, m = _shape(cfg, rng, job.kmax)
        stall = _stalls(rng)
        cut = random_layer(cfg, rng, n, k, m, stall=stall,
                           abort_after=abort_point(cfg, rng, n, k, m, stall, lo=0.02, hi=0.95))
        after = random_layer(cfg, rng, *_shape(cfg, rng, job.kmax), stall=_stalls(rng))
        at = int(rng.integers(0, len(rest) + 1))
        rest[at:at] = [("reset mid-layer", cut), ("reset mid-layer", after)]
    return first + rest


def run_job(job: ArrayJob, sim: str, *, seed: int = 1, waves: bool = False,
            tag: str = "make-sim", echo=print) -> tuple[list, dict]:
    """Run ``job`` on ``sim``; returns ``(rows, result)``: one table row per category
    ``(configuration, test, vectors, mismatches, vectors/s, cycles/s, result)`` and a dict for
    the summary (problems, counts, seconds, the run folder)."""
    cfg = job.config
    name = describe(cfg)
    t0 = time.perf_counter()
    entries = job_layers(job, seed)
    layers = [layer for _, layer in entries]
    try:
        out = run_layers(cfg, layers, sim=sim, seed=seed, tag=tag, waves=waves,
                         probes=job.error_path, timeout_factor=2.0)
    except (ArrayRunError, OSError, ValueError) as exc:
        echo(f"   ERROR: {exc}")
        return ([(name, "(build)", 0, 0, None, None, "FAIL")],
                {"config": cfg.name, "unit": "array", "sim": sim, "passed": False,
                 "error": str(exc)})
    if out.build_s:
        echo(f"   built in {out.build_s:.0f} s")
    stats = {c: {"layers": 0, "vectors": 0, "mismatches": 0, "cycles": 0, "seconds": 0.0,
                 "resets": 0, "problems": []} for c in CATEGORIES}
    failures = []
    for i, ((cat, layer), res) in enumerate(zip(entries, out.results, strict=True)):
        st = stats[cat]
        st["layers"] += 1
        st["problems"] += [f"layer {i} {layer.shape}: {p}" for p in res.problems]
        st["cycles"] += res.bench_cycles
        st["seconds"] += res.wall_s
        if layer.abort_after:
            st["resets"] += 1
            continue
        want = golden(cfg, layer)
        bad = (np.ones(want.shape, bool) if res.y is None else res.y != want)
        st["vectors"] += int(want.size)
        st["mismatches"] += int(bad.sum())
        if bad.any():
            failures += mismatches(cfg, layer, res.y, want, seed=seed, index=i, limit=3)
    # problems of the START probes belong to the error path; others (identification
    # registers, a bench failure) fail every category
    general = list(out.ident_problems)
    stats["error path"]["problems"] += out.probe_problems
    rows = []
    for cat in CATEGORIES:
        st = stats[cat]
        if not st["layers"] and not (cat == "error path" and job.error_path):
            continue
        label = cat
        if cat == "error path":
            label = "error path (7 bad STARTs, START busy, 2 misframed layers)"
        elif cat == "reset mid-layer":
            label = (f"reset mid-layer ({st['resets']} reset{'s' if st['resets'] != 1 else ''}, "
                     f"next layer checked)")
        else:
            label = f"{cat} ({st['layers']} layers)"
        ok = not st["mismatches"] and not st["problems"] and not general
        rows.append((name, label, st["vectors"], st["mismatches"],
                     st["vectors"] / st["seconds"] if st["seconds"] else None,
                     st["cycles"] / st["seconds"] if st["seconds"] else None,
                     "ok" if ok else "FAIL"))
    problems = general + [p for st in stats.values() for p in st["problems"]]
    for line in (problems + failures)[:10]:
        echo(f"   {line}")
    result = {"config": cfg.name, "unit": "array", "config_dict": cfg.to_dict(), "sim": sim,
              "seed": seed, "passed": not problems and not failures,
              "layers": len(layers), "outputs": sum(st["vectors"] for st in stats.values()),
              "mismatches": sum(st["mismatches"] for st in stats.values()),
              "problems": problems[:50], "failures": failures[:20],
              "categories": {c: {k: v for k, v in st.items() if k != "problems"}
                             for c, st in stats.items() if st["layers"]},
              "log": str(out.log), "build_s": round(out.build_s, 1),
              "wall_s": round(time.perf_counter() - t0, 1)}
    return rows, result
