"""The C driver library (``densehw/driver``, shipped by ``densehw generate``): it compiles with
``-Wall -Wextra -pedantic -Werror`` against the generated header of several configurations, its
stream images (weights, activations, results) equal ``contract.array``'s framing word for word,
and its register-level calls (init checks, shape checks, polling, interrupt wait, a whole layer
through DMA hooks) behave as documented against a fake register file
(``tests/c/driver_check.c``)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from contract.array import (
    ArrayConfig,
    activation_stream,
    channel_words,
    result_order,
    weight_stream,
)
from contract.formats import FloatFormat
from densehw.emit import DRIVER_FILES, generate_files

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHECK = ROOT / "tests" / "c" / "driver_check.c"
FLAGS = ["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-Wshadow", "-Wconversion",
         "-Wsign-conversion", "-O1"]

CONFIGS = {
    "default": ArrayConfig(),                                              # 64-bit beats
    "fp8_to_fp16": ArrayConfig(in_fmt="fp8_e5m2", out_fmt="fp16", wbits=4, rows=2, cols=3,
                               depth=32, e0_min=-5, e0_max=9, pipeline=1),
    "bf16_8x8_b5": ArrayConfig(in_fmt="bf16", wbits=5, rows=8, cols=8, depth=64),
    "fp16_3rows": ArrayConfig(rows=3, cols=2, depth=64),                   # 48-bit beats
    # 10-bit lanes: lane 3 straddles a word boundary of the memory image
    "e4m5_5rows": ArrayConfig(in_fmt=FloatFormat("e4m5", 4, 5), wbits=3, rows=5, cols=2,
                              depth=32),
    "fp32_b2": ArrayConfig(in_fmt="fp32", wbits=2, rows=3, cols=3, depth=16),
}


def _gcc():
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed")
    return gcc


def _write(cfg, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in generate_files(cfg).items():
        if name.endswith((".h", ".c")):
            (folder / name).write_text(text)
    return folder


def _first_difference(got, want):
    if len(got) != len(want):
        return f"{len(got)} words, expected {len(want)}"
    i = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
    return f"word {i}: {got[i]:#010x}, expected {want[i]:#010x}"


def test_driver_files_are_shipped(tmp_path):
    files = generate_files(ArrayConfig(rows=2, cols=2, depth=16))
    for name in DRIVER_FILES:
        assert files[name] == (ROOT / "densehw" / "driver" / name).read_text()
    assert '#include "densehw_params.h"' in files["densehw_driver.h"]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_driver_matches_the_contract(name, tmp_path):
    gcc = _gcc()
    cfg = CONFIGS[name]
    gen = _write(cfg, tmp_path / "gen")
    exe = tmp_path / "check"
    r = subprocess.run([gcc, *FLAGS, f"-I{gen}", "-o", str(exe), str(gen / "densehw_driver.c"),
                        str(CHECK)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    seed = sum(map(ord, name))
    rng = np.random.default_rng(seed)
    for n, k, m, per_channel, has_bias in [(cfg.rows * 2 + 1, min(cfg.depth, 37),
                                            cfg.cols + 1, True, True),
                                           (1, 1, 1, False, False),
                                           (cfg.rows - 1 or 1, cfg.depth, 2 * cfg.cols + 1,
                                            False, True)]:
        x = rng.integers(0, 1 << cfg.in_fmt.width, (n, k), dtype=np.int64)
        codes = rng.integers(0, 1 << cfg.wbits, (m, k), dtype=np.int64)
        e0s = rng.integers(cfg.e0_min, cfg.e0_max + 1, m, dtype=np.int64)
        e0_all = int(rng.integers(cfg.e0_min, cfg.e0_max + 1))
        bias = rng.integers(0, 1 << cfg.out_fmt.width, m, dtype=np.int64)
        res = rng.integers(0, 1 << cfg.out_fmt.width, n * m, dtype=np.int64)
        text = " ".join(str(v) for v in [n, k, m, int(per_channel), e0_all + 1000,
                                         int(has_bias), *x.ravel(), *codes.ravel(),
                                         *(e0s + 1000), *bias, *res])
        out = subprocess.run([str(exe)], input=text, capture_output=True, text=True,
                             check=True).stdout
        lines = {line.split(" ", 1)[0]: line.split()[1:] for line in out.splitlines()
                 if line.split(" ", 1)[0] in ("wgt", "act", "y", "dma")}
        where = f"config {name} seed {seed} shape {(n, k, m)}"
        want_wgt = [w for w, _ in weight_stream(cfg, codes, e0s if per_channel else e0_all,
                                                bias if has_bias else None)]
        got_wgt = [int(v, 16) for v in lines["wgt"]]
        assert got_wgt == want_wgt, f"{where}: weights {_first_difference(got_wgt, want_wgt)}"
        beat_words = -(-cfg.act_tdata_width // 32)
        want_act = []
        for tdata, _ in activation_stream(cfg, x, m):
            want_act += [(tdata >> (32 * i)) & 0xFFFFFFFF for i in range(beat_words)]
        got_act = [int(v, 16) for v in lines["act"]]
        assert got_act == want_act, f"{where}: activations " \
            f"{_first_difference(got_act, want_act)}"
        want_y = np.zeros((n, m), dtype=np.int64)
        for (nn, mm, _), v in zip(result_order(cfg, n, k, m), res, strict=True):
            want_y[nn, mm] = v
        assert [int(v, 16) for v in lines["y"]] == want_y.ravel().tolist(), where
        f = cfg.framing(n, k, m)
        assert [int(v) for v in lines["dma"]] == [
            f["wgt_words"], channel_words(k, cfg.wbits), f["act_beats"] * beat_words,
            k * beat_words, n * m], where
        failed = [line for line in out.splitlines() if line.startswith("FAIL")]
        assert not failed, f"{where}: {failed}"
        assert sum(line.startswith("ok ") for line in out.splitlines()) == 21


def test_driver_compiles_for_riscv(tmp_path):
    """The firmware's compiler, when installed (the SoC targets install it): freestanding."""
    gcc = shutil.which("riscv64-unknown-elf-gcc")
    if gcc is None:
        pytest.skip("riscv64-unknown-elf-gcc not installed (make soc-sim installs it)")
    gen = _write(CONFIGS["default"], tmp_path / "gen")
    r = subprocess.run([gcc, "-march=rv32im", "-mabi=ilp32", "-ffreestanding", *FLAGS,
                        f"-I{gen}", "-c", "-o", str(tmp_path / "d.o"),
                        str(gen / "densehw_driver.c")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
