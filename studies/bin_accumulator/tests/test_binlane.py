# amaranth: UnusedElaboratable=no
"""binlane (the block-RAM accumulator study): exact sums, carries, stalls, bypass, drain."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from studies.bin_accumulator.binlane import BinLane

pytestmark = pytest.mark.study

WIDTH = 16
#: the lane's contract: drains start at least eight operations after the last term (fp16's
#: 64 bins allow at most two carries in a row, each added four operations after its cause)
QUIET = [("idle",)] * 8


def _wrap(value, width=WIDTH):
    """(value kept in a signed ``width``-bit bin, carry in units of 2^(width - 1)): a sum out
    of range gives up one carry and keeps the rest (within one term of 0)."""
    unit = 1 << (width - 1)
    if -unit <= value < unit:
        return value, 0
    carry = 1 if value > 0 else -1
    return value - carry * unit, carry


def _run(ops, lane=None):
    """Drive ``ops`` (("term", exp, shift, neg, mag) / ("drain", bin) / ("idle",)) into a lane
    alone (its ``stall`` is its ``stall_next`` registered: an operation waits while it is
    high); return the drains' (bin, value) in order and the number of clocks it stalled."""
    dut = lane or BinLane()
    drains, taken = [], []
    stalls = 0

    async def bench(ctx):
        nonlocal stalls
        pending = [*ops, *[("idle",)] * 8]
        stall = 0
        while pending:
            op = pending[0]
            ctx.set(dut.stall, stall)
            ctx.set(dut.term, op[0] == "term")
            ctx.set(dut.drain, op[0] == "drain")
            if op[0] == "term":
                _, exp, shift, neg, mag = op
                ctx.set(dut.exp, exp)
                ctx.set(dut.shift, shift)
                ctx.set(dut.addend, -mag if neg else mag)
            elif op[0] == "drain":
                ctx.set(dut.drain_bin, op[1])
            stall_next = ctx.get(dut.stall_next)
            await ctx.tick()
            if stall:
                stalls += 1
            else:
                pending.pop(0)
                if op[0] == "drain":
                    taken.append(op[1])
            if ctx.get(dut.drain_valid):
                drains.append((taken.pop(0), ctx.get(dut.drain_data)))
            stall = stall_next

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert not taken, f"{len(taken)} drains never came out"
    return drains, stalls


def _add(bins, b, value, carries, width):
    """Add ``value`` to bin ``b`` as the lane does: a sum out of range keeps the rest and adds
    its carry as ±1 to the bin ``width - 1`` places up."""
    bins[b], carry = _wrap(bins[b] + value, width)
    if carry:
        carries.append((b, carry))
        _add(bins, b + width - 1, carry, carries, width)


def _model(ops, width=WIDTH, nbins=64):
    """The drains' (bin, value) and the carries (bin, ±1) of ``ops``."""
    bins, drains, carries = [0] * nbins, [], []
    for op in ops:
        if op[0] == "term":
            _, exp, shift, neg, mag = op
            _add(bins, exp + shift, -mag if neg else mag, carries, width)
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


def _check(ops, seed, lane=None, width=WIDTH, nbins=64):
    """The lane's drains equal the model's; returns the model's carries."""
    (got, stalls), (want, carries) = _run(ops, lane), _model(ops, width, nbins)
    for i, (a, b) in enumerate(zip(got, want, strict=False)):
        assert a == b, (f"seed {seed}: drain {i}: lane gave {a}, model {b} "
                        f"(ops {ops[max(0, i - 3):i + 3]} near there)")
    assert len(got) == len(want), f"seed {seed}: {len(got)} drains, expected {len(want)}"
    assert stalls == len(carries), f"seed {seed}: {stalls} stalls for {len(carries)} carries"
    return carries


def _exact(ops):
    return sum((-1 if op[3] else 1) * op[4] << (op[1] + op[2]) for op in ops if op[0] == "term")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lane_sums_exactly_with_carries(seed):
    """Few exponents, so that consecutive terms share a bin (the bypass) and bins carry;
    every bin drained at the end, then the drained bins sum to the exact total."""
    rng = random.Random(seed)
    print(f"seed {seed}")
    exps = [rng.randrange(1, 31) for _ in range(2)]
    ops = _random_ops(rng, 600, exps, p_neg=0.2 if seed % 2 else 0.8)   # bins drift and carry
    ops += [*QUIET, *[("drain", b) for b in range(64)]]
    carries = _check(ops, seed)
    assert carries, "the test must make bins carry"
    drains, _ = _model(ops)
    assert sum(v << b for b, v in drains[-64:]) == _exact(ops)


@pytest.mark.parametrize("seed", [4, 5])
def test_lane_drain_phases_between_terms(seed):
    """Bursts of terms, each followed by a drain phase of distinct bins in random order (the
    next burst's first term may hit a bin drained just before it): each drain returns the bin
    with every earlier term and clears it."""
    rng = random.Random(seed)
    print(f"seed {seed}")
    ops = []
    for _ in range(25):
        ops += _random_ops(rng, rng.randrange(1, 40), [7, 8])
        bins = rng.sample(range(7, 12), rng.randrange(1, 6))
        ops += [*QUIET, *[("drain", b) for b in bins]]
        if rng.random() < 0.5:       # a term right after the drain of its bin
            exp = 7 if bins[-1] <= 10 else 8
            ops.append(("term", exp, bins[-1] - exp, 0, 2047))
    _check(ops, seed)


def test_lane_carries_both_ways():
    up = [("term", 3, 0, 0, 2047)] * 17
    down = [("term", 3, 0, 1, 2047)] * 34
    ops = [*up, *down, *QUIET, ("drain", 3), ("drain", 18)]
    carries = _check(ops, "fixed")
    assert (3, 1) in carries and (3, -1) in carries


def test_lane_carry_right_after_carry():
    """Two bins carry on consecutive terms: both carries land, each costing one stalled
    clock, and the terms taken meanwhile are not lost."""
    pre = [("term", 18, 0, 0, 2047)] * 16 + [("term", 18, 1, 0, 2047)] * 16
    ops = [*pre, ("term", 18, 0, 0, 2047), ("term", 18, 1, 0, 2047), ("term", 18, 0, 0, 5),
           *QUIET, *[("drain", b) for b in range(64)]]
    carries = _check(ops, "fixed")
    assert carries == [(18, 1), (19, 1)]
    drains, _ = _model(ops)
    assert sum(v << b for b, v in drains) == _exact(ops)


def test_lane_carry_of_a_carry():
    """A small lane (5-bit bins, 3-bit significands, 16 bins): a carry's own add carries, and
    carries go both ways; every drained bin matches and the bins sum to the exact total."""
    lane = BinLane(exp_bits=3, shift_bits=1, mag_bits=3, bin_bits=5)
    rng = random.Random(7)
    print("seed 7")
    ops = [("term", 2, rng.randrange(2), int(rng.random() < p), rng.randrange(8))
           for p in (0.05, 0.95) for _ in range(300)]
    ops += [*[("idle",)] * 12, *[("drain", b) for b in range(16)]]   # 4h, h = 3 carries in a row
    carries = _check(ops, 7, lane=lane, width=5, nbins=16)
    assert {b for b, _ in carries} & {6, 7}, "a carry's add must itself carry"
    assert {c for _, c in carries} == {1, -1}
    drains, _ = _model(ops, 5, 16)
    assert sum(v << b for b, v in drains) == _exact(ops)


def test_lane_does_not_carry_at_every_term_near_the_limit():
    """A bin just under 2^15, then terms of alternating sign: one carry, not one per term (a
    bin that wrapped to its other end would carry back at the next term)."""
    fill = [("term", 9, 0, 0, 2047)] * 15 + [("term", 9, 0, 0, 1062)]     # 31767
    swing = [("term", 9, 0, 0, 2047), ("term", 9, 0, 1, 2047)] * 10
    ops = [*fill, *swing, *QUIET, ("drain", 9), ("drain", 24)]
    carries = _check(ops, "fixed")
    drains, _ = _model(ops)
    assert carries == [(9, 1)] and drains == [(9, 31767 - (1 << 15)), (24, 1)]


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


def _grid_terms(rng, rows, cols, n=300):
    """Random fp16 activations (subnormals, zeros, inf, NaN among them) and weight codes;
    mostly positive products, so that bins drift and carry."""
    pool = [0x0000, 0x8000, 0x0001, 0x83FF, 0x7C00, 0xFC00, 0x7E01, 0x7BFF, 0xFBFF]
    terms = []
    for _ in range(n):
        xs = [rng.choice(pool) if rng.random() < 0.1
              else (int(rng.random() < 0.15) << 15) | (rng.choice([14, 15]) << 10)
              | rng.randrange(1024) for _ in range(rows)]
        terms.append((xs, [(int(rng.random() < 0.15) << 2) | rng.randrange(4)
                           for _ in range(cols)]))
    return terms


def _grid_expected(terms, row_sel, c):
    """Lane (row_sel, c)'s exact sum (times 2^25) and flags."""
    exact, flags = 0, 0
    for xs, ws in terms:
        v = _fp16_scaled(xs[row_sel])
        neg_w, shift = ws[c] >> 2, ws[c] & 3
        if v is None:
            frac, neg = xs[row_sel] & 1023, (xs[row_sel] >> 15) ^ neg_w
            flags |= 4 if frac else (2 if neg else 1)
        else:
            exact += (-v if neg_w else v) << shift
    return exact, flags


def _drive_grid(dut, terms, drains, row_sel, cols, out_sel=0, setup=()):
    """Terms, eight idle operations (the lanes' contract), then ``drains`` ((bin, first,
    last)); an input waits while ``ready`` is low. Returns the shown lanes' drained bins,
    flags, stalls and, for a combining grid, column ``out_sel``'s (out_total, out_lsb)
    results (the rounded bits for a rounding grid). ``setup``: (port, value) pairs set
    first."""
    got = {"data": [[] for _ in range(cols)], "out": [], "bits": [], "stalls": 0}
    combine = hasattr(dut, "out_valid")
    rounding = hasattr(dut, "out_bits")

    async def bench(ctx):
        ctx.set(dut.row_sel, row_sel)
        for port, value in setup:
            ctx.set(port, value)
        if combine:
            ctx.set(dut.out_sel, out_sel)
        schedule = [("term", t) for t in terms] + [("idle", None)] * 8 + [("flags", None)]
        schedule += [("drain", d) for d in drains] + [("idle", None)] * 16
        while schedule:
            kind, arg = schedule[0]
            if kind == "flags":         # every term in, no drain yet: the flags are final
                got["flags"] = [ctx.get(dut.col_flags[c]) for c in range(cols)]
                schedule.pop(0)
                continue
            ctx.set(dut.term, kind == "term")
            ctx.set(dut.drain, kind == "drain")
            if kind == "term":
                for r, x in enumerate(arg[0]):
                    ctx.set(dut.x[r], x)
                for c, w in enumerate(arg[1]):
                    ctx.set(dut.w[c], w)
            elif kind == "drain":
                ctx.set(dut.drain_bin, arg[0])
                if combine:
                    ctx.set(dut.drain_first, arg[1])
                    ctx.set(dut.drain_last, arg[2])
            ready = ctx.get(dut.ready)
            await ctx.tick()
            if ready:
                schedule.pop(0)
            else:
                got["stalls"] += 1
            for c in range(cols):
                if ctx.get(dut.col_valid[c]):
                    got["data"][c].append(ctx.get(dut.col_data[c]))
            if rounding and ctx.get(dut.out_valid):
                got["bits"].append(ctx.get(dut.out_bits))
            elif combine and ctx.get(dut.out_valid):
                got["out"].append((ctx.get(dut.out_total), ctx.get(dut.out_lsb)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("row_sel", [0, 1])
def test_grid_lanes_sum_their_row_times_their_column(row_sel):
    """A 2x3 grid on random fp16 activations and weight codes: after draining every bin, each
    shown lane's bins give its exact sum (the grid stalled for the carries), and its flags
    its specials."""
    from studies.bin_accumulator.binlane import BinLaneGrid

    seed = 10 + row_sel
    rng = random.Random(seed)
    print(f"seed {seed}")
    rows, cols = 2, 3
    terms = _grid_terms(rng, rows, cols)
    got = _drive_grid(BinLaneGrid(rows=rows, cols=cols), terms,
                      [(b, 0, 0) for b in range(64)], row_sel, cols)
    for c in range(cols):
        assert len(got["data"][c]) == 64, f"seed {seed}: column {c}: {len(got['data'][c])} bins"
        exact, flags = _grid_expected(terms, row_sel, c)
        lane = sum(d << b for b, d in enumerate(got["data"][c]))
        assert lane == exact, f"seed {seed}: lane ({row_sel}, {c}): {lane} != {exact}"
        assert got["flags"][c] == flags, f"seed {seed}: lane ({row_sel}, {c}) flags"
    assert got["stalls"], "no carry was exercised"


@pytest.mark.parametrize("seed", [20, 23])
def test_grid_combines_a_column_exactly(seed):
    """A combining 2x2 grid: the bins drained as two sequences (a random split, the second
    starting right after the first's last bin) come out of the shown column's combiner as two
    exact sums that add up to the lane's exact total."""
    from studies.bin_accumulator.binlane import BinLaneGrid

    rng = random.Random(seed)
    print(f"seed {seed}")
    rows, cols, row_sel, out_sel = 2, 2, seed % 2, (seed // 2) % 2
    terms = _grid_terms(rng, rows, cols, n=200)
    split = rng.randrange(20, 45)
    drains = [(b, b in (0, split), b in (split - 1, 63)) for b in range(64)]
    got = _drive_grid(BinLaneGrid(rows=rows, cols=cols, combine=True), terms, drains,
                      row_sel, cols, out_sel)
    assert got["stalls"], "no carry was exercised"
    exact, _ = _grid_expected(terms, row_sel, out_sel)
    outs = got["out"]
    assert len(outs) == 2, f"seed {seed}: {len(outs)} results, expected 2"
    bins = got["data"][out_sel]
    parts = [sum(d << b for b, d in enumerate(bins) if lo <= b < hi)
             for lo, hi in ((0, split), (split, 64))]
    for (total, lsb), part in zip(outs, parts, strict=True):
        # total * 2^lsb == part, in integers
        lhs, rhs = (total << lsb, part) if lsb >= 0 else (total, part << -lsb)
        assert lhs == rhs, f"seed {seed}: ({total}, lsb {lsb}) != {part} (split {split})"
    assert sum(parts) == exact, f"seed {seed}: {sum(parts)} != {exact}"


@pytest.mark.parametrize("seed", [40, 41])
def test_grid_rounds_a_column_as_the_golden_model(seed):
    """A rounding 2x2 grid (lanes, combiners, the shared rounder): on finite fp16 terms, the
    shown lane's result bits equal the golden model's dot product (``sw.golden``) for a
    random ``e0``; with ReLU set in the second run."""
    from studies.bin_accumulator.binlane import BinLaneGrid
    from sw.golden import dot_golden

    rng = random.Random(seed)
    print(f"seed {seed}")
    rows, cols, row_sel, out_sel = 2, 2, seed % 2, (seed + 1) % 2
    terms = [t for t in _grid_terms(rng, rows, cols, n=200)
             if all(x & 0x7C00 != 0x7C00 for x in t[0])]          # no inf, no NaN
    e0, relu = rng.randrange(-8, 8), seed % 2
    dut = BinLaneGrid(rows=rows, cols=cols, combine=True, rounding=True)
    drains = [(b, b == 0, b == 63) for b in range(64)]
    driven = _drive_grid(dut, terms, drains, row_sel, cols, out_sel,
                         setup=((dut.e0, e0), (dut.round_flags, relu << 4)))
    assert driven["stalls"], "no carry was exercised"
    want = dot_golden([t[0][row_sel] for t in terms], [t[1][out_sel] for t in terms], e0,
                      in_fmt="fp16", wbits=3, relu=bool(relu))
    assert driven["bits"] == [want], (f"seed {seed}: lane ({row_sel}, {out_sel}), e0 {e0}, "
                                      f"relu {relu}: {driven['bits']} != [{want:#06x}]")


def test_carry_study_counts_the_grids_stalls():
    """``study_bin_carries.py`` counts a grid's carry stalls with the lanes' rule in NumPy: on
    finite data it gives the simulated grid's count of stalled clocks."""
    import numpy as np

    from studies.bin_accumulator import study_bin_carries as study
    from studies.bin_accumulator.binlane import BinLaneGrid

    rng = random.Random(30)
    print("seed 30")
    rows, cols = 2, 3
    terms = [t for t in _grid_terms(rng, rows, cols, n=400)
             if all(x & 0x7C00 != 0x7C00 for x in t[0])]          # no inf, no NaN
    got = _drive_grid(BinLaneGrid(rows=rows, cols=cols), terms, [], 0, cols)
    x16 = np.array([t[0] for t in terms], dtype=np.uint16).view(np.float16)
    codes = np.array([t[1] for t in terms], dtype=np.int64)
    assert got["stalls"] > 5
    assert study.stalled_clocks(x16, codes) == got["stalls"]


def test_grid_rejects_bad_parameters():
    from studies.bin_accumulator.binlane import BinLaneGrid

    with pytest.raises(ValueError, match="rows must be a positive integer, not 0"):
        BinLaneGrid(rows=0, cols=2)
    with pytest.raises(TypeError, match="combine must be a bool, not 1"):
        BinLaneGrid(rows=1, cols=2, combine=1)
