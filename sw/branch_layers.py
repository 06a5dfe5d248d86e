"""Multi-branch layers: ``nn.Conv1d``/``nn.Conv2d``/``nn.Linear`` whose weights and inputs are
quantized onto odd-integer grids of ``wbits`` and ``abits`` branches (:mod:`sw.branch_quant`).

A layer keeps its latent float ``weight``; :meth:`quantized_weight` is ``s_w[m] * q_w`` and the
input is quantized to ``s_a * q_a + beta`` before the convolution, so the forward pass is the
integer ``q_w . q_a`` products (``xnor-popcounts`` in hardware) times the scales, plus the
offset's per-channel constant. :func:`quantize_model` (``sw.layers``) with
``method="branches"`` converts existing layers into these.
"""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from .branch_quant import OddActivationQuantizer, OddWeightQuantizer

__all__ = ["BranchConv1d", "BranchConv2d", "BranchLinear", "is_branch_layer", "branch_layers",
           "BRANCH_TYPES"]


class _BranchMixin:
    """Adds ``wquant`` and ``aquant``; constructor: the ``nn`` layer's arguments plus
    ``wbits=`` and ``abits=`` (1..8 each)."""

    def __init__(self, *args, wbits: int = 2, abits: int = 2, **kwargs):
        super().__init__(*args, **kwargs)
        self.method = "branches"
        self.wbits, self.abits = wbits, abits
        self.wquant = OddWeightQuantizer(tuple(self.weight.shape), kbits=wbits)
        self.aquant = OddActivationQuantizer(kbits=abits)
        self.wquant.init_from(self.weight)

    def quantized_weight(self):
        """``s_w[m] * q_w``: the weight the forward pass multiplies by."""
        return self.wquant(self.weight)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", wbits={self.wbits}, abits={self.abits}"


class BranchConv2d(_BranchMixin, nn.Conv2d):
    """``nn.Conv2d`` on odd-integer grids (``wbits``, ``abits`` branches)."""

    def forward(self, x):
        return self._conv_forward(self.aquant(x), self.quantized_weight(), self.bias)


class BranchConv1d(_BranchMixin, nn.Conv1d):
    """``nn.Conv1d`` counterpart of :class:`BranchConv2d`."""

    def forward(self, x):
        return self._conv_forward(self.aquant(x), self.quantized_weight(), self.bias)


class BranchLinear(_BranchMixin, nn.Linear):
    """``nn.Linear`` counterpart of :class:`BranchConv2d`."""

    def forward(self, x):
        return F.linear(self.aquant(x), self.quantized_weight(), self.bias)


BRANCH_TYPES = {nn.Conv2d: BranchConv2d, nn.Conv1d: BranchConv1d, nn.Linear: BranchLinear}


def is_branch_layer(module) -> bool:
    return isinstance(module, _BranchMixin)


def branch_layers(model: nn.Module):
    """``(name, layer)`` of every branch layer of ``model``, in module order."""
    return [(n, m) for n, m in model.named_modules() if is_branch_layer(m)]
