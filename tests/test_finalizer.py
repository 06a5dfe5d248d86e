# amaranth: UnusedElaboratable=no
"""The array's finalizer (``hw.finalizer.Finalizer``) on its own, in the Amaranth simulator:
entries built from random terms (specials, subnormals, every binade) with their pending
carries split off at random, one per clock, against the scalar reference of
``tests/hw_reference.py``, bit for bit and at the documented latency."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from amaranth.lib import data
from amaranth.sim import Simulator
from hw_reference import dot_reference  # noqa: E402  (tests/ helper)

from contract.array import ArrayConfig
from hw.drain import DrainChain
from hw.finalizer import Finalizer, entry_layout
from hw.pe import pe_carry_vector

SEED = 20261123


def _float_bits(rng, fmt):
    """A pattern: 10 % specials and signed zeros, else any finite value of any binade."""
    roll = rng.random()
    sign = int(rng.integers(0, 2)) << (fmt.width - 1)
    if roll < 0.03:
        return fmt.canonical_nan if rng.random() < 0.5 else fmt.pos_inf | 1
    if roll < 0.06:
        return sign | fmt.pos_inf
    if roll < 0.10:
        return sign
    exp = int(rng.integers(0, fmt.exp_max_field))
    return sign | (exp << fmt.frac_bits) | int(rng.integers(0, 1 << fmt.frac_bits))


def _entry(cfg, rng):
    """Random terms, the entry a PE would hold for them, and the expected result bits."""
    fi, b = cfg.in_fmt, cfg.wbits
    k = int(rng.integers(1, 6))
    xs = [_float_bits(rng, fi) for _ in range(k)]
    codes = [int(rng.integers(0, 1 << b)) for _ in range(k)]
    e0 = int(rng.integers(cfg.e0_min, cfg.e0_max + 1))
    bias = _float_bits(rng, cfg.out_fmt) if rng.random() < 0.7 else None
    relu = bool(rng.random() < 0.3)
    total, nan, pinf, ninf, neg0 = 0, False, False, False, True
    for x, c in zip(xs, codes, strict=True):
        s, p = c >> (b - 1), c & ((1 << (b - 1)) - 1)
        sign = (x >> (fi.width - 1)) ^ s
        if fi.is_nan(x):
            nan = True
        elif fi.is_inf(x):
            pinf, ninf, neg0 = pinf or not sign, ninf or bool(sign), False
        else:
            # the product in units of the accumulator's LSB, 2**(e0 + lsb_exp)
            value = fi.to_fraction(x) * 2 ** p * (-1 if s else 1) / Fraction(2) ** fi.lsb_exp
            assert value.denominator == 1
            total += int(value)
            neg0 = neg0 and value == 0 and bool(sign)
    width = cfg.pe_acc_width
    carries = int(rng.integers(0, 1 << cfg.pe_pending_bits))
    acc = (total - pe_carry_vector(cfg, carries)) % (1 << width)
    acc = acc - (1 << width) if acc >> (width - 1) else acc
    want = dot_reference(cfg.dot_config, xs, codes, e0, bias=bias, relu=relu)
    entry = {"acc": acc, "carries": carries,
             "flags": {"nan": nan, "pinf": pinf, "ninf": ninf, "neg0": neg0},
             "bias": 0 if bias is None else bias, "e0": e0}
    return entry, bias is not None, relu, want


@pytest.mark.parametrize("cfg", [
    ArrayConfig(rows=2, cols=2, depth=512),                   # compact: no final_cut
    ArrayConfig(rows=2, cols=8, depth=64, floorplan="spread"),  # final_cut
    ArrayConfig(rows=2, cols=2, depth=32, in_fmt="bf16", wbits=4),
    ArrayConfig(rows=2, cols=2, depth=16, in_fmt="fp32", e0_min=-20, e0_max=20),
], ids=["fp16_narrow", "fp16_wide", "bf16_b4", "fp32"])
def test_finalizer_matches_reference(cfg):
    rng = np.random.default_rng(SEED)
    cases = [_entry(cfg, rng) for _ in range(400)]
    # bias_en and relu are the layer's options, steady while entries are in flight: the
    # cases run grouped by their options, one "layer" each
    groups = {}
    for case in cases:
        groups.setdefault((case[1], case[2]), []).append(case)
    assert len(groups) == 4
    for (bias_en, relu), group in sorted(groups.items()):
        _run_layer(cfg, group, bias_en, relu)


def _run_layer(cfg, cases, bias_en, relu):
    dut = Finalizer(config=cfg)
    assert dut.stages == cfg.final_latency - cfg.out_latency
    count = len(cases)
    got = []

    async def bench(ctx):
        ctx.set(dut.bias_en, bias_en)
        ctx.set(dut.relu, relu)
        for i in range(count + dut.stages + 2):
            if i < count:
                ctx.set(dut.i.payload, {**cases[i][0], "meta": {"last": i % 7 == 0,
                                                                 "last_layer": i % 11 == 0}})
            ctx.set(dut.i.valid, i < count)
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append((i, ctx.get(dut.o.payload.bits), ctx.get(dut.o.payload.meta.last),
                            ctx.get(dut.o.payload.meta.last_layer)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == count, (len(got), count)
    for j, (clock, bits, last, last_layer) in enumerate(got):
        entry, _, _, want = cases[j]
        # presented in clock j, sampled after the edge ending clock j + stages - 1
        assert clock == j + dut.stages - 1, f"entry {j}: out at clock {clock}"
        assert (last, last_layer) == (j % 7 == 0, j % 11 == 0)
        assert bits == want, (
            f"seed {SEED}, {cfg.in_fmt.name} bias={bias_en} relu={relu}, first mismatch at "
            f"entry {j}: {entry} -> got {bits:#x}, want {want:#x}")


def test_finalizer_and_drain_reject_bad_parameters():
    with pytest.raises(TypeError, match="ArrayConfig"):
        Finalizer(config={"rows": 2})
    with pytest.raises(ValueError, match="rows must be a positive integer, not 0"):
        DrainChain(rows=0, cols=2, entry=entry_layout(ArrayConfig(rows=2, cols=2)))
    with pytest.raises(TypeError, match="data.Layout"):
        DrainChain(rows=2, cols=2, entry=8)
    with pytest.raises(ValueError, match="load_share must be None or a positive integer, not 0"):
        DrainChain(rows=2, cols=2, entry=entry_layout(ArrayConfig(rows=2, cols=2)), load_share=0)


def test_drain_chain_order_and_enables():
    """Entries leave the head in row-major order; a row whose ``move`` is low holds still,
    and a load replaces a row's entries while the other rows shift."""
    layout = data.StructLayout({"v": 8})
    rows, cols = 3, 2
    dut = DrainChain(rows=rows, cols=cols, entry=layout)
    heads = []

    async def bench(ctx):
        for i in range(rows * cols):
            ctx.set(dut.entries[i], {"v": 10 + i})
        ctx.set(dut.load, 0b111)
        ctx.set(dut.move, 0b111)
        await ctx.tick()                                  # capture every row
        ctx.set(dut.load, 0)
        for i in range(rows * cols):
            ctx.set(dut.entries[i], {"v": 100 + i})       # the PEs' next tile: not taken
        for _ in range(3):
            heads.append(ctx.get(dut.head.v))
            await ctx.tick()                              # shift
        ctx.set(dut.move, 0)
        await ctx.tick()                                  # hold
        heads.append(ctx.get(dut.head.v))
        ctx.set(dut.move, 0b111)
        await ctx.tick()
        heads.append(ctx.get(dut.head.v))
        ctx.set(dut.load, 0b100)                          # row 2 loads, rows 0 and 1 shift
        await ctx.tick()
        ctx.set(dut.load, 0)
        for _ in range(7):
            heads.append(ctx.get(dut.head.v))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # 10, 11, 12 shift out; a held clock keeps 13 at the head; then 14. Row 2 (entries 4
    # and 5) reloads while rows 0 and 1 shift: 15 comes next, and the reloaded entries reach
    # the head four shifts later (what the three entries in between hold is not specified:
    # the tail refills with each shift and is never read past the count)
    assert heads[:5] == [10, 11, 12, 13, 14], heads
    assert heads[5] == 15 and heads[9:11] == [104, 105], heads
