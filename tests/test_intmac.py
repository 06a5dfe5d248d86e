# amaranth: UnusedElaboratable=no
"""The INT8 MAC baselines (``boards.intmac``) against NumPy, in Amaranth simulation."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from stream_tb import run_beats  # (tests/ helper)

from boards.intmac import IntMacArray, IntMacPE


@pytest.mark.parametrize("mult,dsps,rows,cols,gaps,stalls", [
    ("dsp", None, 2, 2, 0.0, 0.0),
    ("lut", None, 2, 3, 0.3, 0.3),
    ("dsp", 2, 3, 2, 0.1, 0.5),
    ("dsp", 30, 5, 9, 0.2, 0.2),          # several operand copies per row and column
])
def test_int8_array_matches_numpy(mult, dsps, rows, cols, gaps, stalls):
    seed = 29
    rng = np.random.default_rng(seed)
    lengths = [1, 2, rows * cols, 9, 40, 3]
    beats, want = [], []
    for k in lengths:
        x = rng.integers(-128, 128, (k, rows))
        w = rng.integers(-128, 128, (k, cols))
        if k == 40:
            x[:], w[:] = -128, -128                       # the extreme products
        beats += [([int(v) for v in x[t]], [int(v) for v in w[t]], int(t == k - 1))
                  for t in range(k)]
        want += [int(v) & 0xFFFFFFFF for v in (x.T @ w).ravel()]
    dut = IntMacArray(rows=rows, cols=cols, mult=mult, dsps=dsps)
    got = run_beats(dut, beats, len(want), rng=np.random.default_rng(seed + 1), gaps=gaps,
               stalls=stalls, limit=40 * len(beats) + 2000)
    assert len(got) == len(want), f"seed {seed}: {len(got)} of {len(want)} results came out"
    for j, (g, v) in enumerate(zip(got, want, strict=True)):
        assert g == v, f"{mult} {rows}x{cols} seed {seed}: result {j}: got {g:#x} want {v:#x}"


@pytest.mark.parametrize("mult", ["dsp", "lut"])
def test_int8_pe_every_product(mult):
    """All 65536 operand pairs through one PE, each starting a new sum."""
    dut = IntMacPE(mult=mult)
    a = np.repeat(np.arange(-128, 128), 256)
    b = np.tile(np.arange(-128, 128), 256)
    got = []

    async def tb(ctx):
        ctx.set(dut.en, 1)
        ctx.set(dut.first, 1)
        for t in range(len(a) + 3):
            if t < len(a):
                ctx.set(dut.a, int(a[t]))
                ctx.set(dut.b, int(b[t]))
            await ctx.tick()
            if t >= 2:
                got.append(ctx.get(dut.acc))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    want = a * b
    bad = np.nonzero(np.array(got[:len(a)]) != want)[0]
    assert not len(bad), (f"{mult}: {len(bad)} products differ; first {a[bad[0]]} * "
                          f"{b[bad[0]]}: got {got[bad[0]]} want {want[bad[0]]}")


def test_int8_bad_arguments():
    with pytest.raises(ValueError, match="mult must be one of dsp, lut"):
        IntMacPE(mult="booth")
    with pytest.raises(ValueError, match="rows must be in"):
        IntMacArray(rows=0, cols=1)
    with pytest.raises(ValueError, match="dsps must be a non-negative integer"):
        IntMacArray(rows=1, cols=1, dsps=-2)
