# amaranth: UnusedElaboratable=no
"""The PE array's block-RAM output FIFO (``hw.outfifo.OutputFIFO``): order, full rate, and
back-pressure, in the Amaranth simulator (fixed seeds; the first mismatch is printed)."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from hw.outfifo import LATENCY, OutputFIFO


def _run(depth, pattern, seed, count):
    """Write ``count`` words (at most ``depth`` unread), read whenever ``pattern(rng)`` says;
    return the words read, the clock of each write and of each read."""
    dut = OutputFIFO(width=18, depth=depth)
    rng = random.Random(seed)
    got, written, reads = [], [], []

    async def bench(ctx):
        sent, clock = 0, 0
        while len(got) < count and clock < 50 * count + 100:
            write = sent < count and sent - len(got) < depth and (pattern is None or
                                                                  rng.random() < 0.7)
            read = pattern is None or pattern(rng)
            ctx.set(dut.w_en, write)
            ctx.set(dut.w_data, (sent * 7919 + seed) & 0x3FFFF)
            ctx.set(dut.r_en, read)
            await ctx.delay(1e-9)
            if read and ctx.get(dut.r_rdy):
                got.append(ctx.get(dut.r_data))
                reads.append(clock)
            if write:
                written.append(clock)
                sent += 1
            await ctx.tick()
            clock += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got, written, reads


@pytest.mark.parametrize("depth", [8, 64])
def test_full_rate_in_order(depth):
    """A write in every clock and a reader always ready: every word in order, each LATENCY
    clocks after its write (no bubble)."""
    count = 3 * depth
    got, written, reads = _run(depth, None, seed=1, count=count)
    want = [(i * 7919 + 1) & 0x3FFFF for i in range(count)]
    mismatch = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    assert got == want, f"seed 1: first mismatch at {mismatch}"
    assert [r - w for r, w in zip(reads, written, strict=True)] == [LATENCY] * count


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_backpressure_keeps_order(seed):
    """Random writes and a reader that stalls: every word once, in order."""
    got, _, _ = _run(16, lambda rng: rng.random() < 0.5, seed=seed, count=200)
    want = [(i * 7919 + seed) & 0x3FFFF for i in range(200)]
    mismatch = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    assert len(got) == 200 and mismatch is None, f"seed {seed}: first mismatch at {mismatch}"


def test_bad_depth():
    with pytest.raises(ValueError, match="depth must be a power of two of at least 2, not 12"):
        OutputFIFO(width=18, depth=12)
