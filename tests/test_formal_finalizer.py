# amaranth: UnusedElaboratable=no
"""Formal proofs of the finalizer (``hw/formal_finalizer.py``): the array's pipelined
finalizer against the unpipelined reference for every entry (Yosys ``sat``, bounded to the
first entry's result, which covers every entry: see the module), and that reference's rounding
against the specification for every exact total (``sat``, all inputs).

Small formats, the default fp16 rounding and the broken variants run by default; the fp16
finalizers (minutes each) are marked ``slow``.
"""

from __future__ import annotations

import pytest
from formal_runs import finish  # noqa: E402  (tests/ helper)

from contract import DotConfig
from contract.array import ArrayConfig
from hw.finalizer import Finalizer
from hw.formal import run_sat
from hw.formal_finalizer import FinalizerProof, RoundingProof, feedforward_problems
from hw.pe import ShiftPE

FP8_ARRAY = dict(in_fmt="fp8_e5m2", depth=16, e0_min=-2, e0_max=1)


@pytest.fixture(scope="module")
def root(formal_root):
    return formal_root


def _run(harness, name, root, **kw):
    return finish(run_sat(harness, name=name, root=root, timeout=3000, **kw))


def _prove_finalizer(cfg, name, root):
    proof = FinalizerProof(config=cfg)
    result = _run(proof, name, root, seq=proof.depth)
    assert result.passed, f"{name}: {result.status}\n{result.summary}\nsee {result.workdir}"


def _signed(value, bits):
    return value - ((value >> (bits - 1)) << bits)


# -- the pipelined finalizer against the reference ---------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(FP8_ARRAY, rows=2, cols=2),                           # compact: no final_cut
    dict(FP8_ARRAY, rows=1, cols=8, floorplan="spread"),       # final_cut
    pytest.param(dict(FP8_ARRAY, rows=2, cols=2, wbits=5, out_fmt="fp16"),  # a wider bias
                 marks=pytest.mark.slow),
], ids=["fp8-2x2", "fp8-1x8", "fp8-b5-fp16out"])
def test_finalizer_equals_reference_small(kw, root):
    cfg = ArrayConfig(**kw)
    _prove_finalizer(cfg, f"fin_{cfg.rows}x{cfg.cols}_b{cfg.wbits}_{cfg.out_fmt.name}", root)


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    dict(rows=2, cols=2),                       # the UP5K default: compact
    dict(rows=8, cols=8, floorplan="spread"),   # the ECP5 default
    dict(rows=2, cols=2, wbits=5),              # three accumulator pieces: the bias waits
], ids=["fp16-2x2", "fp16-8x8", "fp16-b5"])
def test_finalizer_equals_reference_fp16(kw, root):
    cfg = ArrayConfig(**kw)
    assert cfg.pe_pieces == (3 if cfg.wbits == 5 else 2)
    _prove_finalizer(cfg, f"fin_fp16_{cfg.rows}x{cfg.cols}_b{cfg.wbits}", root)


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
def test_broken_finalizer_is_caught(fault, root):
    proof = FinalizerProof(config=ArrayConfig(rows=2, cols=2, **FP8_ARRAY), fault=fault)
    result = _run(proof, f"broken_fin_{fault}", root, seq=proof.depth)
    assert result.status == "FAIL", result.summary


# -- the reference's rounding against the specification ------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(in_fmt="fp8_e5m2", max_k=4, e0_min=-2, e0_max=1),
    pytest.param(dict(in_fmt="fp8_e5m2", out_fmt="fp16", wbits=5, max_k=16),
                 marks=pytest.mark.slow),
    ArrayConfig().dot_config,                                  # the arrays' fp16 default
], ids=["fp8", "fp8-fp16out", "fp16-array"])
def test_rounding_matches_specification(kw, root):
    cfg = kw if isinstance(kw, DotConfig) else DotConfig(**kw)
    result = _run(RoundingProof(config=cfg), f"rnd_{cfg.in_fmt.name}_{cfg.out_fmt.name}", root)
    assert result.passed, f"{result.status}\n{result.summary}\nsee {result.workdir}"


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    dict(in_fmt="fp16", out_fmt="fp32", wbits=3, max_k=512, e0_min=-1, e0_max=0),
    dict(in_fmt="bf16", wbits=3, max_k=64, e0_min=-4, e0_max=3),
], ids=["fp16-fp32out", "bf16"])
def test_rounding_matches_specification_wide(kw, root):
    cfg = DotConfig(**kw)
    result = _run(RoundingProof(config=cfg), f"rnd_{cfg.in_fmt.name}_{cfg.out_fmt.name}", root)
    assert result.passed, f"{result.status}\n{result.summary}\nsee {result.workdir}"


def test_broken_rounding_is_caught(root):
    cfg = DotConfig(in_fmt="fp8_e5m2", max_k=4, e0_min=-2, e0_max=1)
    width = cfg.acc_width
    sticky = _run(RoundingProof(config=cfg, fault="sticky"), "broken_rnd_sticky", root)
    assert sticky.status == "FAIL", sticky.summary
    # the counterexample needs the dropped bit: |total| is odd
    assert abs(_signed(sticky.counterexample["total"], width)) & 1, sticky.summary
    off = _run(RoundingProof(config=cfg, fault="e0"), "broken_rnd_e0", root)
    assert off.status == "FAIL", off.summary
    assert _signed(off.counterexample["e0"], cfg.e0_bits) != cfg.e0_min, off.summary


def test_bad_parameters():
    with pytest.raises(TypeError, match="config must be an ArrayConfig, not 3"):
        FinalizerProof(config=3)
    with pytest.raises(ValueError, match="fault must be None or one of sticky, relu_neg0, "
                                         "carry, not 'x'"):
        FinalizerProof(config=ArrayConfig(), fault="x")
    with pytest.raises(TypeError, match="config must be a DotConfig, not 3"):
        RoundingProof(config=3)
    with pytest.raises(ValueError, match="fault must be None or one of sticky, e0, "
                                         "not 'carry'"):
        RoundingProof(config=DotConfig(), fault="carry")
