# amaranth: UnusedElaboratable=no
"""Formal proof of the tile sequencer (``TileSequencerProof``): behind the real layer control,
on a free activation stream, with the loader's fills and the drain's releases as the
environment, every tile ends once, in ``ArrayConfig.tiles`` order, with its ragged edges, bank
and last flags, after exactly ``K`` beats. SAT bounded model checking from reset: depth 12 by
default (two to three tiles), 20 under ``slow`` (three M tiles); each broken variant must
fail."""

from __future__ import annotations

import pytest
from formal_runs import check_fault_parameter, prove, refute  # noqa: E402  (tests/ helper)

from contract.array import ArrayConfig
from hw.formal import SEQUENCER_FAULTS, TileSequencerProof, run_sat

CFG = ArrayConfig(in_fmt="fp8_e5m2", wbits=2, rows=2, cols=2, depth=16)


def _run(check, name, root, depth, fault=None):
    return check(run_sat, TileSequencerProof(config=CFG, fault=fault), name=name, root=root,
                 seq=depth, timeout=3000)


def test_tiles_in_order_once(formal_root):
    _run(prove, "tile_sequencer", formal_root, 12)


@pytest.mark.slow
def test_tiles_in_order_once_deeper(formal_root):
    _run(prove, "tile_sequencer_d20", formal_root, 20)


@pytest.mark.parametrize("fault", SEQUENCER_FAULTS)
def test_broken_sequencers_fail(formal_root, fault):
    _run(refute, f"broken_tile_sequencer_{fault}", formal_root, 12, fault)


def test_bad_parameters():
    with pytest.raises(TypeError, match="config must be an ArrayConfig"):
        TileSequencerProof(config=None)
    check_fault_parameter(TileSequencerProof, config=CFG)
