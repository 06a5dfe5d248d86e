"""Outputs in a saturating format (``fp8_e4m3fn``): the bias into the finalizer's carrier and
the rounded result out of it, combinationally.

The finalizer rounds to ``ArrayConfig.po_fmt``, the output format's carrier (the same grid and
bias, wider exponent, IEEE specials): rounding there is the output format's round to nearest
even. :func:`saturate` then maps carrier patterns to the output format as the contract says
(``docs/arithmetic.md``): an infinity or a NaN gives the NaN (``0x7F``), a magnitude beyond
the largest finite (448) gives ± the largest finite, anything else keeps its fields; a
carrier infinity from a finite exact sum (beyond the carrier's range) saturates too.
:func:`widen` maps a bias pattern to the carrier (its NaN to the carrier's canonical NaN).
``sw.mx.from_carrier`` / ``to_carrier`` are the same maps through exact values.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux

from contract import FloatFormat

__all__ = ["widen", "saturate"]


def _check(fmt: FloatFormat, car: FloatFormat):
    if (fmt.specials != "fn" or car.frac_bits != fmt.frac_bits or car.bias != fmt.bias
            or car.exp_bits < fmt.exp_bits):
        raise ValueError(f"{car.name} is not the carrier of the saturating format {fmt.name}")


def widen(bits, fmt: FloatFormat, car: FloatFormat):
    """A ``fmt`` pattern (value) -> the ``car`` pattern of the same number."""
    _check(fmt, car)
    frac, exp, sign = bits[:fmt.frac_bits], bits[fmt.frac_bits:fmt.width - 1], bits[fmt.width - 1]
    nan = (exp == fmt.exp_max_field) & (frac == fmt.frac_mask)
    return Mux(nan, Const(car.canonical_nan, car.width),
               Cat(frac, exp, Const(0, car.exp_bits - fmt.exp_bits), sign))


def saturate(bits, car: FloatFormat, fmt: FloatFormat, finite=None):
    """A ``car`` pattern -> the ``fmt`` pattern: NaN for infinities and NaNs, ± the largest
    finite beyond it. ``finite`` (a 1-bit value, optional) says the exact result is finite: a
    carrier infinity is then an overflow of the carrier's range and saturates like any other
    finite value beyond the largest finite (``sw.mx.from_carrier(finite=...)``)."""
    _check(fmt, car)
    frac, exp, sign = bits[:car.frac_bits], bits[car.frac_bits:car.width - 1], bits[car.width - 1]
    special = exp == car.exp_max_field
    if finite is not None:                                    # an infinity that overflowed
        special = special & ~(finite & (frac == 0))
    top = fmt.max_finite >> fmt.frac_bits                     # the largest finite's exponent
    over = (exp > top) | ((exp == top) & (frac > (fmt.max_finite & fmt.frac_mask)))
    return Mux(special, Const(fmt.canonical_nan, fmt.width),
               Mux(over, Cat(Const(fmt.max_finite, fmt.width - 1), sign),
                   Cat(frac, exp[:fmt.exp_bits], sign)))
