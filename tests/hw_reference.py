"""A small scalar reference of one DenseShift dot product, for the gateware tests.

Written straight from the arithmetic contract with exact rationals (``fractions.Fraction``) and
:meth:`contract.FloatFormat.to_fraction` / :meth:`~contract.FloatFormat.from_fraction`; it shares
no code with the hardware or with the golden model in ``sw``.
"""

from __future__ import annotations

from fractions import Fraction

from contract import DotConfig


def dot_reference(config: DotConfig, xs, codes, e0, *, bias=None, relu=False) -> int:
    """Raw ``out_fmt`` bits of ``round(sum(x * w) + bias)`` for raw activation bits ``xs``
    and weight codes ``codes`` (kept terms only), offset ``e0`` and raw ``bias`` bits or None."""
    fi, fo, b = config.in_fmt, config.out_fmt, config.wbits
    nan = pinf = ninf = False
    all_neg0 = True
    total = Fraction(0)
    terms = []
    for x, c in zip(xs, codes, strict=True):
        s, p = c >> (b - 1), c & ((1 << (b - 1)) - 1)
        sx = x >> (fi.width - 1)
        terms.append((fi, x, sx ^ s, Fraction(2) ** (e0 + p) * (-1 if s else 1)))
    if bias is not None:
        terms.append((fo, bias, bias >> (fo.width - 1), Fraction(1)))
    for fmt, bits, sign, scale in terms:
        if fmt.is_nan(bits):
            nan = True
            continue
        if fmt.is_inf(bits):
            if sign:
                ninf = True
            else:
                pinf = True
            all_neg0 = False
            continue
        value = fmt.to_fraction(bits) * scale
        if not (value == 0 and sign):
            all_neg0 = False
        total += value
    return with_specials(fo, lambda: fo.from_fraction(total, negative_zero=all_neg0),
                         nan=nan, pinf=pinf, ninf=ninf, relu=relu)


def with_specials(fmt, number, *, nan, pinf, ninf, relu):
    """The contract's last steps: a NaN (or both infinities) gives the canonical NaN, else an
    infinity gives itself, else the rounded ``number()``; then ReLU clears a set sign bit."""
    if nan or (pinf and ninf):
        out = fmt.canonical_nan
    elif pinf:
        out = fmt.pos_inf
    elif ninf:
        out = fmt.neg_inf
    else:
        out = number()
    if relu and out >> (fmt.width - 1):
        out = 0
    return out
