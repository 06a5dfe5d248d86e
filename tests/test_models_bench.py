"""The fp16 study of ``benchmarks/models.py`` (``make models``): the margin bins on logits with
known errors, and golden against PyTorch fp32 / fp16, the input-perturbation gain and the
per-layer study on a small MobileNet-like network (depthwise conv, linear bottleneck, residual
add, ReLU6)."""

from __future__ import annotations

import importlib.util
import math
import pathlib

import torch
from torch import nn
from torch.nn import functional as F

from contract.array import ArrayConfig
from sw.compile import compile_model
from sw.export import export_model
from sw.layers import quantize_model
from sw.runtime import run_program
from sw.zoo import calibrate_batchnorm

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_models", ROOT / "benchmarks" / "models.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

torch.set_num_threads(1)


def test_margin_study_bins_and_disagreements():
    # 6 inputs, 3 classes; margins 0.05, 0.15, 0.25, 0.4, 1, 2 (class 0 on top); the golden
    # error is +-0.1 on classes 0/1 (sigma = sqrt(mean of squares) = 0.1 * sqrt(2/3))
    margins = torch.tensor([0.05, 0.15, 0.25, 0.4, 1.0, 2.0], dtype=torch.float64)
    ref = torch.zeros(6, 3, dtype=torch.float64)
    ref[:, 0] = margins
    ref[:, 2] = -5.0
    err = torch.zeros(6, 3, dtype=torch.float64)
    err[:, 0], err[:, 1] = -0.1, 0.1              # flips the decision where margin < 0.2
    t16 = ref.clone()
    t16[1, 1] = 1.0                                # PyTorch fp16 flips input 1 only
    m = bench.margin_study(ref, ref + err, t16)
    sigma = 0.1 * math.sqrt(2 / 3)
    assert math.isclose(m["sigma"], sigma)
    assert [d["input"] for d in m["disagreements"]] == [0, 1]
    assert math.isclose(m["largest_disagreeing_margin_sigma"], round(0.15 / sigma, 3))
    counts = [(b["inputs"], b["golden_disagreements"], b["torch_fp16_disagreements"])
              for b in m["bins"]]
    # margin / sigma: 0.61, 1.84, 3.06, 4.90, 12.2, 24.5
    assert counts == [(1, 1, 0), (1, 1, 1), (0, 0, 0), (2, 0, 0), (2, 0, 0)]
    assert m["bins"][-1]["margin_sigma"] == [5.0, None]
    assert m["margin_ge_3_sigma"] == {"inputs": 4, "golden_agreement": 1.0,
                                      "torch_fp16_agreement": 1.0}
    assert m["distinct_top1"] == 1
    c = bench.compare(ref + err, ref)
    assert c["agreement"] == 4 / 6
    assert math.isclose(c["rel_l2_error"], float(err.norm() / ref.norm()))


def test_perturbed_is_one_rounding_at_most():
    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    xp = bench.perturbed(x, 1)
    assert xp.dtype == torch.float64
    rel = (xp - x.double()).abs() / x.double().abs()
    assert float(rel.max()) <= 2.0 ** -11 and float(rel.max()) > 2.0 ** -12
    assert torch.equal(xp, bench.perturbed(x, 1))


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 8, 1, bias=False)       # linear bottleneck: no activation
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu6(self.bn0(self.stem(x)))
        y = self.bn2(self.pw(F.relu6(self.bn1(self.dw(x)))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x + y, 1), 1))


def test_fp16_and_layer_study_on_a_small_network(tmp_path):
    torch.manual_seed(0)
    model = quantize_model(_Tiny(), wbits=3, exclude=["stem"])
    calibrate_batchnorm(model, (3, 8, 8), batches=2, batch_size=16)
    x = torch.randn(12, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    export_model(model, tmp_path / "t.dshw", example_input=x[:2])
    prog = compile_model(tmp_path / "t.dshw", ArrayConfig())
    golden = run_program(prog, x).logits
    f = bench.fp16_study(prog, x, golden, gain_images=6, seed=2)
    with torch.no_grad():
        ref = model(x).double()
    assert f["golden_vs_torch_fp32"] == bench.compare(golden, ref)
    # PyTorch's half precision is not its float32: fp16-sized, nonzero differences
    d16 = f["torch_fp16_vs_torch_fp32"]["rel_l2_error"]
    assert 1e-5 < d16 < 2e-3, d16
    assert 1e-5 < f["golden_vs_torch_fp16"]["rel_l2_error"] < 2e-3
    p = f["input_perturbation"]
    assert p["images"] == 6 and 1e-4 < p["input_rel_l2"] < 2.0 ** -11
    assert math.isclose(p["gain"], p["output_rel_l2"] / p["input_rel_l2"])
    assert 0.1 < p["gain"] < 10
    assert sum(b["inputs"] for b in f["margins"]["bins"]) == 12

    rows = bench.layer_study(prog, x[:4], seed=2)
    assert rows[0]["node"] == "input" and rows[-1]["node"] == "fc"
    assert any(r["op"] == "add" for r in rows)
    assert all(0 <= r["golden"] < 2e-3 and r["rms"] > 0 for r in rows)
    blocks = [b["block"] for b in bench.block_outputs(rows)]
    assert len(blocks) == len(set(blocks)) and blocks[-1] == "fc"
    text = "\n".join(bench.fp16_markdown([{"model": "tiny", "image_size": 8, "fp16": f,
                                           "layers": rows}]))
    assert "golden vs PyTorch fp16" in text and "| >= 5 |" in text and "block outputs" in text


def test_fp16_failures():
    def run(margins, golden_l2, torch16_l2, p32=None):
        r = {"model": "m", "image_size": 8,
             "fp16": {"margins": {"disagreements": [{"input": i, "margin_sigma": m}
                                                    for i, m in enumerate(margins)]},
                      "golden_vs_torch_fp32": {"rel_l2_error": golden_l2},
                      "torch_fp16_vs_torch_fp32": {"rel_l2_error": torch16_l2}}}
        if p32 is not None:
            r["fp32_activations"] = {"agreement_with_torch": p32}
        return r

    assert bench.fp16_failures([run([0.3, 4.9], 1e-2, 2e-2, 1.0)]) == []
    msgs = bench.fp16_failures([run([0.3, 5.0], 1e-2, 2e-2), run([], 3e-2, 2e-2, 0.99)])
    assert len(msgs) == 3
    assert "m 8x8: disagrees with PyTorch fp32 at a margin of >= 5 sigma" in msgs[0]
    assert "3.000e-02 is larger than PyTorch fp16's 2.000e-02" in msgs[1]
    assert "fp32-activation program agrees on 99.0 % only" in msgs[2]
