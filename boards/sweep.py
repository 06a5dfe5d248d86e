"""Design-space sweep: weight bits x format x array shape x device, with a Pareto plot.

Every point is a plain picklable job dict handed to :func:`boards.flow.run_job`;
:func:`run_jobs` runs the points not cached on an :class:`boards.executor.Executor`: local
processes (``workers``), or the workers of a Dask distributed scheduler
(``open_executor(scheduler="tcp://HOST:PORT")``). pytest-xdist can parametrise a test over
:func:`sweep_jobs` and call ``run_job`` in each.

Results are cached by the hash of (spec, board, device, seeds, target, mode, and the generator
sources' fingerprint) under ``build/sweep/<hash>/result.json``; a cached point is not rebuilt
unless ``force``. The cache is written by the process that calls :func:`run_jobs`: a job on a
remote executor builds in its worker's scratch folder (``<worker dir>/densehw/<hash>``, removed
with the worker), checks that the worker's generator sources give the same cache key as the
caller's, and returns its result by value.

Accuracy axis of the Pareto plot (:func:`attach_accuracy`, :func:`plot_axis`):

* ``digits`` (default of ``densehw sweep``): the test accuracy on scikit-learn's digits of a
  DenseShift CNN with the point's weight bits, compiled for ``ArrayConfig(in_fmt, wbits)`` and
  run through the array's golden model by the deployment path (``sw.deploy``, the ``make e2e``
  path; :func:`digits_accuracy` caches it under ``<root>/accuracy/``). Array shape does not
  change it. The MAC baselines have no trained model on their arithmetic, hence no task
  accuracy: they are drawn as efficiency lines and are not on the front.
* ``gemm-error``: the numerical error of each arithmetic against float64 on random GEMMs
  (:func:`gemm_error`): the relative RMS error of the outputs, with the same quantised
  activations and power-of-two weights given to both. The shift array rounds once (its error is
  the output rounding alone); the floating-point MAC baselines round every product and every
  partial sum. Added to every result in both modes.
"""

from __future__ import annotations

import functools
import json
import pathlib
import time

from boards import flow
from boards.report import markdown_table, write_atomic
from boards.specs import spec_hash

__all__ = ["sweep_jobs", "make_job", "run_jobs", "run_remote", "gemm_error", "pareto_front",
           "plot_pareto", "job_key",
           "generator_fingerprint", "GENERATOR_SOURCES", "attach_error", "attach_accuracy",
           "digits_accuracy", "accuracy_paths", "mark_pareto", "plot_axis", "write_sweep",
           "ACCURACY_AXES", "DEFAULT_ACCURACY_EPOCHS"]


#: Source files whose content decides what a job builds and measures, per design kind: the
#: generators, the contract they follow and the flow scripts. Part of every cache key, so that a
#: cached point is never reused after its RTL changed (and a baseline, which imports nothing
#: from ``hw``, is not rebuilt when only the shift array changed).
FLOW_SOURCES = ("boards/design.py", "boards/devices.py", "boards/errors.py", "boards/flow.py",
                "boards/harness.py", "boards/logs.py", "boards/specs.py", "boards/tools.py")
GENERATOR_SOURCES = {
    "array": ("contract/*.py", "hw/*.py", *FLOW_SOURCES),
    "dot": ("contract/*.py", "hw/*.py", *FLOW_SOURCES),
    "branch-array": ("contract/*.py", "hw/*.py", "hw/branches/*.py", *FLOW_SOURCES),
    "baseline": ("contract/*.py", "boards/baselines.py", "boards/fanout.py", "boards/fp*.py",
                 "boards/intmac.py", "boards/lutmul.py", "boards/mult18x18d.py", "hw/emit.py",
                 "hw/stages.py", *FLOW_SOURCES),
}


def generator_fingerprint(kind: str = "array") -> str:
    """Hash of the :data:`GENERATOR_SOURCES` of a design ``kind`` (paths and contents, sorted);
    the shift PE is built from ``hw`` like the array, the branch array from ``hw`` and
    ``hw/branches``; other kinds are baselines."""
    from contract.files import source_fingerprint

    group = kind if kind in GENERATOR_SOURCES else "array" if kind == "shift-pe" else "baseline"
    return source_fingerprint(GENERATOR_SOURCES[group])


def job_key(job: dict) -> str:
    """Cache key of a job: hash of everything that changes its result, the generator sources
    of its design kind included (:func:`generator_fingerprint`)."""
    keyed = {k: job.get(k) for k in ("spec", "board", "device", "seeds", "target_mhz",
                                     "explore", "pnr")}
    if job.get("pnr_timeout") is not None:       # a stopped seed depends on the limit
        keyed["pnr_timeout"] = job["pnr_timeout"]
    if job.get("router") is not None:            # (the default router keeps the old keys)
        keyed["router"] = job["router"]
    if job.get("blocks") is False:               # no per-block synthesis in the result
        keyed["blocks"] = False
    keyed["generator"] = generator_fingerprint((job.get("spec") or {}).get("kind", "array"))
    return spec_hash(keyed)


def sweep_jobs(*, wbits=(3,), formats=("fp16",), shapes=((4, 4),), devices=(("ice40", "up5k"),),
               depth=512, seeds=(1,), explore=True, root="build/sweep", baselines=False,
               pnr_timeout=None) -> list:
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
    return [make_job(spec, board, device, seeds=seeds, explore=explore, root=root,
                     pnr_timeout=pnr_timeout)
            for board, device in devices for spec in specs]


def make_job(spec: dict, board: str, device: str, *, seeds, explore: bool, root,
             pnr_timeout: float | None = None, router: str | None = None) -> dict:
    """The job dict of one point (place and route on FPGAs, default clock target, each seed
    stopped after ``pnr_timeout`` seconds if given, nextpnr's ``router`` if given), its work
    folder named by :func:`job_key` under ``root`` (the cache)."""
    job = {"spec": spec, "board": board, "device": device, "seeds": list(seeds),
           "target_mhz": None, "explore": explore, "pnr": board != "asic"}
    if pnr_timeout is not None:
        job["pnr_timeout"] = pnr_timeout
    if router is not None:
        job["router"] = router
    job["workdir"] = str(pathlib.Path(root) / job_key(job))
    return job


def _cached(job):
    path = pathlib.Path(job["workdir"]) / "result.json"
    if path.exists():
        res = json.loads(path.read_text())
        if not res.get("error"):
            return res
    return None


def _store(job: dict, res: dict) -> dict:
    """Write ``res`` as the cached result of ``job`` (with its key and spec); return it."""
    res["job_key"] = job_key(job)
    res["spec"] = job["spec"]
    folder = pathlib.Path(job["workdir"])
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "result.json", json.dumps(res, indent=2, sort_keys=True) + "\n")
    return res


def _run_and_store(job: dict, force: bool = False) -> dict:
    """:func:`boards.flow.run_job` plus the cache file (picklable, top level); unless
    ``force``, a point cached meanwhile (by another runner) is returned as is."""
    cached = None if force else _cached(job)
    if cached is not None:
        return cached
    return _store(job, flow.run_job(job))


def run_remote(job: dict) -> dict:
    """:func:`boards.flow.run_job` on a remote worker (picklable, top level): built in the
    worker's scratch folder, the result returned by value (the caller caches it). A worker
    whose sources give another cache key than the caller's (``job["job_key"]``) builds
    nothing and returns an ``error``."""
    import socket

    expected = job.get("job_key")
    here = job_key(job)
    host = socket.gethostname()
    if expected is not None and here != expected:
        return {"spec": job["spec"], "board": job["board"], "device": job.get("device"),
                "error": f"worker on {host} has other densehw sources than the caller (cache "
                         f"key {here[:12]} there, {expected[:12]} here): start the workers "
                         f"from the same commit"}
    try:
        from distributed import get_worker

        scratch = pathlib.Path(get_worker().local_directory)
    except (ImportError, ValueError):             # not inside a Dask worker
        import tempfile

        scratch = pathlib.Path(tempfile.gettempdir())
    res = flow.run_job({**job, "workdir": str(scratch / "densehw" / here)})
    res["worker"] = host
    return res


def run_jobs(jobs, *, workers=1, executor=None, force=False, progress=True) -> list:
    """Run the jobs not in the cache; return all results in job order.

    ``executor`` (:mod:`boards.executor`) runs them, else ``workers`` local processes. On a
    remote executor the results come back by value and are cached here (:func:`run_remote`);
    locally each worker writes its own cache file."""
    from boards.executor import LocalExecutor

    results = [None if force else _cached(j) for j in jobs]
    todo = [i for i, r in enumerate(results) if r is None]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="design",
                   desc="synth", dynamic_ncols=True)
    own = executor is None
    ex = LocalExecutor(workers=workers) if own else executor
    try:
        if ex.remote:
            items = [{**jobs[i], "job_key": job_key(jobs[i])} for i in todo]
            for k, res in ex.run(run_remote, items):
                results[todo[k]] = _store(jobs[todo[k]], res)
                if bar:
                    bar.update()
        else:
            run = functools.partial(_run_and_store, force=force)
            for k, res in ex.run(run, [jobs[i] for i in todo]):
                results[todo[k]] = res
                if bar:
                    bar.update()
    finally:
        if own:
            ex.close()
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


# -- task accuracy: a DenseShift model trained on digits, run through the golden model ---------

#: Accuracy axes of a sweep: ``digits`` (task accuracy, :func:`digits_accuracy`) or
#: ``gemm-error`` (:func:`gemm_error` only).
ACCURACY_AXES = ("digits", "gemm-error")

#: Training epochs of the digits model behind the accuracy axis (``make e2e`` uses 40).
DEFAULT_ACCURACY_EPOCHS = 40

#: Sources that decide a trained export (model, quantiser, training loop, data split, export
#: encoding, the table's hyper-parameters); an export trained under other sources is retrained.
TRAIN_SOURCES = ("sw/data.py", "sw/deploy.py", "sw/experiments.py", "sw/export.py",
                 "sw/layers.py", "sw/models.py", "sw/quant.py", "sw/train.py",
                 "contract/weights.py")
#: Sources that decide an accuracy record (training, compiler, runtime, golden model, formats,
#: this file).
ACCURACY_SOURCES = ("contract/*.py", "sw/*.py", "boards/sweep.py")


def _fingerprint(patterns) -> str:
    import hashlib

    root = pathlib.Path(__file__).resolve().parent.parent
    digest = hashlib.sha1()
    for path in sorted({p for pattern in patterns for p in root.glob(pattern)}):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def accuracy_paths(fmt_name: str, wbits: int, *, epochs: int = DEFAULT_ACCURACY_EPOCHS,
                   seed: int = 0, root="build/sweep") -> dict:
    """Where :func:`digits_accuracy` keeps its files: ``json`` (the record of one format) and
    ``export`` (the trained model, shared by every format of the same ``wbits``)."""
    folder = pathlib.Path(root) / "accuracy"
    return {"json": folder / f"digits_{fmt_name}_b{wbits}_e{epochs}_s{seed}.json",
            "export": folder / f"digits_b{wbits}_e{epochs}_s{seed}.dshw"}


def _train_digits(wbits: int, epochs: int, seed: int, path, sources: str) -> dict:
    """Train and export through the deployment path (:func:`sw.deploy.export_digits`, as
    ``densehw train digits --method denseshift --export`` does), marking the export with the
    training sources."""
    from sw.deploy import export_digits

    return export_digits(path, wbits=wbits, epochs=epochs, seed=seed,
                         meta={"train_sources": sources})


def _usable_export(path, wbits, epochs, seed, sources):
    """The export at ``path`` if it was trained with these settings and sources, else None."""
    from sw.export import ExportError, load

    if not pathlib.Path(path).is_file():
        return None
    try:
        exp = load(path)
    except (ExportError, OSError):
        return None
    meta = exp.meta or {}
    train_cfg = meta.get("train") or {}
    ok = (meta.get("train_sources") == sources and meta.get("seed") == seed
          and train_cfg.get("epochs") == epochs
          and all(rec.wbits == wbits for rec in exp.layers.values()))
    return exp if ok else None


def digits_accuracy(fmt_name: str, wbits: int, *, epochs: int = DEFAULT_ACCURACY_EPOCHS,
                    seed: int = 0, root="build/sweep", force: bool = False) -> dict:
    """Test accuracy (percent) on scikit-learn's digits of a DenseShift CNN with ``wbits``-bit
    weights, compiled for ``ArrayConfig(in_fmt=fmt_name, wbits=wbits)`` and run through the
    array's golden model: the path of ``make e2e`` (``densehw train digits --method denseshift``,
    ``densehw compile``, ``densehw run --backend golden``), through the Python APIs.

    Cached as JSON (:func:`accuracy_paths`, ``<root>/accuracy/``): a record made under the same
    :data:`ACCURACY_SOURCES` is returned as is (``cached: True``) unless ``force``. The trained
    export is shared by all formats of one ``wbits`` and retrained only when missing, made with
    other settings, or made under other :data:`TRAIN_SOURCES` (or with ``force``).

    The record: ``task``, ``fmt``, ``wbits``, ``epochs``, ``seed``, ``export`` (path),
    ``trained`` (whether this call trained), ``train_seconds``, ``config`` (the ArrayConfig),
    ``samples`` (test images), ``golden_accuracy``, ``torch_accuracy`` (the float PyTorch
    model rebuilt from the export), ``agreement`` (fraction of equal predictions), ``val_acc``,
    ``nonfinite_array_outputs`` (inf/NaN patterns the array steps produced: overflow of the
    format), ``seconds`` (this computation, training included), ``sources`` (fingerprint)."""
    from contract import check_wbits, get_format
    from contract.array import ArrayConfig
    from contract.files import write_atomic as write_file

    fmt = get_format(fmt_name)
    check_wbits(wbits)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, not {epochs!r}")
    paths = accuracy_paths(fmt.name, wbits, epochs=epochs, seed=seed, root=root)
    sources = _fingerprint(ACCURACY_SOURCES)
    if not force and paths["json"].is_file():
        try:
            rec = json.loads(paths["json"].read_text())
        except (OSError, ValueError):
            rec = None
        if isinstance(rec, dict) and rec.get("sources") == sources:
            return {**rec, "cached": True}

    from sw.deploy import digits_accuracy as deployed_accuracy

    start = time.perf_counter()
    train_sources = _fingerprint(TRAIN_SOURCES)
    exp = None if force else _usable_export(paths["export"], wbits, epochs, seed, train_sources)
    trained = exp is None
    if trained:
        _train_digits(wbits, epochs, seed, paths["export"], train_sources)
        exp = _usable_export(paths["export"], wbits, epochs, seed, train_sources)
        if exp is None:
            raise RuntimeError(f"training wrote no usable export at {paths['export']}")
    e0s = [rec.e0 for rec in exp.layers.values()]
    base = ArrayConfig()
    config = ArrayConfig(in_fmt=fmt, wbits=wbits, e0_min=min([base.e0_min, *e0s]),
                         e0_max=max([base.e0_max, *e0s]))
    run = deployed_accuracy(paths["export"], config)
    rec = {"task": "digits", "fmt": fmt.name, "wbits": wbits, "epochs": epochs, "seed": seed,
           "method": "denseshift", "export": str(paths["export"]), "trained": trained,
           "train_seconds": round(float(exp.meta.get("train_seconds") or 0.0), 2),
           "config": config.to_dict(), "config_name": config.name, "samples": run["samples"],
           "golden_accuracy": run["golden_accuracy"], "torch_accuracy": run["torch_accuracy"],
           "agreement": run["agreement"], "val_acc": exp.meta.get("val_acc"),
           "nonfinite_array_outputs": run["nonfinite_array_outputs"],
           "seconds": round(time.perf_counter() - start, 2), "sources": sources,
           "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    write_file(paths["json"], json.dumps(rec, indent=2, sort_keys=True) + "\n",
               make_parents=True)
    return {**rec, "cached": False}


def attach_accuracy(results, *, axis="digits", epochs=DEFAULT_ACCURACY_EPOCHS, seed=0,
                    root="build/sweep", progress=None) -> list:
    """Add the accuracy axis to each result: ``accuracy_axis`` and, for ``axis="digits"``,
    ``task_accuracy`` (golden-model digits accuracy, percent; :func:`digits_accuracy` of the
    point's format and weight bits), ``task_accuracy_torch`` and ``task_accuracy_file``.
    Baselines (no trained model on their arithmetic) get ``task_accuracy`` None and a
    ``task_accuracy_note``. ``gemm_rel_error`` (:func:`attach_error`) is added in both modes.
    A point whose accuracy could not be computed gets ``task_accuracy`` None and the reason in
    ``task_accuracy_error``. ``progress(text)`` is called before each computation. Returns the
    accuracy records used."""
    if axis not in ACCURACY_AXES:
        raise ValueError(f"accuracy axis must be one of {', '.join(ACCURACY_AXES)}, not "
                         f"{axis!r}")
    attach_error(results)
    records, failed = {}, {}
    for r in results:
        r["accuracy_axis"] = axis
        if axis != "digits" or r.get("error"):
            continue
        spec = r.get("spec", {})
        if spec.get("kind") != "array":
            r["task_accuracy"] = None
            r["task_accuracy_note"] = "baseline arithmetic: no trained model, no task accuracy"
            continue
        cfg = spec.get("config", {})
        key = (_fmt_name(cfg.get("in_fmt", "fp16")), int(cfg.get("wbits", 3)))
        if key not in records and key not in failed:
            if progress is not None:
                progress(f"digits accuracy {key[0]} B={key[1]} ({epochs} epochs, seed {seed})")
            try:
                records[key] = digits_accuracy(key[0], key[1], epochs=epochs, seed=seed,
                                               root=root)
            except (ValueError, RuntimeError, OSError) as exc:
                failed[key] = str(exc)
        if key in failed:
            r["task_accuracy"] = None
            r["task_accuracy_error"] = failed[key]
            continue
        rec = records[key]
        r["task_accuracy"] = rec["golden_accuracy"]
        r["task_accuracy_torch"] = rec["torch_accuracy"]
        r["task_accuracy_file"] = str(accuracy_paths(key[0], key[1], epochs=epochs, seed=seed,
                                                     root=root)["json"])
    return [dict(v, file=str(accuracy_paths(k[0], k[1], epochs=epochs, seed=seed,
                                            root=root)["json"]))
            for k, v in records.items()] + [
        {"fmt": k[0], "wbits": k[1], "error": v} for k, v in failed.items()]


def _fmt_name(fmt) -> str:
    """A format name from a name or a serialised format dict (``{"name": ...}``)."""
    return fmt.get("name") if isinstance(fmt, dict) else str(fmt)


def pareto_front(points, *, higher_x_better=False):
    """Indices of points ``(x, efficiency)`` not dominated: higher efficiency is better, and
    lower ``x`` (an error) or, with ``higher_x_better``, higher ``x`` (an accuracy)."""
    sign = -1 if higher_x_better else 1
    pts = [(sign * x, t) for x, t in points]
    front = []
    for i, (e, t) in enumerate(pts):
        if not any((e2 <= e and t2 >= t) and (e2 < e or t2 > t) for e2, t2 in pts):
            front.append(i)
    return front


def _efficiency(r):
    if r.get("board") == "asic":
        nand = r.get("nand2_per_mac")
        return (1e6 / nand) if nand else None, "MACs/cycle per million NAND2-eq"
    return r.get("mmacs_per_klut"), "MMAC/s per kLUT"


def plot_axis(results) -> str:
    """``"digits"`` when some result has a task accuracy (:func:`attach_accuracy`), else
    ``"gemm-error"``."""
    return "digits" if any(r.get("task_accuracy") is not None for r in results) else \
        "gemm-error"


#: x-axis labels of :func:`plot_pareto`, by :func:`plot_axis`.
AXIS_LABELS = {
    "digits": "digits test accuracy (%), DenseShift CNN on the array's golden model "
              "(higher is better)",
    "gemm-error": "relative RMS error vs float64, random GEMM (lower is better)",
}


def _x(r, axis):
    return r.get("task_accuracy") if axis == "digits" else r.get("gemm_rel_error")


def _groups(results, axis):
    """``{(board, device, efficiency label): [(result, efficiency), ...]}`` of the points with
    an x value on ``axis``, and ``{same key: [...]}`` of the built points without one."""
    on, off = {}, {}
    for r in results:
        if r.get("error"):
            continue
        eff, label = _efficiency(r)
        if eff is None:
            continue
        key = (r["board"], r["device"], label)
        (on if _x(r, axis) is not None else off).setdefault(key, []).append((r, eff))
    return on, off


def mark_pareto(results, axis=None) -> str:
    """Set ``pareto_front`` (bool) on every point with an x value on ``axis`` (default
    :func:`plot_axis`) and an efficiency, per board and device; return the axis."""
    axis = axis or plot_axis(results)
    for r in results:
        r.pop("pareto_front", None)
    on, _ = _groups(results, axis)
    for items in on.values():
        front = set(pareto_front([(_x(r, axis), eff) for r, eff in items],
                                 higher_x_better=axis == "digits"))
        for i, (r, _eff) in enumerate(items):
            r["pareto_front"] = i in front
    return axis


def _short(design):
    parts = design.split("_")
    return parts[0] + "_" + "_".join(parts[1:4])


def plot_pareto(results, path, *, axis=None) -> pathlib.Path:
    """Throughput per area vs accuracy, one panel per device; Pareto front marked.

    ``axis`` (default :func:`plot_axis`): ``"digits"`` puts the golden-model digits accuracy
    on x (shift arrays only; each baseline, which has no task accuracy, is drawn as a
    horizontal dotted line at its efficiency and labelled so, outside the front);
    ``"gemm-error"`` the relative error of a random GEMM (log scale), baselines included."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axis = axis or plot_axis(results)
    if axis not in ACCURACY_AXES:
        raise ValueError(f"axis must be one of {', '.join(ACCURACY_AXES)}, not {axis!r}")
    on, off = _groups(results, axis)
    keys = sorted(set(on) | (set(off) if axis == "digits" else set()))
    n = max(1, len(keys))
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):
        board, device, label = key
        items = on.get(key, [])
        pts = [(_x(r, axis), eff) for r, eff in items]
        front = set(pareto_front(pts, higher_x_better=axis == "digits"))
        for i, (r, eff) in enumerate(items):
            marker = {"shift-array": "o", "fp-mac": "s", "shift-fpadd": "^"}.get(
                r.get("kind", "?"), "x")
            ax.scatter(_x(r, axis), eff, marker=marker,
                       edgecolors="k" if i in front else "none", s=50)
            ax.annotate(_short(r["design"]), (_x(r, axis), eff), fontsize=6)
        fp = sorted(pts[i] for i in front)
        if fp:
            ax.plot([p[0] for p in fp], [p[1] for p in fp], "k--", lw=0.8)
        if axis == "digits":
            for r, eff in off.get(key, []):
                ax.axhline(eff, ls=":", lw=0.9, color="gray")
                ax.annotate(f"{_short(r['design'])}: no task accuracy (efficiency only)",
                            (0.01, eff), xycoords=("axes fraction", "data"), fontsize=6,
                            color="dimgray", va="bottom")
        else:
            ax.set_xscale("log")
        ax.set_xlabel(AXIS_LABELS[axis], fontsize=8)
        ax.set_ylabel(label)
        ax.set_title(f"{board} {device}")
        ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, path)


#: Columns of ``sweep.md`` after :data:`boards.report.COLUMNS`.
ACCURACY_COLUMNS = [("GEMM rel. error", "gemm_rel_error", "{:.2e}"),
                    ("digits % (golden)", "task_accuracy", "{:.2f}"),
                    ("Pareto", "pareto", "{}")]


def write_sweep(results, root, *, accuracy=None) -> dict:
    """``sweep.json``, ``sweep.md`` and ``pareto.png`` under ``root``. ``accuracy``: the
    records :func:`attach_accuracy` returned (listed in ``sweep.md``)."""
    from boards.report import COLUMNS

    root = pathlib.Path(root)
    axis = mark_pareto(results)
    ok = [r for r in results if not r.get("error")]
    write_atomic(root / "sweep.json", json.dumps(results, indent=2, sort_keys=True) + "\n")
    rows = [dict(r, pareto="yes" if r.get("pareto_front") else None) for r in ok]
    md = ["# Design-space sweep", "", f"{len(ok)} of {len(results)} points built "
          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).", "",
          markdown_table(rows, COLUMNS + ACCURACY_COLUMNS).rstrip("\n") if ok
          else "(no successful point)",
          "", f"Pareto axis: efficiency vs {AXIS_LABELS[axis]}.", ""]
    if axis == "digits":
        md += ["Baselines (fp-mac, int8-mac, ...) have no trained model on their arithmetic: no "
               "task accuracy, not on the front (their GEMM error is in the table).", ""]
    if accuracy:
        md += ["## Digits accuracy (golden model of the array)", "",
               "| format | B | golden % | PyTorch % | agreement | epochs | seed | test images "
               "| train s | record |", "|---|---|---|---|---|---|---|---|---|---|"]
        for a in accuracy:
            if a.get("error"):
                md.append(f"| {a['fmt']} | {a['wbits']} | failed: {a['error']} | | | | | | | |")
                continue
            md.append(f"| {a['fmt']} | {a['wbits']} | {a['golden_accuracy']:.2f} | "
                      f"{a['torch_accuracy']:.2f} | {100 * a['agreement']:.2f} % | "
                      f"{a['epochs']} | {a['seed']} | {a['samples']} | {a['train_seconds']:.1f} "
                      f"| `{a.get('file', '')}` |")
        md.append("")
    errs = [r for r in results if r.get("error")]
    if errs:
        md += ["Failed points:", ""] + [f"- {r['spec']} on {r['board']}: {r['error']}"
                                        for r in errs] + [""]
    write_atomic(root / "sweep.md", "\n".join(md))
    png = plot_pareto(results, root / "pareto.png", axis=axis)
    return {"json": root / "sweep.json", "md": root / "sweep.md", "png": png}


def save_figure(fig, path) -> pathlib.Path:
    """Lay out ``fig``, write it to ``path`` (its folder created) at 120 dpi and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
