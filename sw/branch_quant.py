"""Quantizers onto the multi-branch odd-integer grids (``contract.branches``), with
straight-through estimators, for training.

A ``k``-bit grid holds the odd integers ``q`` in ``[-(2**k - 1), 2**k - 1]``: every value is a
sum of ``k`` branches ``±2**i``, so a layer whose weights and inputs sit on such grids runs as
``k_w * k_a`` xnor-popcounts (``docs/branches.md``).

* :class:`OddWeightQuantizer` -- ``w_hat = s * q(w / s)`` with a learned scale ``s`` per output
  channel (LSQ: S. K. Esser et al., "Learned Step Size Quantization", ICLR 2020), initialised
  from the weight statistics (the scale of least squared error over a grid of candidates).
* :class:`OddActivationQuantizer` -- ``x_hat = s * q((x - beta) / s) + beta`` with a learned
  scale ``s`` and offset ``beta`` per tensor (LSQ+: Y. Bhalgat et al., CVPR-W 2020), set from the
  first training batch's statistics. The offset lets a 1-bit grid threshold ReLU outputs
  (``{beta - s, beta + s}``); in a layer it adds ``beta * sum(w_hat)`` per output channel, a
  constant the following BatchNorm absorbs.

``q`` rounds to the nearest odd integer (``2 * floor(v / 2) + 1``) after clipping to the grid;
its gradient is the identity inside the grid and zero outside (the straight-through estimator),
and the scales' gradients are LSQ's, scaled by ``1 / sqrt(numel * (2**k - 1))``. Written from the
papers' descriptions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from contract.branches import check_kbits

__all__ = ["odd_round_ste", "odd_quantize", "OddWeightQuantizer", "OddActivationQuantizer",
           "best_scale"]

#: Candidate scales of the statistics-based initialisation, as fractions of ``max|x| / Q``.
_CANDIDATES = torch.linspace(0.02, 1.0, 50)


class _OddRound(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v):
        return 2 * torch.floor(v / 2) + 1

    @staticmethod
    def backward(ctx, grad):
        return grad


def odd_round_ste(v: torch.Tensor) -> torch.Tensor:
    """The nearest odd integer (``2 * floor(v / 2) + 1``), gradient passed straight through."""
    return _OddRound.apply(v)


class _GradScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.factor, None


def odd_quantize(x: torch.Tensor, scale: torch.Tensor, kbits: int) -> torch.Tensor:
    """``q`` (float tensor of odd integers in ``[-(2**k - 1), 2**k - 1]``) of ``x / scale``."""
    top = float((1 << kbits) - 1)
    return odd_round_ste(torch.clamp(x / scale, -top, top))


@torch.no_grad()
def best_scale(x: torch.Tensor, kbits: int, dim=None) -> torch.Tensor:
    """The scale ``s`` (per slice along ``dim`` 0 when given, else one) whose odd grid gives the
    least squared error ``|s * q(x / s) - x|**2``, among ``_CANDIDATES * max|x| / Q``."""
    top = (1 << kbits) - 1
    flat = x.reshape(x.shape[0], -1) if dim == 0 else x.reshape(1, -1)
    peak = flat.abs().amax(dim=1, keepdim=True).clamp_min(1e-8) / top
    cands = _CANDIDATES.to(x.dtype).reshape(-1, 1, 1) * peak[None]          # (C, rows, 1)
    q = 2 * torch.floor(torch.clamp(flat[None] / cands, -top, top) / 2) + 1
    err = ((q * cands - flat[None]) ** 2).sum(dim=2)                        # (C, rows)
    best = cands[err.argmin(dim=0), torch.arange(flat.shape[0]), 0]
    return best if dim == 0 else best[0]


class OddWeightQuantizer(nn.Module):
    """Weight ``w`` (latent, float) -> ``scale * q(w / scale)``, one learned scale per output
    channel (axis 0).

    Members
    -------
    scale : Parameter, ``(out_channels,)``
    """

    def __init__(self, shape, *, kbits: int):
        super().__init__()
        self.kbits = check_kbits(kbits, "wbits")
        self.shape = tuple(shape)
        self.scale = nn.Parameter(torch.ones(self.shape[0]))

    @torch.no_grad()
    def init_from(self, w: torch.Tensor) -> None:
        """Set the scales to the least-squares ones of ``w`` (:func:`best_scale`)."""
        self.scale.copy_(best_scale(w.detach(), self.kbits, dim=0))

    def codes(self, w: torch.Tensor) -> torch.Tensor:
        """The odd integers ``q`` of ``w`` (float tensor, no gradient)."""
        with torch.no_grad():
            return odd_quantize(w, self._scale(self.scale), self.kbits)

    def _scale(self, s):
        return s.reshape((-1,) + (1,) * (len(self.shape) - 1))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        top = (1 << self.kbits) - 1
        g = 1.0 / math.sqrt(w[0].numel() * top)
        s = self._scale(_GradScale.apply(self.scale, g))
        return odd_quantize(w, s, self.kbits) * s

    def extra_repr(self) -> str:
        return f"wbits={self.kbits}, per output channel"


class OddActivationQuantizer(nn.Module):
    """Activations -> ``scale * q((x - offset) / scale) + offset`` with a learned scale and
    offset per tensor, initialised from the first batch seen in training mode (the offset at the
    middle of the batch's range, the scale by :func:`best_scale`).

    Members
    -------
    scale, offset : Parameter, scalar
    initialised : buffer (bool)
    """

    def __init__(self, *, kbits: int):
        super().__init__()
        self.kbits = check_kbits(kbits, "abits")
        self.scale = nn.Parameter(torch.ones(()))
        self.offset = nn.Parameter(torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        lo, hi = x.min(), x.max()
        self.offset.copy_((lo + hi) / 2)
        self.scale.copy_(best_scale(x - self.offset, self.kbits))
        self.initialised.fill_(True)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The odd integers ``q`` of ``x`` (float tensor, no gradient)."""
        with torch.no_grad():
            return odd_quantize(x - self.offset, self.scale, self.kbits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not bool(self.initialised):
            self.init_from(x)
        top = (1 << self.kbits) - 1
        g = 1.0 / math.sqrt(x[0].numel() * top)
        s = _GradScale.apply(self.scale, g)
        b = _GradScale.apply(self.offset, g)
        return odd_quantize(x - b, s, self.kbits) * s + b

    def extra_repr(self) -> str:
        return f"abits={self.kbits}, per tensor, with offset"
