"""The serial I/O harness that wraps a design for place and route: every input but the reset
fed from a shift register, every output captured and shifted out, so that nothing is optimised
away and a design of any width fits a small package."""

from __future__ import annotations

import re

from .design import Design
from .errors import FlowError

__all__ = ["parse_verilog_ports", "harness_verilog"]


_PORT_RE = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?"
                      r"(?:\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*)?([A-Za-z_][\w$]*)\s*;", re.M)


def parse_verilog_ports(text: str, top: str) -> list[tuple[str, str, int]]:
    """``[(direction, name, width)]`` of module ``top`` in Verilog text written with one
    declaration per port (Yosys ``write_verilog``/Amaranth style)."""
    m = re.search(r"^\s*module\s+\\?" + re.escape(top) + r"\s*[(;#]", text, re.M)
    if not m:
        raise FlowError(f"module {top!r} not found in the Verilog text")
    end = text.find("endmodule", m.end())
    body = text[m.end():end if end >= 0 else None]
    ports = []
    for d, hi, lo, name in _PORT_RE.findall(body):
        width = abs(int(hi) - int(lo)) + 1 if hi else 1
        ports.append((d, name, width))
    if not ports:
        raise FlowError(f"module {top!r} declares no ports this parser understands")
    return ports


def harness_verilog(design: Design, *, clock="clk", reset="rst",
                    name="densehw_harness") -> str:
    """A wrapper with four pins (clock, serial in, load, serial out), and a fifth for the
    design's one-bit input ``reset`` when it has one: the design's other inputs come from a
    shift register fed by ``sin``, its outputs are loaded into a shift register that drains
    through ``sout``. The reset comes from its pin through two flip-flops, as from a reset
    synchroniser (in the input shift register, its driver, pulled to the middle of the device
    by its loads, would drag the neighbouring input's flip-flop along). Only for timing: it
    adds one flip-flop per port bit."""
    ports = parse_verilog_ports(design.verilog, design.top)
    has_reset = ("input", reset, 1) in ports
    ins = [(n, w) for d, n, w in ports
           if d == "input" and n != clock and not (has_reset and n == reset)]
    outs = [(n, w) for d, n, w in ports if d == "output"]
    if any(d == "inout" for d, _, _ in ports):
        raise FlowError(f"{design.top}: inout ports are not supported by the harness")
    if not any(n == clock for d, n, _ in ports if d == "input"):
        raise FlowError(f"{design.top}: no input named {clock!r} (the clock)")
    ni = max(1, sum(w for _, w in ins))
    no = max(1, sum(w for _, w in outs))
    conns, pos = [f".{clock}({clock})"], 0
    if has_reset:
        conns.append(f".{reset}({reset}_sync[1])")
    for n, w in ins:
        conns.append(f".{n}(shin[{pos + w - 1}:{pos}])")
        pos += w
    pos = 0
    for n, w in outs:
        conns.append(f".{n}(outs[{pos + w - 1}:{pos}])")
        pos += w
    shift_in = f"{{shin[{ni - 2}:0], sin}}" if ni > 1 else "sin"
    shift_out = f"{{shout[{no - 2}:0], 1'b0}}" if no > 1 else "1'b0"
    reset_pin = f", input {reset}_pin" if has_reset else ""
    reset_sync = ([f"  reg [1:0] {reset}_sync = 0;",
                   f"  always @(posedge {clock}) {reset}_sync <= {{{reset}_sync[0], {reset}_pin}};"]
                  if has_reset else [])
    return "\n".join([
        f"module {name}(input {clock}, input sin, input load, output sout{reset_pin});",
        *reset_sync,
        f"  reg [{ni - 1}:0] shin = 0;",
        f"  wire [{no - 1}:0] outs;",
        f"  reg [{no - 1}:0] shout = 0;",
        f"  always @(posedge {clock}) shin <= {shift_in};",
        f"  always @(posedge {clock}) shout <= load ? outs : {shift_out};",
        f"  assign sout = shout[{no - 1}];",
        f"  {design.top} dut({', '.join(conns)});",
        "endmodule", ""])
