# amaranth: UnusedElaboratable=no
"""ShiftDotUnit in the Amaranth simulator against the scalar reference in ``hw_reference``.

Random tests use fixed seeds; a mismatch reports seed, index, inputs and both outputs in hex.
"""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator
from hw_reference import dot_reference

from contract import DotConfig
from hw.dot import ShiftDotUnit, in_layout

# -- stimulus ---------------------------------------------------------------------------------


def _specials(fmt):
    s = fmt.sign_mask
    vals = [0, fmt.pos_inf, fmt.canonical_nan, fmt.pos_inf | 1, fmt.pos_inf | fmt.frac_mask,
            1, fmt.frac_mask, 1 << fmt.frac_bits, fmt.max_finite,
            fmt.max_finite - 1, (fmt.bias << fmt.frac_bits)]
    return vals + [v | s for v in vals]


def rand_float(fmt, rng, special_rate, window=None):
    """A raw pattern: a special (rate ``special_rate``) or a random finite number whose exponent
    field lies in ``window`` (default: anywhere finite)."""
    if rng.random() < special_rate:
        return rng.choice(_specials(fmt))
    lo, hi = window if window else (0, fmt.exp_max_field - 1)
    exp = rng.randint(max(lo, 0), min(hi, fmt.exp_max_field - 1))
    return (rng.getrandbits(1) << (fmt.width - 1)) | (exp << fmt.frac_bits) | rng.getrandbits(
        fmt.frac_bits)


class Dot:
    """One dot product: beats of (xs, codes, keep), e0, bias bits or None, relu."""

    def __init__(self, beats, e0, bias, relu):
        self.beats, self.e0, self.bias, self.relu = beats, e0, bias, relu

    def terms(self):
        xs, ws = [], []
        for bx, bw, keep in self.beats:
            for j, (x, w) in enumerate(zip(bx, bw, strict=True)):
                if keep >> j & 1:
                    xs.append(x)
                    ws.append(w)
        return xs, ws

    def expected(self, config):
        xs, ws = self.terms()
        return dot_reference(config, xs, ws, self.e0, bias=self.bias, relu=self.relu)

    def __repr__(self):
        beats = "; ".join(
            f"x=[{', '.join(f'{x:#x}' for x in bx)}] w=[{', '.join(f'{w:#x}' for w in bw)}] "
            f"keep={keep:#x}" for bx, bw, keep in self.beats)
        bias = "none" if self.bias is None else f"{self.bias:#x}"
        return f"Dot({beats}; e0={self.e0}, bias={bias}, relu={int(self.relu)})"


def _weight(config, code, e0):
    b = config.wbits
    s, p = code >> (b - 1), code & ((1 << (b - 1)) - 1)
    return Fraction(2) ** (e0 + p) * (-1 if s else 1)


def _exact(config, xs, ws, e0):
    return sum((config.in_fmt.to_fraction(x) * _weight(config, w, e0)
                for x, w in zip(xs, ws, strict=True)), Fraction(0))


def _product_equal_to(config, rng, value, e0):
    """A term ``(x, code)`` whose product is exactly ``value`` (nonzero), or None."""
    fi = config.in_fmt
    p = rng.randint(0, config.pmax)
    scale = Fraction(2) ** (e0 + p)
    x = fi.from_fraction(abs(value) / scale)
    if fi.is_inf(x) or fi.to_fraction(x) * scale != abs(value):
        return None
    sx = rng.getrandbits(1)
    s = sx ^ (value < 0)
    return (x | (sx << (fi.width - 1)), (s << (config.wbits - 1)) | p)


def _tie_terms(config, rng, e0):
    """Terms (and a bias) whose exact sum is an output value plus or minus half an ulp,
    optionally nudged by a tiny term (sticky): round-to-nearest-even corner cases."""
    fi, fo = config.in_fmt, config.out_fmt
    for _ in range(20):
        terms, bias = [], None
        if rng.random() < 0.5:                         # base value from the bias
            bias = rand_float(fo, rng, 0)
            if fo.is_inf(bias) or fo.is_nan(bias):
                continue
            base = fo.to_fraction(bias)
        else:                                          # base value from a product
            x = rand_float(fi, rng, 0)
            code = rng.getrandbits(config.wbits)
            base = fi.to_fraction(x) * _weight(config, code, e0)
            o = fo.from_fraction(base)
            if fo.is_inf(o) or fo.to_fraction(o) != base:
                continue
            terms.append((x, code))
        o = fo.from_fraction(base)
        exp = max(fo.fields(o)[1], 1)
        half = Fraction(2) ** (exp - fo.bias - fo.frac_bits - 1)
        tie = _product_equal_to(config, rng, half * rng.choice([1, -1]), e0)
        if tie is None:
            continue
        terms.append(tie)
        if rng.random() < 0.5:
            nudge = _product_equal_to(config, rng, half / 2 ** rng.randint(1, 12)
                                      * rng.choice([1, -1]), e0)
            if nudge is not None:
                terms.append(nudge)
        rng.shuffle(terms)
        return terms, bias
    return [(rand_float(fi, rng, 0), rng.getrandbits(config.wbits))], None


def _distribute(config, rng, terms, special_rate):
    """Spread terms over beats: random kept lanes, dropped lanes hold garbage (specials too),
    sometimes a beat with no kept lane."""
    fi, lanes = config.in_fmt, config.lanes
    beats, i = [], 0
    while i < len(terms) or not beats:
        xs = [rand_float(fi, rng, max(special_rate, 0.3)) for _ in range(lanes)]
        ws = [rng.getrandbits(config.wbits) for _ in range(lanes)]
        keep = 0
        if rng.random() >= 0.1 or i >= len(terms):
            for j in range(lanes):
                if i < len(terms) and (rng.random() < 0.75 or j == lanes - 1):
                    xs[j], ws[j] = terms[i]
                    keep |= 1 << j
                    i += 1
        beats.append((xs, ws, keep))
    return beats


MODES = ["wide", "cluster", "cluster", "tiny", "cancel", "zeros", "tie", "tie", "bias_cancel"]


def random_dots(config, rng, count, *, special_rate=0.15, max_beats=3, bias_rate=0.7,
                relu_rate=0.2, e0_values=None, modes=MODES):
    """Random dot products mixing modes that stress different parts of the data path:
    ``wide`` (any exponent), ``cluster`` (nearby exponents: cancellation, rounding),
    ``tiny`` (subnormal region), ``cancel`` (terms and their exact negations), ``zeros``
    (signed zeros: the -0 rule across beats), ``tie`` (sums half an ulp off an output value,
    with or without a sticky nudge) and ``bias_cancel`` (the bias nearly cancels the sum)."""
    fi, fo = config.in_fmt, config.out_fmt
    dots = []
    for _ in range(count):
        mode = rng.choice(modes)
        if e0_values is not None:
            e0 = rng.choice(e0_values)
        else:
            e0 = rng.choice([config.e0_min, config.e0_max,
                             rng.randint(config.e0_min, config.e0_max)])
        rate = special_rate if mode in ("wide", "cluster", "tiny") else special_rate / 4
        n = rng.randint(1, max_beats * config.lanes)
        window = None
        if mode == "cluster":
            c = rng.randint(0, fi.exp_max_field - 1)
            window = (c - 2, c + 2)
        elif mode == "tiny":
            window = (0, 3)
        bias = rand_float(fo, rng, rate) if rng.random() < bias_rate else None
        if mode == "tie":
            terms, bias = _tie_terms(config, rng, e0)
        elif mode == "zeros":
            negative = rng.random() < 0.6
            terms = []
            for _ in range(n):
                code = rng.getrandbits(config.wbits)
                sx = (code >> (config.wbits - 1)) ^ negative
                if rng.random() < 0.15:
                    sx ^= 1
                terms.append((sx << (fi.width - 1), code))
            bias = rng.choice([None, fo.sign_mask, fo.sign_mask, 0])
        else:
            terms = [(rand_float(fi, rng, rate, window), rng.getrandbits(config.wbits))
                     for _ in range(n)]
            if mode == "cancel":
                terms = terms[:(n + 1) // 2]
                terms += [(x ^ fi.sign_mask, w) for x, w in terms[:n // 2]]
                rng.shuffle(terms)
        dot = Dot(_distribute(config, rng, terms, special_rate), e0, bias,
                  rng.random() < relu_rate)
        if mode == "bias_cancel":
            xs, ws = dot.terms()
            if not any(fi.is_nan(x) or fi.is_inf(x) for x in xs):
                dot.bias = fo.from_fraction(-_exact(config, xs, ws, e0))
                if fo.is_inf(dot.bias):
                    dot.bias = fo.max_finite | (dot.bias & fo.sign_mask)
        dots.append(dot)
    return dots


def pack_beat(config, layout, xs, ws, keep, *, last, has_bias, relu, e0, bias):
    fi = config.in_fmt
    fields = {
        "x": sum(x << (j * fi.width) for j, x in enumerate(xs)),
        "w": sum(w << (j * config.wbits) for j, w in enumerate(ws)),
        "keep": keep, "last": int(last), "has_bias": int(has_bias), "relu": int(relu),
        "e0": e0 & ((1 << config.e0_bits) - 1), "bias": bias,
    }
    return sum(value << layout[name].offset for name, value in fields.items())


def beats_of(config, dots, *, seed=0):
    """Raw payloads of all beats, in order. Fields sampled on the last beat only (``has_bias``,
    ``relu``, ``e0``, ``bias``) carry random garbage on the other beats."""
    layout = in_layout(config)
    rng = random.Random(seed)
    out = []
    for dot in dots:
        for n, (xs, ws, keep) in enumerate(dot.beats):
            if n == len(dot.beats) - 1:
                out.append(pack_beat(config, layout, xs, ws, keep, last=True,
                                     has_bias=dot.bias is not None, relu=dot.relu, e0=dot.e0,
                                     bias=dot.bias or 0))
            else:
                out.append(pack_beat(config, layout, xs, ws, keep, last=False,
                                     has_bias=rng.getrandbits(1), relu=rng.getrandbits(1),
                                     e0=rng.getrandbits(config.e0_bits),
                                     bias=rng.getrandbits(config.out_fmt.width)))
    return out


# -- harness ----------------------------------------------------------------------------------


def _top(config):
    dut = ShiftDotUnit(config=config)
    m = Module()
    m.domains.sync = cd = ClockDomain("sync")
    m.submodules.dut = dut
    return m, dut, cd


def run_dots(config, dots, *, seed=0, stall=0.0, bubble=0.0):
    """Stream ``dots`` through the unit with random input bubbles and output stalls; returns the
    results. Checks that a stalled result stays stable and that nothing extra comes out."""
    m, dut, _ = _top(config)
    payloads = beats_of(config, dots, seed=seed)
    rng_in, rng_out = random.Random(seed * 2 + 1), random.Random(seed * 2 + 2)
    results = []
    limit = 20 + (len(payloads) + len(dots)) * (4 + int(20 * max(stall, bubble)))

    async def producer(ctx):
        for payload in payloads:
            while rng_in.random() < bubble:
                ctx.set(dut.i.valid, 0)
                ctx.set(dut.i.payload.as_value(), rng_in.getrandbits(len(dut.i.payload.as_value())))
                await ctx.tick()
            ctx.set(dut.i.payload.as_value(), payload)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        held = None
        cycles = 0
        while len(results) < len(dots):
            ready = rng_out.random() >= stall
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycles += 1
            assert cycles < limit, f"only {len(results)} of {len(dots)} results after {cycles}"
            if valid and held is not None:
                assert payload == held, f"result changed while stalled: {held:#x} -> {payload:#x}"
            if valid and ready:
                results.append(payload)
                held = None
            elif valid:
                held = payload
        ctx.set(dut.o.ready, 1)
        for _ in range(2 * config.pipeline + 4):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            assert not valid, "an extra result came out"

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return results


def check(config, dots, results, seed):
    assert len(results) == len(dots)
    bad = []
    for index, (dot, got) in enumerate(zip(dots, results, strict=True)):
        want = dot.expected(config)
        if got != want:
            bad.append(f"seed={seed} index={index} {dot!r}: expected {want:#x}, got {got:#x}")
    assert not bad, f"{config.name}: {len(bad)} mismatches\n" + "\n".join(bad[:10])


def run_random(config, *, seed, count, stall=0.0, bubble=0.0, **kw):
    dots = random_dots(config, random.Random(seed), count, **kw)
    check(config, dots, run_dots(config, dots, seed=seed, stall=stall, bubble=bubble), seed)


# -- tests ------------------------------------------------------------------------------------

CONFIGS = {
    "fp16_b3_l4_p1": DotConfig(pipeline=1),
    "fp16_b3_l4_p2": DotConfig(pipeline=2),
    "fp16_b3_l4_p3": DotConfig(pipeline=3),
    "fp16_b3_l4_p4": DotConfig(pipeline=4),
    "fp16_b2_l1_p2": DotConfig(wbits=2, lanes=1),
    "fp16_b4_l3_p3": DotConfig(wbits=4, lanes=3, pipeline=3),
    "fp8_b2_l1_p1": DotConfig(in_fmt="fp8_e5m2", wbits=2, lanes=1, pipeline=1),
    "fp8_b5_l4_p4": DotConfig(in_fmt="fp8_e5m2", wbits=5, lanes=4, pipeline=4),
    "fp8_fp16_b3_l3_p2": DotConfig(in_fmt="fp8_e5m2", out_fmt="fp16", lanes=3),
    "fp16_fp32_b3_l4_p3": DotConfig(out_fmt="fp32", pipeline=3),
    "bf16_b5_l3_p4": DotConfig(in_fmt="bf16", wbits=5, lanes=3, pipeline=4),
    "fp16_e0neg_b3_l4_p2": DotConfig(e0_min=-20, e0_max=-12, max_k=64),
    "fp16_e0pos_b4_l4_p1": DotConfig(wbits=4, e0_min=10, e0_max=15, max_k=16, pipeline=1),
}
COUNTS = {"bf16_b5_l3_p4": 60, "fp16_fp32_b3_l4_p3": 80}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_random(name):
    config = CONFIGS[name]
    run_random(config, seed=sum(map(ord, name)), count=COUNTS.get(name, 150))


@pytest.mark.parametrize("pipeline", [1, 2, 3, 4])
def test_backpressure_and_bubbles(pipeline):
    config = DotConfig(wbits=3, lanes=3, pipeline=pipeline, max_k=64)
    for seed, (stall, bubble) in enumerate([(0.5, 0.0), (0.0, 0.5), (0.4, 0.4), (0.8, 0.1)]):
        run_random(config, seed=100 + 10 * pipeline + seed, count=40, stall=stall,
                   bubble=bubble, max_beats=2)


@pytest.mark.parametrize("pipeline", [1, 2, 3, 4])
def test_throughput_and_latency(pipeline):
    """With o always ready: one beat per clock, each result ``pipeline`` cycles after its last
    beat."""
    config = DotConfig(lanes=2, pipeline=pipeline, max_k=64)
    dots = random_dots(config, random.Random(pipeline), 24, max_beats=1)
    payloads = beats_of(config, dots)
    m, dut, _ = _top(config)
    accepted, produced = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(len(payloads) + pipeline + 3):
            if cycle < len(payloads):
                ctx.set(dut.i.payload.as_value(), payloads[cycle])
            ctx.set(dut.i.valid, cycle < len(payloads))
            _, _, ready, valid, out = await ctx.tick().sample(dut.i.ready, dut.o.valid,
                                                              dut.o.payload)
            if cycle < len(payloads) and ready:
                accepted.append(cycle)
            if valid:
                produced.append((cycle, out))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert accepted == list(range(len(payloads)))
    last_bit = in_layout(config)["last"].offset
    lasts = [n for n, payload in enumerate(payloads) if payload >> last_bit & 1]
    assert len(lasts) == len(dots)
    assert [c for c, _ in produced] == [accepted[n] + pipeline for n in lasts]
    check(config, dots, [v for _, v in produced], seed=pipeline)


@pytest.mark.parametrize("pipeline", [1, 2, 3, 4])
def test_reset(pipeline):
    """Reset drops a half-accumulated dot product and a stalled result; the unit then starts
    clean (the next dot's sum and flags do not inherit anything)."""
    config = DotConfig(lanes=2, pipeline=pipeline, max_k=64)
    fi = config.in_fmt
    one, nan, ninf = 0x3C00, fi.canonical_nan, fi.neg_inf
    layout = in_layout(config)
    poison = pack_beat(config, layout, [nan, ninf], [0, 0], 3, last=False, has_bias=False,
                       relu=False, e0=0, bias=0)
    stalled = pack_beat(config, layout, [one, one], [0, 0], 3, last=True, has_bias=False,
                        relu=False, e0=0, bias=0)
    clean = Dot([([one, 0x4000], [0, 4], 3)], 0, 0x8000, False)        # 1 - 2 + (-0) = -1
    m, dut, cd = _top(config)
    got = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        for payload in (stalled, poison, poison):
            ctx.set(dut.i.payload.as_value(), payload)
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        await ctx.tick().repeat(pipeline + 2)
        ctx.set(cd.rst, 1)
        await ctx.tick()
        ctx.set(cd.rst, 0)
        _, _, valid = await ctx.tick().sample(dut.o.valid)
        assert not valid, "result survived reset"
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload.as_value(), beats_of(config, [clean])[0])
        ctx.set(dut.i.valid, 1)
        await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        for _ in range(pipeline + 3):
            _, _, valid, out = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                got.append(out)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [0xBC00], [hex(v) for v in got]
    assert clean.expected(config) == 0xBC00


def _directed_fp16():
    """Hand-made corner cases for fp16 in/out, B=3: ties, sticky, carry-out, overflow,
    underflow with sign, exact zero signs, infinities and NaN rules, ReLU."""
    f = DotConfig().in_fmt
    one, half_ulp = 0x3C00, 0x1000               # 1.0 and 2**-11 (half an ulp of 1.0)
    tiny = 0x0001                                # 2**-24
    odd = 0x3C01                                 # 1 + 2**-10
    cases = [
        ([one, half_ulp], [0, 0], 0, None),                  # tie -> even (1.0)
        ([odd, half_ulp], [0, 0], 0, None),                  # tie -> even (up)
        ([one, half_ulp, tiny], [0, 0, 0], 0, None),         # above tie -> up
        ([odd, half_ulp | 0x8000, tiny | 0x8000], [0, 0, 0], 0, None),
        ([0x3BFF, 0x1000], [0, 0], 0, None),                 # carry-out renormalization
        ([f.max_finite, f.max_finite], [0, 0], 0, None),     # overflow -> +inf
        ([f.max_finite, 0x5000], [4, 4], 0, None),           # overflow -> -inf
        ([f.max_finite, 0x4FFF], [0, 0], 0, None),           # max + below half ulp
        ([tiny, tiny], [4, 0], 0, None),                     # exact zero: +0
        ([0x8000, 0x0000], [0, 4], 0, 0x8000),               # all -0 -> -0
        ([0x8000, 0x0000], [0, 0], 0, 0x8000),               # +0 term -> +0
        ([0x8000, 0x8000], [0, 0], 0, None),                 # -0 + -0 -> -0
        ([0x8000], [0], 0, 0x0000),                          # +0 bias -> +0
        ([tiny], [4], -8, None),                             # -tiny underflow -> -0
        ([tiny], [0], -8, None),                             # +tiny underflow -> +0
        ([tiny], [0], -1, None),                             # tie at half min sub -> 0
        ([0x0003], [0], -1, None),                           # 1.5 min sub -> 2 min sub
        ([f.pos_inf, f.neg_inf], [0, 0], 0, None),           # +inf + -inf -> NaN
        ([f.pos_inf, f.pos_inf], [0, 4], 0, None),           # inf * -w -> NaN
        ([f.pos_inf, one], [4, 0], 0, None),                 # -inf
        ([one], [0], 0, f.neg_inf),                          # bias -inf
        ([f.pos_inf], [0], 0, f.neg_inf),                    # inf term + -inf bias -> NaN
        ([one], [0], 0, f.pos_inf | 5),                      # NaN bias
        ([f.pos_inf | 0x8000 | 0x123], [0], 0, None),        # negative NaN in -> canonical
        ([0x3555, 0x1234, 0xC555], [3, 2, 3], 7, 0x8123),    # cancellation + bias
    ]
    dots = []
    for xs, ws, e0, bias in cases:
        for relu in (False, True):
            dots.append(Dot([(xs, ws, (1 << len(xs)) - 1)], e0, bias, relu))
    return dots


@pytest.mark.parametrize("pipeline", [1, 4])
def test_directed_fp16(pipeline):
    config = DotConfig(lanes=3, pipeline=pipeline)
    dots = _directed_fp16()
    results = run_dots(config, dots)
    check(config, dots, results, seed="directed")
    # the reference itself is pinned on a few of them
    assert results[0] == 0x3C00 and results[2] == 0x3C02
    assert results[10] == 0x7C00 and results[12] == 0xFC00
    assert results[18] == 0x8000 and results[19] == 0x0000        # -0 and relu(-0)
    assert results[34] == 0x7E00 and results[36] == 0x7E00


@pytest.mark.parametrize("out_fmt", ["fp16", "fp32"])
def test_accumulator_extremes(out_fmt):
    """K = max_k terms of the largest magnitude (and the largest bias at e0_min): the
    accumulator must hold the exact sum without wrapping (fp32 output shows every bit)."""
    config = DotConfig(out_fmt=out_fmt, lanes=4, max_k=8, pipeline=2)
    fi, fo = config.in_fmt, config.out_fmt
    pmax, top = config.pmax, 1 << (config.wbits - 1)
    dots = []
    for e0 in (config.e0_min, config.e0_max):
        for sign in (0, 1):
            big = fi.max_finite | (sign << (fi.width - 1))
            for negatives in (0, 1, 7):
                codes = [pmax | (top if k < negatives else 0) for k in range(8)]
                beats = [([big] * 4, codes[:4], 15), ([big] * 4, codes[4:], 15)]
                for bias in (None, fo.max_finite, fo.max_finite | fo.sign_mask, 1):
                    dots.append(Dot(beats, e0, bias, False))
            tiny = 1 | (sign << (fi.width - 1))
            dots.append(Dot([([tiny] * 4, [0] * 4, 15)] * 2, e0, fo.max_finite, False))
    check(config, dots, run_dots(config, dots), seed="extremes")


def test_specials_heavy():
    config = DotConfig(lanes=4, pipeline=2, max_k=64)
    run_random(config, seed=7, count=150, special_rate=0.6)


def test_long_dot():
    """Many beats per dot product (K up to 40) through a 4-lane unit."""
    config = DotConfig(lanes=4, pipeline=3, max_k=64)
    run_random(config, seed=11, count=25, max_beats=10, stall=0.2, bubble=0.2)


def _exhaustive_k1(config, *, relu_every=0):
    """Every input pattern times every weight code, one term per dot product, each in a
    rotating lane (other lanes carry dropped garbage); e0 cycles through the whole range."""
    fi = config.in_fmt
    rng = random.Random(5)
    e0s = list(range(config.e0_min, config.e0_max + 1))
    dots = []
    for x in range(1 << fi.width):
        for code in range(1 << config.wbits):
            n = len(dots)
            lane = n % config.lanes
            xs = [rng.getrandbits(fi.width) for _ in range(config.lanes)]
            ws = [rng.getrandbits(config.wbits) for _ in range(config.lanes)]
            xs[lane], ws[lane] = x, code
            relu = bool(relu_every) and n % relu_every == 0
            dots.append(Dot([(xs, ws, 1 << lane)], e0s[n % len(e0s)], None, relu))
    return dots


def test_exhaustive_fp8_k1():
    config = DotConfig(in_fmt="fp8_e5m2", wbits=3, lanes=4, pipeline=2, max_k=16)
    dots = _exhaustive_k1(config, relu_every=7)
    check(config, dots, run_dots(config, dots), seed="exhaustive")


@pytest.mark.slow
def test_exhaustive_fp8_fp16_k1():
    config = DotConfig(in_fmt="fp8_e5m2", out_fmt="fp16", wbits=3, lanes=4, pipeline=3,
                       max_k=16)
    dots = _exhaustive_k1(config, relu_every=5)
    check(config, dots, run_dots(config, dots, stall=0.2), seed="exhaustive")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_random_sweep(name):
    config = CONFIGS[name]
    for seed in range(4):
        run_random(config, seed=1000 + seed, count=400, stall=0.1 * seed, bubble=0.1 * seed)


def test_in_layout_order():
    config = DotConfig(lanes=3, wbits=4)
    layout = in_layout(config)
    names = [name for name, _ in layout]
    assert names == ["x", "w", "keep", "last", "has_bias", "relu", "e0", "bias"]
    offsets = [field.offset for _, field in layout]
    assert offsets == [0, 48, 60, 63, 64, 65, 66, 66 + config.e0_bits]
    assert layout.size == 66 + config.e0_bits + 16


def test_init_wrong_config():
    with pytest.raises(TypeError, match=r"config must be a DotConfig, not 'fp16'"):
        ShiftDotUnit(config="fp16")
    with pytest.raises(TypeError, match=r"config must be a DotConfig, not None"):
        in_layout(None)


def test_ports():
    config = DotConfig()
    dut = ShiftDotUnit(config=config)
    assert dut.latency == config.pipeline and dut.config is config
    assert len(dut.o.payload) == 16
    assert len(dut.i.payload.as_value()) == in_layout(config).size
