"""The SoC-style wrapper example (``examples/soc``) around the output of ``densehw generate``:
Verilator ``-Wall`` lint (waivers only for the generated file) and an Icarus simulation of a
whole layer, checked bit for bit against the golden model (ROM-driven streams, AXI4-Lite
programming from the generated ``densehw_params.vh``, with and without throttling)."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest

from contract.array import (
    CTRL,
    activation_stream,
    result_order,
    weight_stream,
)
from densehw.cli import load_config
from densehw.cli import main as cli_main
from hw.gen import VERILATOR_LINT_WAIVERS
from sim.payload import random_floats
from sw.golden import gemm_golden
from sw.perfmodel import layer_cycles

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOC = ROOT / "examples" / "soc"
SOURCES = ["soc_top.v", "soc_ctrl.v", "soc_rom_source.v", "soc_axis_fifo.v", "soc_res_sink.v"]
CONFIG_TOML = """\
in_fmt = "fp16"
wbits = 3
rows = 2
cols = 3
depth = 32
e0_min = -6
e0_max = 5
pipeline = 2
"""


def _tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed")
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Output of ``densehw generate`` for a small array (through the CLI)."""
    base = tmp_path_factory.mktemp("soc")
    cfg_path = base / "soc.toml"
    cfg_path.write_text(CONFIG_TOML)
    out = base / "gen"
    assert cli_main(["generate", "--config", str(cfg_path), "-o", str(out), "-q"]) == 0
    return load_config(cfg_path), out


def test_lint_waivers_match_generator():
    rules = re.findall(r'lint_off -rule (\w+) -file "\*/densehw_array\.v"',
                       (SOC / "lint.vlt").read_text())
    assert sorted(rules) == sorted(w.removeprefix("-Wno-") for w in VERILATOR_LINT_WAIVERS)


def test_soc_lints_clean(generated):
    _, gen = generated
    verilator = _tool("verilator")
    cmd = [verilator, "--lint-only", "-Wall", f"-I{gen}", f"-I{SOC}", str(SOC / "lint.vlt"),
           str(gen / "densehw_array.v"), *(str(SOC / s) for s in SOURCES),
           "--top-module", "soc_top"]
    result = subprocess.run(cmd, cwd=gen, capture_output=True, text=True)
    assert result.returncode == 0 and "%Warning" not in result.stderr, result.stderr[-4000:]
    # without the waiver file the generated code does warn: the waivers are scoped, not global
    bare = [c for c in cmd if not c.endswith("lint.vlt")]
    result = subprocess.run(bare, cwd=gen, capture_output=True, text=True)
    warned = set(re.findall(r"%Warning-\w+: ([^:]+):", result.stderr))
    assert warned and all(p.endswith("densehw_array.v") for p in warned), warned


def _hex_lines(words, digits):
    return "".join(f"{int(w):0{digits}x}\n" for w in words)


@pytest.mark.parametrize("throttle", [0, 1])
def test_soc_simulation(generated, tmp_path, throttle):
    cfg, gen = generated
    iverilog, vvp = _tool("iverilog"), _tool("vvp")
    seed = 1234 + throttle
    rng = np.random.default_rng(seed)
    n, k, m = (5, 20, 7) if throttle == 0 else (4, 32, 5)
    per_channel = bool(throttle)
    relu = bool(throttle)
    x = random_floats(rng, cfg.in_fmt, (n, k), 0.03)
    codes = rng.integers(0, 1 << cfg.wbits, (m, k)).astype(np.int64)
    e0 = (rng.integers(cfg.e0_min, cfg.e0_max + 1, m).astype(np.int64) if per_channel
          else int(rng.integers(cfg.e0_min, cfg.e0_max + 1)))
    bias = random_floats(rng, cfg.out_fmt, (m,), 0.1)
    want = gemm_golden(x, codes, e0, in_fmt=cfg.in_fmt, wbits=cfg.wbits, out_fmt=cfg.out_fmt,
                       bias_bits=bias, relu=relu, config=cfg.dot_config).numpy()

    wgt = weight_stream(cfg, codes, e0, bias)
    act = activation_stream(cfg, x, m)
    order = result_order(cfg, n, k, m)
    rw, aw = cfg.res_tdata_width, cfg.act_tdata_width
    expected = [(last << rw) | int(want[nn, mm]) for nn, mm, last in order]
    (tmp_path / "wgt.hex").write_text(_hex_lines([(t << 32) | w for w, t in wgt], 9))
    (tmp_path / "act.hex").write_text(
        _hex_lines([(t << aw) | d for d, t in act], (aw + 4) // 4))
    (tmp_path / "exp.hex").write_text(_hex_lines(expected, (rw + 4) // 4))
    opts = CTRL["BIAS_EN"] | (CTRL["RELU"] if relu else 0) | \
        (CTRL["E0_PER_CHANNEL"] if per_channel else 0)
    params = {
        "TB_N": n, "TB_K": k, "TB_M": m, "TB_E0": 0 if per_channel else e0 & 0xFFFFFFFF,
        "TB_OPTS": opts, "TB_WGT_FILE": '"wgt.hex"', "TB_ACT_FILE": '"act.hex"',
        "TB_EXP_FILE": '"exp.hex"', "TB_OUT_FILE": '"out.hex"', "TB_WGT_WORDS": len(wgt),
        "TB_ACT_BEATS": len(act), "TB_RES_BEATS": len(order), "TB_THROTTLE": throttle,
        "TB_TIMEOUT": 20_000,
    }
    (tmp_path / "tb_params.vh").write_text("".join(
        f"`define {key} {value}\n" if isinstance(value, str) else f"`define {key} 32'd{value}\n"
        for key, value in params.items()))
    build = subprocess.run(
        [iverilog, "-g2005", "-o", "tb.vvp", f"-I{tmp_path}", f"-I{gen}", f"-I{SOC}",
         "-s", "tb_soc", str(SOC / "tb_soc.v"), *(str(SOC / s) for s in SOURCES),
         str(gen / "densehw_array.v")],
        cwd=tmp_path, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
    run = subprocess.run([vvp, "-n", "tb.vvp"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    out = run.stdout
    # independent check of the beats the testbench saw
    got = [int(line, 16) for line in (tmp_path / "out.hex").read_text().split()]
    assert len(got) == len(expected), out[-2000:]
    for i, ((nn, mm, _last), g, e) in enumerate(zip(order, got, expected, strict=True)):
        if g != e:
            c = (rw + 4) // 4
            raise AssertionError(
                f"seed {seed} throttle {throttle}: beat {i} y[{nn},{mm}] = {g:#0{c + 2}x}, "
                f"expected {e:#0{c + 2}x} ({{tlast, bits}}); x row "
                f"{[hex(int(v)) for v in x[nn]]}, codes {codes[mm].tolist()}, "
                f"e0 {e0 if np.ndim(e0) == 0 else int(e0[mm])}, bias {int(bias[mm]):#x}\n"
                f"{out[-2000:]}")
    assert "TB PASS" in out, out[-2000:]
    busy = int(re.search(r"cycles_busy (\d+)", out).group(1))
    if not throttle:
        # streams were valid before START: the model's stall-free count applies
        model = layer_cycles(cfg, n, k, m).cycles
        print(f"soc example {n}x{k}x{m}: CYCLES_BUSY {busy}, model {model}")
        assert abs(model - busy) <= 0.05 * busy, (model, busy)
