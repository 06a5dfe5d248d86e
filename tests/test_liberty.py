"""The liberty flow (boards/liberty.py): the OSU 0.18 um library's cells, fanout buffering of the
mapped netlist, OpenSTA report parsing, and real runs (Yosys abc -liberty + OpenSTA) on a small
design whose critical path is known: a registered 16-bit ripple adder."""

import json
import shutil

import pytest
from synth_data import ROOT, needs_yowasp  # noqa: E402  (tests/ helper)

from boards import design, flow, liberty, report

needs_liberty = pytest.mark.skipif(
    shutil.which("sta") is None or not liberty.pathlib.Path(liberty.LIBRARY["path"]).is_file(),
    reason="needs OpenSTA and the OSU 0.18 um library (make setup-asic)")

ADDER = """
module adder(input clk, input en, input [15:0] a, input [15:0] b, output reg [16:0] y,
             output reg [39:0] z);
  reg [15:0] ra, rb;
  always @(posedge clk) begin
    ra <= a; rb <= b; y <= ra + rb;
    if (en) z <= {ra, rb, ra[15:8] ^ rb[7:0]};
  end
endmodule
"""


@needs_liberty
def test_library_cells():
    text = liberty.library_path().read_text()
    areas, pins = liberty.cell_areas(text), liberty.pin_directions(text)
    assert len(areas) == 32 and areas["NAND2X1"] == 24 and areas["DFFPOSX1"] == 96
    assert pins["FAX1"] == {"A": "input", "B": "input", "C": "input", "YC": "output",
                            "YS": "output"}
    assert liberty._sequential(text) == {"DFFNEGX1", "DFFPOSX1", "DFFSR", "LATCH"}


def test_buffer_trees_bound_every_fanout():
    """A net of 100 loads gets a tree of buffers: every driver has at most 16 loads, every
    original load is still reached, the clock is left alone."""
    directions = {"INV": {"A": "input", "Y": "output"}, "BUFX4": {"A": "input", "Y": "output"},
                  "DFF": {"CLK": "input", "D": "input", "Q": "output"}}
    cells = {f"i{j}": {"type": "INV", "connections": {"A": [2], "Y": [100 + j]}}
             for j in range(100)}
    cells.update({f"f{j}": {"type": "DFF", "connections": {"CLK": [3], "D": [100 + j],
                                                           "Q": [300 + j]}} for j in range(100)})
    module = {"ports": {"clk": {"direction": "input", "bits": [3]},
                        "x": {"direction": "input", "bits": [2]},
                        "y": {"direction": "output", "bits": list(range(300, 400))}},
              "cells": cells, "netnames": {}}
    text, info = liberty.buffer_netlist(module, "t", directions)
    assert info["max_fanout_before"] == 100 and info["buffers"] == 7     # 100 -> 7 -> 1 driver
    drivers: dict = {}
    for line in text.splitlines():
        if "(.A(" in line:
            src = line.split("(.A(")[1].split(")")[0]
            drivers[src] = drivers.get(src, 0) + 1
    assert max(drivers.values()) <= 16 and sum(drivers.values()) == 107
    assert text.count(".CLK(\\clk )") == 100


REPORT = """Startpoint: ra_3__reg (rising edge-triggered flip-flop clocked by clk)
Endpoint: y_16__reg
          (rising edge-triggered flip-flop clocked by clk)
Path Group: clk
Path Type: max

   Delay     Time   Description
-----------------------------------------------------------
   0.000    0.000   clock clk (rise edge)
   0.000    0.000   clock network delay (ideal)
   0.000    0.000 ^ ra_3__reg/CLK (DFFPOSX1)
   0.203    0.203 v ra_3__reg/Q (DFFPOSX1)
   0.183    0.386 ^ c1/Y (XOR2X1)
   0.137    0.523 v c2/Y (AOI21X1)
   0.000    0.523 v y_16__reg/D (DFFPOSX1)
            0.523   data arrival time

  10.000   10.000   clock clk (rise edge)
  -0.183    9.817   library setup time
            9.817   data required time
-----------------------------------------------------------
            9.817   data required time
           -0.523   data arrival time
-----------------------------------------------------------
            9.294   slack (MET)
"""


def test_parse_sta():
    t = liberty.parse_sta(REPORT, 10.0, {"DFFPOSX1"})
    assert (t["startpoint"], t["endpoint"]) == ("ra_3__reg", "y_16__reg")
    assert t["end_kind"] == "rising edge-triggered flip-flop clocked by clk"
    assert t["critical_path_ns"] == pytest.approx(0.706) and t["setup_ns"] == 0.183
    assert t["fmax_mhz"] == pytest.approx(1000 / 0.706, abs=0.01) and t["logic_levels"] == 2
    with pytest.raises(liberty.LibertyError, match="no critical path"):
        liberty.parse_sta("Error: nothing", 10.0)


@needs_yowasp
@needs_liberty
def test_real_liberty_flow_adder():
    """The ripple adder's carry chain is the critical path, from an operand register to a high
    sum bit; the enable's 40 loads are buffered; area is the sum of the cells' areas."""
    wd = ROOT / "build" / "test-synth" / "liberty_adder"
    shutil.rmtree(wd, ignore_errors=True)
    r = liberty.run_liberty(ADDER, "adder", wd)
    assert r["ffs"] == 16 + 16 + 17 + 40 and r["buffers_added"] >= 3
    assert r["startpoint"].startswith(("ra_", "rb_")) and r["endpoint"].startswith("y_")
    assert r["logic_levels"] >= 8 and 0.5 < r["critical_path_ns"] < 10
    areas = liberty.cell_areas(liberty.library_path().read_text())
    assert r["area_um2"] == pytest.approx(sum(areas[c] * n for c, n in r["cell_counts"].items()))
    assert r["library"]["corner"] == "typical, 1.8 V, 25 C"
    # the report and summary of an ASIC run carry it
    d = design.Design(name="adder", top="adder", verilog=ADDER, config={}, macs_per_cycle=1,
                      kind="verilog")
    s = report.summarise(flow.run_flow(d, board="asic", workdir=wd / "flow"))
    assert s["fmax_mhz"] == s["liberty"]["fmax_mhz"] and s["gmacs"] == pytest.approx(
        s["fmax_mhz"] / 1000, abs=1e-3)
    assert s["gmacs_per_mm2"] == pytest.approx(s["gmacs"] / (s["area_um2"] / 1e6), rel=1e-3)
    md = "\n".join(report.liberty_markdown(s["liberty"]))
    assert "osu018_stdcells" in md and s["liberty"]["startpoint"] in md
    json.dumps(s)


def test_shift_pe_spec():
    """``{"kind": "shift-pe"}``: one PE of the array alone, for the PE-level ASIC figures."""
    from boards import specs

    d = specs.make_design(specs.load_spec(ROOT / "configs" / "asic" / "shift_pe.toml"))
    assert d.top == "densehw_pe" and d.macs_per_cycle == 1 and d.kind == "shift-pe"
    assert "module densehw_pe(" in d.verilog
    for name in ("fma_pe_fp16", "fma_pe_fp32", "fma_4x4_fp16"):
        assert specs.load_spec(ROOT / "configs" / "asic" / f"{name}.toml")["kind"].startswith(
            "fma-")
