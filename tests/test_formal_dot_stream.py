# amaranth: UnusedElaboratable=no
"""Formal proofs of ``hw.formal.dot_stream``: the stream rules of ``hw.dot.ShiftDotUnit``
(SymbiYosys: k-induction, bounded checks) and results that track their own beats (``sat``
BMC); the broken variants fail."""

from __future__ import annotations

import pytest
from formal_runs import finish, prove  # noqa: E402  (tests/ helper)

from contract import DotConfig
from hw.formal import DotStreamProof, run_sat, run_sby

FP8_SMALL = dict(in_fmt="fp8_e5m2", max_k=4, e0_min=-2, e0_max=1)


@pytest.mark.parametrize("lanes,pipeline", [(1, 1), (2, 2), (1, 3), (2, 4)])
def test_stream_rules_k_induction(lanes, pipeline, formal_root):
    """Unbounded proof (k-induction) of the stream rules, with the in-flight invariant."""
    cfg = DotConfig(wbits=2, lanes=lanes, pipeline=pipeline, **FP8_SMALL)
    result = prove(run_sby, DotStreamProof(config=cfg, invariant=True),
                   name=f"stream_l{lanes}_p{pipeline}", root=formal_root, mode="prove", depth=4)
    assert "k-induction" in result.summary


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", [1, 2, 3, 4])
def test_stream_rules_k_induction_default_fp16(pipeline, formal_root):
    cfg = DotConfig(pipeline=pipeline)          # fp16, B=3, 4 lanes, max_k 4096
    prove(run_sby, DotStreamProof(config=cfg, invariant=True),
          name=f"stream_fp16_p{pipeline}", root=formal_root, mode="prove", depth=4)


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", [1, 2, 3, 4])
def test_stream_rules_bmc_black_box(pipeline, formal_root):
    """The same properties without looking inside the unit, bounded: every trace of
    2 * pipeline + 4 cycles from reset (fill, stall and drain a full pipeline)."""
    cfg = DotConfig(wbits=2, lanes=1, pipeline=pipeline, **FP8_SMALL)
    prove(run_sby, DotStreamProof(config=cfg),
          name=f"stream_bmc_p{pipeline}", root=formal_root, mode="bmc", depth=2 * pipeline + 4)


@pytest.mark.parametrize("lanes,pipeline,depth", [
    (1, 1, 6), (1, 2, 6),
    pytest.param(1, 3, 10, marks=pytest.mark.slow),
    pytest.param(2, 2, 8, marks=pytest.mark.slow),
])
def test_stream_results_track_their_beats(lanes, pipeline, depth, formal_root):
    """Bounded (SAT BMC): with x = 1.0 and free codes/keep, every result equals the rounded
    sum of its own beats' ±2**p (lost, repeated or reordered beats change a result)."""
    cfg = DotConfig(wbits=2, lanes=lanes, pipeline=pipeline, **dict(FP8_SMALL, max_k=3))
    result = finish(run_sat(DotStreamProof(config=cfg, track_data=True),
                           name=f"stream_data_l{lanes}_p{pipeline}", root=formal_root, seq=depth))
    assert result.passed, f"{result.status}\n{result.summary}\nsee {result.workdir}"


@pytest.mark.parametrize("fault,expected", [
    ("ready", {"more results in flight than pipeline stages", "result lost: unit did not drain"}),
    ("payload", {"o.payload changed while stalled"}),
    ("valid", {"o.valid dropped while stalled"}),
    ("dup", {"more results than last beats (duplicate)", "o.valid with nothing in flight"}),
])
def test_broken_stream_is_caught(fault, expected, formal_root):
    cfg = DotConfig(wbits=2, lanes=1, pipeline=2, **FP8_SMALL)
    result = finish(run_sby(DotStreamProof(config=cfg, fault=fault), name=f"broken_{fault}",
                           root=formal_root, mode="bmc", depth=8))
    assert result.status == "FAIL", result.summary
    assert set(result.failed) & expected, result.summary


def test_lost_middle_beat_is_caught(formal_root):
    """A unit that acknowledges a non-last beat while busy (and loses it) keeps every count
    right; only the data-tracking harness sees it."""
    cfg = DotConfig(wbits=2, lanes=1, pipeline=2, **dict(FP8_SMALL, max_k=3))
    counts = finish(run_sby(DotStreamProof(config=cfg, fault="skip"), name="broken_skip_counts",
                           root=formal_root, mode="bmc", depth=6))
    assert counts.passed, counts.summary
    result = finish(run_sat(DotStreamProof(config=cfg, fault="skip", track_data=True),
                           name="broken_skip_data", root=formal_root, seq=6))
    assert result.status == "FAIL", result.summary
