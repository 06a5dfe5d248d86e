"""A Verilog wrapper that gives a bench the whole array's ports in two wide signals.

The soak bench (:mod:`sim.soak_tb`) drives and samples every port of ``densehw_array`` on every
clock. One VPI access per signal and clock would cost more than the simulation itself, so the
wrapper ``densehw_soak`` packs them: ``drive`` holds every input of the array except ``clk``
and ``rst`` (written once per clock), ``probe`` every port as the array sees it, inputs and
outputs (read once per clock). :class:`PortMap` knows where each port sits in both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PortMap", "soak_wrapper", "WRAPPER_TOP"]

WRAPPER_TOP = "densehw_soak"
_DECL = re.compile(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?\\?([A-Za-z_][\w$]*)\s*;", re.M)


@dataclass(frozen=True)
class PortMap:
    """Ports of the array module: ``(direction, name, width)`` in declaration order, and the
    bit offsets of each port inside ``drive`` (inputs but ``clk``/``rst``) and ``probe``
    (every port)."""

    ports: tuple
    drive: dict
    probe: dict
    drive_width: int
    probe_width: int

    @classmethod
    def from_verilog(cls, text: str, top: str) -> PortMap:
        """The ports of module ``top`` in the Verilog ``text`` (as Amaranth writes it: one
        ``input``/``output`` declaration per line)."""
        start = text.find(f"module {top}(")
        if start < 0:
            raise ValueError(f"no module {top!r} in the Verilog text")
        body = text[start:text.index("endmodule", start)]
        header = body[body.index("(") + 1:body.index(");")]
        names = [n.strip().lstrip("\\").strip() for n in header.split(",")]
        decl = {}
        for m in _DECL.finditer(body):
            direction, msb, name = m.group(1), m.group(2), m.group(3)
            decl.setdefault(name, (direction, int(msb) + 1 if msb else 1))
        missing = [n for n in names if n not in decl]
        if missing:
            raise ValueError(f"ports without a declaration: {', '.join(missing)}")
        ports = tuple((decl[n][0], n, decl[n][1]) for n in names)
        drive, probe = {}, {}
        d = p = 0
        for direction, name, width in ports:
            probe[name] = (p, width)
            p += width
            if direction == "input" and name not in ("clk", "rst"):
                drive[name] = (d, width)
                d += width
        return cls(ports=ports, drive=drive, probe=probe, drive_width=d, probe_width=p)

    def to_dict(self) -> dict:
        return {"ports": [list(p) for p in self.ports], "drive": self.drive,
                "probe": self.probe, "drive_width": self.drive_width,
                "probe_width": self.probe_width}

    @classmethod
    def from_dict(cls, d: dict) -> PortMap:
        return cls(ports=tuple(tuple(p) for p in d["ports"]),
                   drive={k: tuple(v) for k, v in d["drive"].items()},
                   probe={k: tuple(v) for k, v in d["probe"].items()},
                   drive_width=int(d["drive_width"]), probe_width=int(d["probe_width"]))

    def pack(self, values: dict) -> int:
        """``drive`` word of ``{port: value}`` (ports not given are 0)."""
        word = 0
        for name, value in values.items():
            offset, width = self.drive[name]
            word |= (int(value) & ((1 << width) - 1)) << offset
        return word

    def field(self, word: int, name: str) -> int:
        offset, width = self.probe[name]
        return (word >> offset) & ((1 << width) - 1)


def soak_wrapper(text: str, top: str) -> tuple[str, PortMap]:
    """``text`` (the array's Verilog, module ``top``) with the wrapper module
    :data:`WRAPPER_TOP` appended, and its :class:`PortMap`."""
    pm = PortMap.from_verilog(text, top)
    lines = [f"module {WRAPPER_TOP}(clk, rst, drive, probe);",
             "  input clk;", "  input rst;",
             f"  input [{pm.drive_width - 1}:0] drive;",
             f"  output [{pm.probe_width - 1}:0] probe;"]
    for direction, name, width in pm.ports:
        if name in ("clk", "rst"):
            continue
        rng = f"[{width - 1}:0] " if width > 1 else ""
        lines.append(f"  wire {rng}{name};")
        if direction == "input":
            off, w = pm.drive[name]
            lines.append(f"  assign {name} = drive[{off + w - 1}:{off}];")
    for _, name, _ in pm.ports:
        off, w = pm.probe[name]
        lines.append(f"  assign probe[{off + w - 1}:{off}] = {name};")
    conns = ", ".join(f".{name}({name})" for _, name, _ in pm.ports)
    lines += [f"  {top} dut ({conns});", "endmodule", ""]
    return text.rstrip() + "\n\n" + "\n".join(lines), pm
