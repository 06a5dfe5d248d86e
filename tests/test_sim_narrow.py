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
], ids=lambda kw: f"{kw['in_fmt']}{'_mx' if kw.get('mx_block') else ''}")
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
