"""Recurrent shift layers: drop-in replacements of ``nn.LSTM`` and ``nn.GRU`` whose input and
recurrent weight matrices are shift weights (DenseShift by default), dense or MPS tensor trains.

* :class:`ShiftLSTM` / :class:`ShiftGRU` -- any ``method`` of :data:`sw.quant.METHODS` (``fp``
  is the float layer); :class:`DenseShiftLSTM` / :class:`DenseShiftGRU` -- DenseShift.
  Constructor: ``nn.LSTM``'s ``input_size, hidden_size, num_layers=1, bias=True,
  batch_first=False`` (no ``dropout``, ``bidirectional`` or ``proj_size``) plus ``wbits``,
  ``mps`` and the quantizer options. ``forward`` has ``nn.LSTM``'s / ``nn.GRU``'s signature and
  results.
* Per layer, ``ih`` maps the input (``(G*H, D)``, ``G`` = 4 gates for the LSTM in PyTorch's
  order ``i, f, g, o``; 3 for the GRU, ``r, z, n``) and ``hh`` the previous hidden state
  (``(G*H, H)``); both are bias-free maps (a :class:`sw.layers.ShiftLinear`, or a
  :class:`sw.mps.MPSLinear` when ``mps={"ih": {...}, "hh": {...}}`` gives the factors and
  ranks; ``"kind": "mpo"`` in an entry makes it a :class:`sw.mps.MPOLinear`). The LSTM adds
  one bias ``b = b_ih + b_hh``; the GRU keeps ``b_ih`` and ``b_hh``
  (``b_hn`` sits inside ``r * (...)``). The gates' nonlinearities are in floating point:

  LSTM: ``a = W_ih x_t + W_hh h_{t-1} + b``; ``i, f, o = sigmoid``, ``g = tanh``;
  ``c_t = f * c_{t-1} + i * g``; ``h_t = o * tanh(c_t)``.
  GRU: ``r, z = sigmoid(W_ih x + b_ih + W_hh h + b_hh)`` (their rows), ``n = tanh(W_in x +
  b_in + r * (W_hn h + b_hn))``, ``h_t = (1 - z) * n + z * h_{t-1}``.

* Weights start as in :mod:`sw.mps`: float normal with standard deviation ``1/sqrt(K)``, shift
  codes nearest to such a float matrix with ``e0`` putting its largest value on the top code (a
  recurrent layer has no BatchNorm to absorb a scale). :func:`from_torch` converts a trained
  ``nn.LSTM`` / ``nn.GRU`` (used by :func:`sw.layers.quantize_model`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import ShiftLinear
from .mps import MPOLinear, MPSLinear, _init_core

__all__ = ["ShiftLSTM", "ShiftGRU", "DenseShiftLSTM", "DenseShiftGRU", "from_torch",
           "is_recurrent_shift", "map_matrix"]


def map_matrix(m: nn.Module) -> torch.Tensor:
    """The ``(out, in)`` matrix a gate map multiplies by."""
    return m.matrix() if isinstance(m, (MPSLinear, MPOLinear)) else m.quantized_weight()


class _Cell(nn.Module):
    def __init__(self, d, h, gates, *, method, wbits, mps, bias, qkwargs):
        super().__init__()
        self.ih = self._map(d, gates * h, (mps or {}).get("ih"), method, wbits, qkwargs)
        self.hh = self._map(h, gates * h, (mps or {}).get("hh"), method, wbits, qkwargs)
        bound = 1.0 / math.sqrt(h)
        n_bias = 1 if gates == 4 else 2
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.empty(gates * h).uniform_(-bound, bound))
             for _ in range(n_bias if bias else 0)])

    @staticmethod
    def _map(k, m, spec, method, wbits, qkwargs):
        if spec is not None:
            if not isinstance(spec, dict):
                raise TypeError(f"mps entries must be dicts of MPSLinear arguments, not {spec!r}")
            spec = dict(spec)
            cls = MPOLinear if spec.pop("kind", "mps") == "mpo" else MPSLinear
            return cls(k, m, bias=False, method=method, wbits=wbits, **spec, **qkwargs)
        lin = ShiftLinear(k, m, bias=False, method=method, wbits=wbits, **qkwargs)
        _init_core(lin.quantizer, 1.0 / math.sqrt(k))
        return lin


class _Recurrent(nn.Module):
    gates = 0
    kind = "?"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, *, method: str = "denseshift",
                 wbits: int = 3, mps: dict | None = None, **qkwargs):
        super().__init__()
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("num_layers", num_layers)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        for key in ("dropout", "bidirectional", "proj_size"):
            if qkwargs.get(key):
                raise ValueError(f"{type(self).__name__} does not support {key}="
                                 f"{qkwargs[key]!r}")
            qkwargs.pop(key, None)
        if mps is not None and (not isinstance(mps, dict) or set(mps) - {"ih", "hh"}):
            raise ValueError(f"mps must be a dict with keys 'ih' and/or 'hh', not {mps!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bool(bias), bool(batch_first)
        self.method, self.wbits, self.mps = method, wbits, mps
        self.cells = nn.ModuleList(
            _Cell(input_size if i == 0 else hidden_size, hidden_size, self.gates,
                  method=method, wbits=wbits, mps=mps, bias=bias, qkwargs=qkwargs)
            for i in range(num_layers))

    def gate_maps(self):
        """``[(layer, "ih" | "hh", map module)]``."""
        return [(i, w, getattr(c, w)) for i, c in enumerate(self.cells) for w in ("ih", "hh")]

    @property
    def num_parameters(self) -> int:
        """Weights of the gate maps (biases excluded)."""
        return sum(m.num_parameters if isinstance(m, (MPSLinear, MPOLinear))
                   else math.prod(m.quantizer.shape)
                   for _, _, m in self.gate_maps())

    @property
    def dense_parameters(self) -> int:
        """Weights of the same layer with dense matrices."""
        g, h = self.gates, self.hidden_size
        return sum(g * h * (self.input_size if i == 0 else h) + g * h * h
                   for i in range(self.num_layers))

    def _gate_inputs(self, cell, x):
        """The input projections of the whole sequence (bias included) and the recurrent
        matrix of one layer's ``cell``."""
        gx = x @ map_matrix(cell.ih).t()
        if self.bias:
            gx = gx + cell.biases[0]
        return gx, map_matrix(cell.hh)

    def _layer(self, cell, x, state):
        raise NotImplementedError

    def forward(self, x, hx=None):
        if x.dim() not in (2, 3):
            raise ValueError(f"input must be (T, D), (T, N, D) or (N, T, D), not {tuple(x.shape)}")
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1 if not self.batch_first else 0)
        if self.batch_first:
            x = x.transpose(0, 1)                          # (T, N, D)
        finals = []
        for i, cell in enumerate(self.cells):
            state = None if hx is None else self._state_of(hx, i, unbatched)
            x, final = self._layer(cell, x, state)
            finals.append(final)
        out = x.transpose(0, 1) if self.batch_first else x
        if unbatched:
            out = out.squeeze(1 if not self.batch_first else 0)
        return out, self._pack(finals, unbatched)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"batch_first={self.batch_first}, method={self.method}, wbits={self.wbits}, "
                f"mps={self.mps}")


class ShiftLSTM(_Recurrent):
    """``nn.LSTM`` with shift-weight gate matrices (see the module documentation)."""

    gates = 4
    kind = "lstm"

    def _state_of(self, hx, i, unbatched):
        h, c = hx
        if unbatched:
            h, c = h.unsqueeze(1), c.unsqueeze(1)
        return h[i], c[i]

    def _pack(self, finals, unbatched):
        h = torch.stack([f[0] for f in finals])
        c = torch.stack([f[1] for f in finals])
        if unbatched:
            h, c = h.squeeze(1), c.squeeze(1)
        return h, c

    def _layer(self, cell, x, state):
        t_len, n, _ = x.shape
        hsz = self.hidden_size
        gx, w_hh = self._gate_inputs(cell, x)
        if state is None:
            h = x.new_zeros(n, hsz)
            c = x.new_zeros(n, hsz)
        else:
            h, c = state
        outs = []
        for t in range(t_len):
            a = gx[t] + h @ w_hh.t()
            i, f, g, o = a.split(hsz, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs), (h, c)


class ShiftGRU(_Recurrent):
    """``nn.GRU`` with shift-weight gate matrices (see the module documentation)."""

    gates = 3
    kind = "gru"

    def _state_of(self, hx, i, unbatched):
        return (hx.unsqueeze(1) if unbatched else hx)[i]

    def _pack(self, finals, unbatched):
        h = torch.stack(finals)
        return h.squeeze(1) if unbatched else h

    def _layer(self, cell, x, state):
        t_len, n, _ = x.shape
        hsz = self.hidden_size
        gx, w_hh = self._gate_inputs(cell, x)
        h = x.new_zeros(n, hsz) if state is None else state
        outs = []
        for t in range(t_len):
            gh = h @ w_hh.t()
            if self.bias:
                gh = gh + cell.biases[1]
            xr, xz, xn = gx[t].split(hsz, dim=1)
            hr, hz, hn = gh.split(hsz, dim=1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            cand = torch.tanh(xn + r * hn)
            h = (1 - z) * cand + z * h
            outs.append(h)
        return torch.stack(outs), h


def _dense(cls_name, base):
    def __init__(self, *args, wbits: int = 3, **kwargs):
        if "method" in kwargs:
            raise TypeError(f"{cls_name} is always DenseShift; use {base.__name__} for "
                            f"method={kwargs['method']!r}")
        base.__init__(self, *args, method="denseshift", wbits=wbits, **kwargs)

    return type(cls_name, (base,), {"__init__": __init__, "__doc__":
                                    f"{base.__name__} with DenseShift weights ``±2**(e0+S)``."})


DenseShiftLSTM = _dense("DenseShiftLSTM", ShiftLSTM)
DenseShiftGRU = _dense("DenseShiftGRU", ShiftGRU)


def is_recurrent_shift(module) -> bool:
    return isinstance(module, _Recurrent)


@torch.no_grad()
def from_torch(old: nn.Module, *, method: str = "denseshift", wbits: int = 3,
               from_weights: bool = False, **qkwargs) -> _Recurrent:
    """A :class:`ShiftLSTM` / :class:`ShiftGRU` with ``old``'s sizes (``nn.LSTM`` or
    ``nn.GRU``) and biases; with ``from_weights`` the gate matrices start from ``old``'s
    (DenseShift: ``e0`` per matrix puts its largest weight on the top code, then the nearest
    codes; ``fp``: copied)."""
    if not isinstance(old, (nn.LSTM, nn.GRU)):
        raise TypeError(f"expected nn.LSTM or nn.GRU, not {type(old).__name__}")
    if old.bidirectional or old.proj_size or old.dropout:
        raise ValueError(f"{type(old).__name__} with bidirectional={old.bidirectional}, "
                         f"proj_size={old.proj_size}, dropout={old.dropout} cannot be converted "
                         f"(unidirectional, no projection, no dropout only)")
    cls = ShiftLSTM if isinstance(old, nn.LSTM) else ShiftGRU
    new = cls(old.input_size, old.hidden_size, old.num_layers, old.bias, old.batch_first,
              method=method, wbits=wbits, **qkwargs)
    for i, cell in enumerate(new.cells):
        for name in ("ih", "hh"):
            w = getattr(old, f"weight_{name}_l{i}").detach()
            q = getattr(cell, name).quantizer
            if not from_weights:
                continue
            if method == "fp":
                q.weight.copy_(w)
            elif hasattr(q, "set_from_weight"):
                q.e0 = int(math.floor(math.log2(float(w.abs().max())) + 0.5) - q.pmax)
                q.set_from_weight(w)
        if old.bias:
            b_ih, b_hh = getattr(old, f"bias_ih_l{i}"), getattr(old, f"bias_hh_l{i}")
            if cls is ShiftLSTM:
                cell.biases[0].copy_(b_ih + b_hh)
            else:
                cell.biases[0].copy_(b_ih)
                cell.biases[1].copy_(b_hh)
    return new.to(next(old.parameters()).device)
