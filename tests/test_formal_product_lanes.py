# amaranth: UnusedElaboratable=no
"""Formal proofs of ``hw.formal.product_lanes``: every lane's term of ``hw.lanes.ProductLanes``
is the exact product, for all inputs (Yosys ``sat``); the broken variants fail."""

from __future__ import annotations

from fractions import Fraction

import pytest
from formal_runs import finish, prove  # noqa: E402  (tests/ helper)

from contract import DotConfig
from hw.formal import ProductLanesProof, bias_shift, fault_point, product_shift, run_sat


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


@pytest.mark.parametrize("wbits", [2, 3, 4, 5])
def test_product_lanes_fp8_all_inputs(wbits, formal_root):
    cfg = DotConfig(in_fmt="fp8_e5m2", wbits=wbits, lanes=3)
    prove(run_sat, ProductLanesProof(config=cfg), name=f"product_fp8_b{wbits}", root=formal_root)


def test_product_lanes_fp16_b3_all_inputs(formal_root):
    cfg = DotConfig(in_fmt="fp16", wbits=3, lanes=2)
    prove(run_sat, ProductLanesProof(config=cfg), name="product_fp16_b3", root=formal_root)


@pytest.mark.slow
@pytest.mark.parametrize("fmt,wbits,lanes", [("fp16", 2, 2), ("fp16", 4, 2), ("fp16", 5, 2),
                                             ("bf16", 3, 1), ("bf16", 5, 1), ("fp32", 3, 1)])
def test_product_lanes_wide_all_inputs(fmt, wbits, lanes, formal_root):
    cfg = DotConfig(in_fmt=fmt, wbits=wbits, lanes=lanes)
    prove(run_sat, ProductLanesProof(config=cfg), name=f"product_{fmt}_b{wbits}", root=formal_root)


def _lane0(cfg, cex):
    fmt = cfg.in_fmt
    x0 = cex["x"] & ((1 << fmt.width) - 1)
    w0 = cex["w"] & ((1 << cfg.wbits) - 1)
    return x0, w0


def test_broken_alignment_is_caught(formal_root):
    cfg = DotConfig(in_fmt="fp8_e5m2", wbits=4, lanes=2)
    result = finish(run_sat(ProductLanesProof(config=cfg, fault="align"),
                           name="broken_product_align", root=formal_root))
    assert result.status == "FAIL", result.summary
    # The counterexample must sit on the single corrupted (E, p) point.
    x0, w0 = _lane0(cfg, result.counterexample)
    exp = (x0 >> cfg.in_fmt.frac_bits) & cfg.in_fmt.exp_max_field
    assert (exp, w0 & cfg.pmax) == fault_point(cfg), result.summary


def test_broken_neg0_is_caught(formal_root):
    cfg = DotConfig(in_fmt="fp8_e5m2", wbits=3, lanes=2)
    result = finish(run_sat(ProductLanesProof(config=cfg, fault="neg0"),
                           name="broken_product_neg0", root=formal_root))
    assert result.status == "FAIL", result.summary
    assert _lane0(cfg, result.counterexample) == (0, 0), result.summary
