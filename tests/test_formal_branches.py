# amaranth: UnusedElaboratable=no
"""Formal proof (SymbiYosys k-induction, z3) of the multi-branch PE against the integer
definition of its dot product, on small sizes; a broken PE must fail. Also the top's stream and
AXI4-Lite handshakes hold data and valid while stalled."""

from __future__ import annotations

import pytest
from formal_runs import finish, prove  # noqa: E402  (tests/ helper)

from hw.branches.formal import BranchPEProof
from hw.formal import HandshakeRulesProof, run_sby


@pytest.mark.parametrize("lanes, wbits, abits, pipeline", [
    (2, 2, 2, 2), (4, 1, 1, 1), (2, 3, 2, 2), (2, 1, 3, 1), (1, 4, 4, 2)])
def test_pe_matches_integer_dot_product(lanes, wbits, abits, pipeline, formal_root):
    prove(run_sby, BranchPEProof(lanes=lanes, wbits=wbits, abits=abits, pipeline=pipeline),
          name=f"branch_pe_l{lanes}_w{wbits}a{abits}_p{pipeline}",
          root=formal_root, mode="prove", depth=3)


@pytest.mark.slow
@pytest.mark.parametrize("lanes, wbits, abits, pipeline", [(4, 2, 3, 2), (2, 4, 4, 1),
                                                           (8, 1, 1, 2)])
def test_pe_matches_integer_dot_product_larger(lanes, wbits, abits, pipeline, formal_root):
    prove(run_sby, BranchPEProof(lanes=lanes, wbits=wbits, abits=abits, pipeline=pipeline),
          name=f"branch_pe_l{lanes}_w{wbits}a{abits}_p{pipeline}",
          root=formal_root, mode="prove", depth=3)


def test_broken_pe_fails(formal_root):
    result = finish(run_sby(BranchPEProof(lanes=2, wbits=2, abits=2, fault="lane0"),
                            name="broken_branch_pe", root=formal_root, mode="prove", depth=3))
    assert result.status == "FAIL", result.summary
    assert "PE accumulator differs from the integer dot product" in result.failed


def test_proof_arguments():
    with pytest.raises(ValueError, match="fault must be None or one of lane0"):
        BranchPEProof(lanes=2, wbits=1, abits=1, fault="nope")


def test_top_handshake_rules(formal_root):
    """Every channel of the branch top: outputs hold valid and data while stalled, given
    inputs that do (k-induction)."""
    from contract.branch_array import BranchArrayConfig
    from hw.branches.top import BranchArrayTop

    cfg = BranchArrayConfig(wbits=1, abits=1, rows=1, cols=2, lanes=2, depth=16, out_fmt=None,
                            scale_fmt=None)
    harness = HandshakeRulesProof(dut=BranchArrayTop(config=cfg))
    assert ("m_axis_res.tvalid", True) in harness.channels
    prove(run_sby, harness, name="branch_top_handshake", root=formal_root, mode="prove", depth=4)
