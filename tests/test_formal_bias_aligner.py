# amaranth: UnusedElaboratable=no
"""Formal proofs of ``hw.formal.bias_aligner``: ``hw.lanes.BiasAligner`` gives the exact bias for
every bias pattern and ``e0`` (Yosys ``sat``); the broken variant fails."""

from __future__ import annotations

import pytest
from formal_runs import finish, prove  # noqa: E402  (tests/ helper)

from contract import DotConfig
from hw.formal import BiasAlignerProof, run_sat


@pytest.mark.parametrize("kw", [
    dict(in_fmt="fp8_e5m2", wbits=3),
    pytest.param(dict(in_fmt="fp8_e5m2", wbits=5, e0_min=-64, e0_max=64),
                 marks=pytest.mark.slow),
    dict(in_fmt="fp8_e5m2", out_fmt="fp16", wbits=2, e0_min=-3, e0_max=12),
    dict(in_fmt="fp16", wbits=3),
    pytest.param(dict(in_fmt="fp16", out_fmt="fp32", wbits=3), marks=pytest.mark.slow),
], ids=["fp8", "fp8_wide_e0", "fp8_to_fp16", "fp16", "fp16_to_fp32"])
def test_bias_aligner_all_inputs(kw, formal_root):
    cfg = DotConfig(**kw)
    prove(run_sat, BiasAlignerProof(config=cfg), name=f"bias_{cfg.name}", root=formal_root)


@pytest.mark.slow
@pytest.mark.parametrize("fmt,wbits", [("fp16", 2), ("fp16", 4), ("fp16", 5), ("bf16", 3),
                                       ("bf16", 5), ("fp32", 3)])
def test_bias_aligner_wide_all_inputs(fmt, wbits, formal_root):
    cfg = DotConfig(in_fmt=fmt, wbits=wbits, lanes=1)
    prove(run_sat, BiasAlignerProof(config=cfg), name=f"bias_{fmt}_b{wbits}", root=formal_root)


def test_broken_bias_alignment_is_caught(formal_root):
    cfg = DotConfig(in_fmt="fp8_e5m2", wbits=3)
    result = finish(run_sat(BiasAlignerProof(config=cfg, fault="align"),
                           name="broken_bias_align", root=formal_root))
    assert result.status == "FAIL", result.summary
    cex, fmt = result.counterexample, cfg.out_fmt
    e0 = cex["e0"] - (1 << cfg.e0_bits) * (cex["e0"] >> (cfg.e0_bits - 1))
    assert (cex["bias"] >> fmt.frac_bits) & fmt.exp_max_field == fmt.bias + 1, result.summary
    assert e0 == cfg.e0_min, result.summary
