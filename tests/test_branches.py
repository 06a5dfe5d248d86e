"""Multi-branch {-1, +1} codes (``contract.branches``) and their golden model (``sw.branches``):
codes, packing, the exact integer GEMM against plain integer matmul for every (k_w, k_a), and
the scaled float path against exact rational rounding."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from contract import BF16, FP8_E4M3FN, FP8_E5M2, FP16, FP32
from contract.branches import (
    BRANCH_PACK_VERSION,
    branch_planes,
    branch_values,
    branch_words_per_row,
    decode_branches,
    encode_branches,
    max_abs_dot,
    pack_branches,
    unpack_branches,
)
from sw.branches import branch_gemm, branch_gemm_scaled
from sw.fpbits import to_bits

PAIRS = [(kw, ka) for kw in range(1, 9) for ka in range(1, 9)]


# -- codes ------------------------------------------------------------------------------------

def test_values_of_codes():
    assert branch_values(1).tolist() == [-1, 1]
    assert branch_values(2).tolist() == [-3, -1, 1, 3]
    assert branch_values(3).tolist() == [-7, -5, -3, -1, 1, 3, 5, 7]
    assert branch_values(8)[[0, 127, 128, 255]].tolist() == [-255, -1, 1, 255]
    assert BRANCH_PACK_VERSION == 1


@pytest.mark.parametrize("k", range(1, 9))
def test_codes_round_trip_and_branches(k):
    values = branch_values(k)
    codes = encode_branches(values.astype(np.int16), k)
    assert codes.dtype == np.uint8 and codes.tolist() == list(range(1 << k))
    assert np.array_equal(decode_branches(codes, k), values)
    planes = branch_planes(codes, k)                   # q = sum_i 2**i * b_i, b_i = ±1
    assert planes.shape == (k, 1 << k) and set(np.unique(planes)) <= {-1, 1}
    assert np.array_equal((planes.astype(np.int64) << np.arange(k)[:, None]).sum(0), values)


def test_encode_errors_name_the_first_bad_index():
    with pytest.raises(ValueError, match=r"value at index \(1, 0\) is 2; expected an odd "
                                         r"integer in \[-3, 3\] \(2-bit branch code\)"):
        encode_branches(np.array([[1, 3], [2, 4]], np.int8), 2)
    with pytest.raises(ValueError, match=r"value at index 2 is -9; expected an odd integer in "
                                         r"\[-7, 7\]"):
        encode_branches(np.array([1, -7, -9], np.int16), 3)
    with pytest.raises(ValueError, match="value at index 0 is 0"):
        encode_branches(np.array([0]), 1)
    with pytest.raises(ValueError, match="must be integers, not dtype float32"):
        encode_branches(np.ones(2, np.float32), 1)
    with pytest.raises(ValueError, match=r"code at index 1 is 4; expected 0..3"):
        decode_branches(np.array([0, 4]), 2)
    for bad in (0, 9):
        with pytest.raises(ValueError, match=r"must be in \[1, 8\]"):
            encode_branches(np.array([1]), bad)
    with pytest.raises(TypeError, match="must be an integer"):
        branch_values(2.0)


def test_packing_known_vector():
    # k = 3, K = 12 (36 bits, 2 words): values -7, 7, -1, 1, 3, -5, 5, -3, 7, 7, -7, 1
    values = np.array([[-7, 7, -1, 1, 3, -5, 5, -3, 7, 7, -7, 1]], np.int8)
    codes = encode_branches(values, 3)
    assert codes.tolist() == [[0, 7, 3, 4, 5, 1, 6, 2, 7, 7, 0, 4]]
    words = pack_branches(codes, 3)
    # code k at stream bits [3k, 3k+3): word 0 = 7<<3 | 3<<6 | 4<<9 | 5<<12 | 1<<15 | 6<<18 |
    # 2<<21 | 7<<24 | 7<<27 (code 10 = 0 at bits 30..32); code 11 = 0b100 at bits 33..35:
    # its set bit is stream bit 35, word 1 bit 3
    assert words.tolist() == [[0x3F58D8F8, 0x8]]
    assert branch_words_per_row(12, 3) == 2
    assert np.array_equal(unpack_branches(words, 12, 3), codes)


@pytest.mark.parametrize("k", range(1, 9))
def test_packing_round_trip(k):
    rng = np.random.default_rng(k)
    for length in (1, 31, 32, 33, 100):
        codes = rng.integers(0, 1 << k, size=(3, length)).astype(np.uint8)
        words = pack_branches(codes, k)
        assert words.dtype == np.uint32 and words.shape == (3, -(-length * k // 32))
        assert np.array_equal(unpack_branches(words, length, k), codes)
    bad = pack_branches(np.zeros((1, 3), np.uint8), k)
    bad[0, -1] |= np.uint32(1 << 31)                   # a padding bit
    with pytest.raises(ValueError, match="non-zero padding bits"):
        unpack_branches(bad, 3, k)


# -- the exact integer GEMM -----------------------------------------------------------------------

def _reference(x_codes, w_codes, wbits, abits):
    """Plain integer matmul of the decoded values (NumPy int64)."""
    return decode_branches(x_codes, abits) @ decode_branches(w_codes, wbits).T


def _check(x, w, wbits, abits, label):
    got = branch_gemm(x, w, wbits=wbits, abits=abits)
    want = _reference(x, w, wbits, abits)
    assert got.dtype == torch.int64
    bad = np.argwhere(got.numpy() != want)
    assert not bad.size, (f"{label} w{wbits}a{abits}: first mismatch at {tuple(bad[0])}: "
                          f"got {int(got[tuple(bad[0])])}, expected {want[tuple(bad[0])]}")
    return want.size


@pytest.mark.parametrize("wbits, abits", PAIRS)
def test_integer_gemm_random_and_extreme(wbits, abits):
    seed = 100 * wbits + abits
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    ta, tw = (1 << abits) - 1, (1 << wbits) - 1
    x = rng.integers(0, ta + 1, size=(7, 53))
    w = rng.integers(0, tw + 1, size=(5, 53))
    _check(x, w, wbits, abits, f"random (seed {seed})")
    # extremes: all largest / smallest values, alternating signs, K = 1
    ext_x = np.stack([np.full(53, ta), np.zeros(53, int), np.arange(53) % 2 * ta])
    ext_w = np.stack([np.full(53, tw), np.zeros(53, int), (np.arange(53) + 1) % 2 * tw])
    _check(ext_x, ext_w, wbits, abits, "extreme")
    y = branch_gemm(ext_x, ext_w, wbits=wbits, abits=abits)
    assert int(y[0, 0]) == max_abs_dot(53, wbits, abits) == int(y[1, 1])
    assert int(y[0, 1]) == -max_abs_dot(53, wbits, abits)
    _check(x[:, :1], w[:, :1], wbits, abits, "K=1")


def test_integer_gemm_long_k():
    rng = np.random.default_rng(7)
    k = 1 << 14
    x = np.concatenate([np.full((1, k), 255), rng.integers(0, 256, size=(2, k))])
    w = np.concatenate([np.full((1, k), 255), np.zeros((1, k), int), rng.integers(0, 256, (2, k))])
    _check(x, w, 8, 8, "K=16384")
    assert int(branch_gemm(x, w, wbits=8, abits=8)[0, 0]) == k * 255 * 255
    assert int(branch_gemm(x, w, wbits=8, abits=8)[0, 1]) == -k * 255 * 255


def test_integer_gemm_errors():
    with pytest.raises(ValueError, match=r"weight codes at index \(0, 1\) is 4; expected 0..3"):
        branch_gemm(np.zeros((1, 2), int), np.array([[0, 4]]), wbits=2, abits=1)
    with pytest.raises(ValueError, match=r"expected \(1, 2\)"):
        branch_gemm(np.zeros((1, 2), int), np.zeros((1, 3), int), wbits=1, abits=1)
    with pytest.raises(ValueError, match="K=0"):
        branch_gemm(np.zeros((1, 0), int), np.zeros((1, 0), int), wbits=1, abits=1)
    with pytest.raises(ValueError, match=r"wbits must be in \[1, 8\], not 9"):
        branch_gemm(np.zeros((1, 1), int), np.zeros((1, 1), int), wbits=9, abits=1)
    with pytest.raises(ValueError, match="integer codes"):
        branch_gemm(np.zeros((1, 1)), np.zeros((1, 1), int), wbits=1, abits=1)


# -- the scaled float path --------------------------------------------------------------------

def _bits(values, fmt=FP32):
    return to_bits(np.asarray(values, np.float64), fmt)


def _check_scaled(x, w, wbits, abits, sx, sw, out_fmt, relu=False, scale_fmt=FP32):
    """Against exact rational arithmetic and FloatFormat.from_fraction (one rounding)."""
    y = branch_gemm_scaled(x, w, wbits=wbits, abits=abits, scale_x=int(_bits(sx, scale_fmt)),
                           scale_w=_bits(sw, scale_fmt), scale_fmt=scale_fmt, out_fmt=out_fmt,
                           relu=relu).numpy()
    acc = _reference(x, w, wbits, abits)
    sw = np.broadcast_to(np.asarray(sw, np.float64), (w.shape[0],))
    for (n, m), a in np.ndenumerate(acc):
        exact = Fraction(int(a)) * Fraction(float(sx)) * Fraction(float(sw[m]))
        want = out_fmt.from_fraction(exact)
        if relu and want & out_fmt.sign_mask:
            want = 0
        assert y[n, m] == want, (f"{out_fmt.name} at ({n}, {m}): acc {a}, sx {sx!r}, sw "
                                 f"{sw[m]!r}: got {y[n, m]:#x}, expected {want:#x}")
    return y


@pytest.mark.parametrize("out_fmt", [FP32, FP16, BF16, FP8_E5M2, FP8_E4M3FN],
                         ids=lambda f: f.name)
def test_scaled_random(out_fmt):
    seed = out_fmt.width + (100 if out_fmt is FP8_E4M3FN else 0)
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    for wbits, abits in ((1, 1), (2, 2), (3, 5), (8, 8), (2, 8)):
        x = rng.integers(0, 1 << abits, size=(5, 40))
        w = rng.integers(0, 1 << wbits, size=(6, 40))
        sx = np.float32(np.exp2(rng.uniform(-12, 4)) * rng.uniform(1, 2))
        sw = (np.exp2(rng.uniform(-16, 2, 6)) * rng.uniform(1, 2, 6)).astype(np.float32)
        _check_scaled(x, w, wbits, abits, float(sx), sw, out_fmt)
        _check_scaled(x, w, wbits, abits, float(sx), float(sw[0]), out_fmt, relu=True)


def test_scaled_extremes():
    x = np.array([[255] * 4, [0] * 4, [255, 0, 255, 0], [128, 127, 128, 127]])
    w = np.array([[255] * 4, [0] * 4, [128] * 4])
    tiny, huge = 2.0 ** -149, float(np.finfo(np.float32).max)
    sub16 = 2.0 ** -24
    for sx, sw, out_fmt in (
            (1.0, [1.0, 1.0, 1.0], FP16),                 # 260100 > 65504: overflow to ±inf
            (tiny, [tiny, 1.0, 2.0 ** -10], FP32),       # underflow: nonzero keeps its sign
            (huge, [huge, 1.0, 2.0 ** 100], FP32),       # overflow
            (sub16, [1.0, 2.0 ** -20, 0.75], FP16),      # subnormal results
            (2.0 ** -8, [2.0 ** -10, 3.0, 1.5], FP8_E5M2),
            (2.0 ** -8, [2.0 ** -10, 3.0, 1.5], FP8_E4M3FN),  # beyond 448: ±448, no NaN
            (1.0, [1.0, 1.0, 1.0], BF16)):               # ties to even in 8 significant bits
        y = _check_scaled(x, w, 8, 8, sx, np.array(sw), out_fmt)
        _check_scaled(x, w, 8, 8, sx, np.array(sw), out_fmt, relu=True)
        assert y[3, 2] == 0                               # 128*... sums to an exact zero: +0
    y = branch_gemm_scaled(x[:2], w[:2], wbits=8, abits=8, scale_x=int(_bits(1.0)),
                           scale_w=int(_bits(1.0)), out_fmt=FP16).numpy()
    assert y.tolist() == [[FP16.pos_inf, FP16.neg_inf], [FP16.neg_inf, FP16.pos_inf]]
    y = branch_gemm_scaled(x[:2], w[:2], wbits=8, abits=8, scale_x=int(_bits(1.0)),
                           scale_w=int(_bits(1.0)), out_fmt=FP8_E4M3FN).numpy()
    assert y.tolist() == [[0x7E, 0xFE], [0xFE, 0x7E]]
    # bf16 scales (the scale format is a parameter)
    _check_scaled(x, w, 8, 8, 0.375, np.array([1.5, 2.0 ** -100, 3.0]), FP32, scale_fmt=BF16)


def test_scaled_errors():
    x, w = np.zeros((1, 2), int), np.zeros((3, 2), int)
    one = int(_bits(1.0))
    for bad, text in ((int(_bits(-1.0)), "0xbf800000"), (0, "0x0"),
                      (FP32.pos_inf, "0x7f800000"), (FP32.canonical_nan, "0x7fc00000")):
        with pytest.raises(ValueError, match=f"scale_x is {text}; expected a finite positive "
                                             f"fp32 value"):
            branch_gemm_scaled(x, w, wbits=1, abits=1, scale_x=bad, scale_w=one)
    with pytest.raises(ValueError, match="scale_w at index 1 is 0x0"):
        branch_gemm_scaled(x, w, wbits=1, abits=1, scale_x=one, scale_w=[one, 0, one])
    with pytest.raises(ValueError, match=r"\(3,\) patterns"):
        branch_gemm_scaled(x, w, wbits=1, abits=1, scale_x=one, scale_w=[one, one])
    with pytest.raises(ValueError, match="fraction bits"):
        branch_gemm_scaled(x, w, wbits=1, abits=1, scale_x=one, scale_w=one,
                           scale_fmt=FP32.__class__("fp64", 11, 52))


def test_scaled_ties_round_to_even():
    """Exact halfway cases: 257 and 259 in bf16 (8 significant bits), 2049 and 2051 in fp16."""
    enc = {v: (v + 255) // 2 for v in (1, 3, 255)}       # 8-bit codes of the values used
    cases = ((BF16, [255, 1, 1], 256), (BF16, [255, 3, 1], 260),
             (FP16, [255] * 8 + [1] * 9, 2048), (FP16, [255] * 8 + [1] * 8 + [3], 2052))
    for fmt, xs, want in cases:
        x = np.array([[enc[v] for v in xs]])
        w = np.full((1, len(xs)), enc[1])
        y = branch_gemm_scaled(x, w, wbits=8, abits=8, scale_x=int(_bits(1.0)),
                               scale_w=int(_bits(1.0)), out_fmt=fmt)
        assert int(y[0, 0]) == int(to_bits(np.float64(want), fmt)), (fmt.name, sum(xs))
