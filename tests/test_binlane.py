# amaranth: UnusedElaboratable=no
"""hw.binlane.BinLane (the block-RAM accumulator study): exact sums, carries, bypass, drain."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from hw.binlane import BinLane

WIDTH = 16


def _wrap(value):
    """(value kept in a signed WIDTH-bit bin, carry in units of 2^(WIDTH - 1)): a sum out of
    range gives up one carry and keeps the rest (within one term of 0)."""
    unit = 1 << (WIDTH - 1)
    if -unit <= value < unit:
        return value, 0
    carry = 1 if value > 0 else -1
    return value - carry * unit, carry


def _run(ops):
    """Drive ``ops`` (("term", exp, shift, neg, mag) / ("drain", bin) / ("idle",)), one per
    clock; return the drains' (bin, value) and the carries (bin, +1/-1) in order."""
    dut = BinLane()
    drains, carries = [], []

    async def bench(ctx):
        for op in [*ops, ("idle",), ("idle",)]:
            ctx.set(dut.term, op[0] == "term")
            ctx.set(dut.drain, op[0] == "drain")
            if op[0] == "term":
                _, exp, shift, neg, mag = op
                ctx.set(dut.exp, exp)
                ctx.set(dut.shift, shift)
                ctx.set(dut.addend, -mag if neg else mag)
            elif op[0] == "drain":
                ctx.set(dut.drain_bin, op[1])
            await ctx.tick()
            if ctx.get(dut.drain_valid):
                drains.append((op[1], ctx.get(dut.drain_data)))
            if ctx.get(dut.carry_valid):
                carries.append((ctx.get(dut.carry_bin), -1 if ctx.get(dut.carry_neg) else 1))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return drains, carries


def _model(ops):
    bins, drains, carries = [0] * 64, [], []
    for op in ops:
        if op[0] == "term":
            _, exp, shift, neg, mag = op
            b = exp + shift
            bins[b], carry = _wrap(bins[b] + (-mag if neg else mag))
            if carry:
                carries.append((b, carry))
        elif op[0] == "drain":
            drains.append((op[1], bins[op[1]]))
            bins[op[1]] = 0
    return drains, carries


def _random_ops(rng, n, exps, drain_every=None, p_neg=0.5):
    ops = []
    for i in range(n):
        if drain_every and i % drain_every == drain_every - 1:
            ops.append(("drain", rng.choice(exps) + rng.randrange(4)))
        elif rng.random() < 0.1:
            ops.append(("idle",))
        else:
            ops.append(("term", rng.choice(exps), rng.randrange(4), int(rng.random() < p_neg),
                        rng.choice([2047, 2046, 1024, rng.randrange(1024, 2048),
                                    rng.randrange(1024)])))
    return ops


def _check(ops, seed):
    got, want = _run(ops), _model(ops)
    for what, g, w in (("drain", got[0], want[0]), ("carry", got[1], want[1])):
        for i, (a, b) in enumerate(zip(g, w, strict=False)):
            assert a == b, (f"seed {seed}: {what} {i}: lane gave {a}, model {b} "
                            f"(ops {ops[max(0, i - 3):i + 3]} near there)")
        assert len(g) == len(w), f"seed {seed}: {len(g)} {what}s, expected {len(w)}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lane_sums_exactly_with_carries(seed):
    """Few exponents, so that consecutive terms share a bin (the bypass) and bins carry;
    every bin drained at the end, then the lane's value equals the exact sum."""
    rng = random.Random(seed)
    print(f"seed {seed}")
    exps = [rng.randrange(1, 31) for _ in range(2)]
    ops = _random_ops(rng, 600, exps, p_neg=0.2 if seed % 2 else 0.8)   # bins drift and carry
    ops += [("drain", b) for b in range(64)]
    _check(ops, seed)
    drains, carries = _model(ops)
    assert carries, "the test must make bins carry"
    exact = sum((-1 if op[3] else 1) * op[4] << (op[1] + op[2]) for op in ops if op[0] == "term")
    lane = (sum(v << b for b, v in drains[-64:])
            + sum(c << (WIDTH - 1 + b) for b, c in carries))
    assert lane == exact


@pytest.mark.parametrize("seed", [4, 5])
def test_lane_drains_between_terms(seed):
    """Drains mixed into the terms (a drain right after a term on its bin, a term right after
    a drain of its bin): each drain returns the bin with every earlier term and clears it."""
    rng = random.Random(seed)
    print(f"seed {seed}")
    ops = _random_ops(rng, 800, [7, 8], drain_every=5)
    _check(ops, seed)


def test_lane_carries_both_ways():
    up = [("term", 3, 0, 0, 2047)] * 17
    down = [("term", 3, 0, 1, 2047)] * 34
    ops = [*up, *down, ("drain", 3)]
    _check(ops, "fixed")
    drains, carries = _model(ops)
    assert (3, 1) in carries and (3, -1) in carries


def test_lane_does_not_carry_at_every_term_near_the_limit():
    """A bin just under 2^15, then terms of alternating sign: one carry, not one per term (a
    bin that wrapped to its other end would carry back at the next term)."""
    fill = [("term", 9, 0, 0, 2047)] * 15 + [("term", 9, 0, 0, 1062)]     # 31767
    swing = [("term", 9, 0, 0, 2047), ("term", 9, 0, 1, 2047)] * 10
    ops = [*fill, *swing, ("drain", 9)]
    _check(ops, "fixed")
    drains, carries = _model(ops)
    assert carries == [(9, 1)] and drains == [(9, 31767 - (1 << 15))]


@pytest.mark.parametrize("kwargs, match", [
    ({"exp_bits": 0}, "exp_bits must be a positive integer, not 0"),
    ({"mag_bits": True}, "mag_bits must be a positive integer, not True"),
    ({"shift_bits": 6}, "shift_bits=6 .* expected at most 5"),
    ({"bin_bits": 11}, r"bin_bits \(11\) must exceed mag_bits \(11\)"),
])
def test_lane_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BinLane(**kwargs)


def _fp16_scaled(bits):
    """An fp16 bit pattern's value times 2^25 (an integer: the lane's scale), or None for
    inf/NaN."""
    field, frac = (bits >> 10) & 31, bits & 1023
    if field == 31:
        return None
    mag, exp = (frac, 1) if field == 0 else (frac | 1024, field)
    return (-1 if bits >> 15 else 1) * (mag << exp)


@pytest.mark.parametrize("row_sel", [0, 1])
def test_grid_lanes_sum_their_row_times_their_column(row_sel):
    """A 2x3 grid on random fp16 activations (subnormals, zeros, inf, NaN among them) and
    weight codes: after draining every bin, each shown lane's bins and carries give its exact
    sum, and its flags its specials."""
    from hw.binlane import BinLaneGrid

    seed = 10 + row_sel
    rng = random.Random(seed)
    print(f"seed {seed}")
    rows, cols = 2, 3
    dut = BinLaneGrid(rows=rows, cols=cols)
    pool = [0x0000, 0x8000, 0x0001, 0x83FF, 0x7C00, 0xFC00, 0x7E01, 0x7BFF, 0xFBFF]
    terms = []
    for _ in range(300):
        xs = [rng.choice(pool) if rng.random() < 0.1
              else (int(rng.random() < 0.15) << 15) | (rng.choice([14, 15]) << 10)
              | rng.randrange(1024) for _ in range(rows)]
        # mostly positive products, so that bins drift and carry
        terms.append((xs, [(int(rng.random() < 0.15) << 2) | rng.randrange(4)
                           for _ in range(cols)]))
    got = {"data": [], "carry": []}

    async def bench(ctx):
        ctx.set(dut.row_sel, row_sel)
        schedule = [("term", t) for t in terms] + [("drain", b) for b in range(64)]
        schedule += [("idle", None)] * 4
        for t, (kind, arg) in enumerate(schedule):
            ctx.set(dut.term, kind == "term")
            ctx.set(dut.drain, kind == "drain")
            if kind == "term":
                for r, x in enumerate(arg[0]):
                    ctx.set(dut.x[r], x)
                for c, w in enumerate(arg[1]):
                    ctx.set(dut.w[c], w)
            elif kind == "drain":
                ctx.set(dut.drain_bin, arg)
            await ctx.tick()
            if t >= 3 and schedule[t - 2][0] == "drain":
                got["data"].append([ctx.get(dut.col_data[c]) for c in range(cols)])
            got["carry"].append([ctx.get(dut.col_carry[c]) for c in range(cols)])
            if t == len(terms) + 1:         # the last term's flags shown, the drain's clear not
                got["flags"] = [ctx.get(dut.col_flags[c]) for c in range(cols)]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(got["data"]) == 64
    for c in range(cols):
        exact, flags = 0, 0
        for xs, ws in terms:
            v = _fp16_scaled(xs[row_sel])
            neg_w, shift = ws[c] >> 2, ws[c] & 3
            if v is None:
                frac, neg = xs[row_sel] & 1023, (xs[row_sel] >> 15) ^ neg_w
                flags |= 4 if frac else (2 if neg else 1)
            else:
                exact += (-v if neg_w else v) << shift
        # every carry, once: a lane's carry_valid is high for one clock per carry
        carries = [(cc >> 2, -1 if cc >> 1 & 1 else 1) for step in got["carry"]
                   for cc in [step[c]] if cc & 1]
        lane = (sum(d[c] << b for b, d in enumerate(got["data"]))
                + sum(k << (WIDTH - 1 + b) for b, k in carries))
        assert lane == exact, f"seed {seed}: lane ({row_sel}, {c}): {lane} != {exact}"
        assert got["flags"][c] == flags, f"seed {seed}: lane ({row_sel}, {c}) flags"
    assert any(cc & 1 for step in got["carry"] for cc in step), "no carry was exercised"
