"""Reference model of the floating-point MAC baselines (``boards.fpmac``), on Berkeley
SoftFloat (``softfloatpy``, RISC-V specialisation: every NaN result is the canonical quiet NaN).

What a baseline PE computes, bit for bit (``dot``):

* ``slots`` partial sums ``s_0 .. s_{L-1}``, each starting at ``-0`` in the accumulation format;
* beat ``k`` (activation ``a_k``, weight ``b_k``, input format) updates slot ``k mod L`` with one
  fused multiply-add, ``s <- round(s + a_k * b_k)`` (the product is exact, one rounding to
  nearest even in the accumulation format; IEEE 754 ``fusedMultiplyAdd``, subnormals,
  infinities and NaNs included);
* a dot product of ``K < L`` beats is padded to ``L`` beats with products ``-0 * +0``, which
  leave the slots at ``-0``;
* the result is ``(((s_{j0} + s_{j1}) + s_{j2}) + ... )``, each addition rounded to nearest even
  in the accumulation format, the slots taken in the order they were last written:
  ``j_i = (K' + i) mod L`` with ``K' = max(K, L)``.

NaN results are the canonical quiet NaN (``0x7E00``, ``0x7FC00000``, bf16 ``0x7FC0``); no NaN
payload propagates. Format pairs (input, accumulation): fp16/fp16, fp16/fp32, bf16/fp32,
bf16/bf16. SoftFloat has no bf16 arithmetic: bf16 results are computed in binary32 rounded to
odd (rounding toward zero, then the last bit set when inexact), then rounded to nearest even
to bf16, which is the correctly rounded bf16 result (24 >= 8 + 2 bits; both formats share the
exponent range).
"""

from __future__ import annotations

import softfloatpy as sf

from contract import FloatFormat, get_format

__all__ = ["FMA_FORMATS", "check_formats", "fma", "add", "dot", "canonical_nan"]

#: Supported (input format, accumulation format) pairs.
FMA_FORMATS = (("fp16", "fp16"), ("fp16", "fp32"), ("bf16", "fp32"), ("bf16", "bf16"))


def check_formats(in_fmt, acc_fmt) -> tuple[FloatFormat, FloatFormat]:
    """The two formats, validated: a ``ValueError`` names an unsupported pair."""
    i, a = get_format(in_fmt), get_format(acc_fmt)
    if (i.name, a.name) not in FMA_FORMATS:
        pairs = ", ".join(f"{x}/{y}" for x, y in FMA_FORMATS)
        raise ValueError(f"unsupported input/accumulation formats {i.name}/{a.name}; "
                         f"expected one of {pairs}")
    return i, a


def canonical_nan(fmt) -> int:
    fmt = get_format(fmt)
    return (fmt.exp_max_field << fmt.frac_bits) | (1 << (fmt.frac_bits - 1))


def _f16(bits):
    return sf.Float16.from_bytes(int(bits).to_bytes(2, "big"))


def _f32(bits):
    return sf.Float32.from_bytes(int(bits).to_bytes(4, "big"))


def _bits(v) -> int:
    return int.from_bytes(v.to_bytes(), "big")


def _to_f32(bits, fmt):
    if fmt.name == "fp16":
        return sf.f16_to_f32(_f16(bits))
    if fmt.name == "bf16":
        return _f32(int(bits) << 16)
    return _f32(bits)


def _round_odd_to_bf16(op) -> int:
    """``op()`` (a binary32 SoftFloat operation) rounded to odd, then to nearest even bf16."""
    mode = sf.get_rounding_mode()
    sf.set_rounding_mode(sf.RoundingMode.MIN_MAG)
    sf.set_exception_flags(0)
    try:
        r = op()
        inexact = sf.test_exception_flags(sf.ExceptionFlag.INEXACT)
    finally:
        sf.set_rounding_mode(mode)
    bits = _bits(r)
    if inexact and not sf.f32_is_nan(r):
        bits |= 1
    sf.set_rounding_mode(sf.RoundingMode.NEAR_EVEN)
    try:
        return _bits(sf.f32_to_bf16(_f32(bits)))
    finally:
        sf.set_rounding_mode(mode)


def _near_even(op):
    mode = sf.get_rounding_mode()
    sf.set_rounding_mode(sf.RoundingMode.NEAR_EVEN)
    try:
        return _bits(op())
    finally:
        sf.set_rounding_mode(mode)


def fma(a: int, b: int, c: int, *, in_fmt="fp16", acc_fmt="fp16") -> int:
    """``round(c + a * b)`` (one rounding): ``a``, ``b`` raw bits of ``in_fmt``, ``c`` and the
    result raw bits of ``acc_fmt``."""
    i, acc = check_formats(in_fmt, acc_fmt)
    if acc.name == "fp16":
        return _near_even(lambda: sf.f16_mul_add(_f16(a), _f16(b), _f16(c)))
    if acc.name == "fp32":
        return _near_even(lambda: sf.f32_mul_add(_to_f32(a, i), _to_f32(b, i), _f32(c)))
    return _round_odd_to_bf16(lambda: sf.f32_mul_add(_to_f32(a, i), _to_f32(b, i),
                                                     _to_f32(c, acc)))


def add(x: int, y: int, *, acc_fmt="fp16") -> int:
    """``round(x + y)`` in ``acc_fmt`` (raw bits)."""
    acc = get_format(acc_fmt)
    if acc.name == "fp16":
        return _near_even(lambda: sf.f16_add(_f16(x), _f16(y)))
    if acc.name == "fp32":
        return _near_even(lambda: sf.f32_add(_f32(x), _f32(y)))
    if acc.name == "bf16":
        return _round_odd_to_bf16(lambda: sf.f32_add(_to_f32(x, acc), _to_f32(y, acc)))
    raise ValueError(f"unsupported accumulation format {acc.name!r}")


def dot(a, b, *, slots: int, in_fmt="fp16", acc_fmt="fp16") -> int:
    """One dot product of the baseline PE (see the module docstring): ``a``, ``b`` sequences of
    raw ``in_fmt`` bits, ``slots`` partial sums; raw ``acc_fmt`` bits."""
    i, acc = check_formats(in_fmt, acc_fmt)
    if not isinstance(slots, int) or slots < 1:
        raise ValueError(f"slots must be a positive integer, not {slots!r}")
    if len(a) != len(b) or not len(a):
        raise ValueError(f"a and b must be non-empty and of equal length, not {len(a)}, "
                         f"{len(b)}")
    neg0 = 1 << (acc.width - 1)
    s = [neg0] * slots
    for k, (x, w) in enumerate(zip(a, b, strict=True)):
        s[k % slots] = fma(int(x), int(w), s[k % slots], in_fmt=i, acc_fmt=acc)
    k_eff = max(len(a), slots)
    r = neg0
    for n in range(slots):
        r = add(r, s[(k_eff + n) % slots], acc_fmt=acc)
    return r
