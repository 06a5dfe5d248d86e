"""``make sim``'s plan and its PE-array part (:mod:`sim.run`, :mod:`sim.array_regress`)."""

from __future__ import annotations

import argparse
import shutil

import numpy as np
import pytest

from contract.array import ArrayConfig
from sim import array_regress, run
from sim.array_driver import stall_triple
from sim.array_regress import CATEGORIES, ArrayJob, job_layers, run_job

needs_verilator = pytest.mark.skipif(shutil.which("verilator") is None,
                                     reason="verilator not installed")

SMALL = ArrayConfig(in_fmt="fp16", wbits=3, rows=2, cols=3, depth=32)   # as test_sim_array


def test_array_plan_covers_formats_wbits_and_a_wide_array():
    jobs = run.array_plan("verilator")
    cfgs = [j.config for j in jobs]
    assert cfgs[0] == ArrayConfig()                                   # the default 4x4
    fmts = {c.in_fmt.name for c in cfgs} | {c.out_fmt.name for c in cfgs}
    assert fmts == {"fp16", "bf16", "fp32", "fp8_e5m2"}
    assert {c.in_fmt.name for c in cfgs} == {"fp16", "bf16", "fp32", "fp8_e5m2"}
    assert {c.wbits for c in cfgs} == {2, 3, 4, 5}
    assert any(c.cols > 4 and c.floorplan == "spread" for c in cfgs)
    assert {c.pipeline for c in cfgs} == {1, 2}
    assert all(j.resets >= 2 and j.random >= 20 and j.error_path for j in jobs)
    assert run.array_plan("icarus") and run.array_plan("verilator", quick=True)


def test_job_layers_cover_every_category_and_stream_stall():
    job = ArrayJob(ArrayConfig(), random=40, resets=3, full=1)
    entries = job_layers(job, seed=1)
    assert [c for c, _ in entries[:2]] == ["error path"] * 2
    assert {c for c, _ in entries} == set(CATEGORIES)
    assert [layer.merge_frames for _, layer in entries[:2]] == ["act", "wgt"]
    cut = [i for i, (_, layer) in enumerate(entries) if layer.abort_after]
    assert len(cut) == 3
    for i in cut:                     # a reset is followed by a layer that is checked
        assert entries[i + 1][0] == "reset mid-layer" and not entries[i + 1][1].abort_after
    stalls = np.array([stall_triple(layer.stall) for _, layer in entries])
    for stream in range(3):           # 0 and 90 % on each stream, and levels between
        assert stalls[:, stream].min() == 0 and stalls[:, stream].max() == 0.9
        assert len(set(stalls[:, stream])) >= 5
    shapes = [layer.shape for _, layer in entries]
    assert any(k == job.config.depth for _, k, _ in shapes)
    assert any(n % job.config.rows and m % job.config.cols for n, _, m in shapes)  # ragged
    assert any(layer.per_channel for _, layer in entries)
    assert any(not layer.per_channel for _, layer in entries)
    assert any(layer.bias_bits is not None for _, layer in entries)
    assert any(layer.relu for _, layer in entries)
    # the same seed gives the same layers
    again = job_layers(job, seed=1)
    assert all(np.array_equal(a.x_bits, b.x_bits) and a.stall == b.stall
               for (_, a), (_, b) in zip(entries, again, strict=True))


def test_stall_triple():
    assert stall_triple(0.5) == (0.5, 0.5, 0.5)
    assert stall_triple((0, 0.9, 0.1)) == (0.0, 0.9, 0.1)
    for bad in (0.95, (0.1, 0.2), (0.1, 0.2, -0.1), "x"):
        with pytest.raises(ValueError, match="stall must be"):
            stall_triple(bad)


def test_jobs_must_be_positive(capsys):
    args = argparse.Namespace(sim="verilator", waves=False, quick=True, seed=1, jobs=0,
                              config=None)
    assert run.run(args) == 2
    assert "--jobs must be at least 1, not 0" in capsys.readouterr().err


@needs_verilator
def test_array_job_runs_and_its_check_can_fail(monkeypatch):
    """A small job passes with one row per category; the same run with one golden bit
    flipped fails the row of that layer with one mismatch (the comparison is live)."""
    job = ArrayJob(SMALL, random=3, resets=1, full=1, kmax=12)
    rows, result = run_job(job, "verilator", seed=3, tag="sim-run-test", echo=lambda s: None)
    assert result["passed"], result
    assert [r[-1] for r in rows] == ["ok"] * len(rows)
    assert len(rows) == len(CATEGORIES)
    assert result["outputs"] == sum(r[2] for r in rows) > 0 and result["mismatches"] == 0

    real = array_regress.golden
    calls = []

    def flipped(cfg, layer):
        want = real(cfg, layer)
        calls.append(1)
        if len(calls) == 3:
            want = want.copy()
            want[0, 0] ^= 1
        return want

    monkeypatch.setattr(array_regress, "golden", flipped)
    rows, result = run_job(job, "verilator", seed=3, tag="sim-run-test", echo=lambda s: None)
    assert not result["passed"] and result["mismatches"] == 1
    assert sum(r[-1] == "FAIL" for r in rows) == 1
    assert "mismatch: seed 3 layer" in result["failures"][0]
