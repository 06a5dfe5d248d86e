"""ASIC timing: map a design to a real standard-cell library and time it with a static timer.

Library: the Oklahoma State University (OSU) 0.18 um standard cells (``osu018_stdcells``, 32
cells, NLDM delay tables) as packaged by Debian (``qflow-tech-osu018``); corner: typical, 1.8 V,
25 C (the only one in the file). Timer: OpenSTA (Debian ``opensta``). Both are installed by
``make synth BOARD=asic`` when missing (``scripts/asic_setup.sh``); nothing is fetched at run
time.

Flow (:func:`run_liberty`):

1. Yosys (``liberty.ys``): ``synth -flatten`` up to the fine stage, read registers of memories
   pulled out (``memory_nordff``: they are flip-flops of the netlist), ``dfflibmap`` and
   ``abc -liberty -D`` (delay-driven mapping, buffering and sizing inside the logic ABC sees),
   the mapped netlist written as JSON.
2. :func:`buffer_netlist`: the nets ABC does not buffer (flip-flop outputs and inputs that drive
   many cells, e.g. a replicated load enable) get balanced trees of ``BUFX4`` (at most
   :data:`MAX_FANOUT` loads per driver), and a structural Verilog netlist is written. Memories
   (weight stores, FIFOs) stay macros outside the netlist: their bits are reported, not their
   area, and paths through them are not timed (their read registers are).
3. OpenSTA (``sta.tcl``): one clock on ``clk`` (ideal: no clock tree), inputs and outputs
   constrained at 0 ns against it, no wire load model (pin capacitances only: pre-layout).
   ``report_checks`` gives the critical path; Fmax = 1 / (period - slack).

Area is the sum of the library's cell areas (um^2) over the buffered netlist.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import time
from collections import defaultdict

from .errors import FlowError
from .tools import run_tool, tool

__all__ = ["LIBRARY", "MAX_FANOUT", "LibertyError", "library_path", "cell_areas",
           "pin_directions", "sta_path",
           "buffer_netlist", "parse_sta", "run_liberty"]

#: The library the flow maps to: file, and what it is (reported with every result).
LIBRARY = {
    "name": "osu018_stdcells",
    "path": "/usr/share/qflow/tech/osu018/osu018_stdcells.lib",
    "package": "qflow-tech-osu018 (Debian)",
    "process": "OSU 0.18 um (TSMC 0.18 um rules via MOSIS SCN6M_SUBM)",
    "corner": "typical, 1.8 V, 25 C",
}
MAX_FANOUT = 16
#: Clock ports: their nets are left unbuffered (the clock is ideal: no clock tree).
CLOCK_PORTS = ("clk",)
BUFFER = ("BUFX4", "A", "Y")
#: The nominal clock of the timing run (ns); Fmax does not depend on it (slack does).
CLOCK_NS = 10.0


class LibertyError(FlowError):
    """A tool or file of the liberty flow is missing; the message says which and how to get
    it."""


def library_path() -> pathlib.Path:
    """The liberty file (``DENSEHW_LIBERTY`` overrides); :class:`LibertyError` if absent."""
    path = pathlib.Path(os.environ.get("DENSEHW_LIBERTY") or LIBRARY["path"])
    if not path.is_file():
        raise LibertyError(f"liberty file {str(path)!r} not found: install "
                           f"{LIBRARY['package']} (`make synth BOARD=asic` does)")
    return path


def sta_path() -> str:
    """OpenSTA's executable; :class:`LibertyError` if absent."""
    exe = shutil.which("sta")
    if exe is None:
        raise LibertyError("OpenSTA (`sta`) not found: install Debian's opensta "
                           "(`make synth BOARD=asic` does)")
    return exe


def _cells(lib_text: str):
    """``(name, body)`` of every cell of a liberty file."""
    heads = list(re.finditer(r"^\s*cell\s*\(\s*\"?(\w+)\"?\s*\)", lib_text, re.M))
    for i, head in enumerate(heads):
        yield head.group(1), lib_text[head.end():heads[i + 1].start() if i + 1 < len(heads)
                                      else None]


def cell_areas(lib_text: str) -> dict[str, float]:
    """``{cell: area}`` from a liberty file."""
    out = {}
    for name, body in _cells(lib_text):
        m = re.search(r"^\s*area\s*:\s*([\d.]+)", body, re.M)
        if m:
            out[name] = float(m.group(1))
    return out


def pin_directions(lib_text: str) -> dict[str, dict[str, str]]:
    """``{cell: {pin: "input" | "output"}}`` from a liberty file."""
    return {name: {m.group(1): m.group(2) for m in re.finditer(
        r"pin\s*\(\s*\"?(\w+)\"?\s*\)\s*\{\s*direction\s*:\s*(\w+)", body)}
        for name, body in _cells(lib_text)}


def _sequential(lib_text: str) -> set[str]:
    return {name for name, body in _cells(lib_text) if re.search(r"\b(ff|latch)\s*\(", body)}


# -- netlist ------------------------------------------------------------------------------------

def _net_names(module: dict) -> dict:
    """Bit id -> Verilog expression: port bits by their port, the rest ``n<id>``."""
    names = {}
    for pname, port in module["ports"].items():
        for i, bit in enumerate(port["bits"]):
            if isinstance(bit, int) and bit not in names:
                names[bit] = f"\\{pname} [{i}]" if len(port["bits"]) > 1 else f"\\{pname} "
    return names


def buffer_netlist(module: dict, top: str, directions: dict, *, max_fanout: int = MAX_FANOUT,
                   buffer=BUFFER) -> tuple[str, dict]:
    """Structural Verilog of a mapped Yosys JSON module, with ``buffer`` trees on every net of
    more than ``max_fanout`` cell loads; cells whose type starts with ``$`` (memories) are left
    out. ``directions``: :func:`pin_directions` of the library. Returns ``(verilog, {"cells":
    {type: count}, "buffers": n, "max_fanout_before": n})``."""
    buf, buf_in, buf_out = buffer
    names = _net_names(module)
    cells = {n: c for n, c in module["cells"].items() if not c["type"].startswith("$")}
    loads: dict = defaultdict(list)                 # bit -> [(cell, pin)]
    for cname, cell in cells.items():
        for pin, bits in cell["connections"].items():
            if directions[cell["type"]].get(pin) == "input":
                for bit in bits:
                    if isinstance(bit, int):
                        loads[bit].append((cname, pin))
    rewired: dict = {}                              # (cell, pin) -> new net
    extra, count = [], 0
    worst = max((len(v) for v in loads.values()), default=0)

    def tree(net: str, sinks: list, depth: int):
        nonlocal count
        if len(sinks) <= max_fanout:
            return sinks
        groups = [sinks[i:i + max_fanout] for i in range(0, len(sinks), max_fanout)]
        drivers = []
        for group in groups:
            count += 1
            out = f"nbuf{count}"
            extra.append((f"buf{count}", net, out))
            for sink in group:
                if isinstance(sink, tuple):
                    rewired[sink] = out
                else:                               # a buffer of the level below
                    extra[sink] = (extra[sink][0], out, extra[sink][2])
            drivers.append(len(extra) - 1)
        return tree(net, drivers, depth + 1)

    clocks = {b for n, port in module["ports"].items() if n in CLOCK_PORTS
              for b in port["bits"]}
    for bit, sinks in loads.items():
        if len(sinks) > max_fanout and bit not in clocks:
            tree(names.get(bit, f"n{bit}"), sinks, 0)

    def expr(bit):
        if bit in ("0", "1"):
            return f"1'b{bit}"
        if bit == "x" or bit == "z":
            return "1'b0"
        return names.get(bit, f"n{bit}")

    lines = [f"module {top} ("]
    lines.append(",\n".join(f"  \\{p} " for p in module["ports"]))
    lines.append(");")
    for pname, port in module["ports"].items():
        w = len(port["bits"])
        rng = f"[{w - 1}:0] " if w > 1 else ""
        lines.append(f"  {port['direction']} {rng}\\{pname} ;")
    wires = set()
    for cell in cells.values():
        for bits in cell["connections"].values():
            wires.update(b for b in bits if isinstance(b, int) and b not in names)
    lines += [f"  wire n{b};" for b in sorted(wires)]
    lines += [f"  wire nbuf{i};" for i in range(1, count + 1)]
    types: dict = defaultdict(int)
    public = {}                                       # bit -> a readable name of its net
    for nname, net in sorted(module.get("netnames", {}).items(),
                             key=lambda kv: (kv[0].count("$"), len(kv[0]))):
        for i, bit in enumerate(net["bits"]):
            if isinstance(bit, int) and bit not in public and "$" not in nname:
                public[bit] = f"{nname}[{i}]" if len(net["bits"]) > 1 else nname
    used: set = set()
    for cname, cell in cells.items():
        types[cell["type"]] += 1
        outs = [b for p, bits in cell["connections"].items()
                if directions[cell["type"]].get(p) == "output" for b in bits]
        label = "c" + cname                          # named after the net it drives, if any
        if outs and outs[0] in public and public[outs[0]] not in used:
            used.add(public[outs[0]])
            label = public[outs[0]] + "_reg"
        pins = []
        for pin, bits in cell["connections"].items():
            net = rewired.get((cname, pin)) if len(bits) == 1 else None
            pins.append(f".{pin}({net or expr(bits[0])})")
        lines.append(f"  {cell['type']} {re.sub(r'[^A-Za-z0-9_]', '_', label)} "
                     f"({', '.join(pins)});")
    for name, src, out in extra:
        lines.append(f"  {buf} {name} (.{buf_in}({src}), .{buf_out}({out}));")
    if count:
        types[buf] += count
    # output ports driven straight by another port bit (or a constant)
    driven = {b for c in cells.values() for p, bits in c["connections"].items()
              if directions[c["type"]].get(p) == "output" for b in bits}
    for pname, port in module["ports"].items():
        if port["direction"] != "output":
            continue
        for i, bit in enumerate(port["bits"]):
            here = f"\\{pname} [{i}]" if len(port["bits"]) > 1 else f"\\{pname} "
            if bit in ("0", "1") or (bit not in driven and names.get(bit) != here):
                lines.append(f"  assign {here} = {expr(bit)};")
    lines.append("endmodule")
    return "\n".join(lines) + "\n", {"cells": dict(types), "buffers": count,
                                     "max_fanout_before": worst}


# -- timing report --------------------------------------------------------------------------------

_PATH_LINE = re.compile(r"^\s*(-?[\d.]+)\s+(-?[\d.]+)\s+([v^])\s+(\S+)\s+\((\w+)\)", re.M)


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def parse_sta(report: str, period_ns: float, sequential=frozenset()) -> dict:
    """Critical path of an OpenSTA ``report_checks -path_delay max`` report: start and end
    points, arrival, setup, slack, the minimum period ``period - slack`` and Fmax, and the
    cells along the path (``logic_levels``: those not in ``sequential``)."""
    start = re.search(r"^Startpoint:\s*(\S+)\s*\(([^)]*)\)", report, re.M)
    end = re.search(r"^Endpoint:\s*(\S+)\s*\(([^)]*)\)", report, re.M)
    slack = re.search(r"^\s*(-?[\d.]+)\s+slack\s+\((MET|VIOLATED)\)", report, re.M)
    arrival = re.search(r"^\s*(-?[\d.]+)\s+data arrival time", report, re.M)
    setup = re.search(r"^\s*(-?[\d.]+)\s+[-\d.]+\s+library setup time", report, re.M)
    if not (start and end and slack and arrival):
        raise LibertyError("no critical path in the OpenSTA report")
    min_period = period_ns - float(slack.group(1))
    steps = []
    for m in _PATH_LINE.finditer(report[start.start():arrival.start()]):
        steps.append({"pin": m.group(4), "cell": m.group(5), "delay_ns": float(m.group(1)),
                      "time_ns": float(m.group(2))})
    return {"startpoint": start.group(1), "start_kind": start.group(2),
            "endpoint": end.group(1), "end_kind": end.group(2),
            "arrival_ns": float(arrival.group(1)),
            "setup_ns": -float(setup.group(1)) if setup else None,
            "slack_ns": float(slack.group(1)), "critical_path_ns": round(min_period, 3),
            "fmax_mhz": round(1000.0 / min_period, 2),
            "logic_levels": sum(1 for s in steps if s["cell"] not in sequential),
            "path_cells": _count(s["cell"] for s in steps if s["cell"] not in sequential),
            "path": steps}


def _yosys_script(top: str, lib: str) -> str:
    return "\n".join([
        "read_verilog design.v",
        f"synth -top {top} -flatten -run :fine",
        "memory_nordff",
        "opt -fast -full",
        "techmap",
        "opt -fast",
        f"dfflibmap -liberty {lib}",
        f"abc -liberty {lib} -D {int(CLOCK_NS * 1000)} -script "
        "+strash;&get,-n;&fraig,-x;&put;scorr;dc2;dretime;strash;&get,-n;&dch,-f;&nf,{D};"
        "&put;buffer,-N," + str(MAX_FANOUT) + ";upsize,{D};dnsize,{D}",
        "opt_clean -purge",
        "delete t:$scopeinfo",
        "write_json mapped.json",
        ""])


def _sta_script(top: str, lib: str, period: float) -> str:
    return "\n".join([
        f"read_liberty {lib}",
        "read_verilog netlist.v",
        f"link_design {top}",
        f"create_clock -name clk -period {period} [get_ports clk]",
        "set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports clk]]",
        "set_output_delay 0 -clock clk [all_outputs]",
        "report_checks -path_delay max -digits 3",
        "exit", ""])


def run_liberty(verilog: str, top: str, workdir, *, timeout: float = 3600) -> dict:
    """Map ``verilog`` (top module ``top``) to the library in ``workdir`` and time it (module
    docstring). Returns area (um^2), cell and flip-flop counts, memory bits, the critical path
    and Fmax, the library and corner. Raises :class:`LibertyError`."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lib_src = library_path()
    sta = sta_path()
    lib_text = lib_src.read_text()
    lib = "cells.lib"                          # a copy: YoWASP tools see only the build folder
    (workdir / lib).write_text(lib_text)
    (workdir / "design.v").write_text(verilog)
    (workdir / "liberty.ys").write_text(_yosys_script(top, lib))
    _, _, t_synth = run_tool([tool("yosys"), "-q", "-l", "liberty.log", "-s", "liberty.ys"],
                             workdir, "liberty.log", timeout)
    mapped = json.loads((workdir / "mapped.json").read_text())["modules"][top]
    mem_bits = 0
    for cell in mapped["cells"].values():
        if cell["type"].startswith("$mem"):
            p = cell["parameters"]
            mem_bits += int(str(p["WIDTH"]), 2 if isinstance(p["WIDTH"], str) else 10) * \
                int(str(p["SIZE"]), 2 if isinstance(p["SIZE"], str) else 10)
    netlist, info = buffer_netlist(mapped, top, pin_directions(lib_text))
    (workdir / "netlist.v").write_text(netlist)
    (workdir / "sta.tcl").write_text(_sta_script(top, lib, CLOCK_NS))
    t1 = time.monotonic()
    _, report, _ = run_tool([sta, "-no_init", "-exit", "sta.tcl"], workdir, "sta.log", timeout)
    (workdir / "sta.log").write_text(report)
    errors = [ln for ln in report.splitlines() if ln.startswith("Error")]
    if errors:
        raise LibertyError(f"OpenSTA: {errors[0]} (log {workdir / 'sta.log'})")
    seq = _sequential(lib_text)
    timing = parse_sta(report, CLOCK_NS, seq)
    areas = cell_areas(lib_text)
    unknown = sorted(set(info["cells"]) - set(areas))
    if unknown:
        raise LibertyError(f"cells without an area in {lib_src}: {', '.join(unknown)}")
    area = sum(areas[t] * n for t, n in info["cells"].items())
    ff_area = sum(areas[t] * n for t, n in info["cells"].items() if t in seq)
    try:
        version = subprocess.run([sta, "-version"], capture_output=True, text=True,
                                 timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        version = "unknown"
    return {"library": dict(LIBRARY, path=str(lib_src)), "sta_version": f"OpenSTA {version}",
            "clock_ns": CLOCK_NS,
            "area_um2": round(area, 1), "ff_area_um2": round(ff_area, 1),
            "cells": sum(info["cells"].values()),
            "ffs": sum(n for t, n in info["cells"].items() if t in seq),
            "buffers_added": info["buffers"], "max_fanout_before": info["max_fanout_before"],
            "cell_counts": dict(sorted(info["cells"].items())), "memory_bits": mem_bits,
            **timing, "synth_seconds": round(t_synth, 1),
            "sta_seconds": round(time.monotonic() - t1, 1)}
