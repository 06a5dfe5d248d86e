# amaranth: UnusedElaboratable=no
"""Formal proofs of ``hw.formal.handshake``: every valid/ready channel of the array's SoC top
holds valid and data while stalled (SymbiYosys k-induction); a broken unit fails."""

from __future__ import annotations

import pytest
from formal_runs import prove, refute  # noqa: E402  (tests/ helper)

from contract import DotConfig
from contract.array import ArrayConfig
from hw.array_top import ArrayTop
from hw.formal import HandshakeRulesProof, faulty_dot_unit, run_sby

FP8_SMALL = dict(in_fmt="fp8_e5m2", max_k=4, e0_min=-2, e0_max=1)


@pytest.mark.parametrize("pipeline", [1, 2])
def test_array_top_handshake_rules(pipeline, formal_root):
    """Every channel of the SoC top (AXI4-Stream act/wgt/res, AXI4-Lite aw/w/b/ar/r):
    outputs hold valid and data while stalled, given inputs that do (k-induction)."""
    cfg = ArrayConfig(in_fmt="fp8_e5m2", wbits=2, rows=2, cols=2, depth=16, pipeline=pipeline)
    harness = HandshakeRulesProof(dut=ArrayTop(config=cfg))
    assert ("m_axis_res.tvalid", True) in harness.channels
    assert ("s_axil.rvalid", True) in harness.channels
    assert ("s_axis_act.tvalid", False) in harness.channels
    prove(run_sby, harness,
          name=f"array_top_handshake_p{pipeline}", root=formal_root, mode="prove", depth=4)


@pytest.mark.slow
def test_array_top_handshake_rules_default(formal_root):
    harness = HandshakeRulesProof(dut=ArrayTop(config=ArrayConfig()))
    prove(run_sby, harness,
          name="array_top_handshake_default", root=formal_root, mode="prove", depth=4)


def test_broken_handshake_is_caught(formal_root):
    cfg = DotConfig(wbits=2, lanes=1, pipeline=3, **FP8_SMALL)
    harness = HandshakeRulesProof(dut=faulty_dot_unit(config=cfg, fault="payload"))
    result = refute(run_sby, harness, name="broken_handshake", root=formal_root, mode="bmc",
                    depth=8)
    assert result.failed == ("o.valid data changed while stalled",), result.summary
