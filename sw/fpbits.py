"""Raw bit patterns of :class:`contract.FloatFormat` numbers, vectorised (NumPy or PyTorch).

* :func:`to_bits` turns float16/bfloat16/float32/float64 values into bit patterns of a format;
  every value must be exactly representable there (NaN becomes the canonical NaN).
* :func:`from_bits` turns bit patterns into float64 values (exact: every format the contract
  allows fits in float64), infinities and NaNs included.
* :func:`fields`, :func:`classify` and :func:`significand` split patterns for the golden model.

Bit patterns are held as int64, so formats wider than 63 bits are refused. NumPy inputs give
NumPy outputs and torch inputs give torch outputs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from contract import FloatFormat, get_format

__all__ = ["to_bits", "from_bits", "fields", "classify", "significand", "check_bits",
           "Classes", "MAX_WIDTH"]

MAX_WIDTH = 63


def _fmt(fmt) -> FloatFormat:
    fmt = get_format(fmt)
    if fmt.width > MAX_WIDTH:
        raise ValueError(f"format {fmt.name} is {fmt.width} bits wide; raw patterns are held in "
                         f"int64, so at most {MAX_WIDTH} bits are supported")
    return fmt


def _where(index) -> str:
    index = tuple(int(i) for i in index)
    return str(index[0]) if len(index) == 1 else str(index)


def check_bits(bits, fmt, what: str = "bit pattern") -> torch.Tensor:
    """Validate integer raw patterns of ``fmt`` (NumPy, torch, or nested lists) and return them
    as a torch int64 tensor. Raises ``ValueError`` naming the first bad index and value."""
    fmt = _fmt(fmt)
    if isinstance(bits, torch.Tensor):
        if bits.dtype.is_floating_point or bits.dtype.is_complex or bits.dtype == torch.bool:
            raise ValueError(f"{what}s must be integers, not {bits.dtype}")
        t = bits.to(torch.int64)
    else:
        arr = np.asarray(bits)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"{what}s must be integers, not dtype {arr.dtype}")
        if arr.dtype == np.uint64 and arr.size and int(arr.max()) >= 1 << 63:
            bad = arr >= np.uint64(1 << 63)
            index = np.argwhere(bad)[0]
            raise ValueError(f"{what} at index {_where(index)} is {int(arr[tuple(index)]):#x}; "
                             f"expected a {fmt.width}-bit pattern of {fmt.name}")
        t = torch.from_numpy(arr.astype(np.int64, copy=False))
    if t.numel():
        bad = t < 0
        if fmt.width < 63:                                # int64 holds no larger values
            bad |= t >= (1 << fmt.width)
        if bool(bad.any()):
            index = torch.nonzero(bad)[0].tolist()
            value = int(t[tuple(index)])
            top = (1 << fmt.width) - 1
            raise ValueError(f"{what} at index {_where(index)} is {value:#x}; expected a "
                             f"{fmt.width}-bit pattern of {fmt.name} (0..{top:#x})")
    return t


def fields(bits: torch.Tensor, fmt) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(sign, exponent field, fraction field)`` of int64 patterns."""
    fmt = _fmt(fmt)
    return ((bits >> (fmt.width - 1)) & 1, (bits >> fmt.frac_bits) & fmt.exp_max_field,
            bits & fmt.frac_mask)


class Classes(NamedTuple):
    """Boolean masks of the classes of patterns (exactly one of nan/inf/zero/finite_nonzero is
    set per element) plus the sign bit."""

    sign: torch.Tensor
    nan: torch.Tensor
    inf: torch.Tensor
    zero: torch.Tensor
    finite_nonzero: torch.Tensor


def classify(bits: torch.Tensor, fmt) -> Classes:
    fmt = _fmt(fmt)
    s, e, f = fields(bits, fmt)
    top = e == fmt.exp_max_field
    zero = (e == 0) & (f == 0)
    if fmt.specials == "fn":                 # one NaN magnitude, no infinity
        nan = top & (f == fmt.frac_mask)
        return Classes(s.bool(), nan, torch.zeros_like(nan), zero, ~(nan | zero))
    if fmt.specials == "finite":
        none = torch.zeros_like(zero)
        return Classes(s.bool(), none, none, zero, ~zero)
    nan = top & (f != 0)
    inf = top & (f == 0)
    return Classes(s.bool(), nan, inf, zero, ~(top | zero))


def significand(bits: torch.Tensor, fmt) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sig, shift)`` with ``|value| = sig * 2**(shift + fmt.lsb_exp)`` for finite patterns:
    ``sig`` includes the hidden bit of normals, ``shift = max(exp_field, 1) - 1``. Meaningless
    for infinities and NaNs."""
    fmt = _fmt(fmt)
    _, e, f = fields(bits, fmt)
    sig = f | ((e > 0).to(torch.int64) << fmt.frac_bits)
    return sig, torch.clamp(e, min=1) - 1


def _as_float64(values):
    """-> (float64 numpy array, was_torch)."""
    if isinstance(values, torch.Tensor):
        if not values.dtype.is_floating_point:
            raise ValueError(f"values must be floating point, not {values.dtype}")
        return values.detach().to("cpu", torch.float64).numpy(), True
    arr = np.asarray(values)
    if arr.dtype.kind != "f":
        raise ValueError(f"values must be floating point, not dtype {arr.dtype}")
    with np.errstate(invalid="ignore"):                  # signalling NaNs stay NaNs
        return arr.astype(np.float64), False


def to_bits(values, fmt):
    """Exact values (float16/bfloat16/float32/float64, NumPy or torch) -> int64 raw patterns of
    ``fmt`` (NumPy in, NumPy out; torch in, torch out). ``-0.0`` keeps its sign, infinities map
    to infinities, every NaN to the canonical NaN. Raises ``ValueError`` naming the first value
    that ``fmt`` cannot represent exactly (an infinity in a format without infinities, a NaN in
    one without NaNs, 480 in ``fp8_e4m3fn`` ...)."""
    fmt = _fmt(fmt)
    v, was_torch = _as_float64(values)
    sign = np.signbit(v).astype(np.int64) << (fmt.width - 1)
    mag = np.abs(v)
    finite = np.isfinite(v) & (mag != 0)
    safe = np.where(finite, mag, 1.0)
    _, e = np.frexp(safe)
    lead = e.astype(np.int64) - 1                            # safe in [2**lead, 2**(lead+1))
    binade = np.maximum(lead, fmt.emin)
    sig = np.ldexp(safe, (fmt.frac_bits - binade).astype(np.int32))
    ok = (lead <= fmt.emax) & (sig == np.floor(sig))
    if not fmt.is_ieee:                      # the top binade stops below the NaN pattern
        ok &= ~((lead == fmt.emax) & (sig > (fmt.max_finite & fmt.frac_mask)
                                      + (1 << fmt.frac_bits)))
    special = np.isinf(v) if fmt.has_inf else ~np.isfinite(v) & ~np.isnan(v)
    if not fmt.has_nan:
        special |= np.isnan(v)
    bad = (finite & ~ok) | (special if not fmt.has_inf else np.zeros_like(finite))
    if bad.any():
        index = np.argwhere(bad)[0]
        value = float(v[tuple(index)])
        raise ValueError(f"value at index {_where(index)} is {value!r}, which {fmt.name} cannot "
                         f"represent exactly")
    sig_i = np.where(finite, sig, 0).astype(np.int64)
    normal = finite & (lead >= fmt.emin)
    expf = np.where(normal, binade + fmt.bias, 0).astype(np.int64)
    body = (expf << fmt.frac_bits) + np.where(normal, sig_i - (1 << fmt.frac_bits), sig_i)
    if fmt.has_inf:
        body = np.where(np.isinf(v), fmt.pos_inf, body)
    if fmt.has_nan:
        body = np.where(np.isnan(v), fmt.canonical_nan, body)
        sign = np.where(np.isnan(v), 0, sign)
    out = (sign | body).astype(np.int64)
    return torch.from_numpy(out) if was_torch else out


def from_bits(bits, fmt):
    """Raw patterns -> float64 values (exact), with ``-0.0``, ``±inf`` and NaN. NumPy (or lists)
    in, NumPy out; torch in, torch out."""
    fmt = _fmt(fmt)
    was_torch = isinstance(bits, torch.Tensor)
    t = check_bits(bits, fmt)
    cls = classify(t, fmt)
    sig, shift = significand(t, fmt)
    mag = torch.ldexp(sig.to(torch.float64), (shift + fmt.lsb_exp).to(torch.float64))
    mag = torch.where(cls.inf, torch.tensor(float("inf"), dtype=torch.float64), mag)
    mag = torch.where(cls.nan, torch.tensor(float("nan"), dtype=torch.float64), mag)
    out = torch.where(cls.sign, -mag, mag)
    return out if was_torch else out.numpy()
