"""Design-space sweep: weight bits x format x array shape x device, with a Pareto plot.

Every point is a plain picklable job dict handed to :func:`boards.flow.run_job`, so any executor
runs them: :func:`run_jobs` uses a local ``ProcessPoolExecutor`` by default and accepts any
``mapper(fn, jobs) -> results`` instead, e.g. Dask
(``lambda f, js: client.gather(client.map(f, js))``) or Ray
(``lambda f, js: ray.get([ray.remote(f).remote(j) for j in js])``); pytest-xdist can
parametrise a test over :func:`sweep_jobs` and call ``run_job`` in each.

Results are cached by the hash of (spec, board, device, seeds, target, mode, and the generator
sources' fingerprint) under
``build/sweep/<hash>/result.json``; a cached point is not rebuilt unless ``force``.

Accuracy axis: until a trained model exists, the numerical error of each arithmetic against
float64 on random GEMMs (:func:`gemm_error`): the relative RMS error of the outputs, with the same
quantised activations and power-of-two weights given to both. The shift array rounds once (its
error is the output rounding alone); the floating-point MAC baselines round every product and
every partial sum.
"""

from __future__ import annotations

import json
import pathlib
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from boards import flow
from boards.report import markdown_table, write_atomic

__all__ = ["sweep_jobs", "run_jobs", "gemm_error", "pareto_front", "plot_pareto", "job_key",
           "generator_fingerprint", "GENERATOR_SOURCES"]


#: Source files whose content decides what a job builds and measures: the generators, the
#: contract they follow and the flow scripts. Part of every cache key, so that a cached point is
#: never reused after the RTL changed.
GENERATOR_SOURCES = ("contract/*.py", "hw/*.py", "boards/baselines.py", "boards/flow.py")


def generator_fingerprint() -> str:
    """Hash of :data:`GENERATOR_SOURCES` (paths and contents, sorted)."""
    import hashlib

    root = pathlib.Path(__file__).resolve().parent.parent
    digest = hashlib.sha1()
    for path in sorted(p for pattern in GENERATOR_SOURCES for p in root.glob(pattern)):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def job_key(job: dict) -> str:
    """Cache key of a job: hash of everything that changes its result, the generator sources
    included (:func:`generator_fingerprint`)."""
    keyed = {k: job.get(k) for k in ("spec", "board", "device", "seeds", "target_mhz",
                                     "explore", "pnr")}
    keyed["generator"] = generator_fingerprint()
    return flow.spec_hash(keyed)


def sweep_jobs(*, wbits=(3,), formats=("fp16",), shapes=((4, 4),), devices=(("ice40", "up5k"),),
               depth=512, seeds=(1,), explore=True, root="build/sweep", baselines=False) -> list:
    """The job dicts of a sweep (shift arrays; plus the MAC baselines if ``baselines``)."""
    specs = []
    for fmt in formats:
        for b in wbits:
            for rows, cols in shapes:
                specs.append({"kind": "array", "config": {
                    "in_fmt": fmt, "wbits": b, "rows": rows, "cols": cols, "depth": depth}})
    if baselines:
        for fmt in formats:
            for rows, cols in shapes:
                specs.append({"kind": "fp-mac", "fmt": fmt, "rows": rows, "cols": cols})
        for rows, cols in shapes:
            specs.append({"kind": "int8-mac", "rows": rows, "cols": cols})
    jobs = []
    for board, device in devices:
        for spec in specs:
            job = {"spec": spec, "board": board, "device": device, "seeds": list(seeds),
                   "target_mhz": None, "explore": explore, "pnr": board != "asic"}
            job["workdir"] = str(pathlib.Path(root) / job_key(job))
            jobs.append(job)
    return jobs


def _cached(job):
    path = pathlib.Path(job["workdir"]) / "result.json"
    if path.exists():
        res = json.loads(path.read_text())
        if not res.get("error"):
            return res
    return None


def _run_and_store(job: dict) -> dict:
    """:func:`boards.flow.run_job` plus the cache file (picklable, top level); a point cached
    meanwhile (by another runner) is returned as is."""
    cached = _cached(job)
    if cached is not None:
        return cached
    res = flow.run_job(job)
    res["job_key"] = job_key(job)
    res["spec"] = job["spec"]
    folder = pathlib.Path(job["workdir"])
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "result.json", json.dumps(res, indent=2, sort_keys=True) + "\n")
    return res


def run_jobs(jobs, *, workers=1, mapper=None, force=False, progress=True) -> list:
    """Run the jobs not in the cache; return all results in job order."""
    results = [None if force else _cached(j) for j in jobs]
    todo = [i for i, r in enumerate(results) if r is None]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="design",
                   desc="synth", dynamic_ncols=True)
    if mapper is not None:
        for i, res in zip(todo, mapper(_run_and_store, [jobs[i] for i in todo]), strict=True):
            results[i] = res
            if bar:
                bar.update()
    elif workers <= 1:
        for i in todo:
            results[i] = _run_and_store(jobs[i])
            if bar:
                bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_run_and_store, jobs[i]): i for i in todo}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                if bar:
                    bar.update()
    if bar:
        bar.close()
    return results


# -- numerical error on random GEMMs ------------------------------------------------------------

def _random_bits(rng, fmt, shape):
    """Random finite normal patterns of ``fmt`` with exponents near 1 (no overflow)."""
    import numpy as np

    sign = rng.integers(0, 2, shape).astype(np.int64)
    exp = rng.integers(fmt.bias - 3, fmt.bias + 3, shape).astype(np.int64)
    frac = rng.integers(0, 1 << fmt.frac_bits, shape).astype(np.int64)
    return (sign << (fmt.width - 1)) | (exp << fmt.frac_bits) | frac


def _round_to(v, fmt):
    """float64 -> nearest value of ``fmt`` (ties to even; normal range assumed)."""
    import numpy as np

    mant, e = np.frexp(v)                         # v = mant * 2**e, 0.5 <= |mant| < 1
    scaled = np.ldexp(mant, fmt.frac_bits + 1)
    return np.ldexp(np.rint(scaled), e - fmt.frac_bits - 1)


def gemm_error(fmt_name: str, wbits: int, *, arith="exact", n=16, k=256, m=16,
               seed=0) -> float:
    """Relative RMS error against float64 of ``Y = X @ W.T`` on one random GEMM.

    ``arith``: ``"exact"`` (golden model: exact sum, one rounding) or ``"sequential"``
    (each product and each partial sum rounded to the format, as a floating-point MAC does)."""
    import numpy as np

    from contract import get_format
    from sw.fpbits import from_bits
    from sw.golden import gemm_golden

    fmt = get_format(fmt_name)
    rng = np.random.default_rng(seed)
    x_bits = _random_bits(rng, fmt, (n, k))
    codes = rng.integers(0, 1 << wbits, (m, k)).astype(np.int64)
    pmax = (1 << (wbits - 1)) - 1
    e0 = -(pmax // 2)
    x = from_bits(x_bits, fmt)
    s, p = codes >> (wbits - 1), codes & pmax
    w = np.where(s == 1, -1.0, 1.0) * np.exp2(e0 + p)
    ref = x @ w.T
    if arith == "exact":
        got = from_bits(gemm_golden(x_bits, codes, e0, in_fmt=fmt, wbits=wbits).numpy(), fmt)
    elif arith == "sequential":
        got = np.zeros((n, m))
        for kk in range(k):
            prod = _round_to(np.outer(x[:, kk], w[:, kk]), fmt)
            got = _round_to(got + prod, fmt)
    else:
        raise ValueError(f"arith must be 'exact' or 'sequential', not {arith!r}")
    return float(np.sqrt(np.mean((got - ref) ** 2)) / np.sqrt(np.mean(ref ** 2)))


def attach_error(results, *, seed=0) -> None:
    """Add ``gemm_rel_error`` to each result (shift array: exact; fp MACs: sequential)."""
    cache = {}
    for r in results:
        spec = r.get("spec", {})
        kind = spec.get("kind")
        if kind == "array":
            cfg = spec.get("config", {})
            key = (cfg.get("in_fmt", "fp16"), cfg.get("wbits", 3), "exact")
        elif kind in ("fp-mac", "shift-fpadd"):
            key = (spec.get("fmt", "fp16"), spec.get("wbits", 3), "sequential")
        else:
            r["gemm_rel_error"] = None
            continue
        if key not in cache:
            cache[key] = gemm_error(key[0], key[1], arith=key[2], seed=seed)
        r["gemm_rel_error"] = cache[key]


def pareto_front(points):
    """Indices of points ``(error, efficiency)`` not dominated (lower error, higher
    efficiency)."""
    front = []
    for i, (e, t) in enumerate(points):
        if not any((e2 <= e and t2 >= t) and (e2 < e or t2 > t) for e2, t2 in points):
            front.append(i)
    return front


def _efficiency(r):
    if r.get("board") == "asic":
        nand = r.get("nand2_per_mac")
        return (1e6 / nand) if nand else None, "MACs/cycle per million NAND2-eq"
    return r.get("mmacs_per_klut"), "MMAC/s per kLUT"


def plot_pareto(results, path) -> pathlib.Path:
    """Throughput per area vs GEMM error, one panel per device; Pareto front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for r in results:
        if r.get("error") or r.get("gemm_rel_error") is None:
            continue
        eff, label = _efficiency(r)
        if eff is None:
            continue
        groups.setdefault((r["board"], r["device"], label), []).append((r, eff))
    n = max(1, len(groups))
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4.2), squeeze=False)
    for ax, ((board, device, label), items) in zip(axes[0], sorted(groups.items()), strict=False):
        pts = [(r["gemm_rel_error"], eff) for r, eff in items]
        front = set(pareto_front(pts))
        for i, (r, eff) in enumerate(items):
            kind = r.get("kind", "?")
            marker = {"shift-array": "o", "fp-mac": "s", "shift-fpadd": "^"}.get(kind, "x")
            ax.scatter(r["gemm_rel_error"], eff, marker=marker,
                       edgecolors="k" if i in front else "none", s=50)
            ax.annotate(r["design"].split("_")[0] + "_" + "_".join(r["design"].split("_")[1:4]),
                        (r["gemm_rel_error"], eff), fontsize=6)
        fp = sorted(pts[i] for i in front)
        if fp:
            ax.plot([p[0] for p in fp], [p[1] for p in fp], "k--", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("relative RMS error vs float64 (random GEMM)")
        ax.set_ylabel(label)
        ax.set_title(f"{board} {device}")
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_sweep(results, root) -> dict:
    """``sweep.json``, ``sweep.md`` and ``pareto.png`` under ``root``."""
    root = pathlib.Path(root)
    ok = [r for r in results if not r.get("error")]
    write_atomic(root / "sweep.json", json.dumps(results, indent=2, sort_keys=True) + "\n")
    md = ["# Design-space sweep", "", f"{len(ok)} of {len(results)} points built "
          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).", "",
          markdown_table(ok + [], None) if ok else "(no successful point)", ""]
    errs = [r for r in results if r.get("error")]
    if errs:
        md += ["Failed points:", ""] + [f"- {r['spec']} on {r['board']}: {r['error']}"
                                        for r in errs] + [""]
    write_atomic(root / "sweep.md", "\n".join(md))
    png = plot_pareto(results, root / "pareto.png")
    return {"json": root / "sweep.json", "md": root / "sweep.md", "png": png}
