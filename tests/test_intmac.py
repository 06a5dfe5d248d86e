# amaranth: UnusedElaboratable=no
"""The INT8 MAC baselines (``boards.intmac``) against NumPy, in Amaranth simulation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator
from stream_tb import run_beats  # (tests/ helper)

from boards.intmac import IntMacArray, IntMacPE


@pytest.mark.parametrize("mult,dsps,rows,cols,gaps,stalls", [
    ("dsp", None, 2, 2, 0.0, 0.0),
    ("lut", None, 2, 3, 0.3, 0.3),
    ("dsp", 2, 3, 2, 0.1, 0.5),
    ("dsp", 30, 5, 9, 0.2, 0.2),          # several operand copies per row and column
])
def test_int8_array_matches_numpy(mult, dsps, rows, cols, gaps, stalls):
    seed = 29
    rng = np.random.default_rng(seed)
    lengths = [1, 2, rows * cols, 9, 40, 3]
    beats, want = [], []
    for k in lengths:
        x = rng.integers(-128, 128, (k, rows))
        w = rng.integers(-128, 128, (k, cols))
        if k == 40:
            x[:], w[:] = -128, -128                       # the extreme products
        beats += [([int(v) for v in x[t]], [int(v) for v in w[t]], int(t == k - 1))
                  for t in range(k)]
        want += [int(v) & 0xFFFFFFFF for v in (x.T @ w).ravel()]
    dut = IntMacArray(rows=rows, cols=cols, mult=mult, dsps=dsps)
    got = run_beats(dut, beats, len(want), rng=np.random.default_rng(seed + 1), gaps=gaps,
               stalls=stalls, limit=40 * len(beats) + 2000)
    assert len(got) == len(want), f"seed {seed}: {len(got)} of {len(want)} results came out"
    for j, (g, v) in enumerate(zip(got, want, strict=True)):
        assert g == v, f"{mult} {rows}x{cols} seed {seed}: result {j}: got {g:#x} want {v:#x}"


@pytest.mark.parametrize("mult", ["dsp", "lut"])
def test_int8_pe_every_product(mult):
    """All 65536 operand pairs through one PE, each starting a new sum."""
    dut = IntMacPE(mult=mult)
    a = np.repeat(np.arange(-128, 128), 256)
    b = np.tile(np.arange(-128, 128), 256)
    got = []

    async def tb(ctx):
        ctx.set(dut.en, 1)
        ctx.set(dut.first, 1)
        for t in range(len(a) + 3):
            if t < len(a):
                ctx.set(dut.a, int(a[t]))
                ctx.set(dut.b, int(b[t]))
            await ctx.tick()
            if t >= 2:
                got.append(ctx.get(dut.acc))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    want = a * b
    bad = np.nonzero(np.array(got[:len(a)]) != want)[0]
    assert not len(bad), (f"{mult}: {len(bad)} products differ; first {a[bad[0]]} * "
                          f"{b[bad[0]]}: got {got[bad[0]]} want {want[bad[0]]}")


def test_int8_bad_arguments():
    with pytest.raises(ValueError, match="mult must be one of dsp, lut, mult18x18d"):
        IntMacPE(mult="booth")
    with pytest.raises(ValueError, match="rows must be in"):
        IntMacArray(rows=0, cols=1)
    with pytest.raises(ValueError, match="dsps must be a non-negative integer"):
        IntMacArray(rows=1, cols=1, dsps=-2)


MULT18X18D_MODEL = Path(__file__).resolve().parents[1] / "sim" / "models" / "mult18x18d.v"
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None,
                                  reason="Icarus Verilog not installed")


def _run_pe_rtl(tmp_path, output_reg, macs):
    """The ECP5 flavour of the PE (MULT18X18D with its own registers) with the primitive's
    model on Icarus (``sim/int8_pe_tb.py``); the report."""
    from hw.emit import to_verilog
    from sim.runner import BUILD_ROOT, build_top, run_cocotb

    text = to_verilog(IntMacPE(mult="mult18x18d"), name="densehw_int8pe")
    assert text.count("MULT18X18D #(") == 1 and text.count('.REG_OUTPUT_CLK("CLK0")') == 1
    text = text.replace('.REG_OUTPUT_CLK("CLK0")', f'.REG_OUTPUT_CLK("{output_reg}")')
    runner, bdir, _ = build_top("densehw_int8pe", text + "\n" + MULT18X18D_MODEL.read_text(),
                                BUILD_ROOT / f"int8pe_m18_{output_reg}", "icarus")
    result = tmp_path / "result.json"
    err = run_cocotb(runner, top="densehw_int8pe", test_module="sim.int8_pe_tb", build_dir=bdir,
                     run_dir=tmp_path, testcases=["test_random_macs"],
                     env={"DENSEHW_SEED": "5", "DENSEHW_MACS": str(macs),
                          "DENSEHW_RESULT": str(result)},
                     log=tmp_path / "sim.log", results_xml=tmp_path / "results.xml")
    return err, json.loads(result.read_text())


@needs_icarus
def test_int8_pe_mult18x18d_rtl_icarus(tmp_path):
    """Random MACs (extreme operands, new sums, enable gaps) through the ECP5 PE's Verilog,
    bit for bit against the contract; the same RTL without the block's output register
    (products one advance early) fails."""
    err, report = _run_pe_rtl(tmp_path / "ok", "CLK0", 3000)
    assert err is None and report["checks"] > 2900 and report["mismatches"] == 0, (err, report)
    _, report = _run_pe_rtl(tmp_path / "noreg", "NONE", 200)
    assert report["mismatches"] > 0, report


def test_int8_array_mult18x18d_blocks():
    """The array gives the block PEs the primitive and the rest LUT multipliers."""
    from hw.emit import to_verilog

    text = to_verilog(IntMacArray(rows=2, cols=3, mult="mult18x18d", dsps=4),
                      name="densehw_baseline")
    assert text.count("MULT18X18D #(") == 4
