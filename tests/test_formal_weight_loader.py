# amaranth: UnusedElaboratable=no
"""Formal proof of the weight loader (``WeightLoaderProof``): driven by the real layer control
from a free START and by a free weight stream, with free releases of full banks, it never
writes a weight store or a channel header of a bank in use, and its flags stay consistent.
SAT bounded model checking from reset, depth 40 (three M tiles, the third waiting for a
release); the ``"spread"`` floorplan (registered write port) under ``slow``; each broken
variant must fail."""

from __future__ import annotations

import pytest
from formal_runs import check_fault_parameter, prove, refute  # noqa: E402  (tests/ helper)

from contract.array import ArrayConfig
from hw.formal import LOADER_FAULTS, WeightLoaderProof, run_sat

CFG = ArrayConfig(in_fmt="fp8_e5m2", wbits=2, rows=2, cols=2, depth=16)
SPREAD = ArrayConfig(in_fmt="fp8_e5m2", wbits=2, rows=1, cols=2, depth=16, floorplan="spread")


def _run(check, name, root, cfg, fault=None):
    return check(run_sat, WeightLoaderProof(config=cfg, fault=fault), name=name, root=root,
                 seq=40, timeout=3000)


def test_loader_never_writes_a_bank_in_use(formal_root):
    _run(prove, "weight_loader", formal_root, CFG)


@pytest.mark.slow
def test_loader_spread_floorplan(formal_root):
    _run(prove, "weight_loader_spread", formal_root, SPREAD)


@pytest.mark.parametrize("fault", LOADER_FAULTS)
def test_broken_loaders_fail(formal_root, fault):
    _run(refute, f"broken_weight_loader_{fault}", formal_root, CFG, fault)


def test_bad_parameters():
    with pytest.raises(TypeError, match="config must be an ArrayConfig"):
        WeightLoaderProof(config=None)
    check_fault_parameter(WeightLoaderProof, config=CFG)
