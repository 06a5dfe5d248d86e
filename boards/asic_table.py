"""The ASIC table: every design mapped to standard cells and timed, at the array sizes asked.

Usage: ``python -m boards.asic_table [--sizes 8x8,16x16] [--designs shift,fma16,...]
[--scheduler tcp://HOST:PORT | --jobs N] [--cached-only] [--docs]``.

Each (design, size) is a cached job of :mod:`boards.sweep` on the ``asic`` board with the liberty
flow on (:mod:`boards.liberty`: OSU 0.18 um typical corner, OpenSTA, pre-layout), so a rerun
only builds what changed. The record of a point: standard-cell ``area_um2`` (memories excluded:
their bits in ``memory_bits``), ``std_cells``, ``ffs``, ``critical_path_ns``, ``fmax_mhz``,
``gmacs`` (PEs x Fmax) and ``gmacs_per_mm2``, and ``ratio_vs_best_fp16`` (GMAC/s per mm^2 over
the better fp16 FMA array's of the same size). Writes ``<out>/asic.json`` and ``asic.md``;
``--docs`` also writes ``docs/results/asic.json`` and the table between the markers of
``docs/synthesis.md``: the points of this run that were measured (or failed) replace those in
``docs/results/asic.json``; its other points (not asked for, or not in the cache with
``--cached-only``) stay as they were, with their own commits.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import subprocess
import sys
import time

from boards.report import add_ratios_vs_best_fp16, write_atomic
from boards.report import cell as _fmt
from boards.sweep import job_key, make_job, run_jobs

__all__ = ["DESIGNS", "NOT_MEASURED", "design_spec", "asic_job", "record", "add_ratios",
           "merge_records", "table", "write_docs", "main"]

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: The designs of the table: label (the specs are :func:`design_spec`).
DESIGNS = {
    "shift": "shift array, exact fp16, B=3",
    "fma16": "fp16 FMA, fp16 acc",
    "fma16-32": "fp16 FMA, fp32 acc",
    "bf16": "bf16 FMA, fp32 acc",
    "int8": "int8 MAC (Yosys multiplier)",
    "int8-lut": "int8 MAC (LUT-style multiplier)",
    "naive": "shift + naive one-clock fp16 adder",
}
#: The error of a point that ``--cached-only`` found no result for.
NOT_MEASURED = "not measured (--cached-only)"


def design_spec(design: str, rows: int, cols: int, *, depth: int = 512) -> dict:
    """The :mod:`boards.specs` spec of ``design`` at ``rows x cols``."""
    if design == "shift":
        return {"kind": "array", "config": {"in_fmt": "fp16", "wbits": 3, "rows": rows,
                                            "cols": cols, "depth": depth}}
    fma = {"fma16": ("fp16", "fp16"), "fma16-32": ("fp16", "fp32"), "bf16": ("bf16", "fp32")}
    if design in fma:
        i, a = fma[design]
        return {"kind": "fma-array", "in_fmt": i, "acc_fmt": a, "rows": rows, "cols": cols}
    if design in ("int8", "int8-lut"):
        return {"kind": "int8-array", "mult": "lut" if design == "int8-lut" else "dsp",
                "rows": rows, "cols": cols}
    if design == "naive":
        return {"kind": "shift-fpadd", "fmt": "fp16", "wbits": 3, "rows": rows, "cols": cols}
    raise ValueError(f"unknown design {design!r}; expected one of {', '.join(DESIGNS)}")


def asic_job(design: str, rows: int, cols: int, *, root) -> dict:
    """The cached job of one point: generic-gate synthesis, then the liberty flow (no
    per-block synthesis)."""
    job = make_job(design_spec(design, rows, cols), "asic", "generic", seeds=(), explore=True,
                   root=root)
    job.update(pnr=True, blocks=False)    # pnr on the ASIC board: the liberty flow
    job["workdir"] = str(pathlib.Path(root) / job_key(job))
    return job


def record(design: str, rows: int, cols: int, res: dict) -> dict:
    """The table's record of one point from its flow result."""
    rec = {"design": design, "label": DESIGNS[design], "rows": rows, "cols": cols,
           "error": res.get("error")}
    lib = res.get("liberty") or {}
    if not rec["error"] and (not lib or lib.get("error")):
        rec["error"] = lib.get("error") or "no liberty result"
    if rec["error"]:
        return rec
    rec.update({k: res.get(k) for k in ("macs_per_cycle", "area_um2", "std_cells",
                                        "critical_path_ns", "fmax_mhz", "gmacs",
                                        "gmacs_per_mm2", "memory_bits", "seconds", "commit",
                                        "rtl_fingerprint", "tool_versions")})
    rec.update(ffs=lib.get("ffs"), ff_area_um2=lib.get("ff_area_um2"),
               buffers_added=lib.get("buffers_added"), path_from=lib.get("startpoint"),
               path_to=lib.get("endpoint"), path_levels=lib.get("logic_levels"),
               path_cells=lib.get("path_cells"), library=lib.get("library"),
               sta_version=lib.get("sta_version"))
    return rec


def add_ratios(records) -> None:
    """``ratio_vs_best_fp16``: GMAC/s per mm^2 over the better fp16 FMA array's of the same
    size (``None`` when neither was measured)."""
    add_ratios_vs_best_fp16(records, group=lambda r: (r["rows"], r["cols"]),
                            metric="gmacs_per_mm2")


def merge_records(old, new) -> list:
    """The docs' records after a run: ``new`` replaces the ``old`` record of the same design
    and size unless it was not measured (:data:`NOT_MEASURED`) and the old one has figures
    (an old error has no commit to state); the other ``old`` records stay. Ordered by size,
    then as :data:`DESIGNS`; ratios recomputed."""
    merged = {(r["design"], r["rows"], r["cols"]): dict(r) for r in old if r["design"] in DESIGNS}
    for r in new:
        key = (r["design"], r["rows"], r["cols"])
        if r.get("error") != NOT_MEASURED or merged.get(key, r).get("error"):
            merged[key] = dict(r)
    order = list(DESIGNS)
    out = sorted(merged.values(), key=lambda r: (r["rows"] * r["cols"], r["rows"],
                                                  order.index(r["design"])))
    for r in out:
        r.pop("ratio_vs_best_fp16", None)
    add_ratios(out)
    return out


def table(records) -> str:
    """The Markdown table of the records (and a note per point that was not measured)."""
    out = ["| design | array | area mm^2 | cells | flip-flops (share of area) | memory bits "
           "(not in area) | critical path ns | Fmax MHz | GMAC/s | GMAC/s per mm^2 | "
           "vs best fp16 FMA | critical path | commit |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for r in records:
        size = f"{r['rows']}x{r['cols']}"
        if r.get("error"):
            out.append(f"| {r['label']} | {size} |" + " - |" * 11)
            notes.append(f"- {r['label']} {size}: {r['error']}")
            continue
        levels = f", {r['path_levels']} levels" if r.get("path_levels") else ""
        share = (f" ({100 * r['ff_area_um2'] / r['area_um2']:.0f} %)"
                 if r.get("ff_area_um2") else "")
        out.append(f"| {r['label']} | {size} | {r['area_um2'] / 1e6:.3f} | {r['std_cells']} | "
                   f"{r['ffs']}{share} | {_fmt(r.get('memory_bits'))} | "
                   f"{r['critical_path_ns']:.3f} | {r['fmax_mhz']:.1f} | "
                   f"{r['gmacs']:.2f} | {r['gmacs_per_mm2']:.2f} | "
                   f"{_fmt(r.get('ratio_vs_best_fp16'), '{:.2f}x')} | "
                   f"`{r.get('path_from')}` -> `{r.get('path_to')}`{levels} | "
                   f"{_fmt(r.get('commit'))} |")
    return "\n".join(out) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


DOC_BEGIN = "<!-- asic table: generated by python -m boards.asic_table --docs -->"
DOC_END = "<!-- end of asic table -->"


def write_docs(doc: dict, *, root=ROOT) -> dict:
    """Merge ``doc``'s records into ``docs/results/asic.json`` (:func:`merge_records`) and
    write the table between the markers of ``docs/synthesis.md``; the merged document."""
    path = pathlib.Path(root) / "docs" / "synthesis.md"
    text = path.read_text()
    if DOC_BEGIN not in text or DOC_END not in text:
        raise SystemExit(f"asic_table: {path} has no asic table markers")
    jpath = pathlib.Path(root) / "docs" / "results" / "asic.json"
    old = json.loads(jpath.read_text())["records"] if jpath.exists() else []
    records = merge_records(old, doc["records"])
    doc = {**doc, "records": records,
           "commit": ", ".join(sorted({r["commit"] for r in records if r.get("commit")}))
           or None}
    md = table(records)
    write_atomic(jpath, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    write_atomic(path, head + DOC_BEGIN + "\n\n" + md + "\n" + DOC_END + tail)
    return doc


def _fail(msg: str) -> int:
    print(f"asic_table: {msg}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    from boards.executor import SchedulerError, open_executor

    p = argparse.ArgumentParser(prog="python -m boards.asic_table",
                                description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="8x8", help="array shapes RxC, e.g. 8x8,16x16")
    p.add_argument("--designs", default=",".join(DESIGNS),
                   help=f"some of {', '.join(DESIGNS)}")
    p.add_argument("--jobs", type=int, default=1, help="local processes")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run the jobs on the workers of this Dask distributed scheduler")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("build/asic"))
    p.add_argument("--force", action="store_true", help="ignore cached points")
    p.add_argument("--cached-only", action="store_true",
                   help="run no tool: the cached points, the rest as not measured")
    p.add_argument("--docs", action="store_true",
                   help="also write docs/results/asic.json and the table in docs/synthesis.md")
    args = p.parse_args(argv)
    sizes = []
    for part in args.sizes.split(","):
        try:
            r, c = (int(v) for v in part.lower().split("x"))
        except ValueError:
            return _fail(f"--sizes wants RxC,RxC..., not {args.sizes!r}")
        if r < 1 or c < 1:
            return _fail(f"--sizes wants positive RxC, not {part!r}")
        sizes.append((r, c))
    designs = [d for d in args.designs.split(",") if d]
    bad = [d for d in designs if d not in DESIGNS]
    if bad or not designs:
        return _fail(f"unknown design {bad[0] if bad else args.designs!r}; expected some of "
                     f"{', '.join(DESIGNS)}")
    points = [(d, r, c) for r, c in sizes for d in designs]
    jobs = [asic_job(d, r, c, root=args.out / "cache") for d, r, c in points]
    t0 = time.monotonic()
    if args.cached_only:
        results = [json.loads(path.read_text()) if (path := pathlib.Path(j["workdir"])
                                                    / "result.json").exists()
                   else {"error": NOT_MEASURED} for j in jobs]
    else:
        try:
            executor = open_executor(scheduler=args.scheduler, workers=args.jobs)
        except (SchedulerError, ValueError) as exc:
            return _fail(f"--scheduler/--jobs: {exc}")
        with executor:
            print(f"asic_table: {len(jobs)} points on {executor.describe()}", file=sys.stderr)
            results = run_jobs(jobs, executor=executor, force=args.force)
    records = [record(d, r, c, res) for (d, r, c), res in zip(points, results, strict=True)]
    for rec in records:          # the command that measures (or reads from the cache) it
        if not rec.get("error"):
            rec["command"] = (f"python -m boards.asic_table --sizes {rec['rows']}x{rec['cols']}"
                              f" --designs {rec['design']}")
    add_ratios(records)
    measured = sorted({r["commit"] for r in records if r.get("commit")})
    doc = {"commit": ", ".join(measured) or None, "generated_at": _commit(),
           "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
           "command": "python -m boards.asic_table " + " ".join(
               argv if argv is not None else sys.argv[1:]),
           "records": records}
    md = table(records)
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "asic.json", json.dumps(doc, indent=2, sort_keys=True) + "\n")
    write_atomic(args.out / "asic.md", "# ASIC: standard cells with timing\n\n" + md)
    if args.docs:                # print what the docs now show
        md = table(write_docs(doc)["records"])
    print(md)
    print(f"asic_table: {time.monotonic() - t0:.0f} s; {args.out / 'asic.md'}", file=sys.stderr)
    return 0 if not any(r.get("error") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
