"""Verilog generation for the dot-product unit, and its port map for documentation and drivers.

``generate_verilog`` is deterministic: the same configuration gives byte-identical text (no
source locations are emitted).
"""

from __future__ import annotations

import pathlib

from contract import DotConfig
from contract.files import write_atomic

from .dot import ShiftDotUnit, in_layout
from .emit import to_verilog

__all__ = ["generate_verilog", "write_verilog", "port_map", "VERILATOR_LINT_WAIVERS"]

#: Verilator ``-Wall`` warnings that Amaranth 0.5's Verilog output raises by construction, not
#: by design choices of the unit (everything else must lint clean):
#:
#: * ``DECLFILENAME``: Amaranth writes every submodule into the same file as a module named
#:   ``<top>.<submodule>``, which cannot match the file name.
#: * ``PROCASSINIT``: registers are declared with their reset value as initial value
#:   (``reg x = 1'h0;``) and assigned in ``always @(posedge clk)``.
#: * ``UNUSEDSIGNAL``: Amaranth keeps every named signal as a wire for debugging, including
#:   aliases that logic bypasses and the truncated upper bits of intermediate expressions.
#: * ``WIDTHEXPAND``: Yosys' ``write_verilog`` leaves operand extension to Verilog's
#:   (well-defined) context-determined width rules.
VERILATOR_LINT_WAIVERS = ("-Wno-DECLFILENAME", "-Wno-PROCASSINIT", "-Wno-UNUSEDSIGNAL",
                          "-Wno-WIDTHEXPAND")


def _check(config, name):
    if not isinstance(config, DotConfig):
        raise TypeError(f"config must be a DotConfig, not {config!r}")
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("\\"):
        raise ValueError(f"Verilog module name must be an identifier, not {name!r}")


def generate_verilog(config, *, name="densehw_dot") -> str:
    """Verilog text of :class:`~hw.dot.ShiftDotUnit` for ``config``, top module ``name``."""
    _check(config, name)
    return to_verilog(ShiftDotUnit(config=config), name=name)


def write_verilog(config, path, *, name="densehw_dot") -> pathlib.Path:
    """Write :func:`generate_verilog` to ``path`` atomically (temporary file + rename)."""
    text = generate_verilog(config, name=name)
    return write_atomic(path, text)


def port_map(config) -> dict:
    """Ports of the generated top module, ``{port: {"dir", "width", "doc"}}``; ``i__payload``
    also has ``"fields"``: ``{field: {"offset", "width", "count"?, "elem_width"?, "signed"?}}``
    (bit offsets from the payload LSB; array fields give their element count and width, lane 0
    in the lowest bits)."""
    _check(config, "densehw_dot")
    layout = in_layout(config)
    fields = {}
    for field_name, field in layout:
        entry = {"offset": field.offset, "width": field.width}
        shape = field.shape
        if hasattr(shape, "elem_shape"):
            entry["count"] = shape.length
            entry["elem_width"] = shape.elem_shape.width
        else:
            entry["signed"] = shape.signed
        fields[field_name] = entry
    out_width = config.out_fmt.width
    return {
        "clk": {"dir": "in", "width": 1, "doc": "clock, rising edge"},
        "rst": {"dir": "in", "width": 1, "doc": "synchronous active-high reset"},
        "i__valid": {"dir": "in", "width": 1, "doc": "input beat valid"},
        "i__ready": {"dir": "out", "width": 1, "doc": "unit accepts the input beat"},
        "i__payload": {"dir": "in", "width": layout.size,
                       "doc": "input beat (x, w, keep, last, has_bias, relu, e0, bias)",
                       "fields": fields},
        "o__valid": {"dir": "out", "width": 1, "doc": "result valid"},
        "o__ready": {"dir": "in", "width": 1, "doc": "consumer accepts the result"},
        "o__payload": {"dir": "out", "width": out_width,
                       "doc": f"result: raw {config.out_fmt.name} bits"},
    }
