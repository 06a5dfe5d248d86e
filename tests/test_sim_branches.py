"""The multi-branch array RTL (``densehw_branch_array``) on Icarus and Verilator against the
golden model and plain integer matmul: random and extreme inputs for each tested (k_w, k_a),
ragged shapes (K not a multiple of the lanes, N and M not multiples of the grid), stalls on
every stream, the float path (overflow, underflow, subnormals, ReLU), START errors."""

from __future__ import annotations

import numpy as np
import pytest

from contract import BF16, FP8_E4M3FN, FP16, FP32
from contract.branch_array import BranchArrayConfig
from contract.branches import decode_branches
from sim.backends import simulator_present
from sim.branch_driver import BranchLayer, run_branch_layers
from sw.branches import branch_gemm, branch_gemm_scaled
from sw.fpbits import to_bits

SIMS = [pytest.param(s, marks=pytest.mark.skipif(not simulator_present(s),
                                                 reason=f"{s} not installed"))
        for s in ("icarus", "verilator")]


def _layers(cfg, seed, *, scaled):
    """Random and extreme layers for ``cfg``; ``scaled`` adds float-path layers."""
    rng = np.random.default_rng(seed)
    ta, tw = (1 << cfg.abits) - 1, (1 << cfg.wbits) - 1
    out = []
    for n, k, m, stall in ((cfg.rows * 2 + 1, 2 * cfg.lanes + 3, cfg.cols + 1, 0.0),
                           (1, 1, 1, 0.0), (cfg.rows, cfg.depth, cfg.cols, 0.2),
                           (3, cfg.lanes, 2 * cfg.cols, 0.4),
                           (4 * cfg.rows + 3, cfg.depth - cfg.lanes + 1, 3 * cfg.cols + 2, 0.1)):
        out.append(BranchLayer(rng.integers(0, ta + 1, (n, k)), rng.integers(0, tw + 1, (m, k)),
                               stall=stall))
    k = cfg.depth - 1                               # extremes: the largest sums of both signs
    x = np.stack([np.full(k, ta), np.zeros(k, int), np.arange(k) % 2 * ta])
    w = np.stack([np.full(k, tw), np.zeros(k, int), (np.arange(k) + 1) % 2 * tw, np.full(k, tw)])
    out.append(BranchLayer(x, w))
    out.append(BranchLayer(x, w, relu=True))
    if scaled:
        fmt = cfg.scale_fmt
        xs = rng.integers(0, ta + 1, (cfg.rows + 1, 2 * cfg.lanes + 1))
        ws = rng.integers(0, tw + 1, (cfg.cols + 2, xs.shape[1]))
        for sx, sw, relu in ((0.375, [1.5, 2.0 ** -9, 3.0, 1.25, 7.0], False),
                             (2.0 ** 100, [2.0 ** 27, 1.0, 2.0 ** -130, 1.5, 2.0], True),
                             (2.0 ** -120, [2.0 ** -20, 0.75, 2.0 ** -6, 1.0, 3.5], False)):
            sw = np.resize(np.asarray(sw), ws.shape[0])
            out.append(BranchLayer(xs, ws, int(to_bits(np.float64(sx), fmt)),
                                   to_bits(sw.astype(np.float64), fmt), relu=relu, stall=0.3))
        out.append(BranchLayer(x, w, int(to_bits(np.float64(1.0), fmt)),
                               int(to_bits(np.float64(2.0 ** -30), fmt))))
    return out


def _robustness_layers(cfg, seed):
    """Misframed streams (results still right, ERROR bits set), a reset in the middle of a
    layer, and a clean layer after it."""
    rng = np.random.default_rng(seed)
    ta, tw = (1 << cfg.abits) - 1, (1 << cfg.wbits) - 1

    def layer(n, k, m, **kw):
        return BranchLayer(rng.integers(0, ta + 1, (n, k)), rng.integers(0, tw + 1, (m, k)),
                           **kw)
    return [layer(cfg.rows + 1, 2 * cfg.lanes + 1, 2 * cfg.cols, merge_frames="act"),
            layer(cfg.rows, cfg.lanes + 2, cfg.cols + 1, merge_frames="wgt"),
            layer(2 * cfg.rows, cfg.depth, 2 * cfg.cols, abort_after=40),
            layer(cfg.rows + 2, 3 * cfg.lanes - 1, cfg.cols + 2, stall=0.2)]


def _expect(cfg, layer):
    if layer.scaled:
        return branch_gemm_scaled(layer.x_codes, layer.w_codes, wbits=cfg.wbits, abits=cfg.abits,
                                  scale_x=layer.scale_x, scale_w=layer.scale_w,
                                  scale_fmt=cfg.scale_fmt, out_fmt=cfg.out_fmt,
                                  relu=layer.relu).numpy()
    y = branch_gemm(layer.x_codes, layer.w_codes, wbits=cfg.wbits, abits=cfg.abits).numpy()
    # the golden integer path is plain integer matmul of the decoded values
    plain = decode_branches(layer.x_codes, cfg.abits) @ decode_branches(layer.w_codes,
                                                                        cfg.wbits).T
    assert np.array_equal(y, plain)
    return np.maximum(y, 0) if layer.relu else y


def _run(cfg, sim, seed, *, scaled, probes=False, robustness=False):
    layers = _layers(cfg, seed, scaled=scaled)
    if robustness:
        layers += _robustness_layers(cfg, seed)
    print(f"{sim} {cfg.name} seed {seed}")
    results, info = run_branch_layers(cfg, layers, sim=sim, seed=seed, probes=probes,
                                      tag=f"test-{seed}")
    assert not info["problems"], info["problems"]
    vectors = 0
    for layer, res in zip(layers, results, strict=True):
        assert not res.problems, (res.shape, res.problems, info["log"])
        if layer.abort_after:
            continue
        want = _expect(cfg, layer)
        bad = np.argwhere(res.y != want)
        assert not bad.size, (f"{sim} {cfg.name} seed {seed} layer {res.index} {res.shape}: "
                              f"first mismatch at {tuple(bad[0])}: got {res.y[tuple(bad[0])]}, "
                              f"expected {want[tuple(bad[0])]}")
        vectors += want.size
    print(f"{vectors} results checked, 0 mismatches")
    return vectors


PAIRS = [(1, 1), (2, 2), (3, 3), (4, 4), (2, 8), (8, 8)]


@pytest.mark.parametrize("wbits, abits", PAIRS)
def test_icarus_pairs(wbits, abits):
    """Every tested (k_w, k_a) on Icarus, integers only (small grid, 4 lanes)."""
    if not simulator_present("icarus"):
        pytest.skip("icarus not installed")
    cfg = BranchArrayConfig(wbits=wbits, abits=abits, rows=2, cols=3, lanes=4, depth=32,
                            out_fmt=None, scale_fmt=None, pipeline=1 + (wbits + abits) % 2)
    _run(cfg, "icarus", 10 * wbits + abits, scaled=False)


def test_icarus_wide_store_entries():
    """Store entries wider than a word and not a multiple of it (16 lanes x 3 bits = 48): the
    loader's gearbox splits words across entries; pipeline 1."""
    if not simulator_present("icarus"):
        pytest.skip("icarus not installed")
    cfg = BranchArrayConfig(wbits=3, abits=2, rows=2, cols=2, lanes=16, depth=64, out_fmt=None,
                            scale_fmt=None, pipeline=1)
    _run(cfg, "icarus", 32, scaled=False, robustness=True)


@pytest.mark.parametrize("sim", SIMS)
def test_float_path_and_probes(sim):
    """The float path (fp32 scales, fp16 out), both modes in one array, START errors,
    misframed streams and a reset in the middle of a layer."""
    cfg = BranchArrayConfig(wbits=2, abits=8, rows=2, cols=2, lanes=4, depth=32,
                            out_fmt=FP16, scale_fmt=FP32)
    _run(cfg, sim, 7, scaled=True, probes=True, robustness=True)


def test_icarus_e4m3fn_output():
    """fp8_e4m3fn results (rounded in the carrier, saturated: scales of 2**100 give ±448,
    2**-120 signed zeros), bf16 scales."""
    if not simulator_present("icarus"):
        pytest.skip("icarus not installed")
    cfg = BranchArrayConfig(wbits=2, abits=4, rows=2, cols=2, lanes=4, depth=32,
                            out_fmt=FP8_E4M3FN, scale_fmt=BF16)
    _run(cfg, "icarus", 8, scaled=True)


def test_verilator_integers_wide_lanes():
    """Verilator, 1-bit codes, 16 lanes, 3x2 grid, integers only (SCALE refused)."""
    if not simulator_present("verilator"):
        pytest.skip("verilator not installed")
    cfg = BranchArrayConfig(wbits=1, abits=1, rows=3, cols=2, lanes=16, depth=64, out_fmt=None,
                            scale_fmt=None)
    _run(cfg, "verilator", 3, scaled=False, probes=True, robustness=True)


@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("wbits, abits", PAIRS + [(1, 8), (8, 1), (3, 5)])
def test_pairs_float_path(sim, wbits, abits):
    """Every tested pair on both simulators with the float path (bf16 scales, fp32 out)."""
    cfg = BranchArrayConfig(wbits=wbits, abits=abits, rows=2, cols=3, lanes=4, depth=64,
                            out_fmt=FP32, scale_fmt=BF16)
    _run(cfg, sim, 100 + 10 * wbits + abits, scaled=True)
