"""Models of the training experiments. The first layer and the classifier stay full precision
(as in the DenseShift, S3 and DeepShift papers); every other conv is a shift layer of the chosen
``method`` followed by a BatchNorm, which absorbs the layer scale.

* :class:`DigitsCNN` -- a narrow CNN for the 8x8 digits.
* :class:`SpeechResNet` -- a small 1-D conv ResNet over log-mel frames (spoken commands).

``method="fp"`` gives the full-precision baseline with the same architecture;
``method="branches"`` with ``abits=`` gives multi-branch layers (:mod:`sw.branch_layers`).
"""

from __future__ import annotations

from torch import nn

from .layers import ShiftConv1d, ShiftConv2d

__all__ = ["DigitsCNN", "SpeechResNet", "build_model", "default_input", "default_input_shape"]


def _conv(cls, method, wbits, abits, qkwargs):
    """A factory of the model's quantized convs: ``cls(...)`` (a shift layer of ``method``), or
    a multi-branch layer (``method="branches"``, with ``abits``)."""
    if method == "branches":
        from .branch_layers import BranchConv1d, BranchConv2d

        branch = BranchConv2d if cls is ShiftConv2d else BranchConv1d
        if abits is None:
            raise TypeError("method='branches' needs abits=")

        def make(*args, **kw):
            return branch(*args, wbits=wbits, abits=abits, **kw)
        return make
    if abits is not None:
        raise TypeError(f"abits= is an option of method='branches', not of {method!r}")

    def make(*args, **kw):
        return cls(*args, method=method, wbits=wbits, **kw, **qkwargs)
    return make


def _arithmetic_options(qkwargs):
    """The quantizer options a rebuilt model needs for the same weight values (``e0``, the
    layers' power-of-two offset), as given; the training-only ones (``surrogate``, ``init``,
    ``generator``) are left out of the model's ``config``."""
    return {"e0": int(qkwargs["e0"])} if "e0" in qkwargs else {}


class DigitsCNN(nn.Module):
    """``1x8x8`` -> FP conv(w) -> shift conv(w) -> pool -> shift conv(2w) -> shift conv(2w)
    -> pool -> FP linear. ``width`` w (default 8) keeps it narrow so that quantization matters.

    Members
    -------
    features : nn.Sequential
    head : nn.Linear (the classifier; replace it for transfer)
    """

    def __init__(self, *, method: str = "denseshift", wbits: int = 3, width: int = 8,
                 num_classes: int = 10, abits=None, **qkwargs):
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        w = width
        conv = _conv(ShiftConv2d, method, wbits, abits, qkwargs)

        def shift(cin, cout):
            return conv(cin, cout, 3, padding=1, bias=False)

        self.config = {"model": "digits_cnn", "method": method, "wbits": wbits, "width": width,
                       "num_classes": num_classes, **_arithmetic_options(qkwargs),
                       **({"abits": abits} if abits is not None else {})}
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            shift(w, w), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
            shift(w, 2 * w), nn.BatchNorm2d(2 * w), nn.ReLU(),
            shift(2 * w, 2 * w), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * w * 4, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


class _Block(nn.Module):
    def __init__(self, cin, cout, stride, conv):
        super().__init__()
        self.conv1 = conv(cin, cout, 3, stride, 1)
        self.bn1 = nn.BatchNorm1d(cout)
        self.conv2 = conv(cout, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm1d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(conv(cin, cout, 1, stride, 0), nn.BatchNorm1d(cout))
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.down is None else self.down(x)))


class SpeechResNet(nn.Module):
    """``(n_mels, frames)`` -> FP conv1d stem -> 3 residual blocks of shift conv1d + BN (widths
    w, 2w, 2w; strides 1, 2, 2) -> global average pool -> FP linear."""

    def __init__(self, *, method: str = "denseshift", wbits: int = 3, n_mels: int = 40,
                 width: int = 24, num_classes: int = 10, abits=None, **qkwargs):
        super().__init__()
        make = _conv(ShiftConv1d, method, wbits, abits, qkwargs)

        def conv(cin, cout, k, stride, pad):
            return make(cin, cout, k, stride=stride, padding=pad, bias=False)

        w = width
        self.config = {"model": "speech_resnet", "method": method, "wbits": wbits,
                       "n_mels": n_mels, "width": width, "num_classes": num_classes,
                       **_arithmetic_options(qkwargs),
                       **({"abits": abits} if abits is not None else {})}
        self.stem = nn.Sequential(nn.Conv1d(n_mels, w, 3, padding=1, bias=False),
                                  nn.BatchNorm1d(w), nn.ReLU())
        self.blocks = nn.Sequential(_Block(w, w, 1, conv), _Block(w, 2 * w, 2, conv),
                                    _Block(2 * w, 2 * w, 2, conv))
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(2 * w, num_classes)

    def forward(self, x):
        return self.head(self.pool(self.blocks(self.stem(x))).flatten(1))


def build_model(config: dict) -> nn.Module:
    """Rebuild a model from its ``config`` dict (as stored in an export file)."""
    config = dict(config)
    kind = config.pop("model", None)
    if kind == "digits_cnn":
        return DigitsCNN(**config)
    if kind == "speech_resnet":
        return SpeechResNet(**config)
    raise ValueError(f"unknown model {kind!r}; expected 'digits_cnn' or 'speech_resnet'")


def default_input(model_config: dict | None) -> tuple[str | None, list]:
    """``(dataset, per-sample input shape)`` of the models above (``(None, [])`` otherwise)."""
    kind = (model_config or {}).get("model")
    if kind == "digits_cnn":
        return "digits", [1, 8, 8]
    if kind == "speech_resnet":
        from .data import SpeechSpec

        spec = SpeechSpec()
        frames = int(spec.sample_rate * spec.seconds) // spec.hop + 1
        return "speech", [int(model_config.get("n_mels", spec.n_mels)), frames]
    return None, []


def default_input_shape(model_config: dict | None) -> list | None:
    """The per-sample input shape of a built-in model, or None."""
    return default_input(model_config)[1] or None
