"""Reference networks for the deployment flow, built the way a user builds theirs: standard
PyTorch layers converted by :func:`sw.quantize_model` (nothing here is known to the compiler).

* :class:`DigitsResNet` -- a small ResNet-style 2-D network for the 8x8 digits: a FP stem,
  residual blocks (one with a strided conv and a 1x1 projection), global average pooling and a
  FP classifier.
* :func:`torchvision_model` -- torchvision's ``resnet18`` and ``mobilenet_v2`` architectures
  (``weights=None``), converted to 3-bit DenseShift layers (first conv kept in floating point;
  the classifier too unless asked), with per-layer ``e0`` from the float initialisation and
  BatchNorm statistics calibrated on synthetic inputs (:func:`calibrate_batchnorm`).

torchvision: the pinned 0.28.0 is the release for torch 2.13.0, but its PyPI wheel's C++
operators are linked against the CUDA build of torch and do not load beside the CPU torch.
torchvision then still defines its fake (meta) kernels of ``torchvision::nms`` and ``qnms`` and
fails to import because those operators do not exist. :func:`import_torchvision` declares the
two operator schemas first (they are never called: only the model definitions, which are pure
Python, are used), so that the real torchvision model code is imported unchanged.
"""

from __future__ import annotations

import math
import sys

import torch
from torch import nn

from .layers import quantize_model, shift_layers

__all__ = ["DigitsResNet", "digits_resnet", "import_torchvision", "torchvision_model",
           "calibrate_batchnorm", "set_shift_from_float"]

_TV_LIB = None


def import_torchvision():
    """``torchvision`` (``make setup-models`` installs it), importable beside the CPU torch."""
    global _TV_LIB
    try:
        import torchvision
        return torchvision
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
    except ImportError:
        raise ImportError("torchvision is not installed: run `make setup-models`") from None
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _TV_LIB = torch.library.Library("torchvision", "DEF")
    _TV_LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TV_LIB.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision
    return torchvision


class _Residual(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.down is None else self.down(x)))


class DigitsResNet(nn.Module):
    """``1x8x8`` -> FP conv(w) + BN + ReLU -> residual block (w) -> residual block (2w, stride
    2, 1x1 projection) -> global average pool -> FP linear."""

    def __init__(self, *, width: int = 8, num_classes: int = 10):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                                  nn.ReLU())
        self.layer1 = _Residual(w, w, 1)
        self.layer2 = _Residual(w, 2 * w, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * w, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layer2(self.layer1(self.stem(x)))), 1))


def digits_resnet(*, width: int = 8, wbits: int = 3) -> nn.Module:
    """:class:`DigitsResNet` with every conv but the stem as a DenseShift layer."""
    return quantize_model(DigitsResNet(width=width), wbits=wbits, exclude=["stem.0", "fc"])


@torch.no_grad()
def set_shift_from_float(model: nn.Module, floats: dict) -> None:
    """Per shift layer: ``e0`` so that the largest float weight gets the top exponent code,
    then the codes nearest to the float weights (``DenseShiftQuantizer.set_from_weight``)."""
    for name, layer in shift_layers(model):
        w = floats[name]
        top = math.floor(math.log2(float(w.abs().max())) + 0.5)
        layer.quantizer.e0 = int(top - layer.quantizer.pmax)
        layer.quantizer.set_from_weight(w)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, shape, *, batches: int = 8, batch_size: int = 16,
                        seed: int = 0) -> nn.Module:
    """Running statistics of every BatchNorm from ``batches`` batches of standard-normal inputs
    of per-sample ``shape`` (cumulative averages); returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    for _ in range(batches):
        model(torch.randn((batch_size, *shape), generator=g))
    return model.eval()


def torchvision_model(name: str, *, image_size: int = 224, wbits: int = 3,
                      quantize_classifier: bool = False, seed: int = 0,
                      calib_batches: int = 8, calib_batch_size: int = 16) -> nn.Module:
    """torchvision ``resnet18`` or ``mobilenet_v2`` (``weights=None``, seeded initialisation)
    with DenseShift layers, BN calibrated on synthetic ``3 x image_size x image_size`` inputs;
    eval mode."""
    tv = import_torchvision()
    torch.manual_seed(seed)
    if name == "resnet18":
        model = tv.models.resnet18(weights=None)
        keep = ["conv1"] + ([] if quantize_classifier else ["fc"])
    elif name == "mobilenet_v2":
        model = tv.models.mobilenet_v2(weights=None)
        keep = ["features.0.0"] + ([] if quantize_classifier else ["classifier.1"])
    else:
        raise ValueError(f"unknown model {name!r}; expected 'resnet18' or 'mobilenet_v2'")
    floats = {n: m.weight.detach().clone() for n, m in model.named_modules()
              if isinstance(m, (nn.Conv2d, nn.Linear)) and n not in keep}
    quantize_model(model, wbits=wbits, exclude=keep)
    set_shift_from_float(model, floats)
    return calibrate_batchnorm(model, (3, image_size, image_size), batches=calib_batches,
                               batch_size=calib_batch_size, seed=seed)
