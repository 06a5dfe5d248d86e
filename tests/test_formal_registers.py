# amaranth: UnusedElaboratable=no
"""Formal proof of the register block's semantics (``RegisterBlockProof``): rw with byte
strobes, rw1c, read-only, counters, START's pulse, responses, irq. SAT bounded model checking
from reset: depth 10 (a write and a read after it) by default, 14 under ``slow``; each broken
variant must fail."""

from __future__ import annotations

import pytest
from formal_runs import check_fault_parameter, prove, refute  # noqa: E402  (tests/ helper)

from contract.array import ArrayConfig
from hw.formal import REGISTER_FAULTS, RegisterBlockProof, run_sat

CFG = ArrayConfig(in_fmt="fp8_e5m2", wbits=2, rows=2, cols=2, depth=16)


def _run(check, name, root, depth, fault=None):
    return check(run_sat, RegisterBlockProof(config=CFG, fault=fault), name=name, root=root,
                 seq=depth, timeout=3000)


def test_register_block_semantics(formal_root):
    _run(prove, "registers", formal_root, 10)


@pytest.mark.slow
def test_register_block_semantics_deeper(formal_root):
    _run(prove, "registers_d14", formal_root, 14)


@pytest.mark.parametrize("fault", REGISTER_FAULTS)
def test_broken_register_blocks_fail(formal_root, fault):
    _run(refute, f"broken_registers_{fault}", formal_root, 10, fault)


def test_bad_parameters():
    with pytest.raises(TypeError, match="config must be an ArrayConfig"):
        RegisterBlockProof(config=None)
    check_fault_parameter(RegisterBlockProof, config=CFG)
