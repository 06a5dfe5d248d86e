"""Sequence models of the spoken-command task: an LSTM (dense or MPS gate matrices, any shift
method) over log-mel frames.

:class:`SpeechLSTM` -- input ``(N, n_mels, frames)`` (the features of :func:`sw.data.
speech_commands`); ``stack`` consecutive frames are concatenated into one step (``T = frames //
stack`` steps of ``D = stack * n_mels`` values; trailing frames dropped; no arithmetic), one
:class:`sw.recurrent.ShiftLSTM` layer of ``hidden`` units, the mean of its outputs over time and
a floating-point linear classifier. ``config()`` / :func:`build_seq_model` rebuild it.

Regularisation options (all off by default): ``norm="utterance"`` normalises each utterance's
features per mel band to zero mean and unit variance over its frames (per-utterance CMVN; part
of inference); ``specaug={"freq": F, "time": T, "masks": n}`` sets ``n`` random bands of up to
``F`` mel bands and ``n`` random spans of up to ``T`` frames of each training utterance to zero
(SpecAugment masking; training only); ``fshift=S`` shifts each training utterance's features
by a random whole number of mel bands in ``-S..S`` (edge bands repeated), a crude vocal-tract
length perturbation that imitates other voices (training only); ``dropout=p`` drops the
LSTM's input features and the pooled output before the classifier with probability ``p``
(training only).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .mps import factorize
from .recurrent import ShiftGRU, ShiftLSTM

__all__ = ["SpeechLSTM", "build_seq_model", "mps_spec", "shift_from_float"]


def mps_spec(in_features: int, out_features: int, rank: int, *, legs: int = 2,
             kind: str = "mps") -> dict:
    """MPSLinear (``kind="mpo"``: MPOLinear) arguments with ``legs`` input and output legs
    (near-equal factors) and every bond dimension ``rank``."""
    spec = {"in_factors": list(factorize(in_features, legs)),
            "out_factors": list(factorize(out_features, legs)),
            "ranks": [rank] * (2 * legs - 1 if kind == "mps" else legs - 1)}
    return spec if kind == "mps" else {"kind": "mpo", **spec}


class SpeechLSTM(nn.Module):
    """See the module documentation. ``rank``: bond dimension of both gate matrices' tensor
    trains (``None``: dense matrices); ``tt``: ``"mps"`` or ``"mpo"`` (the tensor-train
    matrix; trained and compared, not compiled); ``cell``: ``"lstm"`` or ``"gru"``."""

    def __init__(self, *, n_mels: int = 40, frames: int = 63, num_classes: int = 10,
                 hidden: int = 64, stack: int = 3, method: str = "denseshift", wbits: int = 3,
                 rank: int | None = 8, cell: str = "lstm", tt: str = "mps",
                 norm: str | None = None, specaug: dict | None = None, fshift: int = 0,
                 dropout: float = 0.0):
        super().__init__()
        if norm not in (None, "utterance"):
            raise ValueError(f"norm must be None or 'utterance', not {norm!r}")
        if specaug is not None:
            if not isinstance(specaug, dict) or set(specaug) != {"freq", "time", "masks"} or \
                    not all(isinstance(v, int) and v >= 0 for v in specaug.values()):
                raise ValueError("specaug must be a dict of non-negative integers 'freq', "
                                 f"'time', 'masks', not {specaug!r}")
            specaug = dict(specaug)
        if not isinstance(fshift, int) or not 0 <= fshift < n_mels:
            raise ValueError(f"fshift must be an integer in [0, {n_mels}), not {fshift!r}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout!r}")
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', not {cell!r}")
        if not isinstance(stack, int) or not 1 <= stack <= frames:
            raise ValueError(f"stack must be an integer in [1, {frames}], not {stack!r}")
        self._config = {"arch": "speech_lstm", "n_mels": n_mels, "frames": frames,
                        "num_classes": num_classes, "hidden": hidden, "stack": stack,
                        "method": method, "wbits": wbits, "rank": rank, "cell": cell, "tt": tt}
        for key, value, default in (("norm", norm, None), ("specaug", specaug, None),
                                    ("fshift", fshift, 0), ("dropout", float(dropout), 0.0)):
            if value != default:                # configs without options stay as they were
                self._config[key] = value
        self.norm, self.specaug, self.dropout = norm, specaug, float(dropout)
        self.fshift = fshift
        self.n_mels, self.frames, self.stack = n_mels, frames, stack
        self.steps = frames // stack
        d = stack * n_mels
        gates = 4 if cell == "lstm" else 3
        mps = None
        if rank is not None:
            if tt not in ("mps", "mpo"):
                raise ValueError(f"tt must be 'mps' or 'mpo', not {tt!r}")
            mps = {"ih": mps_spec(d, gates * hidden, rank, kind=tt),
                   "hh": mps_spec(hidden, gates * hidden, rank, kind=tt)}
        cls = ShiftLSTM if cell == "lstm" else ShiftGRU
        self.rnn = cls(d, hidden, batch_first=True, method=method, wbits=wbits, mps=mps)
        self.head = nn.Linear(hidden, num_classes)

    def config(self) -> dict:
        return dict(self._config)

    def frames_to_steps(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, n_mels, frames)`` -> ``(N, T, stack * n_mels)`` (feature ``s * n_mels + mel``
        of step ``t`` is frame ``t * stack + s``)."""
        x = x[:, :, :self.steps * self.stack].transpose(1, 2)
        return x.reshape(x.shape[0], self.steps, self.stack * self.n_mels)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Per-utterance CMVN (``norm="utterance"``): ``(x - mean) / sqrt(var + 1e-5)`` per
        band over the frames that are used (biased variance); identity otherwise."""
        if self.norm is None:
            return x
        x = x[:, :, :self.steps * self.stack]
        mean = x.mean(dim=2, keepdim=True)
        var = x.var(dim=2, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5)

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        n, bands, frames = x.shape
        keep = torch.ones_like(x)
        for _ in range(self.specaug["masks"]):
            for size, axis, length in ((self.specaug["freq"], 1, bands),
                                       (self.specaug["time"], 2, frames)):
                width = torch.randint(0, size + 1, (n, 1))
                start = (torch.rand(n, 1) * (length - width + 1)).floor()
                pos = torch.arange(length).unsqueeze(0)
                hit = ((pos >= start) & (pos < start + width)).to(x.dtype)
                keep = keep * (1 - (hit.unsqueeze(2) if axis == 1 else hit.unsqueeze(1)))
        return x * keep

    def _shift_bands(self, x: torch.Tensor) -> torch.Tensor:
        n, bands, _ = x.shape
        s = torch.randint(-self.fshift, self.fshift + 1, (n, 1))
        src = (torch.arange(bands).unsqueeze(0) - s).clamp(0, bands - 1)
        return torch.gather(x, 1, src.unsqueeze(2).expand(-1, -1, x.shape[2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        if self.training and self.fshift:
            x = self._shift_bands(x)
        if self.training and self.specaug is not None:
            x = self._mask(x)
        steps = self.frames_to_steps(x)
        if self.dropout:
            steps = F.dropout(steps, self.dropout, self.training)
        out, _ = self.rnn(steps)
        pooled = out.mean(dim=1)
        if self.dropout:
            pooled = F.dropout(pooled, self.dropout, self.training)
        return self.head(pooled)


def build_seq_model(config: dict) -> nn.Module:
    """Rebuild a model from its ``config()``."""
    if not isinstance(config, dict) or config.get("arch") != "speech_lstm":
        raise ValueError(f"not a sequence model config: {config!r}")
    kw = {k: v for k, v in config.items() if k != "arch"}
    return SpeechLSTM(**kw)


@torch.no_grad()
def shift_from_float(model: SpeechLSTM, *, method: str = "denseshift", wbits: int = 3):
    """A copy of a trained float ``model`` (``method="fp"``) with shift cores: per core (or
    dense matrix) ``e0`` puts the largest float weight on the top exponent code, then the codes
    nearest to the float weights; biases and the classifier are copied."""
    import math

    from .quant import _Quantizer

    new = build_seq_model({**model.config(), "method": method, "wbits": wbits})
    floats = {n: q for n, q in model.named_modules() if isinstance(q, _Quantizer)}
    for n, q in new.named_modules():
        if not isinstance(q, _Quantizer):
            continue
        w = floats[n]()
        if hasattr(q, "set_from_weight"):
            q.e0 = int(math.floor(math.log2(float(w.abs().max())) + 0.5) - q.pmax)
            q.set_from_weight(w)
    state = {k: v for k, v in model.state_dict().items() if ".cores." not in k
             and ".quantizer." not in k}
    new.load_state_dict(state, strict=False)
    return new
