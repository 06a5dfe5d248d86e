"""Sequence models of the spoken-command task: an LSTM (dense or MPS gate matrices, any shift
method) over log-mel frames.

:class:`SpeechLSTM` -- input ``(N, n_mels, frames)`` (the features of :func:`sw.data.
speech_commands`); ``stack`` consecutive frames are concatenated into one step (``T = frames //
stack`` steps of ``D = stack * n_mels`` values; trailing frames dropped; no arithmetic), one
:class:`sw.recurrent.ShiftLSTM` layer of ``hidden`` units, the mean of its outputs over time and
a floating-point linear classifier. ``config()`` / :func:`build_seq_model` rebuild it.
"""

from __future__ import annotations

import torch
from torch import nn

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
                 rank: int | None = 8, cell: str = "lstm", tt: str = "mps"):
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', not {cell!r}")
        if not isinstance(stack, int) or not 1 <= stack <= frames:
            raise ValueError(f"stack must be an integer in [1, {frames}], not {stack!r}")
        self._config = {"arch": "speech_lstm", "n_mels": n_mels, "frames": frames,
                        "num_classes": num_classes, "hidden": hidden, "stack": stack,
                        "method": method, "wbits": wbits, "rank": rank, "cell": cell, "tt": tt}
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.frames_to_steps(x))
        return self.head(out.mean(dim=1))


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
