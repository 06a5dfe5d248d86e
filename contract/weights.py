"""DenseShift weight codes and their packed form.

Code
----
A ``B``-bit weight code (``B`` = 2..5) holds one sign bit and ``B-1`` exponent bits::

    bit  B-1      B-2 ... 0
         s        p (unsigned)

and stands for ``(-1)**s * 2**(e0 + p)`` with ``p`` in ``[0, 2**(B-1) - 1]``. ``e0`` is a signed
integer offset per weight tensor (or per output channel). There is no zero weight.

Packing (format version 1)
--------------------------
A weight matrix of shape ``(M, K)`` is packed row by row (one row per output channel). Each row is
a little-endian bit stream: code ``k`` occupies bits ``[k*B, (k+1)*B)`` of the row, least
significant bit first. The stream is cut into 32-bit words, word ``j`` holding stream bits
``[32*j, 32*j + 32)``; a row takes ``ceil(K*B / 32)`` words and unused high bits of its last word
are zero. Words are stored little-endian (``<u4``) when written to bytes. Codes therefore may
straddle two words; each row starts on a fresh word.

Pure Python + NumPy.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "PACK_VERSION",
    "WORD_BITS",
    "check_wbits",
    "max_exponent_code",
    "make_code",
    "split_code",
    "encode_weights",
    "decode_weights",
    "pack_codes",
    "unpack_codes",
    "pack_bits",
    "unpack_bits",
    "words_per_row",
]

PACK_VERSION = 1
WORD_BITS = 32
WBITS_RANGE = (2, 5)


def check_wbits(wbits) -> int:
    """Validate a weight width ``B``; returns it."""
    if not isinstance(wbits, (int, np.integer)) or isinstance(wbits, bool):
        raise TypeError(f"Weight bits must be an integer, not {wbits!r}")
    lo, hi = WBITS_RANGE
    if not lo <= wbits <= hi:
        raise ValueError(f"Weight bits must be in [{lo}, {hi}], not {wbits}")
    return int(wbits)


def max_exponent_code(wbits: int) -> int:
    """Largest ``p``: ``2**(B-1) - 1``."""
    return (1 << (check_wbits(wbits) - 1)) - 1


def make_code(sign, p, wbits: int):
    """Compose codes from sign bits (0/1) and exponent codes ``p`` (scalars or arrays)."""
    return (np.asarray(sign, dtype=np.uint8) << (check_wbits(wbits) - 1)) | np.asarray(
        p, dtype=np.uint8)


def split_code(code, wbits: int):
    """``(sign, p)`` of codes (scalars or arrays)."""
    code = np.asarray(code, dtype=np.uint8)
    wbits = check_wbits(wbits)
    return code >> (wbits - 1), code & max_exponent_code(wbits)


def _first_bad(mask: np.ndarray, values: np.ndarray, what: str) -> ValueError:
    index = tuple(int(i) for i in np.argwhere(mask)[0])
    where = index if len(index) > 1 else index[0]
    return ValueError(f"weight at index {where} is {float(values[index])!r}: {what}")


def encode_weights(w, wbits: int, *, e0=None, per_channel: bool = False):
    """Encode float weights that are each exactly ``±2**e`` into codes.

    Parameters
    ----------
    w : array_like, shape (M, K) (or any shape; channel axis 0 when ``per_channel``)
        Weight values.
    wbits : int
        Code width ``B``.
    e0 : int or array of int, optional
        Offset to use. By default the smallest exponent present (per tensor, or per row when
        ``per_channel``), so that codes cover the exponents ``[e0, e0 + 2**(B-1) - 1]``.

    Returns
    -------
    codes : numpy.ndarray of uint8, same shape as ``w``
    e0 : int, or numpy.ndarray of int64 with shape (M,) when ``per_channel``

    Raises
    ------
    ValueError
        Naming the first offending index and value: a zero, NaN, infinity, a value that is not a
        power of two, or exponents spread wider than ``2**(B-1)`` consecutive values.
    """
    wbits = check_wbits(wbits)
    w = np.asarray(w)
    if w.dtype.kind not in "fiu":
        raise ValueError(f"weights must be numbers, not dtype {w.dtype}")
    w = w.astype(np.float64)
    if w.size == 0:
        raise ValueError(f"weights are empty (shape {w.shape})")
    bad = ~np.isfinite(w)
    if bad.any():
        raise _first_bad(bad, w, "expected a finite ±2**e")
    bad = w == 0
    if bad.any():
        raise _first_bad(bad, w, "DenseShift weights have no zero; expected ±2**e")
    mant, exp = np.frexp(np.abs(w))          # |w| = mant * 2**exp, mant in [0.5, 1)
    bad = mant != 0.5
    if bad.any():
        raise _first_bad(bad, w, "not a power of two; expected ±2**e")
    exp = exp.astype(np.int64) - 1           # |w| = 2**exp
    pmax = max_exponent_code(wbits)
    if per_channel:
        if w.ndim < 1:
            raise ValueError("per-channel encoding needs at least one axis")
        rows = exp.reshape(exp.shape[0], -1)
        base = rows.min(axis=1) if e0 is None else np.broadcast_to(
            np.asarray(e0, dtype=np.int64), (exp.shape[0],))
        e0_out = np.asarray(base, dtype=np.int64).copy()
        p = exp - e0_out.reshape((-1,) + (1,) * (w.ndim - 1))
    else:
        e0_out = int(exp.min()) if e0 is None else int(e0)
        p = exp - e0_out
    bad = (p < 0) | (p > pmax)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        base = e0_out[index[0]] if per_channel else e0_out
        raise ValueError(
            f"weight at index {index if len(index) > 1 else index[0]} is {float(w[index])!r} = "
            f"2**{int(exp[index])}: outside the {pmax + 1} exponents "
            f"[{base}, {base + pmax}] that {wbits}-bit codes reach from e0={base}")
    sign = (w < 0).astype(np.uint8)
    return make_code(sign, p.astype(np.uint8), wbits), e0_out


def decode_weights(codes, wbits: int, e0) -> np.ndarray:
    """Values of codes as float64 (exact for the exponents float64 holds). ``e0`` is a scalar or
    a per-row (axis 0) array."""
    sign, p = split_code(codes, wbits)
    e0 = np.asarray(e0, dtype=np.int64)
    if e0.ndim:
        e0 = e0.reshape((-1,) + (1,) * (np.ndim(codes) - 1))
    return np.where(sign == 1, -1.0, 1.0) * np.ldexp(1.0, (p.astype(np.int64) + e0))


def words_per_row(k: int, wbits: int) -> int:
    return -(-k * check_wbits(wbits) // WORD_BITS)


def _check_width(width) -> int:
    if not isinstance(width, (int, np.integer)) or isinstance(width, bool):
        raise TypeError(f"Code width must be an integer, not {width!r}")
    if not 1 <= width <= 8:
        raise ValueError(f"Code width must be in [1, 8], not {width}")
    return int(width)


def pack_bits(codes, width: int) -> np.ndarray:
    """Pack a ``(M, K)`` array of ``width``-bit codes (``width`` = 1..8) into
    ``(M, ceil(K*width/32))`` uint32 words: the bit stream of packing version 1 (see the module
    documentation) for any code width. :func:`pack_codes` is this for weight codes."""
    width = _check_width(width)
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must have shape (M, K), not {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= (1 << width)):
        bad = (codes < 0) | (codes >= (1 << width))
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"code at index {index} is {codes[index]}; expected 0..{(1 << width) - 1}")
    m, k = codes.shape
    nwords = -(-k * width // WORD_BITS)
    bits = ((codes.astype(np.uint64)[:, :, None] >> np.arange(width, dtype=np.uint64)) & 1)
    stream = np.zeros((m, nwords * WORD_BITS), dtype=np.uint64)
    stream[:, :k * width] = bits.reshape(m, k * width)
    stream = stream.reshape(m, nwords, WORD_BITS)
    weights = np.uint64(1) << np.arange(WORD_BITS, dtype=np.uint64)
    return (stream * weights).sum(axis=2).astype(np.uint32)


def unpack_bits(words, k: int, width: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``(M, words)`` uint32 -> ``(M, K)`` uint8 codes. The word
    count must match and the padding bits must be zero."""
    width = _check_width(width)
    words = np.asarray(words)
    if words.ndim != 2 or words.dtype != np.uint32:
        raise ValueError(f"packed words must be a 2-D uint32 array, not {words.dtype} "
                         f"with shape {words.shape}")
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"K must be a non-negative integer, not {k!r}")
    need = -(-k * width // WORD_BITS)
    if words.shape[1] != need:
        raise ValueError(f"{words.shape[1]} words per row, expected {need} for K={k}, "
                         f"B={width}")
    m = words.shape[0]
    bits = (words.astype(np.uint64)[:, :, None] >> np.arange(WORD_BITS, dtype=np.uint64)) & 1
    bits = bits.reshape(m, -1)
    if (bits[:, k * width:] != 0).any():
        raise ValueError("packed words have non-zero padding bits beyond the last code")
    bits = bits[:, :k * width].reshape(m, k, width)
    return (bits << np.arange(width, dtype=np.uint64)).sum(axis=2).astype(np.uint8)


def pack_codes(codes, wbits: int) -> np.ndarray:
    """Pack a ``(M, K)`` array of codes into ``(M, words_per_row(K, B))`` uint32 words
    (format version 1, see the module documentation)."""
    return pack_bits(codes, check_wbits(wbits))


def unpack_codes(words, k: int, wbits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``(M, words)`` uint32 -> ``(M, K)`` uint8 codes."""
    return unpack_bits(words, k, check_wbits(wbits))
