"""Host runtime: exact rounding, host ops on special values, im2col, the executor and its
per-layer comparison against the golden model."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from contract import BF16, FP8_E5M2, FP16, FP32, FloatFormat
from contract.array import ArrayConfig
from sw import backends, runtime
from sw.backends import register_backend
from sw.compile import compile_model
from sw.export import export_model
from sw.fpbits import from_bits
from sw.golden import gemm_golden
from sw.models import DigitsCNN
from sw.runtime import (
    argmax_logits,
    decode,
    im2col,
    relu_bits,
    round_to_format,
    run_program,
)

torch.set_num_threads(1)
SEED = 20261122


def _hex(v):
    return f"{int(v):#x}"


def _interesting(rng, fmt, count):
    """float64 values around the format's rounding boundaries, subnormals, overflow and ties."""
    out = []
    for _ in range(count):
        kind = rng.integers(0, 6)
        if kind == 0:                                   # random magnitude over the whole range
            e = rng.integers(fmt.lsb_exp - 4, fmt.emax + 3)
            out.append(float(rng.uniform(1, 2)) * 2.0 ** int(e))
        elif kind == 1:                                 # exact ties between neighbours
            e = rng.integers(fmt.emin - 2, fmt.emax)
            q = rng.integers(1 << fmt.frac_bits, 1 << (fmt.frac_bits + 1))
            out.append((int(q) + 0.5) * 2.0 ** (int(e) - fmt.frac_bits))
        elif kind == 2:                                 # subnormal range
            out.append(float(rng.uniform(0, 2.0 ** fmt.emin)))
        elif kind == 3:                                 # just around the overflow threshold
            top = (2 - 2.0 ** -fmt.frac_bits) * 2.0 ** fmt.emax
            out.append(top * (1 + float(rng.uniform(-1, 1)) * 2.0 ** -(fmt.frac_bits + 1)))
        elif kind == 4:                                 # tiny: rounds to zero or min subnormal
            out.append(float(rng.uniform(0, 1)) * 2.0 ** fmt.lsb_exp)
        else:                                           # random float64 bits, finite
            out.append(float(rng.normal()) * 2.0 ** int(rng.integers(-60, 60)))
    vals = np.array(out) * np.where(rng.random(count) < 0.5, -1.0, 1.0)
    return np.concatenate([vals, [0.0, -0.0, math.inf, -math.inf, math.nan, 1e-300, -1e300]])


@pytest.mark.parametrize("fmt", [FP16, BF16, FP32, FP8_E5M2], ids=lambda f: f.name)
def test_round_to_format_matches_exact_rationals(fmt):
    rng = np.random.default_rng(SEED)
    vals = _interesting(rng, fmt, 3000)
    got = round_to_format(torch.from_numpy(vals), fmt)
    for i, v in enumerate(vals):
        if math.isnan(v):
            want = fmt.canonical_nan
        elif math.isinf(v):
            want = fmt.pos_inf | (fmt.sign_mask if v < 0 else 0)
        else:
            want = fmt.from_fraction(Fraction(v), negative_zero=math.copysign(1, v) < 0)
        assert int(got[i]) == want, (f"seed {SEED} index {i}: value {v!r} ({v.hex()}): got "
                                     f"{_hex(got[i])}, want {_hex(want)}")


@pytest.mark.parametrize("fmt", [FP16, BF16, FP32, FP8_E5M2,
                                 FloatFormat(exp_bits=4, frac_bits=3, name="e4m3_ieee"),
                                 FloatFormat(exp_bits=6, frac_bits=9, name="e6m9")],
                         ids=lambda f: f.name)
def test_round_to_format_equals_its_reference(fmt):
    """The float64 add/subtract rounding gives the bits of the frexp reference on random
    float64 bit patterns, values around the format's range, exact ties of both signs and
    specials; decode gives from_bits' values."""
    g = torch.Generator().manual_seed(SEED)
    n = 200_000
    rand = torch.randint(-2**62, 2**62, (n,), generator=g, dtype=torch.int64).view(torch.float64)
    e = torch.randint(fmt.lsb_exp - 4, fmt.msb_exp + 3, (n,), generator=g).to(torch.float64)
    near = torch.randn(n, generator=g, dtype=torch.float64) * torch.pow(2.0, e)
    k = torch.randint(0, 2 ** (fmt.frac_bits + 1), (n,), generator=g).to(torch.float64)
    ties = (k + 0.5) * torch.pow(2.0, e - fmt.frac_bits)
    special = torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan, 5e-324,
                            -5e-324, 1e308, -1e308], dtype=torch.float64)
    for name, v in (("random", rand), ("near", near), ("ties", ties), ("-ties", -ties),
                    ("special", special)):
        got, want = runtime.round_to_format(v, fmt), runtime.round_to_format_reference(v, fmt)
        bad = (got != want).nonzero()
        assert len(bad) == 0, (f"seed {SEED} {name}: {float(v[bad[0, 0]])!r} -> "
                               f"{int(got[bad[0, 0]]):#x}, reference {int(want[bad[0, 0]]):#x}")
    bits = torch.randint(0, 1 << fmt.width, (n,), generator=g, dtype=torch.int64)
    a, b = runtime.decode(bits, fmt), from_bits(bits, fmt)
    assert torch.equal(a.isnan(), b.isnan())
    assert torch.equal(a.nan_to_num(0.0).view(torch.int64), b.nan_to_num(0.0).view(torch.int64))


def test_round_to_fp16_matches_numpy():
    rng = np.random.default_rng(SEED + 1)
    vals = rng.normal(size=20000) * 2.0 ** rng.integers(-30, 18, size=20000)
    got = round_to_format(torch.from_numpy(vals), FP16).numpy()
    with np.errstate(over="ignore"):
        want = vals.astype(np.float16).view(np.uint16).astype(np.int64)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (f"seed {SEED + 1} index {bad[0]}: {vals[bad[0]]!r} got "
                           f"{_hex(got[bad[0]])} want {_hex(want[bad[0]])}")


def test_relu_and_argmax_on_special_values():
    f = FP16
    bits = torch.tensor([0x8000, 0x0000, 0xFC00, 0x7C00, 0xFE01, 0x7E00, 0xBC00, 0x3C00, 0x0001])
    assert relu_bits(bits, f).tolist() == [0, 0, 0, 0x7C00, 0x7E00, 0x7E00, 0, 0x3C00, 1]
    # NaN ranks lowest, ties go to the first index (-0 equals +0)
    logits = torch.tensor([[0x7E00, 0x3C00, 0x3C00], [0xFC00, 0x8000, 0x0000],
                           [0xFC00, 0xBC00, 0x0001]])
    assert argmax_logits(logits, f).tolist() == [1, 1, 2]


def test_maxpool_orders_signed_zeros_and_propagates_nan():
    from sw.program import Program

    prog = Program(config=ArrayConfig(), steps=[], values={"a": {"shape": [1, 2, 2],
                                                                 "fmt": "fp16"},
                                                           "b": {"shape": [1, 1, 1],
                                                                 "fmt": "fp16"}},
                   blobs={}, input={}, output="b")
    step = {"op": "maxpool2d", "inputs": ["a"], "output": "b", "kernel": [2, 2],
            "stride": [2, 2], "padding": [0, 0]}
    cases = [([0x8000, 0x8000, 0x8000, 0x0000], 0x0000), ([0x8000, 0xBC00, 0xC000, 0x8001],
                                                          0x8000),
             ([0x3C00, 0xFE00, 0x4000, 0x0000], 0x7E00), ([0xFC00] * 4, 0xFC00)]
    for vals, want in cases:
        a = torch.tensor(vals).reshape(1, 1, 2, 2)
        got = runtime._host_maxpool(prog, step, a)
        assert int(got) == want, f"{[hex(v) for v in vals]}: got {_hex(got)} want {_hex(want)}"


def test_sequential_dot_is_the_documented_float64_order():
    rng = np.random.default_rng(SEED + 2)
    cols = rng.normal(size=(5, 9)) * 2.0 ** rng.integers(-20, 20, size=(5, 9))
    w = rng.normal(size=(3, 9)).astype(np.float32).astype(np.float64)
    got = runtime._seq_dot(torch.from_numpy(cols), torch.from_numpy(w))
    for n in range(5):
        for m in range(3):
            acc = 0.0
            for k in range(9):
                acc = acc + cols[n, k] * w[m, k]          # Python floats: IEEE binary64
            assert float(got[n, m]) == acc, (n, m)


def test_sequential_dot_blocks_do_not_change_bits(monkeypatch):
    """Rows in several blocks (the last one partial) give the bits of one block."""
    rng = np.random.default_rng(SEED + 3)
    cols = torch.from_numpy(rng.normal(size=(23, 17)) * 2.0 ** rng.integers(-30, 30, (23, 17)))
    cols[0, 0], cols[1, 1], cols[2] = float("inf"), float("nan"), -0.0
    w = torch.from_numpy(rng.normal(size=(4, 17)).astype(np.float32).astype(np.float64))
    whole = runtime._seq_dot(cols, w)
    monkeypatch.setattr(runtime, "SEQ_DOT_ROWS", 5)
    assert torch.equal(runtime._seq_dot(cols, w).view(torch.int64), whole.view(torch.int64))
    acc = np.zeros((23, 4))
    for k in range(17):
        acc = acc + cols[:, k:k + 1].numpy() * w[:, k].numpy()
    assert np.array_equal(acc.view(np.int64), whole.numpy().view(np.int64))


@pytest.mark.parametrize("dims", [1, 2])
def test_im2col_matches_torch_convolution(dims):
    g = torch.Generator().manual_seed(SEED)
    shape = (2, 3, 7) if dims == 1 else (2, 3, 7, 6)
    x = torch.randint(-8, 8, shape, generator=g).double()
    kernel, stride, padding, dilation = [3] * dims, [2] * dims, [1] * dims, [1] * dims
    if dims == 2:
        kernel, stride, dilation = [3, 2], [1, 2], [2, 1]
    w = torch.randint(-4, 4, (5, 3, *kernel), generator=g).double()
    conv = F.conv1d if dims == 1 else F.conv2d
    want = conv(x, w, stride=stride, padding=padding, dilation=dilation)
    cols = im2col(x, kernel, stride, padding, dilation)
    got = runtime._to_channels_first(cols @ w.reshape(5, -1).T, 2, tuple(want.shape[2:]))
    assert torch.equal(got, want)
    # raw patterns pass through unchanged (padding is +0 = pattern 0)
    bits = torch.randint(0, 1 << 16, shape, generator=g)
    cb = im2col(bits, kernel, stride, padding, dilation)
    assert cb.dtype == torch.int64 and set(cb.unique().tolist()) <= set(bits.unique().tolist()
                                                                        ) | {0}


# -- executor -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def program(tmp_path_factory):
    torch.manual_seed(SEED)
    model = DigitsCNN(method="denseshift", wbits=3, width=4)
    with torch.no_grad():                     # non-trivial BatchNorm, some negative scales
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 4)
                mod.weight.uniform_(-1.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
        for mod in model.modules():
            if hasattr(mod, "quantizer"):
                for p in mod.quantizer.parameters():
                    p.normal_(0, 1)
    path = tmp_path_factory.mktemp("m") / "m.dshw"
    export_model(model.eval(), path)
    return compile_model(path, ArrayConfig()), model.eval()


def test_array_steps_equal_an_independent_float64_convolution(program):
    """Each array step's output equals torch's float64 convolution of the decoded inputs and
    weights (exact here: fp16 inputs times 2**p fit float64 sums), plus the folded bias, rounded
    once to fp16 (and ReLU): im2col, packing, BN fold and golden agree."""
    prog, _ = program
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(SEED))
    res = run_program(prog, x, keep_values=True)
    checked = 0
    for step in prog.array_steps():
        a = res.values[step["inputs"][0]]
        xv = decode(a, FP16)
        codes = runtime.array_operands(prog, step, a)[1]
        from contract import decode_weights

        w = torch.from_numpy(decode_weights(codes, 3, step["e0"])).reshape(
            step["m"], -1, *step["kernel"])
        y = F.conv2d(xv, w, stride=step["stride"], padding=step["padding"],
                     dilation=step["dilation"])
        if step["bias"] is not None:
            y = y + decode(torch.from_numpy(prog.blob(step["bias"]).astype(np.int64)),
                           FP16).reshape(1, -1, 1, 1)
        want = round_to_format(y, FP16)
        if step["relu"]:
            want = relu_bits(want, FP16)
        got = res.values[step["output"]]
        bad = torch.nonzero(got != want)
        assert bad.numel() == 0, (f"step {step['id']} at {bad[0].tolist()}: got "
                                  f"{_hex(got[tuple(bad[0])])} want {_hex(want[tuple(bad[0])])}")
        checked += 1
    assert checked == 3


def test_program_tracks_the_torch_model(program):
    prog, model = program
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(SEED + 3))
    res = run_program(prog, x)
    with torch.no_grad():
        ref = model(x).double()
    scale = ref.abs().max()
    assert float((res.logits - ref).abs().max()) < 0.02 * float(scale)


def test_results_do_not_depend_on_the_batch_size(program):
    prog, _ = program
    x = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(SEED + 4))
    a = run_program(prog, x, batch_size=10)
    b = run_program(prog, x, batch_size=3)
    assert torch.equal(a.logits_bits, b.logits_bits)


def test_faulty_backend_is_caught_layer_by_layer(program):
    prog, _ = program
    calls = []

    def factory(config):
        def gemm(x_bits, codes, e0, *, in_fmt, wbits, out_fmt, bias_bits, relu, config):
            y = gemm_golden(x_bits, codes, e0, in_fmt=in_fmt, wbits=wbits, out_fmt=out_fmt,
                            bias_bits=bias_bits, relu=relu, config=config).clone()
            calls.append(config)
            if len(calls) == 2:
                y[3, 1] ^= 1                      # one flipped LSB in the second array step
            return y, {"cycles": 100 + len(calls)}
        return gemm

    register_backend("test-flaky", factory, replace=True)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(SEED + 5))
    res = run_program(prog, x, backend="test-flaky")
    assert res.compared and res.mismatches == 1
    bad = [r for r in res.steps if r.mismatches]
    assert [r.id for r in bad] == [prog.array_steps()[1]["id"]]
    fm = bad[0].first_mismatch
    assert fm["row"] == 3 and fm["output_channel"] == 1 and fm["got"] != fm["want"]
    assert int(fm["got"], 16) ^ int(fm["want"], 16) == 1 and fm["sample"] == 3 // 16
    assert all(c == prog.config.dot_config for c in calls)
    assert [r.backend_stats for r in res.steps if r.where == "array"] == [
        [{"cycles": 101}], [{"cycles": 102}], [{"cycles": 103}]]
    good = run_program(prog, x, backend="golden", compare=True)
    assert good.mismatches == 0 and sum(r.compared for r in good.steps) > 0


def test_unknown_backend_and_bad_inputs(program):
    prog, _ = program
    with pytest.raises(backends.BackendUnavailable, match="'nope' is not registered"):
        run_program(prog, torch.zeros(1, 1, 8, 8), backend="nope")
    with pytest.raises(ValueError, match=r"per-sample shape \(1, 8, 9\)"):
        run_program(prog, torch.zeros(1, 1, 8, 9))
    with pytest.raises(TypeError, match="float32"):
        run_program(prog, torch.zeros(1, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="already registered"):
        register_backend("golden", lambda c: gemm_golden)


# -- host ops of imported models (pooling with padding, adaptive pooling, softmax, clamp ...) ---

class _Stub:
    """The two members of a Program the host ops read."""

    def __init__(self, values):
        self.values = values

    def fmt(self, name):
        from contract import get_format

        return get_format(self.values[name]["fmt"])


def _fp16(t):
    return runtime.round_to_format(t.to(torch.float64), "fp16")


@pytest.mark.parametrize("kw", [
    {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": False,
     "count_include_pad": True},
    {"kernel": [3, 2], "stride": [2, 2], "padding": [1, 0], "ceil_mode": True,
     "count_include_pad": False},
    {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0], "ceil_mode": True,
     "count_include_pad": True}])
def test_avgpool_matches_pytorch_in_float64(kw):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 7, 5, generator=g).half().double()
    ref = F.avg_pool2d(x, tuple(kw["kernel"]), tuple(kw["stride"]), tuple(kw["padding"]),
                       kw["ceil_mode"], kw["count_include_pad"])
    step = {"op": "avgpool2d", "inputs": ["a"], "output": "y", **kw}
    prog = _Stub({"a": {"fmt": "fp16", "shape": [3, 7, 5]},
                  "y": {"fmt": "fp16", "shape": list(ref.shape[1:])}})
    got = runtime._host_avgpool_nd(prog, step, _fp16(x))
    assert torch.equal(got, _fp16(ref))


def test_adaptive_avgpool_softmax_clamp_concat_permute():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 7, 5, generator=g).half().double()
    bits = _fp16(x)
    vals = {"a": {"fmt": "fp16", "shape": [3, 7, 5]}, "y": {"fmt": "fp16", "shape": [3, 3, 2]}}
    got = runtime._host_adaptive_avgpool(_Stub(vals), {"inputs": ["a"], "output": "y",
                                                       "output_size": [3, 2]}, bits)
    assert torch.equal(got, _fp16(F.adaptive_avg_pool2d(x, (3, 2))))
    vals["y"] = {"fmt": "fp32", "shape": [3, 7, 5]}
    got = runtime._host_softmax(_Stub(vals), {"inputs": ["a"], "output": "y", "axis": 0}, bits)
    want = runtime.round_to_format(torch.softmax(x, dim=1), "fp32")
    diff = (runtime.decode(got, "fp32") - runtime.decode(want, "fp32")).abs()
    assert float(diff.max()) <= 2.0 ** -23           # at most one fp32 ulp below 1
    vals["y"] = {"fmt": "fp16", "shape": [3, 7, 5]}
    got = runtime._host_clamp(_Stub(vals), {"inputs": ["a"], "output": "y", "lo": 0.0,
                                            "hi": 0.5}, bits)
    assert torch.equal(got, _fp16(torch.clamp(x, 0.0, 0.5)))
    vals.update(b={"fmt": "fp16", "shape": [3, 7, 5]}, y={"fmt": "fp16", "shape": [6, 7, 5]})
    got = runtime._host_concat(_Stub(vals), {"inputs": ["a", "b"], "output": "y", "axis": 0},
                               bits, bits)
    assert torch.equal(got, torch.cat([bits, bits], dim=1))
    vals["y"] = {"fmt": "fp16", "shape": [5, 3, 7]}
    got = runtime._host_permute(_Stub(vals), {"inputs": ["a"], "output": "y",
                                              "perm": [2, 0, 1]}, bits)
    assert torch.equal(got, bits.permute(0, 3, 1, 2))


def test_grouped_and_sampled_array_steps(tmp_path):
    """A depthwise and a grouped convolution run as one GEMM per group and equal PyTorch's
    float64 convolution rounded once; ``sample_array_step`` compares sampled tiles of a step
    with golden and catches a backend that flips one output bit."""
    from torch import nn

    from sw import quantize_model

    torch.manual_seed(SEED)
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False),
                          nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2))
    quantize_model(model, from_weights=True, e0=-3)
    model.eval()
    x = torch.rand(3, 4, 7, 7, generator=torch.Generator().manual_seed(SEED))
    export_model(model, tmp_path / "g.dshw", example_input=x[:2])
    prog = compile_model(tmp_path / "g.dshw", ArrayConfig())
    dw, grouped = prog.array_steps()
    assert (dw["groups"], dw["k"], grouped["groups"], grouped["k"]) == (4, 9, 2, 18)
    res = run_program(prog, x, keep_values=True)
    from contract import decode_weights

    for step in (dw, grouped):
        a = res.values[step["inputs"][0]]
        codes = np.concatenate([runtime.array_operands(prog, step, a, g)[1]
                                for g in range(step["groups"])])
        w = torch.from_numpy(decode_weights(codes, 3, step["e0"])).reshape(
            step["m"], -1, *step["kernel"])
        y = F.conv2d(decode(a, FP16), w, stride=step["stride"], padding=step["padding"],
                     dilation=step["dilation"], groups=step["groups"])
        if step["bias"] is not None:
            y = y + decode(torch.from_numpy(prog.blob(step["bias"]).astype(np.int64)),
                           FP16).reshape(1, -1, 1, 1)
        assert torch.equal(res.values[step["output"]], round_to_format(y, FP16)), step["name"]
    good = runtime.sample_array_step(prog, dw, res.values[dw["inputs"][0]], gemm_golden,
                                     rows=5, channels=2)
    assert (good["compared"], good["mismatches"], good["groups"]) == (10, 0, 2)

    def flipping(x_bits, codes, e0, **kw):
        y = gemm_golden(x_bits, codes, e0, **kw)
        y[0, 0] ^= 1
        return y

    bad = runtime.sample_array_step(prog, grouped, res.values[grouped["inputs"][0]], flipping,
                                    rows=4, channels=3)
    assert bad["mismatches"] == 2 and bad["first_mismatch"]["row"] == 0
