"""End to end on the golden backend: train a small digits model, export, `densehw compile`,
`densehw run` on every test image; the program's accuracy tracks PyTorch's and the report holds
what the issue asks for. A stand-in "RTL" backend exercises the per-layer comparison path."""

from __future__ import annotations

import json

import pytest
import torch

from contract.array import ArrayConfig
from densehw import cmd_run
from densehw.cli import main
from sw import backends
from sw.data import digits
from sw.export import export_model
from sw.golden import gemm_golden
from sw.models import DigitsCNN
from sw.train import TrainConfig, set_seed, train

torch.set_num_threads(1)
SEED = 0


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    data = digits()
    set_seed(SEED)
    model = DigitsCNN(method="denseshift", wbits=3, width=6)
    train(model, data, TrainConfig(epochs=8, lr=5e-3, seed=SEED, progress=False))
    export_model(model.eval(), tmp / "digits.dshw")
    assert main(["compile", str(tmp / "digits.dshw"), "-o", str(tmp / "prog"),
                 "--config", "default"]) == 0
    return tmp


def _report(path):
    return json.loads(path.read_text())


def test_golden_on_all_digits_tracks_pytorch(compiled, capsys):
    rep_path = compiled / "report-golden.json"
    assert main(["run", str(compiled / "prog"), "--data", "digits", "--backend", "golden",
                 "--report", str(rep_path), "--reports-dir", str(compiled / "none")]) == 0
    out = capsys.readouterr().out
    assert "run: digits 360 samples on golden" in out
    rep = _report(rep_path)
    assert rep["samples"] == 360 == len(rep["predictions"]) == len(rep["labels"])
    correct = sum(p == t for p, t in zip(rep["predictions"], rep["labels"], strict=True))
    assert rep["accuracy"] == pytest.approx(100 * correct / 360, abs=1e-3)
    assert rep["torch_accuracy"] > 80
    # golden within 0.3 points of PyTorch: at most one of 360 images (0.28 points) differs
    assert abs(rep["accuracy"] - rep["torch_accuracy"]) <= 0.3
    assert rep["disagreements_with_torch"] <= 1
    assert rep["logits_vs_torch"]["max_abs_diff"] < 0.1
    assert rep["mismatches"] == 0 and rep["compared_with_golden"] is False
    layers = rep["cycles"]["per_layer"]
    cfg = ArrayConfig()
    assert [(x["n"], x["k"], x["m"]) for x in layers] == [(64, 54, 6), (16, 54, 12),
                                                          (16, 108, 12)]
    for x in layers:
        assert x["cycles"] >= cfg.ideal_cycles(x["n"], x["k"], x["m"])
        assert 0 < x["mac_utilization"] <= 1
    assert rep["cycles"]["total_per_sample"] == sum(x["cycles"] for x in layers)
    assert rep["projection"] is None and "no board reports" in rep["projection_note"]
    where = {o["name"]: o["where"] for o in rep["ops"]}
    assert where["features.3"] == where["features.7"] == where["features.10"] == "array"
    assert where["features.0"] == where["head"] == where["features.13"] == "host"
    assert all(o["nonfinite_outputs"] == 0 for o in rep["ops"])


def test_stand_in_rtl_backend_is_compared_layer_by_layer(compiled, capsys):
    seen = []

    def factory(config):
        assert config == ArrayConfig()

        def gemm(x_bits, codes, e0, *, in_fmt, wbits, out_fmt, bias_bits, relu, config):
            # an independent path: one output row at a time
            rows = [gemm_golden(x_bits[i:i + 1], codes, e0, in_fmt=in_fmt, wbits=wbits,
                                out_fmt=out_fmt, bias_bits=bias_bits, relu=relu)
                    for i in range(x_bits.shape[0])]
            seen.append(x_bits.shape)
            return torch.cat(rows).numpy(), {"cycles": 1000 + len(seen)}
        return gemm

    backends.register_backend("test-rtl", factory, replace=True)
    rep_path = compiled / "report-rtl.json"
    assert main(["run", str(compiled / "prog"), "--data", "digits", "--backend", "test-rtl",
                 "--limit", "12", "--report", str(rep_path)]) == 0
    rep = _report(rep_path)
    assert rep["samples"] == 12 and rep["compared_with_golden"] is True
    assert rep["mismatches"] == 0
    arr = [o for o in rep["ops"] if o["where"] == "array"]
    assert [o["compared_outputs"] for o in arr] == [12 * 64 * 6, 12 * 16 * 12, 12 * 16 * 12]
    layers = rep["cycles"]["per_layer"]
    assert [x["measured"] for x in layers] == [
        [{"cycles": 1001}], [{"cycles": 1002}], [{"cycles": 1003}]]
    assert [x["measured_cycles_per_sample"] for x in layers] == [1001 / 12, 1002 / 12,
                                                                  1003 / 12]
    assert rep["cycles"]["measured_total_per_sample"] == pytest.approx(3006 / 12)
    assert "0 bit mismatches vs golden" in capsys.readouterr().out


def test_rtl_backend_missing_is_reported(compiled, capsys, monkeypatch):
    """A registered backend that cannot run here (its simulator is not installed) is one line
    and exit code 3, no report; an unknown backend is an ordinary error (2)."""
    from sim import backends as sim_backends

    monkeypatch.setattr(sim_backends, "simulator_present", lambda sim: False)
    rc = main(["run", str(compiled / "prog"), "--data", "digits", "--backend", "verilator",
               "--report", str(compiled / "r-v.json")])
    err = capsys.readouterr().err
    assert rc == cmd_run.EXIT_UNAVAILABLE == 3
    assert "backend 'verilator' is not available: verilator is not installed" in err
    assert err.count("\n") == 1
    assert not (compiled / "r-v.json").exists()
    rc = main(["run", str(compiled / "prog"), "--data", "digits", "--backend", "nope",
               "--report", str(compiled / "r-v.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown backend 'nope'; expected one of golden" in err
    assert err.count("\n") == 1 and not (compiled / "r-v.json").exists()
    assert main(["run", str(compiled / "prog"), "--data", "speech"]) == 2
    assert "compiled for digits inputs, not --data speech" in capsys.readouterr().err


def test_projection_uses_matching_board_reports(compiled):
    boards = compiled / "reports" / "ice40" / "x"
    boards.mkdir(parents=True)
    cfg = ArrayConfig()
    from contract.files import RTL_SOURCES, source_fingerprint

    (boards / "summary.json").write_text(json.dumps({
        "kind": "shift-array", "board": "ice40", "design": "x", "config": cfg.to_dict(),
        "fmax_mhz": 50.0, "timing_met": True,
        "rtl_fingerprint": source_fingerprint(RTL_SOURCES)}))
    other = compiled / "reports" / "ecp5" / "y"
    other.mkdir(parents=True)
    (other / "summary.json").write_text(json.dumps({
        "kind": "shift-array", "board": "ecp5", "design": "y",
        "config": ArrayConfig(rows=8, cols=8).to_dict(), "fmax_mhz": 100.0}))
    rep_path = compiled / "r-p.json"
    assert main(["run", str(compiled / "prog"), "--data", "digits", "--limit", "3",
                 "--report", str(rep_path), "--reports-dir", str(compiled / "reports")]) == 0
    rep = _report(rep_path)
    proj = {p["board"]: p for p in rep["projection"]}
    cycles = rep["cycles"]["total_per_sample"]
    assert proj["ice40"]["config_matches_program"] is True
    assert proj["ecp5"]["config_matches_program"] is False
    # a report without (or with another) RTL fingerprint was made from other sources
    assert proj["ice40"]["rtl_matches"] is True and proj["ecp5"]["rtl_matches"] is False
    assert "made from other RTL sources" in rep["projection_note"]
    assert proj["ice40"]["latency_us"] == pytest.approx(cycles / 50.0, rel=1e-3)
    assert proj["ice40"]["fps"] == pytest.approx(50e6 / cycles, rel=1e-3)
