# amaranth: UnusedElaboratable=no
"""Formal proof of the tile sequencer (``TileSequencerProof``): behind the real layer control,
on a free activation stream, with the loader's fills and the drain's releases as the
environment, every tile ends once, in ``ArrayConfig.tiles`` order, with its ragged edges, bank
and last flags, after exactly ``K`` beats. SAT bounded model checking from reset: depth 12 by
default (two to three tiles), 20 under ``slow`` (three M tiles); each broken variant must
fail."""

from __future__ import annotations

import pytest
from formal_runs import finish  # noqa: E402  (tests/ helper)

from contract.array import ArrayConfig
from hw.formal import SEQUENCER_FAULTS, TileSequencerProof, run_sat

CFG = ArrayConfig(in_fmt="fp8_e5m2", wbits=2, rows=2, cols=2, depth=16)


def _run(root, name, depth, fault=None):
    return finish(run_sat(TileSequencerProof(config=CFG, fault=fault), name=name, root=root,
                          seq=depth, timeout=3000))


def test_tiles_in_order_once(formal_root):
    result = _run(formal_root, "tile_sequencer", 12)
    assert result.passed, f"{result.status}\n{result.summary}\nsee {result.workdir}"


@pytest.mark.slow
def test_tiles_in_order_once_deeper(formal_root):
    result = _run(formal_root, "tile_sequencer_d20", 20)
    assert result.passed, f"{result.status}\n{result.summary}\nsee {result.workdir}"


@pytest.mark.parametrize("fault", SEQUENCER_FAULTS)
def test_broken_sequencers_fail(formal_root, fault):
    result = _run(formal_root, f"broken_tile_sequencer_{fault}", 12, fault)
    assert result.status == "FAIL", f"{fault}: {result.status}\n{result.summary}"


def test_bad_parameters():
    with pytest.raises(TypeError, match="config must be an ArrayConfig"):
        TileSequencerProof(config=None)
    with pytest.raises(ValueError, match="fault must be None or one of"):
        TileSequencerProof(config=CFG, fault="nope")
