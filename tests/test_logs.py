# amaranth: UnusedElaboratable=no
"""Readers of the tools' logs (``boards.logs``), on real captured Yosys and nextpnr output."""

import gzip
import json
import re

import pytest
from synth_data import DATA, captured_log  # noqa: E402  (tests/ helper)

from boards import devices, errors, logs


def test_parse_yosys_stat_ice40_real_log():
    log = captured_log("ice40_synth")
    cells = logs.parse_yosys_stat(log)
    assert cells["SB_LUT4"] == 786
    assert cells["SB_CARRY"] == 200
    assert cells["SB_DFFE"] + cells["SB_DFFESR"] == 70
    assert "$scopeinfo" not in cells and "wires" not in cells
    harness = logs.parse_yosys_stat(log, marker="DENSEHW_STAT_HARNESS")
    assert harness["SB_LUT4"] != cells["SB_LUT4"]     # the second section, not the first


def test_parse_yosys_blocks_real_log():
    """The unflattened synthesis of the fp16 2x2 array on the UP5K: each module's own cells,
    grouped into blocks whose total is the log's own "design hierarchy" count."""
    log = captured_log("ice40_blocks")
    modules = logs.parse_yosys_blocks(log)
    assert {f"densehw_array.core.pe_{r}_{c}" for r in (0, 1) for c in (0, 1)} <= set(modules)
    assert "densehw_array" not in modules                # only wires and submodules
    assert all("densehw_array.core.pe_0_0" not in cells for cells in modules.values())
    blocks = {b["block"]: b for b in logs.resource_blocks("ice40", modules, "densehw_array")}
    assert blocks["core.pe"]["instances"] == 4 and blocks["core.align"]["instances"] == 2
    assert blocks["core.pe"]["luts"] == 4 * modules["densehw_array.core.pe_0_0"]["SB_LUT4"]
    assert blocks["core.finalizer"]["instances"] == 1 and blocks["csr"]["instances"] == 1
    assert blocks["core.wmem"]["brams"] == 2 and blocks["core.out_fifo"]["brams"] == 2
    hierarchy = log[log.index("=== design hierarchy ==="):]
    total_luts = int(re.search(r"^\s+(\d+)\s+SB_LUT4\s*$", hierarchy, re.M).group(1))
    assert sum(b["luts"] for b in blocks.values()) == total_luts
    order = [b["luts"] for b in logs.resource_blocks("ice40", modules, "densehw_array")]
    assert order == sorted(order, reverse=True)
    with pytest.raises(errors.FlowError, match="DENSEHW_STAT_BLOCKS"):
        logs.parse_yosys_blocks(captured_log("ice40_synth"))


def test_block_names():
    assert logs.block_name("densehw_array.core.pe_12_3", "densehw_array") == "core.pe"
    assert logs.block_name("densehw_array.core.align10", "densehw_array") == "core.align"
    assert logs.block_name("densehw_array.csr", "densehw_array") == "csr"
    assert logs.block_name("densehw_array", "densehw_array") == "top"
    assert logs.block_name("mac_array.lane_0.fp16_mul", "mac_array") == "lane.fp16_mul"


def test_parse_yosys_stat_old_layout():
    log = "DENSEHW_STAT\n=== top ===\n\n   Number of cells:   5\n     SB_LUT4   3\n" \
          "     SB_DFF    2\n"
    assert logs.parse_yosys_stat(log) == {"SB_LUT4": 3, "SB_DFF": 2}


def test_parse_yosys_stat_missing():
    with pytest.raises(errors.FlowError, match="no Yosys statistics"):
        logs.parse_yosys_stat("nothing here")


def test_parse_nextpnr_real_log():
    log = captured_log("ice40_pnr")
    res = logs.parse_nextpnr_log(log)
    assert res["fmax_mhz"] == pytest.approx(10.37)
    assert res["target_mhz"] == 40.0 and res["passed"] is False
    assert res["utilisation"]["ICESTORM_LC"] == [859, 5280]
    assert res["error"] is None


def test_parse_nextpnr_endpoints_real_report():
    """nextpnr's detailed timing report (a trimmed real one: the ECP5 8x8 of session 10, seed 5,
    145 MHz at the worst): the endpoints over 150 MHz, grouped by register, slowest first."""
    report = json.loads(gzip.decompress((DATA / "ecp5_8x8_endpoints.json.gz").read_bytes()))
    res = logs.parse_nextpnr_endpoints(report, 1000 / 150, top=3)
    assert res["count"] == sum(len(n["endpoints"]) for n in report["detailed_net_timings"])
    assert res["over_period"] == 2
    assert [g["name"] for g in res["slowest"][:2]] == ["dut.core.have_code", "dut.core.nbits"]
    assert res["slowest"][0]["ns"] == pytest.approx(7.39, abs=0.01)
    assert [g["over_period"] for g in res["slowest"]] == [1, 1, 0]
    assert len(res["slowest"]) == 3
    ns = [g["ns"] for g in res["slowest"]]
    assert ns == sorted(ns, reverse=True)
    # a longer period: nothing is over it
    assert logs.parse_nextpnr_endpoints(report, 8.0)["over_period"] == 0
    assert logs.endpoint_group("dut.core.pe_3_6.acc_TRELLIS_FF_Q_26") == "dut.core.pe_3_6.acc"
    assert logs.endpoint_group("dut.core.nbits_SB_DFFE_Q_3") == "dut.core.nbits"


def test_parse_nextpnr_no_timing():
    res = logs.parse_nextpnr_log("ERROR: Unable to place cell 'x'\n")
    assert res["fmax_mhz"] is None and res["error"].startswith("ERROR: Unable")


def test_parse_asic_real_log():
    log = captured_log("asic")
    cells = logs.parse_yosys_stat(log)
    assert set(cells) <= set(devices.NAND2_WEIGHTS) | {"$mem_v2"}
    assert logs.parse_ltp(log) > 10
    assert devices.nand2_equivalents({"$_NAND_": 2, "$_DFF_P_": 1}) == pytest.approx(7.7, abs=0.01)
    with pytest.raises(errors.FlowError, match="no NAND2 weight"):
        devices.nand2_equivalents({"$_WEIRD_": 1})
