"""DenseShift's exponent decay (sw.quant.DenseShiftQuantizer.regularizer), the B = 5 remedy:
its value, that its gradient lowers the exponent codes, and that the training loop applies it
only with a positive ``reg``."""

from __future__ import annotations

import pytest
import torch

from sw.layers import DenseShiftConv2d, regularization
from sw.quant import DenseShiftQuantizer

SEED = 0


@pytest.mark.parametrize("wbits", [2, 3, 4, 5])
def test_regularizer_is_the_mean_exponent(wbits):
    gen = torch.Generator().manual_seed(SEED)
    q = DenseShiftQuantizer((6, 4, 3, 3), wbits=wbits, generator=gen)
    assert torch.equal(q.regularizer(), q.exponent().mean())
    assert 0 <= float(q.regularizer().detach()) <= (1 << (wbits - 1)) - 1


def test_exponent_decay_lowers_the_codes():
    torch.manual_seed(SEED)
    q = DenseShiftQuantizer((64, 32), wbits=5)
    q.set_from_weight(torch.randn(64, 32).sign() * 2.0 ** torch.randint(6, 16, (64, 32)))
    before = q.exponent().clone()
    signs = q.sign().clone()
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    for _ in range(20):
        opt.zero_grad()
        q.regularizer().backward()
        opt.step()
    after = q.exponent()
    assert float(before.mean()) > 9
    assert float(after.mean()) < float(before.mean()) - 5, (before.mean(), after.mean())
    assert torch.equal(q.sign(), signs)                  # only the exponents are decayed


def test_regularization_sums_denseshift_layers():
    torch.manual_seed(SEED)
    net = torch.nn.Sequential(DenseShiftConv2d(1, 4, 3, wbits=5), DenseShiftConv2d(4, 4, 3))
    expected = net[0].quantizer.exponent().mean() + net[1].quantizer.exponent().mean()
    assert torch.allclose(regularization(net), expected)
