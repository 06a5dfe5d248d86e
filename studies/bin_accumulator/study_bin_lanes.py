"""Study: exact accumulation in the iCE40 UP5K's block RAMs (``binlane``), measured.

Usage: ``python -m studies.bin_accumulator.study_bin_lanes [--sizes 2x2,4x6]
[--combine no,yes,round] [--seeds 1,2,3] [--jobs N]``.

The array's PEs keep their exact accumulators in flip-flops and carry chains: 190.5 LUT4 per
MAC on the UP5K with the drain entry (``docs/array.md``). That is too many for the issue's
UP5K targets (>= 300 MMAC/s per kLUT, >= 1 GMAC/s). This study synthesises, places and routes
a grid of :class:`binlane.BinLaneGrid` lanes for the UP5K with the flow of ``make synth``
(``boards.flow``, the serial I/O harness, nextpnr in exploration mode). Each lane keeps one
16-bit bin per exponent in its own EBR and sinks its own carries (the grid stalls a clock per
carry); with ``--combine yes`` each column also sums its lanes' bins into one exact number
(:class:`bincombine.BinCombiner`), and with ``round`` a shared :class:`binround.BinRounder`
rounds the sums to fp16. The grid is a datapath: no sequencing, no control. So
its figures are a **lower bound** on the LUT4s such an array would need, and show whether the
lanes alone fit the targets.

Writes ``build/bench/bin_lanes.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from boards import flow  # noqa: E402
from boards.design import Design  # noqa: E402
from hw.emit import to_verilog  # noqa: E402
from studies.bin_accumulator.binlane import BinLaneGrid  # noqa: E402

TOP = "bin_lane_grid"


def _size(text):
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected ROWSxCOLS, e.g. 4x6") from None
    if rows < 1 or cols < 1:
        raise argparse.ArgumentTypeError(f"size {text!r}: rows and cols must be positive")
    return rows, cols


#: ``--combine`` values: (combine, rounding) and the design name's suffix
PARTS = {"no": (False, False, ""), "yes": (True, False, "_combine"),
         "round": (True, True, "_round")}


def _parts(text):
    values = text.split(",")
    for v in values:
        if v not in PARTS:
            raise argparse.ArgumentTypeError(f"--combine {v!r}: expected one of "
                                             f"{', '.join(PARTS)}")
    return values


def measure(rows, cols, *, parts, seeds, jobs, build, pnr_timeout=None):
    combine, rounding, suffix = PARTS[parts]
    grid = BinLaneGrid(rows=rows, cols=cols, combine=combine, rounding=rounding)
    design = Design(name=f"bin_lanes_{rows}x{cols}{suffix}",
                         top=TOP, verilog=to_verilog(grid, name=TOP),
                         config={"study": "studies.bin_accumulator.binlane.BinLaneGrid",
                                 "rows": rows, "cols": cols,
                                 "combine": combine, "rounding": rounding,
                                 "format": "fp16", "weight_bits": 3, "bin_bits": 16},
                         macs_per_cycle=rows * cols)
    res = flow.run_flow(design, board="ice40", device="up5k", workdir=build / design.name,
                        seeds=seeds, explore=True, pnr_jobs=jobs, pnr_timeout=pnr_timeout)
    fmaxes = [r["fmax_mhz"] for r in res["runs"] if r["fmax_mhz"] is not None]
    lcs = [r["utilisation"].get("ICESTORM_LC") for r in res["runs"]]
    out = {k: res.get(k) for k in ("design", "config", "macs_per_cycle", "luts", "ffs",
                                   "carries", "brams", "tool_versions")}
    out.update(seeds=list(seeds), fmax_seeds=[r["fmax_mhz"] for r in res["runs"]],
               logic_cells=next((u for u in lcs if u), None),
               pnr_error=res.get("pnr_error"),
               luts_per_mac=round(res["luts"] / (rows * cols), 1))
    if fmaxes:
        fmax = statistics.median(fmaxes)
        gmacs = rows * cols * fmax / 1000
        out.update(fmax_mhz=round(fmax, 2), gmacs=round(gmacs, 3),
                   mmacs_per_klut=round(1000 * gmacs / (res["luts"] / 1000), 1))
    return out


def table(results):
    lines = ["| grid | lanes | LUT4 | LUT4 per lane | carry | FF | EBR | logic cells (harness "
             "included) | Fmax MHz (seeds) | GMAC/s | MMAC/s per kLUT (lanes alone) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        cfg = r["config"]
        seeds = ", ".join("-" if f is None else f"{f:.1f}" for f in r["fmax_seeds"])
        cells = "-" if not r["logic_cells"] else f"{r['logic_cells'][0]} of {r['logic_cells'][1]}"
        fmax = f"{r['fmax_mhz']:.1f} ({seeds})" if r.get("fmax_mhz") else \
            f"does not place ({r['pnr_error'] or 'no timing'})"
        name = f"{cfg['rows']}x{cfg['cols']}" + (" + combiners" if cfg.get("combine") else "")
        name += " + rounder" if cfg.get("rounding") else ""
        lines.append(f"| {name} | {r['macs_per_cycle']} | {r['luts']} | "
                     f"{r['luts_per_mac']} | {r['carries']} | {r['ffs']} | {r['brams']} | "
                     f"{cells} | {fmax} | {r.get('gmacs', '-')} | "
                     f"{r.get('mmacs_per_klut', '-')} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2x2,4x6",
                    type=lambda s: [_size(v) for v in s.split(",")])
    ap.add_argument("--combine", default="no,yes", type=_parts,
                    help="grids without (no) and/or with a BinCombiner per column (yes), and "
                         "with the shared BinRounder too (round)")
    ap.add_argument("--seeds", default="1,2,3", type=lambda s: [int(v) for v in s.split(",")])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--pnr-timeout", type=float, metavar="SECONDS",
                    help="stop a place-and-route seed after this long (a full device's placer "
                         "can stall)")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    args = ap.parse_args(argv)
    build = ROOT / "build" / "study_bin_lanes"      # below the repository: YoWASP sees it
    results = []
    for (rows, cols), parts in ((s, c) for s in args.sizes for c in args.combine):
        print(f"bin lanes {rows}x{cols}{PARTS[parts][2]} on the UP5K ...", flush=True)
        results.append(measure(rows, cols, parts=parts, seeds=args.seeds, jobs=args.jobs,
                               build=build, pnr_timeout=args.pnr_timeout))
        print(table(results[-1:]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bin_lanes.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "bin_lanes.md").write_text(
        "# Exact accumulation in UP5K block RAM: lane grids alone (binlane)\n\n"
        + table(results) + "\n")
    print(f"wrote {args.out / 'bin_lanes.md'}")


if __name__ == "__main__":
    main()
