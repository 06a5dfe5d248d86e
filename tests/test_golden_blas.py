"""The golden model's BLAS path (sw.golden_blas) against the multi-limb reference
(sw.golden.gemm_reference) and an exact Python-integer sum, bit for bit.

Fixed-seed random GEMMs over every format pairing, specials, bias, ReLU and per-channel
offsets; adversarial rows at the edge of the exactness bound (the largest K of a
configuration, the widest exponent spread, sums that must keep all 53 bits, ties decided by a
bit 50 places down); the float64 decoders and the rounding against the integer code; the
convolution entry point against im2col + GEMM. A failure names the seed and the first
mismatch in hex.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from test_golden import gen_bits, ref_dot, ref_round

from contract import BF16, FP8_E5M2, FP16, FP32, ArrayConfig, DotConfig, FloatFormat
from sw import golden_blas
from sw.conv import conv2d_golden, im2col_tensor
from sw.fpbits import from_bits, to_bits
from sw.golden import conv_golden, gemm_golden, gemm_reference

FP8 = FP8_E5M2


def _hex(v):
    return "[" + " ".join(f"{int(t):#x}" for t in np.ravel(v)) + "]"


def same(seed, x, codes, e0, *, in_fmt, wbits, out_fmt=None, bias=None, relu=False):
    """gemm_golden (BLAS path) == gemm_reference on every output, else fail with the first
    mismatch."""
    kw = dict(in_fmt=in_fmt, wbits=wbits, out_fmt=out_fmt, bias_bits=bias, relu=relu)
    got = gemm_golden(x, codes, e0, **kw)
    want = gemm_reference(x, codes, e0, **kw)
    bad = torch.nonzero(got != want)
    if bad.numel():
        n, m = bad[0].tolist()
        e0s = np.broadcast_to(np.asarray(e0), (np.shape(codes)[0],))
        pytest.fail(f"seed={seed}: {bad.shape[0]} mismatches; first at ({n},{m}) "
                    f"{in_fmt}->{out_fmt or in_fmt} B={wbits} e0={int(e0s[m])} relu={relu} "
                    f"x={_hex(np.asarray(x)[n])} codes={_hex(np.asarray(codes)[m])} bias="
                    f"{None if bias is None else hex(int(np.asarray(bias)[m]))}: reference "
                    f"{int(want[n, m]):#x}, BLAS path {int(got[n, m]):#x}")
    return got


def exact(x, codes, e0, bias, in_fmt, out_fmt, wbits):
    """The test suite's independent reference (Python integers, one dot product)."""
    return ref_dot(x, codes, int(e0), None if bias is None else int(bias), in_fmt, out_fmt,
                   wbits, False, check_gmpy=False)


# -- random GEMMs against the reference ----------------------------------------------------------

PAIRS = [(FP16, FP16, 3), (FP16, FP16, 5), (BF16, BF16, 4), (FP32, FP32, 5), (FP8, FP8, 2),
         (FP8, FP16, 3), (FP16, FP32, 4), (BF16, FP16, 3), (FP16, FP8, 5), (FP32, BF16, 2),
         (FloatFormat("e3m4", 3, 4), FP16, 4), (FP16, FloatFormat("e6m20", 6, 20), 3),
         (FloatFormat("e6m20", 6, 20), FloatFormat("e4m3", 4, 3), 5)]


@pytest.mark.parametrize("case", range(len(PAIRS)))
def test_random_gemms_match_reference(case):
    in_fmt, out_fmt, wbits = PAIRS[case]
    for i, k in enumerate((1, 3, 17, 256, 1024, 1500)):
        seed = 9000 + 10 * case + i
        rng = np.random.default_rng(seed)
        n, m = (12, 7) if k < 1024 else (5, 4)
        x = gen_bits(rng, in_fmt, (n, k), (0.0, 0.001, 0.05)[i % 3])
        codes = rng.integers(0, 1 << wbits, size=(m, k))
        e0 = rng.integers(-12, 9, size=m) if i % 2 else int(rng.integers(-12, 9))
        bias = gen_bits(rng, out_fmt, (m,), (0.0, 0.1)[i % 2]) if i % 3 else None
        same(seed, x, codes, e0, in_fmt=in_fmt, wbits=wbits, out_fmt=out_fmt, bias=bias,
             relu=bool(i % 4 == 1))


def test_network_like_rows_match_reference():
    """Rows of very different scales, ReLU zeros, whole zero rows and bias of either scale."""
    for seed in range(6):
        rng = np.random.default_rng(700 + seed)
        fmt, wbits = ((FP16, 3), (FP16, 5), (BF16, 4), (FP32, 5), (FP8, 3), (FP16, 4))[seed]
        k = int(rng.integers(200, 700))
        scale = 2.0 ** rng.integers(-12, 6, size=(16, 1))
        xv = np.maximum(rng.standard_normal((16, k)) * scale, 0.0)
        xv[3] = 0.0
        xv[5, ::2] = -0.0
        dt = {16: torch.float16, 8: torch.float32, 32: torch.float32}[fmt.width]
        x = to_bits(torch.from_numpy(xv).to(dt if fmt != BF16 else torch.bfloat16)
                    .to(torch.float64), fmt) if fmt != FP8 else gen_bits(rng, fmt, (16, k))
        codes = rng.integers(0, 1 << wbits, size=(24, k))
        bias = gen_bits(rng, fmt, (24,), 0.0)
        same(seed, x, codes, rng.integers(-8, 8, size=24), in_fmt=fmt, wbits=wbits,
             bias=bias, relu=True)
        same(seed, x, codes, -3, in_fmt=fmt, wbits=wbits)


# -- the exactness bound at its edge -----------------------------------------------------------

def test_static_one_part_bound_edge():
    """fp16, B=3: K <= 1024 needs no data at all (the docstring's bound); K = 1025 does."""
    assert golden_blas.static_one_part(FP16, 1024, 3)
    assert not golden_blas.static_one_part(FP16, 1025, 3)
    assert not golden_blas.static_one_part(FP16, 1024, 7)


@pytest.mark.parametrize("k", [1024, 1025, 4096])
def test_fp16_b3_worst_sum_keeps_53_bits(k):
    """Every term at the largest fp16 magnitude and p = pmax, all of one sign, plus the smallest
    subnormal in one place: the exact sum needs every bit of float64 (K = 1024) or more
    (K = 1025; K = 4096, the largest K of the default DotConfig). Checked against an exact
    integer sum."""
    big = FP16.max_finite
    x = np.full((4, k), big, np.int64)
    x[0, 7] = 1                                            # 2**-24
    x[1, 7] = FP16.sign_mask | 1                           # -2**-24
    x[2, ::3] |= FP16.sign_mask                            # cancellations
    x[3, :] = np.where(np.arange(k) % 2, big, 1)           # max and min alternating
    codes = np.full((3, k), 3, np.int64)                   # +2**3
    codes[1] |= 4                                          # -2**3
    codes[2, ::2] = 7
    codes[:, 7] &= 4                                       # the subnormal at weight +-1
    for e0 in (-40, -8, 0):
        for bias in (None, np.array([0x3C00, 0xFBFF, 0x0001], np.int64)):
            y = same(k, x, codes, e0, in_fmt=FP16, wbits=3, bias=bias, out_fmt=FP32)
            for n in range(4):
                for m in range(3):
                    want = exact(x[n], codes[m], e0, None if bias is None else bias[m],
                                 FP16, FP32, 3)
                    assert int(y[n, m]) == want, f"K={k} e0={e0} ({n},{m})"


@pytest.mark.parametrize("fmt", [FP16, BF16, FP32])
def test_part_count_thresholds(fmt):
    """Rows just below and above each part-count threshold, where one part too few loses the
    one bit that decides a tie: ``2**(l+d) + 2**(l+d-24)`` at weight ``2**pmax`` (an fp32 tie)
    plus ``2**l`` (the smallest subnormal) at weight 1, ``d`` from below the one-part limit
    (``d = 37``) to past the two-part one: a summation that keeps 53 bits rounds the lone low
    bit away in any order (a tie, to even). Against the reference and the exact sum; the part
    counts are the docstring's."""
    k, wbits, pmax = 1024, 5, 15
    lb = 53 - pmax - 10
    lsb = fmt.lsb_exp
    ds = [d for d in range(35, 37 + lb + 3) if lsb + d <= fmt.emax]
    v = np.zeros((2 * len(ds), k))
    for i, d in enumerate(ds):
        row = [2.0 ** lsb, 0.0, 2.0 ** (lsb + d), 2.0 ** (lsb + d - 24)]
        v[2 * i, :4] = row
        v[2 * i + 1, :4] = [-r for r in row]
    x = to_bits(v, fmt)
    codes = np.zeros((1, k), np.int64)
    codes[0, 2:4] = pmax
    counts = [golden_blas.parts_needed(golden_blas.decode(torch.from_numpy(x[i:i + 1]), fmt),
                                       fmt, pmax)[0] for i in range(0, len(x), 2)]
    assert counts[:4] == [1, 1, 1, 2] and counts == sorted(counts), counts
    assert counts[-1] == (3 if fmt != FP16 else 2), counts
    whole = same(fmt.width, x, codes, 0, in_fmt=fmt, wbits=wbits, out_fmt=FP32)  # mixed
    for i, d in enumerate(ds):                             # one call per d: its own count
        y = same(d, x[2 * i:2 * i + 2], codes, 0, in_fmt=fmt, wbits=wbits, out_fmt=FP32)
        for r in range(2):
            want = exact(x[2 * i + r], codes[0], 0, None, fmt, FP32, wbits)
            assert int(y[r, 0]) == want == int(whole[2 * i + r, 0]), f"{fmt} d={d} J={counts[i]}"


@pytest.mark.parametrize("fmt,out_fmt,e0", [(FP16, FP32, -1), (FP8, FP32, -1), (BF16, BF16, -32),
                                          (FP32, FP32, -32)])
def test_largest_array_depth_widest_spread(fmt, out_fmt, e0):
    """K = 65536 (the largest ArrayConfig depth), B = 5 (p up to 15), activations spanning the
    whole exponent range of the format in every row (largest finite, smallest subnormal, values
    near 1; one row of +-largest only): several parts per row, results within the output
    range. Against the reference and the exact integer sum."""
    k, wbits = ArrayConfig(depth=1 << 16).max_k, 5
    assert k == 1 << 16
    rng = np.random.default_rng(k + fmt.width)
    x = gen_bits(rng, fmt, (3, k), 0.0)
    x[:, 0] = fmt.max_finite
    x[:, 1] = 1                                            # smallest subnormal
    x[1, 2:] = fmt.max_finite | (rng.integers(0, 2, size=k - 2) << (fmt.width - 1))
    codes = rng.integers(0, 1 << wbits, size=(2, k))
    codes[:, :2] = (1 << (wbits - 1)) - 1                  # p = pmax, positive
    bias = np.array([out_fmt.max_finite >> 1 | out_fmt.sign_mask, 1], np.int64)
    y = same(k, x, codes, e0, in_fmt=fmt, wbits=wbits, out_fmt=out_fmt, bias=bias)
    for n in range(3):
        for m in range(2):
            want = exact(x[n], codes[m], e0, bias[m], fmt, out_fmt, wbits)
            assert want & ~out_fmt.sign_mask < out_fmt.pos_inf
            assert int(y[n, m]) == want, f"{fmt} ({n},{m}): exact {want:#x} got {int(y[n, m]):#x}"


def test_two_parts_with_bias_anywhere(monkeypatch):
    """Two parts per row (fp32, B=5: randn rows with a few tiny values) against biases of every
    magnitude, zeros and subnormals included: where the three-term float64 reduction cannot
    hold the sum, those outputs go through the integer limbs; both match the reference."""
    calls = []
    original = golden_blas._limbs_round
    monkeypatch.setattr(golden_blas, "_limbs_round",
                        lambda *a: calls.append(a[4] is not None) or original(*a))
    rng = np.random.default_rng(61)
    v = rng.standard_normal((12, 1024)) * 2.0 ** rng.integers(-20, 20, size=(12, 1))
    v[:, :3] *= 2.0 ** -20
    x = to_bits(v.astype(np.float32), FP32)
    codes = rng.integers(0, 32, size=(40, 1024))
    bias = gen_bits(rng, FP32, (40,), 0.0)
    bias[:20] = (rng.integers(1, 254, size=20) << 23) | rng.integers(0, 1 << 23, size=20)
    bias[20:23] = (0, FP32.sign_mask, 1)
    bias16 = (rng.integers(0, 31, size=40) << 10) | rng.integers(0, 1 << 10, size=40)
    for e0 in (-20, -4, 9):
        assert golden_blas.parts_needed(golden_blas.decode(torch.from_numpy(x), FP32), FP32,
                                        15)[0] == 2
        same(61, x, codes, e0, in_fmt=FP32, wbits=5, bias=bias)
        same(61, x, codes, e0, in_fmt=FP32, wbits=5, bias=bias16, out_fmt=FP16, relu=True)
    assert True in calls                                   # the integer fallback ran


@pytest.mark.slow
def test_largest_dot_config_k():
    """K = 2**20 (the largest DotConfig max_k) with the widest spread, fp16 and bf16, B=5."""
    for fmt in (FP16, BF16):
        k = DotConfig(in_fmt=fmt, wbits=5, max_k=1 << 20).max_k
        rng = np.random.default_rng(20)
        x = gen_bits(rng, fmt, (2, k), 0.0)
        x[:, 0], x[:, 1] = fmt.max_finite, 1
        codes = rng.integers(0, 32, size=(2, k))
        same(k, x, codes, 0, in_fmt=fmt, wbits=5, bias=gen_bits(rng, fmt, (2,)))


def test_parts_split_exactly_within_bounds():
    """The split of rows into parts: sums back to the row exactly, every part on its grid and
    within the bound of the module docstring (checked on the product sums too)."""
    rng = np.random.default_rng(31)
    for fmt, wbits, k in ((FP32, 5, 1024), (BF16, 5, 4000), (FP16, 5, 5000), (FP32, 2, 7)):
        x = gen_bits(rng, fmt, (20, k), 0.0)
        x[0, :] = fmt.max_finite
        x[1, :3] = (1, fmt.max_finite, 2)
        x64 = golden_blas.decode(torch.from_numpy(x), fmt)
        pmax = (1 << (wbits - 1)) - 1
        j_count, u = golden_blas.parts_needed(x64, fmt, pmax)
        parts = golden_blas.split_parts(x64, u, j_count, pmax, k)
        assert len(parts) == j_count
        total = torch.zeros_like(x64)
        w = torch.full((1, k), 2.0 ** pmax, dtype=torch.float64)
        for j, (p, s) in enumerate(parts):
            unit = torch.ldexp(torch.ones_like(p), s[:, None].to(torch.float64))
            assert torch.equal(torch.floor(p / unit), p / unit), f"{fmt} part {j} off grid"
            bound = torch.ldexp(torch.ones_like(s, dtype=torch.float64),
                                (52 + s).to(torch.float64))
            assert bool(((p.abs() @ w.T)[:, 0] <= bound).all()), f"{fmt} part {j} too large"
            total += p
        assert torch.equal(total, x64)


# -- rounding and decoding ------------------------------------------------------------------------

def test_tie_decided_far_below_by_round_to_odd():
    """V = bias + products where the products sit half an output ulp above or below the bias
    plus or minus 2**-50: float64 cannot hold V, the rounding-to-odd step decides."""
    # 16 + (2**12 * 2**7 + -+2**-24) * 2**-26 = 16 + 2**-7 +- 2**-50; fp16 ulp at 16 is 2**-6
    x = np.array([[0x6C00, 0x0001], [0x6C00, 0x8001], [0x6C00, 0x0000]], np.int64)
    codes = np.array([[7, 0]], np.int64)                     # +2**7, +1 (B=4)
    bias = np.array([0x4C00], np.int64)                      # 16.0
    y = same(0, x, codes, -26, in_fmt=FP16, wbits=4, bias=bias)
    assert y[:, 0].tolist() == [0x4C01, 0x4C00, 0x4C00]      # up, down, tie to even
    for n in range(3):
        assert exact(x[n], codes[0], -26, 0x4C00, FP16, FP16, 4) == int(y[n, 0])


def test_exact_addition_shortcut_edge():
    """The bias is added in float64 without TwoSum only when the sum fits 53 bits on the grid
    of the bias's smallest ulp: here 2**19 + 2**-5 - 2**-12 (products) plus
    (1 + 2**-23) * 2**-12 (bias) needs 55 bits, and its lowest bit alone lifts an fp32 tie."""
    x = to_bits(np.array([[2.0 ** 13, 2.0 ** -5, -(2.0 ** -12)]]), FP16)
    codes = np.array([[6, 0, 0]], np.int64)                # 2**6, 1, 1 (B = 4)
    bias = to_bits(np.array([(1 + 2.0 ** -23) * 2.0 ** -12], np.float32), FP32)
    y = same(0, x, codes, 0, in_fmt=FP16, wbits=4, out_fmt=FP32, bias=bias)
    want = exact(x[0], codes[0], 0, int(bias[0]), FP16, FP32, 4)
    assert int(y[0, 0]) == want == int(to_bits(np.array([2.0 ** 19 + 2.0 ** -4]), FP32)[0])


@pytest.mark.parametrize("fmt", [FP16, BF16, FP32, FP8, FloatFormat("e4m3", 4, 3),
                                 FloatFormat("e6m20", 6, 20)])
def test_round_float64_matches_integer_rounding(fmt):
    """The add-a-constant rounding (formats with a torch dtype) and the integer rounding agree
    on random float64 values across the format's range, overflow and underflow included; a
    sample agrees with the test suite's rounder."""
    rng = np.random.default_rng(fmt.width)
    n = 20000
    mant = rng.integers(1 << 52, 1 << 53, size=n)
    exps = rng.integers(fmt.lsb_exp - 60, fmt.emax + 4, size=n)
    v = np.ldexp(mant.astype(np.float64), (exps - 52).astype(np.int32))
    v = np.where(rng.random(n) < 0.5, -v, v)
    v[:4] = (0.0, -0.0, 2.0 ** fmt.lsb_exp * 1.5, -(2.0 ** (fmt.emax + 1)))
    t = torch.from_numpy(v)
    got = golden_blas.round_float64(t.clone(), fmt)
    want = golden_blas._round_bits(t.clone().view(torch.int64), fmt)
    bad = torch.nonzero(got != want).flatten()
    assert not bad.numel(), (f"{fmt}: value {float(t[bad[0]])!r}: constant method "
                             f"{int(got[bad[0]]):#x}, integer method {int(want[bad[0]]):#x}")
    for i in range(4, 400):
        f = Fraction(float(v[i]))
        sign = fmt.sign_mask if f < 0 else 0
        assert int(got[i]) == sign | ref_round(abs(f.numerator), -(f.denominator.bit_length()
                                                                    - 1), fmt), (fmt, v[i])


@pytest.mark.parametrize("fmt", [FP16, BF16, FP8, FloatFormat("e3m4", 3, 4)])
def test_decode_exhaustive(fmt):
    bits = torch.arange(1 << fmt.width, dtype=torch.int64)
    got = golden_blas.decode(bits, fmt)
    want = from_bits(bits, fmt)
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    ok = ~torch.isnan(want)
    assert torch.equal(got[ok], want[ok])
    assert torch.equal(torch.signbit(got[ok]), torch.signbit(want[ok]))


def test_decode_fp32_and_flushed_denormals():
    rng = np.random.default_rng(32)
    bits = torch.from_numpy(np.concatenate([rng.integers(0, 1 << 32, size=50000),
                                            np.arange(0, 300), (1 << 31) + np.arange(300)]))
    want = from_bits(bits, FP32)
    for flush in (False, True):
        if flush and not torch.set_flush_denormal(True):
            continue                                       # not supported on this CPU
        try:
            got = golden_blas.decode(bits, FP32)
            got_bf = golden_blas.decode(bits & 0xFFFF, BF16)
        finally:
            torch.set_flush_denormal(False)
        ok = ~torch.isnan(want)
        assert torch.equal(got[ok], want[ok]) and torch.equal(torch.signbit(got[ok]),
                                                              torch.signbit(want[ok]))
        wbf = from_bits(bits & 0xFFFF, BF16)
        okb = ~torch.isnan(wbf)
        assert torch.equal(got_bf[okb], wbf[okb]), f"flush={flush}"


def test_flushed_denormals_keep_results():
    rng = np.random.default_rng(33)
    x = gen_bits(rng, FP32, (6, 40), 0.02)
    x[:, :5] = rng.integers(1, 1 << 23, size=(6, 5))        # subnormals
    codes = rng.integers(0, 8, size=(5, 40))
    want = gemm_reference(x, codes, -3, in_fmt=FP32, wbits=4)
    if not torch.set_flush_denormal(True):
        pytest.skip("flush-denormal mode not supported on this CPU")
    try:
        got = gemm_golden(x, codes, -3, in_fmt=FP32, wbits=4, out_fmt=BF16)
        got32 = gemm_golden(x, codes, -3, in_fmt=FP32, wbits=4)
    finally:
        torch.set_flush_denormal(False)
    assert torch.equal(got32, want)
    assert torch.equal(got, gemm_reference(x, codes, -3, in_fmt=FP32, wbits=4, out_fmt=BF16))


# -- eligibility, threads, blocks ----------------------------------------------------------------

def test_formats_beyond_float64_take_the_reference():
    wide = FloatFormat("e11m10", 11, 10)
    assert not golden_blas.eligible(wide, wide, 3, 0, 0)
    assert not golden_blas.eligible(FP16, FloatFormat("e10m52", 10, 52), 3, 0, 0)
    assert not golden_blas.eligible(FP32, FP32, 3, -5000, 0)
    assert golden_blas.eligible(FP32, FP32, 15, -64, 64)
    assert golden_blas.eligible(FP16, FP8, 15, -64, 64)
    rng = np.random.default_rng(5)
    x = gen_bits(rng, wide, (3, 9), 0.1)
    codes = rng.integers(0, 8, size=(2, 9))
    assert torch.equal(gemm_golden(x, codes, 3, in_fmt=wide, wbits=4),
                       gemm_reference(x, codes, 3, in_fmt=wide, wbits=4))


def test_threads_do_not_change_results(monkeypatch):
    import sw.golden

    rng = np.random.default_rng(6)
    x = gen_bits(rng, BF16, (100, 200), 0.01)
    codes = rng.integers(0, 16, size=(40, 200))
    bias = gen_bits(rng, BF16, (40,), 0.05)
    kw = dict(in_fmt=BF16, wbits=4, bias_bits=bias, relu=True)
    one = gemm_golden(x, codes, -5, threads=1, **kw)
    assert torch.equal(one, gemm_golden(x, codes, -5, threads=2, **kw))
    saved = torch.get_num_threads()
    gemm_golden(x, codes, -5, threads=1, **kw)
    assert torch.get_num_threads() == saved
    monkeypatch.setattr(sw.golden, "CHUNK_TERMS", 4000)          # blocks of 20 rows
    assert torch.equal(one, gemm_golden(x, codes, -5, **kw))
    for bad, exc in ((0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(exc, match="threads must be a positive integer or None"):
            gemm_golden(x, codes, -5, threads=bad, **kw)


def test_strided_and_fortran_inputs():
    """Transposed torch views, strided slices and Fortran-ordered arrays give the same bits."""
    rng = np.random.default_rng(8)
    for fmt, wbits in ((FP16, 3), (BF16, 4), (FP32, 5)):
        xt = gen_bits(rng, fmt, (300, 40), 0.02)
        codes = rng.integers(0, 1 << wbits, size=(300, 17))
        bias = gen_bits(rng, fmt, (34,), 0.1)
        want = gemm_reference(np.ascontiguousarray(xt.T), np.ascontiguousarray(codes.T), -3,
                              in_fmt=fmt, wbits=wbits, bias_bits=bias[::2].copy())
        kw = dict(in_fmt=fmt, wbits=wbits)
        assert torch.equal(gemm_golden(torch.from_numpy(xt).T, torch.from_numpy(codes).T, -3,
                                       bias_bits=torch.from_numpy(bias)[::2], **kw), want)
        assert torch.equal(gemm_golden(np.asfortranarray(xt.T), codes.T, -3,
                                       bias_bits=bias[::2], **kw), want)


# -- convolutions --------------------------------------------------------------------------------

def _conv_by_gemm(x, codes, e0, kernel, stride, padding, dilation, **kw):
    s = x.shape[0]
    cols = im2col_tensor(torch.from_numpy(x), kernel, stride, padding, dilation)
    y = gemm_reference(cols, codes.reshape(codes.shape[0], -1), e0, **kw)
    return y.reshape(s, -1, codes.shape[0]).transpose(1, 2)


@pytest.mark.parametrize("dims", [1, 2])
def test_conv_matches_im2col_gemm(dims, monkeypatch):
    import sw.golden

    rng = np.random.default_rng(40 + dims)
    for t, special in enumerate((0.0, 0.0, 0.02)):
        fmt = (FP16, BF16, FP16)[t]
        shape = (3, 4, 9) if dims == 1 else (3, 4, 7, 6)
        x = gen_bits(rng, fmt, shape, special)
        x[1] = np.where(rng.random(x[1].shape) < 0.5, 0, fmt.sign_mask)   # a sample of zeros
        kernel = (3,) if dims == 1 else (3, 2)
        stride, padding, dilation = ((2,), (1,), (2,)) if dims == 1 else ((2, 1), (1, 2), (1, 2))
        codes = rng.integers(0, 8, size=(5, 4, *kernel))
        codes[0] = 4                                        # all -1: the -0 rule on padding
        bias = gen_bits(rng, fmt, (5,), 0.0)
        bias[1] = fmt.sign_mask
        kw = dict(in_fmt=fmt, wbits=3, bias_bits=bias, relu=bool(t == 1))
        want = _conv_by_gemm(x, codes, -2, kernel, stride, padding, dilation, **kw)
        got = conv_golden(x, codes, -2, kernel=kernel, stride=stride, padding=padding,
                          dilation=dilation, **kw)
        assert got.shape[:2] == (3, 5) and int(np.prod(got.shape[2:])) == want.shape[2]
        assert torch.equal(got.reshape(want.shape), want), f"seed={40 + dims} case {t}"
        ckk = int(np.prod(codes.shape[1:]))
        row = ckk * (got.shape[3] if dims == 2 else 1)     # activations of one output row
        for chunk in (1, 2 * row, 2 * ckk * int(np.prod(got.shape[2:]))):
            monkeypatch.setattr(sw.golden, "CHUNK_TERMS", chunk)   # 1 and 2 rows, 2 samples
            again = conv_golden(x, codes.reshape(5, -1), -2, kernel=kernel, stride=stride,
                                padding=padding, dilation=dilation, **kw)
            monkeypatch.undo()
            assert torch.equal(again, got), f"seed={40 + dims} case {t} CHUNK_TERMS={chunk}"


def test_conv2d_golden_goes_through_conv_golden():
    rng = np.random.default_rng(44)
    x = gen_bits(rng, FP16, (2, 3, 6, 5), 0.01)
    codes = rng.integers(0, 8, size=(4, 3, 3, 3))
    y = conv2d_golden(x, codes, -1, in_fmt=FP16, wbits=3, kernel=3, stride=2, padding=1)
    want = _conv_by_gemm(x, codes, -1, (3, 3), (2, 2), (1, 1), (1, 1), in_fmt=FP16, wbits=3)
    assert isinstance(y, np.ndarray) and y.shape == (2, 4, 3, 3)
    assert np.array_equal(y.reshape(2, 4, -1), want.numpy())


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(x=np.zeros((2, 3), np.int64)), ValueError, r"shape \(S, C, L\) or \(S, C, H, W\)"),
    (dict(kernel=(3, 3, 3)), TypeError, r"kernel must be an int or 2 ints"),
    (dict(stride=0), ValueError, r"kernel, stride and dilation must be >= 1"),
    (dict(kernel=9), ValueError, r"kernel \(9, 9\) \(dilation \(1, 1\)\) is larger than the "
                                 r"padded input \(6, 6\)"),
    (dict(codes=np.zeros((2, 5), np.int64)), ValueError, r"codes have shape \(2, 5\) but"),
    (dict(x=np.full((1, 2, 4, 4), 0x10000)), ValueError, r"activation at index"),
])
def test_conv_argument_errors(kwargs, exc, match):
    args = dict(x=np.zeros((1, 2, 4, 4), np.int64), codes=np.zeros((2, 2, 3, 3), np.int64),
                kernel=3, stride=1)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        conv_golden(args["x"], args["codes"], 0, in_fmt=FP16, wbits=3, kernel=args["kernel"],
                    stride=args["stride"], padding=1)
