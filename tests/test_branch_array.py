# amaranth: UnusedElaboratable=no
"""The multi-branch array's configuration, register map and framing (contract), its generated
files (``densehw generate``), lint, and ``densehw gemm --arith branches`` on the simulators."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from contract import FP16, FP32
from contract.array import result_order
from contract.branch_array import (
    BRANCH_REGISTERS,
    BranchArrayConfig,
    branch_activation_stream,
    branch_channel_words,
    branch_weight_stream,
    load_branch_array_config,
)
from contract.branches import unpack_branches
from densehw.cli import main
from hw.gen import VERILATOR_LINT_WAIVERS
from sim.backends import simulator_present

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "configs" / "branches" / "w2a2.toml"


def test_config_validation():
    cfg = BranchArrayConfig()
    assert (cfg.wbits, cfg.abits, cfg.lanes, cfg.out_fmt, cfg.scale_fmt) == (2, 2, 8, FP32, FP32)
    assert cfg.q == 9 and cfg.acc_width == (512 * 9).bit_length()
    assert cfg.result_width == cfg.acc_width + 1 and cfg.channel_header_words == 1
    for kwargs, exc, text in (
            ({"wbits": 0}, ValueError, r"wbits must be in \[1, 8\], not 0"),
            ({"abits": 2.0}, TypeError, "abits must be an integer"),
            ({"lanes": 3}, ValueError, "lanes must be a power of two"),
            ({"lanes": 64, "wbits": 8}, ValueError, "at most 256, not 512"),
            ({"depth": 100}, ValueError, "depth must be a power of two"),
            ({"rows": 64, "cols": 32}, ValueError, "at most 1024"),
            ({"out_fmt": None}, ValueError, "both given"),
            ({"out_fmt": "fp64x"}, ValueError, "Unknown format"),
            ({"scale_fmt": 3}, TypeError, "scale_fmt must be a FloatFormat"),
            ({"pipeline": 3}, ValueError, r"pipeline must be in \[1, 2\]"),
            ({"arith": "shift"}, ValueError, "arith must be 'branches'")):
        with pytest.raises(exc, match=text):
            BranchArrayConfig(**kwargs)
    small = BranchArrayConfig(out_fmt=None, scale_fmt=None)
    assert not small.float_path and small.channel_header_words == 0
    assert small.register_resets()["FORMATS"] == 0


def test_round_trip_and_files(tmp_path):
    for cfg in (BranchArrayConfig(wbits=3, abits=5, rows=2, cols=7, lanes=4, depth=128,
                                  out_fmt=FP16, scale_fmt="bf16", pipeline=1),
                BranchArrayConfig(out_fmt=None, scale_fmt=None),
                BranchArrayConfig(out_fmt="fp8_e4m3fn", scale_fmt="bf16")):
        assert BranchArrayConfig.from_dict(cfg.to_dict()) == cfg
        again = BranchArrayConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again.out_fmt == cfg.out_fmt and again.register_resets() == cfg.register_resets()
        meta = cfg.metadata()
        assert meta["config"]["arith"] == "branches" and len(meta["registers"]) == len(
            BRANCH_REGISTERS)
    path = tmp_path / "b.toml"
    path.write_text('arith = "branches"\nwbits = 1\nabits = 1\nout_fmt = "none"\n'
                    'scale_fmt = "none"\n')
    assert load_branch_array_config(path) == BranchArrayConfig(wbits=1, abits=1, out_fmt=None,
                                                               scale_fmt=None)
    path.write_text('wbits = 1\n')
    with pytest.raises(ValueError, match="not a branch array configuration"):
        load_branch_array_config(path)
    path.write_text('arith = "branches"\nlanes = 5\n')
    with pytest.raises(ValueError, match="b.toml.*lanes must be a power of two"):
        load_branch_array_config(path)
    with pytest.raises(ValueError, match="unknown branch array configuration keys: colums"):
        BranchArrayConfig.from_dict({"colums": 3})


def test_register_map():
    offsets = [r.offset for r in BRANCH_REGISTERS]
    assert len(set(offsets)) == len(offsets) and all(o % 4 == 0 for o in offsets)
    for reg in BRANCH_REGISTERS:
        used = 0
        for f in reg.fields:
            assert f.lsb + f.width <= 32 and not used & f.mask, (reg.name, f.name)
            used |= f.mask
    resets = BranchArrayConfig(wbits=3, abits=7, rows=5, cols=6, lanes=16).register_resets()
    assert resets["GEOMETRY"] == 5 | 6 << 8 | 16 << 16 | 3 << 24 | 7 << 28
    assert resets["ID"] == 0x44534842
    assert resets["FORMATS"] == 8 | 23 << 4 | 8 << 16 | 23 << 20           # fp32 out and scales
    e4m3 = BranchArrayConfig(out_fmt="fp8_e4m3fn", scale_fmt="bf16").register_resets()
    assert e4m3["FORMATS"] == 4 | 3 << 4 | 1 << 10 | 8 << 16 | 7 << 20     # OUT_SPECIALS: fn


def test_streams_follow_the_framing():
    cfg = BranchArrayConfig(wbits=3, abits=2, rows=2, cols=3, lanes=4, depth=64)
    rng = np.random.default_rng(0)
    n, k, m = 5, 10, 4
    x = rng.integers(0, 4, (n, k))
    w = rng.integers(0, 8, (m, k))
    f = cfg.framing(n, k, m)
    assert f["chunks"] == 3 and f["m_tiles"] == 2 and f["n_tiles"] == 3
    acts = branch_activation_stream(cfg, x, m)
    assert len(acts) == f["act_beats"] and sum(t for _, t in acts) == f["act_tlasts"]
    # beat 1 of the first tile: chunk 1 (k = 4..7) of rows 0 and 1, lane l at (r*4 + l)*2
    word = acts[1][0]
    for r in range(2):
        for lane in range(4):
            assert (word >> ((r * 4 + lane) * 2)) & 3 == x[r, 4 + lane]
    assert acts[2][0] >> (2 * 2 + 4 * 2) & 0xF == 0           # lanes past K are 0
    wgt = branch_weight_stream(cfg, w, np.arange(m) + 100)
    assert len(wgt) == f["wgt_words"] == m * branch_channel_words(cfg, k) == m * 2
    assert [word for word, _ in wgt[::2]] == [100, 101, 102, 103]
    words = np.array([[word for word, _ in wgt[1::2]]], dtype=np.uint32).T
    assert np.array_equal(unpack_branches(words, k, 3), w)
    assert [t for _, t in wgt] == [0, 1] * m
    assert len(result_order(cfg, n, k, m)) == n * m


def test_generate_files_lint_clean(tmp_path):
    out = tmp_path / "gen"
    assert main(["generate", "--config", str(EXAMPLE), "-o",
                 str(out), "-q"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["densehw_branch_array.v", "densehw_branch_array.json",
                            "densehw_branch_params.h", "densehw_branch_params.vh",
                            "densehw_branch.core"])
    header = (out / "densehw_branch_params.h").read_text()
    assert "#define DENSEHW_BRANCH_REG_SCALE_X 0x3Cu" in header
    assert "#define DENSEHW_BRANCH_ID_MAGIC 0x44534842u" in header
    again = tmp_path / "again"
    assert main(["generate", "--config", str(EXAMPLE), "-o",
                 str(again), "-q"]) == 0
    for name in names:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    if shutil.which("gcc"):
        src = tmp_path / "t.c"
        f = load_branch_array_config(EXAMPLE).framing(5, 10, 4)
        src.write_text(f'#include "{out}/densehw_branch_params.h"\nint main(void) {{ return '
                       f'(int)(DENSEHW_BRANCH_ACT_BEATS(5u, 10u, 4u) != {f["act_beats"]}u || '
                       f'DENSEHW_BRANCH_WGT_WORDS(10u, 4u) != {f["wgt_words"]}u); }}\n')
        r = subprocess.run(["gcc", "-Wall", "-Wextra", "-Werror", "-o", str(tmp_path / "t"),
                            str(src)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert subprocess.run([str(tmp_path / "t")]).returncode == 0
    if not simulator_present("verilator"):
        pytest.skip("verilator not installed")
    for cfg_text, tag in (("", "default"), ('wbits = 8\nabits = 1\nrows = 3\ncols = 5\nlanes = 2'
                                             '\nout_fmt = "none"\nscale_fmt = "none"\n'
                                             'pipeline = 1\n', "odd")):
        path = tmp_path / f"{tag}.toml"
        path.write_text('arith = "branches"\n' + cfg_text)
        gen = tmp_path / tag
        assert main(["generate", "--config", str(path), "-o", str(gen), "-q"]) == 0
        r = subprocess.run([shutil.which("verilator"), "--lint-only", "-Wall",
                            *VERILATOR_LINT_WAIVERS, "--top-module", "densehw_branch_array",
                            "densehw_branch_array.v"], cwd=gen, capture_output=True, text=True)
        assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[-3000:]


def test_shift_only_commands_refuse_a_branch_config(tmp_path, capsys):
    out = tmp_path / "prog"
    assert main(["compile", str(tmp_path / "missing.dshw"), "-o", str(out), "--config",
                 str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "describes a multi-branch array" in err and err.count("\n") == 1


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_cli_gemm_on_the_rtl(sim, tmp_path, capsys):
    if not simulator_present(sim):
        pytest.skip(f"{sim} not installed")
    rng = np.random.default_rng(5)
    x = (2 * rng.integers(0, 4, (5, 19)) - 3).astype(np.int8)
    w = (2 * rng.integers(0, 2, (6, 19)) - 1).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    cfg = tmp_path / "arr.toml"
    cfg.write_text('arith = "branches"\nwbits = 1\nabits = 2\nrows = 2\ncols = 2\nlanes = 4\n'
                   'depth = 32\nout_fmt = "fp16"\nscale_fmt = "fp32"\n')
    base = ["gemm", "--arith", "branches", "--wbits", "1", "--abits", "2", "--x",
            str(tmp_path / "x.npy"), "--w", str(tmp_path / "w.npy"), "--backend", sim]
    assert main(base + ["--out", str(tmp_path / "y.npy"), "--array-config", str(cfg)]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int64 and np.array_equal(y, x.astype(np.int64) @ w.T.astype(np.int64))
    assert main(base + ["--out", str(tmp_path / "f.npy"), "--array-config", str(cfg),
                        "--scale-x", "0.5", "--scale-w", "0.375", "--out-fmt", "fp16",
                        "--relu", "--stall", "0.3"]) == 0
    want = np.maximum(x.astype(np.float64) @ w.T * 0.5 * 0.375, 0).astype(np.float16)
    assert np.array_equal(np.load(tmp_path / "f.npy").view(np.float16), want)
    out = capsys.readouterr().out
    assert f"{sim} densehw_branch_array 2x2x4 lanes" in out
    assert main(base + ["--out", str(tmp_path / "e.npy"), "--array-config", str(cfg),
                        "--scale-x", "1", "--scale-w", "1"]) == 2
    assert "has out_fmt fp16 but the GEMM needs fp32" in capsys.readouterr().err
