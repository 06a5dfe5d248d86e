"""``densehw gemm`` (golden backend): file conventions, results, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from gemm_cli import expect_gemm_error, save  # noqa: E402  (tests/ helper)

from contract import BF16, FP8_E5M2, FP16, FP32, encode_weights
from densehw.cli import main
from sw.fpbits import to_bits
from sw.golden import gemm_golden

ROOT = Path(__file__).resolve().parents[1]


def _gemm(tmp_path, x, w, *extra, fmt="fp16", wbits=3, bias=None):
    args = ["gemm", "--fmt", fmt, "--wbits", str(wbits), "--x", save(tmp_path, "x.npy", x),
            "--w", save(tmp_path, "w.npy", w), "--out", str(tmp_path / "y.npy"), *extra]
    if bias is not None:
        args += ["--bias", save(tmp_path, "b.npy", bias)]
    return main(args)


def _weights(rng, m, k, wbits, lo=-3):
    span = 1 << (wbits - 1)
    exp = rng.integers(lo, lo + span, size=(m, k))
    sign = np.where(rng.random((m, k)) < 0.5, -1.0, 1.0)
    return (sign * np.ldexp(1.0, exp)).astype(np.float32)


def test_float16_values(tmp_path, capsys):
    x = np.array([[1.0, 2.0, -0.5], [0.25, 3.0, 1.5]], np.float16)
    w = np.array([[1.0, -2.0, 0.5], [4.0, 1.0, 2.0]], np.float32)
    assert _gemm(tmp_path, x, w) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.uint16 and y.shape == (2, 2)
    assert y.view(np.float16).tolist() == [[-3.25, 5.0], [-5.0, 7.0]]
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("\n") == 1 and "backend golden" in out.out


def test_matches_golden_raw_bits_bias_relu(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 40)).astype(np.float16)
    w = _weights(rng, 6, 40, 4)
    bias = rng.standard_normal(6).astype(np.float16)
    assert _gemm(tmp_path, x.view(np.uint16), w, "--relu", wbits=4, bias=bias.view(np.uint16)) \
        == 0
    y = np.load(tmp_path / "y.npy")
    codes, e0 = encode_weights(w, 4)
    want = gemm_golden(to_bits(x, FP16), codes, e0, in_fmt=FP16, wbits=4,
                       bias_bits=to_bits(bias, FP16), relu=True).numpy()
    assert y.dtype == np.uint16 and np.array_equal(y.astype(np.int64), want)
    assert (y.view(np.float16) >= 0).all()
    # the same with float values instead of raw bits
    assert _gemm(tmp_path, x.astype(np.float32), w, "--relu", wbits=4, bias=bias) == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), y)


def test_bf16_fp8_raw_and_out_fmt(tmp_path):
    rng = np.random.default_rng(2)
    xb = torch.randn(3, 17).to(torch.bfloat16)
    raw = xb.view(torch.int16).numpy().view(np.uint16)
    w = _weights(rng, 4, 17, 3)
    assert _gemm(tmp_path, raw, w, "--out-fmt", "fp16", fmt="bf16") == 0
    y = np.load(tmp_path / "y.npy")
    codes, e0 = encode_weights(w, 3)
    want = gemm_golden(raw.astype(np.int64), codes, e0, in_fmt=BF16, wbits=3, out_fmt=FP16)
    assert y.dtype == np.uint16 and np.array_equal(y, want.numpy())
    # bf16 values given as float32 are accepted when exact
    assert _gemm(tmp_path, xb.float().numpy(), w, "--out-fmt", "fp16", fmt="bf16") == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), y)
    # fp8 raw uint8 in, fp32 out with an fp32 bias
    x8 = rng.integers(0, 256, size=(4, 9)).astype(np.uint8)
    w8 = _weights(rng, 2, 9, 5, lo=-9)
    b32 = np.array([1.5, -2.0 ** -30], np.float32)
    assert _gemm(tmp_path, x8, w8, "--out-fmt", "fp32", fmt="fp8_e5m2", wbits=5, bias=b32) == 0
    y = np.load(tmp_path / "y.npy")
    codes, e0 = encode_weights(w8, 5)
    want = gemm_golden(x8, codes, e0, in_fmt=FP8_E5M2, wbits=5, out_fmt=FP32,
                       bias_bits=to_bits(b32, FP32))
    assert y.dtype == np.uint32 and y.shape == (4, 2) and np.array_equal(y, want.numpy())
    # fp8 output is uint8
    assert _gemm(tmp_path, x8, w8, "--out-fmt", "fp8_e5m2", fmt="fp8_e5m2", wbits=5) == 0
    assert np.load(tmp_path / "y.npy").dtype == np.uint8


def test_per_channel_e0(tmp_path, capsys):
    w = np.array([[1.0, 8.0], [2.0 ** -10, 2.0 ** -7]], np.float64)
    x = np.array([[1.0, 1.0]], np.float16)
    assert _gemm(tmp_path, x, w, "--per-channel-e0") == 0
    assert np.load(tmp_path / "y.npy").view(np.float16).tolist() == [[9.0, 2.0 ** -10 + 2.0 ** -7]]
    # per tensor, the exponents span 2**-10 .. 2**3: too wide for 3-bit codes
    assert _gemm(tmp_path, x, w) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weight at index (0, 0)" in err and "outside the 4" in err


def test_errors(tmp_path, capsys):
    x = save(tmp_path, "x.npy", np.ones((2, 3), np.float16))
    w = save(tmp_path, "w.npy", np.ones((4, 3), np.float32))
    base = ["gemm", "--fmt", "fp16", "--wbits", "3"]
    bad_w = save(tmp_path, "bw.npy", np.array([[1.0, 0.3, 1.0]], np.float32))
    expect_gemm_error(tmp_path, capsys, base + ["--x", x, "--w", bad_w],
                      "weight at index (0, 1)", "0.3", "not a power of two")
    zero_w = save(tmp_path, "zw.npy", np.array([[1.0, 1.0], [1.0, 0.0]]))
    x2 = save(tmp_path, "x2.npy", np.ones((1, 2), np.float16))
    expect_gemm_error(tmp_path, capsys, base + ["--x", x2, "--w", zero_w],
                      "weight at index (1, 1)", "no zero")
    w5 = save(tmp_path, "w5.npy", np.ones((4, 5), np.float32))
    expect_gemm_error(tmp_path, capsys, base + ["--x", x, "--w", w5],
                      "has shape (4, 5)", "has shape (2, 3)", "expected W of shape (M, 3)")
    xi = save(tmp_path, "xi.npy", np.ones((2, 3), np.int16))
    expect_gemm_error(tmp_path, capsys, base + ["--x", xi, "--w", w],
                      "has dtype int16", "uint16 raw fp16 bit patterns")
    x8 = save(tmp_path, "x8.npy", np.ones((2, 3), np.uint8))
    expect_gemm_error(tmp_path, capsys, base + ["--x", x8, "--w", w], "has dtype uint8")
    xs = save(tmp_path, "xs.npy", np.array([[1.0, 1.0 + 2.0 ** -12, 1.0]], np.float32))
    expect_gemm_error(tmp_path, capsys, base + ["--x", xs, "--w", w],
                      "value at index (0, 1) is 1.000244140625, which fp16 cannot represent "
                      "exactly")
    expect_gemm_error(tmp_path, capsys, base + ["--x", str(tmp_path / "missing.npy"), "--w", w],
                      "missing.npy", "does not exist")
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy")
    expect_gemm_error(tmp_path, capsys, base + ["--x", str(junk), "--w", w], "cannot read X file")
    x1 = save(tmp_path, "x1.npy", np.ones(3, np.float16))
    expect_gemm_error(tmp_path, capsys, base + ["--x", x1, "--w", w], "has shape (3,)", "(N, K)")
    b = save(tmp_path, "b.npy", np.ones(3, np.float16))
    expect_gemm_error(tmp_path, capsys, base + ["--x", x, "--w", w, "--bias", b],
                      "has shape (3,); expected (4,)")
    bu = save(tmp_path, "bu.npy", np.ones(4, np.uint32))
    expect_gemm_error(tmp_path, capsys, base + ["--x", x, "--w", w, "--bias", bu],
                      "bias", "has dtype uint32")
    wu = save(tmp_path, "wu.npy", np.ones((4, 3), np.uint8))
    expect_gemm_error(tmp_path, capsys, base + ["--x", x, "--w", wu], "has dtype uint8")
    expect_gemm_error(tmp_path, capsys, base + ["--x", x, "--w", w, "--backend", "nope"],
                      "unknown backend 'nope'; expected one of golden")
    expect_gemm_error(tmp_path, capsys,
                      ["gemm", "--fmt", "fp12", "--wbits", "3", "--x", x, "--w", w],
                      "Unknown format 'fp12'")
    expect_gemm_error(tmp_path, capsys,
                      ["gemm", "--fmt", "fp16", "--wbits", "7", "--x", x, "--w", w],
                      "--wbits must be an integer in [2, 5], not '7'")


def test_output_errors_leave_nothing(tmp_path, capsys):
    x = save(tmp_path, "x.npy", np.ones((2, 3), np.float16))
    w = save(tmp_path, "w.npy", np.ones((4, 3), np.float32))
    base = ["gemm", "--fmt", "fp16", "--wbits", "3", "--x", x, "--w", w, "--out"]
    assert main(base + [str(tmp_path / "nodir" / "y.npy")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(base + [str(tmp_path / "y.txt")]) == 2
    assert "must end in .npy" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npy", "x.npy"]


def test_subprocess(tmp_path):
    x = save(tmp_path, "x.npy", np.array([[1.0, -1.0], [65504.0, 65504.0]], np.float16))
    w = save(tmp_path, "w.npy", np.array([[1.0, 1.0], [2.0, -1.0]], np.float32))
    out = tmp_path / "y.npy"
    cmd = [sys.executable, "-m", "densehw", "gemm", "--fmt", "fp16", "--wbits", "2", "--x", x,
           "--w", w, "--out", str(out)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stderr == "" and "backend golden" in res.stdout
    # 1 - 1 = +0, 2 + 1 = 3, 65504 + 65504 = inf, 2*65504 - 65504 = 65504
    assert np.load(out).tolist() == [[0x0000, 0x4200], [0x7C00, 0x7BFF]]
    res = subprocess.run(cmd[:-2] + ["--w", x, "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
