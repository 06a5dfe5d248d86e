"""The SoC firmware's C parts on the host (fast; the SoC itself runs in ``make soc-sim``): the
program interpreter (``soc/firmware/dhw_program.c``, the host steps in C) reproduces every value
of the golden runtime bit for bit, and the GEMM checks cover what docs/soc.md promises."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import numpy as np
import pytest
import torch

from contract.array import ERROR, ArrayConfig
from densehw.emit import generate_files
from soc.firmware_data import gemm_items, program_tables, write_soc_data
from sw.compile import compile_model
from sw.data import digits
from sw.export import export_model
from sw.models import DigitsCNN
from sw.train import set_seed

ROOT = pathlib.Path(__file__).resolve().parents[1]
FW = ROOT / "soc" / "firmware"
IMAGES = 3


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An untrained digits CNN (the arithmetic, not the accuracy, is under test)."""
    torch.set_num_threads(1)
    set_seed(3)
    path = tmp_path_factory.mktemp("soc_fw") / "digits.dshw"
    export_model(DigitsCNN(method="denseshift", wbits=3, width=6).eval(), path)
    return path


def _build(cfg, model, folder):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed")
    for name, text in generate_files(cfg).items():
        if name.endswith((".h", ".c")):
            (folder / name).write_text(text)
    d = digits()
    x = d.x_test[:IMAGES].float().contiguous()
    tables = program_tables(compile_model(model, cfg), x, d.y_test[:IMAGES].numpy())
    items = gemm_items(cfg)
    write_soc_data(folder / "soc_data.c", cfg, items, tables)
    exe = folder / "program_host"
    r = subprocess.run([gcc, "-std=gnu99", "-O1", "-ffp-contract=off", "-Wall", "-Wextra",
                        "-Werror", f"-I{FW}", f"-I{folder}", "-o", str(exe),
                        str(FW / "dhw_float.c"), str(FW / "dhw_program.c"),
                        str(folder / "soc_data.c"), str(ROOT / "tests/c/program_host.c")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return exe, tables, items


@pytest.mark.parametrize("cfg", [ArrayConfig(), ArrayConfig(in_fmt="bf16", rows=2, cols=3,
                                                            depth=128, wbits=4)],
                         ids=["default", "bf16_2x3"])
def test_host_steps_in_c_are_bit_exact(cfg, model, tmp_path):
    exe, tables, _ = _build(cfg, model, tmp_path)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    steps = [line.split() for line in out.splitlines() if line.startswith("step ")]
    assert len(steps) == len(tables["steps"]), out
    for (_, i, count, bad), st in zip(steps, tables["steps"], strict=True):
        assert int(bad) == 0, f"step {i} ({st['name']}): {bad} of {count} differ\n{out}"
    preds = [line.split() for line in out.splitlines() if line.startswith("pred ")]
    assert [int(p[2]) for p in preds] == [int(p[3]) for p in preds] == tables["preds"].tolist()


def test_gemm_items_cover_the_promised_cases():
    cfg = ArrayConfig()
    items = gemm_items(cfg)
    gemms = [it for it in items if it["kind"] == "gemm"]
    bads = [it for it in items if it["kind"] == "bad"]
    assert len(gemms) >= 3
    assert any(it["k"] == cfg.depth for it in gemms)                  # K up to the depth
    assert any(it["e0s"] is not None for it in gemms)                 # per-channel e0
    assert any(it["relu"] for it in gemms) and any(it["bias"] is not None for it in gemms)
    assert any(it["n"] % cfg.rows and it["m"] % cfg.cols for it in gemms)   # ragged
    f = cfg.in_fmt
    x = np.concatenate([it["x"].ravel() for it in gemms if it["specials"]])
    exp = (x >> f.frac_bits) & f.exp_max_field
    frac = x & f.frac_mask
    assert np.any((exp == f.exp_max_field) & (frac == 0))             # inf
    assert np.any((exp == f.exp_max_field) & (frac != 0))             # NaN
    assert np.any(x == f.sign_mask)                                   # -0
    assert np.any((exp == 0) & (frac != 0))                           # subnormal
    assert {it["want_error"] for it in bads} == {ERROR["K_RANGE"], ERROR["SHAPE"],
                                                  ERROR["E0_RANGE"]}
    assert {it["wait"] for it in items} == {"irq", "poll"}
    # a good layer follows an error case
    kinds = [it["kind"] for it in items]
    assert any(a == "bad" and b == "gemm" for a, b in zip(kinds[:-1], kinds[1:], strict=True))
