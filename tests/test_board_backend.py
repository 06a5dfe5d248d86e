"""``densehw board`` and the ``board`` backend (:mod:`boards.board_backend`) on the simulated board
image (``LinkTop`` under Verilator behind a pseudo-terminal): a ragged GEMM with special values
and two test images of a compiled digits program, bit for bit against the golden model; the
configuration checks and the progress bar."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from contract import decode_weights, get_format
from contract.array import ArrayConfig
from densehw.cli import main
from sim.payload import mixed_patterns, special_patterns

SEED = 2023
IMAGES = 2
torch.set_num_threads(1)


def _gemm_files(tmp_path, seed, n=6, k=37, m=9, per_channel=True):
    """A ragged fp16 GEMM (not multiples of the 4x4 array) with per-channel (or per-tensor)
    offsets, a bias and special values (inf, NaN, -0, subnormals) among the activations and
    biases."""
    fmt = get_format("fp16")
    rng = np.random.default_rng(seed)
    sp = special_patterns(fmt)
    x = mixed_patterns(rng, fmt, (n, k)).astype(np.uint16)
    x[0, 3], x[1, 5], x[2, 7] = sp["+inf"], sp["qnan"], sp["-inf"]
    x[3, :] = sp["-0"]
    x[4, :4] = [sp["min_sub"], sp["-max_sub"], sp["max"], sp["-max"]]
    codes = rng.integers(0, 8, (m, k))
    e0 = rng.integers(-6, 5, m) if per_channel else -2
    codes[:, 0] &= 0b100                        # exponent code 0 present: e0 = smallest exponent
    w = decode_weights(codes, 3, e0)
    bias = mixed_patterns(rng, fmt, (m,)).astype(np.uint16)
    bias[0], bias[1] = sp["-0"], sp["min_sub"]
    paths = [tmp_path / f for f in ("x.npy", "w.npy", "b.npy")]
    for path, arr in zip(paths, (x, w.astype(np.float64), bias), strict=True):
        np.save(path, arr)
    return [str(p) for p in paths]


def test_board_gemm_bit_exact(simulated_board, tmp_path, capsys):
    port = simulated_board.port
    x, w, b = _gemm_files(tmp_path, SEED)
    args = ["--fmt", "fp16", "--wbits", "3", "--x", x, "--w", w, "--bias", b, "--relu",
            "--per-channel-e0"]
    assert main(["gemm", *args, "--out", str(tmp_path / "g.npy")]) == 0
    assert main(["board", "gemm", *args, "--port", port, "--out", str(tmp_path / "b.npy")]) == 0
    out = capsys.readouterr().out
    assert "gemm: board densehw_array 4x4 depth 512 (fp16_b3_4x4_d512_" in out
    assert "(6, 37, 9) = 1998 MACs in" in out and f"bytes over {port}" in out
    (tmp_path / "t").mkdir()
    x, w, b = _gemm_files(tmp_path / "t", SEED + 3, per_channel=False)
    args = ["--fmt", "fp16", "--wbits", "3", "--x", x, "--w", w, "--bias", b]
    assert main(["gemm", "--backend", "board", "--port", port, *args, "--out",
                 str(tmp_path / "b2.npy")]) == 0
    assert main(["gemm", *args, "--out", str(tmp_path / "g2.npy")]) == 0
    for got_file, want_file in (("b.npy", "g.npy"), ("b2.npy", "g2.npy")):
        got, want = np.load(tmp_path / got_file), np.load(tmp_path / want_file)
        assert got.dtype == want.dtype == np.uint16 and got.shape == (6, 9)
        bad = np.argwhere(got != want)
        assert not bad.size, (f"seed {SEED}: {bad.shape[0]} mismatches, first at "
                              f"{bad[0].tolist()}: board {int(got[tuple(bad[0])]):#06x} golden "
                              f"{int(want[tuple(bad[0])]):#06x}")
    want = np.load(tmp_path / "g2.npy")
    assert (want == 0x7E00).any() and (want == 0xFC00).any()      # NaN and -inf came through


def test_board_progress_bar_and_stats(simulated_board, capsys):
    from boards.board_backend import factory
    from sw.golden import gemm_golden

    gemm = factory(None, port=simulated_board.port, progress=True)
    rng = np.random.default_rng(SEED + 1)
    x = rng.integers(0, 0x7C00, (5, 20))
    codes = rng.integers(0, 8, (3, 20))
    y, stats = gemm(x, codes, 1, in_fmt="fp16", wbits=3, out_fmt="fp16", bias_bits=None,
                    relu=False, config=None)
    assert np.array_equal(y, gemm_golden(x, codes, 1, in_fmt="fp16", wbits=3).numpy())
    err = capsys.readouterr().err
    assert "board (5, 20, 3)" in err and "beat" in err
    assert stats["macs"] == 300 and stats["cycles"] == stats["cycles_busy"] > 0
    assert stats["board"] == simulated_board.port and stats["link_bytes"] > 20 * 2 * 10
    with pytest.raises(ValueError, match="GEMM has wbits=4, the array has 3"):
        gemm(x, codes, 1, in_fmt="fp16", wbits=4, out_fmt="fp16", bias_bits=None, relu=False,
             config=None)
    with pytest.raises(ValueError, match="GEMM has in_fmt=bf16, the array has fp16"):
        gemm(x, codes, 1, in_fmt="bf16", wbits=3, out_fmt="fp16", bias_bits=None, relu=False,
             config=None)
    gemm.close()


def test_board_info_and_config_checks(simulated_board, tmp_path, capsys):
    port = simulated_board.port
    assert main(["board", "info", "--port", port, "--save", str(tmp_path / "board.json")]) == 0
    out = capsys.readouterr().out
    assert f"board: {port}: densehw_array 4x4, depth 512, fp16 -> fp16, B=3" in out
    assert json.loads((tmp_path / "board.json").read_text()) == ArrayConfig().to_dict()
    x, w, b = _gemm_files(tmp_path, SEED + 2, n=5, k=8, m=5)
    other = tmp_path / "other.toml"
    other.write_text('in_fmt = "fp16"\nwbits = 3\nrows = 2\ncols = 2\ndepth = 256\n')
    base = ["gemm", "--fmt", "fp16", "--wbits", "3", "--x", x, "--w", w, "--per-channel-e0",
            "--out", str(tmp_path / "y.npy"), "--backend", "board"]
    assert main(base + ["--port", port, "--array-config", str(other)]) == 2
    err = capsys.readouterr().err
    assert f"the board on {port} holds the array fp16_b3_4x4_d512_" in err
    assert "this needs fp16_b3_2x2_d256_" in err and err.count("\n") == 1
    assert main(base) == 2
    assert "--backend board needs --port" in capsys.readouterr().err
    assert main(base + ["--port", port, "--array-config", str(tmp_path / "board.json")]) == 0
    assert not (tmp_path / "bad.npy").exists()


@pytest.fixture(scope="module")
def program_dir(tmp_path_factory, simulated_board):
    """A small digits model (3 epochs, as in test_e2e_rtl) compiled for the array the board
    holds (``densehw board info --save``, as docs/board.md shows)."""
    from sw.data import digits
    from sw.export import export_model
    from sw.models import DigitsCNN
    from sw.train import TrainConfig, set_seed, train

    tmp = tmp_path_factory.mktemp("board_digits")
    set_seed(0)
    model = DigitsCNN(method="denseshift", wbits=3, width=6)
    train(model, digits(), TrainConfig(epochs=3, lr=5e-3, seed=0, progress=False))
    export_model(model.eval(), tmp / "digits.dshw")
    assert main(["board", "info", "--port", simulated_board.port, "--save",
                 str(tmp / "board.json")]) == 0
    assert main(["compile", str(tmp / "digits.dshw"), "-o", str(tmp / "prog"),
                 "--config", str(tmp / "board.json")]) == 0
    return tmp


def test_board_run_digits_bit_exact(simulated_board, program_dir, capsys):
    """``densehw board run``: every array step of two test images equals the golden model's
    bits (the report compares each output pattern), and so do the predictions."""
    prog = program_dir / "prog"
    rep, gold = program_dir / "report-board.json", program_dir / "report-golden.json"
    assert main(["run", str(prog), "--data", "digits", "--limit", str(IMAGES), "--report",
                 str(gold)]) == 0
    assert main(["board", "run", str(prog), "--data", "digits", "--limit", str(IMAGES),
                 "--batch-size", str(IMAGES), "--port", simulated_board.port, "--report",
                 str(rep)]) == 0
    out = capsys.readouterr().out
    assert f"run: digits {IMAGES} samples on board" in out and "0 bit mismatches" in out
    r, g = json.loads(rep.read_text()), json.loads(gold.read_text())
    assert r["backend"] == "board" and r["samples"] == IMAGES
    assert r["compared_with_golden"] is True and r["mismatches"] == 0
    arr = [o for o in r["ops"] if o["where"] == "array"]
    layers = r["cycles"]["per_layer"]
    assert [o["compared_outputs"] for o in arr] == [IMAGES * x["n"] * x["m"] for x in layers]
    assert len(arr) == 3 and all(o["mismatches"] == 0 for o in arr)
    for x in layers:
        (stats,) = x["measured"]                 # one GEMM per layer for both images
        assert stats["macs"] == IMAGES * x["n"] * x["k"] * x["m"] and stats["cycles"] > 0
    assert r["predictions"] == g["predictions"] and r["labels"] == g["labels"]
