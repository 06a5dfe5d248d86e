"""The golden model against independent references.

The reference below works on Python integers, one dot product at a time: it decodes every term
itself, sums exact values, and rounds with its own small rounder, which is checked against
MPFR (gmpy2) on every rounded result. Single products and format conversions are checked
against Berkeley SoftFloat (softfloatpy), NumPy float16 and torch bfloat16 arithmetic.
On a mismatch the failure lists seed, index, inputs and both outputs in hex.
"""

from __future__ import annotations

import itertools

import gmpy2
import numpy as np
import pytest
import softfloatpy as sf
import torch

from contract import BF16, FP8_E5M2, FP16, FP32, DotConfig, FloatFormat
from sw.fpbits import from_bits, to_bits
from sw.golden import dot_golden, gemm_golden

FP8 = FP8_E5M2


# -- independent reference ----------------------------------------------------------------------

def _decode(bits, fmt):
    """(kind, sign, mant, exp) with value (-1)**sign * mant * 2**exp for kind 'fin'."""
    w = 1 + fmt.exp_bits + fmt.frac_bits
    s = bits >> (w - 1)
    e = (bits >> fmt.frac_bits) & ((1 << fmt.exp_bits) - 1)
    f = bits & ((1 << fmt.frac_bits) - 1)
    bias = (1 << (fmt.exp_bits - 1)) - 1
    if e == (1 << fmt.exp_bits) - 1:
        return ("nan", 0, 0, 0) if f else ("inf", s, 0, 0)
    if e == 0 and f == 0:
        return ("zero", s, 0, 0)
    return ("fin", s, f | ((1 << fmt.frac_bits) if e else 0), max(e, 1) - bias - fmt.frac_bits)


def ref_round(n, e, fmt):
    """``n * 2**e`` (``n`` a nonzero int) rounded to ``fmt``, nearest even, overflow to inf."""
    eb, fb = fmt.exp_bits, fmt.frac_bits
    bias = (1 << (eb - 1)) - 1
    emin = 1 - bias
    sign = (1 << (eb + fb)) if n < 0 else 0
    n = abs(n)
    q = max(n.bit_length() - 1 + e, emin) - fb          # exponent of the result's ulp
    if q > e:
        sh = q - e
        kept, rem = n >> sh, n & ((1 << sh) - 1)
        if 2 * rem > (1 << sh) or (2 * rem == (1 << sh) and kept & 1):
            kept += 1
    else:
        kept = n << (e - q)
    if kept >> (fb + 1):                                 # carried into the next binade
        kept >>= 1
        q += 1
    if kept >> fb:
        field = q + fb + bias
        if field >= (1 << eb) - 1:
            return sign | (((1 << eb) - 1) << fb)
        return sign | (field << fb) | (kept - (1 << fb))
    return sign | kept


def gmpy_round(n, e, fmt):
    """The same rounding done by MPFR."""
    ctx = gmpy2.context(precision=fmt.frac_bits + 1, emin=fmt.lsb_exp + 1, emax=fmt.emax + 1,
                        subnormalize=True, round=gmpy2.RoundToNearest)
    with gmpy2.context(ctx):
        q = gmpy2.mpq(n * (1 << e) if e >= 0 else n, 1 if e >= 0 else 1 << -e)
        v = gmpy2.mpfr(q)
    sign = fmt.sign_mask if gmpy2.is_signed(v) else 0
    if gmpy2.is_infinite(v):
        return sign | fmt.pos_inf
    if v == 0:
        return sign
    num, den = v.as_integer_ratio()
    ne = -(int(den).bit_length() - 1)
    return ref_round(int(num), ne, fmt)      # exact value: no rounding happens here


def ref_dot(xs, codes, e0, bias, in_fmt, out_fmt, wbits, relu, *, check_gmpy=True):
    """Reference dot product on raw patterns (Python ints)."""
    pmask = (1 << (wbits - 1)) - 1
    terms = []
    for x, c in zip(xs, codes, strict=True):
        kind, s, mant, e = _decode(int(x), in_fmt)
        c = int(c)
        terms.append((kind, s ^ (c >> (wbits - 1)), mant, e + e0 + (c & pmask)))
    if bias is not None:
        terms.append(_decode(int(bias), out_fmt))
    canon_nan = out_fmt.pos_inf | (1 << (out_fmt.frac_bits - 1))
    kinds = {(k, s if k == "inf" else 0) for k, s, _, _ in terms}
    if ("nan", 0) in kinds or {("inf", 0), ("inf", 1)} <= kinds:
        return canon_nan
    if ("inf", 0) in kinds or ("inf", 1) in kinds:
        y = out_fmt.pos_inf | (out_fmt.sign_mask if ("inf", 1) in kinds else 0)
    else:
        fins = [t for t in terms if t[0] == "fin"]
        lo = min((t[3] for t in fins), default=0)
        total = sum((-1) ** s * (m << (e - lo)) for _, s, m, e in fins)
        if total == 0:
            every_neg_zero = all(k == "zero" and s == 1 for k, s, _, _ in terms)
            y = out_fmt.sign_mask if every_neg_zero else 0
        else:
            y = ref_round(total, lo, out_fmt)
            if check_gmpy:
                g = gmpy_round(total, lo, out_fmt)
                assert g == y, f"reference rounder {y:#x} disagrees with MPFR {g:#x}"
    if relu and y & out_fmt.sign_mask:
        y = 0
    return y


# -- input generation ---------------------------------------------------------------------------

def gen_bits(rng, fmt, shape, special=0.0):
    """Raw patterns: mostly finite values near 1 (so sums interact), some anywhere in range,
    subnormals, and with probability ``special`` a special or edge pattern."""
    w, fb = fmt.width, fmt.frac_bits
    sign = rng.integers(0, 2, size=shape).astype(np.int64) << (w - 1)
    frac = rng.integers(0, 1 << fb, size=shape, dtype=np.int64)
    near = rng.integers(max(1, fmt.bias - 6), min(fmt.exp_max_field, fmt.bias + 6), size=shape)
    anyexp = rng.integers(1, fmt.exp_max_field, size=shape)
    sub = rng.integers(1, 1 << fb, size=shape, dtype=np.int64)
    pick = rng.random(shape)
    x = np.where(pick < 0.7, (near << fb) | frac, (anyexp << fb) | frac)
    x = np.where(pick > 0.9, sub, x) | sign
    payload = rng.integers(1, 1 << fb, size=shape, dtype=np.int64)
    specials = np.stack(np.broadcast_arrays(
        0, fmt.sign_mask, fmt.pos_inf, fmt.neg_inf, fmt.max_finite,
        fmt.sign_mask | fmt.max_finite, 1, fmt.sign_mask | 1,
        fmt.pos_inf | payload | sign, fmt.canonical_nan), axis=-1)
    which = rng.integers(0, specials.shape[-1], size=shape)
    chosen = np.take_along_axis(specials, which[..., None], axis=-1)[..., 0]
    return np.where(rng.random(shape) < special, chosen, x).astype(np.int64)


def _hex(v):
    return "[" + " ".join(f"{int(t):#x}" for t in np.ravel(v)) + "]"


def check_gemm(seed, x, codes, e0, *, in_fmt, wbits, out_fmt=None, bias=None, relu=False,
               check_gmpy=True):
    """Golden GEMM vs the reference, every output; fail with full details."""
    out_fmt = out_fmt or in_fmt
    y = gemm_golden(x, codes, e0, in_fmt=in_fmt, wbits=wbits, out_fmt=out_fmt, bias_bits=bias,
                    relu=relu)
    e0s = np.broadcast_to(np.asarray(e0), (codes.shape[0],))
    bad = []
    for n in range(x.shape[0]):
        for m in range(codes.shape[0]):
            b = None if bias is None else int(bias[m])
            want = ref_dot(x[n], codes[m], int(e0s[m]), b, in_fmt, out_fmt, wbits, relu,
                           check_gmpy=check_gmpy)
            if int(y[n, m]) != want:
                bad.append(f"seed={seed} index=({n},{m}) {in_fmt.name}->{out_fmt.name} B={wbits} "
                           f"e0={int(e0s[m])} relu={relu} x={_hex(x[n])} codes={_hex(codes[m])} "
                           f"bias={None if b is None else hex(b)}: reference {want:#x}, "
                           f"golden {int(y[n, m]):#x}")
    if bad:
        pytest.fail(f"{len(bad)} mismatches, first ones:\n" + "\n".join(bad[:5]))
    return y


# -- reference self-checks ----------------------------------------------------------------------

def test_reference_rounder_matches_mpfr_and_contract():
    rng = np.random.default_rng(11)
    for fmt in (FP16, BF16, FP32, FP8, FloatFormat("e3m4", 3, 4)):
        for _ in range(3000):
            n = int(rng.integers(1, 1 << 62)) >> int(rng.integers(0, 62))
            n = -n if rng.random() < 0.5 else n
            e = int(rng.integers(fmt.lsb_exp - 70, fmt.emax + 10))
            r = ref_round(n, e, fmt)
            assert r == gmpy_round(n, e, fmt), (fmt.name, n, e)
            value = gmpy2.mpq(n) * gmpy2.mpq(2) ** e
            from fractions import Fraction
            assert r == fmt.from_fraction(Fraction(int(value.numerator), int(value.denominator)))


# -- single products and conversions (SoftFloat, NumPy, torch) ---------------------------------

ALL16 = np.arange(1 << 16, dtype=np.int64)


@pytest.mark.parametrize("wbits,e0", [(2, 0), (3, -3), (4, -9), (5, -14), (5, 0)])
def test_single_products_fp16_exhaustive_vs_numpy(wbits, e0):
    """K=1: y = x * ±2**(e0+p) for every fp16 pattern and every code (NumPy float16 multiply
    rounds the exact float32 product once, nearest even)."""
    codes = np.arange(1 << wbits, dtype=np.int64)[:, None]
    y = gemm_golden(ALL16[:, None], codes, e0, in_fmt=FP16, wbits=wbits).numpy()
    xv = ALL16.astype(np.uint16).view(np.float16)
    pm = (1 << (wbits - 1)) - 1
    for c in codes[:, 0]:
        w = np.float16((-1.0) ** (c >> (wbits - 1)) * 2.0 ** (e0 + (c & pm)))
        with np.errstate(over="ignore", invalid="ignore"):
            want = (xv * w).view(np.uint16).astype(np.int64)
        want = np.where(np.isnan(xv), FP16.canonical_nan, want)
        bad = np.nonzero(y[:, c] != want)[0]
        assert bad.size == 0, (f"e0={e0} code={c}: x={int(bad[0]):#06x} numpy "
                               f"{int(want[bad[0]]):#06x} golden {int(y[bad[0], c]):#06x}")


def test_single_products_bf16_exhaustive_vs_torch():
    codes = np.arange(8, dtype=np.int64)[:, None]
    for e0 in (-120, -1, 100):
        y = gemm_golden(ALL16[:, None], codes, e0, in_fmt=BF16, wbits=4).numpy()
        xv = torch.from_numpy(ALL16.astype(np.int16)).view(torch.bfloat16)
        for c in range(8):
            prod = (xv.float() * 2.0 ** (e0 + c)).to(torch.bfloat16)   # exact, then one RNE
            want = prod.view(torch.int16).numpy().astype(np.int64) & 0xFFFF
            want = np.where(torch.isnan(xv).numpy(), BF16.canonical_nan, want)
            bad = np.nonzero(y[:, c] != want)[0]
            assert bad.size == 0, (f"e0={e0} code={c}: x={int(bad[0]):#06x} torch "
                                   f"{int(want[bad[0]]):#06x} golden {int(y[bad[0], c]):#06x}")


def _sf_bits(obj):
    return int.from_bytes(obj.to_bytes(), "big")


def test_single_products_vs_softfloat():
    """f16 x times 2**k with SoftFloat's f16_mul, on random patterns (NaN -> canonical)."""
    rng = np.random.default_rng(5)
    xs = gen_bits(rng, FP16, (4000,), special=0.1)
    codes = np.arange(8)[:, None]
    y = gemm_golden(xs[:, None], codes, -4, in_fmt=FP16, wbits=4).numpy()
    for c in range(8):
        w = sf.Float16.from_bytes(int(FP16.from_fraction(2 ** (c - 4))).to_bytes(2, "big"))
        for i, x in enumerate(xs):
            xf = sf.Float16.from_bytes(int(x).to_bytes(2, "big"))
            want = FP16.canonical_nan if xf.is_nan() else _sf_bits(sf.f16_mul(xf, w))
            assert y[i, c] == want, f"seed=5 x={int(x):#06x} code={c}: softfloat {want:#06x} " \
                                    f"golden {int(y[i, c]):#06x}"


@pytest.mark.parametrize("src,dst,conv", [
    (FP32, FP16, sf.f32_to_f16), (FP32, BF16, sf.f32_to_bf16), (FP16, FP32, sf.f16_to_f32)])
def test_format_conversion_vs_softfloat(src, dst, conv):
    """K=1 with weight +1: the golden model is a format conversion; SoftFloat's must agree."""
    rng = np.random.default_rng(7)
    xs = np.concatenate([gen_bits(rng, src, (3000,), special=0.05),
                         rng.integers(0, 1 << src.width, size=3000, dtype=np.int64)])
    y = gemm_golden(xs[:, None], np.zeros((1, 1), np.int64), 0, in_fmt=src, wbits=2,
                    out_fmt=dst).numpy()[:, 0]
    cls = {16: sf.Float16, 32: sf.Float32}[src.width]
    for i, x in enumerate(xs):
        xf = cls.from_bytes(int(x).to_bytes(src.width // 8, "big"))
        want = dst.canonical_nan if xf.is_nan() else _sf_bits(conv(xf))
        assert y[i] == want, (f"seed=7 index={i} x={int(x):#x}: softfloat {want:#x} "
                              f"golden {int(y[i]):#x}")


# -- whole dot products against the reference ---------------------------------------------------

CASES = [  # (in, out, wbits, K values)
    (FP16, FP16, 3, (1, 2, 3, 7, 64, 1024)),
    (BF16, BF16, 4, (1, 5, 33, 300)),
    (FP32, FP32, 5, (1, 4, 17, 200)),
    (FP8, FP8, 2, (1, 3, 16, 128)),
    (FP8, FP16, 3, (2, 9, 100)),
    (FP16, FP32, 4, (1, 6, 50)),
    (BF16, FP16, 3, (1, 8, 40)),
    (FP16, FP8, 5, (1, 2, 5, 31)),
    (FP32, BF16, 2, (3, 12)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_random_dot_products(case):
    in_fmt, out_fmt, wbits, ks = CASES[case]
    for i, k in enumerate(ks):
        seed = 1000 * case + i
        rng = np.random.default_rng(seed)
        n = max(1, min(6, 3000 // (k * 4)))
        m = 4
        special = (0.0, 0.01, 0.3)[i % 3] if k < 200 else (0.0, 0.001)[i % 2]
        x = gen_bits(rng, in_fmt, (n, k), special)
        codes = rng.integers(0, 1 << wbits, size=(m, k))
        e0 = (rng.integers(-6, 4, size=m) if seed % 2 else int(rng.integers(-6, 4)))
        bias = gen_bits(rng, out_fmt, (m,), special) if seed % 3 else None
        check_gemm(seed, x, codes, e0, in_fmt=in_fmt, wbits=wbits, out_fmt=out_fmt, bias=bias,
                   relu=bool(seed % 4 == 1))


def test_custom_formats():
    """Formats beyond the predefined ones: tiny (e2m1), wide exponent (e11m10), 63-bit
    (e10m52), mixed in and out."""
    fmts = [FloatFormat("e3m4", 3, 4), FloatFormat("e11m10", 11, 10),
            FloatFormat("e10m52", 10, 52), FloatFormat("e2m1", 2, 1), FloatFormat("e6m20", 6, 20)]
    rng = np.random.default_rng(77)
    for t in range(60):
        fi, fo = fmts[t % 5], fmts[int(rng.integers(5))]
        k, wb = int(rng.integers(1, 20)), int(rng.integers(2, 6))
        x = gen_bits(rng, fi, (3, k), (0.0, 0.05, 0.3)[t % 3])
        codes = rng.integers(0, 1 << wb, size=(3, k))
        e0 = rng.integers(-40, 40, size=3) if t % 2 else int(rng.integers(-40, 40))
        bias = gen_bits(rng, fo, (3,), 0.1) if t % 3 else None
        check_gemm(77, x, codes, e0, in_fmt=fi, wbits=wb, out_fmt=fo, bias=bias,
                   relu=bool(t % 5 == 0))


def test_exact_cancellation():
    """Second half of each row negates the first with the same codes: the products cancel
    exactly, the result is +0 (or the bias)."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        fmt = (FP16, BF16, FP32, FP8)[seed % 4]
        k = int(rng.integers(1, 40))
        half = gen_bits(rng, fmt, (3, k), 0.0)
        x = np.concatenate([half, half ^ fmt.sign_mask], axis=1)
        c = rng.integers(0, 8, size=(3, k))
        codes = np.concatenate([c, c], axis=1)
        bias = gen_bits(rng, fmt, (3,), 0.5) if seed % 2 else None
        y = check_gemm(seed, x, codes, -2, in_fmt=fmt, wbits=4, bias=bias)
        if bias is None:
            assert (y == 0).all()


def test_order_independence():
    """Permuting k (activations and codes together) never changes a bit."""
    for seed in range(8):
        rng = np.random.default_rng(seed)
        fmt = (FP16, BF16, FP32, FP8)[seed % 4]
        k = int(rng.integers(2, 500))
        x = gen_bits(rng, fmt, (5, k), (0.0, 0.02)[seed % 2])
        codes = rng.integers(0, 32, size=(6, k))
        bias = gen_bits(rng, fmt, (6,), 0.1)
        args = dict(in_fmt=fmt, wbits=5, bias_bits=bias)
        y = gemm_golden(x, codes, -7, **args)
        for _ in range(3):
            perm = rng.permutation(k)
            y2 = gemm_golden(x[:, perm], codes[:, perm], -7, **args)
            assert torch.equal(y, y2), f"seed={seed}: permutation changed the result"


# -- every mix of term classes ------------------------------------------------------------------

def _class_values(fmt):
    """One representative activation pattern per class."""
    one = fmt.bias << fmt.frac_bits
    return {"+fin": one | 3, "-fin": fmt.sign_mask | one, "+0": 0, "-0": fmt.sign_mask,
            "+inf": fmt.pos_inf, "-inf": fmt.neg_inf, "nan": fmt.neg_inf | 5, "+sub": 1}


def _class_mix(max_terms):
    in_fmt, out_fmt = FP16, FP8
    vals = list(_class_values(in_fmt).values())
    bias_opts = [None] + list(_class_values(out_fmt).values())
    count = 0
    for r in range(1, max_terms + 1):
        # rows: every multiset of r activation classes; channels: every pattern of weight signs
        x = np.array(list(itertools.combinations_with_replacement(vals, r)), np.int64)
        signs = np.array(list(itertools.product((0, 1), repeat=r)), np.int64)
        codes = (signs << 2) | (np.arange(r) % 4)
        for bias in bias_opts:
            b = None if bias is None else np.full(len(codes), bias)
            for relu in (False, True):
                check_gemm(r, x, codes, -1, in_fmt=in_fmt, wbits=3, out_fmt=out_fmt, bias=b,
                           relu=relu)
                count += x.shape[0] * codes.shape[0]
    return count


def test_every_class_mix():
    """Every multiset of up to 3 terms drawn from the activation classes, with every pattern of
    weight signs, crossed with every bias class (and none), with and without ReLU."""
    assert _class_mix(3) == 2 * 9 * (8 * 2 + 36 * 4 + 120 * 8)


@pytest.mark.slow
def test_every_class_mix_4():
    _class_mix(4)


def test_class_mix_batched():
    """All sign/class combinations of two zero terms and a bias: the -0 rule, vectorised."""
    z = [0, FP16.sign_mask]
    x = np.array(list(itertools.product(z, z)), np.int64)            # 4 rows
    codes = np.array(list(itertools.product([0, 4], [0, 4])), np.int64)  # 4 sign combinations
    for bias in (None, 0, FP16.sign_mask):
        b = None if bias is None else np.full(4, bias)
        check_gemm(0, x, codes, 0, in_fmt=FP16, wbits=3, bias=b)


# -- directed corner cases ----------------------------------------------------------------------

def _f16(*vals):
    return to_bits(np.array(vals, np.float64), FP16)


@pytest.mark.parametrize("vals,bias,out,relu,want", [
    ((1.0, 2.0 ** -11), None, FP16, False, 0x3C00),            # tie -> even (down)
    ((1.0 + 2.0 ** -10, 2.0 ** -11), None, FP16, False, 0x3C02),  # tie -> even (up)
    ((1.0, 2.0 ** -11, 2.0 ** -24), None, FP16, False, 0x3C01),   # just above the tie
    ((65504.0, 8.0, 4.0, 2.0, 1.0, 0.5), None, FP16, False, 0x7BFF),  # below max + ulp/2
    ((65504.0, 16.0), None, FP16, False, 0x7C00),  # tie at max + ulp/2: even is 2**16 -> inf
    ((65504.0, 32.0), None, FP16, False, 0x7C00),
    ((65504.0, 8.0, 4.0, 2.0, 1.0, 0.5, 0.5), None, FP16, False, 0x7C00),
    ((-65504.0, -65504.0), None, FP16, False, 0xFC00),
    ((-(2.0 ** -24),), None, FP8, False, 0x80),                # underflow keeps the sign
    ((2.0 ** -24,), None, FP8, False, 0x00),
    ((-(2.0 ** -17),), None, FP8, False, 0x80),                # half the fp8 LSB: tie -> 0
    ((3 * 2.0 ** -17,), None, FP8, False, 0x02),               # 1.5 LSB: tie -> even 2
    ((3 * 2.0 ** -18,), None, FP8, False, 0x01),               # 0.75 LSB -> 1
    ((2.0 ** -17, 2.0 ** -24), None, FP8, False, 0x01),        # just above the tie
    ((2.0 ** -24, 2.0 ** -24), None, FP16, False, 0x0002),     # subnormal sum
    ((2.0 ** -14, -(2.0 ** -24)), None, FP16, False, 0x03FF),  # normal - sub = max subnormal
    ((1.0, -1.0), None, FP16, False, 0x0000),                  # exact cancel: +0
    ((-0.0, -0.0), None, FP16, False, 0x8000),                 # every term -0
    ((-0.0, -0.0), 0x0000, FP16, False, 0x0000),               # +0 bias spoils it
    ((-0.0, -0.0), 0x8000, FP16, False, 0x8000),
    ((-0.0, 0.0), None, FP16, False, 0x0000),
    ((-0.0, -0.0), None, FP16, True, 0x0000),                  # relu(-0) = +0
    ((-1.0,), None, FP16, True, 0x0000),
    ((float("-inf"),), None, FP16, True, 0x0000),              # relu(-inf) = +0
    ((float("inf"), float("-inf")), None, FP16, True, 0x7E00),  # NaN survives relu
    ((float("inf"), 1.0), 0xFC00, FP16, False, 0x7E00),        # +inf term, -inf bias
    ((float("inf"), -1.0), 0x7C00, FP16, False, 0x7C00),
    ((1.0, 2.0), 0xBF800000, FP32, False, 0x40000000),         # fp32 out: 1+2-1 = 2
    ((1.0,), 0x3C00, FP16, False, 0x4000),                     # 1 + 1
    ((1.0, -1.0), 0x8001, FP16, False, 0x8001),                # cancel, bias survives
])
def test_directed(vals, bias, out, relu, want):
    x = _f16(*vals)
    codes = np.zeros(len(vals), np.int64)                      # +2**e0 with e0 = 0: weight +1
    got = dot_golden(x, codes, 0, in_fmt=FP16, wbits=3, out_fmt=out, bias_bits=bias, relu=relu)
    ref = ref_dot(x, codes, 0, bias, FP16, out, 3, relu)
    assert (got, ref) == (want, want), f"x={_hex(x)} bias={bias}: want {want:#x}, " \
                                       f"golden {got:#x}, reference {ref:#x}"


def test_nan_payloads_give_canonical_nan():
    payloads = [0x7C01, 0xFC01, 0x7D55, 0xFFFF, 0x7E00, 0xFE00]
    for p in payloads:
        for out in (FP16, BF16, FP32, FP8):
            x = np.array([0x3C00, p], np.int64)
            assert dot_golden(x, [0, 3], 0, in_fmt=FP16, wbits=2, out_fmt=out) == \
                out.canonical_nan
            b = out.pos_inf | 1
            assert dot_golden([0x3C00], [0], 0, in_fmt=FP16, wbits=2, out_fmt=out,
                              bias_bits=b) == out.canonical_nan


def test_bias_alignment_sweep():
    """e0 far from the bias in both directions (the bias far above or far below the products);
    fp8 output keeps rounding thresholds close together."""
    rng = np.random.default_rng(99)
    for e0 in range(-60, 61, 3):
        for in_fmt, out_fmt in ((FP16, FP8), (FP16, FP16), (FP8, BF16)):
            x = gen_bits(rng, in_fmt, (3, 4), 0.0)
            codes = rng.integers(0, 4, size=(4, 4))
            bias = gen_bits(rng, out_fmt, (4,), 0.05)
            check_gemm(e0, x, codes, e0, in_fmt=in_fmt, wbits=3, out_fmt=out_fmt, bias=bias)


@pytest.mark.parametrize("out_fmt,step", [(FP8, 1), (FP16, 211)], ids=["fp8", "fp16"])
def test_bias_scan(out_fmt, step):
    """Fixed small product sums (some nearly cancelling, some at the accumulator's bound)
    against every (or every step-th) bias pattern and several offsets: covers the bias far
    above, overlapping, and far below the products."""
    rows = np.array([
        [0x3BFF, 0x3BFF, 0x3BFF], [0x3C00, 0x3C00, 0x3C00], [0x3C01, 0xBC00, 0x0000],
        [0x0001, 0x0000, 0x8000], [0x3C00, 0x0001, 0x8000], [0x7BFF, 0x7BFF, 0x7BFF],
        [0x0400, 0x83FF, 0x0000], [0x3E00, 0xBDFF, 0x8000]], np.int64)
    bias = np.arange(0, 1 << out_fmt.width, step, dtype=np.int64)
    for signs, ps in (((0, 0, 0), (3, 3, 0)), ((0, 1, 0), (3, 3, 0)), ((1, 1, 1), (3, 3, 0)),
                      ((0, 0, 0), (0, 0, 0)), ((1, 0, 1), (0, 0, 1))):
        codes = np.tile([(s << 2) | p for s, p in zip(signs, ps, strict=True)], (bias.size, 1))
        for e0 in (-20, -10, -3, 0, 5, 10, 20):
            check_gemm(e0, rows, codes, e0, in_fmt=FP16, wbits=3, out_fmt=out_fmt, bias=bias)


def test_extreme_offsets():
    rng = np.random.default_rng(3)
    for e0 in (-5000, -300, -150, 150, 300, 5000):
        x = gen_bits(rng, FP32, (3, 5), 0.0)
        codes = rng.integers(0, 8, size=(3, 5))
        for bias in (None, gen_bits(rng, FP32, (3,), 0.0)):
            check_gemm(e0, x, codes, e0, in_fmt=FP32, wbits=4, bias=bias)


def test_per_channel_offsets_match_per_tensor():
    rng = np.random.default_rng(4)
    x = gen_bits(rng, FP16, (7, 50), 0.01)
    codes = rng.integers(0, 8, size=(9, 50))
    e0 = rng.integers(-8, 8, size=9)
    bias = gen_bits(rng, FP16, (9,), 0.1)
    y = gemm_golden(x, codes, e0, in_fmt=FP16, wbits=3, bias_bits=bias)
    for m in range(9):
        ym = gemm_golden(x, codes[m:m + 1], int(e0[m]), in_fmt=FP16, wbits=3,
                         bias_bits=bias[m:m + 1])
        assert torch.equal(y[:, m], ym[:, 0]), f"seed=4 channel {m}"


def test_row_blocks(monkeypatch):
    """Large GEMMs are computed in blocks of rows; block boundaries change nothing."""
    import sw.golden

    rng = np.random.default_rng(9)
    x = gen_bits(rng, FP16, (10, 30), 0.05)
    codes = rng.integers(0, 8, size=(4, 30))
    bias = gen_bits(rng, FP16, (4,), 0.1)
    whole = gemm_golden(x, codes, -3, in_fmt=FP16, wbits=3, bias_bits=bias)
    monkeypatch.setattr(sw.golden, "CHUNK_OUTPUTS", 12)           # 3 rows per block
    assert torch.equal(gemm_golden(x, codes, -3, in_fmt=FP16, wbits=3, bias_bits=bias), whole)
    check_gemm(9, x, codes, -3, in_fmt=FP16, wbits=3, bias=bias)


def test_torch_and_numpy_inputs_agree():
    rng = np.random.default_rng(8)
    x = gen_bits(rng, BF16, (4, 9), 0.05)
    codes = rng.integers(0, 8, size=(3, 9))
    a = gemm_golden(x, codes, -2, in_fmt="bf16", wbits=3)
    b = gemm_golden(torch.from_numpy(x.astype(np.int32)), torch.from_numpy(codes), -2,
                    in_fmt=BF16, wbits=3)
    c = gemm_golden(x.astype(np.uint16), codes.astype(np.uint8), np.array(-2), in_fmt=BF16,
                    wbits=3)
    assert a.dtype == torch.int64 and a.shape == (4, 3)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_large_k_no_specials():
    """K = 1024 and many rows: exercises multi-limb accumulation at full length."""
    rng = np.random.default_rng(12)
    x = gen_bits(rng, FP16, (4, 1024), 0.0)
    codes = rng.integers(0, 32, size=(3, 1024))
    check_gemm(12, x, codes, rng.integers(-8, 8, size=3), in_fmt=FP16, wbits=5,
               bias=gen_bits(rng, FP16, (3,), 0.0), check_gmpy=False)


# -- config domain and argument errors ----------------------------------------------------------

def test_config_domain():
    cfg = DotConfig(in_fmt=FP16, wbits=3, max_k=8, e0_min=-4, e0_max=3)
    x = np.full((1, 8), 0x3C00)
    codes = np.zeros((2, 8), np.int64)
    assert gemm_golden(x, codes, -4, in_fmt=FP16, wbits=3, config=cfg).tolist() == \
        [[0x3800, 0x3800]]                                   # 8 * 1.0 * 2**-4 = 0.5
    with pytest.raises(ValueError, match=r"K=9 is outside the configured range \[1, 8\]"):
        gemm_golden(np.zeros((1, 9), np.int64), np.zeros((1, 9), np.int64), 0, in_fmt=FP16,
                    wbits=3, config=cfg)
    with pytest.raises(ValueError, match=r"e0=4 is outside the configured range \[-4, 3\]"):
        gemm_golden(x, codes, [0, 4], in_fmt=FP16, wbits=3, config=cfg)
    with pytest.raises(ValueError, match=r"wbits=4 does not match the configuration's 3"):
        gemm_golden(x, codes, 0, in_fmt=FP16, wbits=4, config=cfg)
    with pytest.raises(ValueError, match=r"out_fmt=fp32 does not match the configuration's fp16"):
        gemm_golden(x, codes, 0, in_fmt=FP16, wbits=3, out_fmt=FP32, config=cfg)
    with pytest.raises(ValueError, match=r"in_fmt=bf16 does not match"):
        gemm_golden(x, codes, 0, in_fmt=BF16, wbits=3, config=cfg)
    with pytest.raises(TypeError, match=r"config must be a DotConfig, not 'x'"):
        gemm_golden(x, codes, 0, in_fmt=FP16, wbits=3, config="x")


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(x=np.zeros((2, 3, 1), np.int64)), ValueError,
     r"x_bits must have shape \(N, K\), not \(2, 3, 1\)"),
    (dict(x=np.zeros((2, 3))), ValueError, r"activations must be integers, not dtype float64"),
    (dict(x=np.array([[0, 0x10000, 0]])), ValueError,
     r"activation at index \(0, 1\) is 0x10000; expected a 16-bit pattern of fp16"),
    (dict(x=np.array([[0, -1, 0]])), ValueError, r"activation at index \(0, 1\) is -0x1"),
    (dict(codes=np.zeros((4, 2), np.int64)), ValueError,
     r"codes have shape \(4, 2\) but x_bits have shape \(2, 3\): expected codes of shape \(4, 3\)"),
    (dict(codes=np.array([[0, 8, 0]])), ValueError,
     r"weight code at index \(0, 1\) is 8; expected 0..7 for 3-bit codes"),
    (dict(codes=np.zeros(3, np.int64)), ValueError, r"codes must have shape \(M, K\), not \(3,\)"),
    (dict(e0=[0, 1]), ValueError, r"per-channel e0 must have shape \(1,\), not \(2,\)"),
    (dict(e0=1.5), ValueError, r"e0 must be integers, not dtype float64"),
    (dict(e0=True), TypeError, r"e0 must be an integer or an array of integers, not True"),
    (dict(e0=1 << 30), ValueError, r"e0=1073741824 is outside"),
    (dict(bias=np.array([0, 0])), ValueError, r"bias_bits must have shape \(1,\), not \(2,\)"),
    (dict(bias=np.array([0x10000])), ValueError, r"bias at index 0 is 0x10000"),
    (dict(wbits=6), ValueError, r"Weight bits must be in \[2, 5\], not 6"),
    (dict(fmt="fp64"), ValueError, r"in_fmt: Unknown format 'fp64'"),
    (dict(fmt=FloatFormat("f64", 11, 52)), ValueError, r"64 bits wide"),
    (dict(relu=1), TypeError, r"relu must be a bool, not 1"),
    (dict(x=np.zeros((1, 0), np.int64), codes=np.zeros((1, 0), np.int64)), ValueError,
     r"K=0 terms per dot product; expected 1\.\."),
])
def test_argument_errors(kwargs, exc, match):
    args = dict(x=np.zeros((2, 3), np.int64), codes=np.zeros((1, 3), np.int64), e0=0,
                fmt=FP16, wbits=3, bias=None, relu=False)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        gemm_golden(args["x"], args["codes"], args["e0"], in_fmt=args["fmt"],
                    wbits=args["wbits"], bias_bits=args["bias"], relu=args["relu"])


def test_dot_golden_errors():
    with pytest.raises(TypeError, match=r"e0 must be an integer, not \[0\]"):
        dot_golden([0], [0], [0], in_fmt=FP16, wbits=2)
    with pytest.raises(ValueError, match=r"must be vectors"):
        dot_golden([[0]], [0], 0, in_fmt=FP16, wbits=2)
    with pytest.raises(TypeError, match=r"bias_bits must be an integer pattern or None"):
        dot_golden([0], [0], 0, in_fmt=FP16, wbits=2, bias_bits=1.0)


def test_empty_batch():
    y = gemm_golden(np.zeros((0, 4), np.int64), np.zeros((3, 4), np.int64), 0, in_fmt=FP16,
                    wbits=2)
    assert y.shape == (0, 3) and y.dtype == torch.int64


# -- fpbits -------------------------------------------------------------------------------------

def test_fpbits_fp16_round_trip_exhaustive():
    vals = from_bits(ALL16, FP16)
    ref = ALL16.astype(np.uint16).view(np.float16).astype(np.float64)
    assert np.array_equal(np.isnan(vals), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert np.array_equal(vals[ok], ref[ok])
    assert np.array_equal(np.signbit(vals[ok]), np.signbit(ref[ok]))
    back = to_bits(vals, FP16)
    want = np.where(np.isnan(ref), FP16.canonical_nan, ALL16)
    assert np.array_equal(back, want)
    assert np.array_equal(to_bits(ALL16.astype(np.uint16).view(np.float16), FP16), want)


def test_fpbits_bf16_and_fp8_exhaustive():
    xv = torch.from_numpy(ALL16.astype(np.int16)).view(torch.bfloat16)
    got = to_bits(xv, BF16)
    assert isinstance(got, torch.Tensor)
    want = torch.where(torch.isnan(xv), BF16.canonical_nan, torch.from_numpy(ALL16))
    assert torch.equal(got, want)
    assert torch.equal(from_bits(torch.from_numpy(ALL16), BF16).isnan(), xv.isnan())
    all8 = np.arange(256, dtype=np.int64)
    v = from_bits(all8, FP8)
    for b in range(256):
        kind, s, mant, e = _decode(b, FP8)
        if kind == "fin":
            assert v[b] == (-1) ** s * mant * 2.0 ** e
    back = to_bits(v, FP8)
    assert np.array_equal(back, np.where(np.isnan(v), FP8.canonical_nan, all8))


def test_fpbits_fp32_random():
    rng = np.random.default_rng(2)
    raw = rng.integers(0, 1 << 32, size=20000, dtype=np.int64)
    vals = raw.astype(np.uint32).view(np.float32)
    got = to_bits(vals, FP32)
    want = np.where(np.isnan(vals), FP32.canonical_nan, raw)
    assert np.array_equal(got, want)
    back = from_bits(raw, FP32)
    ok = ~np.isnan(vals)
    assert np.array_equal(back[ok], vals[ok].astype(np.float64))


def test_fpbits_errors():
    with pytest.raises(ValueError, match=r"value at index 1 is 1\.0009765625, which bf16 "
                                         r"cannot represent exactly"):
        to_bits(np.array([1.0, 1.0009765625]), BF16)
    with pytest.raises(ValueError, match=r"value at index \(0, 1\) is 65536\.0, which fp16"):
        to_bits(np.array([[1.0, 65536.0]]), FP16)
    with pytest.raises(ValueError, match=r"value at index 0 is 2\.9802322387695312e-08"):
        to_bits(np.array([2.0 ** -25]), FP16)
    with pytest.raises(ValueError, match=r"values must be floating point, not dtype int64"):
        to_bits(np.array([1]), FP16)
    with pytest.raises(ValueError, match=r"bit pattern at index 0 is 0x100"):
        from_bits(np.array([256]), FP8)


# -- slow sweeps --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(CASES)))
def test_random_dot_products_big(case):
    in_fmt, out_fmt, wbits, _ = CASES[case]
    for i, k in enumerate((1, 2, 3, 10, 100, 513, 1024)):
        seed = 50000 + 100 * case + i
        rng = np.random.default_rng(seed)
        x = gen_bits(rng, in_fmt, (8, k), (0.0, 0.003, 0.05)[i % 3])
        codes = rng.integers(0, 1 << wbits, size=(8, k))
        e0 = rng.integers(-20, 20, size=8)
        bias = gen_bits(rng, out_fmt, (8,), 0.05)
        check_gemm(seed, x, codes, e0, in_fmt=in_fmt, wbits=wbits, out_fmt=out_fmt, bias=bias,
                   relu=bool(i % 2))


@pytest.mark.slow
def test_single_products_bf16_fp8_out_exhaustive():
    """Every bf16 pattern times every 3-bit code, rounded to fp8: reference vs golden."""
    codes = np.arange(8)[:, None]
    for e0 in (-130, -20, 0, 10):
        y = gemm_golden(ALL16[:, None], codes, e0, in_fmt=BF16, wbits=3, out_fmt=FP8).numpy()
        for x in range(0, 1 << 16, 7):
            for c in range(8):
                want = ref_dot([x], [c], e0, None, BF16, FP8, 3, False, check_gmpy=False)
                assert y[x, c] == want, f"e0={e0} x={x:#06x} code={c}"
