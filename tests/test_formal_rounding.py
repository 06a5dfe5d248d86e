# amaranth: UnusedElaboratable=no
"""Formal proofs of ``hw.formal.rounding``: ``hw.rounding.Rounder`` against the contract's
rounding for every exact total, ``e0``, flag and ReLU setting (Yosys ``sat``, all inputs); the
broken variants fail. Wider formats are ``slow``.
"""

from __future__ import annotations

import pytest
from formal_runs import prove, refute  # noqa: E402  (tests/ helper)

from contract import DotConfig
from contract.array import ArrayConfig
from hw.formal import RoundingProof, run_sat


def _signed(value, bits):
    return value - ((value >> (bits - 1)) << bits)


@pytest.mark.parametrize("kw", [
    dict(in_fmt="fp8_e5m2", max_k=4, e0_min=-2, e0_max=1),
    pytest.param(dict(in_fmt="fp8_e5m2", out_fmt="fp16", wbits=5, max_k=16),
                 marks=pytest.mark.slow),
    ArrayConfig().dot_config,                                  # the arrays' fp16 default
], ids=["fp8", "fp8-fp16out", "fp16-array"])
def test_rounding_matches_specification(kw, formal_root):
    cfg = kw if isinstance(kw, DotConfig) else DotConfig(**kw)
    prove(run_sat, RoundingProof(config=cfg), name=f"rnd_{cfg.in_fmt.name}_{cfg.out_fmt.name}",
          root=formal_root, timeout=3000)


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    dict(in_fmt="fp16", out_fmt="fp32", wbits=3, max_k=512, e0_min=-1, e0_max=0),
    dict(in_fmt="bf16", wbits=3, max_k=64, e0_min=-4, e0_max=3),
], ids=["fp16-fp32out", "bf16"])
def test_rounding_matches_specification_wide(kw, formal_root):
    cfg = DotConfig(**kw)
    prove(run_sat, RoundingProof(config=cfg), name=f"rnd_{cfg.in_fmt.name}_{cfg.out_fmt.name}",
          root=formal_root, timeout=3000)


def test_broken_rounding_is_caught(formal_root):
    cfg = DotConfig(in_fmt="fp8_e5m2", max_k=4, e0_min=-2, e0_max=1)
    width = cfg.acc_width
    sticky = refute(run_sat, RoundingProof(config=cfg, fault="sticky"), name="broken_rnd_sticky",
                    root=formal_root, timeout=3000)
    # the counterexample needs the dropped bit: |total| is odd
    assert abs(_signed(sticky.counterexample["total"], width)) & 1, sticky.summary
    off = refute(run_sat, RoundingProof(config=cfg, fault="e0"), name="broken_rnd_e0",
                 root=formal_root, timeout=3000)
    assert _signed(off.counterexample["e0"], cfg.e0_bits) != cfg.e0_min, off.summary


def test_bad_parameters():
    with pytest.raises(TypeError, match="config must be a DotConfig, not 3"):
        RoundingProof(config=3)
    with pytest.raises(ValueError, match="fault must be None or one of sticky, e0, "
                                         "not 'carry'"):
        RoundingProof(config=DotConfig(), fault="carry")

