"""Golden model: bit-exact DenseShift dot products and GEMMs on raw bit patterns.

``y[n, m] = round_out(sum_k x[n, k] * w[m, k] + bias[m])`` with ``w[m, k] = (-1)**s * 2**(e0[m]+p)``
taken from the ``B``-bit weight codes. The contract (see ``docs/arithmetic.md``):

* the sum is exact and rounded once to the output format, round to nearest even; overflow gives
  ``±inf``; a nonzero sum that rounds to zero keeps its sign; subnormals in and out;
* a NaN input (activation or bias), or ``+inf`` and ``-inf`` both among the terms (products and
  bias), gives the canonical NaN of the output format; otherwise an infinite term gives that
  infinity (``inf * ±2**e`` has the xor of the signs);
* an exact zero sum is ``-0`` only if every term, the bias included when given, is ``-0``;
* ``relu``: any result with the sign bit set becomes ``+0`` (``-0`` and ``-inf`` included).

How: :mod:`sw.golden_blas` splits the activations into parts whose float64 matrix products
against the ``{±2**p}`` weights are exact by construction (one part for typical inputs, a
proof in its docstring), rounds the exact sum plus bias once, and counts special values with
indicator matrix products. :func:`gemm_reference` is the multi-limb implementation it replaced,
kept as the slow reference (activations cut into fixed-point limbs, limbs carried in int64, one
vectorised round-to-nearest-even); formats and offsets beyond float64's reach use it. Pure
PyTorch (no Amaranth); results never depend on the thread count or the blocking.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from contract import (
    DotConfig,
    FloatFormat,
    carrier_format,
    check_wbits,
    get_format,
    max_exponent_code,
)

from . import golden_blas
from .fpbits import MAX_WIDTH, check_bits, classify, from_bits, significand
from .golden_blas import gemm_blas
from .limbs import carry as _carry
from .limbs import limb as _limb
from .limbs import round_limbs as _round

__all__ = ["gemm_golden", "gemm_reference", "conv_golden", "dot_golden", "MAX_K", "E0_LIMIT"]

MAX_K = 1 << 24            # keeps float64 limb sums exact with useful limb widths
E0_LIMIT = 1 << 20         # |e0| bound (any realistic offset; keeps exponent arithmetic small)
CHUNK_OUTPUTS = 1 << 20    # outputs computed at once (rows of X are processed in blocks)
CHUNK_TERMS = 1 << 22      # activations of one block (fast path)


# -- argument checking ------------------------------------------------------------------------

def _format(fmt, what) -> FloatFormat:
    try:
        fmt = get_format(fmt)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if fmt.width > MAX_WIDTH:
        raise ValueError(f"{what} {fmt.name} is {fmt.width} bits wide; the golden model holds "
                         f"raw patterns in int64 (at most {MAX_WIDTH} bits)")
    return fmt


def _int_tensor(a, what) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        if a.dtype.is_floating_point or a.dtype.is_complex or a.dtype == torch.bool:
            raise ValueError(f"{what} must be integers, not {a.dtype}")
        return a.to(torch.int64)
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers, not dtype {arr.dtype}")
    if arr.dtype == np.uint64:
        arr = arr.astype(np.int64)          # codes and offsets are small: checked below
    return torch.from_numpy(arr.astype(np.int64, copy=False))


def _within(t: torch.Tensor, top: int) -> bool:
    lo, hi = torch.aminmax(t)
    return int(lo) >= 0 and int(hi) < top


def _bits(bits, fmt: FloatFormat, what: str) -> torch.Tensor:
    """:func:`sw.fpbits.check_bits` with one pass over valid integer input (it reports the
    errors)."""
    if isinstance(bits, torch.Tensor) and not (bits.dtype.is_floating_point
                                               or bits.dtype.is_complex
                                               or bits.dtype == torch.bool):
        t = bits.to(torch.int64)
    elif isinstance(bits, np.ndarray) and bits.dtype.kind in "iu" and bits.dtype != np.uint64:
        t = torch.from_numpy(bits.astype(np.int64, copy=False))
    else:
        return check_bits(bits, fmt, what)
    if t.numel() and not _within(t, 1 << fmt.width):
        return check_bits(t, fmt, what)
    return t


def _first(mask: torch.Tensor, t: torch.Tensor) -> tuple[str, int]:
    index = torch.nonzero(mask)[0].tolist()
    where = str(index[0]) if len(index) == 1 else str(tuple(index))
    return where, int(t[tuple(index)])


def _check_args(x_bits, codes, e0, in_fmt, wbits, out_fmt, bias_bits, relu, config):
    in_fmt = _format(in_fmt, "in_fmt")
    out_fmt = in_fmt if out_fmt is None else _format(out_fmt, "out_fmt")
    wbits = check_wbits(wbits)
    if not isinstance(relu, (bool, np.bool_)):
        raise TypeError(f"relu must be a bool, not {relu!r}")
    x = _bits(x_bits, in_fmt, "activation")
    if x.ndim != 2:
        raise ValueError(f"x_bits must have shape (N, K), not {tuple(x.shape)}")
    c = _int_tensor(codes, "weight codes")
    if c.ndim != 2:
        raise ValueError(f"codes must have shape (M, K), not {tuple(c.shape)}")
    n, k = x.shape
    m = c.shape[0]
    if c.shape[1] != k:
        raise ValueError(f"codes have shape {tuple(c.shape)} but x_bits have shape "
                         f"{tuple(x.shape)}: expected codes of shape ({m}, {k})")
    if not 1 <= k <= MAX_K:
        raise ValueError(f"K={k} terms per dot product; expected 1..{MAX_K}")
    if c.numel() and not _within(c, 1 << wbits):
        bad = (c < 0) | (c >= (1 << wbits))
        if bool(bad.any()):
            where, value = _first(bad, c)
            raise ValueError(f"weight code at index {where} is {value}; expected "
                             f"0..{(1 << wbits) - 1} for {wbits}-bit codes")
    if isinstance(e0, bool):
        raise TypeError(f"e0 must be an integer or an array of integers, not {e0!r}")
    if isinstance(e0, (np.ndarray, torch.Tensor)) and e0.ndim == 0:
        e0 = int(_int_tensor(e0, "e0").item())
    if isinstance(e0, (int, np.integer)):
        e = torch.full((m,), int(e0), dtype=torch.int64) if abs(int(e0)) <= E0_LIMIT else None
        if e is None:
            raise ValueError(f"e0={int(e0)} is outside [-{E0_LIMIT}, {E0_LIMIT}]")
    else:
        e = _int_tensor(e0, "e0")
        if e.ndim != 1 or e.shape[0] != m:
            raise ValueError(f"per-channel e0 must have shape ({m},), not {tuple(e.shape)}")
        bad = e.abs() > E0_LIMIT
        if e.numel() and bool(bad.any()):
            where, value = _first(bad, e)
            raise ValueError(f"e0 at index {where} is {value}; expected [-{E0_LIMIT}, "
                             f"{E0_LIMIT}]")
    b = None
    if bias_bits is not None:
        b = check_bits(bias_bits, out_fmt, "bias")
        if b.ndim != 1 or b.shape[0] != m:
            raise ValueError(f"bias_bits must have shape ({m},), not {tuple(b.shape)}")
    if config is not None:
        if not isinstance(config, DotConfig):
            raise TypeError(f"config must be a DotConfig, not {config!r}")
        for name, got, want in (("in_fmt", in_fmt, config.in_fmt),
                                ("out_fmt", out_fmt, config.out_fmt),
                                ("wbits", wbits, config.wbits)):
            if got != want:
                raise ValueError(f"{name}={got} does not match the configuration's {want}")
        config.check_k(k)
        if m:
            config.check_e0(e.numpy())
    return x, c, e, b, in_fmt, out_fmt, wbits, bool(relu)


# -- the model ----------------------------------------------------------------------------------

def _thread_count(count) -> int:
    """The validated ``threads`` argument (None: torch's current setting)."""
    if count is None:
        return torch.get_num_threads()
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise TypeError(f"threads must be a positive integer or None, not {count!r}")
    if count < 1:
        raise ValueError(f"threads must be a positive integer or None, not {count!r}")
    return int(count)


@contextlib.contextmanager
def _threads(count: int):
    """Run torch with ``count`` intra-op threads, then restore the caller's setting."""
    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


_DOC_PARAMS = """
    Parameters
    ----------
    x_bits : (N, K) integers (torch or NumPy)
        Raw ``in_fmt`` patterns of the activations.
    codes : (M, K) integers
        ``wbits``-bit weight codes (sign in bit ``B-1``, exponent code below).
    e0 : int or (M,) integers
        Weight offset, per tensor or per output channel.
    in_fmt, out_fmt : FloatFormat or name
        Activation format; output and bias format (default ``in_fmt``). ``fp8_e4m3fn`` and
        the MX element formats enter through their carriers (:mod:`sw.mx`; ``config`` then
        names the carriers); an ``fp8_e4m3fn`` output saturates to ±448, an infinite or NaN
        result gives its NaN ``0x7F``.
    bias_bits : (M,) integers, optional
        Raw ``out_fmt`` patterns of the bias.
    relu : bool
        Apply ReLU (sign bit set -> ``+0``) to the outputs.
    config : DotConfig, optional
        When given, formats and ``wbits`` must match it and ``K``, ``e0`` must lie in its domain.
    threads : int, optional
        torch intra-op threads for the float64 matrix products of the call (``1`` pins it to
        one core; the elementwise work always runs on one); default: torch's current setting
        (``torch.get_num_threads()``). Results never depend on it.

    Returns
    -------
    torch.Tensor of int64, shape (N, M): raw ``out_fmt`` patterns.

    Raises
    ------
    ValueError, TypeError
        On bad shapes, patterns, codes or offsets, naming the value and what was expected.
"""


def _row_blocks(n_out: int, k: int) -> int:
    """Rows per block: bounds the (rows, M) and (rows, K) work arrays."""
    return max(1, min(CHUNK_OUTPUTS // max(1, n_out), CHUNK_TERMS // max(1, k)))


def _narrow(fn):
    """Lets ``fn`` take formats without infinities (``fp8_e4m3fn``, MX elements): activations
    and bias enter as their carriers (:mod:`sw.mx`), results leave saturated."""
    import functools

    @functools.wraps(fn)
    def wrapper(x_bits, codes, e0, *, in_fmt, wbits, out_fmt=None, bias_bits=None, **kw):
        in_f = _format(in_fmt, "in_fmt")
        out_f = in_f if out_fmt is None else _format(out_fmt, "out_fmt")
        if in_f.is_ieee and out_f.is_ieee:
            return fn(x_bits, codes, e0, in_fmt=in_f, wbits=wbits, out_fmt=out_f,
                      bias_bits=bias_bits, **kw)
        from . import mx

        if not out_f.has_nan:
            raise ValueError(f"out_fmt {out_f.name} has no NaN; it is an input (element) "
                             f"format only")
        in_c, out_c = carrier_format(in_f), carrier_format(out_f)
        x = mx.to_carrier(x_bits, in_f, in_c)
        b = None if bias_bits is None else mx.to_carrier(bias_bits, out_f, out_c)
        y = fn(x, codes, e0, in_fmt=in_c, wbits=wbits, out_fmt=out_c, bias_bits=b, **kw)
        if out_f.is_ieee:
            return y
        # weights are finite and nonzero: a result is finite when its row and its bias are
        finite = np.isfinite(from_bits(x, in_c)).all(axis=1, keepdims=True)
        if b is not None:
            finite = finite & np.isfinite(from_bits(b, out_c)).reshape(1, -1)
        return torch.from_numpy(mx.from_carrier(y.numpy(), out_c, out_f, finite=finite))

    return wrapper


@_narrow
def gemm_golden(x_bits, codes, e0, *, in_fmt, wbits, out_fmt=None, bias_bits=None, relu=False,
                config=None, threads=None) -> torch.Tensor:
    count = _thread_count(threads)
    with _threads(1):
        x, c, e0t, b, in_fmt, out_fmt, wbits, relu = _check_args(
            x_bits, codes, e0, in_fmt, wbits, out_fmt, bias_bits, relu, config)
        y = gemm_blas(x, c, e0t, b, in_fmt, out_fmt, wbits, relu,
                      rows_per_block=_row_blocks(c.shape[0], c.shape[1]), threads=count)
        if y is not None:
            return y
        return _gemm_blocks(x, c, e0t, b, in_fmt, out_fmt, wbits, relu)


gemm_golden.__doc__ = """Bit-exact ``Y = round_out(X @ W.T + bias)`` on raw patterns.

    Computed by float64 BLAS matrix products that are exact by construction
    (:mod:`sw.golden_blas`); formats or offsets beyond float64's reach take the multi-limb path
    of :func:`gemm_reference`. Both give the same bits.
""" + _DOC_PARAMS


@_narrow
def gemm_reference(x_bits, codes, e0, *, in_fmt, wbits, out_fmt=None, bias_bits=None,
                   relu=False, config=None, threads=1) -> torch.Tensor:
    with _threads(_thread_count(threads)):
        return _gemm_blocks(*_check_args(x_bits, codes, e0, in_fmt, wbits, out_fmt, bias_bits,
                                         relu, config))


gemm_reference.__doc__ = """The previous implementation of :func:`gemm_golden`, kept as its
    slow reference (same contract, same bits): activations cut into fixed-point limbs, one
    float64 product per limb, limbs carried in int64 and rounded once. Here ``threads``
    (default 1) applies to all of the work.
""" + _DOC_PARAMS


def _tuple(value, dims: int, what: str) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * dims
    try:
        out = tuple(value)
    except TypeError:
        out = None
    if out is None or len(out) != dims or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in out):
        raise TypeError(f"{what} must be an int or {dims} ints, not {value!r}")
    return tuple(int(v) for v in out)


def conv_golden(x_bits, codes, e0, *, in_fmt, wbits, kernel, stride=1, padding=0, dilation=1,
                out_fmt=None, bias_bits=None, relu=False, config=None,
                threads=None) -> torch.Tensor:
    """Bit-exact 1-D or 2-D convolution on raw patterns, as :func:`gemm_golden` over the
    im2col patches (:func:`sw.conv.im2col_tensor`: zero padding enters as ``+0`` activations,
    real terms of every dot product) but with bounded memory: the patches are built and
    multiplied a block of samples at a time.

    ``x_bits`` (S, C, L) or (S, C, H, W) integers; ``codes`` (M, C * prod(kernel)) or
    (M, C, *kernel); ``kernel``, ``stride``, ``padding``, ``dilation`` ints or one int per
    spatial axis. Returns (S, M, *output spatial) int64 raw ``out_fmt`` patterns. Other
    arguments as :func:`gemm_golden`.
    """
    from .conv import im2col_tensor

    count = _thread_count(threads)
    with _threads(1):
        in_f = _format(in_fmt, "in_fmt")
        x = _bits(x_bits, in_f, "activation")
        if x.ndim not in (3, 4):
            raise ValueError(f"x_bits must have shape (S, C, L) or (S, C, H, W), not "
                             f"{tuple(x.shape)}")
        dims = x.ndim - 2
        geo = [_tuple(v, dims, name) for v, name in ((kernel, "kernel"), (stride, "stride"),
                                                     (padding, "padding"),
                                                     (dilation, "dilation"))]
        ker, st, pad, dil = geo
        if min(ker) < 1 or min(st) < 1 or min(dil) < 1 or min(pad) < 0:
            raise ValueError(f"kernel, stride and dilation must be >= 1 and padding >= 0, not "
                             f"kernel={ker} stride={st} padding={pad} dilation={dil}")
        out_sp = tuple((size + 2 * p - d * (kk - 1) - 1) // s + 1
                       for size, kk, s, p, d in zip(x.shape[2:], ker, st, pad, dil, strict=True))
        if min(out_sp) < 1:
            raise ValueError(f"kernel {ker} (dilation {dil}) is larger than the padded input "
                             f"{tuple(v + 2 * p for v, p in zip(x.shape[2:], pad, strict=True))}")
        samples, channels = x.shape[:2]
        ckk = channels * int(np.prod(ker))
        c = _int_tensor(codes, "weight codes")
        if c.ndim == 2 + dims and tuple(c.shape[1:]) == (channels, *ker):
            c = c.reshape(c.shape[0], -1)
        _, c, e0t, b, in_f, out_f, wbits, relu = _check_args(
            torch.zeros((0, ckk), dtype=torch.int64), c, e0, in_f, wbits, out_fmt, bias_bits,
            relu, config)
        m = c.shape[0]
        positions = int(np.prod(out_sp))
        out = torch.empty((samples, m, positions), dtype=torch.int64)
        if samples == 0 or m == 0 or positions == 0:
            return out.reshape(samples, m, *out_sp)
        prep = golden_blas.prepare(c, e0t, b, in_f, out_f, wbits, count)
        if prep is not None:
            x64 = golden_blas.decode(x, in_f)
            if bool(torch.isfinite(x64.sum())):
                _conv_values(x64, prep, relu, ker, st, pad, dil, out_sp, out)
                return out.reshape(samples, m, *out_sp)
        step = max(1, CHUNK_TERMS // (positions * ckk))  # infinities, NaNs or wide formats
        for i in range(0, samples, step):
            cols = im2col_tensor(x[i:i + step], ker, st, pad, dil)
            y = None if prep is None else golden_blas.rows_from_bits(cols, prep, relu)
            if y is None:
                y = _gemm_blocks(cols, c, e0t, b, in_f, out_f, wbits, relu)
            n = y.shape[0] // positions
            out[i:i + n] = y.reshape(n, positions, m).transpose(1, 2)
        return out.reshape(samples, m, *out_sp)


def _conv_values(x64, prep, relu, ker, st, pad, dil, out_sp, out):
    """The BLAS path of :func:`conv_golden` on decoded finite values ``x64`` (S, C, *spatial):
    patches of whole samples, or of bands of output rows of one sample, at most about
    ``CHUNK_TERMS`` activations at a time; writes ``out`` (S, M, positions)."""
    from torch.nn import functional as F

    if len(ker) == 1:                                 # 1-D: a 2-D image of width 1
        x64 = x64.unsqueeze(-1)
        ker, st, pad, dil, out_sp = ((ker[0], 1), (st[0], 1), (pad[0], 0), (dil[0], 1),
                                     (out_sp[0], 1))
    xp = F.pad(x64, (pad[1], pad[1], pad[0], pad[0]))  # +0.0: zero padding is +0 terms
    samples, channels = x64.shape[:2]
    ckk = channels * ker[0] * ker[1]
    out_h, out_w = out_sp
    m = out.shape[1]
    per_row = out_w * ckk
    if out_h * per_row <= CHUNK_TERMS:
        blocks = [(i, min(samples, i + max(1, CHUNK_TERMS // (out_h * per_row))), 0, out_h)
                  for i in range(0, samples, max(1, CHUNK_TERMS // (out_h * per_row)))]
    else:
        band = max(1, CHUNK_TERMS // per_row)
        blocks = [(i, i + 1, r, min(out_h, r + band)) for i in range(samples)
                  for r in range(0, out_h, band)]
    for s0, s1, r0, r1 in blocks:
        rows = xp[s0:s1, :, r0 * st[0]:(r1 - 1) * st[0] + dil[0] * (ker[0] - 1) + 1]
        cols = F.unfold(rows, kernel_size=ker, dilation=dil, stride=st)   # (s, ckk, L)
        y = golden_blas.rows_from_values(cols.transpose(1, 2).reshape(-1, ckk), None, prep,
                                         relu)
        out[s0:s1, :, r0 * out_w:r1 * out_w] = y.reshape(s1 - s0, -1, m).transpose(1, 2)


def _gemm_blocks(x, c, *rest):
    step = max(1, CHUNK_OUTPUTS // max(1, c.shape[0]))   # bounds the limb arrays
    if x.shape[0] <= step:
        return _gemm(x, c, *rest)
    return torch.cat([_gemm(x[i:i + step], c, *rest) for i in range(0, x.shape[0], step)])


def _gemm(x, c, e0t, b, in_fmt, out_fmt, wbits, relu):
    """The reference: one block of rows."""
    n, k = x.shape
    m = c.shape[0]
    out = torch.zeros((n, m), dtype=torch.int64)
    if n == 0 or m == 0:
        return out
    pmax = max_exponent_code(wbits)
    fo = out_fmt.frac_bits + 1                        # output significand bits
    lb = 53 - pmax - k.bit_length()                   # limb bits: k * 2**lb * 2**pmax < 2**53

    # activations: classes and exact significands
    xc = classify(x, in_fmt)
    sig, shift = significand(x, in_fmt)
    sig = torch.where(xc.finite_nonzero, sig, 0)
    if bool(xc.finite_nonzero.any()):
        base = int(shift[xc.finite_nonzero].min())
        xbits = int(shift[xc.finite_nonzero].max()) - base + in_fmt.frac_bits + 1
    else:
        base, xbits = 0, 0
    shift = (shift - base).clamp(min=0)
    ptop = xbits + pmax + k.bit_length()              # |product sum| < 2**(A + ptop)

    # weights as exact float64 values ±2**p
    wsign = (c >> (wbits - 1)) & 1
    wmat = torch.ldexp(1.0 - 2.0 * wsign.to(torch.float64), (c & pmax).to(torch.float64))

    # bias
    if b is not None:
        bcl = classify(b, out_fmt)
        bsig, bshift = significand(b, out_fmt)
        bexp = bshift + out_fmt.lsb_exp               # bias = ±bsig * 2**bexp
        bnz = bcl.finite_nonzero

    # finite part, one group per distinct e0
    xlimbs = {}
    for e0v in torch.unique(e0t).tolist():
        rows = torch.nonzero(e0t == e0v).flatten()
        mg = rows.numel()
        a = e0v + in_fmt.lsb_exp + base               # products are multiples of 2**a
        lo, btop = a, None
        if b is not None:
            gb, gexp, gsig, gnz = b[rows], bexp[rows], bsig[rows], bnz[rows]
            high = gnz & (gexp >= a + ptop + fo + 2)  # products < 1/4 bias ulp: y = bias
            low = gnz & (gexp + fo <= a - fo - 3)     # bias acts only as a sign below the sum
            gsig = torch.where(low, 1, torch.where(gnz & ~high, gsig, 0))
            gexp = torch.where(low, a - fo - 4, gexp)
            used = gsig != 0
            if bool(used.any()):
                lo = min(a, int(gexp[used].min()))
                btop = int(gexp[used].max()) + fo
        hi = 2 + max(a + ptop, a if btop is None else btop)   # room for the sign and carries
        nlimbs = max(1, -(-(hi - lo) // lb))
        off = a - lo
        limbs = torch.zeros((nlimbs, n, mg), dtype=torch.int64)
        if xbits:
            wt = wmat[rows].T.contiguous()
            if off not in xlimbs:                     # signed limbs of x, shared by groups
                xlimbs[off] = [(j, torch.where(xc.sign, -xl, xl)) for j in
                               range(off // lb, (off + xbits - 1) // lb + 1)
                               for xl in [_limb(sig, shift + off, j, lb).to(torch.float64)]]
            for j, xl in xlimbs[off]:
                limbs[j] = (xl @ wt).to(torch.int64)
        limbs = _carry(limbs, lb)
        prod_zero = (limbs == 0).all(dim=0)
        if b is not None:
            bsh = (gexp - lo).clamp(min=0)
            for j in range(nlimbs):
                bl = _limb(gsig, bsh, j, lb)
                limbs[j] += torch.where(gb >> (out_fmt.width - 1) == 1, -bl, bl)
            limbs = _carry(limbs, lb)
        neg = limbs[-1] < 0
        mag = _carry(torch.where(neg, -limbs, limbs), lb)
        zero = (mag == 0).all(dim=0)
        y = _round(mag, lo, lb, out_fmt) | (neg.to(torch.int64) << (out_fmt.width - 1))
        y = torch.where(zero, 0, y)
        if b is not None:
            y = torch.where(high | (low & prod_zero), gb, y)
        out[:, rows] = y

    # exact zeros: -0 only if every term (and the bias, if given) is -0
    xzero_rows = torch.nonzero(xc.zero.all(dim=1)).flatten()
    if xzero_rows.numel():
        xs = xc.sign[xzero_rows].to(torch.float64)
        ws = wsign.to(torch.float64)
        negcount = xs @ (1 - ws).T + (1 - xs) @ ws.T  # products that are -0
        allneg = negcount == k
        if b is not None:
            allneg &= bcl.zero & bcl.sign
        sub = out[xzero_rows]
        zero_sum = (sub & ~out_fmt.sign_mask) == 0
        out[xzero_rows] = torch.where(zero_sum, torch.where(allneg, out_fmt.sign_mask, 0), sub)

    # infinities and NaNs
    pos, neg = xc.inf & ~xc.sign, xc.inf & xc.sign
    nan = xc.nan.any(dim=1, keepdim=True).expand(n, m)
    pinf = torch.zeros((n, m), dtype=torch.bool)
    ninf = torch.zeros((n, m), dtype=torch.bool)
    inf_rows = torch.nonzero(xc.inf.any(dim=1)).flatten()
    if inf_rows.numel():
        ind = torch.cat([pos[inf_rows], neg[inf_rows]], dim=1).to(torch.float64)
        s1 = wsign.to(torch.float64)
        ppos = ind @ torch.cat([1 - s1, s1], dim=1).T    # +inf products
        total = xc.inf[inf_rows].sum(dim=1, keepdim=True).to(torch.float64)
        pinf[inf_rows] = ppos > 0
        ninf[inf_rows] = (total - ppos) > 0
    if b is not None:
        nan = nan | bcl.nan[None, :]
        pinf = pinf | (bcl.inf & ~bcl.sign)[None, :]
        ninf = ninf | (bcl.inf & bcl.sign)[None, :]
    nan = nan | (pinf & ninf)
    out = torch.where(pinf, out_fmt.pos_inf, out)
    out = torch.where(ninf, out_fmt.neg_inf, out)
    out = torch.where(nan, out_fmt.canonical_nan, out)
    if relu:
        out = torch.where((out & out_fmt.sign_mask) != 0, 0, out)
    return out


def dot_golden(x_bits, codes, e0, *, in_fmt, wbits, out_fmt=None, bias_bits=None, relu=False,
               config=None) -> int:
    """One dot product: ``x_bits`` and ``codes`` of shape (K,), ``e0`` an int, ``bias_bits`` an
    int or None. Returns the raw output pattern as an int. Same contract as
    :func:`gemm_golden`."""
    if isinstance(e0, bool) or not isinstance(e0, (int, np.integer)):
        raise TypeError(f"e0 must be an integer, not {e0!r}")
    x = _int_tensor(x_bits, "activations")
    c = _int_tensor(codes, "weight codes")
    if x.ndim != 1 or c.ndim != 1:
        raise ValueError(f"x_bits and codes must be vectors, not shapes {tuple(x.shape)} and "
                         f"{tuple(c.shape)}")
    bias = None
    if bias_bits is not None:
        if isinstance(bias_bits, bool) or not isinstance(bias_bits, (int, np.integer)):
            raise TypeError(f"bias_bits must be an integer pattern or None, not {bias_bits!r}")
        bias = torch.tensor([int(bias_bits)], dtype=torch.int64)
    y = gemm_golden(x[None, :], c[None, :], e0, in_fmt=in_fmt, wbits=wbits, out_fmt=out_fmt,
                    bias_bits=bias, relu=relu, config=config)
    return int(y[0, 0])
