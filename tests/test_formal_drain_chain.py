# amaranth: UnusedElaboratable=no
"""Formal proof of the drain chain (``DrainChainProof``): every captured entry delivered once,
in order, against a reference queue, with the enables the arrays make (the multi-branch
array's; the PE array's, moving in every clock, with its load a clock ahead through copies
with ``"spread"``). SAT bounded model checking from reset: a 2x3 chain (two rows, so the
per-row enables count) over two captures by default, a 3x3 one under ``slow``; each broken
variant must fail."""

from __future__ import annotations

import pytest
from formal_runs import check_fault_parameter, prove, refute  # noqa: E402  (tests/ helper)

from hw.formal import DRAIN_FAULTS, DrainChainProof, run_sat

#: The PE array's chains: (moving, load_share) of "compact" and "spread" (a 2x3 chain with a
#: copy of the load per two entries of a row: two copies per row, one of them partial).
PE_ARRAY = {"compact": (True, None), "spread": (True, 2)}


def _run(check, name, root, rows, cols, fault=None, moving=False, load_share=None):
    dut = DrainChainProof(rows=rows, cols=cols, fault=fault, moving=moving,
                          load_share=load_share)
    return check(run_sat, dut, name=name, root=root, seq=2 * rows * cols + 3, timeout=3000)


def test_drain_chain_in_order_once(formal_root):
    _run(prove, "drain_chain_2x3", formal_root, 2, 3)


@pytest.mark.parametrize("floorplan", PE_ARRAY)
def test_pe_array_drain_chain_in_order_once(formal_root, floorplan):
    moving, share = PE_ARRAY[floorplan]
    _run(prove, f"drain_chain_2x3_{floorplan}", formal_root, 2, 3, moving=moving,
         load_share=share)


@pytest.mark.slow
def test_drain_chain_3x3(formal_root):
    _run(prove, "drain_chain_3x3", formal_root, 3, 3)


@pytest.mark.parametrize("fault", DRAIN_FAULTS)
def test_broken_drain_chains_fail(formal_root, fault):
    _run(refute, f"broken_drain_chain_{fault}", formal_root, 2, 3, fault)


@pytest.mark.parametrize("fault", DRAIN_FAULTS)
def test_broken_pe_array_drain_chains_fail(formal_root, fault):
    moving, share = PE_ARRAY["spread"]
    _run(refute, f"broken_drain_chain_spread_{fault}", formal_root, 2, 3, fault,
         moving=moving, load_share=share)


def test_bad_parameters():
    with pytest.raises(ValueError, match="rows must be a positive integer"):
        DrainChainProof(rows=0, cols=2)
    with pytest.raises(ValueError, match="load_share must be None or a positive integer"):
        DrainChainProof(rows=2, cols=2, load_share=0)
    with pytest.raises(TypeError, match="moving must be a bool"):
        DrainChainProof(rows=2, cols=2, moving=1)
    check_fault_parameter(DrainChainProof, rows=2, cols=2)
