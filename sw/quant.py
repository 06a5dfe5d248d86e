"""Weight quantizers of shift networks with straight-through estimators (STE).

Every quantizer is an ``nn.Module`` that owns the latent parameters of one weight tensor and
returns, from ``forward()``, exactly the quantized weight the layer multiplies by.

Methods (each cites the paper whose *idea* it implements; the code is written from the papers'
descriptions, not copied):

* :class:`DenseShiftQuantizer` -- DenseShift: X. Li, B. Liu, R. H. Yang, V. Courville, C. Xing,
  V. P. Nia, "DenseShift: Towards Accurate and Efficient Low-Bit Power-of-Two Quantization",
  ICCV 2023. Zero-free weights ``sign * 2**S`` from a sign latent and a binary cascade.
* :class:`S3Quantizer` -- S3: X. Li, B. Liu, Y. Yu, W. Liu, C. Xu, V. P. Nia, "S3:
  Sign-Sparse-Shift Reparametrization for Effective Training of Low-bit Shift Networks",
  NeurIPS 2021. ``sign * sparse * 2**S`` with a zero, plus a dense-weight regularizer.
* :class:`DeepShiftQQuantizer` and :class:`DeepShiftPSQuantizer` -- DeepShift: M. Elhoushi,
  Z. Chen, F. Shafiq, Y. H. Tian, J. Y. Li, "DeepShift: Towards Multiplication-Less Neural
  Networks", CVPR Workshops 2021. ``-Q`` rounds ``log2|w|`` of a full-precision latent; ``-PS``
  learns a ternary sign and a shift directly.
* :class:`TernaryQuantizer` -- ternary ``{0, ±1}`` with a threshold on a full-precision latent
  (TWN-style, ``delta = 0.7 * mean|w|``).
* :class:`FullPrecision` -- the float weight itself (baseline).

The DenseShift exponent cascade
-------------------------------
``n`` binary latents ``t_1..t_n`` give ``b_k = 1[t_k > 0]``, ``S_1 = b_1`` and
``S_k = (S_{k-1} + 1) * b_k``; ``S = S_n`` is the length of the run of ones that ends at ``b_n``,
so it takes every value ``0..n``. For ``B`` bits we use ``n = 2**(B-1) - 1`` latents, which is
3 at ``B = 3`` (the paper's cascade) and reaches every exponent code ``0..2**(B-1)-1`` for
``B = 2, 4, 5`` as well (1, 7, 15 latents). The sign latent is binarized to ``±1`` with
``0 -> +1``. Both binarizers use the identity straight-through estimator. The forward weight is
``sign * 2**(e0 + S)``; ``e0`` is an optional fixed integer layer offset (default 0; the layer
scale is absorbed by the BatchNorm that follows a shift layer). The backward pass is either
``"surrogate"`` (the released DenseShift code's choice: gradients of ``sign * sqrt(S + 1)``) or
``"exact"`` (gradients of ``sign * 2**S`` itself, through the STEs).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from contract.weights import check_wbits

__all__ = [
    "METHODS",
    "sign_ste",
    "step_ste",
    "round_ste",
    "cascade_exponent",
    "pow2_weight",
    "DenseShiftQuantizer",
    "S3Quantizer",
    "DeepShiftQQuantizer",
    "DeepShiftPSQuantizer",
    "TernaryQuantizer",
    "FullPrecision",
    "make_quantizer",
    "init_latent_",
]

LN2 = math.log(2.0)


# -- straight-through binarizers (exact forward values, identity backward) ---------------------
class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        return grad


class _StepSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """``+1`` where ``x >= 0`` else ``-1``; gradient passed straight through."""
    return _SignSTE.apply(x)


def step_ste(x: torch.Tensor) -> torch.Tensor:
    """``1[x > 0]`` as a float; gradient passed straight through."""
    return _StepSTE.apply(x)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` (half to even); gradient passed straight through."""
    return _RoundSTE.apply(x)


def cascade_exponent(latents: torch.Tensor) -> torch.Tensor:
    """The DenseShift cascade over the first axis of ``latents`` (shape ``(n, ...)``):
    ``S_1 = b_1``, ``S_k = (S_{k-1} + 1) * b_k`` with ``b_k = step_ste(t_k)``. Returns ``S_n``
    (values ``0..n``); an empty cascade (``n = 0``) gives zeros of shape ``latents.shape[1:]``."""
    if latents.shape[0] == 0:
        return latents.new_zeros(latents.shape[1:])
    s = step_ste(latents[0])
    for k in range(1, latents.shape[0]):
        s = (s + 1) * step_ste(latents[k])
    return s


class _Pow2(torch.autograd.Function):
    """``sign * 2**(e0 + S)`` forward; backward of ``sign * sqrt(S + 1)`` (surrogate) or of the
    forward function itself (exact), both with the layer offset folded in as ``2**e0``."""

    @staticmethod
    def forward(ctx, sign, s, e0, surrogate):
        ctx.save_for_backward(sign, s)
        ctx.e0, ctx.surrogate = e0, surrogate
        return sign * torch.exp2(s + e0)

    @staticmethod
    def backward(ctx, grad):
        sign, s = ctx.saved_tensors
        scale = 2.0 ** ctx.e0
        if ctx.surrogate:
            root = torch.sqrt(s + 1)
            return grad * root * scale, grad * sign * scale * 0.5 / root, None, None
        value = torch.exp2(s) * scale
        return grad * value, grad * sign * value * LN2, None, None


def pow2_weight(sign: torch.Tensor, s: torch.Tensor, *, e0: int = 0,
                surrogate: bool = False) -> torch.Tensor:
    """``sign * 2**(e0 + s)``; gradients of ``sign * sqrt(s + 1) * 2**e0`` when ``surrogate``,
    else the exact ones."""
    return _Pow2.apply(sign, s, int(e0), bool(surrogate))


def init_latent_(t: torch.Tensor, init: str, fan_in: int, generator=None) -> torch.Tensor:
    """Fill a latent: ``"lowvar"`` ~ N(0, 1e-3**2) (the DenseShift low-variance init, standard
    deviation 1e-3) or ``"he"`` ~ N(0, 2/fan_in) (He-normal)."""
    if init == "lowvar":
        std = 1e-3
    elif init == "he":
        std = math.sqrt(2.0 / max(1, fan_in))
    else:
        raise ValueError(f"init must be 'lowvar' or 'he', not {init!r}")
    with torch.no_grad():
        return t.normal_(0.0, std, generator=generator)


def _check_shape(shape):
    if (not isinstance(shape, (tuple, list, torch.Size)) or not shape
            or not all(isinstance(d, int) and d > 0 for d in shape)):
        raise ValueError(f"shape must be a non-empty tuple of positive ints, not {shape!r}")
    return tuple(shape)


def _check_e0(e0):
    if not isinstance(e0, int) or isinstance(e0, bool):
        raise TypeError(f"e0 must be an integer, not {e0!r}")
    return e0


class _Quantizer(nn.Module):
    """Base: ``shape`` of the weight, ``wbits``, ``fan_in``; ``forward()`` gives the weight."""

    method = "?"
    zero_free = False

    def __init__(self, shape, *, wbits: int = 3):
        super().__init__()
        self.shape = _check_shape(shape)
        self.wbits = check_wbits(wbits)
        self.fan_in = math.prod(self.shape[1:]) if len(self.shape) > 1 else 1

    def regularizer(self) -> torch.Tensor:
        """Extra loss term of the method (zero unless the method defines one)."""
        return torch.zeros(())

    def extra_repr(self) -> str:
        return f"method={self.method}, shape={self.shape}, wbits={self.wbits}"


class DenseShiftQuantizer(_Quantizer):
    """DenseShift (ICCV 2023) zero-free weight ``sign * 2**(e0 + S)``, ``S`` in
    ``0..2**(B-1)-1``.

    Parameters
    ----------
    shape : tuple of int
        Weight shape.
    wbits : int
        ``B`` (2..5): 1 sign bit and ``B-1`` exponent bits.
    surrogate : bool
        Backward through ``sign * sqrt(S + 1)`` (default, as the released code) instead of the
        exact gradient of ``sign * 2**S``.
    init : str
        ``"lowvar"`` (all latents ~ N(0, 1e-3^2), default) or ``"he"``.
    e0 : int
        Fixed power-of-two layer offset (default 0).

    Members
    -------
    sign_latent : Parameter, ``shape``
    cascade : Parameter, ``(2**(B-1) - 1, *shape)``
    """

    method = "denseshift"
    zero_free = True

    def __init__(self, shape, *, wbits: int = 3, surrogate: bool = True, init: str = "lowvar",
                 e0: int = 0, generator=None):
        super().__init__(shape, wbits=wbits)
        self.surrogate = bool(surrogate)
        self.init = init
        self.e0 = _check_e0(e0)
        n = (1 << (self.wbits - 1)) - 1
        self.sign_latent = nn.Parameter(torch.empty(self.shape))
        self.cascade = nn.Parameter(torch.empty((n,) + self.shape))
        init_latent_(self.sign_latent, init, self.fan_in, generator)
        init_latent_(self.cascade, init, self.fan_in, generator)

    @property
    def pmax(self) -> int:
        return self.cascade.shape[0]

    def exponent(self) -> torch.Tensor:
        """Exponent codes ``S`` (float tensor of integers ``0..pmax``)."""
        return cascade_exponent(self.cascade)

    def sign(self) -> torch.Tensor:
        return sign_ste(self.sign_latent)

    def forward(self) -> torch.Tensor:
        return pow2_weight(self.sign(), self.exponent(), e0=self.e0, surrogate=self.surrogate)

    @torch.no_grad()
    def set_from_weight(self, w: torch.Tensor, *, eps: float = 1e-3) -> None:
        """Set the latents so that the forward weight is ``sign(w) * 2**clamp(round(log2|w|) -
        e0, 0, pmax)``, latents at ``±eps`` (used to convert a trained float layer)."""
        w = w.detach().to(self.sign_latent.dtype).reshape(self.shape)
        self.sign_latent.copy_(torch.where(w >= 0, eps, -eps))
        mag = w.abs().clamp_min(torch.finfo(w.dtype).tiny)
        s = torch.clamp(torch.round(torch.log2(mag)) - self.e0, 0, self.pmax)
        n = self.pmax
        k = torch.arange(1, n + 1, dtype=w.dtype).reshape((n,) + (1,) * w.ndim)
        ones = k > (n - s)              # the last S latents are ones
        self.cascade.copy_(torch.where(ones, eps, -eps))

    def regularizer(self) -> torch.Tensor:
        """Exponent decay: the mean exponent code ``S`` (gradients through the cascade's STEs).
        Weighted by the training's ``reg`` it keeps a layer's codes from spreading: a layer
        followed by a BatchNorm is scale invariant, so nothing but the top code stops its
        largest exponents from climbing while the others stay near ``S = 0``. At B = 5 that
        leaves most weights ``2**-8`` or less of the largest, in effect pruned
        (``docs/training.md``, "B = 5")."""
        return self.exponent().mean()

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", surrogate={self.surrogate}, init={self.init}, "
                f"e0={self.e0}")


class S3Quantizer(_Quantizer):
    """S3 (NeurIPS 2021) sign-sparse-shift weight ``sign * 1[z > 0] * 2**(e0 + S)``.

    ``B`` bits hold zero and ``±2**S`` with ``S`` in ``0..2**(B-1)-2`` (at 3 bits:
    ``{0, ±1, ±2, ±4}``); ``S`` comes from the same binary cascade as DenseShift with
    ``2**(B-1) - 2`` latents (none at ``B = 2``, which gives the ternary ``{0, ±1}``). Exact
    gradients through identity STEs. :meth:`regularizer` is the dense-weight regularizer
    ``mean(relu(-z))``, which pushes the sparse latents towards "non-zero" (the paper maximises
    the number of non-zero weights); the training loop weighs it.
    """

    method = "s3"

    def __init__(self, shape, *, wbits: int = 3, init: str = "lowvar", e0: int = 0,
                 generator=None):
        super().__init__(shape, wbits=wbits)
        self.init = init
        self.e0 = _check_e0(e0)
        n = (1 << (self.wbits - 1)) - 2
        self.sign_latent = nn.Parameter(torch.empty(self.shape))
        self.sparse_latent = nn.Parameter(torch.empty(self.shape))
        # no cascade at B = 2 (an empty parameter would be "unused" under DDP)
        self.cascade = nn.Parameter(torch.empty((n,) + self.shape)) if n else None
        for p in (self.sign_latent, self.sparse_latent, self.cascade):
            if p is not None:
                init_latent_(p, init, self.fan_in, generator)

    def forward(self) -> torch.Tensor:
        sign = sign_ste(self.sign_latent) * step_ste(self.sparse_latent)
        s = (cascade_exponent(self.cascade) if self.cascade is not None
             else torch.zeros_like(self.sign_latent))
        return pow2_weight(sign, s, e0=self.e0, surrogate=False)

    def regularizer(self) -> torch.Tensor:
        return torch.relu(-self.sparse_latent).mean()


def _he_weight(shape, fan_in, generator=None):
    return torch.empty(shape).normal_(0.0, math.sqrt(2.0 / max(1, fan_in)), generator=generator)


class DeepShiftQQuantizer(_Quantizer):
    """DeepShift-Q (CVPR-W 2021): a full-precision latent ``w`` rounded to
    ``sign(w) * 2**round(log2|w|)`` (``sign(0) = +1``: zero-free), exponents clamped to the
    ``2**(B-1)`` values ``[e_hi - 2**(B-1) + 1, e_hi]`` with ``e_hi = round(log2 max|w|)``
    recomputed each step. Identity STE. The offset moves while training; the export takes the
    smallest exponent of the final weights as ``e0``."""

    method = "deepshift_q"
    zero_free = True

    def __init__(self, shape, *, wbits: int = 3, generator=None):
        super().__init__(shape, wbits=wbits)
        self.weight = nn.Parameter(_he_weight(self.shape, self.fan_in, generator))

    def forward(self) -> torch.Tensor:
        return _DeepShiftQ.apply(self.weight, (1 << (self.wbits - 1)) - 1)


class _DeepShiftQ(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, span):
        mag = w.abs().clamp_min(torch.finfo(w.dtype).tiny)
        hi = torch.round(torch.log2(mag.max()))
        e = torch.clamp(torch.round(torch.log2(mag)), hi - span, hi)
        return torch.where(w >= 0, 1.0, -1.0).to(w.dtype) * torch.exp2(e)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class DeepShiftPSQuantizer(_Quantizer):
    """DeepShift-PS (CVPR-W 2021): learned ternary sign and shift. ``sign =
    round(clamp(s, -1, 1))`` in ``{-1, 0, 1}``, ``p = round(clamp(q, -(L-1), 0))`` with
    ``L = 2**(B-1) - 1`` exponents, weight ``sign * 2**(e0 + p)``. With the zero this is
    ``2**B - 1`` values, i.e. it fits ``B`` bits like S3. Identity STE on the roundings, exact
    gradient of ``2**p``. Initialised as the paper does, from a He-normal weight: ``s = sign(w)``
    (so ``±1``), ``q = log2(|w| / max|w|)`` rounded, shifted so the largest is 0."""

    method = "deepshift_ps"

    def __init__(self, shape, *, wbits: int = 3, e0: int = 0, generator=None):
        super().__init__(shape, wbits=wbits)
        self.e0 = _check_e0(e0)
        self.span = (1 << (self.wbits - 1)) - 2
        w = _he_weight(self.shape, self.fan_in, generator)
        mag = w.abs().clamp_min(1e-30)
        q = torch.round(torch.log2(mag / mag.max()))
        self.sign_latent = nn.Parameter(torch.where(w >= 0, 1.0, -1.0))
        self.shift_latent = nn.Parameter(q.clamp(-self.span, 0))

    def forward(self) -> torch.Tensor:
        sign = round_ste(torch.clamp(self.sign_latent, -1, 1))
        p = round_ste(torch.clamp(self.shift_latent, -self.span, 0))
        return sign * torch.exp2(p + self.e0)


class TernaryQuantizer(_Quantizer):
    """Ternary ``{0, ±1}``: ``sign(w) * 1[|w| > 0.7 * mean|w|]`` of a full-precision He-normal
    latent (TWN-style threshold, scale absorbed by the following BatchNorm); identity STE.
    ``wbits`` must be 2."""

    method = "ternary"

    def __init__(self, shape, *, wbits: int = 2, generator=None):
        if wbits != 2:
            raise ValueError(f"ternary weights take wbits=2, not {wbits!r}")
        super().__init__(shape, wbits=wbits)
        self.weight = nn.Parameter(_he_weight(self.shape, self.fan_in, generator))

    def forward(self) -> torch.Tensor:
        return _Ternary.apply(self.weight)


class _Ternary(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w):
        delta = 0.7 * w.abs().mean()
        return torch.sign(w) * (w.abs() > delta).to(w.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad


class FullPrecision(_Quantizer):
    """The float weight itself (He-normal init); ``wbits`` is recorded only."""

    method = "fp"

    def __init__(self, shape, *, wbits: int = 3, generator=None):
        super().__init__(shape, wbits=wbits)
        self.weight = nn.Parameter(_he_weight(self.shape, self.fan_in, generator))

    def forward(self) -> torch.Tensor:
        return self.weight


METHODS = {
    "denseshift": DenseShiftQuantizer,
    "s3": S3Quantizer,
    "deepshift_q": DeepShiftQQuantizer,
    "deepshift_ps": DeepShiftPSQuantizer,
    "ternary": TernaryQuantizer,
    "fp": FullPrecision,
}


def make_quantizer(method: str, shape, *, wbits: int = 3, **kwargs) -> _Quantizer:
    """Build the quantizer of ``method`` (a key of :data:`METHODS`) for a weight ``shape``."""
    cls = METHODS.get(method)
    if cls is None:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return cls(shape, wbits=wbits, **kwargs)
