"""fp8_e4m3fn and OCP MX activations on the generated array (Icarus and Verilator): every
result's raw bits against the golden model, element patterns over their whole space (NaN,
subnormals, signed zeros, the top binade), MX scales inside, at and beyond the window, and NaN."""

import shutil

import numpy as np
import pytest

from contract.array import ArrayConfig
from sim.array_driver import gemm_rtl, run_layers
from sim.array_layers import NARROW_FLAVORS, golden, mismatches, random_layer

needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs iverilog")
needs_verilator = pytest.mark.skipif(shutil.which("verilator") is None,
                                     reason="needs verilator")


def _check(cfg, layers, out, seed):
    assert not out.problems, f"seed {seed}: " + "; ".join(out.problems)
    bad = []
    for i, (layer, res) in enumerate(zip(layers, out.results, strict=True)):
        bad += mismatches(cfg, layer, res.y, golden(cfg, layer), seed=seed, index=i)
    assert not bad, "\n".join(bad)


def _layers(cfg, rng, kmax):
    return [random_layer(cfg, rng, int(rng.integers(1, 2 * cfg.rows + 2)),
                         int(rng.integers(1, kmax + 1)), int(rng.integers(1, 2 * cfg.cols + 2)),
                         flavor=fl, stall=0.3)
            for fl in NARROW_FLAVORS for _ in range(2)]


@needs_icarus
@pytest.mark.parametrize("kw", [
    dict(in_fmt="fp8_e4m3fn", out_fmt="fp16", wbits=3),
    dict(in_fmt="fp8_e4m3fn", out_fmt="bf16", wbits=4, mx_block=32),
    dict(in_fmt="fp4_e2m1", out_fmt="fp16", wbits=2, mx_block=32, scale_min=-4, scale_max=3),
    dict(in_fmt="fp6_e3m2", out_fmt="fp16", wbits=3, mx_block=32),
    dict(in_fmt="fp8_e4m3fn", out_fmt="fp8_e4m3fn", wbits=5),
    dict(in_fmt="fp8_e5m2", out_fmt="fp8_e4m3fn", wbits=3, mx_block=32),
], ids=lambda kw: f"{kw['in_fmt']}{'_mx' if kw.get('mx_block') else ''}_{kw['out_fmt']}")
def test_narrow_icarus(kw):
    seed = 2700 + kw["wbits"]
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = ArrayConfig(rows=2, cols=2, depth=128, e0_min=-6, e0_max=5, **kw)
    layers = _layers(cfg, rng, 100)
    out = run_layers(cfg, layers, sim="icarus", seed=seed, tag="narrow")
    _check(cfg, layers, out, seed)


@needs_verilator
def test_mx_e4m3_verilator():
    """A 4x4 MXFP8 (e4m3) array, K up to the depth (several blocks), more layers."""
    seed = 2732
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = ArrayConfig(in_fmt="fp8_e4m3fn", out_fmt="fp16", mx_block=32, rows=4, cols=4,
                      depth=256)
    layers = _layers(cfg, rng, 256) + _layers(cfg, rng, 64)
    out = run_layers(cfg, layers, sim="verilator", seed=seed, tag="narrow-v")
    _check(cfg, layers, out, seed)


@needs_icarus
def test_gemm_rtl_takes_scales():
    cfg = ArrayConfig(in_fmt="fp4_e2m1", out_fmt="fp16", mx_block=32, rows=2, cols=2, depth=64)
    x = np.full((2, 40), 0x2)                         # 1.0
    scales = np.array([[127 + 2, 127 - 1], [0xFF, 127]])
    codes = np.zeros((1, 40), dtype=np.int64)        # +2**e0
    y, _ = gemm_rtl(x, codes, 0, config=cfg, scales=scales, sim="icarus")
    want = int(np.float16(32 * 4 + 8 * 0.5).view(np.uint16))      # 132; then a NaN block
    assert y.tolist() == [[want], [0x7E00]]
    with pytest.raises(ValueError, match="needs the block scales"):
        gemm_rtl(x, codes, 0, config=cfg, sim="icarus")


@needs_icarus
@pytest.mark.parametrize("relu", [False, True])
def test_e4m3fn_output_saturates_beyond_the_carrier_icarus(relu):
    """fp16 in, fp8_e4m3fn out: finite sums past the carrier's range (2**23) give ±448 on the
    RTL as in the golden model; infinite or NaN terms give the NaN."""
    from sw.golden import gemm_golden

    seed = 2740
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = ArrayConfig(in_fmt="fp16", out_fmt="fp8_e4m3fn", wbits=4, rows=2, cols=2, depth=64,
                      e0_min=-6, e0_max=5)
    n, k, m = 6, 40, 4
    x = rng.integers(0x7800, 0x7C00, (n, k)) | (rng.integers(0, 2, (n, k)) << 15)
    x[0, :], x[1, :] = 0x7BFF, 0xFBFF                 # ±65504 throughout
    x[2, 7], x[3, 9] = 0x7E00, 0x7C00                 # a NaN term; an infinite term
    x[4, :] = rng.integers(0, 0x4000, k)              # small: in range
    codes = rng.integers(0, 16, (m, k))
    codes[0, :] = 7                                   # +2**(e0 + 7)
    e0 = np.array([5, -6, 0, 3])
    bias = np.array([0x10, 0xFE, 0x7E, 0x01])
    y, _ = gemm_rtl(x, codes, e0, config=cfg, bias_bits=bias, relu=relu, sim="icarus",
                    tag=f"e4m3-sat-{int(relu)}")
    want = gemm_golden(x, codes, e0, in_fmt="fp16", wbits=4, out_fmt="fp8_e4m3fn",
                       bias_bits=bias, relu=relu, config=cfg.dot_config).numpy()
    assert want[0, 0] == 0x7E and want[1, 0] == (0 if relu else 0xFE)
    assert want[2, 0] == 0x7F and want[3, 0] == 0x7F
    bad = np.argwhere(y != want)
    assert bad.size == 0, (f"seed {seed}: Y{tuple(bad[0])} {y[tuple(bad[0])]:#x} != "
                           f"{want[tuple(bad[0])]:#x}")


# -- densehw gemm ---------------------------------------------------------------------------------

def _files(tmp_path, rng, fmt, n, k, m, *, mx):
    from contract import get_format

    f = get_format(fmt)
    x = rng.integers(0, 1 << f.width, (n, k)).astype(np.uint8)
    w = (rng.choice([-1.0, 1.0], (m, k)) * np.exp2(rng.integers(-3, 1, (m, k))))
    paths = {"x": tmp_path / "x.npy", "w": tmp_path / "w.npy", "s": tmp_path / "s.npy"}
    np.save(paths["x"], x)
    np.save(paths["w"], w)
    s = None
    if mx:
        s = rng.integers(127 - 9, 127 + 9, (n, -(-k // 32))).astype(np.uint8)
        s[0, 0] = 0xFF
        np.save(paths["s"], s)
    return x, w, s, {k: str(v) for k, v in paths.items()}


def test_cli_gemm_e4m3fn_and_mx_golden(tmp_path, capsys):
    """``densehw gemm --fmt fp8_e4m3fn`` (and with ``--scales``) writes the golden model's bits;
    bad scales are one-line errors (exit 2)."""
    from contract import encode_weights
    from densehw import cli
    from sw.golden import gemm_golden
    from sw.mx import fold_scales

    rng = np.random.default_rng(2740)
    x, w, s, p = _files(tmp_path, rng, "fp8_e4m3fn", 3, 70, 4, mx=True)
    codes, e0 = encode_weights(w, 3)
    base = ["gemm", "--fmt", "fp8_e4m3fn", "--out-fmt", "fp16", "--wbits", "3", "--x", p["x"],
            "--w", p["w"]]
    assert cli.main(base + ["--out", str(tmp_path / "y.npy")]) == 0
    want = gemm_golden(x.astype(np.int64), codes, e0, in_fmt="fp8_e4m3fn", out_fmt="fp16",
                       wbits=3).numpy()
    assert np.array_equal(np.load(tmp_path / "y.npy"), want)
    assert cli.main(base + ["--scales", p["s"], "--out", str(tmp_path / "ys.npy")]) == 0
    xc, c = fold_scales(x, s, "fp8_e4m3fn", scale_min=-127, scale_max=127)
    want = gemm_golden(xc, codes, e0, in_fmt=c, out_fmt="fp16", wbits=3).numpy()
    got = np.load(tmp_path / "ys.npy")
    assert np.array_equal(got, want) and (got[0] == 0x7E00).all()      # the NaN block
    capsys.readouterr()
    np.save(tmp_path / "bad.npy", s[:, :1])
    assert cli.main(base + ["--scales", str(tmp_path / "bad.npy"), "--out",
                            str(tmp_path / "z.npy")]) == 2
    err = capsys.readouterr().err
    assert "expected uint8 E8M0 patterns of shape (3, 3)" in err and err.count("\n") == 1
    assert not (tmp_path / "z.npy").exists()
    np.save(tmp_path / "x16.npy", np.ones(x.shape, dtype=np.float16))
    assert cli.main(["gemm", "--fmt", "fp16", "--wbits", "3", "--x", str(tmp_path / "x16.npy"),
                     "--w", p["w"], "--scales", p["s"], "--out", str(tmp_path / "z.npy")]) == 2
    assert "--scales needs an MX element format" in capsys.readouterr().err


@needs_icarus
def test_cli_gemm_mx_icarus_equals_golden(tmp_path):
    """An MX fp4 GEMM on the simulated array (its default MX array) equals the golden backend
    with the same array configuration."""
    from densehw import cli

    rng = np.random.default_rng(2741)
    _, _, _, p = _files(tmp_path, rng, "fp4_e2m1", 5, 40, 3, mx=True)
    cfg = tmp_path / "mx.toml"
    cfg.write_text('in_fmt = "fp4_e2m1"\nout_fmt = "fp16"\nwbits = 3\nrows = 2\ncols = 2\n'
                   'depth = 64\nmx_block = 32\n')
    args = ["gemm", "--fmt", "fp4_e2m1", "--out-fmt", "fp16", "--wbits", "3", "--x", p["x"],
            "--w", p["w"], "--scales", p["s"], "--array-config", str(cfg)]
    assert cli.main(args + ["--backend", "golden", "--out", str(tmp_path / "g.npy")]) == 0
    assert cli.main(args + ["--backend", "icarus", "--out", str(tmp_path / "r.npy")]) == 0
    g, r = np.load(tmp_path / "g.npy"), np.load(tmp_path / "r.npy")
    assert np.array_equal(g, r), f"golden {g.tolist()} rtl {r.tolist()}"
    assert (g[0] == 0x7E00).all()
