"""Shift layers: drop-in shapes, quantized_weight() is what the forward multiplies by,
zero-free powers of two, quantize_model(), the weight-freezing metric."""

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from sw.layers import (
    DenseShiftConv1d,
    ShiftConv2d,
    ShiftLinear,
    regularization,
    shift_layers,
    snapshot_weights,
    weight_changes,
)

torch.set_num_threads(1)


def test_public_names_from_sw():
    from sw import DenseShiftConv2d, DenseShiftLinear, quantize_model

    assert callable(quantize_model)
    assert issubclass(DenseShiftConv2d, nn.Conv2d)
    assert issubclass(DenseShiftLinear, nn.Linear)


def test_drop_in_shapes_and_default_bits():
    from sw import DenseShiftConv2d, DenseShiftLinear

    x = torch.randn(2, 3, 9, 9)
    ref = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=True)
    ds = DenseShiftConv2d(3, 8, 3, stride=2, padding=1, bias=True)
    assert ds.wbits == 3 and ds.method == "denseshift"
    assert ds(x).shape == ref(x).shape
    assert DenseShiftLinear(10, 4)(torch.randn(5, 10)).shape == (5, 4)
    assert DenseShiftConv1d(4, 6, 5, padding=2)(torch.randn(2, 4, 20)).shape == (2, 6, 20)
    assert "weight" not in dict(ds.named_parameters())


def test_forward_multiplies_by_quantized_weight_exactly():
    from sw import DenseShiftConv2d, DenseShiftLinear

    torch.manual_seed(3)
    conv = DenseShiftConv2d(3, 5, 3, padding=1, bias=True)
    x = torch.randn(2, 3, 6, 6)
    assert torch.equal(conv(x), F.conv2d(x, conv.quantized_weight(), conv.bias, padding=1))
    # and quantized_weight() is sign * 2**S built independently from the latents
    q = conv.quantizer
    sign = torch.where(q.sign_latent >= 0, 1.0, -1.0)
    b = (q.cascade > 0).float()
    s = b[0]
    for k in range(1, b.shape[0]):
        s = (s + 1) * b[k]
    assert torch.equal(conv.quantized_weight(), sign * 2.0 ** s)
    lin = DenseShiftLinear(7, 3, e0=-2)
    x = torch.randn(4, 7)
    assert torch.equal(lin(x), x @ lin.quantized_weight().T + lin.bias)


@pytest.mark.parametrize("wbits", [2, 3, 4, 5])
@pytest.mark.parametrize("e0", [0, -3])
@pytest.mark.parametrize("init", ["lowvar", "he"])
def test_quantized_weight_zero_free_powers_of_two(wbits, e0, init):
    from sw import DenseShiftConv2d

    torch.manual_seed(wbits * 10 + e0)
    layer = DenseShiftConv2d(16, 32, 3, wbits=wbits, e0=e0, init=init)
    # a few optimizer steps so the latents are not just their init
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    for _ in range(3):
        opt.zero_grad()
        layer(torch.randn(2, 16, 5, 5)).pow(2).mean().backward()
        opt.step()
    w = layer.quantized_weight().detach()
    assert (w != 0).all(), "DenseShift weight has a zero"
    exps = torch.log2(w.abs())
    assert torch.equal(exps, exps.round()), "a weight is not a power of two"
    distinct = sorted(set(exps.flatten().tolist()))
    assert len(distinct) <= 2 ** (wbits - 1), distinct
    assert min(distinct) >= e0 and max(distinct) <= e0 + 2 ** (wbits - 1) - 1, distinct
    assert set(torch.sign(w).flatten().tolist()) == {-1.0, 1.0}


def test_all_exponents_used_at_he_init():
    from sw import DenseShiftConv2d

    torch.manual_seed(0)
    layer = DenseShiftConv2d(64, 64, 3, wbits=3, init="he")
    exps = set(torch.log2(layer.quantized_weight().detach().abs()).flatten().tolist())
    assert exps == {0.0, 1.0, 2.0, 3.0}


def test_gradients_reach_latents_and_biases():
    from sw import DenseShiftConv2d

    layer = DenseShiftConv2d(2, 3, 3, bias=True)
    layer(torch.randn(1, 2, 4, 4)).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_dense_layer_rejects_method():
    from sw import DenseShiftConv2d

    with pytest.raises(TypeError, match="DenseShiftConv2d is always DenseShift"):
        DenseShiftConv2d(2, 3, 3, method="s3")
    with pytest.raises(ValueError, match="unknown method 'bogus'"):
        ShiftConv2d(2, 3, 3, method="bogus")


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, bias=True),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_quantize_model_converts_chosen_layers():
    from sw import DenseShiftConv2d, DenseShiftLinear, quantize_model

    model = _mlp()
    bias = model[2].bias.detach().clone()
    out = quantize_model(model, wbits=4, exclude=["0", "6"])
    assert out is model
    assert type(model[0]) is nn.Conv2d and type(model[6]) is nn.Linear
    assert isinstance(model[2], DenseShiftConv2d) and model[2].wbits == 4
    assert isinstance(model[4], DenseShiftLinear)
    assert torch.equal(model[2].bias.detach(), bias)
    assert [n for n, _ in shift_layers(model)] == ["2", "4"]
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_quantize_model_include_methods_and_from_weights():
    from sw import quantize_model

    model = _mlp()
    w = model[4].weight.detach().clone()
    quantize_model(model, include=["4"], from_weights=True)
    assert [n for n, _ in shift_layers(model)] == ["4"]
    expect = torch.where(w >= 0, 1.0, -1.0) * 2.0 ** torch.clamp(torch.round(torch.log2(w.abs())),
                                                                 0, 3)
    assert torch.equal(model[4].quantized_weight().detach(), expect)
    model = quantize_model(_mlp(), method="s3", include=["2", "4"])
    assert isinstance(model[4], ShiftLinear) and model[4].method == "s3"
    assert float(regularization(model).detach()) >= 0
    with pytest.raises(ValueError, match="matches no Conv1d/Conv2d/Linear layer"):
        quantize_model(_mlp(), include=["nothing"])
    with pytest.raises(ValueError, match="unknown method 'x'"):
        quantize_model(_mlp(), method="x")


def test_deepcopy_and_state_dict_round_trip():
    from sw import DenseShiftConv2d

    layer = DenseShiftConv2d(3, 4, 3)
    other = DenseShiftConv2d(3, 4, 3, init="he")
    other.load_state_dict(copy.deepcopy(layer).state_dict())
    assert torch.equal(other.quantized_weight(), layer.quantized_weight())


def test_weight_freezing_metric_counts_exactly():
    from sw import DenseShiftLinear

    model = nn.Sequential(DenseShiftLinear(5, 2, bias=False))        # 10 weights
    q = model[0].quantizer
    with torch.no_grad():
        q.sign_latent.fill_(0.5)
        q.cascade.fill_(-0.5)                                         # all weights +1
    snap = snapshot_weights(model)
    assert weight_changes(model, snap) == {"sign": 0.0, "value": 0.0, "count": 10}
    with torch.no_grad():
        q.sign_latent.view(-1)[:3] = -0.5                             # 3 sign flips
        q.cascade[2].view(-1)[5:7] = 0.5                              # 2 exponent changes
    assert weight_changes(model, snap) == {"sign": 0.3, "value": 0.5, "count": 10}
    with pytest.raises(KeyError, match="not a shift layer"):
        weight_changes(model, {"nope": snap["0"]})
