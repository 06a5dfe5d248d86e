# amaranth: UnusedElaboratable=no
"""Block-RAM delay lines (``hw.stages.delayed_in_ram``) and where the "compact" floorplan uses
them (``ArrayConfig.ram_delays``): the rounder's magnitude and the channels' bias and ``e0``
tables. The array's and the finalizer's own tests check the results bit for bit; these check
the delay line alone and that the RAMs are there."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from contract import DotConfig
from contract.array import ArrayConfig
from hw.array import PEArray
from hw.rounding import ROUNDER_CUTS, Rounder
from hw.stages import delayed_in_ram

SEED = 20261207


@pytest.mark.parametrize("clocks", [2, 3, 4, 5, 8])
def test_delayed_in_ram_is_a_delay(clocks):
    m = Module()
    value = Signal(13)
    out = delayed_in_ram(m, value, clocks, "ring")
    rng = np.random.default_rng(SEED + clocks)
    values = [int(v) for v in rng.integers(0, 1 << 13, 200)]
    seen = []

    async def bench(ctx):
        for v in values:
            ctx.set(value, v)
            await ctx.tick()
            seen.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # seen[t] is sampled after the edge ending clock t: the value of clock t + 1 - clocks
    for t in range(clocks - 1, len(values)):
        assert seen[t] == values[t + 1 - clocks], (
            f"seed {SEED + clocks}, clocks {clocks}: first mismatch at clock {t}: "
            f"{seen[t]:#x}, want {values[t + 1 - clocks]:#x}")


def test_delayed_in_ram_rejects_short_delays():
    for clocks in (0, 1, True, 2.0):
        with pytest.raises(ValueError, match=f"clocks >= 2, not {clocks!r}"):
            delayed_in_ram(Module(), Signal(4), clocks, "ring")


def test_rounder_mag_in_ram_needs_two_cuts_and_no_stall():
    dot = DotConfig()
    with pytest.raises(ValueError, match="mag_in_ram needs"):
        Rounder(config=dot, cuts=("count", "round"), mag_in_ram=True)
    with pytest.raises(ValueError, match="mag_in_ram needs"):
        Rounder(config=dot, cuts=ROUNDER_CUTS, stall=True, mag_in_ram=True)
    with pytest.raises(TypeError, match="mag_in_ram must be a bool, not 1"):
        Rounder(config=dot, cuts=ROUNDER_CUTS, mag_in_ram=1)


@pytest.mark.parametrize("floorplan", ["compact", "spread"])
def test_compact_arrays_keep_waiting_values_in_block_ram(floorplan):
    cfg = ArrayConfig(rows=2, cols=3, depth=64, floorplan=floorplan)
    assert cfg.ram_delays == (floorplan == "compact")
    text = rtlil.convert(PEArray(config=cfg))
    rams = text.count('attribute \\ram_style "block"')
    assert rams == (3 if floorplan == "compact" else 0), rams
    # the channel parameters are registers only with "spread"
    assert ("bias_b0_c2" in text) == (floorplan == "spread")
