"""Narrow activation formats on the way into the golden model: carriers and MX block scales.

``fp8_e4m3fn`` and the OCP MX element formats are not IEEE formats (no infinities, one NaN or
none); the datapath works on their *carrier* (:func:`contract.formats.carrier_format`), an IEEE
format on the same grid that holds every value exactly. :func:`to_carrier` re-encodes patterns
(NaN to the carrier's canonical NaN); :func:`fold_scales` applies MX block scales the way the
array does, folding each block's E8M0 scale into its elements' exponents; :func:`from_carrier`
turns carrier results into a saturating format (``fp8_e4m3fn``): beyond ±448 saturates, an
infinity or a NaN gives the NaN.

The conversions go through exact float64 values (every value involved has at most 24
significant bits and an exponent within float64's range), independent of the RTL's bit
manipulation, which the tests compare against.
"""

from __future__ import annotations

import numpy as np
import torch

from contract import FloatFormat, carrier_format, get_format
from contract.mx import MX_BLOCK, SCALE_BIAS, SCALE_NAN

from .fpbits import check_bits, from_bits, to_bits

__all__ = ["to_carrier", "from_carrier", "fold_scales", "check_scales"]


def _np(t) -> np.ndarray:
    return t.numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def to_carrier(bits, fmt, carrier: FloatFormat | None = None) -> np.ndarray:
    """Patterns of ``fmt`` -> patterns of its carrier (int64 NumPy); the same values, NaNs as
    the carrier's canonical NaN."""
    fmt = get_format(fmt)
    carrier = carrier or carrier_format(fmt)
    return to_bits(from_bits(_np(check_bits(bits, fmt, "activation")), fmt), carrier)


def from_carrier(bits, carrier: FloatFormat, fmt, finite=None) -> np.ndarray:
    """Carrier patterns (on ``fmt``'s grid) -> patterns of ``fmt``: magnitudes beyond the
    largest finite saturate to it; infinities and NaNs give the canonical NaN.

    ``finite`` (booleans broadcast against ``bits``) marks results whose exact value is finite:
    a carrier infinity there is an overflow of the carrier's range and saturates to ± the
    largest finite like any other finite value beyond it."""
    fmt = get_format(fmt)
    if not fmt.has_nan:
        raise ValueError(f"{fmt.name} has no NaN; it is an input (element) format only")
    v = from_bits(_np(check_bits(bits, carrier, "result")), carrier)
    top = float(fmt.to_fraction(fmt.max_finite))
    if finite is not None:
        v = np.where(np.isinf(v) & np.asarray(finite, dtype=bool), np.sign(v) * top, v)
    v = np.where(np.isfinite(v), np.clip(v, -top, top), np.nan)
    return to_bits(v, fmt)


def check_scales(scales, shape: tuple[int, int], block: int = MX_BLOCK) -> np.ndarray:
    """Validate E8M0 scales of an ``(N, K)`` activation matrix: ``(N, ceil(K / block))``
    integers 0..255. Returns them as int64."""
    n, k = shape
    want = (n, -(-k // block))
    s = np.asarray(scales)
    if s.dtype.kind not in "iu":
        raise ValueError(f"scales must be integer E8M0 patterns, not dtype {s.dtype}")
    if s.shape != want:
        raise ValueError(f"scales have shape {s.shape}; expected {want}: one E8M0 scale per row "
                         f"and block of {block} activations")
    if s.size and (int(s.min()) < 0 or int(s.max()) > 0xFF):
        index = tuple(np.argwhere((s < 0) | (s > 0xFF))[0])
        raise ValueError(f"scale at index {index} is {int(s[index])}; expected an E8M0 "
                         f"pattern 0..255")
    return s.astype(np.int64)


def fold_scales(x_bits, scales, fmt, *, scale_min: int, scale_max: int,
                block: int = MX_BLOCK) -> tuple[np.ndarray, FloatFormat]:
    """MX activations ``(N, K)`` of element format ``fmt`` and their E8M0 ``scales``
    ``(N, ceil(K / block))`` -> ``(carrier patterns, carrier format)``: each element times
    ``2**(scale - 127)`` exactly. A NaN scale (0xFF), or one whose exponent is outside
    ``[scale_min, scale_max]``, makes its block NaN."""
    fmt = get_format(fmt)
    carrier = carrier_format(fmt, scale_min, scale_max)
    x = _np(check_bits(x_bits, fmt, "activation"))
    if x.ndim != 2:
        raise ValueError(f"x_bits must have shape (N, K), not {x.shape}")
    s = check_scales(scales, x.shape, block)
    exp = np.repeat(s, block, axis=1)[:, :x.shape[1]] - SCALE_BIAS
    bad = (exp + SCALE_BIAS == SCALE_NAN) | (exp < scale_min) | (exp > scale_max)
    v = np.ldexp(from_bits(x, fmt), np.where(bad, 0, exp).astype(np.int32))
    return to_bits(np.where(bad, np.nan, v), carrier), carrier
