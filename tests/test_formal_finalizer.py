# amaranth: UnusedElaboratable=no
"""Formal proofs of ``hw.formal.finalizer``: the array's pipelined finalizer against the
unpipelined reference for every entry (Yosys ``sat``, bounded to the first entry's result,
which covers every entry: see the harness), its feed-forward structure, and the broken
variants. Small formats run by default; the fp16 finalizers (minutes each) are ``slow``.
"""

from __future__ import annotations

import pytest
from formal_runs import prove, refute  # noqa: E402  (tests/ helper)

from contract.array import ArrayConfig
from hw.finalizer import Finalizer
from hw.formal import FinalizerProof, feedforward_problems, run_sat
from hw.pe import ShiftPE

FP8_ARRAY = dict(in_fmt="fp8_e5m2", depth=16, e0_min=-2, e0_max=1)


def _prove_finalizer(cfg, name, formal_root):
    proof = FinalizerProof(config=cfg)
    prove(run_sat, proof, name=name, root=formal_root, seq=proof.depth, timeout=3000)


@pytest.mark.parametrize("kw", [
    dict(FP8_ARRAY, rows=2, cols=2),                           # compact: no final_cut
    dict(FP8_ARRAY, rows=1, cols=8, floorplan="spread"),       # final_cut
    pytest.param(dict(FP8_ARRAY, rows=2, cols=2, wbits=5, out_fmt="fp16"),  # a wider bias
                 marks=pytest.mark.slow),
], ids=["fp8-2x2", "fp8-1x8", "fp8-b5-fp16out"])
def test_finalizer_equals_reference_small(kw, formal_root):
    cfg = ArrayConfig(**kw)
    _prove_finalizer(cfg, f"fin_{cfg.rows}x{cfg.cols}_b{cfg.wbits}_{cfg.out_fmt.name}", formal_root)


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    dict(rows=2, cols=2),                       # the UP5K default: compact
    dict(rows=8, cols=8, floorplan="spread"),   # the ECP5 default
    dict(rows=2, cols=2, wbits=5),              # three accumulator pieces: the bias waits
], ids=["fp16-2x2", "fp16-8x8", "fp16-b5"])
def test_finalizer_equals_reference_fp16(kw, formal_root):
    cfg = ArrayConfig(**kw)
    assert cfg.pe_pieces == (3 if cfg.wbits == 5 else 2)
    _prove_finalizer(cfg, f"fin_fp16_{cfg.rows}x{cfg.cols}_b{cfg.wbits}", formal_root)


@pytest.mark.parametrize("kw", [dict(rows=2, cols=2), dict(rows=8, cols=8, floorplan="spread"),
                                dict(wbits=5)])
def test_finalizer_is_feedforward(kw):
    """The bounded proof's one-entry argument: no register holds or feeds back. The check
    itself finds both in a PE (its accumulator)."""
    assert feedforward_problems(Finalizer(config=ArrayConfig(**kw))) == []
    problems = feedforward_problems(ShiftPE(config=ArrayConfig(**kw)))
    assert "register acc feeds back into itself" in problems
    assert "register acc is assigned under a condition" in problems


@pytest.mark.parametrize("fault", ["sticky", "relu_neg0", "carry"])
def test_broken_finalizer_is_caught(fault, formal_root):
    proof = FinalizerProof(config=ArrayConfig(rows=2, cols=2, **FP8_ARRAY), fault=fault)
    refute(run_sat, proof, name=f"broken_fin_{fault}", root=formal_root, seq=proof.depth,
           timeout=3000)


def test_bad_parameters():
    with pytest.raises(TypeError, match="config must be an ArrayConfig, not 3"):
        FinalizerProof(config=3)
    with pytest.raises(ValueError, match="fault must be None or one of sticky, relu_neg0, "
                                         "carry, not 'x'"):
        FinalizerProof(config=ArrayConfig(), fault="x")

