# amaranth: UnusedElaboratable=no
"""Formal proofs (Yosys ``sat``, SymbiYosys with z3) of the product path and the stream rules.

Fast proofs and the broken-variant checks run by default; wider formats and deeper runs are
marked ``slow``. Each proof runs in its own folder under ``build/formal/test-<pid>/`` (removed
when it passes, and for the broken variants at the end; kept with logs and traces when a proof
fails).
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from formal_runs import finish  # noqa: E402  (tests/ helper)

from contract import DotConfig
from hw.formal import (
    ArrayProductProof,
    BiasAlignerProof,
    DotStreamProof,
    HandshakeRulesProof,
    ProductLanesProof,
    bias_shift,
    fault_point,
    faulty_dot_unit,
    product_shift,
    run_sat,
    run_sby,
)

FP8_SMALL = dict(in_fmt="fp8_e5m2", max_k=4, e0_min=-2, e0_max=1)


@pytest.fixture(scope="module")
def root(formal_root):
    return formal_root


_done = finish


def _prove_sat(harness, name, root):
    result = _done(run_sat(harness, name=name, root=root))
    assert result.passed, f"{name}: {result.status}\n{result.summary}\nsee {result.workdir}"
    return result


def _prove_sby(harness, name, root, mode, depth):
    result = _done(run_sby(harness, name=name, root=root, mode=mode, depth=depth))
    assert result.passed, f"{name}: {result.status}\n{result.summary}\nsee {result.workdir}"
    return result


# -- the harness's reference positions against the contract ------------------------------------

@pytest.mark.parametrize("fmt", ["fp8_e5m2", "fp16"])
@pytest.mark.parametrize("wbits", [2, 5])
def test_reference_shifts_match_contract(fmt, wbits):
    """sig << product_shift(E, p) is x * 2**p in units of 2**acc_lsb_exp (e0 cancels), and
    sig << bias_shift(E, e0) is the bias in units of 2**(e0 + acc_lsb_exp), for every finite
    pattern (fp8) or every exponent with a few fractions (fp16)."""
    cfg = DotConfig(in_fmt=fmt, out_fmt="fp8_e5m2", wbits=wbits, e0_min=-3, e0_max=2)
    lsb = Fraction(2) ** cfg.acc_lsb_exp
    in_fmt, out_fmt = cfg.in_fmt, cfg.out_fmt
    for exp in range(in_fmt.exp_max_field):
        for frac in sorted({0, 1, in_fmt.frac_mask, in_fmt.frac_mask >> 1}):
            bits = (exp << in_fmt.frac_bits) | frac
            sig = frac | ((1 << in_fmt.frac_bits) if exp else 0)
            for p in range(cfg.pmax + 1):
                want = in_fmt.to_fraction(bits) * 2**p / lsb
                assert Fraction(sig << product_shift(cfg, exp, p)) == want, (fmt, hex(bits), p)
    for exp in range(out_fmt.exp_max_field):
        for frac in range(out_fmt.frac_mask + 1):
            bits = (exp << out_fmt.frac_bits) | frac
            sig = frac | ((1 << out_fmt.frac_bits) if exp else 0)
            for e0 in range(cfg.e0_min, cfg.e0_max + 1):
                want = out_fmt.to_fraction(bits) / (Fraction(2) ** e0 * lsb)
                assert Fraction(sig << bias_shift(cfg, exp, e0)) == want, (hex(bits), e0)


# -- product and bias alignment: all inputs ----------------------------------------------------

@pytest.mark.parametrize("wbits", [2, 3, 4, 5])
def test_product_lanes_fp8_all_inputs(wbits, root):
    cfg = DotConfig(in_fmt="fp8_e5m2", wbits=wbits, lanes=3)
    _prove_sat(ProductLanesProof(config=cfg), f"product_fp8_b{wbits}", root)


def test_product_lanes_fp16_b3_all_inputs(root):
    cfg = DotConfig(in_fmt="fp16", wbits=3, lanes=2)
    _prove_sat(ProductLanesProof(config=cfg), "product_fp16_b3", root)


@pytest.mark.parametrize("kw", [
    dict(in_fmt="fp8_e5m2", wbits=3),
    pytest.param(dict(in_fmt="fp8_e5m2", wbits=5, e0_min=-64, e0_max=64),
                 marks=pytest.mark.slow),
    dict(in_fmt="fp8_e5m2", out_fmt="fp16", wbits=2, e0_min=-3, e0_max=12),
    dict(in_fmt="fp16", wbits=3),
    pytest.param(dict(in_fmt="fp16", out_fmt="fp32", wbits=3), marks=pytest.mark.slow),
], ids=["fp8", "fp8_wide_e0", "fp8_to_fp16", "fp16", "fp16_to_fp32"])
def test_bias_aligner_all_inputs(kw, root):
    cfg = DotConfig(**kw)
    _prove_sat(BiasAlignerProof(config=cfg), f"bias_{cfg.name}", root)


@pytest.mark.slow
@pytest.mark.parametrize("fmt,wbits,lanes", [("fp16", 2, 2), ("fp16", 4, 2), ("fp16", 5, 2),
                                             ("bf16", 3, 1), ("bf16", 5, 1), ("fp32", 3, 1)])
def test_product_lanes_wide_all_inputs(fmt, wbits, lanes, root):
    cfg = DotConfig(in_fmt=fmt, wbits=wbits, lanes=lanes)
    _prove_sat(ProductLanesProof(config=cfg), f"product_{fmt}_b{wbits}", root)
    _prove_sat(BiasAlignerProof(config=cfg), f"bias_{fmt}_b{wbits}", root)


# -- stream protocol ---------------------------------------------------------------------------

@pytest.mark.parametrize("lanes,pipeline", [(1, 1), (2, 2), (1, 3), (2, 4)])
def test_stream_rules_k_induction(lanes, pipeline, root):
    """Unbounded proof (k-induction) of the stream rules, with the in-flight invariant."""
    cfg = DotConfig(wbits=2, lanes=lanes, pipeline=pipeline, **FP8_SMALL)
    result = _prove_sby(DotStreamProof(config=cfg, invariant=True),
                        f"stream_l{lanes}_p{pipeline}", root, "prove", 4)
    assert "k-induction" in result.summary


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", [1, 2, 3, 4])
def test_stream_rules_k_induction_default_fp16(pipeline, root):
    cfg = DotConfig(pipeline=pipeline)          # fp16, B=3, 4 lanes, max_k 4096
    _prove_sby(DotStreamProof(config=cfg, invariant=True), f"stream_fp16_p{pipeline}", root,
               "prove", 4)


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", [1, 2, 3, 4])
def test_stream_rules_bmc_black_box(pipeline, root):
    """The same properties without looking inside the unit, bounded: every trace of
    2 * pipeline + 4 cycles from reset (fill, stall and drain a full pipeline)."""
    cfg = DotConfig(wbits=2, lanes=1, pipeline=pipeline, **FP8_SMALL)
    _prove_sby(DotStreamProof(config=cfg), f"stream_bmc_p{pipeline}", root, "bmc",
               2 * pipeline + 4)


@pytest.mark.parametrize("lanes,pipeline,depth", [
    (1, 1, 6), (1, 2, 6),
    pytest.param(1, 3, 10, marks=pytest.mark.slow),
    pytest.param(2, 2, 8, marks=pytest.mark.slow),
])
def test_stream_results_track_their_beats(lanes, pipeline, depth, root):
    """Bounded (SAT BMC): with x = 1.0 and free codes/keep, every result equals the rounded
    sum of its own beats' ±2**p (lost, repeated or reordered beats change a result)."""
    cfg = DotConfig(wbits=2, lanes=lanes, pipeline=pipeline, **dict(FP8_SMALL, max_k=3))
    result = _done(run_sat(DotStreamProof(config=cfg, track_data=True),
                           name=f"stream_data_l{lanes}_p{pipeline}", root=root, seq=depth))
    assert result.passed, f"{result.status}\n{result.summary}\nsee {result.workdir}"


# -- PE array product path -------------------------------------------------------------------

@pytest.mark.parametrize("wbits,pipeline", [
    (2, 1), (3, 2),
    pytest.param(4, 1, marks=pytest.mark.slow),
    pytest.param(5, 2, marks=pytest.mark.slow),
])
def test_array_product_path_fp8(wbits, pipeline, root):
    """RowAligner -> ShiftPE accumulates exact products for all inputs (k-induction)."""
    from contract.array import ArrayConfig

    cfg = ArrayConfig(in_fmt="fp8_e5m2", wbits=wbits, rows=1, cols=1, depth=16,
                      pipeline=pipeline)
    _prove_sby(ArrayProductProof(config=cfg), f"array_fp8_b{wbits}_p{pipeline}", root,
               "prove", 3)


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", [1, 2])
def test_array_product_path_fp16_b3(pipeline, root):
    from contract.array import ArrayConfig

    cfg = ArrayConfig(in_fmt="fp16", wbits=3, rows=1, cols=1, pipeline=pipeline)
    _prove_sby(ArrayProductProof(config=cfg), f"array_fp16_b3_p{pipeline}", root, "prove", 3)


@pytest.mark.parametrize("pipeline", [1, 2])
def test_array_top_handshake_rules(pipeline, root):
    """Every channel of the SoC top (AXI4-Stream act/wgt/res, AXI4-Lite aw/w/b/ar/r):
    outputs hold valid and data while stalled, given inputs that do (k-induction)."""
    from contract.array import ArrayConfig
    from hw.array_top import ArrayTop

    cfg = ArrayConfig(in_fmt="fp8_e5m2", wbits=2, rows=2, cols=2, depth=16, pipeline=pipeline)
    harness = HandshakeRulesProof(dut=ArrayTop(config=cfg))
    assert ("m_axis_res.tvalid", True) in harness.channels
    assert ("s_axil.rvalid", True) in harness.channels
    assert ("s_axis_act.tvalid", False) in harness.channels
    _prove_sby(harness, f"array_top_handshake_p{pipeline}", root, "prove", 4)


@pytest.mark.slow
def test_array_top_handshake_rules_default(root):
    from contract.array import ArrayConfig
    from hw.array_top import ArrayTop

    harness = HandshakeRulesProof(dut=ArrayTop(config=ArrayConfig()))
    _prove_sby(harness, "array_top_handshake_default", root, "prove", 4)


# -- broken variants must fail -----------------------------------------------------------------

def _lane0(cfg, cex):
    fmt = cfg.in_fmt
    x0 = cex["x"] & ((1 << fmt.width) - 1)
    w0 = cex["w"] & ((1 << cfg.wbits) - 1)
    return x0, w0


def test_broken_alignment_is_caught(root):
    cfg = DotConfig(in_fmt="fp8_e5m2", wbits=4, lanes=2)
    result = _done(run_sat(ProductLanesProof(config=cfg, fault="align"),
                           name="broken_product_align", root=root))
    assert result.status == "FAIL", result.summary
    # The counterexample must sit on the single corrupted (E, p) point.
    x0, w0 = _lane0(cfg, result.counterexample)
    exp = (x0 >> cfg.in_fmt.frac_bits) & cfg.in_fmt.exp_max_field
    assert (exp, w0 & cfg.pmax) == fault_point(cfg), result.summary


def test_broken_neg0_is_caught(root):
    cfg = DotConfig(in_fmt="fp8_e5m2", wbits=3, lanes=2)
    result = _done(run_sat(ProductLanesProof(config=cfg, fault="neg0"),
                           name="broken_product_neg0", root=root))
    assert result.status == "FAIL", result.summary
    assert _lane0(cfg, result.counterexample) == (0, 0), result.summary


def test_broken_bias_alignment_is_caught(root):
    cfg = DotConfig(in_fmt="fp8_e5m2", wbits=3)
    result = _done(run_sat(BiasAlignerProof(config=cfg, fault="align"),
                           name="broken_bias_align", root=root))
    assert result.status == "FAIL", result.summary
    cex, fmt = result.counterexample, cfg.out_fmt
    e0 = cex["e0"] - (1 << cfg.e0_bits) * (cex["e0"] >> (cfg.e0_bits - 1))
    assert (cex["bias"] >> fmt.frac_bits) & fmt.exp_max_field == fmt.bias + 1, result.summary
    assert e0 == cfg.e0_min, result.summary


@pytest.mark.parametrize("fault,expected", [
    ("ready", {"more results in flight than pipeline stages", "result lost: unit did not drain"}),
    ("payload", {"o.payload changed while stalled"}),
    ("valid", {"o.valid dropped while stalled"}),
    ("dup", {"more results than last beats (duplicate)", "o.valid with nothing in flight"}),
])
def test_broken_stream_is_caught(fault, expected, root):
    cfg = DotConfig(wbits=2, lanes=1, pipeline=2, **FP8_SMALL)
    result = _done(run_sby(DotStreamProof(config=cfg, fault=fault), name=f"broken_{fault}",
                           root=root, mode="bmc", depth=8))
    assert result.status == "FAIL", result.summary
    assert set(result.failed) & expected, result.summary


def test_broken_array_alignment_is_caught(root):
    from contract.array import ArrayConfig

    cfg = ArrayConfig(in_fmt="fp8_e5m2", wbits=3, rows=1, cols=1, depth=16, pipeline=2)
    result = _done(run_sby(ArrayProductProof(config=cfg, fault="align"),
                           name="broken_array_align", root=root, mode="prove", depth=3))
    assert result.status == "FAIL", result.summary
    assert ("PE accumulator (with its pending carries) differs from the sum of exact products"
            in result.failed)


def test_lost_middle_beat_is_caught(root):
    """A unit that acknowledges a non-last beat while busy (and loses it) keeps every count
    right; only the data-tracking harness sees it."""
    cfg = DotConfig(wbits=2, lanes=1, pipeline=2, **dict(FP8_SMALL, max_k=3))
    counts = _done(run_sby(DotStreamProof(config=cfg, fault="skip"), name="broken_skip_counts",
                           root=root, mode="bmc", depth=6))
    assert counts.passed, counts.summary
    result = _done(run_sat(DotStreamProof(config=cfg, fault="skip", track_data=True),
                           name="broken_skip_data", root=root, seq=6))
    assert result.status == "FAIL", result.summary


def test_broken_handshake_is_caught(root):
    cfg = DotConfig(wbits=2, lanes=1, pipeline=3, **FP8_SMALL)
    harness = HandshakeRulesProof(dut=faulty_dot_unit(config=cfg, fault="payload"))
    result = _done(run_sby(harness, name="broken_handshake", root=root, mode="bmc", depth=8))
    assert result.status == "FAIL", result.summary
    assert result.failed == ("o.valid data changed while stalled",), result.summary


# -- parameters --------------------------------------------------------------------------------

def test_bad_parameters():
    cfg = DotConfig(in_fmt="fp8_e5m2", wbits=2)
    with pytest.raises(TypeError, match="config must be a DotConfig, not 3"):
        ProductLanesProof(config=3)
    with pytest.raises(ValueError, match="fault must be None or one of align, neg0, not 'x'"):
        ProductLanesProof(config=cfg, fault="x")
    with pytest.raises(ValueError, match="fault must be None or one of align, not 'neg0'"):
        BiasAlignerProof(config=cfg, fault="neg0")
    with pytest.raises(TypeError, match="invariant must be a bool, not 1"):
        DotStreamProof(config=cfg, invariant=1)
    with pytest.raises(ValueError, match="mode must be 'bmc' or 'prove', not 'cover'"):
        run_sby(DotStreamProof(config=cfg), name="x", mode="cover")
    with pytest.raises(ValueError, match="depth must be a positive integer, not 0"):
        run_sby(DotStreamProof(config=cfg), name="x", depth=0)
    with pytest.raises(ValueError, match="proof name must be a plain file name, not '../x'"):
        run_sat(ProductLanesProof(config=cfg), name="../x")
    with pytest.raises(ValueError, match="seq must be None or a positive integer, not 0"):
        run_sat(ProductLanesProof(config=cfg), name="x", seq=0)
    with pytest.raises(ValueError, match=r"track_data needs e0 = 0 in the configured range, "
                                         r"not \[1, 3\]"):
        DotStreamProof(config=DotConfig(wbits=2, e0_min=1, e0_max=3), track_data=True)
    with pytest.raises(TypeError, match="config must be an ArrayConfig, not"):
        ArrayProductProof(config=cfg)
