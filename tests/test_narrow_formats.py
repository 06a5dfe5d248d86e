"""fp8_e4m3fn and the OCP MX formats: contract definitions, carriers, block scales and the
golden model against an exact rational reference (raw bit comparison, specials included)."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from contract import (
    FP4_E2M1,
    FP6_E2M3,
    FP6_E3M2,
    FP8_E4M3FN,
    FP8_E5M2,
    FP16,
    ArrayConfig,
    carrier_format,
    decode_weights,
    get_format,
)
from contract.array import activation_lanes
from contract.formats import format_to_dict
from sw.fpbits import from_bits, to_bits
from sw.golden import gemm_golden, gemm_reference
from sw.mx import fold_scales, from_carrier, to_carrier

NARROW = (FP8_E4M3FN, FP8_E5M2, FP6_E3M2, FP6_E2M3, FP4_E2M1)


def _values(fmt):
    return from_bits(np.arange(1 << fmt.width), fmt)


def test_e4m3fn_definition():
    f = FP8_E4M3FN
    v = _values(f)
    want = torch.arange(256, dtype=torch.int64).to(torch.uint8).view(torch.float8_e4m3fn)
    assert np.array_equal(v, want.double().numpy(), equal_nan=True)
    assert [b for b in range(256) if f.is_nan(b)] == [0x7F, 0xFF]
    assert not any(f.is_inf(b) for b in range(256)) and not np.isinf(v).any()
    assert f.canonical_nan == 0x7F and f.max_finite == 0x7E and f.to_fraction(0x7E) == 448
    assert f.to_fraction(1) == Fraction(1, 512) and f.emax == 8 and f.emin == -6
    with pytest.raises(ValueError, match="no infinity"):
        _ = f.pos_inf


@pytest.mark.parametrize("value, want", [
    (Fraction(448), 0x7E), (Fraction(463), 0x7E), (Fraction(464), 0x7E),   # tie to even
    (Fraction(465), 0x7E), (Fraction(10 ** 9), 0x7E), (Fraction(-500), 0xFE),
    (Fraction(416), 0x7D), (Fraction(1, 1024), 0x00), (Fraction(3, 2048), 0x01),
    (Fraction(-1, 1025), 0x80)])
def test_e4m3fn_rounding_saturates(value, want):
    assert FP8_E4M3FN.from_fraction(value) == want


def test_e4m3fn_rounding_matches_torch_in_range():
    rng = np.random.default_rng(27)
    print("seed 27")
    v = (rng.standard_normal(20000) * np.exp2(rng.integers(-14, 9, 20000))).astype(np.float32)
    v = v[np.abs(v) < 464]                          # torch overflows to NaN, the contract saturates
    want = torch.from_numpy(v).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    got = np.array([FP8_E4M3FN.from_fraction(Fraction(float(x))) for x in v])
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"value {v[bad[0]]!r}: {got[bad[0]]:#x} != torch {want[bad[0]]:#x}"


@pytest.mark.parametrize("fmt, top, smallest, count", [
    (FP6_E3M2, 28, Fraction(1, 16), 64), (FP6_E2M3, Fraction(15, 2), Fraction(1, 8), 64),
    (FP4_E2M1, 6, Fraction(1, 2), 16)])
def test_mx_element_definitions(fmt, top, smallest, count):
    v = _values(fmt)
    assert v.size == count and np.isfinite(v).all()
    assert fmt.to_fraction(fmt.max_finite) == top and fmt.to_fraction(1) == smallest
    assert fmt.from_fraction(Fraction(10 ** 6)) == fmt.max_finite
    if fmt is FP4_E2M1:
        assert sorted(set(np.abs(v))) == [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    with pytest.raises(ValueError, match="no NaN"):
        _ = fmt.canonical_nan


@pytest.mark.parametrize("fmt", NARROW, ids=lambda f: f.name)
@pytest.mark.parametrize("window", [(0, 0), (-8, 7), (-3, 12)])
def test_carrier_holds_every_scaled_value(fmt, window):
    c = carrier_format(fmt, *window)
    assert c.is_ieee and c.frac_bits == fmt.frac_bits and c.lsb_exp == fmt.lsb_exp + window[0]
    v = _values(fmt)
    for s in range(window[0], window[1] + 1):
        back = from_bits(to_bits(np.ldexp(v, s), c), c)       # raises unless exact
        assert np.array_equal(back, np.ldexp(v, s), equal_nan=True)
    assert get_format(format_to_dict(c)) == c and get_format(format_to_dict(fmt)) == fmt


def test_to_and_from_carrier():
    c = carrier_format(FP8_E4M3FN)
    bits = np.arange(256)
    cb = to_carrier(bits, FP8_E4M3FN)
    assert cb[0x7F] == cb[0xFF] == c.canonical_nan
    back = from_carrier(cb, c, FP8_E4M3FN)
    assert np.array_equal(back[bits != 0xFF], bits[bits != 0xFF]) and back[0xFF] == 0x7F
    big = to_bits(np.array([480.0, -9216.0, np.inf, -np.inf, 512.0]), c)
    assert list(from_carrier(big, c, FP8_E4M3FN)) == [0x7E, 0xFE, 0x7F, 0x7F, 0x7E]


def test_fold_scales_nan_and_window():
    x = np.full((2, 40), 0x38)                          # 1.0 in e4m3fn
    scales = np.array([[127 + 3, 0xFF], [127 - 9, 127 + 7]])
    bits, c = fold_scales(x, scales, FP8_E4M3FN, scale_min=-8, scale_max=7)
    v = from_bits(bits, c)
    assert (v[0, :32] == 8).all() and np.isnan(v[0, 32:]).all()
    assert np.isnan(v[1, :32]).all() and (v[1, 32:] == 128).all()
    with pytest.raises(ValueError, match="expected \\(2, 2\\)"):
        fold_scales(x, scales[:, :1], FP8_E4M3FN, scale_min=-8, scale_max=7)


# -- golden model against an exact rational reference -----------------------------------------

def _reference(xv, codes, e0, wbits, out_fmt, bias):
    """Exact sum with Fractions, specials per the contract, rounded once (saturating formats
    saturate, and give NaN for an infinite sum)."""
    w = decode_weights(codes, wbits, e0)
    n, m = xv.shape[0], codes.shape[0]
    out = np.zeros((n, m), dtype=np.int64)
    for i in range(n):
        for j in range(m):
            terms = [(float(xv[i, k]), float(w[j, k])) for k in range(xv.shape[1])]
            vals = [a * b for a, b in terms]
            if bias is not None:
                vals.append(float(bias[j]))
            if any(np.isnan(v) for v in vals) or (np.inf in vals and -np.inf in vals):
                out[i, j] = out_fmt.canonical_nan
                continue
            if any(np.isinf(v) for v in vals):
                inf = next(v for v in vals if np.isinf(v))
                out[i, j] = ((out_fmt.neg_inf if inf < 0 else out_fmt.pos_inf)
                             if out_fmt.has_inf else out_fmt.canonical_nan)
                continue
            total = sum(Fraction(v) for v in vals)
            negzero = all(v == 0 and np.signbit(v) for v in vals)
            out[i, j] = out_fmt.from_fraction(total, negative_zero=negzero)
    return out


@pytest.mark.parametrize("in_fmt, out_fmt", [(FP8_E4M3FN, FP16), (FP8_E4M3FN, FP8_E4M3FN),
                                             (FP6_E3M2, FP16), (FP4_E2M1, FP8_E4M3FN)],
                         ids=lambda f: f.name)
def test_golden_narrow_formats_match_reference(in_fmt, out_fmt):
    seed = 2027
    rng = np.random.default_rng(seed)
    n, k, m, wbits = 6, 40, 5, 3
    x = rng.integers(0, 1 << in_fmt.width, (n, k))
    x[0, :] = np.arange(k) % (1 << in_fmt.width)        # every pattern, NaN and zeros included
    x[1, :] = 0x80 if in_fmt.width == 8 else 0          # -0 terms
    codes = rng.integers(0, 1 << wbits, (m, k))
    e0 = rng.integers(-2, 3, m)
    bias = rng.integers(0, 1 << out_fmt.width, m)
    if not out_fmt.is_ieee:
        bias[bias & 0x7F == 0x7F] = 0x7E
    for b in (None, bias):
        want = _reference(from_bits(x, in_fmt), codes, e0, wbits, out_fmt,
                          None if b is None else from_bits(b, out_fmt))
        for fn in (gemm_golden, gemm_reference):
            got = fn(x, codes, e0, in_fmt=in_fmt, wbits=wbits, out_fmt=out_fmt,
                     bias_bits=b).numpy()
            bad = np.argwhere(got != want)
            assert bad.size == 0, (f"seed {seed} {fn.__name__} bias={b is not None}: Y"
                                   f"{tuple(bad[0])} {got[tuple(bad[0])]:#x} != "
                                   f"{want[tuple(bad[0])]:#x}")


@pytest.mark.parametrize("in_fmt", [FP8_E4M3FN, FP16], ids=lambda f: f.name)
def test_e4m3fn_output_saturates_beyond_the_carrier(in_fmt):
    """Finite sums past the carrier's top binade (2**23) are finite values beyond 448: they
    saturate to ±448 like 500 does; only an infinite or NaN term gives the NaN."""
    seed = 2028
    rng = np.random.default_rng(seed)
    top, inf = (0x7E, None) if in_fmt is FP8_E4M3FN else (0x7BFF, 0x7C00)
    n, k, m, wbits = 8, 24, 6, 5
    x = rng.integers(top - 8, top + 1, (n, k)) | (rng.integers(0, 2, (n, k)) << (in_fmt.width - 1))
    x[0, :] = top                                      # all positive: far beyond the carrier
    x[1, :] = top | 1 << (in_fmt.width - 1)            # all negative
    x[2, 3] = in_fmt.canonical_nan                     # a NaN term
    if inf is not None:
        x[3, 5] = inf                                  # an infinite term
    codes = rng.integers(0, 1 << wbits, (m, k))
    codes[0, :] = (1 << (wbits - 1)) - 1               # the largest weight, positive
    e0 = rng.integers(0, 21, m)
    bias = rng.integers(0, 0x7F, m) | (rng.integers(0, 2, m) << 7)
    print(f"seed {seed}")
    for b in (None, bias):
        want = _reference(from_bits(x, in_fmt), codes, e0, wbits, FP8_E4M3FN,
                          None if b is None else from_bits(b, FP8_E4M3FN))
        assert (want[0, 0], want[1, 0]) == (0x7E, 0xFE) and want[2, 0] == 0x7F
        for fn in (gemm_golden, gemm_reference):
            got = fn(x, codes, e0, in_fmt=in_fmt, wbits=wbits, out_fmt=FP8_E4M3FN,
                     bias_bits=b).numpy()
            bad = np.argwhere(got != want)
            assert bad.size == 0, (f"seed {seed} {fn.__name__} bias={b is not None}: Y"
                                   f"{tuple(bad[0])} {got[tuple(bad[0])]:#x} != "
                                   f"{want[tuple(bad[0])]:#x}")


def test_e4m3fn_output_saturates_and_nans():
    x = np.array([[0x7E, 0x7E], [0x7E, 0x7F]])          # 448 + 448; 448 + NaN
    y = gemm_golden(x, np.zeros((1, 2), dtype=np.int64), 0, in_fmt=FP8_E4M3FN, wbits=3)
    assert y.tolist() == [[0x7E], [0x7F]]
    y = gemm_golden(np.array([[0x7C00]]), np.zeros((1, 1), dtype=np.int64), 0, in_fmt=FP16,
                    out_fmt=FP8_E4M3FN, wbits=3)         # +inf in: NaN out (no infinity)
    assert y.tolist() == [[0x7F]]
    with pytest.raises(ValueError, match="no NaN"):
        gemm_golden(x, np.zeros((1, 2), dtype=np.int64), 0, in_fmt=FP8_E4M3FN, wbits=3,
                    out_fmt=FP4_E2M1)


@pytest.mark.parametrize("elem", [FP8_E4M3FN, FP8_E5M2, FP6_E3M2, FP4_E2M1], ids=lambda f: f.name)
def test_mx_golden_matches_reference(elem):
    seed = 32
    rng = np.random.default_rng(seed)
    cfg = ArrayConfig(in_fmt=elem, out_fmt=FP16, mx_block=32, scale_min=-8, scale_max=7)
    n, k, m = 4, 70, 3
    x = rng.integers(0, 1 << elem.width, (n, k))
    scales = rng.integers(127 - 10, 127 + 10, (n, 3))
    scales[0, 1] = 0xFF
    codes = rng.integers(0, 8, (m, k))
    bits, c = fold_scales(x, scales, elem, scale_min=-8, scale_max=7)
    assert c == cfg.pe_fmt
    got = gemm_golden(bits, codes, 0, in_fmt=c, wbits=3, out_fmt=FP16,
                      config=cfg.dot_config).numpy()
    s = np.repeat(scales, 32, axis=1)[:, :k] - 127
    xv = np.ldexp(from_bits(x, elem), s)
    xv[(s < -8) | (s > 7) | (s == 128)] = np.nan
    want = _reference(xv, codes, 0, 3, FP16, None)
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"seed {seed}: Y{tuple(bad[0])} {got[tuple(bad[0])]:#x} != " \
                          f"{want[tuple(bad[0])]:#x}"
    lanes = activation_lanes(cfg, x, scales)
    assert lanes[0, 33] == x[0, 33] | (0xFF << elem.width) and cfg.lane_width == elem.width + 8


def test_array_config_narrow_formats():
    cfg = ArrayConfig(in_fmt="fp8_e4m3fn", out_fmt="fp16")
    assert cfg.pe_fmt == carrier_format(FP8_E4M3FN) and cfg.lane_width == 8
    assert ArrayConfig.from_dict(cfg.to_dict()) == cfg
    assert ArrayConfig().to_dict() == ArrayConfig.from_dict(ArrayConfig().to_dict()).to_dict()
    assert "mx_block" not in ArrayConfig().to_dict()
    out = ArrayConfig(in_fmt="fp16", out_fmt="fp8_e4m3fn")
    assert out.po_fmt == carrier_format(FP8_E4M3FN) and out.dot_config.out_fmt == out.po_fmt
    assert out.res_tdata_width == 8
    with pytest.raises(ValueError, match="input \\(element\\) format only"):
        ArrayConfig(in_fmt="fp16", out_fmt="fp4_e2m1")
    with pytest.raises(ValueError, match="mx_block must be 0"):
        ArrayConfig(in_fmt="fp4_e2m1", out_fmt="fp16", mx_block=16)
    with pytest.raises(ValueError, match="scale_min"):
        ArrayConfig(in_fmt="fp4_e2m1", out_fmt="fp16", mx_block=32, scale_min=3, scale_max=2)


@pytest.mark.parametrize("kw", [dict(in_fmt="fp8_e4m3fn", out_fmt="fp16"),
                                dict(in_fmt="bf16", out_fmt="fp8_e4m3fn"),
                                dict(in_fmt="fp4_e2m1", out_fmt="bf16", mx_block=32,
                                     scale_min=-5, scale_max=9),
                                dict(in_fmt="fp8_e5m2", out_fmt="fp16", mx_block=32)])
def test_identification_registers_name_narrow_and_mx_arrays(kw):
    """FORMATS.IN_SPECIALS, GEOMETRY.MX_BLOCK and E0_RANGE.SCALE_MIN/MAX let a host recover the
    array (a board's registers -> its ArrayConfig); plain arrays read as before."""
    from boards.board_array import config_from_registers

    cfg = ArrayConfig(**kw)
    assert config_from_registers(cfg.register_resets()) == cfg
    plain = ArrayConfig().register_resets()
    assert (plain["FORMATS"], plain["GEOMETRY"], plain["E0_RANGE"]) == (0xA500A5, 0x230404,
                                                                         0x7F8)
