# amaranth: UnusedElaboratable=no
"""Synthesis reports (``boards.report``): derived figures and markdown."""

import json

import pytest

from boards import report


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
