"""Shift layers: drop-in replacements of ``nn.Conv1d``/``nn.Conv2d``/``nn.Linear``.

A shift layer takes the ``nn`` layer's constructor arguments plus ``wbits=`` (default 3) and the
quantizer options; it owns a quantizer (see :mod:`sw.quant`) instead of a ``weight`` parameter,
and :meth:`quantized_weight` returns exactly the tensor its forward pass multiplies by.

* :class:`DenseShiftConv2d`, :class:`DenseShiftConv1d`, :class:`DenseShiftLinear` -- DenseShift
  (zero-free ``±2**(e0+S)``, ICCV 2023).
* :class:`ShiftConv2d`, :class:`ShiftConv1d`, :class:`ShiftLinear` -- any ``method`` of
  :data:`sw.quant.METHODS` (the baselines: ``fp``, ``s3``, ``deepshift_q``, ``deepshift_ps``,
  ``ternary``).
* :func:`quantize_model` converts chosen layers of an existing model in place (also into the
  multi-branch layers of :mod:`sw.branch_layers`, ``method="branches"``).
* :func:`snapshot_weights` / :func:`weight_changes` -- the weight-freezing metric: the fraction of
  shift weights whose sign / value differ from a snapshot (taken at init).
"""

from __future__ import annotations

import fnmatch

import torch
from torch import nn
from torch.nn import functional as F

from .quant import METHODS, make_quantizer

__all__ = [
    "ShiftConv1d",
    "ShiftConv2d",
    "ShiftLinear",
    "DenseShiftConv1d",
    "DenseShiftConv2d",
    "DenseShiftLinear",
    "is_shift_layer",
    "shift_layers",
    "quantize_model",
    "regularization",
    "snapshot_weights",
    "weight_changes",
]


class _ShiftMixin:
    """Replaces the ``weight`` parameter of an ``nn`` layer by a quantizer. Constructor: the
    ``nn`` layer's arguments plus ``method=``, ``wbits=`` and the quantizer options."""

    def __init__(self, *args, method: str = "denseshift", wbits: int = 3, **kwargs):
        layer_kw, qkw = _split_kwargs(kwargs)
        super().__init__(*args, **layer_kw)
        self._setup_shift(method, wbits, qkw)

    def _setup_shift(self, method, wbits, qkwargs):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
        shape = tuple(self.weight.shape)
        device, dtype = self.weight.device, self.weight.dtype
        del self.weight
        self.method = method
        self.wbits = wbits
        self.quantizer = make_quantizer(method, shape, wbits=wbits, **qkwargs).to(
            device=device, dtype=dtype)

    def quantized_weight(self) -> torch.Tensor:
        """The weight the forward pass multiplies by (DenseShift: every entry ``±2**(e0+S)``)."""
        return self.quantizer()

    @property
    def e0(self) -> int:
        return getattr(self.quantizer, "e0", 0)

    @property
    def zero_free(self) -> bool:
        return self.quantizer.zero_free


def _split_kwargs(kwargs):
    qkeys = {"surrogate", "init", "e0", "generator"}
    return ({k: v for k, v in kwargs.items() if k not in qkeys},
            {k: v for k, v in kwargs.items() if k in qkeys})


class ShiftConv2d(_ShiftMixin, nn.Conv2d):
    """``nn.Conv2d`` whose weight comes from the quantizer of ``method`` with ``wbits`` bits.
    Quantizer options (``surrogate``, ``init``, ``e0``, ``generator``) are passed through."""

    def forward(self, x):
        return self._conv_forward(x, self.quantized_weight(), self.bias)


class ShiftConv1d(_ShiftMixin, nn.Conv1d):
    """``nn.Conv1d`` counterpart of :class:`ShiftConv2d`."""

    def forward(self, x):
        return self._conv_forward(x, self.quantized_weight(), self.bias)


class ShiftLinear(_ShiftMixin, nn.Linear):
    """``nn.Linear`` counterpart of :class:`ShiftConv2d`."""

    def forward(self, x):
        return F.linear(x, self.quantized_weight(), self.bias)


def _dense_init(cls, kwargs):
    if "method" in kwargs:
        raise TypeError(f"{cls.__name__} is always DenseShift; use Shift{cls.__name__[10:]} "
                        f"for method={kwargs['method']!r}")
    return kwargs


class DenseShiftConv2d(ShiftConv2d):
    """``nn.Conv2d`` with DenseShift weights ``±2**(e0+S)``: ``DenseShiftConv2d(in, out, k,
    stride=..., padding=..., bias=..., wbits=3, surrogate=True, init="lowvar", e0=0)``."""

    def __init__(self, *args, wbits: int = 3, **kwargs):
        super().__init__(*args, method="denseshift", wbits=wbits,
                         **_dense_init(DenseShiftConv2d, kwargs))


class DenseShiftConv1d(ShiftConv1d):
    """``nn.Conv1d`` with DenseShift weights (see :class:`DenseShiftConv2d`)."""

    def __init__(self, *args, wbits: int = 3, **kwargs):
        super().__init__(*args, method="denseshift", wbits=wbits,
                         **_dense_init(DenseShiftConv1d, kwargs))


class DenseShiftLinear(ShiftLinear):
    """``nn.Linear`` with DenseShift weights (see :class:`DenseShiftConv2d`)."""

    def __init__(self, *args, wbits: int = 3, **kwargs):
        super().__init__(*args, method="denseshift", wbits=wbits,
                         **_dense_init(DenseShiftLinear, kwargs))


def is_shift_layer(module) -> bool:
    return isinstance(module, _ShiftMixin)


def shift_layers(model: nn.Module):
    """``(name, layer)`` of every shift layer of ``model``, in module order."""
    return [(n, m) for n, m in model.named_modules() if is_shift_layer(m)]


def regularization(model: nn.Module) -> torch.Tensor:
    """Sum of the quantizers' regularizers (S3's dense-weight term, DenseShift's exponent
    decay; zero for the others)."""
    terms = [m.quantizer.regularizer() for _, m in shift_layers(model)]
    return torch.stack(terms).sum() if terms else torch.zeros(())


_CONVERT = {nn.Conv2d: ShiftConv2d, nn.Conv1d: ShiftConv1d, nn.Linear: ShiftLinear}
_DENSE = {nn.Conv2d: DenseShiftConv2d, nn.Conv1d: DenseShiftConv1d, nn.Linear: DenseShiftLinear}


def _matches(name, patterns):
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def quantize_model(model: nn.Module, *, wbits: int = 3, method: str = "denseshift",
                   include=None, exclude=(), from_weights: bool = False, abits=None,
                   **qkwargs) -> nn.Module:
    """Replace ``nn.Conv1d``/``nn.Conv2d``/``nn.Linear`` layers of ``model`` in place by shift
    layers, ``nn.LSTM``/``nn.GRU`` by :class:`sw.recurrent.ShiftLSTM`/``ShiftGRU``; returns
    ``model``. ``method="branches"`` makes multi-branch layers instead
    (:mod:`sw.branch_layers`: ``wbits`` weight and ``abits`` activation branches, 1..8 each; the
    float weights become their latent weights).

    Parameters
    ----------
    include : iterable of str, optional
        Module names (``fnmatch`` patterns) to convert; default every supported layer.
    exclude : iterable of str
        Module names (patterns) to keep as they are (e.g. the first and last layer).
    from_weights : bool
        DenseShift only: set the latents from the existing float weights
        (:meth:`sw.quant.DenseShiftQuantizer.set_from_weight`) instead of the ``init`` scheme.
    qkwargs
        Quantizer options (``surrogate``, ``init``, ``e0``).

    Biases are copied. Raises ``ValueError`` when ``include`` names no convertible layer.
    """
    branches = method == "branches"
    if method not in METHODS and not branches:
        raise ValueError(f"unknown method {method!r}; expected one of "
                         f"{', '.join([*METHODS, 'branches'])}")
    if branches and (abits is None or qkwargs):
        raise TypeError(f"method='branches' needs abits= and takes no quantizer options, not "
                        f"abits={abits!r}, {sorted(qkwargs)}")
    if not branches and abits is not None:
        raise TypeError(f"abits= is an option of method='branches', not of {method!r}")
    if isinstance(include, str) or isinstance(exclude, str):
        raise TypeError("include/exclude must be iterables of names, not a single string")
    recurrent = (nn.LSTM, nn.GRU)          # -> sw.recurrent.ShiftLSTM / ShiftGRU
    targets = []
    for name, module in model.named_modules():
        if (type(module) not in _CONVERT and type(module) not in recurrent) or not name:
            continue
        if include is not None and not _matches(name, include):
            continue
        if _matches(name, exclude):
            continue
        targets.append((name, module))
    if include is not None and not targets:
        raise ValueError(f"include={list(include)!r} matches no Conv1d/Conv2d/Linear layer "
                         f"or LSTM/GRU")
    for name, old in targets:
        if isinstance(old, recurrent):
            if branches:
                raise ValueError(f"layer {name}: method='branches' has no recurrent layers")
            from .recurrent import from_torch  # sw.recurrent imports this module

            new = from_torch(old, method=method, wbits=wbits, from_weights=from_weights,
                             **qkwargs)
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
            continue
        if isinstance(old, nn.Linear):
            args = (old.in_features, old.out_features)
            kw = {"bias": old.bias is not None}
        else:
            args = (old.in_channels, old.out_channels, old.kernel_size)
            kw = {"stride": old.stride, "padding": old.padding, "dilation": old.dilation,
                  "groups": old.groups, "bias": old.bias is not None,
                  "padding_mode": old.padding_mode}
        if branches:
            from .branch_layers import BRANCH_TYPES

            new = BRANCH_TYPES[type(old)](*args, wbits=wbits, abits=abits, **kw)
            with torch.no_grad():
                new.weight.copy_(old.weight)
            new.wquant.init_from(new.weight)
        elif method == "denseshift":
            new = _DENSE[type(old)](*args, wbits=wbits, **kw, **qkwargs)
            if from_weights:
                new.quantizer.set_from_weight(old.weight)
        else:
            new = _CONVERT[type(old)](*args, method=method, wbits=wbits, **kw, **qkwargs)
        if old.bias is not None:
            with torch.no_grad():
                new.bias.copy_(old.bias)
        new.to(old.weight.device)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
    return model


# -- weight-freezing metric ---------------------------------------------------------------------
@torch.no_grad()
def snapshot_weights(model: nn.Module) -> dict:
    """``{layer name: quantized weight}`` of every shift layer (detached copies)."""
    return {n: m.quantized_weight().detach().clone() for n, m in shift_layers(model)}


@torch.no_grad()
def weight_changes(model: nn.Module, snapshot: dict) -> dict:
    """Fractions of shift weights (over all layers of ``snapshot``) whose sign (``torch.sign``,
    so 0 counts as its own sign) or value differ now from ``snapshot``:
    ``{"sign": f, "value": f, "count": n}``."""
    layers = dict(shift_layers(model))
    sign = value = count = 0
    for name, ref in snapshot.items():
        if name not in layers:
            raise KeyError(f"snapshot layer {name!r} is not a shift layer of the model")
        now = layers[name].quantized_weight()
        sign += int((torch.sign(now) != torch.sign(ref)).sum())
        value += int((now != ref).sum())
        count += ref.numel()
    if count == 0:
        return {"sign": 0.0, "value": 0.0, "count": 0}
    return {"sign": sign / count, "value": value / count, "count": count}
