"""``make sim``: generate the RTL, co-simulate it against the golden model, print a table.

    python -m sim.run [--sim verilator|icarus] [--waves] [--quick] [--seed N] [--jobs N]

Two units. The dot-product unit: every cocotb test of :mod:`sim.dot_tb` on the default
:class:`~contract.DotConfig` (fp16, B=3, 4 lanes; exhaustive single products for e0 = 0 and
e0_min, random dot products with K up to 1024, backpressure, reset) and the exhaustive product
sets of fp8_e5m2 for B = 2..5 (e0 = 0, e0_min, e0_max) plus random, backpressure and reset tests
on each. The PE array (:mod:`sim.array_regress`): random layers back to back on the default
4x4 array and on three more (a wide 2x6 array, bf16, fp32; together every format as input and
output, B = 2..5, both PE pipelines): ragged shapes, bias/ReLU/per-channel e0, specials,
0-90 % stalls on each stream, resets mid-layer, the error path. Icarus is 20-100x slower on the
generated netlists, so it gets sampled sets (reported in the table). The configurations run
``--jobs`` at a time (default 2). Writes ``build/sim/summary.json``; exits 1 on any mismatch or
failure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

from contract import DotConfig

from .array_regress import ARRAY_CONFIGS, ArrayJob
from .runner import BUILD_ROOT, SIMULATORS, TESTS, build, run_tests

__all__ = ["Job", "plan", "plan_for", "array_plan", "main", "run", "run_plan", "run_jobs",
           "add_arguments", "load_config", "format_table"]


@dataclass
class Job:
    """One simulator run: a configuration, its tests and their ``DENSEHW_*`` parameters."""

    config: DotConfig
    params: dict = field(default_factory=dict)
    tests: tuple = TESTS
    label: str = ""


def _fp8(b: int) -> DotConfig:
    return DotConfig(in_fmt="fp8_e5m2", wbits=b, lanes=1 if b == 2 else 2)


def plan(sim: str, *, quick: bool = False) -> list[Job]:
    """The regression of ``make sim`` for one simulator."""
    default = DotConfig()
    e0_two = f"0,{default.e0_min}"
    if sim == "verilator":
        if quick:
            return [Job(default, dict(EXH_E0=e0_two, EXH_STRIDE=64, RANDOM_N=300, BP_N=300,
                                      RESET_N=3), label="default (quick)"),
                    Job(_fp8(2), dict(RANDOM_N=100, BP_N=100, RESET_N=2), label="fp8 B=2")]
        jobs = [Job(default, dict(EXH_E0=e0_two, EXH_STRIDE=1, RANDOM_N=2000, BP_N=1500,
                                  RESET_N=8), label="default")]
        jobs += [Job(_fp8(b), dict(RANDOM_N=400, BP_N=400, RESET_N=3), label=f"fp8 B={b}")
                 for b in (2, 3, 4, 5)]
        return jobs
    if quick:
        return [Job(default, dict(EXH_E0=e0_two, EXH_STRIDE=4096, RANDOM_N=12, KMAX=32,
                                  BP_N=30, RESET_N=1), label="default (quick)")]
    jobs = [Job(default, dict(EXH_E0=e0_two, EXH_STRIDE=256, RANDOM_N=150, KMAX=256, BP_N=300,
                              RESET_N=3), label="default")]
    jobs += [Job(_fp8(b), dict(RANDOM_N=60, KMAX=128, BP_N=150, RESET_N=2),
                 label=f"fp8 B={b}") for b in (2, 3, 4, 5)]
    return jobs


def array_plan(sim: str, *, quick: bool = False) -> list[ArrayJob]:
    """The PE array's part of ``make sim``: the arrays of
    :data:`~sim.array_regress.ARRAY_CONFIGS` (the default first)."""
    default, *others = ARRAY_CONFIGS
    if quick:
        return [ArrayJob(default, "default (quick)", random=6, resets=1, full=0, kmax=32,
                         specials=False)]
    if sim == "verilator":
        jobs = [ArrayJob(default, "default", random=40, resets=3, full=1)]
        jobs += [ArrayJob(c, c.in_fmt.name, random=20, resets=2, full=1) for c in others]
        return jobs
    jobs = [ArrayJob(default, "default", random=4, resets=1, full=0, kmax=24)]
    jobs += [ArrayJob(others[0], "wide", random=3, resets=1, full=0, kmax=16, specials=False)]
    return jobs


def plan_for(config: DotConfig, sim: str, *, quick: bool = False) -> list[Job]:
    """The standard tests for one user configuration; the exhaustive product set is sampled
    down to about 10**6 vectors (Verilator) or 2000 (Icarus)."""
    budget = (10**6 if not quick else 5 * 10**4) if sim == "verilator" else 2000
    e0 = sorted({0 if config.e0_min <= 0 <= config.e0_max else config.e0_min,
                 config.e0_min, config.e0_max})
    size = len(e0) << (config.in_fmt.width + config.wbits)
    stride = max(1, -(-size // budget))
    if sim == "verilator":
        counts = dict(RANDOM_N=300, BP_N=300, RESET_N=3) if quick else dict(
            RANDOM_N=2000, BP_N=1500, RESET_N=8)
    else:
        counts = dict(RANDOM_N=20, KMAX=64, BP_N=40, RESET_N=1)
    return [Job(config, dict(EXH_E0=",".join(map(str, e0)), EXH_STRIDE=stride, **counts),
                label="custom")]


def _describe(config: DotConfig) -> str:
    out = "" if config.out_fmt == config.in_fmt else f"->{config.out_fmt.name}"
    return f"{config.in_fmt.name}{out} B={config.wbits} L={config.lanes}"


def run_plan(jobs, sim: str, *, seed: int = 1, waves: bool = False, tag: str = "make-sim",
             echo=print):
    """Run ``jobs``; returns ``(rows, results)`` for the table and the summary."""
    rows, results = [], []
    for job in jobs:
        echo(f"== {sim}: {_describe(job.config)} ({job.config.name}) "
             f"{' '.join(f'{k}={v}' for k, v in job.params.items())}")
        try:
            _, _, build_s = build(job.config, sim, waves=waves)
            if build_s:
                echo(f"   built in {build_s:.0f} s")
            res = run_tests(job.config, sim, tests=job.tests, seed=seed, params=job.params,
                            waves=waves, tag=tag, echo=lambda line: echo(f"   {line}"))
        except (RuntimeError, OSError, ValueError) as exc:
            echo(f"   ERROR: {exc}")
            rows.append((_describe(job.config), "(build)", 0, 0, None, None, "FAIL"))
            results.append({"config": job.config.name, "sim": sim, "passed": False,
                            "error": str(exc)})
            continue
        if res.error:
            echo(f"   ERROR: {res.error} (log {res.log})")
        for name in job.tests:
            t = res.tests.get(name.removeprefix("test_"))
            if t is None:
                rows.append((_describe(job.config), name.removeprefix("test_"), 0, 0, None,
                             None, "FAIL"))
                continue
            label = t["test"]
            if t.get("stride", 1) > 1:
                label += f" (1/{t['stride']} of x)"
            rows.append((_describe(job.config), label, t["vectors"], t["mismatches"],
                         t.get("vectors_per_s"), t.get("cycles_per_s"),
                         "ok" if t["passed"] else "FAIL"))
        results.append({"config": job.config.name, "config_dict": job.config.to_dict(),
                        "sim": sim, "passed": res.passed, "error": res.error,
                        "params": job.params, "log": str(res.log),
                        "waves": str(res.waves) if res.waves else None,
                        "build_s": round(build_s, 1), "wall_s": round(res.wall_s, 1),
                        "tests": res.tests})
        if not res.passed:
            echo(res.summary())
    return rows, results


def _dot_task(job: Job, sim: str, seed: int, waves: bool):
    lines = []
    rows, results = run_plan([job], sim, seed=seed, waves=waves, echo=lines.append)
    for r in results:
        r["unit"] = "dot"
    return [("dot", *row) for row in rows], results, lines


def _array_task(job: ArrayJob, sim: str, seed: int, waves: bool):
    from .array_regress import describe, run_job

    lines = [f"== {sim}: array {describe(job.config)} ({job.config.name}) {job.random} "
             f"random layers, {job.resets} resets"]
    rows, result = run_job(job, sim, seed=seed, waves=waves, echo=lines.append)
    return [("array", *row) for row in rows], [result], lines


def run_jobs(dot_jobs, array_jobs, sim: str, *, seed: int = 1, waves: bool = False,
             jobs: int = 2, echo=print):
    """Run both units' jobs, ``jobs`` simulator runs at a time (separate processes: each
    configuration builds in its own folder); returns ``(rows, results)`` in plan order."""
    tasks = [(_dot_task, j) for j in dot_jobs] + [(_array_task, j) for j in array_jobs]
    out = [None] * len(tasks)
    if jobs <= 1:
        for i, (fn, job) in enumerate(tasks):
            rows, results, lines = fn(job, sim, seed, waves)
            for line in lines:
                echo(line)
            out[i] = (rows, results)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {pool.submit(fn, job, sim, seed, waves): i
                       for i, (fn, job) in enumerate(tasks)}
            for fut in as_completed(futures):
                rows, results, lines = fut.result()
                for line in lines:
                    echo(line)
                out[futures[fut]] = (rows, results)
    rows = [row for r, _ in out for row in r]
    results = [res for _, r in out for res in r]
    return rows, results


HEAD = ("unit", "configuration", "test", "vectors", "mismatches", "vectors/s", "cycles/s",
        "result")


def format_table(rows) -> str:
    head = HEAD
    body = [(u, c, t, f"{v:,}", str(m), "-" if r is None else f"{r:,.0f}",
             "-" if cy is None else f"{cy:,.0f}", ok) for u, c, t, v, m, r, cy, ok in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*head), line.format(*("-" * w for w in widths))]
    out += [line.format(*r) for r in body]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.run", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sim", choices=SIMULATORS, default="verilator",
                        help="simulator (default verilator)")
    parser.add_argument("--waves", action="store_true",
                        help="dump FST waveforms (path printed per configuration)")
    parser.add_argument("--quick", action="store_true", help="a short smoke regression")
    parser.add_argument("--seed", type=int, default=1, help="base seed (default 1)")
    parser.add_argument("--jobs", type=int, default=2, metavar="N",
                        help="configurations simulated at a time (default 2)")
    parser.add_argument("--config", metavar="CFG",
                        help="simulate this DotConfig (a TOML or JSON file with the fields "
                             "of DotConfig.to_dict) instead of the standard set")


def load_config(path) -> DotConfig:
    """A :class:`DotConfig` from a TOML or JSON file (:func:`contract.array.read_config_file`);
    errors name the file."""
    from contract.array import read_config_file

    data = read_config_file(path)
    try:
        return DotConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def run(args) -> int:
    t0 = time.perf_counter()
    config = getattr(args, "config", None)
    if config is not None and not isinstance(config, DotConfig):
        config = load_config(config)
    quick = args.quick
    if args.waves and not quick:
        # a million-cycle exhaustive set would dump gigabytes of waveforms
        print("densehw sim: --waves runs the --quick regression (full dumps would be many GB)")
        quick = True
    jobs = getattr(args, "jobs", 2)
    if not isinstance(jobs, int) or jobs < 1:
        print(f"densehw sim: error: --jobs must be at least 1, not {jobs}", file=sys.stderr)
        return 2
    dot_jobs = plan_for(config, args.sim, quick=quick) if config else plan(args.sim, quick=quick)
    array_jobs = [] if config else array_plan(args.sim, quick=quick)
    print(f"densehw sim: {len(dot_jobs)} dot-unit and {len(array_jobs)} array configurations "
          f"on {args.sim}, seed {args.seed}, {jobs} at a time"
          + (", waves on" if args.waves else ""), flush=True)
    rows, results = run_jobs(dot_jobs, array_jobs, args.sim, seed=args.seed, waves=args.waves,
                             jobs=jobs, echo=lambda s: print(s, flush=True))
    wall = time.perf_counter() - t0
    ok = all(r["passed"] for r in results) and all(row[-1] == "ok" for row in rows)
    total = sum(row[3] for row in rows)
    bad = sum(row[4] for row in rows)
    print()
    print(format_table(rows))
    units = {u: (sum(r[3] for r in rows if r[0] == u), sum(r[4] for r in rows if r[0] == u))
             for u in ("dot", "array")}
    print(f"\ndot unit: {units['dot'][0]:,} vectors, {units['dot'][1]} mismatches; "
          f"array: {units['array'][0]:,} outputs, {units['array'][1]} mismatches; "
          f"{wall:.0f} s wall on {args.sim}: " + ("PASS" if ok else "FAIL"))
    if args.waves:
        for r in results:
            if r.get("waves"):
                print(f"waves: {r['waves']}")
    summary = {"sim": args.sim, "seed": args.seed, "quick": quick, "passed": ok,
               "vectors": total, "mismatches": bad, "wall_s": round(wall, 1), "jobs": jobs,
               "units": {u: {"vectors": v, "mismatches": m,
                             "passed": all(r[-1] == "ok" for r in rows if r[0] == u)}
                         for u, (v, m) in units.items()},
               "runs": results,
               "table": [dict(zip(("unit", "configuration", "test", "vectors", "mismatches",
                                   "vectors_per_s", "cycles_per_s", "result"), row, strict=True))
                         for row in rows]}
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    out = BUILD_ROOT / "summary.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, out)
    print(f"summary: {out.relative_to(BUILD_ROOT.parents[1])}")
    return 0 if ok else 1


if __name__ == "__main__":
    # through the package, so that the worker processes find the task functions by name
    from sim import run as _run

    sys.exit(_run.main())
