# amaranth: UnusedElaboratable=no
"""Running jobs on local processes or a Dask cluster (``boards.executor``, ``run_jobs``): a real
``distributed.LocalCluster`` of two worker processes on 127.0.0.1 gives the local results."""

import faulthandler
import json
import operator
import pathlib

import pytest

distributed = pytest.importorskip("distributed")


#: Seconds a test of this file may take before the test process is stopped with a traceback
#: (a cluster that hangs must not hold up the suite).
LIMIT = 300


@pytest.fixture(autouse=True)
def _bounded():
    faulthandler.dump_traceback_later(LIMIT, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes (one thread each) and their scheduler on the loopback address."""
    faulthandler.dump_traceback_later(LIMIT, exit=True)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0") as cl:
        faulthandler.cancel_dump_traceback_later()
        yield cl


#: The compared fields of a generic-gate ASIC synthesis (timings excluded).
RESULT_FIELDS = ("design", "kind", "config", "macs_per_cycle", "cells", "gates", "ffs",
                 "nand2_eq", "logic_depth", "memory_bits", "error", "rtl_fingerprint")


def _measured(res):
    """What a result measured: :data:`RESULT_FIELDS` and the blocks (without run times)."""
    out = {k: res.get(k) for k in RESULT_FIELDS}
    out["breakdown"] = {k: v for k, v in res["breakdown"].items() if k != "seconds"}
    return out


def test_executors_agree_on_a_plain_function(cluster):
    from boards.executor import DaskExecutor, LocalExecutor, open_executor

    items = list(range(-5, 7))
    expect = [operator.neg(i) for i in items]
    for ex in (LocalExecutor(workers=1), LocalExecutor(workers=2),
               open_executor(scheduler=cluster.scheduler_address)):
        with ex:
            got = dict(ex.run(operator.neg, items))
            assert [got[i] for i in range(len(items))] == expect, ex.describe()
            assert list(ex.run(operator.neg, [])) == []
            if isinstance(ex, DaskExecutor):
                assert ex.remote and ex.width == 2
                assert "2 workers" in ex.describe()


def test_dask_synthesis_matches_local_and_caches_here(cluster, tmp_path):
    """Real Yosys synthesis jobs (int8 MACs, generic ASIC gates) on the cluster: the results
    equal the local run's, come back by value and are cached by the caller."""
    from boards.executor import LocalExecutor, open_executor
    from boards.sweep import make_job, run_jobs

    specs = [{"kind": "int8-mac", "rows": 1, "cols": 1},
             {"kind": "int8-mac", "rows": 1, "cols": 2}]
    remote_jobs = [make_job(s, "asic", "generic", seeds=(), explore=True,
                            root=tmp_path / "dask") for s in specs]
    local_jobs = [make_job(s, "asic", "generic", seeds=(), explore=True,
                           root=tmp_path / "local") for s in specs]
    with open_executor(scheduler=cluster.scheduler_address) as ex:
        remote = run_jobs(remote_jobs, executor=ex, progress=False)
    local = run_jobs(local_jobs, executor=LocalExecutor(workers=1), progress=False)
    for r, lo in zip(remote, local, strict=True):
        assert not r.get("error"), r.get("error")
        assert r["gates"] > 0 and r["worker"]
        assert _measured(r) == _measured(lo)
        assert r["breakdown"]["blocks"] and r["cells"]
        assert r["job_key"] == lo["job_key"]
    assert remote[1]["gates"] > remote[0]["gates"]
    for job, r in zip(remote_jobs, remote, strict=True):
        # built on the worker, cached here: the caller's folder holds only the result
        folder = pathlib.Path(job["workdir"])
        assert sorted(p.name for p in folder.iterdir()) == ["result.json"]
        assert json.loads((folder / "result.json").read_text())["gates"] == r["gates"]

    class Refuses(LocalExecutor):
        def run(self, fn, items):
            assert not list(items), "cached jobs were run again"
            return iter(())
    again = run_jobs(remote_jobs, executor=Refuses(), progress=False)
    assert [a["gates"] for a in again] == [r["gates"] for r in remote]


def test_worker_with_other_sources_builds_nothing(tmp_path):
    from boards.sweep import make_job, run_remote

    job = make_job({"kind": "int8-mac", "rows": 1, "cols": 1}, "asic", "generic", seeds=(),
                   explore=True, root=tmp_path)
    res = run_remote({**job, "job_key": "0" * 64})
    assert "other densehw sources than the caller" in res["error"]
    assert "same commit" in res["error"]


@pytest.mark.parametrize("address, msg", [
    ("foo:8786", "must look like tcp://HOST:PORT, not 'foo:8786'"),
    ("tcp://127.0.0.1:1", "no Dask scheduler answers at tcp://127.0.0.1:1 within 2 s"),
])
def test_sweep_bad_scheduler_is_one_line_exit_2(address, msg, tmp_path, capsys, monkeypatch):
    from boards import executor
    from densehw.cli import main

    monkeypatch.setattr(executor, "CONNECT_TIMEOUT", 2.0)
    out = tmp_path / "sweep"
    rc = main(["sweep", "--scheduler", address, "--shapes", "1x1", "--devices", "asic",
               "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and msg in err and "--scheduler" in err, err
    assert not out.exists()


def test_local_executor_rejects_bad_workers():
    from boards.executor import LocalExecutor

    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers must be a positive integer"):
            LocalExecutor(workers=bad)


def test_scheduler_without_workers_is_an_error():
    from boards.executor import SchedulerError, open_executor

    with distributed.LocalCluster(n_workers=0, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as empty:
        with pytest.raises(SchedulerError, match="has no workers .*dask worker tcp://"):
            open_executor(scheduler=empty.scheduler_address, timeout=2)


def test_run_side_by_side_keeps_order_and_overlaps():
    import threading
    import time

    from boards.executor import run_side_by_side

    both = threading.Barrier(2, timeout=30)      # breaks unless two tasks run at once

    def task(i):
        def run():
            if i < 2:
                both.wait()
            time.sleep(0.01 * (5 - i))
            return i * i
        return run
    assert run_side_by_side([task(i) for i in range(5)], 2) == [0, 1, 4, 9, 16]
    assert run_side_by_side([task(i) for i in range(2, 5)], 1) == [4, 9, 16]


@pytest.mark.parametrize("module, argv", [
    ("benchmarks.bench_hw", ["--devices", "25f", "--designs", "shift", "--no-pes"]),
    ("boards.bench", ["--sizes", "1x1", "--boards", "asic"]),
])
def test_benches_bad_scheduler_exit_2(module, argv, tmp_path, capsys):
    import importlib
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    main = importlib.import_module(module).main
    assert main([*argv, "--scheduler", "localhost:8786", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tcp://HOST:PORT" in err, err
    assert not (tmp_path / "o").exists()


def test_bench_hw_runs_its_searches_side_by_side(monkeypatch, tmp_path):
    """``bench_hw --jobs 2``: every search gets the shared executor, two run at once, and the
    records keep the order of the devices and designs."""
    import importlib
    import sys
    import threading

    root = pathlib.Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    bench_hw = importlib.import_module("benchmarks.bench_hw")
    from boards.executor import LocalExecutor

    seen, threads = [], set()
    both = threading.Barrier(2, timeout=30)      # breaks unless two searches run at once
    lock = threading.Lock()

    def run_jobs(jobs, *, executor=None, **_):
        assert isinstance(executor, LocalExecutor) and executor.width == 2
        with lock:
            first = threading.get_ident() not in threads and len(threads) < 2
            seen.append(executor)
            threads.add(threading.get_ident())
        if first:
            both.wait()
        out = []
        for job in jobs:
            cfg = job["spec"].get("config", job["spec"])
            n = cfg["rows"] * cfg["cols"]
            res = {"spec": job["spec"], "luts": 1000 + 300 * n, "ffs": 10 * n, "carries": 0,
                   "dsps": 0, "brams": 0, "macs_per_cycle": n, "seeds": job["seeds"],
                   "seconds": 1.0, "commit": "abc1234"}
            if job["pnr"]:
                res.update(fmax_mhz=100.0, gmacs=n / 10, pnr_error=None)
            out.append(res)
        return out

    monkeypatch.setattr(bench_hw, "run_jobs", run_jobs)
    rc = bench_hw.main(["--devices", "25f", "--designs", "shift,int8-lut,naive", "--no-pes",
                        "--jobs", "2", "--out", str(tmp_path)])
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert rc == 0 and [r["design"] for r in doc["records"]] == ["shift", "int8-lut", "naive"]
    assert len({id(e) for e in seen}) == 1 and len(threads) == 2
