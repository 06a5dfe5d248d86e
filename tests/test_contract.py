"""The arithmetic contract: formats, weight codes and packing, unit configuration.

Exact conversions are checked against NumPy/torch decoding, MPFR (gmpy2) and Berkeley SoftFloat
(softfloatpy); the accumulator geometry against worst cases computed with Python integers.
"""

from __future__ import annotations

import json
from fractions import Fraction

import gmpy2
import numpy as np
import pytest
import softfloatpy as sf
import torch

from contract import (
    BF16,
    FORMATS,
    FP8_E5M2,
    FP16,
    FP32,
    PACK_VERSION,
    WORD_BITS,
    DotConfig,
    FloatFormat,
    check_wbits,
    decode_weights,
    encode_weights,
    get_format,
    make_code,
    max_exponent_code,
    pack_codes,
    split_code,
    unpack_codes,
    words_per_row,
)

FP8 = FP8_E5M2
E3M4 = FloatFormat("e3m4", 3, 4)


# -- FloatFormat --------------------------------------------------------------------------------

@pytest.mark.parametrize("args,exc,match", [
    (("", 5, 10), TypeError, r"Format name must be a non-empty string, not ''"),
    ((3, 5, 10), TypeError, r"Format name must be a non-empty string, not 3"),
    (("f", 1, 10), ValueError, r"exp_bits must be in \[2, 11\], not 1"),
    (("f", 12, 10), ValueError, r"exp_bits must be in \[2, 11\], not 12"),
    (("f", 5, 0), ValueError, r"frac_bits must be in \[1, 52\], not 0"),
    (("f", 5, 53), ValueError, r"frac_bits must be in \[1, 52\], not 53"),
    (("f", 5.0, 10), TypeError, r"exp_bits must be an integer, not 5\.0"),
    (("f", 5, True), TypeError, r"frac_bits must be an integer, not True"),
])
def test_format_validation(args, exc, match):
    with pytest.raises(exc, match=match):
        FloatFormat(*args)


def test_format_geometry():
    assert (FP16.width, FP16.bias, FP16.emin, FP16.emax, FP16.lsb_exp, FP16.msb_exp) == \
        (16, 15, -14, 15, -24, 16)
    assert (FP16.pos_inf, FP16.neg_inf, FP16.canonical_nan, FP16.max_finite) == \
        (0x7C00, 0xFC00, 0x7E00, 0x7BFF)
    assert (BF16.pos_inf, BF16.canonical_nan, BF16.max_finite, BF16.lsb_exp) == \
        (0x7F80, 0x7FC0, 0x7F7F, -133)
    assert (FP32.canonical_nan, FP32.lsb_exp, FP32.msb_exp) == (0x7FC00000, -149, 128)
    assert (FP8.width, FP8.canonical_nan, FP8.max_finite, FP8.lsb_exp) == (8, 0x7E, 0x7B, -16)
    assert FP16.fields(0xBC01) == (1, 15, 1)
    assert FP16.is_nan(0x7C01) and not FP16.is_nan(0x7C00) and FP16.is_inf(0xFC00)
    assert set(FORMATS) == {"fp16", "bf16", "fp32", "fp8_e5m2", "fp8_e4m3fn", "fp6_e3m2",
                            "fp6_e2m3", "fp4_e2m1"}
    assert get_format("bf16") is BF16 and get_format(E3M4) is E3M4
    with pytest.raises(ValueError, match=r"Unknown format 'fp64'; expected one of fp16, bf16"):
        get_format("fp64")
    for bad in (-1, 1 << 16, 1.0):
        with pytest.raises(ValueError, match=r"is not a 16-bit pattern of fp16"):
            FP16.check_bits(bad)


def test_to_fraction_fp16_exhaustive_vs_numpy():
    for bits in range(1 << 16):
        v = np.uint16(bits).view(np.float16)
        if np.isfinite(v):
            assert FP16.to_fraction(bits) == Fraction(float(v)), hex(bits)
        else:
            with pytest.raises(ValueError, match="is not finite in fp16"):
                FP16.to_fraction(bits)


def test_to_fraction_bf16_exhaustive_vs_torch():
    vals = torch.arange(1 << 16, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    vals = vals.double().tolist()
    for bits, v in enumerate(vals):
        if np.isfinite(v):
            assert BF16.to_fraction(bits) == Fraction(v), hex(bits)


def test_to_fraction_fp32_random_vs_numpy_and_mpfr():
    rng = np.random.default_rng(1)
    for bits in rng.integers(0, 1 << 32, size=5000).tolist():
        v = np.uint32(bits).view(np.float32)
        if np.isfinite(v):
            f = FP32.to_fraction(bits)
            assert f == Fraction(float(v)), hex(bits)
            assert gmpy2.mpq(f.numerator, f.denominator) == gmpy2.mpq(float(v))


def _mpfr_round(value: Fraction, fmt: FloatFormat, negative_zero=False) -> int:
    """Round with MPFR (precision, exponent range, subnormals of ``fmt``) and encode."""
    if value == 0:
        return fmt.sign_mask if negative_zero else 0
    ctx = gmpy2.context(precision=fmt.frac_bits + 1, emin=fmt.lsb_exp + 1, emax=fmt.emax + 1,
                        subnormalize=True, round=gmpy2.RoundToNearest)
    with gmpy2.context(ctx):
        r = gmpy2.mpfr(gmpy2.mpq(value.numerator, value.denominator))
    sign = fmt.sign_mask if gmpy2.is_signed(r) else 0
    if gmpy2.is_infinite(r):
        return sign | fmt.pos_inf
    if r == 0:
        return sign
    num, den = (int(t) for t in abs(r).as_integer_ratio())
    # exact: find the field encoding of num/den
    e = num.bit_length() - den.bit_length()
    if Fraction(num, den) < Fraction(2) ** e:
        e -= 1
    if e < fmt.emin:
        return sign | int(Fraction(num, den) / Fraction(2) ** fmt.lsb_exp)
    mant = Fraction(num, den) / Fraction(2) ** (e - fmt.frac_bits)
    assert mant.denominator == 1
    return sign | ((e + fmt.bias) << fmt.frac_bits) | (int(mant) - (1 << fmt.frac_bits))


def _random_fractions(rng, fmt, count):
    out = []
    span = (fmt.lsb_exp - 8, fmt.msb_exp + 2)
    for i in range(count):
        e = int(rng.integers(*span))
        if i % 3 == 0:                                   # arbitrary rationals
            num = int(rng.integers(1, 1 << 40))
            den = int(rng.integers(1, 1 << 20))
            v = Fraction(num, den) * Fraction(2) ** (e - 20)
        else:                                            # dyadic, near ties
            m = int(rng.integers(1, 1 << (fmt.frac_bits + 4)))
            v = Fraction(m) * Fraction(2) ** (e - fmt.frac_bits - 3)
        out.append(-v if rng.random() < 0.5 else v)
    return out


@pytest.mark.parametrize("fmt", [FP16, BF16, FP32, FP8, E3M4], ids=lambda f: f.name)
def test_from_fraction_vs_mpfr(fmt):
    rng = np.random.default_rng(fmt.width)
    for v in _random_fractions(rng, fmt, 3000):
        assert fmt.from_fraction(v) == _mpfr_round(v, fmt), (fmt.name, v)
    assert fmt.from_fraction(0) == 0
    assert fmt.from_fraction(Fraction(0), negative_zero=True) == fmt.sign_mask
    big = fmt.to_fraction(fmt.max_finite)
    half_ulp = Fraction(2) ** (fmt.emax - fmt.frac_bits - 1)
    assert fmt.from_fraction(big + half_ulp - Fraction(1, 1 << 200)) == fmt.max_finite
    assert fmt.from_fraction(big + half_ulp) == fmt.pos_inf            # tie to even: overflow
    assert fmt.from_fraction(-big - half_ulp) == fmt.neg_inf
    tiny = Fraction(2) ** fmt.lsb_exp
    assert fmt.from_fraction(-tiny / 2) == fmt.sign_mask                 # tie to even zero, -
    assert fmt.from_fraction(tiny / 2 + Fraction(1, 1 << 300)) == 1


def _sf_bits(x):
    return int.from_bytes(x.to_bytes(), "big")


@pytest.mark.parametrize("src,dst,conv", [
    (64, FP16, sf.f64_to_f16), (64, FP32, sf.f64_to_f32), (32, FP16, sf.f32_to_f16),
    (32, BF16, sf.f32_to_bf16)])
def test_from_fraction_vs_softfloat(src, dst, conv):
    """Rounding an fp32/fp64 value to a narrower format: SoftFloat's conversion agrees."""
    rng = np.random.default_rng(src + dst.width)
    cls, dtype = {64: (sf.Float64, np.float64), 32: (sf.Float32, np.float32)}[src]
    # mostly values near the destination's range, some raw patterns
    lo = max(dst.lsb_exp - 4, -120 if src == 32 else -1000)
    vals = np.ldexp(rng.random(4000) + 0.5, rng.integers(lo, dst.msb_exp + 2, 4000))
    raw = rng.integers(0, 1 << 62, 2000, dtype=np.int64).astype(np.uint64) << np.uint64(2)
    raw = raw if src == 64 else (raw >> np.uint64(32)).astype(np.uint32)
    with np.errstate(over="ignore", invalid="ignore"):         # infinities are skipped
        vals = np.concatenate([vals.astype(dtype), raw.view(dtype)])
        vals = vals * np.where(rng.random(vals.size) < 0.5, -1, 1).astype(dtype)
    for v in vals:
        if not np.isfinite(v):
            continue
        want = _sf_bits(conv(cls.from_bytes(np.array([v], v.dtype.newbyteorder(">")).tobytes())))
        got = dst.from_fraction(Fraction(float(v)), negative_zero=bool(np.signbit(v)))
        assert got == want, f"{float(v)!r}: softfloat {want:#x} contract {got:#x}"


# -- weight codes -------------------------------------------------------------------------------

def test_code_helpers():
    assert [max_exponent_code(b) for b in (2, 3, 4, 5)] == [1, 3, 7, 15]
    assert int(make_code(1, 5, 4)) == 0b1101
    s, p = split_code(np.array([0b1101, 0b0011]), 4)
    assert s.tolist() == [1, 0] and p.tolist() == [5, 3]
    for bad in (1, 6):
        with pytest.raises(ValueError, match=rf"Weight bits must be in \[2, 5\], not {bad}"):
            check_wbits(bad)
    with pytest.raises(TypeError, match=r"Weight bits must be an integer, not 3\.0"):
        check_wbits(3.0)


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    for wbits in (2, 3, 4, 5):
        pmax = max_exponent_code(wbits)
        e0 = rng.integers(-10, 10, size=6)
        p = rng.integers(0, pmax + 1, size=(6, 20))
        p[:, 0] = 0                                      # so that encode picks the same e0
        sign = rng.integers(0, 2, size=(6, 20))
        w = np.where(sign == 1, -1.0, 1.0) * np.ldexp(1.0, p + e0[:, None])
        codes, e0_got = encode_weights(w, wbits, per_channel=True)
        assert e0_got.tolist() == e0.tolist()
        assert codes.tolist() == make_code(sign, p, wbits).tolist()
        assert np.array_equal(decode_weights(codes, wbits, e0_got), w)
        codes_t, e0_t = encode_weights(w[:1], wbits)
        assert e0_t == int(e0[0]) and np.array_equal(decode_weights(codes_t, wbits, e0_t), w[:1])
        codes_e, e0_e = encode_weights(w[:1] * 2.0 ** pmax, wbits, e0=int(e0[0]) + pmax)
        assert e0_e == int(e0[0]) + pmax and np.array_equal(codes_e, codes_t)


@pytest.mark.parametrize("w,kwargs,match", [
    ([[1.0, 0.0]], {}, r"weight at index \(0, 1\) is .*0\.0.*: DenseShift weights have no zero"),
    ([[1.0, 0.3]], {}, r"weight at index \(0, 1\) is .*0\.3.*: not a power of two"),
    ([[1.0, -3.0]], {}, r"weight at index \(0, 1\) is .*-3\.0.*: not a power of two"),
    ([[1.0, np.nan]], {}, r"weight at index \(0, 1\) is .*nan.*: expected a finite"),
    ([[1.0], [-np.inf]], {}, r"weight at index \(1, 0\) is .*-inf.*: expected a finite"),
    ([[1.0, 32.0]], {}, r"weight at index \(0, 1\) is .*32\.0.* = 2\*\*5: outside the 4 "
                        r"exponents \[0, 3\] that 3-bit codes reach from e0=0"),
    ([[1.0, 2.0], [1.0, 16.0]], {"per_channel": True},
     r"weight at index \(1, 1\) is .*16\.0.* = 2\*\*4: outside the 4 exponents \[0, 3\]"),
    ([[1.0, 2.0]], {"e0": 2}, r"weight at index \(0, 0\) is .*1\.0.* = 2\*\*0: outside"),
    ([[]], {}, r"weights are empty"),
    ([["a"]], {}, r"weights must be numbers"),
])
def test_encode_errors(w, kwargs, match):
    with pytest.raises(ValueError, match=match):
        encode_weights(np.array(w), 3, **kwargs)


# -- packing (format version 1) -----------------------------------------------------------------

def _pack_reference(codes, wbits):
    """Bit-by-bit packing with Python ints, straight from the format description."""
    rows = []
    for row in codes:
        stream = 0
        for k, c in enumerate(row):
            stream |= int(c) << (k * wbits)
        n = -(-len(row) * wbits // 32)
        rows.append([(stream >> (32 * j)) & 0xFFFFFFFF for j in range(n)])
    return rows


def test_packed_known_vectors():
    """Hand-computed: B=5, K=7; code 6 (0x1B = 0b11011) straddles the word boundary: its low
    two bits end word 0 (bits 30, 31), its high bits 0b110 start word 1."""
    assert PACK_VERSION == 1 and WORD_BITS == 32
    codes = np.array([[0x1F, 0x00, 0x15, 0x0A, 0x11, 0x03, 0x1B]])
    words = pack_codes(codes, 5)
    assert words.dtype == np.uint32 and words.tolist() == [[0xC715541F, 0x00000006]]
    assert words.astype("<u4").tobytes() == bytes.fromhex("1f5415c7" "06000000")
    assert pack_codes(np.ones((1, 17), np.uint8), 2).tolist() == [[0x55555555, 0x1]]
    assert pack_codes(np.full((2, 8), 7), 3).tolist() == [[0xFFFFFF]] * 2
    assert np.array_equal(unpack_codes(words, 7, 5), codes)


@pytest.mark.parametrize("wbits", [2, 3, 4, 5])
def test_pack_round_trip(wbits):
    rng = np.random.default_rng(wbits)
    for k in (1, 2, 5, 7, 16, 31, 32, 33, 63, 64, 100, 257, 1000):
        codes = rng.integers(0, 1 << wbits, size=(3, k)).astype(np.uint8)
        words = pack_codes(codes, wbits)
        assert words.shape == (3, words_per_row(k, wbits)) == (3, -(-k * wbits // 32))
        assert words.tolist() == _pack_reference(codes, wbits), f"wbits={wbits} K={k}"
        back = unpack_codes(words, k, wbits)
        assert back.dtype == np.uint8 and np.array_equal(back, codes), f"wbits={wbits} K={k}"


def test_pack_errors():
    with pytest.raises(ValueError, match=r"code at index \(1, 2\) is 8; expected 0\.\.7"):
        pack_codes(np.array([[0, 0, 0], [0, 0, 8]]), 3)
    with pytest.raises(ValueError, match=r"code at index \(0, 0\) is -1"):
        pack_codes(np.array([[-1]]), 3)
    with pytest.raises(ValueError, match=r"codes must have shape \(M, K\), not \(3,\)"):
        pack_codes(np.zeros(3, np.uint8), 3)


def test_unpack_corrupt_input():
    words = pack_codes(np.full((2, 11), 5), 3)               # 33 bits: 2 words, 31 padding
    with pytest.raises(ValueError, match=r"non-zero padding bits beyond the last code"):
        bad = words.copy()
        bad[1, 1] |= np.uint32(1 << 4)
        unpack_codes(bad, 11, 3)
    with pytest.raises(ValueError, match=r"2 words per row, expected 1 for K=10, B=3"):
        unpack_codes(words, 10, 3)
    with pytest.raises(ValueError, match=r"packed words must be a 2-D uint32 array, not int64"):
        unpack_codes(words.astype(np.int64), 11, 3)
    with pytest.raises(ValueError, match=r"packed words must be a 2-D uint32 array, not uint32 "
                                         r"with shape \(4,\)"):
        unpack_codes(words.ravel(), 11, 3)
    with pytest.raises(ValueError, match=r"K must be a non-negative integer, not -1"):
        unpack_codes(words, -1, 3)


# -- DotConfig ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(lanes=0), ValueError, r"lanes must be in \[1, 64\], not 0"),
    (dict(lanes=65), ValueError, r"lanes must be in \[1, 64\], not 65"),
    (dict(lanes=2.0), TypeError, r"lanes must be an integer, not 2\.0"),
    (dict(pipeline=5), ValueError, r"pipeline must be in \[1, 4\], not 5"),
    (dict(max_k=0), ValueError, r"max_k must be in \[1, 1048576\], not 0"),
    (dict(max_k=True), TypeError, r"max_k must be an integer, not True"),
    (dict(e0_min=-65), ValueError, r"e0_min must be in \[-64, 64\], not -65"),
    (dict(e0_max="3"), TypeError, r"e0_max must be an integer, not '3'"),
    (dict(e0_min=3, e0_max=1), ValueError, r"e0_min \(3\) must not exceed e0_max \(1\)"),
    (dict(in_fmt="fp12"), ValueError, r"Unknown format 'fp12'"),
    (dict(out_fmt="x"), ValueError, r"Unknown format 'x'"),
    (dict(wbits=6), ValueError, r"Weight bits must be in \[2, 5\], not 6"),
])
def test_config_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        DotConfig(**kwargs)


def test_config_serialisation_and_checks():
    cfg = DotConfig(in_fmt="fp8_e5m2", out_fmt="fp16", wbits=4, lanes=8, max_k=100,
                    e0_min=-3, e0_max=5)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert DotConfig.from_dict(d) == cfg and cfg.out_fmt is FP16
    assert cfg.name.startswith("fp8_e5m2_fp16_b4_l8_") and cfg.name == DotConfig.from_dict(d).name
    assert DotConfig().name != DotConfig(lanes=8).name
    with pytest.raises(ValueError, match=r"unknown configuration keys: bogus"):
        DotConfig.from_dict({**d, "bogus": 1})
    cfg.check_k(1)
    cfg.check_k(100)
    for k in (0, 101):
        with pytest.raises(ValueError, match=rf"K={k} is outside the configured range \[1, 100\]"):
            cfg.check_k(k)
    cfg.check_e0(np.arange(-3, 6))
    with pytest.raises(ValueError, match=r"e0=6 is outside the configured range \[-3, 5\]"):
        cfg.check_e0([0, 6, -9])
    with pytest.raises(ValueError, match=r"e0=-4 is outside"):
        cfg.check_e0(-4)


CONFIGS = [
    DotConfig(),
    DotConfig(in_fmt="bf16", wbits=5, max_k=1 << 20, e0_min=-64, e0_max=64),
    DotConfig(in_fmt="fp32", out_fmt="fp16", wbits=2, max_k=1, e0_min=0, e0_max=0),
    DotConfig(in_fmt="fp8_e5m2", out_fmt="fp32", wbits=4, max_k=300, e0_min=-20, e0_max=-5),
    DotConfig(in_fmt="fp16", out_fmt="fp8_e5m2", wbits=3, max_k=7, e0_min=10, e0_max=30),
    DotConfig(in_fmt=E3M4, out_fmt="bf16", wbits=5, max_k=4096, e0_min=-1, e0_max=40),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_accumulator_geometry(cfg):
    """Within the domain every term is an integer number of accumulator LSBs, and the
    worst-case partial sum (max_k largest products plus the largest bias) fits in acc_width
    two's-complement bits; one bit fewer would not always do."""
    inf, outf = cfg.in_fmt, cfg.out_fmt
    pmax = cfg.pmax
    for e0 in (cfg.e0_min, cfg.e0_max):
        lsb = Fraction(2) ** (e0 + cfg.acc_lsb_exp)
        # smallest activation times the smallest weight, and the bias LSB, are whole LSBs
        assert (inf.to_fraction(1) * Fraction(2) ** e0 / lsb).denominator == 1
        assert (outf.to_fraction(1) / lsb).denominator == 1
        # product position formula: sig << (max(e,1) - 1 + p + product_shift_base)
        for bits in (1, inf.max_finite, (inf.bias << inf.frac_bits) | 1):
            _, e, f = inf.fields(bits)
            sig = f | ((1 << inf.frac_bits) if e else 0)
            for p in (0, pmax):
                units = inf.to_fraction(bits) * Fraction(2) ** (e0 + p) / lsb
                assert units == sig << (max(e, 1) - 1 + p + cfg.product_shift_base)
        for bits in (1, outf.max_finite, (outf.bias << outf.frac_bits) | 1):
            _, e, f = outf.fields(bits)
            sig = f | ((1 << outf.frac_bits) if e else 0)
            units = outf.to_fraction(bits) / lsb
            assert units == sig << (max(e, 1) - 1 - e0 + cfg.bias_shift_base)
    # worst case: largest products at e0_max, largest bias at e0_min (in LSB units each)
    prod = inf.to_fraction(inf.max_finite) * 2 ** pmax / Fraction(2) ** cfg.acc_lsb_exp
    bias = outf.to_fraction(outf.max_finite) / Fraction(2) ** (cfg.e0_min + cfg.acc_lsb_exp)
    assert prod.denominator == 1 and bias.denominator == 1
    worst = int(cfg.max_k * prod + bias)
    w = cfg.acc_width
    assert -(1 << (w - 1)) <= -worst and worst <= (1 << (w - 1)) - 1
    assert worst > (1 << (w - 3)) - 1, "accumulator much wider than needed"
    # e0 field: a two's-complement width holding [e0_min, e0_max], at most one bit to spare
    b = cfg.e0_bits
    assert -(1 << (b - 1)) <= cfg.e0_min and cfg.e0_max <= (1 << (b - 1)) - 1
    assert b <= 2 or not (-(1 << (b - 3)) <= cfg.e0_min and cfg.e0_max <= (1 << (b - 3)) - 1)
