"""2-D convolution as a GEMM over im2col patches, on raw bit patterns (golden path).

Definition (shared by the golden model and the RTL driver :func:`sim.array_driver.conv2d_rtl`)::

    Y[s, m, oh, ow] = round_out( sum_{c, i, j} Xp[s, c, oh*sh + i, ow*sw + j] * w[m, c, i, j]
                                 + bias[m] )

where ``Xp`` is ``X`` zero padded with ``+0`` patterns. Padding positions are *real terms* of
the dot product: a ``+0`` activation times a negative weight is a ``-0`` product, so the
``-0`` rule of the contract (a zero sum is ``-0`` only when every term is ``-0``) sees them.
Rows of the GEMM are ``(s, oh, ow)`` row-major; columns are ``(c, i, j)``, PyTorch's
``weight.reshape(M, -1)`` order (the same as ``torch.nn.functional.unfold``).

Imports no Amaranth.
"""

from __future__ import annotations

import numpy as np

__all__ = ["conv_geometry", "im2col", "im2col_tensor", "col2out", "conv2d_golden"]


def _pair(value, what: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        a, b = value
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be an int or a pair of ints, not {value!r}") from None
    for v in (a, b):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{what} must be an int or a pair of ints, not {value!r}")
    return int(a), int(b)


def conv_geometry(h: int, w: int, *, kernel, stride=1, padding=0) -> tuple[int, int]:
    """Output size ``(OH, OW)``; ``ValueError`` for a kernel larger than the padded input,
    a stride below 1 or a negative padding."""
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel must be at least 1x1, not {kh}x{kw}")
    if sh < 1 or sw < 1:
        raise ValueError(f"stride must be at least 1, not {(sh, sw)}")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, not {(ph, pw)}")
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise ValueError(f"kernel {kh}x{kw} is larger than the padded input "
                         f"{h + 2 * ph}x{w + 2 * pw}")
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def im2col_tensor(x, kernel, stride, padding, dilation):
    """Torch ``(S, C, *spatial)`` (1-D or 2-D) -> ``(S * L, C * prod(kernel))`` patches, zero
    padded, rows ``(s, output position)`` row-major, columns in PyTorch's ``weight.reshape(M,
    -1)`` order (input channel, then kernel positions row-major), as
    ``torch.nn.functional.unfold``. Works on raw patterns (integer dtypes, copied exactly and
    returned in the same dtype; padding ``0`` is ``+0``) or on values (returned as float64)."""
    import torch
    from torch.nn import functional as F

    if len(kernel) == 1:
        x = x.unsqueeze(2)
        kernel, stride, padding, dilation = ((1, *kernel), (1, *stride), (0, *padding),
                                             (1, *dilation))
    values = x.dtype.is_floating_point
    # integers: unfold the 1-based positions (padding gives 0), then gather: exact for any value
    src = x.to(torch.float64) if values else torch.arange(
        1, x.numel() + 1, dtype=torch.float64).reshape(x.shape)
    cols = F.unfold(src, kernel_size=tuple(kernel), dilation=tuple(dilation),
                    padding=tuple(padding), stride=tuple(stride))      # (S, C*kk, L)
    s, kk, length = cols.shape
    cols = cols.transpose(1, 2).reshape(s * length, kk)
    if values:
        return cols
    flat = torch.cat([torch.zeros(1, dtype=x.dtype), x.reshape(-1)])
    return flat[cols.to(torch.int64)]


def im2col(x_bits, *, kernel, stride=1, padding=0):
    """``(S, C, H, W)`` raw patterns -> ``(cols (S*OH*OW, C*kh*kw) int64, (S, OH, OW))``.
    Padding positions hold ``0`` (the ``+0`` pattern of every format); the patches are those of
    :func:`im2col_tensor`."""
    x = np.asarray(x_bits)
    if x.ndim != 4:
        raise ValueError(f"X must have shape (S, C, H, W), not {x.shape}")
    if x.dtype.kind not in "iu":
        raise ValueError(f"X must hold raw integer bit patterns, not dtype {x.dtype}")
    s, c, h, w = x.shape
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    oh, ow = conv_geometry(h, w, kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw))
    if c == 0:                              # no channels: no terms (unfold refuses C = 0)
        return np.zeros((s * oh * ow, 0), dtype=np.int64), (s, oh, ow)
    import torch

    cols = im2col_tensor(torch.from_numpy(x.astype(np.int64)), (kh, kw), (sh, sw), (ph, pw),
                         (1, 1))
    return cols.numpy().reshape(s * oh * ow, c * kh * kw), (s, oh, ow)


def col2out(y, s: int, oh: int, ow: int):
    """GEMM output ``(S*OH*OW, M)`` -> ``(S, M, OH, OW)``."""
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[0] != s * oh * ow:
        raise ValueError(f"GEMM output has shape {y.shape}; expected ({s * oh * ow}, M)")
    return y.reshape(s, oh, ow, y.shape[1]).transpose(0, 3, 1, 2).copy()


def conv2d_golden(x_bits, codes, e0, *, in_fmt, wbits, kernel, stride=1, padding=0,
                  out_fmt=None, bias_bits=None, relu=False, config=None):
    """Bit-exact 2-D convolution (definition in the module docstring): ``x_bits``
    (S, C, H, W), ``codes`` (M, C*kh*kw) or (M, C, kh, kw). Returns (S, M, OH, OW) int64
    raw ``out_fmt`` patterns; arguments as :func:`sw.golden.gemm_golden`. Computed by
    :func:`sw.golden.conv_golden` (the same GEMM, a block of samples at a time)."""
    from .golden import conv_golden

    c = np.asarray(codes)
    x = np.asarray(x_bits)
    if x.ndim != 4:
        raise ValueError(f"X must have shape (S, C, H, W), not {x.shape}")
    if x.dtype.kind not in "iu":
        raise ValueError(f"X must hold raw integer bit patterns, not dtype {x.dtype}")
    kh, kw = _pair(kernel, "kernel")
    conv_geometry(x.shape[2], x.shape[3], kernel=(kh, kw), stride=stride, padding=padding)
    if c.ndim == 4:
        c = c.reshape(c.shape[0], -1)
    if c.ndim != 2 or c.shape[1] != x.shape[1] * kh * kw:
        raise ValueError(f"codes have shape {np.shape(codes)}; expected (M, "
                         f"{x.shape[1] * kh * kw}) for C={x.shape[1]} and kernel {(kh, kw)}")
    return conv_golden(x, c, e0, in_fmt=in_fmt, wbits=wbits, kernel=(kh, kw),
                       stride=_pair(stride, "stride"), padding=_pair(padding, "padding"),
                       out_fmt=out_fmt, bias_bits=bias_bits, relu=relu, config=config).numpy()
