# amaranth: UnusedElaboratable=no
"""The design-space sweep (``boards.sweep``): jobs, cache keys, Pareto front, GEMM error axis."""

import json
import pathlib

import pytest


def test_sweep_cache_key_holds_the_pnr_timeout():
    from boards.sweep import job_key, make_job

    spec = {"kind": "int8-mac", "rows": 1, "cols": 1}
    plain = make_job(spec, "ice40", "up5k", seeds=(1,), explore=True, root="build/x")
    short = make_job(spec, "ice40", "up5k", seeds=(1,), explore=True, root="build/x",
                     pnr_timeout=60)
    assert "pnr_timeout" not in plain and short["pnr_timeout"] == 60
    assert job_key(plain) != job_key(short) != job_key({**short, "pnr_timeout": 120})


def test_sweep_jobs_cache_and_pareto(tmp_path):
    from boards import sweep

    jobs = sweep.sweep_jobs(wbits=(2, 3), formats=("fp16",), shapes=((2, 2),),
                            devices=(("ice40", "up5k"), ("asic", "generic")),
                            root=str(tmp_path), baselines=True)
    kinds = sorted(j["spec"]["kind"] for j in jobs)
    assert kinds.count("array") == 4 and kinds.count("fp-mac") == 2 and kinds.count(
        "int8-mac") == 2
    assert len({j["workdir"] for j in jobs}) == len(jobs)            # distinct cache keys
    assert all(j["pnr"] is (j["board"] != "asic") for j in jobs)
    # a cached point is returned without running anything (the executor would fail)
    for j in jobs:
        pathlib.Path(j["workdir"]).mkdir(parents=True)
        (pathlib.Path(j["workdir"]) / "result.json").write_text(json.dumps({"cached": j["board"]}))

    from boards.executor import LocalExecutor

    class NoRun(LocalExecutor):
        def run(self, fn, items):
            assert not list(items), "cached jobs were run again"
            return iter(())
    res = sweep.run_jobs(jobs, executor=NoRun(), progress=False)
    assert [r["cached"] for r in res] == [j["board"] for j in jobs]
    assert sweep.pareto_front([(1.0, 10.0), (0.5, 5.0), (2.0, 8.0), (0.5, 4.0)]) == [0, 1]


def test_cache_key_follows_the_generator_sources(monkeypatch):
    """A change of the RTL generator (or the contract, or the flow) gives new cache keys, so a
    sweep or bench never reports a cached point measured on other RTL."""
    from boards import sweep

    jobs = sweep.sweep_jobs(shapes=((2, 2),), root="build/never", baselines=True)
    array = next(j for j in jobs if j["spec"]["kind"] == "array")
    base = next(j for j in jobs if j["spec"]["kind"] == "fp-mac")
    first, first_base = sweep.job_key(array), sweep.job_key(base)
    assert sweep.job_key(dict(array)) == first                      # stable
    real = sweep.generator_fingerprint
    monkeypatch.setattr(sweep, "generator_fingerprint", lambda kind="array": "other-rtl")
    assert sweep.job_key(array) != first
    assert sweep.job_key(base) != first_base
    # the shift array's sources (hw/) are not a baseline's: only array keys follow them
    assert "hw/*.py" in sweep.GENERATOR_SOURCES["array"]
    assert "hw/*.py" not in sweep.GENERATOR_SOURCES["baseline"]
    assert "hw/branches/*.py" in sweep.GENERATOR_SOURCES["branch-array"]
    assert real("shift-pe") == real("array") != real("branch-array")
    monkeypatch.setattr(sweep, "generator_fingerprint",
                        lambda kind="array": "new-hw" if kind == "array" else real(kind))
    assert sweep.job_key(array) != first
    assert sweep.job_key(base) == first_base


def test_gemm_error_orders_exact_below_sequential():
    from boards.sweep import gemm_error

    exact = gemm_error("fp16", 3, k=64, seed=1)
    seq = gemm_error("fp16", 3, arith="sequential", k=64, seed=1)
    assert 0 < exact < 2.0 ** -11          # one rounding: at most half an ulp relative
    assert seq > exact
    with pytest.raises(ValueError, match="arith must be"):
        gemm_error("fp16", 3, arith="other")


def test_baseline_key_covers_its_sources():
    """Every module of the project that building a baseline imports is among the baseline's
    generator sources, so a change to it invalidates the cached points."""
    import fnmatch
    import os
    import subprocess
    import sys

    from boards import sweep

    root = pathlib.Path(__file__).resolve().parents[1]
    code = ("import sys, boards.baselines, boards.fpmac, boards.intmac, boards.specs\n"
            "print('\\n'.join(sorted(m.__file__ for m in list(sys.modules.values())\n"
            "                        if getattr(m, '__file__', None))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(root)})
    patterns = sweep.GENERATOR_SOURCES["baseline"]
    used = [pathlib.Path(f).resolve().relative_to(root).as_posix() for f in out.stdout.split()
            if pathlib.Path(f).resolve().is_relative_to(root)]
    used = [f for f in used if f.split("/")[0] in ("boards", "hw", "contract")
            and not f.endswith("__init__.py")]
    assert "boards/fpmac.py" in used
    missing = [f for f in used if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert not missing, f"baseline sources not in the cache key: {missing}"
