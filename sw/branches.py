"""Golden model of multi-branch ``{-1, +1}`` GEMMs (``contract.branches``), vectorised in torch.

* :func:`branch_gemm` -- the exact integer ``Y = X @ W.T`` (int64) of branch codes, computed by
  the branch definition: ``sum_i sum_j 2**(i+j) * (2 * popcount(xnor(W_i, A_j)) - K)``, as
  ``±1`` plane products (float64 BLAS sums of integers below ``2**53``: exact).
* :func:`branch_gemm_scaled` -- ``round_out(sx * sw[m] * Y)``: the exact product of the integer
  result and the two scale significands is formed in 30-bit limbs and rounded once
  (:func:`sw.limbs.round_limbs`, the DenseShift golden model's rounding), so the result is the
  correctly rounded value.

Both take codes (``c = (q + 2**k - 1) / 2``, see :mod:`contract.branches`); raw scale and result
patterns are int64 like the DenseShift golden model's.
"""

from __future__ import annotations

import numpy as np
import torch

from contract import carrier_format
from contract.branches import (
    DEFAULT_OUT_FMT,
    DEFAULT_SCALE_FMT,
    MAX_K,
    check_kbits,
    check_scale_fmt,
    max_value,
)

from .fpbits import check_bits, classify, significand
from .limbs import carry, round_limbs

__all__ = ["branch_gemm", "branch_gemm_scaled", "scale_product", "LIMB_BITS"]

#: Limb width of the exact scaled products (a limb times a scale significand stays below 2**62).
LIMB_BITS = 30


def _codes(codes, kbits, what) -> torch.Tensor:
    if isinstance(codes, torch.Tensor):
        if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
            raise ValueError(f"{what} must be integer codes, not {codes.dtype}")
        c = codes.to(torch.int64)
    else:
        arr = np.asarray(codes)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"{what} must be integer codes, not dtype {arr.dtype}")
        c = torch.from_numpy(arr.astype(np.int64))
    if c.ndim != 2:
        raise ValueError(f"{what} must have shape (rows, K), not {tuple(c.shape)}")
    top = max_value(kbits)
    bad = (c < 0) | (c > top)
    if c.numel() and bool(bad.any()):
        index = torch.nonzero(bad)[0].tolist()
        raise ValueError(f"{what} at index {tuple(index)} is {int(c[tuple(index)])}; expected "
                         f"0..{top} for {kbits}-bit branch codes")
    return c


def _check(x_codes, w_codes, wbits, abits):
    wbits = check_kbits(wbits, "wbits")
    abits = check_kbits(abits, "abits")
    x = _codes(x_codes, abits, "activation codes")
    w = _codes(w_codes, wbits, "weight codes")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"weight codes have shape {tuple(w.shape)} but activation codes have "
                         f"shape {tuple(x.shape)}: expected ({w.shape[0]}, {x.shape[1]})")
    if not 1 <= x.shape[1] <= MAX_K:
        raise ValueError(f"K={x.shape[1]} terms per dot product; expected 1..{MAX_K}")
    return x, w, wbits, abits


def _planes(c: torch.Tensor, kbits: int) -> torch.Tensor:
    """``(k, rows, K)`` float64 planes of ``±1`` branches."""
    shifts = torch.arange(kbits, dtype=torch.int64).reshape(-1, 1, 1)
    return (((c[None] >> shifts) & 1) * 2 - 1).to(torch.float64)


def branch_gemm(x_codes, w_codes, *, wbits: int, abits: int, relu: bool = False
                ) -> torch.Tensor:
    """Exact ``Y[n, m] = sum_k x[n, k] * w[m, k]`` (int64, shape (N, M)) of activation codes
    ``x_codes`` (N, K) with ``abits`` branches and weight codes ``w_codes`` (M, K) with ``wbits``
    branches, through the branch decomposition (xnor-popcounts of every branch pair).
    ``relu``: negative results become 0."""
    if not isinstance(relu, (bool, np.bool_)):
        raise TypeError(f"relu must be a bool, not {relu!r}")
    x, w, wbits, abits = _check(x_codes, w_codes, wbits, abits)
    xa, ww = _planes(x, abits), _planes(w, wbits)
    k = x.shape[1]
    out = torch.zeros((x.shape[0], w.shape[0]), dtype=torch.int64)
    for i in range(wbits):
        for j in range(abits):
            # <W_i, A_j> = 2 * popcount(xnor) - K; as ±1 vectors it is their dot product
            agree = (xa[j] @ ww[i].T + k) / 2          # popcount(xnor(W_i, A_j))
            out += (2 * agree.to(torch.int64) - k) << (i + j)
    return out.clamp(min=0) if relu else out


def _scales(bits, fmt, count, what) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw positive scales -> ``(sig, exp)`` with ``scale = sig * 2**exp``, broadcast to
    ``count`` entries."""
    t = check_bits(bits, fmt, what)
    one = t.ndim == 0
    if one:
        t = t.expand(count)
    elif t.ndim != 1 or t.shape[0] != count:
        raise ValueError(f"{what} must be one pattern or ({count},) patterns, not shape "
                         f"{tuple(t.shape)}")
    cls = classify(t, fmt)
    bad = cls.sign | ~cls.finite_nonzero
    if t.numel() and bool(bad.any()):
        i = int(torch.nonzero(bad)[0][0])
        where = "" if one else f" at index {i}"
        raise ValueError(f"{what}{where} is {int(t[i]):#x}; expected a finite positive "
                         f"{fmt.name} value")
    sig, shift = significand(t, fmt)
    return sig, shift + fmt.lsb_exp


def scale_product(acc: torch.Tensor, sig_x, exp_x, sig_w, exp_w, out_fmt) -> torch.Tensor:
    """Raw ``out_fmt`` patterns of ``acc * sig_x * sig_w * 2**(exp_x + exp_w)`` rounded once
    (nearest even; overflow ``±inf``, or ± the largest finite in a format without infinities;
    a nonzero value rounding to zero keeps its sign; zero gives ``+0``). ``acc``: int64
    (N, M) with ``|acc| < 2**62``; ``sig_x``, ``exp_x``: scalars
    or (N, 1); ``sig_w``, ``exp_w``: (M,) or scalars; significands below ``2**(SCALE_FRAC_MAX +
    1)``."""
    lb = LIMB_BITS
    mag = acc.abs()
    limbs = torch.stack([(mag >> (j * lb)) & ((1 << lb) - 1) for j in range(5)])
    for sig in (sig_x, sig_w):                  # two exact multiplications by < 2**31
        limbs = carry(limbs * torch.as_tensor(sig, dtype=torch.int64), lb)
    lsb = torch.as_tensor(exp_x, dtype=torch.int64) + torch.as_tensor(exp_w, dtype=torch.int64)
    lsb = lsb.expand(acc.shape) if lsb.ndim else torch.full(acc.shape, int(lsb))
    car = carrier_format(out_fmt)               # fp8_e4m3fn: rounded in its carrier ...
    y = round_limbs(limbs, lsb, lb, car)
    y = y | ((acc < 0).to(torch.int64) << (car.width - 1))
    y = torch.where(acc == 0, 0, y)
    if car == out_fmt:
        return y
    from .mx import from_carrier  # ... then saturated (every result is finite)

    return torch.from_numpy(from_carrier(y.numpy(), car, out_fmt, finite=True))


def branch_gemm_scaled(x_codes, w_codes, *, wbits: int, abits: int, scale_x, scale_w,
                       scale_fmt=DEFAULT_SCALE_FMT, out_fmt=DEFAULT_OUT_FMT,
                       relu: bool = False) -> torch.Tensor:
    """``Y[n, m] = round_out(sx * sw[m] * sum_k x[n, k] * w[m, k])`` as raw ``out_fmt``
    patterns (int64, shape (N, M)).

    ``scale_x``: one raw ``scale_fmt`` pattern; ``scale_w``: one pattern or ``(M,)`` patterns
    (per output channel). Scales must be finite and positive. ``relu``: results with the sign
    bit set become ``+0``."""
    from .fpbits import MAX_WIDTH

    if not isinstance(relu, (bool, np.bool_)):
        raise TypeError(f"relu must be a bool, not {relu!r}")
    scale_fmt = check_scale_fmt(scale_fmt)
    out_fmt = _out_format(out_fmt, MAX_WIDTH)
    acc = branch_gemm(x_codes, w_codes, wbits=wbits, abits=abits)
    m = acc.shape[1]
    sig_x, exp_x = _scales(scale_x, scale_fmt, 1, "scale_x")
    sig_w, exp_w = _scales(scale_w, scale_fmt, m, "scale_w")
    y = scale_product(acc, sig_x[0], exp_x[0], sig_w, exp_w, out_fmt)
    if relu:
        y = torch.where((y & out_fmt.sign_mask) != 0, 0, y)
    return y


def _out_format(fmt, max_width):
    from contract import get_format

    fmt = get_format(fmt)
    if fmt.width > max_width:
        raise ValueError(f"out_fmt {fmt.name} is {fmt.width} bits wide; results are held in "
                         f"int64 (at most {max_width} bits)")
    return fmt
