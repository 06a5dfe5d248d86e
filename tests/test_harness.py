# amaranth: UnusedElaboratable=no
"""The serial I/O harness (``boards.harness``)."""


import pytest

from boards import design, errors, harness


def test_verilog_ports_and_harness():
    text = ("module top(clk, rst, a, y);\n  input clk;\n  wire clk;\n  input rst;\n"
            "  input [7:0] a;\n  output [3:0] y;\nendmodule\n")
    assert harness.parse_verilog_ports(text, "top") == [
        ("input", "clk", 1), ("input", "rst", 1), ("input", "a", 8), ("output", "y", 4)]
    d = design.Design(name="t", top="top", verilog=text, config={}, macs_per_cycle=1)
    h = harness.harness_verilog(d)
    # the reset comes from its own pin through two flip-flops, the other inputs from the chain
    assert "reg [7:0] shin" in h and ".a(shin[7:0])" in h and ".y(outs[3:0])" in h
    assert "input rst_pin" in h and ".rst(rst_sync[1])" in h
    assert "rst_sync <= {rst_sync[0], rst_pin}" in h
    no_reset = text.replace("rst", "go")
    h = harness.harness_verilog(design.Design(name="t", top="top", verilog=no_reset, config={},
                                         macs_per_cycle=1))
    assert "reg [8:0] shin" in h and ".go(shin[0:0])" in h and "rst" not in h
    with pytest.raises(errors.FlowError, match="not found"):
        harness.parse_verilog_ports(text, "other")
