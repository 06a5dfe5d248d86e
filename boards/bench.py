"""``make bench-hw``: the shift array against conventional MAC arrays, same sizes, same run.

Builds, for every array size and device (iCE40 UP5K, ECP5-25F, generic ASIC gates):

* ``shift-array``: the DenseShift PE array (exact accumulation, rounded once);
* ``fma-array``: pipelined fused-MAC arrays (``boards.fpmac``): fp16 inputs with fp16 or fp32
  accumulation, bf16 inputs with fp32 accumulation; one multiplier block per PE while the
  device has them, LUT multipliers for the rest;
* ``int8-array``: 8 x 8 -> 32-bit integer MACs (``boards.intmac``) on multiplier blocks, and
  with LUT multipliers only;
* ``shift-fpadd``: shift product + naive one-clock fp16 adder loop per PE (what exact
  accumulation buys);

and each stand-alone PE (``fma-pe``, ``int8-pe``), the unit compared with the HardFloat
yardstick in ``docs/synthesis.md``.

Writes ``build/bench/hw.json`` (every summary), ``hw.md`` (comparison table: LUTs or NAND2-eq per
MAC, Fmax, GMAC/s, MMAC/s per kLUT, ratio to the best fp16 FMA array of the same size and
device) and PNG plots: ``resources_vs_size.png``, ``fmax_vs_size.png``,
``throughput_per_area.png``. Points are cached like the sweep (``build/sweep``-style hashes under
``build/bench/cache``). Usage: ``python -m boards.bench [--sizes 2x2,4x4] [--jobs N]
[--no-pes]``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from boards.devices import DEFAULT_TARGET_MHZ
from boards.report import cell as _fmt
from boards.report import write_atomic
from boards.sweep import attach_error, make_job, run_jobs

__all__ = ["bench_specs", "bench_jobs", "compare", "comparison_table", "blocks_table", "plot_bench",
           "main"]

DEVICES = (("ice40", "up5k"), ("ecp5", "25f"), ("asic", "generic"))
#: The fp16 FMA arrays the shift array is compared with (``ratio_vs_fp16``: the best of them).
FP16_FMA = (("fp16", "fp16"), ("fp16", "fp32"))
FMA_FORMATS = (*FP16_FMA, ("bf16", "fp32"))


def _label(spec):
    kind = spec["kind"]
    if kind in ("fma-array", "fma-pe"):
        text = f"{spec.get('in_fmt', 'fp16')} FMA, {spec.get('acc_fmt', 'fp16')} acc"
    elif kind in ("int8-array", "int8-pe"):
        text = f"int8 MAC ({spec.get('mult', 'dsp').upper()})"
    else:
        text = {"array": "shift array (exact)", "shift-fpadd": "shift + naive fp16 add",
                "fp-mac": f"{spec.get('fmt', 'fp16')} mult + one-clock add",
                "int8-mac": "int8 x int8 -> int32"}.get(kind, kind)
    return text + (" PE" if _is_pe(spec) else "")


def bench_specs(rows, cols, *, depth=512, dsps=None):
    """The designs of one array size; ``dsps``: multiplier blocks available (``None``: one
    per PE)."""
    extra = {} if dsps is None or dsps >= rows * cols else {"dsps": dsps}
    return [
        {"kind": "array", "config": {"in_fmt": "fp16", "wbits": 3, "rows": rows, "cols": cols,
                                     "depth": depth}},
        *({"kind": "fma-array", "in_fmt": i, "acc_fmt": a, "rows": rows, "cols": cols, **extra}
          for i, a in FMA_FORMATS),
        {"kind": "int8-array", "mult": "dsp", "rows": rows, "cols": cols, **extra},
        {"kind": "int8-array", "mult": "lut", "rows": rows, "cols": cols},
        {"kind": "shift-fpadd", "fmt": "fp16", "wbits": 3, "rows": rows, "cols": cols},
    ]


def pe_specs():
    """The stand-alone PEs: each FMA format pair with a multiplier block, and int8 MACs."""
    return [*({"kind": "fma-pe", "in_fmt": i, "acc_fmt": a, "mult": "dsp"}
              for i, a in FMA_FORMATS),
            {"kind": "int8-pe", "mult": "dsp"}, {"kind": "int8-pe", "mult": "lut"}]


def bench_jobs(sizes, *, devices=DEVICES, seeds=(1, 2, 3), root="build/bench/cache",
               depth=512, pnr_timeout=None, pes=True):
    from boards.devices import DEVICES as CAPACITY

    jobs = []
    for board, device in devices:
        dsps = CAPACITY[board][device]["dsps"]
        specs = [s for rows, cols in sizes for s in bench_specs(rows, cols, depth=depth,
                                                               dsps=dsps)]
        specs += pe_specs() if pes else []
        jobs += [make_job(spec, board, device, seeds=seeds, explore=True, root=root,
                          pnr_timeout=pnr_timeout) for spec in specs]
    return jobs


def _is_pe(spec):
    return spec["kind"] in ("fma-pe", "int8-pe")


def _size(r):
    spec = r["spec"]
    if _is_pe(spec):
        return "PE"
    cfg = spec.get("config", spec)
    return cfg.get("rows", 4), cfg.get("cols", 4)


def _size_text(r):
    size = _size(r)
    return size if isinstance(size, str) else "x".join(map(str, size))


def _efficiency(r):
    """Higher is better: MMAC/s per kLUT (FPGA), MACs per NAND2-eq (ASIC)."""
    if r["board"] == "asic":
        return 1.0 / r["nand2_per_mac"] if r.get("nand2_per_mac") else None
    return r.get("mmacs_per_klut")


def compare(results):
    """Rows of the comparison table, with ratios to the best fp16 FMA array (fp16 or fp32
    accumulation, by MMAC/s per kLUT; ASIC: by MACs per NAND2-eq) of the same size and
    device."""
    base = {}
    for r in results:
        spec = r["spec"]
        if (spec["kind"] != "fma-array" or r.get("error") or _efficiency(r) is None
                or (spec.get("in_fmt", "fp16"), spec.get("acc_fmt", "fp16")) not in FP16_FMA):
            continue
        key = (r["board"], r["device"], _size(r))
        if key not in base or _efficiency(r) > _efficiency(base[key]):
            base[key] = r
    rows = []
    for r in results:
        row = {"design": _label(r["spec"]), "board": r["board"], "device": r.get("device"),
               "size": _size_text(r), "error": r.get("error")}
        if not r.get("error"):
            b = base.get((r["board"], r["device"], _size(r)))
            row.update({k: r.get(k) for k in (
                "macs_per_cycle", "luts", "ffs", "carries", "brams", "dsps", "luts_per_mac",
                "fmax_mhz", "fmax_spread_mhz", "gmacs", "mmacs_per_klut", "fits", "nand2_eq",
                "nand2_per_mac", "logic_depth", "gates", "gemm_rel_error", "pnr_error",
                "synth_note")})
            row["ratio_vs_fp16"] = (round(_efficiency(r) / _efficiency(b), 2)
                                    if b and _efficiency(r) else None)
        rows.append(row)
    return rows


def comparison_table(rows) -> str:
    out = []
    for board in dict.fromkeys(r["board"] for r in rows):
        sub = [r for r in rows if r["board"] == board]
        out.append(f"### {board} ({sub[0]['device']})\n")
        if board == "asic":
            out.append("| design | size | gates | NAND2-eq | NAND2-eq/MAC | logic depth | "
                       "MAC/NAND2 vs fp16 | GEMM rel. error |")
            out.append("|---|---|---|---|---|---|---|---|")
            for r in sub:
                out.append(f"| {r['design']} | {r['size']} | {_fmt(r.get('gates'))} | "
                           f"{_fmt(r.get('nand2_eq'), '{:.0f}')} | "
                           f"{_fmt(r.get('nand2_per_mac'), '{:.0f}')} | "
                           f"{_fmt(r.get('logic_depth'))} | "
                           f"{_fmt(r.get('ratio_vs_fp16'), '{:.2f}x')} | "
                           f"{_fmt(r.get('gemm_rel_error'), '{:.1e}')} |")
        else:
            out.append("| design | size | LUTs | FFs | DSPs | BRAMs | LUTs/MAC | Fmax MHz "
                       "(spread) | GMAC/s | MMAC/s per kLUT | vs best fp16 FMA | fits | GEMM rel. "
                       "error |")
            out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            for r in sub:
                fmax = (f"{r['fmax_mhz']:.1f} ({r.get('fmax_spread_mhz') or 0:.1f})"
                        if r.get("fmax_mhz") else "-")
                out.append(f"| {r['design']} | {r['size']} | {_fmt(r.get('luts'))} | "
                           f"{_fmt(r.get('ffs'))} | {_fmt(r.get('dsps'))} | "
                           f"{_fmt(r.get('brams'))} | {_fmt(r.get('luts_per_mac'), '{:.0f}')} | "
                           f"{fmax} | {_fmt(r.get('gmacs'), '{:.3f}')} | "
                           f"{_fmt(r.get('mmacs_per_klut'), '{:.1f}')} | "
                           f"{_fmt(r.get('ratio_vs_fp16'), '{:.2f}x')} | "
                           f"{_fmt(r.get('fits'))} | "
                           f"{_fmt(r.get('gemm_rel_error'), '{:.1e}')} |")
        failed = [r for r in sub if r.get("error") or r.get("pnr_error")]
        for r in failed:
            out.append(f"\n- {r['design']} {r['size']}: {r.get('error') or r.get('pnr_error')}")
        for r in sub:
            if r.get("synth_note") and not r.get("error"):
                out.append(f"\n- {r['design']} {r['size']}: {r['synth_note']}")
        out.append("")
    return "\n".join(out) + "\n"


def blocks_table(results) -> str:
    """Where the shift array's area goes: per board, its blocks (the reports' ``breakdown``)
    against the array sizes, as ``total (each)`` in LUTs or NAND2-eq; empty without any."""
    out = []
    arrays = [r for r in results if r["spec"]["kind"] == "array" and not r.get("error")
              and (r.get("breakdown") or {}).get("blocks")]
    for board in dict.fromkeys(r["board"] for r in arrays):
        sub = sorted((r for r in arrays if r["board"] == board), key=_size)
        unit = sub[0]["breakdown"]["unit"]
        sizes = ["x".join(map(str, _size(r))) for r in sub]
        per = [{b["block"]: b for b in r["breakdown"]["blocks"]} for r in sub]
        names = list(dict.fromkeys(b["block"] for r in reversed(sub)
                                   for b in r["breakdown"]["blocks"]))
        out += [f"### {board} ({sub[0].get('device')}): "
                f"{'LUTs' if unit == 'luts' else 'NAND2-eq'} per block, total (each)", "",
                "| block | " + " | ".join(sizes) + " |",
                "|---|" + "|".join("---" for _ in sizes) + "|"]
        for name in names:
            cells = []
            for blocks in per:
                b = blocks.get(name)
                cells.append("-" if b is None else
                             f"{b[unit]:.0f} ({b[unit] / b['instances']:.1f})")
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("| sum of blocks | " + " | ".join(
            f"{r['breakdown']['total']:.0f}" for r in sub) + " |")
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


def plot_bench(rows, folder) -> list[pathlib.Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = pathlib.Path(folder)
    plots = [("resources_vs_size.png", "area", "LUTs (FPGA) / NAND2-eq (ASIC)"),
             ("fmax_vs_size.png", "fmax_mhz", "Fmax (MHz, median over seeds)"),
             ("throughput_per_area.png", "eff", "MMAC/s per kLUT (FPGA) / MAC per kNAND2 (ASIC)")]
    paths = []
    boards = list(dict.fromkeys(r["board"] for r in rows))
    for fname, key, ylabel in plots:
        use = [b for b in boards if not (key == "fmax_mhz" and b == "asic")]
        fig, axes = plt.subplots(1, max(1, len(use)), figsize=(5 * max(1, len(use)), 4),
                                 squeeze=False)
        for ax, board in zip(axes[0], use, strict=False):
            for design in dict.fromkeys(r["design"] for r in rows):
                pts = []
                for r in rows:
                    if r["board"] != board or r["design"] != design or r.get("error"):
                        continue
                    if key == "area":
                        v = r.get("nand2_eq") if board == "asic" else r.get("luts")
                    elif key == "eff":
                        v = (1000.0 / r["nand2_per_mac"] if board == "asic"
                             and r.get("nand2_per_mac") else r.get("mmacs_per_klut"))
                    else:
                        v = r.get(key)
                    if v is not None:
                        pts.append((r["macs_per_cycle"], v))
                if pts:
                    pts.sort()
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=design)
            ax.set_xscale("log", base=2)
            if key in ("area", "eff"):
                ax.set_yscale("log")
            ax.set_xlabel("array size (MACs per cycle)")
            ax.set_ylabel(ylabel)
            ax.set_title(board)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / fname, dpi=120)
        plt.close(fig)
        paths.append(folder / fname)
    return paths


def _parse_sizes(text):
    sizes = []
    for part in text.split(","):
        try:
            r, c = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise SystemExit(f"bench: --sizes wants RxC,RxC..., not {text!r}") from None
        sizes.append((r, c))
    return sizes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m boards.bench", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="2x2,4x4")
    p.add_argument("--boards", default="ice40,ecp5,asic")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run the jobs on the workers of this Dask distributed scheduler")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("build/bench"))
    p.add_argument("--force", action="store_true", help="ignore cached points")
    p.add_argument("--no-pes", action="store_true", help="arrays only, no stand-alone PEs")
    p.add_argument("--pnr-timeout", type=float, metavar="SECONDS",
                   help="stop a place-and-route seed after this long (default 3600 s)")
    args = p.parse_args(argv)
    sizes = _parse_sizes(args.sizes)
    wanted = args.boards.split(",")
    bad = [b for b in wanted if b not in {d[0] for d in DEVICES}]
    if bad:
        print(f"bench: unknown board {bad[0]!r}; expected ice40, ecp5 or asic", file=sys.stderr)
        return 2
    devices = [d for d in DEVICES if d[0] in wanted]
    seeds = tuple(int(s) for s in args.seeds.split(","))
    t0 = time.monotonic()
    if args.pnr_timeout is not None and not args.pnr_timeout > 0:
        print(f"bench: --pnr-timeout must be a positive number of seconds, not "
              f"{args.pnr_timeout:g}", file=sys.stderr)
        return 2
    jobs = bench_jobs(sizes, devices=devices, seeds=seeds, root=args.out / "cache",
                      pnr_timeout=args.pnr_timeout, pes=not args.no_pes)
    from boards.executor import SchedulerError, open_executor

    try:
        executor = open_executor(scheduler=args.scheduler, workers=args.jobs)
    except (SchedulerError, ValueError) as exc:
        print(f"bench: --scheduler/--jobs: {exc}", file=sys.stderr)
        return 2
    with executor:
        results = run_jobs(jobs, executor=executor, force=args.force)
    attach_error(results)
    rows = compare(results)
    write_atomic(args.out / "hw.json", json.dumps({"rows": rows, "results": results},
                                                  indent=2, sort_keys=True) + "\n")
    md = ["# Hardware benchmark: shift array vs conventional MAC arrays", "",
          f"Sizes {args.sizes}; seeds {args.seeds}; nextpnr in exploration mode "
          f"(--timing-allow-fail) against the default targets (ice40 "
          f"{DEFAULT_TARGET_MHZ['ice40']:g} MHz, ecp5 {DEFAULT_TARGET_MHZ['ecp5']:g} MHz); "
          f"{time.monotonic() - t0:.0f} s.", "", comparison_table(rows)]
    blocks = blocks_table(results)
    if blocks:
        md += ["## Where the shift array's area goes", "",
               "Each block's own cells in an unflattened synthesis of the same design (the "
               "reports' `breakdown`); instances of a block are summed, and \"each\" is one "
               "instance.", "", blocks]
    write_atomic(args.out / "hw.md", "\n".join(md))
    plot_bench(rows, args.out)
    sys.stdout.write("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
