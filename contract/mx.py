"""OCP Microscaling (MX) block scales: the E8M0 scale format and the block geometry.

An MX tensor stores elements in a narrow format (``fp8_e4m3fn``, ``fp8_e5m2``, ``fp6_e3m2``,
``fp6_e2m3``, ``fp4_e2m1``) and one shared scale per block of :data:`MX_BLOCK` consecutive
elements along the reduction dimension ``K``. The scale is E8M0: an unsigned 8-bit biased
exponent, value ``2**(bits - 127)``, with ``0xFF`` the NaN (no sign, no zero, no infinity).
The value of an element is ``x * 2**(scale - 127)``; a NaN scale makes every element of its
block NaN.

densehw folds the scale into each element's exponent on the way into the array
(:func:`contract.formats.carrier_format`): with ``±2**p`` weights the product stays a sign and an
exponent add, so the sum stays exact. The array accepts scale exponents in a configured window
``[scale_min, scale_max]`` (``ArrayConfig``); a block whose scale lies outside reads as NaN.
"""

from __future__ import annotations

from .formats import FP4_E2M1, FP6_E2M3, FP6_E3M2, FP8_E4M3FN, FP8_E5M2

__all__ = ["MX_BLOCK", "SCALE_BITS", "SCALE_BIAS", "SCALE_NAN", "MX_ELEMENT_FORMATS",
           "scale_exponent", "scale_bits"]

MX_BLOCK = 32
SCALE_BITS = 8
SCALE_BIAS = 127
SCALE_NAN = 0xFF
#: The element formats of the OCP MX specification (MXFP8 E4M3/E5M2, MXFP6 E3M2/E2M3, MXFP4).
MX_ELEMENT_FORMATS = {f.name: f for f in (FP8_E4M3FN, FP8_E5M2, FP6_E3M2, FP6_E2M3, FP4_E2M1)}


def scale_exponent(bits: int) -> int | None:
    """Unbiased exponent of an E8M0 pattern; ``None`` for the NaN pattern."""
    if not isinstance(bits, int) or not 0 <= bits <= 0xFF:
        raise ValueError(f"{bits!r} is not an E8M0 pattern (0..255)")
    return None if bits == SCALE_NAN else bits - SCALE_BIAS


def scale_bits(exponent: int) -> int:
    """E8M0 pattern of ``2**exponent``, ``exponent`` in [-127, 127]."""
    if not isinstance(exponent, int) or not -127 <= exponent <= 127:
        raise ValueError(f"an E8M0 scale exponent must be an integer in [-127, 127], not "
                         f"{exponent!r}")
    return exponent + SCALE_BIAS
