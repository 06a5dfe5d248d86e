# amaranth: UnusedElaboratable=no
"""binround.BinRounder (the bin-lane study's rounder): exact sums rounded to output floats."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest
from amaranth.sim import Simulator
from hw_reference import with_specials

from contract import get_format, make_code
from studies.bin_accumulator.binround import LATENCY, BinRounder

pytestmark = pytest.mark.study

FLAGS = ("nan", "pinf", "ninf", "neg0", "relu")
DEFAULTS = {"total_bits": 81, "lsb_range": (-63, 63), "e0_range": (-8, 7), "offset": -25,
            "out_fmt": "fp16"}


def reference(total, lsb, e0, *, offset=-25, fmt="fp16", nan=0, pinf=0, ninf=0, neg0=0,
              relu=0):
    """The contract in plain integers: ``total * 2**(lsb + e0 + offset)`` rounded to ``fmt``
    (nearest, ties to even), then the specials, the -0 rule and ReLU."""
    fmt = get_format(fmt)

    def number():
        if total == 0:
            return fmt.sign_mask if neg0 else 0
        return _round(total, lsb + e0 + offset, fmt)

    return with_specials(fmt, number, nan=nan, pinf=pinf, ninf=ninf, relu=relu)


def _round(total, k, fmt):
    """``total * 2**k`` (``total != 0``) rounded to ``fmt``: its significand counted in units
    of the ulp of its binade (the subnormal binade for anything below the normal range)."""
    sign = fmt.sign_mask if total < 0 else 0
    mag = abs(total)
    binade = max(mag.bit_length() - 1 + k, fmt.emin)     # 2**binade <= value (or subnormal)
    ulp = binade - fmt.frac_bits                          # value / 2**ulp = mag * 2**(k - ulp)
    if k >= ulp:
        q = mag << (k - ulp)                              # exact
    else:
        q, rest = divmod(mag, 1 << (ulp - k))
        half = 1 << (ulp - k - 1)
        q += rest > half or (rest == half and q % 2 == 1)
    if q == 2 << fmt.frac_bits:                           # rounded up into the next binade
        q, binade = q >> 1, binade + 1
    if binade > fmt.emax:
        return sign | fmt.pos_inf
    if q >> fmt.frac_bits:
        return sign | (binade + fmt.bias) << fmt.frac_bits | (q - (1 << fmt.frac_bits))
    return sign | q                                       # subnormal, or a signed zero


# -- the reference checked against independent roundings ---------------------------------------

def test_reference_matches_numpy_float16():
    """For ``|total| < 2**53`` the value is exact in float64, and NumPy's float64 -> float16
    conversion is one correct rounding (ties to even, subnormals, overflow to inf)."""
    rng = random.Random(11)
    print("seed 11")
    cases = [(t, lsb, e0) for t, lsb, e0, *_ in _fp16_vectors(rng, 4000)
             if 0 < abs(t) < 1 << 53]
    cases += [(t, lsb, e0) for t in (1, -1, 3, 2047, -2047, 2048, 4095, 65519, 65521)
              for lsb in range(-63, 64, 3) for e0 in (-8, 0, 7)]
    assert len(cases) > 3000
    for t, lsb, e0 in cases:
        with np.errstate(over="ignore"):
            want = int(np.float16(math.ldexp(t, lsb + e0 - 25)).view(np.uint16))
        assert reference(t, lsb, e0) == want, f"total {t}, lsb {lsb}, e0 {e0}"


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "fp8_e5m2", "fp32"])
def test_reference_matches_contract_from_fraction(fmt):
    rng = random.Random(12)
    f = get_format(fmt)
    for _ in range(2000):
        t = rng.choice((-1, 1)) * rng.getrandbits(rng.randrange(1, 81))
        k = rng.randrange(f.lsb_exp - 90, f.emax + 3)
        want = f.from_fraction(Fraction(t) * Fraction(2) ** k) if t else 0
        assert reference(t, 0, 0, offset=k, fmt=fmt) == want, f"{fmt}: total {t}, k {k}"


def test_reference_matches_golden_dot_products():
    """Bins as the grid forms them: an fp16 activation sits in bin b = its exponent field (1
    for subnormals) + the weight's shift p, so a lane's sum is ``sum(±significand * 2**b)``
    with lsb 0; the golden model rounds the same dot products from the raw patterns."""
    torch = pytest.importorskip("torch")
    from sw.golden import gemm_golden

    rng = random.Random(13)
    print("seed 13")
    n, k, wbits = 300, 24, 3
    x = np.array([[rng.getrandbits(15) if rng.random() < 0.9 else 0 for _ in range(k)]
                  for _ in range(n)], dtype=np.int64)
    x[:12] = 0                                                   # exact zeros: the -0 rule
    x |= np.array([[rng.getrandbits(1) << 15 for _ in range(k)] for _ in range(n)])
    x[:4] |= 0x8000
    x = np.where(((x >> 10) & 31) == 31, x & ~(1 << 14), x)        # finite activations only
    wsign = np.array([[rng.getrandbits(1) for _ in range(k)] for _ in range(n)])
    wsign[:2] = 0
    p = np.array([[rng.randrange(4) for _ in range(k)] for _ in range(n)])
    codes = make_code(wsign, p, wbits).astype(np.int64)
    e0s = np.array([rng.randrange(-8, 8) for _ in range(n)])
    # row i against channel i (the diagonal of an n x n product)
    y = gemm_golden(torch.from_numpy(x), torch.from_numpy(codes), torch.from_numpy(e0s),
                    in_fmt="fp16", wbits=wbits).diagonal().tolist()
    for i in range(n):
        total, negative_zeros = 0, 0
        for xi, s, pi in zip(x[i].tolist(), wsign[i].tolist(), p[i].tolist(), strict=True):
            field, frac = (xi >> 10) & 31, xi & 1023
            sig = frac | (1024 if field else 0)
            neg = (xi >> 15) ^ s
            total += (-sig if neg else sig) << (max(field, 1) + pi)
            negative_zeros += sig == 0 and neg
        assert reference(total, 0, int(e0s[i]), neg0=negative_zeros == k) == y[i], (
            f"seed 13, row {i}: x {x[i].tolist()}, codes {codes[i].tolist()}, e0 {e0s[i]}")


# -- the vectors ------------------------------------------------------------------------------

def _split(rng, s, lsb_range, e0_range):
    """``(lsb, e0)`` in their ranges with ``lsb + e0 == s``, or None."""
    lo, hi = max(e0_range[0], s - lsb_range[1]), min(e0_range[1], s - lsb_range[0])
    if lo > hi:
        return None
    e0 = rng.randrange(lo, hi + 1)
    return s - e0, e0


def _vector(rng, total, lsb, e0, **flags):
    return (total, lsb, e0, *(int(flags.get(f, 0)) for f in FLAGS))


def _random_vectors(rng, count, *, total_bits, lsb_range, e0_range, offset, out_fmt):
    """Totals of every bit length and both signs; most with lsb + e0 chosen to land the value
    near the output's range (so that it rounds to a normal, subnormal, zero or infinity), the
    rest with any lsb and e0; ReLU and neg0 at random, the specials rarely."""
    fmt = get_format(out_fmt)
    out = []
    while len(out) < count:
        length = rng.randrange(total_bits)
        total = rng.getrandbits(length) | (1 << length >> 1) if length else 0
        total = -total if rng.getrandbits(1) else total
        split = None
        if rng.random() < 0.8:
            exp = rng.randrange(fmt.lsb_exp - 3, fmt.emax + 3)  # of the leading one
            split = _split(rng, exp - (length - 1) - offset, lsb_range, e0_range)
        lsb, e0 = split or (rng.randrange(lsb_range[0], lsb_range[1] + 1),
                            rng.randrange(e0_range[0], e0_range[1] + 1))
        special = rng.random() < 0.03
        out.append(_vector(rng, total, lsb, e0, relu=rng.random() < 0.25,
                           neg0=rng.getrandbits(1), nan=special and rng.random() < 0.3,
                           pinf=special and rng.getrandbits(1),
                           ninf=special and rng.getrandbits(1)))
    return out


def _fp16_vectors(rng, count):
    return _random_vectors(rng, count, **DEFAULTS)


def _at(total, exp, rng, **flags):
    """A vector of value ``total * 2**exp`` for the defaults (lsb and e0 split at random)."""
    lsb, e0 = _split(rng, exp + 25, (-63, 63), (-8, 7))
    return _vector(rng, total, lsb, e0, **flags)


def _directed_fp16(rng):
    """Extremes, ties, boundaries, zeros, specials; each with ReLU off and on."""
    top = (1 << 80) - 1
    cases = []
    # every lsb and e0 extreme, with totals of extreme and random sizes
    for lsb in (-63, -62, 0, 62, 63):
        for e0 in (-8, -7, 0, 6, 7):
            for total in (1, -1, top, -top, 1 << 79, -(1 << 79), 2047, -2048,
                          rng.getrandbits(80), -rng.getrandbits(40)):
                cases.append(_vector(rng, total, lsb, e0))
    # ties: q + 1/2 ulp exactly, q even and odd, normal and subnormal binades, and one
    # bit of the total below the tie either way
    for _ in range(40):
        q = rng.randrange(1 << 10, 1 << 11) if rng.getrandbits(1) else rng.randrange(1 << 10)
        for parity in (0, 1):
            qq = (q & ~1) | parity
            binade = rng.randrange(-14, 16) if qq >> 10 else -14
            extra = rng.randrange(0, 60)
            for delta in (0, 1, -1):
                num = ((2 * qq + 1) << extra) + delta
                for neg in (1, -1):
                    cases.append(_at(neg * num, binade - 11 - extra, rng))
    # the largest finite (65504 = 2047 * 2**5) and the tie above it (65520: ties to even,
    # which is 2**16: infinity), from either side, both signs
    for neg in (1, -1):
        for extra in (0, 1, 30, 63):
            for num, exp in ((2047, 5), (4095, 4), (2 ** 16, 0)):
                for delta in (0, -1, 1):
                    cases.append(_at(neg * ((num << extra) + delta), exp - extra, rng))
        # the subnormal/normal boundary: 1023 * 2**-24 (largest subnormal), 1024 * 2**-24 (the
        # smallest normal), 1023.5 * 2**-24 (a tie: to the even 1024)
        for num, exp in ((1023, -24), (1024, -24), (2047, -25), (1025, -24)):
            for extra in (0, 1, 40):
                for delta in (0, -1, 1):
                    cases.append(_at(neg * ((num << extra) + delta), exp - extra, rng))
        # the smallest subnormal 2**-24, half of it (a tie with 0: +-0), just over and under
        for num, exp in ((1, -24), (1, -25), (3, -26), (1, -26), (1, -60)):
            for extra in (0, 1, 30):
                for delta in (0, -1, 1):
                    if (num << extra) + delta:
                        cases.append(_at(neg * ((num << extra) + delta), exp - extra, rng))
    # powers of two and their neighbours, of every size: for total < 0 the hardware's
    # |total| - 1 has its leading one a place lower than |total| (a carry renormalises)
    for k in range(80):
        for num in (1 << k, (1 << k) - 1, (1 << k) + 1):
            if 0 < num < 1 << 80:
                exp = rng.randrange(max(-27, k - 96), 18)     # of the leading one
                for neg in (1, -1):
                    cases.append(_at(neg * num, exp - k, rng))
    # zeros: +0, or -0 with neg0
    for neg0 in (0, 1):
        for lsb, e0 in ((-63, -8), (0, 0), (63, 7)):
            cases.append(_vector(rng, 0, lsb, e0, neg0=neg0))
    # each special and their precedence, over negative, positive and zero numbers
    for nan in (0, 1):
        for pinf in (0, 1):
            for ninf in (0, 1):
                for total in (-12345, 12345, 0):
                    cases.append(_vector(rng, total, 0, 0, nan=nan, pinf=pinf, ninf=ninf,
                                         neg0=1))
    return [c[:-1] + (relu,) for c in cases for relu in (0, 1)]


# -- the simulation ---------------------------------------------------------------------------

def _run(vectors, *, seed, gaps=0.0, **params):
    """Stream ``vectors`` through a BinRounder, one per clock (with ``gaps``: that fraction of
    clocks idle, driving junk), and compare every result with :func:`reference`."""
    params = {**DEFAULTS, **params}
    dut = BinRounder(**params)
    rng = random.Random(seed)
    clocks = []
    for v in vectors:
        while rng.random() < gaps:
            clocks.append(None)
        clocks.append(v)
    got = []

    async def bench(ctx):
        ports = (dut.total, dut.lsb, dut.e0, *(getattr(dut, f) for f in FLAGS))
        junk = _vector(rng, -1, params["lsb_range"][1], params["e0_range"][0], nan=1, relu=1)
        for t, v in enumerate([*clocks, *[None] * (LATENCY - 1)]):
            ctx.set(dut.valid, v is not None)
            for port, value in zip(ports, v or junk, strict=True):
                ctx.set(port, value)
            await ctx.tick()
            # now in clock t + 1: the result of the inputs driven in clock t + 1 - LATENCY
            sent = clocks[t + 1 - LATENCY] if t + 1 >= LATENCY else None
            assert ctx.get(dut.out_valid) == (sent is not None), (
                f"seed {seed}: out_valid wrong in clock {t + 1}")
            if sent is not None:
                got.append(ctx.get(dut.bits))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(vectors)
    digits = (get_format(params["out_fmt"]).width + 3) // 4
    for i, (v, bits) in enumerate(zip(vectors, got, strict=True)):
        want = reference(*v[:3], offset=params["offset"], fmt=params["out_fmt"],
                         **dict(zip(FLAGS, v[3:], strict=True)))
        inputs = ", ".join(f"{name} {value:#x}" if name == "total" else f"{name} {value}"
                           for name, value in zip(("total", "lsb", "e0", *FLAGS), v,
                                                  strict=True))
        assert bits == want, (f"seed {seed}, vector {i} ({params}): {inputs}: got "
                              f"{bits:#0{digits + 2}x}, expected {want:#0{digits + 2}x}")


@pytest.mark.parametrize("seed", [1, 2])
def test_random_fp16(seed):
    print(f"seed {seed}")
    _run(_fp16_vectors(random.Random(seed), 2000), seed=seed)


def test_directed_fp16():
    print("seed 3")
    vectors = _directed_fp16(random.Random(3))
    assert len(vectors) > 1500
    _run(vectors, seed=3)


def test_out_valid_follows_valid_with_gaps():
    print("seed 4")
    _run(_fp16_vectors(random.Random(4), 200), seed=4, gaps=0.4)


@pytest.mark.parametrize(("seed", "params"), [
    (5, {"out_fmt": "bf16"}),
    (6, {"out_fmt": "fp8_e5m2"}),
    (7, {"out_fmt": "fp32", "total_bits": 40, "lsb_range": (-20, 30), "e0_range": (0, 3),
         "offset": -140}),
    # a narrow total whose exponent reaches far below the normal range (c < 0: the window
    # lies above total's top bit) and far above the largest finite
    (8, {"total_bits": 12, "lsb_range": (-40, 40), "e0_range": (-1, 1), "offset": -5}),
])
def test_random_other_shapes(seed, params):
    print(f"seed {seed}")
    p = {**DEFAULTS, **params}
    _run(_random_vectors(random.Random(seed), 400, **p), seed=seed, **params)


def test_ports_and_latency():
    dut = BinRounder()
    assert LATENCY == 6
    assert len(dut.total) == 81 and dut.total.shape().signed
    assert len(dut.lsb) == 7 and dut.lsb.shape().signed
    assert len(dut.e0) == 4 and dut.e0.shape().signed
    assert len(dut.bits) == 16
    assert len(BinRounder(out_fmt="fp32").bits) == 32
    assert len(BinRounder(lsb_range=(0, 64)).lsb) == 8


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"total_bits": "81"}, TypeError, "total_bits must be an integer, not '81'"),
    ({"total_bits": True}, TypeError, "total_bits must be an integer"),
    ({"total_bits": 1}, ValueError, "total_bits must be at least 2, not 1"),
    ({"lsb_range": 63}, TypeError, r"lsb_range must be a pair of integers \(low, high\)"),
    ({"lsb_range": (-63, 63, 0)}, TypeError, "lsb_range must be a pair of integers"),
    ({"lsb_range": (5, -5)}, ValueError, r"lsb_range must be \(low, high\) with low <= high"),
    ({"e0_range": (0, 1.5)}, TypeError, r"e0_range must be a pair of integers.*1\.5"),
    ({"e0_range": (7, -8)}, ValueError, "e0_range must be"),
    ({"offset": -25.0}, TypeError, "offset must be an integer, not -25.0"),
    ({"out_fmt": "fp17"}, ValueError, "out_fmt: Unknown format 'fp17'; expected one of"),
    ({"out_fmt": 16}, TypeError, "out_fmt must be a format name or a FloatFormat, not 16"),
])
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        BinRounder(**kwargs)
