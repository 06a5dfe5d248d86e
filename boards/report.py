"""Synthesis reports: ``summary.json`` and a Markdown table per design and board.

Layout: ``build/reports/<board>/<config>/summary.json`` and ``summary.md``, where ``<config>`` is
the design's name (configuration name plus a hash). Derived figures:

* ``gmacs = macs_per_cycle * fmax_mhz / 1000`` (GMAC/s at the median Fmax over the seeds);
* ``mmacs_per_klut = macs_per_cycle * fmax_mhz / (luts / 1000)`` (MMAC/s per 1000 LUTs), the
  FPGA area efficiency; DSP blocks and block RAMs are reported beside it, not converted;
* ASIC: ``nand2_eq`` (NAND2 equivalents of logic and flip-flops, memories excluded),
  ``nand2_per_mac`` and ``logic_depth`` (gates on the longest flip-flop to flip-flop path);
  from the liberty flow (:mod:`boards.liberty`): ``area_um2`` (standard cells, memories
  excluded), ``critical_path_ns``, ``fmax_mhz``, ``gmacs`` and ``gmacs_per_mm2``, with the
  library, corner and critical path under ``liberty``;
* ``breakdown``: resources per block (``boards.logs.resource_blocks``: the processing
  elements, the row aligners, the weight stores, the control and finalizer, the register
  block...) from an unflattened synthesis of the same design, so that the cost of one PE and
  the fixed cost of the array can be read apart; its ``total`` is close to the headline count,
  not equal (no optimisation across module boundaries).
"""

from __future__ import annotations

import json
import pathlib

from contract.files import write_atomic as _write_atomic

__all__ = ["summarise", "write_atomic", "write_report", "markdown_table", "breakdown_markdown",
           "endpoints_markdown", "liberty_markdown",
           "COLUMNS"]


def _round(v, nd=2):
    return None if v is None else round(float(v), nd)


def summarise(res: dict) -> dict:
    """The report dict of one flow result (see module docstring for the derived figures)."""
    macs = res["macs_per_cycle"]
    out = {
        "design": res["design"], "kind": res["kind"], "board": res["board"],
        "device": res["device"], "device_name": res["device_name"], "top": res["top"],
        "config": res["config"], "macs_per_cycle": macs,
        "tool_versions": res["tool_versions"], "seeds": res.get("seeds", []),
        "explore": res.get("explore", False), "cells": res.get("cells", {}),
        "rtl_fingerprint": res.get("rtl_fingerprint"), "commit": res.get("commit"),
        "synth_seconds": res.get("synth_seconds"), "seconds": res.get("seconds"),
        "breakdown": res.get("breakdown"),
    }
    if res["board"] == "asic":
        out.update({k: res.get(k) for k in ("gates", "ffs", "nand2_eq", "logic_depth",
                                            "memories", "memory_bits")})
        out["nand2_per_mac"] = _round(res["nand2_eq"] / macs, 1)
        out.update(luts=None, carries=None, brams=None, dsps=None, fmax_mhz=None, gmacs=None,
                   mmacs_per_klut=None)
        lib = res.get("liberty")
        if lib and not lib.get("error"):
            gmacs = macs * lib["fmax_mhz"] / 1000
            out.update(area_um2=lib["area_um2"], std_cells=lib["cells"],
                       critical_path_ns=lib["critical_path_ns"], fmax_mhz=lib["fmax_mhz"],
                       gmacs=_round(gmacs, 3),
                       gmacs_per_mm2=_round(gmacs / (lib["area_um2"] / 1e6), 2))
        out["liberty"] = lib
        return out
    out.update({k: res.get(k) for k in ("luts", "ffs", "carries", "brams", "dsps", "lutrams",
                                        "capacity", "target_mhz")})
    out["luts_per_mac"] = _round(res["luts"] / macs, 1)
    fmax = res.get("fmax_mhz")
    out.update(fmax_mhz=fmax, fmax_min_mhz=res.get("fmax_min_mhz"),
               fmax_max_mhz=res.get("fmax_max_mhz"), fmax_spread_mhz=res.get("fmax_spread_mhz"),
               timing_met=res.get("timing_met"), pnr_error=res.get("pnr_error"),
               synth_note=res.get("synth_note"),
               runs=[{k: r.get(k) for k in ("seed", "fmax_mhz", "passed", "seconds",
                                            "timed_out", "critical_path", "utilisation",
                                            "endpoints")}
                     for r in res.get("runs", [])])
    cap = res.get("capacity", {})
    out["fits"] = (res["luts"] <= (cap.get("luts") or 1 << 62)
                   and res["brams"] <= (cap.get("brams") if cap.get("brams") is not None
                                        else 1 << 62)
                   and res["dsps"] <= (cap.get("dsps") if cap.get("dsps") is not None
                                       else 1 << 62))
    if fmax is None:
        out.update(gmacs=None, mmacs_per_klut=None)
    else:
        out["gmacs"] = _round(macs * fmax / 1000.0, 4)
        out["mmacs_per_klut"] = _round(macs * fmax / (res["luts"] / 1000.0), 1) \
            if res["luts"] else None
    return out


def write_atomic(path, text: str) -> pathlib.Path:
    """Write ``text`` to ``path`` through a temporary file and a rename (creating folders)."""
    return _write_atomic(path, text, make_parents=True)


#: Markdown columns: (header, key, format).
COLUMNS = [
    ("design", "design", "{}"), ("device", "device", "{}"), ("MAC/cyc", "macs_per_cycle", "{}"),
    ("LUTs", "luts", "{}"), ("FFs", "ffs", "{}"), ("carries", "carries", "{}"),
    ("BRAMs", "brams", "{}"), ("DSPs", "dsps", "{}"), ("LUT/MAC", "luts_per_mac", "{:.1f}"),
    ("Fmax MHz (median)", "fmax_mhz", "{:.1f}"), ("spread MHz", "fmax_spread_mhz", "{:.1f}"),
    ("GMAC/s", "gmacs", "{:.3f}"), ("MMAC/s per kLUT", "mmacs_per_klut", "{:.1f}"),
    ("gates", "gates", "{}"), ("NAND2-eq", "nand2_eq", "{:.0f}"),
    ("NAND2/MAC", "nand2_per_mac", "{:.0f}"), ("depth", "logic_depth", "{}"),
    ("area um^2", "area_um2", "{:.0f}"), ("critical path ns", "critical_path_ns", "{:.2f}"),
    ("GMAC/s per mm^2", "gmacs_per_mm2", "{:.2f}"),
]


def markdown_table(summaries, columns=None) -> str:
    """A Markdown table of report dicts; columns empty in every row are left out."""
    columns = columns or COLUMNS
    used = [c for c in columns if any(s.get(c[1]) is not None for s in summaries)]
    lines = ["| " + " | ".join(h for h, _, _ in used) + " |",
             "|" + "|".join("---" for _ in used) + "|"]
    for s in summaries:
        cells = []
        for _, key, fmt in used:
            v = s.get(key)
            cells.append("-" if v is None else fmt.format(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: Breakdown columns per unit of the headline count: (header, key).
_BLOCK_COLUMNS = {
    "luts": [("LUTs", "luts"), ("LUTs each", "each"), ("share", "share"), ("FFs", "ffs"),
             ("carries", "carries"), ("BRAMs", "brams"), ("DSPs", "dsps")],
    "nand2_eq": [("NAND2-eq", "nand2_eq"), ("NAND2-eq each", "each"), ("share", "share"),
                 ("gates", "gates"), ("FFs", "ffs")],
}


def breakdown_markdown(breakdown) -> list[str]:
    """Lines of the report's "Resources per block" section (none without a breakdown)."""
    if not breakdown:
        return []
    if breakdown.get("error"):
        return [f"Resources per block: not available ({breakdown['error']}).", ""]
    unit, total = breakdown["unit"], breakdown["total"] or 1
    cols = _BLOCK_COLUMNS[unit]
    lines = ["## Resources per block", "",
             "From the design synthesised again without flattening (each module's own cells); "
             f"the blocks add up to {breakdown['total']:g} "
             f"{'LUTs' if unit == 'luts' else 'NAND2-eq'}.", "",
             "| block | instances | " + " | ".join(h for h, _ in cols) + " |",
             "|---|---|" + "|".join("---" for _ in cols) + "|"]
    for b in breakdown["blocks"]:
        derived = {"each": f"{b[unit] / b['instances']:.1f}",
                   "share": f"{100 * b[unit] / total:.1f} %"}
        row = [derived[k] if k in derived else f"{b.get(k, 0):g}" for _, k in cols]
        lines.append(f"| {b['block']} | {b['instances']} | " + " | ".join(row) + " |")
    return lines + [""]


def liberty_markdown(lib) -> list[str]:
    """Lines of the ASIC report's "Standard cells and timing" section (none without it)."""
    if not lib:
        return []
    if lib.get("error"):
        return [f"Standard cells and timing: not run ({lib['error']}).", ""]
    L = lib["library"]
    cells = ", ".join(f"{n} {c}" for c, n in lib.get("path_cells", {}).items())
    return ["## Standard cells and timing", "",
            f"Library {L['name']} ({L['process']}, {L['package']}), corner {L['corner']}; "
            f"Yosys `abc -liberty`, {lib.get('sta_version', 'OpenSTA')}, ideal clock, no wire "
            f"load (pre-layout); "
            f"{lib['buffers_added']} BUFX4 added on nets of more than 16 loads; memories "
            f"({lib['memory_bits']} bits) are macros outside the area and the timing.", "",
            f"- area {lib['area_um2']:.0f} um^2 ({lib['cells']} cells, {lib['ffs']} flip-flops "
            f"= {lib['ff_area_um2']:.0f} um^2)",
            f"- critical path {lib['critical_path_ns']:.3f} ns (arrival "
            f"{lib['arrival_ns']:.3f} + setup {lib['setup_ns'] or 0:.3f}): Fmax "
            f"{lib['fmax_mhz']:.1f} MHz",
            f"- from `{lib['startpoint']}` ({lib['start_kind']}) to `{lib['endpoint']}` "
            f"({lib['end_kind']}), {lib['logic_levels']} logic levels: {cells}", ""]


def endpoints_markdown(runs, top: int = 3) -> list[str]:
    """Lines of the report's "Slowest registers" section: per seed, the endpoints later than the
    target's period and the ``top`` slowest registers (none without endpoint listings)."""
    rows = [r for r in runs or [] if r.get("endpoints") and "count" in r["endpoints"]]
    if not rows:
        return []
    lines = ["## Slowest registers", "",
             "From nextpnr's detailed timing report of each seed (`pnr_seed<N>.json`): worst "
             "arrival time at each register's inputs, in ns from the clock edge, without the "
             "register's setup time and the clock skew (so a seed can miss its target with no "
             "endpoint over the period).", "",
             "| seed | Fmax MHz | endpoints over the period | slowest registers |",
             "|---|---|---|---|"]
    for r in rows:
        e = r["endpoints"]
        slow = ", ".join(f"`{g['name']}` {g['ns']:.2f}" for g in e["slowest"][:top])
        fmax = "-" if r.get("fmax_mhz") is None else f"{r['fmax_mhz']:.2f}"
        lines.append(f"| {r['seed']} | {fmax} | {e['over_period']} of {e['count']} "
                     f"(> {e['period_ns']:g} ns) | {slow} |")
    return lines + [""]


def _run_outcome(run: dict) -> str:
    if run.get("fmax_mhz") is not None:
        return f"{run['fmax_mhz']:.2f} MHz"
    if run.get("timed_out"):
        return f"stopped after {run.get('seconds'):g} s (the time limit per seed)"
    return "no timing report (place and route failed)"


def write_report(summary: dict, root="build/reports") -> pathlib.Path:
    """Write ``<root>/<board>/<design>/summary.json`` and ``summary.md``; return the folder."""
    folder = pathlib.Path(root) / summary["board"] / summary["design"]
    write_atomic(folder / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    md = [f"# {summary['design']} on {summary['device_name']}", "",
          markdown_table([summary]), "",
          f"Tools: {', '.join(f'{k} {v}' for k, v in summary['tool_versions'].items())}.", ""]
    if summary.get("seeds"):
        runs = ", ".join(f"seed {r['seed']}: {_run_outcome(r)}" for r in summary.get("runs", []))
        mode = "exploration (--timing-allow-fail)" if summary.get("explore") else "must meet"
        md.append(f"Target {summary.get('target_mhz')} MHz, {mode}; {runs}.")
        md.append("")
    if summary.get("pnr_error"):
        md += [f"Place and route: {summary['pnr_error']}", ""]
    if summary.get("synth_note"):
        md += [f"Synthesis: {summary['synth_note']}", ""]
    md += liberty_markdown(summary.get("liberty"))
    md += breakdown_markdown(summary.get("breakdown"))
    md += endpoints_markdown(summary.get("runs"))
    md += ["Configuration:", "", "```json", json.dumps(summary["config"], indent=2), "```", ""]
    write_atomic(folder / "summary.md", "\n".join(md))
    return folder


#: The fp16 FMA baselines a ratio ``vs best fp16 FMA`` divides by.
FP16_DESIGNS = ("fma16", "fma16-32")


def add_ratios_vs_best_fp16(records, *, group, metric: str) -> None:
    """Set ``ratio_vs_best_fp16`` of every record: its ``metric`` over the best fp16 FMA
    design's within the same ``group(record)`` (``None`` when either is missing)."""
    groups: dict = {}
    for r in records:
        groups.setdefault(group(r), []).append(r)
    for sub in groups.values():
        best = max((r.get(metric) or 0 for r in sub if r["design"] in FP16_DESIGNS), default=0)
        for r in sub:
            r["ratio_vs_best_fp16"] = (round(r[metric] / best, 2)
                                       if best and r.get(metric) else None)


def cell(value, fmt: str = "{}") -> str:
    """A Markdown table cell: ``-`` for ``None``, else ``fmt`` applied."""
    return "-" if value is None else fmt.format(value)
