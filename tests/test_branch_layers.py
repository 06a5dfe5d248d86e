"""Multi-branch training layers: odd-grid quantizers, layers, quantize_model, the models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sw.branch_layers import BranchConv1d, BranchConv2d, BranchLinear, branch_layers
from sw.branch_quant import (
    OddActivationQuantizer,
    OddWeightQuantizer,
    best_scale,
    odd_quantize,
    odd_round_ste,
)
from sw.layers import quantize_model
from sw.models import DigitsCNN, SpeechResNet


def _is_odd_grid(q, k):
    top = (1 << k) - 1
    return bool(((q % 2).abs() == 1).all() and (q.abs() <= top).all()
                and (q == q.round()).all())


def test_odd_round_and_grid():
    v = torch.tensor([-3.5, -2.0, -1.2, -0.1, 0.0, 0.3, 1.0, 1.9, 2.0, 2.4, 7.9, 100.0])
    assert odd_round_ste(v).tolist() == [-3, -1, -1, -1, 1, 1, 1, 1, 3, 3, 7, 101]
    for k in range(1, 9):
        q = odd_quantize(torch.linspace(-400, 400, 2001), torch.tensor(1.0), k)
        assert _is_odd_grid(q, k) and q.min() == -((1 << k) - 1) and q.max() == (1 << k) - 1
    # straight-through inside the grid, clipped outside
    v = torch.tensor([-5.0, -1.5, 0.2, 2.7, 5.0], requires_grad=True)
    odd_quantize(v, torch.tensor(1.0), 2).sum().backward()
    assert v.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_best_scale_is_least_squares_among_candidates():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 50, generator=g)
    s = best_scale(w, 2, dim=0)
    assert s.shape == (4,)
    for row, sc in zip(w, s, strict=True):
        err = ((odd_quantize(row, sc, 2) * sc - row) ** 2).sum()
        for f in (0.8, 1.25):
            assert err <= ((odd_quantize(row, sc * f, 2) * sc * f - row) ** 2).sum() + 1e-6


@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_weight_quantizer(k):
    g = torch.Generator().manual_seed(k)
    w = torch.randn(5, 3, 3, 3, generator=g, requires_grad=True)
    quant = OddWeightQuantizer(w.shape, kbits=k)
    quant.init_from(w)
    out = quant(w)
    q = out / quant.scale.reshape(-1, 1, 1, 1)
    assert _is_odd_grid(q.detach().round(), k)
    assert torch.allclose(q, q.round(), atol=1e-5)
    assert torch.equal(quant.codes(w), q.detach().round())
    out.square().sum().backward()
    assert quant.scale.grad is not None and quant.scale.grad.abs().sum() > 0
    assert w.grad is not None


def test_activation_quantizer_initialises_from_the_first_batch():
    x = torch.relu(torch.randn(8, 4, 5, 5, generator=torch.Generator().manual_seed(1)))
    quant = OddActivationQuantizer(kbits=1)
    quant.eval()
    quant(x)
    assert not bool(quant.initialised)                 # eval mode does not initialise
    quant.train()
    out = quant(x)
    assert bool(quant.initialised)
    s, b = float(quant.scale.detach()), float(quant.offset.detach())
    assert b == pytest.approx(float(x.max()) / 2)
    levels = torch.unique(out.detach())
    assert torch.allclose(levels, torch.tensor([b - s, b + s]))   # a 1-bit grid: a threshold
    q = quant.codes(x)
    assert _is_odd_grid(q, 1) and set(q.unique().tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("cls, shape", [(BranchConv2d, (2, 3, 6, 6)), (BranchConv1d, (2, 3, 9)),
                                        (BranchLinear, (2, 3))])
def test_layers_compute_integer_products_times_scales(cls, shape):
    torch.manual_seed(0)
    args = (3, 4) if cls is BranchLinear else (3, 4, 3)
    layer = cls(*args, bias=False, wbits=2, abits=3).double()
    x = torch.randn(*shape, dtype=torch.float64)
    y = layer(x)                                        # training mode: initialises aquant
    qa, qw = layer.aquant.codes(x), layer.wquant.codes(layer.weight)
    assert _is_odd_grid(qa, 3) and _is_odd_grid(qw, 2)
    sa, b = layer.aquant.scale.detach(), layer.aquant.offset.detach()
    sw = layer.wquant.scale.detach()
    fn = {BranchConv2d: nn.functional.conv2d, BranchConv1d: nn.functional.conv1d,
          BranchLinear: nn.functional.linear}[cls]
    w_hat = qw * sw.reshape((-1,) + (1,) * (qw.ndim - 1))
    integer = fn(qa, qw)                                # the exact integer q_w . q_a sums
    assert torch.equal(integer, integer.round())
    chan = (-1,) + (1,) * (y.ndim - 2) if y.ndim > 2 else (-1,)
    want = sa * sw.reshape(chan) * integer + fn(torch.full_like(x, 1.0) * b, w_hat)
    assert torch.allclose(y, want, atol=1e-9)
    assert [n for n, _ in branch_layers(nn.Sequential(layer))] == ["0"]


def test_quantize_model_branches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten(),
                          nn.Linear(16, 3))
    before = model[2].weight.detach().clone()
    quantize_model(model, method="branches", wbits=3, abits=2, exclude=["0"])
    assert type(model[0]) is nn.Conv2d
    assert isinstance(model[2], BranchConv2d) and isinstance(model[4], BranchLinear)
    assert torch.equal(model[2].weight.detach(), before)
    assert (model[2].wbits, model[2].abits) == (3, 2)
    model(torch.randn(2, 1, 6, 6)).sum().backward()
    with pytest.raises(TypeError, match="needs abits="):
        quantize_model(nn.Sequential(nn.Linear(2, 2)), method="branches", wbits=2)
    with pytest.raises(TypeError, match="abits= is an option of method='branches'"):
        quantize_model(nn.Sequential(nn.Linear(2, 2)), method="denseshift", abits=2)
    with pytest.raises(ValueError, match="branches"):
        quantize_model(nn.Sequential(nn.Linear(2, 2)), method="nope")


def test_models_with_branch_layers():
    torch.manual_seed(0)
    model = DigitsCNN(method="branches", wbits=1, abits=1, width=4)
    assert model.config["abits"] == 1 and len(branch_layers(model)) == 3
    loss = nn.functional.cross_entropy(model(torch.randn(8, 1, 8, 8)), torch.arange(8))
    loss.backward()
    assert all(m.wquant.scale.grad is not None for _, m in branch_layers(model))
    speech = SpeechResNet(method="branches", wbits=2, abits=8, width=4, n_mels=6)
    assert speech(torch.randn(2, 6, 20)).shape == (2, 10)
    with pytest.raises(TypeError, match="needs abits="):
        DigitsCNN(method="branches", wbits=1)
    with pytest.raises(TypeError, match="abits= is an option"):
        DigitsCNN(method="denseshift", wbits=3, abits=2)
    assert "abits" not in DigitsCNN(method="fp").config


def test_training_table_smoke(tmp_path):
    """``densehw train branches --smoke``: every row runs and the files are written (the numbers
    of a smoke run mean nothing)."""
    from densehw.cli import main

    assert main(["train", "branches", "--smoke", "--out", str(tmp_path)]) == 0
    import json

    payload = json.loads((tmp_path / "branches.json").read_text())
    assert [r["key"] for r in payload["rows"]] == ["fp32", "ds3", "b11", "b22", "b33", "b44",
                                                  "b28"]
    assert all(0 <= r["digits"]["test"]["mean"] <= 100 for r in payload["rows"])
    assert (tmp_path / "branches.md").exists() and (tmp_path / "branches.png").exists()
