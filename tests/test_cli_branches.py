"""``densehw gemm --arith branches`` (golden backend): exact integers, the float path, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from gemm_cli import expect_gemm_error, save  # noqa: E402  (tests/ helper)

from contract import FP16, FP32
from contract.branches import encode_branches
from densehw.cli import main
from sw.branches import branch_gemm_scaled
from sw.fpbits import to_bits

ROOT = Path(__file__).resolve().parents[1]


def _odd(rng, shape, k, dtype=np.int8):
    top = (1 << k) - 1
    return (2 * rng.integers(0, top + 1, size=shape) - top).astype(dtype)


def _gemm(tmp_path, x, w, *extra, wbits=2, abits=2):
    return main(["gemm", "--arith", "branches", "--wbits", str(wbits), "--abits", str(abits),
                 "--x", save(tmp_path, "x.npy", x), "--w", save(tmp_path, "w.npy", w),
                 "--out", str(tmp_path / "y.npy"), *extra])


def test_integer_path(tmp_path, capsys):
    rng = np.random.default_rng(3)
    for wbits, abits, dtype in ((1, 1, np.int8), (2, 2, np.int8), (3, 3, np.int16),
                                (4, 4, np.int16), (2, 8, np.int16), (8, 8, np.int16)):
        x = _odd(rng, (6, 70), abits, dtype)
        w = _odd(rng, (5, 70), wbits, dtype if wbits < 8 else np.int16)
        assert _gemm(tmp_path, x, w, wbits=wbits, abits=abits) == 0
        y = np.load(tmp_path / "y.npy")
        assert y.dtype == np.int64 and y.shape == (6, 5)
        assert np.array_equal(y, x.astype(np.int64) @ w.astype(np.int64).T)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("\n") == 6 and "int64, backend golden" in out.out


def test_float_path(tmp_path):
    rng = np.random.default_rng(4)
    x, w = _odd(rng, (4, 33), 3), _odd(rng, (3, 33), 2)
    assert _gemm(tmp_path, x, w, "--scale-x", "0.125", "--scale-w", "0.75", wbits=2,
                 abits=3) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.uint32                        # fp32 raw bits by default
    exact = (x.astype(np.int64) @ w.astype(np.int64).T) * 0.125 * 0.75   # exact in float64
    assert np.array_equal(y.view(np.float32), exact.astype(np.float32))
    # per-channel scales from a file, fp16 out, ReLU
    sw = np.array([0.1, 2.5, 1e-3], np.float32)
    assert _gemm(tmp_path, x, w, "--scale-x", "3", "--scale-w", save(tmp_path, "sw.npy", sw),
                 "--out-fmt", "fp16", "--relu", wbits=2, abits=3) == 0
    y = np.load(tmp_path / "y.npy")
    want = branch_gemm_scaled(encode_branches(x, 3), encode_branches(w, 2), wbits=2, abits=3,
                              scale_x=int(to_bits(np.float32(3), FP32)),
                              scale_w=to_bits(sw, FP32), out_fmt=FP16, relu=True).numpy()
    assert y.dtype == np.uint16 and np.array_equal(y.astype(np.int64), want)
    assert (y.view(np.float16) >= 0).all() and (y != 0).any()
    # bf16 scales
    assert _gemm(tmp_path, x, w, "--scale-x", "0.1015625", "--scale-w", "3", "--scale-fmt",
                 "bf16", wbits=2, abits=3) == 0


def test_errors(tmp_path, capsys):
    x = save(tmp_path, "x.npy", np.ones((2, 3), np.int8))
    w = save(tmp_path, "w.npy", np.full((4, 3), -3, np.int16))
    base = ["gemm", "--arith", "branches", "--wbits", "2", "--abits", "1"]
    even = save(tmp_path, "even.npy", np.array([[1, 1, 1], [3, 1, 2], [1, 1, 1], [1, 1, 1]],
                                               np.int16))
    expect_gemm_error(tmp_path, capsys, base + ["--x", x, "--w", even], "W ", "even.npy",
                      "value at index (1, 2) is 2; expected an odd integer in [-3, 3]")
    big = save(tmp_path, "big.npy", np.array([[1, -3, 1]], np.int8))
    expect_gemm_error(tmp_path, capsys, base + ["--x", big, "--w", w],
                      "X ", "value at index (0, 1) is -3; expected an odd integer in [-1, 1]")
    for dtype in (np.int32, np.int64, np.uint8, np.float32):
        bad = save(tmp_path, "bad.npy", np.ones((2, 3), dtype))
        expect_gemm_error(tmp_path, capsys, base + ["--x", bad, "--w", w],
                          f"has dtype {np.dtype(dtype).name}; expected int8 or int16 odd integers")
    w5 = save(tmp_path, "w5.npy", np.ones((4, 5), np.int8))
    expect_gemm_error(tmp_path, capsys, base + ["--x", x, "--w", w5], "expected W of shape (M, 3)")
    expect_gemm_error(tmp_path, capsys, base + ["--x", x, "--w", w, "--scale-x", "1"],
                      "--scale-x and --scale-w go together")
    expect_gemm_error(tmp_path, capsys, base + ["--x", x, "--w", w, "--out-fmt", "fp16"],
                      "--out-fmt needs the float path")
    scaled = base + ["--x", x, "--w", w, "--scale-x", "1"]
    expect_gemm_error(tmp_path, capsys, scaled + ["--scale-w", "0.1"],
                      "--scale-w is 0.1, which fp32 cannot represent exactly")
    expect_gemm_error(tmp_path, capsys, scaled + ["--scale-w", "-2"],
                      "--scale-w is -2.0; expected a finite positive scale")
    expect_gemm_error(tmp_path, capsys, scaled + ["--scale-w", "inf"], "finite positive")
    expect_gemm_error(tmp_path, capsys, scaled + ["--scale-w", "abc"], "must be a number")
    sw = save(tmp_path, "sw.npy", np.array([1.0, 0.0, 1.0, 1.0], np.float32))
    expect_gemm_error(tmp_path, capsys, scaled + ["--scale-w", sw],
                      "--scale-w at index 1 is 0.0; expected a finite positive scale")
    sw3 = save(tmp_path, "sw3.npy", np.ones(3, np.float32))
    expect_gemm_error(tmp_path, capsys, scaled + ["--scale-w", sw3], "expected (4,)")
    expect_gemm_error(tmp_path, capsys, scaled + ["--scale-w", "1", "--scale-fmt", "fp12"],
                      "Unknown format 'fp12'")
    expect_gemm_error(tmp_path, capsys, ["gemm", "--arith", "branches", "--wbits", "9", "--abits",
                                         "1", "--x", x, "--w", w],
                      "--wbits must be an integer in [1, 8] for --arith branches, not '9'")
    expect_gemm_error(tmp_path, capsys, ["gemm", "--arith", "branches", "--wbits", "2", "--x", x,
                                         "--w", w],
                      "--abits must be an integer in [1, 8] for --arith branches, not None")
    expect_gemm_error(tmp_path, capsys, base + ["--x", x, "--w", w, "--fmt", "fp16"],
                      "--fmt is not used with --arith branches")
    expect_gemm_error(tmp_path, capsys, base + ["--x", x, "--w", w, "--backend", "nope"],
                      "unknown backend 'nope' for --arith branches; expected one of golden")
    # the shift path keeps its rules
    expect_gemm_error(tmp_path, capsys, ["gemm", "--wbits", "3", "--x", x, "--w", w],
                      "--fmt is required")
    expect_gemm_error(tmp_path, capsys, ["gemm", "--fmt", "fp16", "--wbits", "3", "--abits", "2",
                                         "--x", x, "--w", w], "--abits needs --arith branches")


def test_subprocess(tmp_path):
    x = save(tmp_path, "x.npy", np.array([[1, -1, 1]], np.int8))
    w = save(tmp_path, "w.npy", np.array([[1, 1, 1], [-1, 1, -1]], np.int8))
    out = tmp_path / "y.npy"
    cmd = [sys.executable, "-m", "densehw", "gemm", "--arith", "branches", "--wbits", "1",
           "--abits", "1", "--x", x, "--w", w, "--out", str(out)]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert np.load(out).tolist() == [[1, -3]]
    res = subprocess.run(cmd[:-2] + ["--out", str(tmp_path / "z.npy"), "--w", str(tmp_path)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
