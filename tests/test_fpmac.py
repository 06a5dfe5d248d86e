# amaranth: UnusedElaboratable=no
"""The floating-point MAC baselines (``boards.fpmul``, ``boards.fpadd``, ``boards.fpmac``)
against the SoftFloat reference (``boards.fpref``), bit for bit, in Amaranth simulation; and the
reference itself against exact rational arithmetic."""

from __future__ import annotations

import random
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from stream_tb import consumer, run_beats  # (tests/ helper)

from boards import fpref
from boards.fpadd import STAGES, FmaAdd, acc_addend_range
from boards.fpmac import PRODUCT_STAGES, SLOTS, FmaArray, FmaCore, FmaPE, Reducer, unpack_acc
from boards.fpmul import Product, Unpack, product_exponent_range
from boards.mult18x18d import Mult18x18d
from contract import get_format

PAIRS = fpref.FMA_FORMATS

needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None,
                                  reason="Icarus Verilog not installed")


# -- exact rational reference (independent of SoftFloat) ------------------------------------

def _value(bits, fmt):
    """``(sign, Fraction | 'inf' | 'nan')`` of raw bits."""
    F, E = fmt.frac_bits, fmt.exp_bits
    s, e, f = bits >> (F + E), (bits >> F) & fmt.exp_max_field, bits & ((1 << F) - 1)
    if e == fmt.exp_max_field:
        return s, ("nan" if f else "inf")
    mag = Fraction(f, 1 << F) * Fraction(2) ** (1 - fmt.bias) if e == 0 else \
        Fraction((1 << F) | f, 1 << F) * Fraction(2) ** (e - fmt.bias)
    return s, mag


def _round(v: Fraction, fmt) -> int:
    """Nonzero exact ``v`` rounded to nearest even in ``fmt`` (raw bits)."""
    F, bias = fmt.frac_bits, fmt.bias
    s, a = int(v < 0), abs(v)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    e = max(e, 1 - bias)
    q = a / Fraction(2) ** (e - F)
    n = q.numerator // q.denominator
    rem = q - n
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n & 1):
        n += 1
    if n == 1 << (F + 1):
        n, e = n >> 1, e + 1
    if e > bias:
        return (s << (fmt.width - 1)) | (fmt.exp_max_field << F)
    field = 0 if n < (1 << F) else e + bias
    return (s << (fmt.width - 1)) | (field << F) | (n & ((1 << F) - 1))


def _exact_fma(a, b, c, i, acc):
    (sa, va), (sb, vb), (sc, vc) = _value(a, i), _value(b, i), _value(c, acc)
    nan = fpref.canonical_nan(acc)
    if "nan" in (va, vb, vc):
        return nan
    if (va == "inf" and vb == 0) or (va == 0 and vb == "inf"):
        return nan
    sp = sa ^ sb
    inf_bits = acc.exp_max_field << acc.frac_bits
    if "inf" in (va, vb):
        if vc == "inf" and sc != sp:
            return nan
        return (sp << (acc.width - 1)) | inf_bits
    if vc == "inf":
        return (sc << (acc.width - 1)) | inf_bits
    p = va * vb * (-1 if sp else 1)
    total = p + vc * (-1 if sc else 1)
    if total == 0:
        sign = sp & sc if (p == 0 and vc == 0) else 0
        return sign << (acc.width - 1)
    return _round(total, acc)


# -- operand generators -----------------------------------------------------------------------

def _specials(fmt):
    F, top = fmt.frac_bits, fmt.exp_max_field << fmt.frac_bits
    mags = [0, 1, (1 << F) - 1, 1 << F, top - 1, top, top | 1, top | (1 << (F - 1)),
            fmt.bias << F, (fmt.bias << F) | 1]
    return mags + [v | (1 << (fmt.width - 1)) for v in mags]


def _field(fmt, e, frac, sign):
    e = min(max(e, 0), fmt.exp_max_field - 1)
    return (sign << (fmt.width - 1)) | (e << fmt.frac_bits) | (frac & ((1 << fmt.frac_bits) - 1))


def _structured(rng, fmt, v):
    """``v`` with its fraction replaced by 0, all ones, one low bit, the top bit or a sparse
    pattern."""
    F = fmt.frac_bits
    frac = rng.choice([0, (1 << F) - 1, 1, 1 << (F - 1), (1 << F) - 2,
                       (1 << rng.randrange(F)) | (1 << rng.randrange(F))])
    return (v & ~((1 << F) - 1)) | frac


def fma_vectors(rng, in_fmt, acc_fmt, n):
    """``n`` operand triples ``(a, b, c)``: random bits, special values, and products with an
    accumulator of about their size (cancellation), far above or below them, near the
    subnormal range and near overflow."""
    i, acc = get_format(in_fmt), get_format(acc_fmt)
    spi, spa = _specials(i), _specials(acc)
    out = []
    for _ in range(n):
        kind = rng.randrange(8)
        a, b = rng.getrandbits(i.width), rng.getrandbits(i.width)
        if rng.random() < 0.4:                   # structured significands: exact powers of
            a = _structured(rng, i, a)           # two and near-powers products
            b = _structured(rng, i, b)
        if kind == 0:
            c = rng.getrandbits(acc.width)
        elif kind == 1:
            a, b, c = rng.choice(spi), rng.choice(spi), rng.choice(spa)
            if rng.random() < 0.5:
                a = rng.getrandbits(i.width)
        else:
            if kind == 6:                        # products near the subnormal range
                a = _field(i, rng.randrange(0, i.bias // 2 + 2), rng.getrandbits(16),
                           rng.getrandbits(1))
            elif kind == 7:                      # products near overflow
                a = _field(i, rng.randrange(i.bias, i.exp_max_field), rng.getrandbits(16),
                           rng.getrandbits(1))
            p = fpref.fma(a, b, 1 << (acc.width - 1), in_fmt=i, acc_fmt=acc)
            pe = (p >> acc.frac_bits) & acc.exp_max_field
            if pe == acc.exp_max_field:
                pe = acc.exp_max_field - 1
            if kind in (2, 3):                   # cancellation: -round(a*b) a few ulps off
                c = (p ^ (1 << (acc.width - 1))) + rng.randrange(-3, 4)
                c &= (1 << acc.width) - 1
            elif kind == 4:                      # nearby exponents
                c = _field(acc, pe + rng.randrange(-4, 5), rng.getrandbits(24),
                           rng.getrandbits(1))
            else:                                # far apart, either way
                off = rng.randrange(-2 * acc.frac_bits - 8, 2 * acc.frac_bits + 9)
                c = _field(acc, pe + off, rng.getrandbits(24), rng.getrandbits(1))
        out.append((a, b, c))
    return out


# -- simulation harnesses --------------------------------------------------------------------

class _FmaUnit(wiring.Component):
    """Unpack x2, Product, FmaAdd with the accumulator operand from a port (no loop)."""

    def __init__(self, in_fmt, acc_fmt):
        self.i, self.a = get_format(in_fmt), get_format(acc_fmt)
        super().__init__({"x": In(self.i.width), "y": In(self.i.width),
                          "c": In(self.a.width), "o": Out(self.a.width)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ux = ux = Unpack(fmt=self.i)
        m.submodules.uy = uy = Unpack(fmt=self.i)
        m.submodules.p = p = Product(fmt=self.i, bias=self.a.bias)
        lo, hi = product_exponent_range(self.i, self.a.bias)
        m.submodules.add = add = FmaAdd(acc_fmt=self.a, b_width=2 * (self.i.frac_bits + 1),
                                        e_lo=lo, e_hi=hi)
        m.d.comb += [ux.en.eq(1), uy.en.eq(1), p.en.eq(1), add.en.eq(1),
                     ux.x.eq(self.x), uy.x.eq(self.y), p.a.eq(ux.o), p.b.eq(uy.o),
                     add.b.eq(p.o), add.c.eq(self.c), self.o.eq(add.o)]
        return m


class _AddUnit(wiring.Component):
    """The reducer's adder: two accumulation-format values."""

    def __init__(self, acc_fmt):
        self.a = get_format(acc_fmt)
        super().__init__({"x": In(self.a.width), "c": In(self.a.width), "o": Out(self.a.width)})

    def elaborate(self, platform):
        m = Module()
        lo, hi = acc_addend_range(self.a)
        m.submodules.add = add = FmaAdd(acc_fmt=self.a, b_width=self.a.frac_bits + 1,
                                        e_lo=lo, e_hi=hi, b_lead_zero=False)
        m.d.comb += [add.en.eq(1), add.b.eq(unpack_acc(m, self.x, self.a)), add.c.eq(self.c),
                     self.o.eq(add.o)]
        return m


def _stream(dut, drives, lat, n):
    """Drive ``drives`` (``(port, values, delay)``: ``values[k]`` in clock ``k + delay``) and
    collect ``dut.o`` ``lat`` clocks after each vector."""
    got = []

    async def tb(ctx):
        for t in range(n + max(d for _, _, d in drives) + lat):
            for port, values, delay in drives:
                if 0 <= t - delay < n:
                    ctx.set(port, values[t - delay])
            await ctx.tick()
            if 0 <= t - lat + 1 < n:
                got.append(ctx.get(dut.o))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return got


def _first_mismatch(got, want, vecs, what, seed):
    bad = [k for k, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    if bad:
        k = bad[0]
        ops = " ".join(f"{v:#x}" for v in vecs[k])
        pytest.fail(f"{what} seed {seed}: {len(bad)} of {len(want)} differ; first: operands "
                    f"{ops}: got {got[k]:#x} want {want[k]:#x}")


@pytest.mark.parametrize("in_fmt,acc_fmt", PAIRS)
def test_reference_matches_exact_arithmetic(in_fmt, acc_fmt):
    i, acc = get_format(in_fmt), get_format(acc_fmt)
    seed = 11
    vecs = fma_vectors(random.Random(seed), i, acc, 3000)
    got = [fpref.fma(a, b, c, in_fmt=i, acc_fmt=acc) for a, b, c in vecs]
    want = [_exact_fma(a, b, c, i, acc) for a, b, c in vecs]
    _first_mismatch(got, want, vecs, f"fpref.fma {in_fmt}/{acc_fmt}", seed)
    one = acc.bias << acc.frac_bits                # add(x, y) == fma(x, 1.0, y) exactly
    pairs = add_vectors(random.Random(seed), acc, 3000)
    got = [fpref.add(x, y, acc_fmt=acc) for x, y in pairs]
    want = [_exact_fma(x, one, y, acc, acc) for x, y in pairs]
    _first_mismatch(got, want, pairs, f"fpref.add {acc_fmt}", seed)


@pytest.mark.parametrize("in_fmt,acc_fmt", PAIRS)
def test_fma_datapath_bit_exact(in_fmt, acc_fmt):
    """Unpack, Product and FmaAdd against SoftFloat's fused multiply-add."""
    seed, n = 3, 6000
    vecs = fma_vectors(random.Random(seed), in_fmt, acc_fmt, n)
    dut = _FmaUnit(in_fmt, acc_fmt)
    got = _stream(dut, [(dut.x, [v[0] for v in vecs], 0), (dut.y, [v[1] for v in vecs], 0),
                        (dut.c, [v[2] for v in vecs], 3)], 3 + STAGES, n)
    want = [fpref.fma(a, b, c, in_fmt=in_fmt, acc_fmt=acc_fmt) for a, b, c in vecs]
    _first_mismatch(got, want, vecs, f"FMA {in_fmt}/{acc_fmt}", seed)


def add_vectors(rng, acc_fmt, n):
    """``n`` pairs of accumulation-format values: random bits, specials, cancellation, near
    and far exponents, subnormals."""
    acc = get_format(acc_fmt)
    sp = _specials(acc)
    out = []
    for _ in range(n):
        kind = rng.randrange(6)
        x = rng.getrandbits(acc.width)
        if kind == 5:
            x = _field(acc, rng.randrange(0, 3), rng.getrandbits(24), rng.getrandbits(1))
        ex = (x >> acc.frac_bits) & acc.exp_max_field
        if kind == 0:
            c = rng.getrandbits(acc.width)
        elif kind == 1:
            x, c = rng.choice(sp), rng.choice(sp + [x])
        elif kind == 2:
            c = ((x ^ (1 << (acc.width - 1))) + rng.randrange(-3, 4)) & ((1 << acc.width) - 1)
        elif kind == 3:
            c = _field(acc, ex + rng.randrange(-3, 4), rng.getrandbits(24), rng.getrandbits(1))
        else:
            c = _field(acc, ex + rng.randrange(-acc.frac_bits - 6, acc.frac_bits + 7),
                       rng.getrandbits(24), rng.getrandbits(1))
        out.append((x, c))
    return out


@pytest.mark.parametrize("acc_fmt", ["fp16", "fp32", "bf16"])
def test_reducer_adder_bit_exact(acc_fmt):
    """FmaAdd with an accumulation-format addend (the reducer's adder) against SoftFloat."""
    seed, n = 5, 4000
    vecs = add_vectors(random.Random(seed), acc_fmt, n)
    dut = _AddUnit(acc_fmt)
    got = _stream(dut, [(dut.x, [v[0] for v in vecs], 0), (dut.c, [v[1] for v in vecs], 0)],
                  STAGES, n)
    want = [fpref.add(c, x, acc_fmt=acc_fmt) for x, c in vecs]
    _first_mismatch(got, want, vecs, f"reducer add {acc_fmt}", seed)


# -- the array: sequencing, padding, flushing, capture and reduction ---------------------------

def _dot_operand(rng, fmt):
    """Mostly finite values of moderate size, some subnormals, zeros and specials."""
    r = rng.random()
    if r < 0.02:
        return rng.choice(_specials(fmt))
    if r < 0.08:
        return _field(fmt, 0, rng.getrandbits(24), rng.getrandbits(1))
    return _field(fmt, fmt.bias + rng.randrange(-6, 6), rng.getrandbits(24), rng.getrandbits(1))


@pytest.mark.parametrize("in_fmt,acc_fmt,rows,cols,gaps,stalls", [
    ("fp16", "fp16", 2, 2, 0.0, 0.0),
    ("fp16", "fp16", 1, 3, 0.3, 0.3),
    ("fp16", "fp32", 2, 1, 0.2, 0.5),
    ("bf16", "fp32", 1, 2, 0.0, 0.2),
    ("bf16", "bf16", 3, 3, 0.1, 0.0),
])
def test_array_dot_products_bit_exact(in_fmt, acc_fmt, rows, cols, gaps, stalls):
    """Back-to-back dot products of lengths 1 .. 3L (short ones padded), with input gaps
    and output stalls, against ``fpref.dot`` for every PE."""
    seed = 17
    rng = random.Random(seed)
    i = get_format(in_fmt)
    lengths = [1, SLOTS - 1, SLOTS, SLOTS + 1, 2, 3 * SLOTS, 13]
    beats, want = [], []
    for k in lengths:
        xs = [[_dot_operand(rng, i) for _ in range(rows)] for _ in range(k)]
        ws = [[_dot_operand(rng, i) for _ in range(cols)] for _ in range(k)]
        beats += [(xs[t], ws[t], int(t == k - 1)) for t in range(k)]
        want += [fpref.dot([xs[t][r] for t in range(k)], [ws[t][c] for t in range(k)],
                           slots=SLOTS, in_fmt=in_fmt, acc_fmt=acc_fmt)
                 for r in range(rows) for c in range(cols)]
    dut = FmaArray(rows=rows, cols=cols, in_fmt=in_fmt, acc_fmt=acc_fmt,
                   dsps=(rows * cols) // 2)
    got = run_beats(dut, beats, len(want), rng=random.Random(seed + 1), gaps=gaps,
                     stalls=stalls, limit=40 * len(beats) + 4000)
    assert len(got) == len(want), f"seed {seed}: {len(got)} of {len(want)} results came out"
    for j, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, (f"{in_fmt}/{acc_fmt} {rows}x{cols} seed {seed}: result {j} (dot "
                        f"product {j // (rows * cols)}, PE {j % (rows * cols)}): got {g:#x} "
                        f"want {w:#x}")


@pytest.mark.parametrize("acc_fmt,n,slots,stalls", [
    ("fp16", 70, SLOTS, 0.0),            # 12 groups of STAGES, the last one short
    ("fp32", 2 * STAGES, 3, 0.3),        # whole groups, fewer rounds than the adder's depth
])
def test_reducer_many_inputs(acc_fmt, n, slots, stalls):
    """The reducer on its own with more inputs than a group: each drain chain ``k`` presents
    the values of inputs ``k``, ``k + STAGES``, ... one after the other (advancing on its
    ``shift``); the sums stream out in input order, each ``((-0 + v0) + v1) + ...`` rounded
    as ``fpref.add``."""
    seed = 29
    rng = random.Random(seed)
    acc = get_format(acc_fmt)
    vals = [[_dot_operand(rng, acc) for _ in range(slots)] for _ in range(n)]
    want = []
    for vs in vals:
        r = 1 << (acc.width - 1)
        for v in vs:
            r = fpref.add(r, v, acc_fmt=acc_fmt)
        want.append(r)
    dut = Reducer(acc_fmt=acc_fmt, n=n, slots=slots)
    chains = [[v for q in range(k, n, STAGES) for v in vals[q]] for k in range(dut.chains)]
    out, busy_clocks = [], []
    limit = 4 * slots * STAGES * (n + STAGES) + 100

    async def driver(ctx):
        pos = [0] * len(chains)
        for k, chain in enumerate(chains):
            ctx.set(dut.v[k], chain[0])
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        shift = 0                   # shift_next of the clock before: the chains move now
        for _ in range(limit):
            *_, shift_next, busy = await ctx.tick().sample(dut.shift_next, dut.busy)
            busy_clocks.append(busy)
            for k, chain in enumerate(chains):
                if (shift >> k) & 1:
                    pos[k] += 1
                    ctx.set(dut.v[k], chain[pos[k]] if pos[k] < len(chain) else 0)
            shift = shift_next

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(consumer(dut.o, out, limit=limit, stalls=stalls,
                               rng=random.Random(seed + 1)))
    sim.run()
    assert len(out) == n, f"seed {seed}: {len(out)} of {n} sums came out"
    for q, (g, w) in enumerate(zip(out, want, strict=True)):
        assert g == w, f"{acc_fmt} n={n} seed {seed}: input {q}: got {g:#x} want {w:#x}"
    if not stalls:      # one read per clock: slots rounds of STAGES clocks per group
        assert sum(busy_clocks) == slots * STAGES * -(-n // STAGES)


@pytest.mark.parametrize("rows,cols", [(9, 8)])
def test_array_more_than_64_pes(rows, cols):
    """An array of more than 64 PEs (several reducer groups, the last one short): back-to-back
    dot products against ``fpref.dot`` for every PE."""
    seed = 31
    rng = random.Random(seed)
    i = get_format("fp16")
    beats, want = [], []
    for k in (1, SLOTS + 1, 2 * SLOTS):
        xs = [[_dot_operand(rng, i) for _ in range(rows)] for _ in range(k)]
        ws = [[_dot_operand(rng, i) for _ in range(cols)] for _ in range(k)]
        beats += [(xs[t], ws[t], int(t == k - 1)) for t in range(k)]
        want += [fpref.dot([xs[t][r] for t in range(k)], [ws[t][c] for t in range(k)],
                           slots=SLOTS, in_fmt="fp16", acc_fmt="fp16")
                 for r in range(rows) for c in range(cols)]
    dut = FmaArray(rows=rows, cols=cols, in_fmt="fp16", acc_fmt="fp16", dsps=rows * cols - 1)
    got = run_beats(dut, beats, len(want), rng=random.Random(seed + 1), gaps=0.1,
                     stalls=0.1, limit=4 * SLOTS * SLOTS * (rows * cols + SLOTS))
    assert len(got) == len(want), f"seed {seed}: {len(got)} of {len(want)} results came out"
    for j, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, (f"{rows}x{cols} seed {seed}: result {j} (dot product "
                        f"{j // (rows * cols)}, PE {j % (rows * cols)}): got {g:#x} want {w:#x}")


def test_largest_reducer_elaborates():
    """The largest array's reducer (4096 inputs) elaborates; the 64 x 64 array constructs."""
    from amaranth.hdl import Fragment

    Fragment.get(Reducer(n=64 * 64), None)
    assert FmaArray(rows=64, cols=64).macs_per_cycle == 4096


def test_pe_loop_partial_sums():
    """The stand-alone PE: L interleaved fused-MAC chains in its loop register."""
    seed, k = 23, 4 * SLOTS + 3
    rng = random.Random(seed)
    i = get_format("fp16")
    a = [_dot_operand(rng, i) for _ in range(k)]
    b = [_dot_operand(rng, i) for _ in range(k)]
    dut = FmaPE(in_fmt="fp16", acc_fmt="fp16")
    seen = []

    async def tb(ctx):
        ctx.set(dut.en, 1)
        for t in range(k + 1 + PRODUCT_STAGES + STAGES + SLOTS):
            ctx.set(dut.a, a[t] if t < k else 0)
            ctx.set(dut.b, b[t] if t < k else 0)
            ctx.set(dut.clear, int(0 <= t - 1 - PRODUCT_STAGES < SLOTS))  # beats 0 .. L-1 fresh
            await ctx.tick()
            seen.append(ctx.get(dut.o))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    s = [0x8000] * SLOTS
    for t in range(k):
        s[t % SLOTS] = fpref.fma(a[t], b[t], s[t % SLOTS])
    # beat t's partial sum is in the loop register after the edge of clock t + 2 +
    # PRODUCT_STAGES - 1 + STAGES
    last = {t % SLOTS: t for t in range(k)}
    for j, t in last.items():
        got = seen[t + 1 + PRODUCT_STAGES + STAGES]
        assert got == s[j], f"seed {seed}: slot {j}: got {got:#x} want {s[j]:#x}"


def test_bad_arguments():
    with pytest.raises(ValueError, match="unsupported input/accumulation formats fp32/fp16"):
        FmaArray(rows=1, cols=1, in_fmt="fp32", acc_fmt="fp16")
    with pytest.raises(ValueError, match="rows must be in"):
        FmaArray(rows=0, cols=1)
    with pytest.raises(TypeError, match="cols must be an integer"):
        FmaArray(rows=1, cols="2")
    with pytest.raises(ValueError, match="dsps must be a non-negative integer"):
        FmaArray(rows=1, cols=1, dsps=-1)
    with pytest.raises(ValueError, match="mult must be one of dsp, lut, mult18x18d"):
        FmaCore(mult="booth")
    with pytest.raises(ValueError, match="slots must be in"):
        Reducer(n=2, slots=0)
    with pytest.raises(ValueError, match=r"rows must be in \[1, 64\], not 65"):
        FmaArray(rows=65, cols=1)
    with pytest.raises(ValueError, match=r"n must be in \[1, 4096\], not 4097"):
        Reducer(n=4097)
    with pytest.raises(ValueError, match="slots must be a positive integer"):
        fpref.dot([0], [0], slots=0)
    with pytest.raises(ValueError, match="mult must be one of dsp, mult18x18d, not 'lut'"):
        FmaArray(rows=1, cols=1, mult="lut")
    with pytest.raises(ValueError, match="stages must be at least 2 with mult='mult18x18d', not 1"):
        Product(mult="mult18x18d", stages=1)
    with pytest.raises(ValueError, match="stages must be at least 1 with mult='dsp', not 0"):
        Product(stages=0)
    with pytest.raises(TypeError, match="stages must be an integer, not 2.0"):
        Product(stages=2.0)
    with pytest.raises(ValueError, match=r"a_width must be in \[1, 18\], not 19"):
        Mult18x18d(a_width=19, b_width=8)


@pytest.mark.slow
@pytest.mark.parametrize("in_fmt,acc_fmt", [("fp16", "fp16"), ("bf16", "fp32")])
def test_array_verilator(tmp_path, in_fmt, acc_fmt):
    """The generated Verilog of a 2x2 array on Verilator (cocotb, ``sim/fma_tb.py``):
    random dot products against ``fpref.dot``."""
    import json

    from hw.emit import to_verilog
    from sim.runner import BUILD_ROOT, build_top, run_cocotb

    cfg = {"in_fmt": in_fmt, "acc_fmt": acc_fmt, "rows": 2, "cols": 2}
    top = FmaArray(rows=2, cols=2, in_fmt=in_fmt, acc_fmt=acc_fmt, dsps=2)
    runner, bdir, _ = build_top("densehw_baseline", to_verilog(top, name="densehw_baseline"),
                                BUILD_ROOT / f"fma_{in_fmt}_{acc_fmt}", "verilator")
    result = tmp_path / "result.json"
    err = run_cocotb(runner, top="densehw_baseline", test_module="sim.fma_tb", build_dir=bdir,
                     run_dir=tmp_path, testcases=["test_random_dot_products"],
                     env={"DENSEHW_FMA": json.dumps(cfg), "DENSEHW_SEED": "7",
                          "DENSEHW_DOTS": "1500", "DENSEHW_RESULT": str(result)},
                     log=tmp_path / "sim.log", results_xml=tmp_path / "results.xml")
    assert err is None, err
    report = json.loads(result.read_text())
    assert report["received"] == report["vectors"] and report["mismatches"] == 0, report


MULT18X18D_MODEL = Path(__file__).resolve().parents[1] / "sim" / "models" / "mult18x18d.v"


def _run_fma_array_rtl(tmp_path, verilog, tag, cfg, dots):
    """Random dot products on the Verilog ``verilog`` of an FMA array (``sim/fma_tb.py`` on
    Icarus); the report."""
    import json

    from sim.runner import BUILD_ROOT, build_top, run_cocotb

    runner, bdir, _ = build_top("densehw_baseline", verilog, BUILD_ROOT / f"fma_{tag}", "icarus")
    result = tmp_path / "result.json"
    err = run_cocotb(runner, top="densehw_baseline", test_module="sim.fma_tb", build_dir=bdir,
                     run_dir=tmp_path, testcases=["test_random_dot_products"],
                     env={"DENSEHW_FMA": json.dumps(cfg), "DENSEHW_SEED": "11",
                          "DENSEHW_DOTS": str(dots), "DENSEHW_RESULT": str(result)},
                     log=tmp_path / "sim.log", results_xml=tmp_path / "results.xml")
    report = json.loads(result.read_text())
    return err, report


def _mult18x18d_verilog(cfg, output_reg="CLK0"):
    from hw.emit import to_verilog

    top = FmaArray(rows=cfg["rows"], cols=cfg["cols"], in_fmt=cfg["in_fmt"],
                   acc_fmt=cfg["acc_fmt"], dsps=cfg["dsps"], mult="mult18x18d")
    text = to_verilog(top, name="densehw_baseline")
    assert text.count("MULT18X18D #(") == cfg["dsps"]
    assert text.count('.REG_OUTPUT_CLK("CLK0")') == cfg["dsps"]
    return text.replace('.REG_OUTPUT_CLK("CLK0")', f'.REG_OUTPUT_CLK("{output_reg}")') + \
        "\n" + MULT18X18D_MODEL.read_text()


@needs_icarus
@pytest.mark.parametrize("in_fmt,acc_fmt", [("fp16", "fp16"), ("bf16", "fp32")])
def test_array_mult18x18d_rtl_icarus(tmp_path, in_fmt, acc_fmt):
    """The ECP5 flavour of the array (MULT18X18D with its input and output registers for 3 of
    the 4 PEs, LUT multipliers for the last) with the primitive's model on Icarus: random
    dot products (specials, subnormals, gaps, stalls) against ``fpref.dot``, bit for bit."""
    cfg = {"in_fmt": in_fmt, "acc_fmt": acc_fmt, "rows": 2, "cols": 2, "dsps": 3}
    err, report = _run_fma_array_rtl(tmp_path, _mult18x18d_verilog(cfg),
                                     f"m18_{in_fmt}_{acc_fmt}", cfg, 250)
    assert err is None, err
    assert report["received"] == report["vectors"] and report["mismatches"] == 0, report


@needs_icarus
def test_array_mult18x18d_latency_is_checked(tmp_path):
    """The same RTL with the block's output register left out (products one clock early)
    fails: the test above depends on the primitive's configuration."""
    cfg = {"in_fmt": "fp16", "acc_fmt": "fp16", "rows": 2, "cols": 2, "dsps": 3}
    err, report = _run_fma_array_rtl(tmp_path, _mult18x18d_verilog(cfg, output_reg="NONE"),
                                     "m18_noreg", cfg, 40)
    assert report["mismatches"] > 0, (err, report)
