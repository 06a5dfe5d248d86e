"""cocotb regression of the generated ``densehw_array`` on Icarus and Verilator, bit for bit
against ``sw.golden.gemm_golden``, through the AXI ports (cocotbext-axi, :mod:`sim.array_tb`).

Every run stalls each stream (``tvalid`` of both sources, ``tready`` of the result sink) on
35-40% of the clocks; the host checks result counts, ``tlast`` positions, ``STATUS``/``ERROR``.
Layers run back to back with different shapes (ragged tiles), ReLU, bias and ``e0`` modes, and
one layer is cut by a reset in the middle, followed by clean layers. The default subset keeps
to one Verilator build (fp16) and small Icarus builds for the other formats; ``-m slow`` adds
the large shapes (up to 64x512x64) for fp16, bf16 and fp8_e5m2 with B = 2..5 on Verilator.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from contract.array import ArrayConfig
from sim.array_driver import Layer, check_layer, conv2d_rtl, gemm_rtl, run_layers
from sim.array_layers import golden, layer_mix, mismatches, random_layer
from sim.payload import random_group
from sw.conv import conv2d_golden

STALL = 0.4

needs_verilator = pytest.mark.skipif(shutil.which("verilator") is None,
                                     reason="verilator not installed")
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None,
                                  reason="iverilog not installed")
SIMS = [pytest.param("verilator", marks=needs_verilator),
        pytest.param("icarus", marks=needs_icarus)]


# -- checking -------------------------------------------------------------------------------------

def check_outcome(cfg, layers, outcome, *, seed):
    """Every layer: no interface problem; every non-aborted layer equals the golden model."""
    assert not outcome.problems, f"seed {seed}: " + "; ".join(outcome.problems) + \
        f" (log {outcome.log})"
    assert len(outcome.results) == len(layers)
    bad = []
    for i, (layer, res) in enumerate(zip(layers, outcome.results, strict=True)):
        if layer.abort_after:
            continue
        bad += mismatches(cfg, layer, res.y, golden(cfg, layer), seed=seed, index=i)
        n, k, m = layer.shape
        assert res.beats == n * m
    assert not bad, "\n".join(bad)


# -- default subset -------------------------------------------------------------------------------

FP16 = ArrayConfig(in_fmt="fp16", wbits=3, rows=2, cols=3, depth=32)


@pytest.mark.parametrize("sim", SIMS)
def test_layers_back_to_back(sim):
    """Ragged shapes, every flavor, settings changing layer to layer, a reset mid-layer."""
    seed = 11
    rng = np.random.default_rng(seed)
    cfg = FP16
    if sim == "verilator":
        layers = layer_mix(cfg, rng, 10, nmax=9, kmax=32, mmax=10, abort_at=4)
        layers.insert(0, random_layer(cfg, rng, 7, 32, 8, flavor="mixed", per_channel=True,
                                      bias=True, relu=False))
        layers.insert(1, random_layer(cfg, rng, 4, 5, 6, flavor="special", per_channel=False,
                                      bias=False, relu=True))
    else:
        layers = layer_mix(cfg, rng, 4, nmax=5, kmax=12, mmax=5, abort_at=2)
    out = run_layers(cfg, layers, sim=sim, seed=seed, stall=STALL, tag="regress")
    check_outcome(cfg, layers, out, seed=seed)
    assert out.results[-1].counters["CYCLES_BUSY"] > 0
    # the stalls reached every stream: the array saw missing activations and a blocked sink
    assert sum(r.counters.get("STALL_ACT", 0) for r in out.results) > 0
    assert sum(r.counters.get("STALL_RES", 0) for r in out.results) > 0
    aborted = [r for r in out.results if r.aborted]
    assert len(aborted) == 1
    assert aborted[0].beats > 0, "the reset should land while results are flowing"


@pytest.mark.parametrize("sim", SIMS)
def test_error_paths(sim):
    """START with bad K/N/M/E0 sets the documented ERROR bits and does not start; START while
    busy sets START_BUSY; a stream sent without its inner tlasts still computes the right
    results and sets ACT_FRAMING / WGT_FRAMING; clean layers follow each."""
    seed = 17
    rng = np.random.default_rng(seed)
    cfg = FP16
    layers = [random_layer(cfg, rng, 5, 9, 7, flavor="mixed", merge_frames="act"),
              random_layer(cfg, rng, 3, 6, 8, flavor="mixed"),
              random_layer(cfg, rng, 4, 7, 5, flavor="mixed", merge_frames="wgt",
                           per_channel=True),
              random_layer(cfg, rng, 2, 3, 4, flavor="special")]
    out = run_layers(cfg, layers, sim=sim, seed=seed, stall=STALL, tag="errors", probes=True)
    check_outcome(cfg, layers, out, seed=seed)


@needs_icarus
@pytest.mark.parametrize("fmt, out_fmt, wbits", [
    ("bf16", None, 5), ("fp8_e5m2", None, 2), ("fp8_e5m2", "fp16", 4), ("fp16", "bf16", 3),
])
def test_formats_icarus(fmt, out_fmt, wbits):
    """Each format (and mixed output formats) on a small array, every flavor, stalls."""
    seed = 21 + wbits
    rng = np.random.default_rng(seed)
    cfg = ArrayConfig(in_fmt=fmt, out_fmt=out_fmt, wbits=wbits, rows=2, cols=2, depth=16,
                      e0_min=-6, e0_max=5)
    layers = [random_layer(cfg, rng, int(rng.integers(1, 5)), int(rng.integers(1, 17)),
                           int(rng.integers(1, 5)), flavor=fl)
              for fl in ("mixed", "special", "cancel", "overflow", "underflow", "zeros")]
    out = run_layers(cfg, layers, sim="icarus", seed=seed, stall=STALL, tag="formats")
    check_outcome(cfg, layers, out, seed=seed)


@needs_icarus
def test_conv2d_rtl_matches_golden():
    """conv2d (stride 2, padding 1) through im2col on the RTL equals the golden conv."""
    seed = 5
    rng = np.random.default_rng(seed)
    cfg = FP16
    s, c, h, w, mo, kh = 1, 2, 5, 4, 4, 3
    g = random_group(rng, cfg.dot_config, c * kh * kh, s * h * w, mo, "mixed")
    x = random_group(rng, cfg.dot_config, h * w, s * c, 1, "mixed").x.reshape(s, c, h, w)
    codes, e0 = g.codes, int(g.e0[0])
    bias = g.bias
    y, stats = conv2d_rtl(x, codes, e0, config=cfg, kernel=kh, stride=2, padding=1,
                          bias_bits=bias, relu=False, sim="icarus", stall=STALL, seed=seed,
                          tag="conv")
    want = conv2d_golden(x, codes, e0, in_fmt=cfg.in_fmt, wbits=cfg.wbits, kernel=kh, stride=2,
                         padding=1, bias_bits=bias, config=cfg.dot_config)
    assert y.shape == want.shape == (s, mo, 3, 2)
    assert np.array_equal(y, want), f"seed {seed}: got {y.tolist()} want {want.tolist()}"
    assert stats["cycles_busy"] > 0 and 0 < stats["mac_utilization"] <= 1


def test_k_beyond_depth_is_an_error():
    cfg = FP16
    layer = Layer(np.zeros((2, 33), np.uint64), np.zeros((3, 33), np.uint8), 0)
    with pytest.raises(ValueError, match=r"K=33 exceeds the array's depth 32: the contract "
                                         r"rounds each dot product once"):
        check_layer(cfg, layer)
    with pytest.raises(ValueError, match=r"K=33 exceeds"):
        gemm_rtl(layer.x_bits, layer.codes, 0, config=cfg, sim="icarus")


@pytest.mark.parametrize("bad, msg", [
    (dict(e0=9), r"e0=9 is outside the array's range \[-8, 7\]"),
    (dict(e0=np.array([0, 0, -9])), r"e0=-9 is outside"),
    (dict(codes=np.full((3, 4), 8, np.uint8)), r"codes hold a value outside \[0, 7\]"),
    (dict(x_bits=np.full((2, 4), 1 << 16, np.uint64)), r"outside the raw fp16 patterns"),
    (dict(bias_bits=np.zeros(2, np.uint64)), r"bias must be \(3,\) integers"),
    (dict(abort_after=0), r"abort_after must be a positive int"),
])
def test_bad_layers(bad, msg):
    args = dict(x_bits=np.zeros((2, 4), np.uint64), codes=np.zeros((3, 4), np.uint8), e0=0)
    args.update(bad)
    with pytest.raises(ValueError, match=msg):
        check_layer(FP16, Layer(**args))


def test_checker_detects_mismatch():
    """The comparison used above reports a wrong bit with seed, position and both values."""
    rng = np.random.default_rng(3)
    layer = random_layer(FP16, rng, 3, 5, 4, flavor="mixed")
    want = golden(FP16, layer)
    got = want.copy()
    got[2, 1] ^= 1
    lines = mismatches(FP16, layer, got, want, seed=3, index=0)
    assert len(lines) == 1 and "Y[2,1]" in lines[0] and "seed 3" in lines[0]


# -- slow: the done-when sweep --------------------------------------------------------------------

BIG_SHAPES = [(64, 512, 64), (37, 300, 29), (5, 511, 61), (64, 1, 3), (13, 77, 64)]


@pytest.mark.slow
@needs_verilator
@pytest.mark.parametrize("wbits", [2, 3, 4, 5])
@pytest.mark.parametrize("fmt", ["fp16", "bf16", "fp8_e5m2"])
def test_large_gemms_verilator(fmt, wbits):
    """Random (N, K, M) up to 64x512x64 on a 4x4 array, depth 512, stalls on every stream."""
    seed = 100 + wbits
    rng = np.random.default_rng(seed)
    cfg = ArrayConfig(in_fmt=fmt, wbits=wbits, rows=4, cols=4, depth=512)
    layers = [random_layer(cfg, rng, n, k, m, flavor=str(rng.choice(["mixed", "special",
                                                                     "cancel", "narrow"])))
              for n, k, m in BIG_SHAPES]
    layers.insert(2, random_layer(cfg, rng, 30, 200, 20, flavor="mixed",
                                  abort_after=int(rng.integers(100, 3000))))
    out = run_layers(cfg, layers, sim="verilator", seed=seed, stall=0.35, tag="large",
                     timeout_factor=2.0)
    check_outcome(cfg, layers, out, seed=seed)


@pytest.mark.slow
@needs_verilator
def test_fp32_small_verilator():
    seed = 7
    rng = np.random.default_rng(seed)
    cfg = ArrayConfig(in_fmt="fp32", wbits=3, rows=2, cols=2, depth=16)
    layers = layer_mix(cfg, rng, 6, nmax=5, kmax=16, mmax=5, abort_at=3)
    out = run_layers(cfg, layers, sim="verilator", seed=seed, stall=STALL, tag="fp32")
    check_outcome(cfg, layers, out, seed=seed)


@pytest.mark.slow
@needs_icarus
def test_layers_icarus_long():
    seed = 12
    rng = np.random.default_rng(seed)
    layers = layer_mix(FP16, rng, 12, nmax=9, kmax=32, mmax=10, abort_at=6)
    out = run_layers(FP16, layers, sim="icarus", seed=seed, stall=STALL, tag="long")
    check_outcome(FP16, layers, out, seed=seed)


# -- densehw gemm backends ------------------------------------------------------------------------

def _gemm_files(tmp_path, rng, fmt, wbits, n, k, m, *, per_channel):
    from contract import decode_weights

    cfg = ArrayConfig(in_fmt=fmt, wbits=wbits, depth=16)
    layer = random_layer(cfg, rng, n, k, m, flavor="mixed", per_channel=per_channel, bias=True)
    codes = np.asarray(layer.codes)
    codes[:, 0] = (codes[:, 0] & ~np.uint8(cfg.pmax)) | np.uint8(0)   # e0 = smallest exponent
    w = decode_weights(codes, wbits, layer.e0)
    raw = {8: np.uint8, 16: np.uint16, 32: np.uint32}[cfg.in_fmt.width]
    np.save(tmp_path / "x.npy", np.asarray(layer.x_bits).astype(raw))
    np.save(tmp_path / "w.npy", w.astype(np.float64))
    np.save(tmp_path / "b.npy", np.asarray(layer.bias_bits).astype(raw))
    return [str(tmp_path / f) for f in ("x.npy", "w.npy", "b.npy")]


@needs_icarus
@pytest.mark.parametrize("per_channel", [False, True])
def test_cli_gemm_icarus_equals_golden(tmp_path, capsys, per_channel):
    """``densehw gemm --backend icarus`` writes the golden backend's bytes and reports cycles
    and MAC utilization."""
    from densehw import cli

    x, w, b = _gemm_files(tmp_path, np.random.default_rng(31 + per_channel), "fp16", 4, 6, 9,
                          5, per_channel=per_channel)
    args = ["gemm", "--fmt", "fp16", "--wbits", "4", "--x", x, "--w", w, "--bias", b, "--relu"]
    args += ["--per-channel-e0"] if per_channel else []
    assert cli.main(args + ["--backend", "golden", "--out", str(tmp_path / "g.npy")]) == 0
    assert cli.main(args + ["--backend", "icarus", "--out", str(tmp_path / "r.npy")]) == 0
    out = capsys.readouterr().out
    assert "MAC utilization" in out and "cycles busy" in out
    g, r = np.load(tmp_path / "g.npy"), np.load(tmp_path / "r.npy")
    assert g.dtype == r.dtype == np.uint16
    assert np.array_equal(g, r), f"golden {g.tolist()} rtl {r.tolist()}"


@needs_icarus
def test_backend_with_array_config(tmp_path, capsys):
    """``--array-config`` (TOML) picks the array; a mismatching config is a clear error."""
    from contract.array import load_array_config
    from densehw import cli

    x, w, b = _gemm_files(tmp_path, np.random.default_rng(41), "fp16", 3, 5, 7, 6,
                          per_channel=False)
    toml = tmp_path / "cfg.toml"
    toml.write_text('in_fmt = "fp16"\nwbits = 3\nrows = 3\ncols = 2\ndepth = 16\n')
    args = ["gemm", "--fmt", "fp16", "--wbits", "3", "--x", x, "--w", w, "--bias", b]
    assert cli.main(args + ["--out", str(tmp_path / "g.npy")]) == 0
    assert cli.main(args + ["--backend", "icarus", "--array-config", str(toml), "--stall",
                            "0.4", "--out", str(tmp_path / "r.npy")]) == 0
    assert "3x2 depth 16" in capsys.readouterr().out
    assert np.array_equal(np.load(tmp_path / "g.npy"), np.load(tmp_path / "r.npy"))
    bad = tmp_path / "bad.toml"
    bad.write_text('in_fmt = "fp16"\nwbits = 2\n')
    assert cli.main(args + ["--backend", "icarus", "--array-config", str(bad), "--out",
                            str(tmp_path / "bad.npy")]) == 2
    err = capsys.readouterr().err
    assert "has wbits 2 but the GEMM uses --wbits 3" in err and err.count("\n") == 1
    assert not (tmp_path / "bad.npy").exists()
    (tmp_path / "c.json").write_text('{"config": {"in_fmt": "bf16", "rows": 2}}')
    assert load_array_config(tmp_path / "c.json").in_fmt.name == "bf16"
    (tmp_path / "d.json").write_text('{"rows": 0}')
    with pytest.raises(ValueError, match=r"d.json'.*rows must be in \[1, 64\], not 0"):
        load_array_config(tmp_path / "d.json")


@pytest.mark.slow
@needs_verilator
@pytest.mark.parametrize("fmt, wbits, shape", [
    ("fp16", 3, (64, 512, 64)), ("bf16", 5, (64, 512, 64)), ("fp8_e5m2", 2, (64, 512, 64)),
    ("fp16", 4, (50, 333, 27)), ("bf16", 2, (3, 512, 64)), ("fp8_e5m2", 4, (64, 200, 9)),
])
def test_cli_backend_verilator_done_when(tmp_path, capsys, fmt, wbits, shape):
    """``densehw gemm --backend verilator`` (file loading, weight encoding, default array for
    the job, 35% stalls) equals ``--backend golden`` up to 64x512x64."""
    from densehw import cli

    n, k, m = shape
    x, w, b = _gemm_files(tmp_path, np.random.default_rng(k + wbits), fmt, wbits, n, k, m,
                          per_channel=bool(wbits % 2))
    args = ["gemm", "--fmt", fmt, "--wbits", str(wbits), "--x", x, "--w", w, "--bias", b]
    args += (["--relu"] if n % 2 else []) + (["--per-channel-e0"] if wbits % 2 else [])
    assert cli.main(args + ["--out", str(tmp_path / "g.npy")]) == 0
    assert cli.main(args + ["--backend", "verilator", "--stall", "0.35", "--out",
                            str(tmp_path / "r.npy")]) == 0
    want, got = np.load(tmp_path / "g.npy"), np.load(tmp_path / "r.npy")
    bad = np.argwhere(got != want)
    assert not bad.size, f"{bad.shape[0]} mismatches, first at {bad[0].tolist()}: " \
        f"golden {int(want[tuple(bad[0])]):#x} rtl {int(got[tuple(bad[0])]):#x}"
    out = capsys.readouterr().out
    assert "MAC utilization" in out and f"({n}, {k}, {m}) = {n * k * m} MACs" in out


# -- conv2d lowering (golden side) ---------------------------------------------------------------

def test_im2col_matches_torch_unfold():
    import torch
    from torch.nn import functional as F

    from sw.conv import im2col

    rng = np.random.default_rng(2)
    x = rng.integers(0, 1 << 16, (2, 3, 6, 5))
    cols, (s, oh, ow) = im2col(x, kernel=(3, 2), stride=(2, 1), padding=(1, 2))
    ref = F.unfold(torch.tensor(x, dtype=torch.float64), kernel_size=(3, 2), stride=(2, 1),
                   padding=(1, 2))                                   # (S, C*kh*kw, L)
    ref = ref.transpose(1, 2).reshape(-1, ref.shape[1]).to(torch.int64).numpy()
    assert (s, oh, ow) == (2, 3, 8)
    assert np.array_equal(cols, ref)


def test_conv2d_golden_matches_torch_on_exact_values():
    import torch

    from contract import decode_weights
    from sw.conv import conv2d_golden
    from sw.fpbits import from_bits, to_bits

    rng = np.random.default_rng(4)
    xv = rng.integers(-8, 9, (2, 3, 5, 5)).astype(np.float64)
    codes = rng.integers(0, 8, (4, 3 * 3 * 3)).astype(np.uint8)
    w = decode_weights(codes, 3, -1).reshape(4, 3, 3, 3)
    want = torch.nn.functional.conv2d(torch.tensor(xv), torch.tensor(w), stride=2, padding=1)
    y = conv2d_golden(to_bits(xv, "fp32"), codes, -1, in_fmt="fp32", wbits=3, kernel=3,
                      stride=2, padding=1)
    assert y.shape == tuple(want.shape)
    assert np.array_equal(from_bits(torch.tensor(y), "fp32").numpy(), want.numpy())


def test_conv_padding_is_a_plus_zero_term():
    """All activations -0, positive weights: interior outputs are -0 (every term -0), outputs
    whose window covers padding are +0 (the padding's +0 products are terms)."""
    from sw.conv import conv2d_golden

    x = np.full((1, 1, 3, 3), 0x8000, dtype=np.int64)                 # fp16 -0
    codes = np.zeros((1, 9), dtype=np.uint8)                           # +2**e0
    y = conv2d_golden(x, codes, 0, in_fmt="fp16", wbits=3, kernel=3, stride=1, padding=1)
    want = np.zeros((1, 1, 3, 3), dtype=np.int64)
    want[0, 0, 1, 1] = 0x8000
    assert np.array_equal(y, want)


@pytest.mark.parametrize("kw, msg", [
    (dict(kernel=4, padding=0), r"kernel 4x4 is larger than the padded input 3x3"),
    (dict(kernel=3, stride=0), r"stride must be at least 1"),
    (dict(kernel=3, padding=-1), r"padding must be non-negative"),
    (dict(kernel="3"), r"kernel must be an int or a pair of ints, not '3'"),
])
def test_conv_bad_geometry(kw, msg):
    from sw.conv import im2col

    with pytest.raises((ValueError, TypeError), match=msg):
        im2col(np.zeros((1, 1, 3, 3), np.int64), **kw)


# -- the checks can fail ---------------------------------------------------------------------------

@needs_icarus
@pytest.mark.parametrize("target, broken, expect", [
    ("assign m_axis_res__tdata = res__payload[15:0];",
     "assign m_axis_res__tdata = res__payload[15:0] ^ 16'h0001;", "mismatch"),
    ("assign m_axis_res__tlast = res__payload[16];",
     "assign m_axis_res__tlast = 1'h0;", "lost beats"),
])
def test_broken_rtl_is_caught(target, broken, expect):
    """Deliberately broken copies of the RTL (one result bit flipped; tlast never set) fail
    the checks that the regression relies on."""
    from sim.array_driver import array_verilog

    cfg = FP16
    text = array_verilog(cfg)
    assert target in text, "the generated RTL changed: update this self-test's target line"
    rng = np.random.default_rng(9)
    layers = [random_layer(cfg, rng, 3, 4, 4, flavor="narrow")]
    variant = "broken-" + ("data" if expect == "mismatch" else "tlast")
    out = run_layers(cfg, layers, sim="icarus", seed=9, stall=STALL, tag="broken",
                     verilog=text.replace(target, broken), variant=variant)
    with pytest.raises(AssertionError, match=expect):
        check_outcome(cfg, layers, out, seed=9)


# -- vendor primitives ----------------------------------------------------------------------------

DP16KD_MODEL = Path(__file__).resolve().parents[1] / "sim" / "models" / "dp16kd.v"


def ecp5_verilog(cfg: ArrayConfig, regmode="OUTREG") -> str:
    """The ECP5 flavour of the RTL (DP16KD weight stores; with ``fifo_cut`` the output FIFO
    too), with the block RAM's model."""
    from hw.array_top import generate_array_verilog
    from sim.array_driver import TOP

    text = generate_array_verilog(cfg, name=TOP, family="ecp5")
    assert text.count("DP16KD #(") == cfg.cols + cfg.fifo_cut
    assert '.REGMODE_B("OUTREG")' in text
    return text.replace('.REGMODE_B("OUTREG")', f'.REGMODE_B("{regmode}")') + "\n" + \
        DP16KD_MODEL.read_text()


@needs_icarus
@pytest.mark.parametrize("wbits,rows,cols,floorplan", [
    (5, 2, 3, "compact"),   # the DP16KD's 9-bit mode
    (3, 2, 6, "spread"),    # aligner cut, bias ring, register copies
], ids=["b5_2x3", "b3_2x6_spread"])
def test_ecp5_block_ram_rtl_icarus(wbits, rows, cols, floorplan):
    """The RTL built for ECP5 (each weight store a DP16KD with its output register) gives
    the golden model's bits: ragged layers, every flavor, stalls, a reset mid-layer; also
    with the timing structures of the "spread" floorplan."""
    seed = 23 + cols
    rng = np.random.default_rng(seed)
    cfg = ArrayConfig(in_fmt="fp16", wbits=wbits, rows=rows, cols=cols, depth=32,
                      floorplan=floorplan)
    assert cfg.aligner_cut == (floorplan == "spread")
    layers = layer_mix(cfg, rng, 4, nmax=5, kmax=32, mmax=2 * cols + 1, abort_at=2)
    out = run_layers(cfg, layers, sim="icarus", seed=seed, stall=STALL,
                     tag=f"ecp5-{rows}x{cols}", verilog=ecp5_verilog(cfg),
                     variant=f"ecp5-{rows}x{cols}")
    check_outcome(cfg, layers, out, seed=seed)


@needs_icarus
def test_ecp5_block_ram_latency_is_checked():
    """The same RTL with the block RAM's output register left out (one clock early codes)
    fails: the test above depends on the primitive's configuration."""
    seed = 24
    rng = np.random.default_rng(seed)
    cfg = FP16
    layers = [random_layer(cfg, rng, 3, 9, 5, flavor="narrow")]
    out = run_layers(cfg, layers, sim="icarus", seed=seed, stall=STALL, tag="ecp5-noreg",
                     verilog=ecp5_verilog(cfg, regmode="NOREG"), variant="ecp5-noreg")
    with pytest.raises(AssertionError, match="mismatch"):
        check_outcome(cfg, layers, out, seed=seed)
