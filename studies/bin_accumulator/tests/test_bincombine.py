# amaranth: UnusedElaboratable=no
"""bincombine.BinCombiner: a lane's bins combined into one exact number (value, exponent)."""

from __future__ import annotations

import itertools
import random
from collections import deque

import pytest
from amaranth.hdl import Shape, signed, unsigned
from amaranth.sim import Simulator

from studies.bin_accumulator.bincombine import BinCombiner

pytestmark = pytest.mark.study


def _exact(start, values):
    return sum(v << (start + i) for i, v in enumerate(values))


def _scaled_equal(total, lsb, want):
    """total * 2^lsb == want, in integers (lsb may be negative)."""
    return total << lsb == want if lsb >= 0 else total == want << -lsb


def _schedule(seqs, gaps=None):
    """The clocks driving ``seqs`` ((start, values) each): None for a gap, else (value, first,
    last, start, sequence index). ``gaps(i)`` (default none) gives the gap clocks before bin
    ``i`` of a sequence (``i == 0``: between sequences)."""
    clocks = []
    for k, (start, values) in enumerate(seqs):
        for i, v in enumerate(values):
            clocks += [None] * (gaps(i) if gaps else 0)
            clocks.append((v, i == 0, i == len(values) - 1, start, k))
    return clocks


def _run(seqs, *, bin_bits, max_bins, gaps=None, seed="fixed"):
    """Drive ``seqs`` through a BinCombiner and check, for each sequence in order, that
    ``out_valid`` pulses exactly one clock after its last bin, that ``out_total * 2^out_lsb``
    is its exact sum and ``out_lsb`` is ``start + n - max_bins``, and that the result holds
    through the gaps that follow until the next valid bin."""
    dut = BinCombiner(bin_bits=bin_bits, max_bins=max_bins)
    clocks = _schedule(seqs, gaps)
    results = []

    async def bench(ctx):
        held = None                     # the last result, while no valid bin has followed it
        for clock in [*clocks, None, None]:
            valid = clock is not None
            ctx.set(dut.valid, valid)
            # a gap drives junk on the other inputs: they must not matter
            value, first, last, start, k = clock if valid else (-1, 1, 1, max_bins - 1, None)
            ctx.set(dut.value, value)
            ctx.set(dut.first, first)
            ctx.set(dut.last, last)
            ctx.set(dut.start, start)
            await ctx.tick()
            out = (ctx.get(dut.out_total), ctx.get(dut.out_lsb))
            pulse = ctx.get(dut.out_valid)
            assert pulse == (valid and last), (
                f"seed {seed}: out_valid {pulse} after {'bin' if valid else 'gap'} {clock}")
            if pulse:
                results.append(out)
                held = out
            elif valid:
                held = None
            elif held is not None:
                assert out == held, f"seed {seed}: result {held} changed to {out} in a gap"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()

    assert len(results) == len(seqs), f"seed {seed}: {len(results)} results, {len(seqs)} sent"
    for k, ((start, values), (total, lsb)) in enumerate(zip(seqs, results, strict=True)):
        want = _exact(start, values)
        assert _scaled_equal(total, lsb, want) and lsb == start + len(values) - max_bins, (
            f"seed {seed}: sequence {k} (start {start}, values {values}): got out_total "
            f"{total} * 2^{lsb} = {total * 2.0 ** lsb!r}, exact {want} (out_lsb expected "
            f"{start + len(values) - max_bins})")


def _random_seqs(rng, count, *, bin_bits, max_bins):
    """Random sequences: any start, any length (every fourth one max_bins long), bins drawn
    from the extremes, small values and the whole range, some sequences leaning to one sign
    (so that the carry reaches its extremes) and some ending on a bin whose sign is not the
    sum's."""
    lo, hi = -(1 << (bin_bits - 1)), (1 << (bin_bits - 1)) - 1
    seqs = []
    for k in range(count):
        n = max_bins if k % 4 == 0 else rng.randrange(1, max_bins + 1)
        lean = rng.choice([None, None, lo, hi])

        def draw(lean=lean):
            if lean is not None and rng.random() < 0.7:
                return lean
            pick = rng.choice([lo, hi, lo + 1, hi - 1, -1, 0, 1, rng.randrange(lo, hi + 1),
                               rng.randrange(lo, hi + 1)])
            return min(max(pick, lo), hi)       # 1-bit bins: -1 and 0 only

        values = [draw() for _ in range(n)]
        if k % 5 == 1 and n > 1 and bin_bits > 1:
            # the sum's sign set by the earlier bins, the last bin small of the other sign
            values[-1] = 1 if _exact(0, values[:-1]) < 0 else -1
        seqs.append((rng.randrange(max_bins), values))
    return seqs


def _random_gaps(rng):
    # mostly back to back (no gap between sequences, no gap between bins), sometimes a run
    return lambda i: 0 if rng.random() < 0.7 else rng.randrange(1, 4)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_sequences_default_size(seed):
    """16-bit bins, up to 64 of them: random sequences, gaps and back-to-back sequences."""
    print(f"seed {seed}")
    rng = random.Random(seed)
    seqs = _random_seqs(rng, 120, bin_bits=16, max_bins=64)
    # the sums whose sign is not the last bin's, and the sequences of 64 bins, must be there
    assert any((_exact(0, v) < 0) != (v[-1] < 0) and v[-1] for _, v in seqs)
    assert any(len(v) == 64 for _, v in seqs)
    _run(seqs, bin_bits=16, max_bins=64, gaps=_random_gaps(rng), seed=seed)


@pytest.mark.parametrize("bin_bits, max_bins, seed", [(4, 6, 4), (5, 3, 5), (3, 9, 6),
                                                      (1, 5, 7), (8, 1, 8), (1, 1, 9)])
def test_random_sequences_small_sizes(bin_bits, max_bins, seed):
    """Other shapes, down to one-bit bins and a single bin."""
    print(f"seed {seed}")
    rng = random.Random(seed)
    seqs = _random_seqs(rng, 150, bin_bits=bin_bits, max_bins=max_bins)
    _run(seqs, bin_bits=bin_bits, max_bins=max_bins, gaps=_random_gaps(rng), seed=seed)


def test_every_sequence_of_two_bit_bins():
    """2-bit bins, up to 4 of them: every sequence of every length, back to back, each start
    in turn."""
    values = [-2, -1, 0, 1]
    seqs = [(k % 4, list(vs)) for k, vs in enumerate(
        vs for n in range(1, 5) for vs in itertools.product(values, repeat=n))]
    assert len(seqs) == 4 + 16 + 64 + 256
    _run(seqs, bin_bits=2, max_bins=4)


def _carry_after(values):
    """The carry a correct combiner holds after ``values``: floor(partial sum / 2^n)."""
    return _exact(0, values) >> len(values)


def test_every_carry_meets_every_bin():
    """4-bit bins, up to 6 of them: for every carry the combiner can hold (-8 .. 6: reaching 7
    would take a carry of 7 already) and every bin (-8 .. 7), a sequence that reaches that
    carry and then adds that bin, once as its last bin and once followed by more; plus every
    sequence of one or two bins. So the adder sees every pair of operands it can meet, at the
    end of a sequence and before more bins."""
    bin_bits, max_bins = 4, 6
    lo, hi = -8, 7
    # the shortest sequence reaching each carry (breadth first from the carry 0)
    reach = {0: []}
    frontier = deque([0])
    while frontier:
        c = frontier.popleft()
        for v in range(lo, hi + 1):
            nxt = (c + v) >> 1
            if nxt not in reach:
                reach[nxt] = reach[c] + [v]
                frontier.append(nxt)
    assert sorted(reach) == list(range(lo, hi))
    assert max(len(p) for p in reach.values()) + 2 <= max_bins
    rng = random.Random(10)
    seqs, pairs = [], set()
    for c, prefix in sorted(reach.items()):
        assert _carry_after(prefix) == c
        for v in range(lo, hi + 1):
            tail = [rng.randrange(lo, hi + 1)
                    for _ in range(rng.randrange(1, max_bins - len(prefix)))]
            for values in (prefix + [v], prefix + [v] + tail):
                seqs.append((rng.randrange(max_bins), values))
            pairs.add((c, v))
    assert len(pairs) == 15 * 16
    seqs += [(rng.randrange(max_bins), list(vs)) for n in (1, 2)
             for vs in itertools.product(range(lo, hi + 1), repeat=n)]
    _run(seqs, bin_bits=bin_bits, max_bins=max_bins, gaps=_random_gaps(rng), seed=10)


def test_extreme_sequences_are_exact():
    """Every bin the most negative (the sum's most negative value: all of out_total's range
    below the spare bit is needed), every bin the most positive, alternating extremes, and a
    sum of 0 from nonzero bins; 16-bit bins, 64 of them, starting at 0 and at 63."""
    lo, hi = -(1 << 15), (1 << 15) - 1
    seqs = []
    for start in (0, 63):
        seqs += [(start, [lo] * 64), (start, [hi] * 64), (start, [lo, hi] * 32),
                 (start, [hi, lo] * 32), (start, [lo] * 63 + [1]),
                 (start, [-2, 1]), (start, [lo]), (start, [hi])]
    _run(seqs, bin_bits=16, max_bins=64)


def test_ports():
    dut = BinCombiner()
    members = dut.signature.members.items()
    assert [(name, m.flow.name, Shape.cast(m.shape)) for name, m in members] == [
        ("valid", "In", unsigned(1)), ("value", "In", signed(16)), ("first", "In", unsigned(1)),
        ("last", "In", unsigned(1)), ("start", "In", unsigned(6)),
        ("out_valid", "Out", unsigned(1)), ("out_total", "Out", signed(64 + 16 + 1)),
        ("out_lsb", "Out", signed(7))]
    small = {name: Shape.cast(m.shape)
             for name, m in BinCombiner(bin_bits=3, max_bins=5).signature.members.items()}
    assert small["start"] == unsigned(3) and small["out_lsb"] == signed(4)
    assert small["out_total"] == signed(5 + 3 + 1)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"bin_bits": 0}, ValueError, "bin_bits must be a positive integer, not 0"),
    ({"max_bins": -3}, ValueError, "max_bins must be a positive integer, not -3"),
    ({"bin_bits": True}, TypeError, "bin_bits must be a positive integer, not True"),
    ({"max_bins": 2.0}, TypeError, r"max_bins must be a positive integer, not 2\.0"),
    ({"max_bins": "64"}, TypeError, "max_bins must be a positive integer, not '64'"),
])
def test_rejects_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        BinCombiner(**kwargs)
