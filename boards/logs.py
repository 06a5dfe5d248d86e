"""Readers of the tools' logs and reports: Yosys ``stat`` (whole design and per block), nextpnr
logs (Fmax, utilisation, critical path) and timing reports (endpoints), ``ltp`` depth."""

from __future__ import annotations

import re

from .devices import fpga_resources, nand2_equivalents
from .errors import FlowError

__all__ = ["parse_yosys_stat", "parse_yosys_blocks", "block_name", "resource_blocks",
           "endpoint_group", "parse_nextpnr_endpoints", "parse_nextpnr_log", "parse_ltp"]


_STAT_HEADER = re.compile(r"^=== (\S+) ===\s*$", re.M)
_STAT_CELL_NEW = re.compile(r"^\s+(\d+)\s+(?:[\d.]+\s+)?(\$?[A-Za-z_][\w$]*)\s*$")
_STAT_CELL_OLD = re.compile(r"^\s+(\$?[A-Za-z_][\w$]*)\s+(\d+)\s*$")
_STAT_SKIP = {"wires", "wire", "bits", "public", "ports", "port", "cells", "memories",
              "processes", "submodules"}


def parse_yosys_stat(log: str, *, module=None, marker="DENSEHW_STAT") -> dict[str, int]:
    """Cell counts ``{cell_type: count}`` from the last ``stat`` section after ``marker`` (or the
    last one in the log). Understands the old (``SB_LUT4  12``) and new (``12  SB_LUT4``)
    layouts. Raises :class:`FlowError` when no statistics are found."""
    hits = list(re.finditer(r"^" + re.escape(marker) + r"\s*$", log, re.M)) if marker else []
    start = hits[-1].start() if hits else -1
    text = log[start:] if start >= 0 else log
    heads = list(_STAT_HEADER.finditer(text))
    if module is not None:
        heads = [h for h in heads if h.group(1).lstrip("\\") == module]
    if not heads:
        raise FlowError("no Yosys statistics section found in the log")
    head = heads[-1] if start < 0 else heads[0]
    section = text[head.end():]
    nxt = re.search(r"^(=== |\d+\.\s+Executing|\d+\.\s+Printing|End of script)", section, re.M)
    section = section[:nxt.start()] if nxt else section
    cells = {}
    for line in section.splitlines():
        m = _STAT_CELL_NEW.match(line)
        if m:
            count, name = int(m.group(1)), m.group(2)
        else:
            m = _STAT_CELL_OLD.match(line)
            if not m:
                continue
            name, count = m.group(1), int(m.group(2))
        if name in _STAT_SKIP or name.startswith("$scopeinfo"):
            continue
        if "Number of" in line:
            continue
        cells[name] = cells.get(name, 0) + count
    if not cells:
        raise FlowError("the Yosys statistics section lists no cells")
    return cells


def parse_yosys_blocks(log: str, *, marker="DENSEHW_STAT_BLOCKS") -> dict[str, dict[str, int]]:
    """``{module: cells}`` from the ``stat`` of an unflattened design after ``marker``: each
    module's own cells, its submodules' excluded (Yosys lists those as instances, not cells).
    Modules without cells of their own are left out. Raises :class:`FlowError` when the log
    has no such statistics."""
    hits = list(re.finditer(r"^" + re.escape(marker) + r"\s*$", log, re.M))
    if not hits:
        raise FlowError(f"no {marker} statistics in the log")
    text = log[hits[-1].start():]
    modules = {}
    for name in dict.fromkeys(h.group(1).lstrip("\\") for h in _STAT_HEADER.finditer(text)):
        try:
            modules[name] = parse_yosys_stat(text, module=name, marker=None)
        except FlowError:
            continue                                # only wires and submodules
    if not modules:
        raise FlowError(f"the {marker} statistics list no cells")
    return modules


def block_name(module: str, top: str) -> str:
    """The block a module instance belongs to: its path below ``top`` with the instance
    indices dropped (``densehw_array.core.pe_1_0`` -> ``core.pe``, ``...align0`` ->
    ``core.align``); ``top`` itself is ``top``."""
    if module == top:
        return "top"
    path = module[len(top) + 1:] if module.startswith(top + ".") else module
    return ".".join(re.sub(r"(?:_?\d+)+$", "", part) or part for part in path.split("."))


def resource_blocks(board: str, modules: dict[str, dict[str, int]], top: str) -> list[dict]:
    """Per block (:func:`block_name`): instances and resources summed over them, largest
    first. FPGA boards count ``luts``, ``ffs``, ``carries``, ``brams``, ``dsps``; ``asic``
    counts ``gates``, ``ffs`` and ``nand2_eq``."""
    blocks: dict[str, dict] = {}
    for module, cells in modules.items():
        if board == "asic":
            res = {"gates": sum(v for k, v in cells.items()
                                if not k.startswith(("$mem", "$_DFF"))),
                   "ffs": sum(v for k, v in cells.items() if k.startswith("$_DFF")),
                   "nand2_eq": nand2_equivalents(cells)}
        else:
            res = {k: v for k, v in fpga_resources(board, cells).items() if k != "lutrams"}
        b = blocks.setdefault(block_name(module, top), {"instances": 0})
        b["instances"] += 1
        for k, v in res.items():
            b[k] = round(b.get(k, 0) + v, 1)
    key = "nand2_eq" if board == "asic" else "luts"
    return [{"block": name, **b} for name, b in
            sorted(blocks.items(), key=lambda kv: (-kv[1][key], kv[0]))]


_FMAX_RE = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+)\s+MHz\s+\((PASS|FAIL)"
                      r"\s+at\s+([\d.]+)\s+MHz\)")
_UTIL_RE = re.compile(r"^Info:\s+([A-Z][A-Z0-9_]+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)


_CELL_SUFFIX_RE = re.compile(
    r"_(TRELLIS_FF|TRELLIS_COMB|SB_DFF\w*|SB_LUT4|SB_CARRY|LUT4|CCU2C|PFUMX|L6MUX21|DP16KD"
    r"|SB_RAM40_4K)(_.*)?$")
_YOSYS_SUFFIX_RE = re.compile(r"(?<=[^.])\$.*$")


def endpoint_group(cell: str) -> str:
    """The design signal a placed cell's name comes from: the tools' suffixes (``_TRELLIS_FF_Q``,
    ``_SB_DFFE_Q_3``, ``$abc$...``) dropped, so that a register's bits form one group."""
    return _YOSYS_SUFFIX_RE.sub("", _CELL_SUFFIX_RE.sub("", cell)) or cell


def parse_nextpnr_endpoints(report: dict, period_ns: float, top: int = 8) -> dict:
    """From nextpnr's ``--report`` JSON with ``--detailed-timing-report`` (the arrival time at
    every timing endpoint, ``[min, max]`` ns from the launching clock edge): ``count``
    endpoints, ``over_period`` of them arriving later than ``period_ns``, and the ``slowest``
    ``top`` groups (:func:`endpoint_group`), each ``{"name", "ns", "over_period"}``, slowest
    first: every failing structure of a placement, where the log names only the worst path."""
    groups: dict[str, list] = {}
    count = over = 0
    for net in report["detailed_net_timings"]:
        for end in net.get("endpoints", []):
            delay = end["delay"]
            ns = float(max(delay) if isinstance(delay, list) else delay)
            count += 1
            late = ns > period_ns
            over += late
            g = groups.setdefault(endpoint_group(end["cell"]), [0.0, 0])
            g[0] = max(g[0], ns)
            g[1] += late
    slowest = sorted(groups.items(), key=lambda kv: -kv[1][0])[:top]
    return {"count": count, "period_ns": round(period_ns, 3), "over_period": over,
            "slowest": [{"name": n, "ns": round(v[0], 3), "over_period": v[1]}
                        for n, v in slowest]}


def parse_nextpnr_log(log: str) -> dict:
    """From a nextpnr log: ``fmax_mhz`` (the worst clock of the last timing report, the one after
    routing), ``target_mhz``, ``passed``, ``clocks`` and ``utilisation``
    (``{bel_type: [used, available]}``). ``fmax_mhz`` is ``None`` if no report was found (e.g. a
    design without clocked logic or a failed run); ``error`` holds the first ``ERROR:`` line."""
    hits = _FMAX_RE.findall(log)
    clocks = {}
    for name, fmax, verdict, target in hits:       # later reports overwrite earlier ones
        clocks[name] = {"fmax_mhz": float(fmax), "passed": verdict == "PASS",
                        "target_mhz": float(target)}
    util = {}
    for m in _UTIL_RE.finditer(log):
        if int(m.group(2)):
            util[m.group(1)] = [int(m.group(2)), int(m.group(3))]
    err = re.search(r"^ERROR:.*$", log, re.M)
    out = {"clocks": clocks, "utilisation": util, "error": err.group(0) if err else None,
           "critical_path": _critical_path(log)}
    if clocks:
        worst = min(clocks.values(), key=lambda c: c["fmax_mhz"])
        out.update(fmax_mhz=worst["fmax_mhz"], target_mhz=worst["target_mhz"],
                   passed=all(c["passed"] for c in clocks.values()))
    else:
        out.update(fmax_mhz=None, target_mhz=None, passed=False)
    return out


def _critical_path(log: str) -> dict | None:
    """First source and last sink cell of the last critical path report (names shortened)."""
    starts = [m.end() for m in re.finditer(r"Critical path report for clock[^\n]*\n", log)]
    if not starts:
        return None
    block = log[starts[-1]:]
    end = re.search(r"^Info: (?:Max frequency|Critical path report|Slack histogram)", block,
                    re.M)
    block = block[:end.start()] if end else block
    srcs = re.findall(r"Source\s+(\S+)", block)
    sinks = re.findall(r"Sink\s+(\S+)", block)
    total = re.findall(r"^Info:\s+[\w-]+\s+[\d.]+\s+([\d.]+)\s", block, re.M)

    def short(name):
        return name if len(name) < 60 else name[:57] + "..."
    if not srcs or not sinks:
        return None
    return {"from": short(srcs[0]), "to": short(sinks[-1]), "segments": len(sinks),
            "ns": float(total[-1]) if total else None}


def parse_ltp(log: str) -> int | None:
    """Length of the longest topological path reported by ``ltp`` (``None`` if absent)."""
    hits = re.findall(r"Longest topological path in \S+ \(length=(\d+)\)", log)
    return int(hits[-1]) if hits else None
