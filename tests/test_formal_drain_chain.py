# amaranth: UnusedElaboratable=no
"""Formal proof of the drain chain (``DrainChainProof``): every captured entry delivered once,
in order, against a reference queue, with the enables the array makes. SAT bounded model
checking from reset: a 2x3 chain (two rows, so the per-row enables count) over two captures
by default, a 3x3 one under ``slow``; each broken variant must fail."""

from __future__ import annotations

import pytest
from formal_runs import check_fault_parameter, prove, refute  # noqa: E402  (tests/ helper)

from hw.formal import DRAIN_FAULTS, DrainChainProof, run_sat


def _run(check, name, root, rows, cols, fault=None):
    return check(run_sat, DrainChainProof(rows=rows, cols=cols, fault=fault), name=name,
                 root=root, seq=2 * rows * cols + 3, timeout=3000)


def test_drain_chain_in_order_once(formal_root):
    _run(prove, "drain_chain_2x3", formal_root, 2, 3)


@pytest.mark.slow
def test_drain_chain_3x3(formal_root):
    _run(prove, "drain_chain_3x3", formal_root, 3, 3)


@pytest.mark.parametrize("fault", DRAIN_FAULTS)
def test_broken_drain_chains_fail(formal_root, fault):
    _run(refute, f"broken_drain_chain_{fault}", formal_root, 2, 3, fault)


def test_bad_parameters():
    with pytest.raises(ValueError, match="rows must be a positive integer"):
        DrainChainProof(rows=0, cols=2)
    check_fault_parameter(DrainChainProof, rows=2, cols=2)
