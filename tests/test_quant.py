"""Quantizers: forward values and straight-through gradients against hand-computed cases."""

import itertools
import math

import pytest
import torch

from sw.quant import (
    DeepShiftPSQuantizer,
    DeepShiftQQuantizer,
    DenseShiftQuantizer,
    FullPrecision,
    S3Quantizer,
    TernaryQuantizer,
    cascade_exponent,
    make_quantizer,
    pow2_weight,
    sign_ste,
    step_ste,
)

torch.set_num_threads(1)
LN2 = math.log(2.0)


def _set(param, values):
    with torch.no_grad():
        param.copy_(torch.tensor(values, dtype=param.dtype).reshape(param.shape))


def _close(actual, expected, what):
    expected = torch.tensor(expected, dtype=actual.dtype).reshape(actual.shape)
    assert torch.allclose(actual, expected, rtol=1e-6, atol=1e-7), (
        f"{what}: got {actual.flatten().tolist()}, expected {expected.flatten().tolist()}")


def _exact(actual, expected, what):
    expected = torch.tensor(expected, dtype=actual.dtype).reshape(actual.shape)
    assert torch.equal(actual, expected), (
        f"{what}: got {actual.flatten().tolist()}, expected {expected.flatten().tolist()}")


def test_sign_ste_zero_is_plus_one_and_gradient_passes():
    x = torch.tensor([-0.5, 0.0, 0.3, -0.0, -1e-30], requires_grad=True)
    y = sign_ste(x)
    _exact(y.detach(), [-1, 1, 1, 1, -1], "sign forward")
    y.backward(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))
    _exact(x.grad, [1, 2, 3, 4, 5], "sign STE gradient")


def test_step_ste_strict_and_gradient_passes():
    x = torch.tensor([-1.0, 0.0, 1e-9, 2.0], requires_grad=True)
    y = step_ste(x)
    _exact(y.detach(), [0, 0, 1, 1], "step forward")
    y.backward(torch.tensor([0.5, -1.0, 2.0, 3.0]))
    _exact(x.grad, [0.5, -1.0, 2.0, 3.0], "step STE gradient")


def test_cascade_three_latents_all_combinations():
    # S_1 = b_1, S_k = (S_{k-1} + 1) * b_k: the run of ones ending at b_3
    expected = {(0, 0, 0): 0, (0, 0, 1): 1, (0, 1, 0): 0, (0, 1, 1): 2,
                (1, 0, 0): 0, (1, 0, 1): 1, (1, 1, 0): 0, (1, 1, 1): 3}
    bits = list(expected)
    t = torch.tensor([[1.0 if b[k] else -1.0 for b in bits] for k in range(3)])
    s = cascade_exponent(t)
    _exact(s, [expected[b] for b in bits], "cascade S")


@pytest.mark.parametrize("wbits", [2, 3, 4, 5])
def test_every_exponent_reachable_and_no_other(wbits):
    n = (1 << (wbits - 1)) - 1
    combos = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=n))).T  # (n, 2**n)
    s = cascade_exponent(combos)
    assert sorted(set(s.tolist())) == list(range(n + 1)), f"B={wbits}: {sorted(set(s.tolist()))}"
    q = DenseShiftQuantizer((5,), wbits=wbits)
    assert q.cascade.shape == (n, 5)


def _dense(values_sign, values_cascade, *, surrogate, e0=0):
    q = DenseShiftQuantizer((1,), wbits=3, surrogate=surrogate, e0=e0)
    _set(q.sign_latent, values_sign)
    _set(q.cascade, values_cascade)
    return q


@pytest.mark.parametrize("surrogate, gsign, gcascade", [
    # b = (1, 0, 1): S1 = 1, S2 = 0, S3 = 1; sign = -1; w = -2
    # surrogate d/dS sign*sqrt(S+1) = -0.5/sqrt(2); dS3/dt3 = S2+1 = 1; dS3/dt2 = b3*(S1+1) = 2;
    # dS3/dt1 = b3*b2 = 0; d/dsign = sqrt(2)
    (True, [math.sqrt(2)], [0.0, -1 / math.sqrt(2), -0.5 / math.sqrt(2)]),
    # exact d/dS sign*2**S = -2 ln2; d/dsign = 2
    (False, [2.0], [0.0, -4 * LN2, -2 * LN2]),
])
def test_denseshift_mixed_case(surrogate, gsign, gcascade):
    q = _dense([-0.1], [[0.5], [-0.2], [0.3]], surrogate=surrogate)
    w = q()
    _exact(w.detach(), [-2.0], "forward")
    w.backward(torch.tensor([3.0]))
    _close(q.sign_latent.grad, [3 * g for g in gsign], "sign latent gradient")
    _close(q.cascade.grad, [3 * g for g in gcascade], "cascade gradient")


@pytest.mark.parametrize("surrogate, gsign, gcascade", [
    # b = (1, 1, 1): S = 3, w = 8. dS3/dt3 = 3, dS3/dt2 = 2, dS3/dt1 = 1
    (True, [2.0], [0.25, 0.5, 0.75]),            # d/dS sqrt(S+1) = 0.5/2 = 0.25
    (False, [8.0], [8 * LN2, 16 * LN2, 24 * LN2]),
])
def test_denseshift_all_ones(surrogate, gsign, gcascade):
    q = _dense([0.0], [[1.0], [1.0], [1.0]], surrogate=surrogate)
    w = q()
    _exact(w.detach(), [8.0], "forward")
    w.backward(torch.ones(1))
    _close(q.sign_latent.grad, gsign, "sign latent gradient")
    _close(q.cascade.grad, gcascade, "cascade gradient")


def test_denseshift_offset_scales_value_and_gradient():
    q = _dense([-0.1], [[0.5], [-0.2], [0.3]], surrogate=False, e0=-2)
    w = q()
    _exact(w.detach(), [-0.5], "forward with e0=-2")
    w.backward(torch.ones(1))
    _close(q.sign_latent.grad, [0.5], "sign gradient")
    _close(q.cascade.grad, [0.0, -LN2, -0.5 * LN2], "cascade gradient")


def test_pow2_weight_surrogate_and_exact_share_forward():
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0])
    s = torch.tensor([0.0, 1.0, 2.0, 3.0])
    for surrogate in (False, True):
        _exact(pow2_weight(sign, s, e0=1, surrogate=surrogate), [2, -4, 8, -16], "pow2")


def test_denseshift_weights_are_zero_free_powers_of_two():
    q = DenseShiftQuantizer((64, 9), wbits=4, generator=torch.Generator().manual_seed(1))
    w = q().detach()
    assert (w != 0).all()
    e = torch.log2(w.abs())
    assert torch.equal(e, e.round()) and e.min() >= 0 and e.max() <= 7


def test_s3_values_and_gradients():
    q = S3Quantizer((2,), wbits=3)
    assert q.cascade.shape == (2, 2)
    _set(q.sign_latent, [0.2, 0.2])
    _set(q.sparse_latent, [0.1, -0.1])
    _set(q.cascade, [[0.3, 0.3], [0.4, 0.4]])          # S = 2 for both
    w = q()
    _exact(w.detach(), [4.0, 0.0], "S3 forward")
    w.backward(torch.ones(2))
    # w = sign * z * 2**S: d/dsign = z * 4, d/dz = sign * 4, d/dS = sign * z * 4 ln2
    _close(q.sign_latent.grad, [4.0, 0.0], "sign gradient")
    _close(q.sparse_latent.grad, [4.0, 4.0], "sparse gradient")
    _close(q.cascade.grad, [[4 * LN2, 0.0], [8 * LN2, 0.0]], "cascade gradient")
    q.sparse_latent.grad = None
    r = q.regularizer()
    _close(r.detach(), [0.05], "dense-weight regularizer")
    r.backward()
    _close(q.sparse_latent.grad, [0.0, -0.5], "regularizer gradient")


def test_s3_two_bits_is_ternary():
    q = S3Quantizer((3,), wbits=2)
    assert q.cascade is None and len(list(q.parameters())) == 2
    _set(q.sign_latent, [-1.0, 1.0, 1.0])
    _set(q.sparse_latent, [1.0, -1.0, 1.0])
    _exact(q().detach(), [-1.0, 0.0, 1.0], "S3 B=2")


def test_deepshift_q_rounding_and_clamp():
    q = DeepShiftQQuantizer((4,), wbits=3)
    _set(q.weight, [0.3, -0.05, 0.9, 0.0])
    w = q()
    # e_hi = round(log2 0.9) = 0; exponents clamped to [-3, 0]; sign(0) = +1
    _exact(w.detach(), [0.25, -0.125, 1.0, 0.125], "DeepShift-Q forward")
    w.backward(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    _exact(q.weight.grad, [1.0, 2.0, 3.0, 4.0], "DeepShift-Q STE gradient")


def test_deepshift_ps_values_and_gradients():
    q = DeepShiftPSQuantizer((4,), wbits=3)
    _set(q.sign_latent, [0.4, 0.6, -0.7, 1.5])
    _set(q.shift_latent, [-0.4, -1.6, 0.3, -5.0])
    w = q()
    # sign = round(clamp(s, -1, 1)) = (0, 1, -1, 1); p = round(clamp(q, -2, 0)) = (0, -2, 0, -2)
    _exact(w.detach(), [0.0, 0.25, -1.0, 0.25], "DeepShift-PS forward")
    w.backward(torch.ones(4))
    # clamp passes no gradient outside its range (1.5 and 0.3, -5.0)
    _close(q.sign_latent.grad, [1.0, 0.25, 1.0, 0.0], "sign gradient")
    _close(q.shift_latent.grad, [0.0, 0.25 * LN2, 0.0, 0.0], "shift gradient")


def test_ternary_threshold_and_gradient():
    q = TernaryQuantizer((4,))
    _set(q.weight, [0.1, -0.5, 0.9, -0.05])           # delta = 0.7 * 0.3875 = 0.27125
    w = q()
    _exact(w.detach(), [0.0, -1.0, 1.0, 0.0], "ternary forward")
    w.backward(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    _exact(q.weight.grad, [1.0, 2.0, 3.0, 4.0], "ternary STE gradient")


def test_full_precision_is_identity():
    q = FullPrecision((3,))
    assert q() is q.weight


@pytest.mark.parametrize("init, std", [("lowvar", 1e-3), ("he", math.sqrt(2 / 72))])
def test_init_standard_deviation(init, std):
    q = DenseShiftQuantizer((64, 8, 3, 3), init=init, generator=torch.Generator().manual_seed(0))
    for p in (q.sign_latent, q.cascade):
        assert abs(float(p.detach().std()) / std - 1) < 0.05, (init, float(p.detach().std()))
        assert abs(float(p.detach().mean())) < 0.05 * std


def test_set_from_weight_reproduces_rounded_powers():
    q = DenseShiftQuantizer((6,), wbits=3)
    q.set_from_weight(torch.tensor([0.3, -3.0, 5.0, -100.0, 0.0, 1.0]))
    # clamp(round(log2|w|), 0, 3): 0.3 -> 0, 3 -> 2 (log2 3 = 1.58), 5 -> 2, 100 -> 3, 0 -> 0
    _exact(q().detach(), [1.0, -4.0, 4.0, -8.0, 1.0, 1.0], "set_from_weight")


def test_bad_arguments():
    with pytest.raises(ValueError, match="Weight bits must be in \\[2, 5\\], not 6"):
        DenseShiftQuantizer((3,), wbits=6)
    with pytest.raises(ValueError, match="init must be 'lowvar' or 'he', not 'zeros'"):
        DenseShiftQuantizer((3,), init="zeros")
    with pytest.raises(ValueError, match="unknown method 'foo'"):
        make_quantizer("foo", (3,))
    with pytest.raises(ValueError, match="ternary weights take wbits=2, not 3"):
        TernaryQuantizer((3,), wbits=3)
    with pytest.raises(ValueError, match="shape must be"):
        DenseShiftQuantizer((0, 3))
    with pytest.raises(TypeError, match="e0 must be an integer, not 0.5"):
        DenseShiftQuantizer((3,), e0=0.5)
