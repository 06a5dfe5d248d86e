"""Multi-branch ``{-1, +1}`` codes: the second multiplication-free arithmetic of densehw.

Values
------
A ``k``-bit branch value (``k`` = 1..8) is ``q = sum_{i<k} 2**i * b_i`` with every branch
``b_i`` in ``{-1, +1}``: an odd integer in ``[-(2**k - 1), 2**k - 1]``, never zero (like a
DenseShift weight). Its ``k``-bit *code* ``c`` (unsigned) holds the branches as bits, bit ``i``
of ``c`` set for ``b_i = +1``, so that::

    q = 2*c - (2**k - 1)        c = (q + 2**k - 1) / 2

(``k = 2``: codes 0, 1, 2, 3 are the values -3, -1, +1, +3.)

Dot products
------------
For a ``k_w``-bit weight row ``w`` and a ``k_a``-bit activation row ``x`` of ``K`` terms, with
branch vectors ``W_i`` (``i < k_w``) and ``A_j`` (``j < k_a``) in ``{-1, +1}**K``::

    sum_k w[k] * x[k] = sum_i sum_j 2**(i+j) * <W_i, A_j>
    <W_i, A_j>        = 2 * popcount(xnor(W_i, A_j)) - K

where ``xnor`` and ``popcount`` act on the code bits of branch ``i`` and branch ``j``. The
integer result is exact (no rounding, no overflow inside the domain: ``K <= MAX_K``).

Scaled results (the float path)
-------------------------------
With a scale ``sx`` of the activation tensor and a scale ``sw[m]`` per weight tensor or per
output channel (row of ``W``), each a finite positive value of the scale format (default
``fp32``)::

    y[n, m] = round_out( sx * sw[m] * sum_k x[n, k] * w[m, k] )

computed exactly and rounded once to the output format under the rules of
``docs/arithmetic.md``: round to nearest even, overflow to ``±inf``, a nonzero value that
rounds to zero keeps its sign, an exact zero is ``+0``, optional ReLU (sign bit set -> ``+0``).

Packing (branch packing version 1)
----------------------------------
A ``(M, K)`` code matrix is packed exactly like DenseShift weight codes
(:func:`contract.weights.pack_bits` with ``width = k``): per row a little-endian bit stream,
code ``k`` at stream bits ``[k*kbits, (k+1)*kbits)``, cut into 32-bit words, each row starting
on a new word, unused high bits zero. Branch ``i`` of code ``k`` is stream bit ``k*kbits + i``.

Pure Python + NumPy.
"""

from __future__ import annotations

import numpy as np

from .formats import FP32, FloatFormat, get_format
from .weights import WORD_BITS, pack_bits, unpack_bits

__all__ = [
    "BRANCH_PACK_VERSION", "KBITS_RANGE", "MAX_K", "SCALE_FRAC_MAX", "check_kbits",
    "max_value", "branch_values", "encode_branches", "decode_branches", "branch_planes",
    "pack_branches", "unpack_branches", "branch_words_per_row", "max_abs_dot",
    "check_scale_fmt", "DEFAULT_SCALE_FMT", "DEFAULT_OUT_FMT",
]

BRANCH_PACK_VERSION = 1
KBITS_RANGE = (1, 8)
#: Most terms of one dot product (keeps every partial sum below 2**53: exact in float64).
MAX_K = 1 << 24
#: Widest scale significand the float path takes (fraction bits): fp32's 23 fit.
SCALE_FRAC_MAX = 30
DEFAULT_SCALE_FMT = FP32
DEFAULT_OUT_FMT = FP32


def check_kbits(kbits, what: str = "branch bits") -> int:
    """Validate a branch count ``k`` (1..8); returns it."""
    if not isinstance(kbits, (int, np.integer)) or isinstance(kbits, bool):
        raise TypeError(f"{what} must be an integer, not {kbits!r}")
    lo, hi = KBITS_RANGE
    if not lo <= kbits <= hi:
        raise ValueError(f"{what} must be in [{lo}, {hi}], not {kbits}")
    return int(kbits)


def max_value(kbits: int) -> int:
    """Largest value ``2**k - 1`` (the smallest is its negative)."""
    return (1 << check_kbits(kbits)) - 1


def branch_values(kbits: int) -> np.ndarray:
    """Every value of ``k``-bit codes, indexed by code: ``2*c - (2**k - 1)``."""
    top = max_value(kbits)
    return 2 * np.arange(top + 1, dtype=np.int64) - top


def max_abs_dot(k: int, wbits: int, abits: int) -> int:
    """Largest ``|sum_k w[k] * x[k]|`` over ``K = k`` terms."""
    return k * max_value(wbits) * max_value(abits)


def _where(index) -> str:
    index = tuple(int(i) for i in index)
    return str(index[0]) if len(index) == 1 else str(index)


def encode_branches(values, kbits: int, *, what: str = "value") -> np.ndarray:
    """Odd integers in ``[-(2**k - 1), 2**k - 1]`` (any integer dtype, any shape) -> ``uint8``
    codes. Raises ``ValueError`` naming the first bad index and value (and ``what`` it is)."""
    kbits = check_kbits(kbits)
    v = np.asarray(values)
    if v.dtype.kind not in "iu":
        raise ValueError(f"{what}s must be integers, not dtype {v.dtype}")
    top = max_value(kbits)
    wide = v.astype(np.int64)
    bad = (wide % 2 == 0) | (wide < -top) | (wide > top)
    if bad.any():
        index = np.argwhere(bad)[0]
        raise ValueError(f"{what} at index {_where(index)} is {int(v[tuple(index)])}; expected "
                         f"an odd integer in [{-top}, {top}] ({kbits}-bit branch code)")
    return ((wide + top) >> 1).astype(np.uint8)


def decode_branches(codes, kbits: int) -> np.ndarray:
    """Codes -> values (int64, same shape). Codes must lie in ``0..2**k - 1``."""
    kbits = check_kbits(kbits)
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        raise ValueError(f"codes must be integers, not dtype {c.dtype}")
    top = max_value(kbits)
    c = c.astype(np.int64)
    bad = (c < 0) | (c > top)
    if bad.any():
        index = np.argwhere(bad)[0]
        raise ValueError(f"code at index {_where(index)} is {int(c[tuple(index)])}; expected "
                         f"0..{top} for {kbits}-bit branch codes")
    return 2 * c - top


def branch_planes(codes, kbits: int) -> np.ndarray:
    """The branches of codes as ``±1`` int8 planes: shape ``(k, *codes.shape)``, plane ``i``
    holding ``b_i``."""
    kbits = check_kbits(kbits)
    c = np.asarray(codes).astype(np.int64)
    bits = (c[None, ...] >> np.arange(kbits).reshape((-1,) + (1,) * c.ndim)) & 1
    return (2 * bits - 1).astype(np.int8)


def branch_words_per_row(k: int, kbits: int) -> int:
    """32-bit words of one packed row of ``K = k`` codes."""
    return -(-k * check_kbits(kbits) // WORD_BITS)


def pack_branches(codes, kbits: int) -> np.ndarray:
    """Pack ``(M, K)`` branch codes into ``(M, branch_words_per_row(K, k))`` uint32 words
    (branch packing version 1, see the module documentation)."""
    return pack_bits(codes, check_kbits(kbits))


def unpack_branches(words, k: int, kbits: int) -> np.ndarray:
    """Inverse of :func:`pack_branches`."""
    return unpack_bits(words, k, check_kbits(kbits))


def check_scale_fmt(fmt, what: str = "scale format") -> FloatFormat:
    """A scale format: any :class:`FloatFormat` whose significand has at most
    ``SCALE_FRAC_MAX + 1`` bits."""
    fmt = get_format(fmt)
    if fmt.frac_bits > SCALE_FRAC_MAX:
        raise ValueError(f"{what} {fmt.name} has {fmt.frac_bits} fraction bits; the float path "
                         f"takes at most {SCALE_FRAC_MAX}")
    return fmt
