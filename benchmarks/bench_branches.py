"""Synthesis rows of the multi-branch array beside int8 MAC arrays, per device.

Every design goes through the same flow as the shift array (:func:`boards.flow.run_flow`:
Yosys ``synth_ice40 -dsp`` / ``synth_ecp5`` for the resources, nextpnr on the design inside the
serial I/O harness for Fmax, median over the seeds, exploration mode against the board's
default clock target). Designs per device (``DESIGNS``): multi-branch arrays sized to fill the
device (integers only), the int8 x int8 -> int32 MAC arrays of :mod:`boards.intmac` with DSP
and with LUT multipliers, the device's default shift array (``configs/<board>_<device>.toml``)
and one small branch array with the float path (its shared finalizer: fp32 scales, fp32 out).

Throughput is counted in MACs **of the encoded width**: one MAC is one product of a
``k_w``-bit weight and a ``k_a``-bit activation added into the exact sum (``k_w * k_a``
xnor-popcount bit operations); a branch PE does ``lanes`` of them per clock, so
``GMAC/s = rows * cols * lanes * Fmax``; ``binary GOP/s = GMAC/s * k_w * k_a``. An int8 MAC is
one 8 x 8-bit product per PE per clock.

Writes ``build/bench/branches.json`` and ``branches.md``; every point is cached in
``build/bench/branches-cache/<hash>/summary.json`` (delete it, or ``--force``, to measure again).
Usage: ``python benchmarks/bench_branches.py [--devices ice40:up5k,ecp5:25f] [--seeds 1,2]
[--only TEXT] [--pnr-timeout S]`` (``--only``: the designs whose label contains ``TEXT``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INT = {"out_fmt": "none", "scale_fmt": "none"}

#: (board, device) -> design specs. Branch arrays: ``{"kind": "branch-array", "config": ...}``;
#: int8 arrays: ``{"kind": "int8-array", "rows", "cols", "mult"}`` (boards.intmac); the shift
#: array: ``{"kind": "array", "config": "default"}`` (the device's default configuration).
DESIGNS = {
    # sizes from synthesis-only runs of 4x4 arrays (UP5K: 3118 LUT4 for w1a1 x 32 lanes, 4681
    # for w2a2 x 16, 4905 for a 3x3 w4a4 x 8), filled to about 4000 of the 5280 logic cells
    ("ice40", "up5k"): [
        {"kind": "branch-array", "config": {"wbits": 1, "abits": 1, "rows": 4, "cols": 5,
                                            "lanes": 32, **INT}},
        {"kind": "branch-array", "config": {"wbits": 2, "abits": 2, "rows": 3, "cols": 4,
                                            "lanes": 16, **INT}},
        {"kind": "branch-array", "config": {"wbits": 4, "abits": 4, "rows": 2, "cols": 3,
                                            "lanes": 8, **INT}},
        {"kind": "int8-array", "rows": 2, "cols": 4, "mult": "dsp"},
        {"kind": "int8-array", "rows": 4, "cols": 4, "mult": "lut"},
        {"kind": "array", "config": "default"},
        {"kind": "branch-array", "config": {"wbits": 2, "abits": 2, "rows": 2, "cols": 2,
                                            "lanes": 16}},
    ],
    # ECP5-25F (4x4 synthesis: 3716 LUTs for w1a1 x 32, 5362 for w2a2 x 16, 9445 for w4a4 x 8,
    # 5346 for int8 LUT MACs; the w2a2 8x8 placed 21662 of the 24288 LUTs): filled to 16000 to
    # 22000 LUTs
    ("ecp5", "25f"): [
        {"kind": "branch-array", "config": {"wbits": 1, "abits": 1, "rows": 8, "cols": 10,
                                            "lanes": 32, **INT}},
        {"kind": "branch-array", "config": {"wbits": 2, "abits": 2, "rows": 8, "cols": 8,
                                            "lanes": 16, **INT}},
        {"kind": "branch-array", "config": {"wbits": 4, "abits": 4, "rows": 5, "cols": 6,
                                            "lanes": 8, **INT}},
        {"kind": "int8-array", "rows": 4, "cols": 7, "mult": "dsp"},
        {"kind": "int8-array", "rows": 7, "cols": 7, "mult": "lut"},
        {"kind": "array", "config": "default"},
        {"kind": "branch-array", "config": {"wbits": 2, "abits": 2, "rows": 2, "cols": 2,
                                            "lanes": 16}},
    ],
}


def _design(spec, board):
    from boards.specs import make_design  # int8 arrays: the baselines registry

    return make_design(spec, board=board)


def _key(spec, board, device, seeds):
    text = json.dumps({"spec": spec, "board": board, "device": device, "seeds": list(seeds)},
                      sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def resolve(spec, board, device) -> dict:
    """``spec`` with its configuration filled in: a branch array's ``arith``, the shift array's
    device default (``configs/<board>_<device>.toml``)."""
    spec = dict(spec)
    if spec["kind"] == "branch-array":
        spec["config"] = {"arith": "branches", **spec["config"]}
    elif spec["kind"] == "array" and spec["config"] == "default":
        from boards.specs import default_array

        spec["config"] = default_array(board, device)
    return spec


def cached(spec, board, device, *, seeds, root) -> dict | None:
    """The cached summary of one design, or None."""
    spec = resolve(spec, board, device)
    path = pathlib.Path(root) / _key(spec, board, device, seeds) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def measure(spec, board, device, *, seeds, root, force=False, jobs=1, pnr_timeout=None) -> dict:
    """The report summary of one design (cached under ``root``), with the encoded-width MAC
    figures added for branch arrays."""
    from boards.errors import FlowError
    from boards.flow import run_flow
    from boards.report import summarise, write_atomic

    spec = resolve(spec, board, device)
    folder = pathlib.Path(root) / _key(spec, board, device, seeds)
    path = folder / "summary.json"
    if path.exists() and not force:
        return json.loads(path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    design = _design(spec, board)
    try:
        res = run_flow(design, board=board, device=device, workdir=folder, seeds=seeds,
                       explore=True, pnr_jobs=jobs, pnr_timeout=pnr_timeout)
        out = summarise(res)
    except FlowError as exc:
        out = {"design": design.name, "board": board, "device": device, "error": str(exc)}
    out["spec"] = spec
    # binary products per MAC: k_w * k_a for a branch array, 8 * 8 for an int8 MAC; none for
    # the shift array (a float activation times a power of two)
    if spec["kind"] == "branch-array":
        cfg = spec["config"]
        out["bits"] = cfg["wbits"] * cfg["abits"]
    else:
        out["bits"] = 64 if spec["kind"] == "int8-array" else None
    if out.get("gmacs") is not None and out["bits"]:
        out["binary_gops"] = round(out["gmacs"] * out["bits"], 3)
    write_atomic(path, json.dumps(out, indent=1, sort_keys=True) + "\n")
    return out


def _label(r):
    spec = r["spec"]
    if spec["kind"] == "branch-array":
        c = spec["config"]
        path = " + float path" if c.get("out_fmt") != "none" else ""
        return (f"branches w{c['wbits']}a{c['abits']} {c['rows']}x{c['cols']} x {c['lanes']} "
                f"lanes{path}")
    if spec["kind"] == "array":
        c = spec["config"]
        return (f"shift array {c.get('in_fmt', 'fp16')} x {c.get('wbits', 3)}-bit "
                f"{c['rows']}x{c['cols']}")
    return f"int8 MAC ({spec['mult'].upper()} multipliers) {spec['rows']}x{spec['cols']}"


def table(results) -> str:
    def f(v, fmt="{}"):
        return "-" if v is None else fmt.format(v)

    out = []
    for (board, device) in dict.fromkeys((r["board"], r["device"]) for r in results):
        out += [f"### {board} {device}", "",
                "| design | MAC/clock | LUTs | FFs | DSPs | BRAMs | Fmax MHz (spread) | "
                "GMAC/s | binary GOP/s | MMAC/s per kLUT | fits |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in results if (r["board"], r["device"]) == (board, device)):
            if r.get("error"):
                out.append(f"| {_label(r)} | - | - | - | - | - | {r['error'][:60]} | | | | |")
                continue
            fmax = (f"{r['fmax_mhz']:.1f} ({r.get('fmax_spread_mhz') or 0:.1f})"
                    if r.get("fmax_mhz") else "-")
            out.append(f"| {_label(r)} | {r['macs_per_cycle']} | {f(r.get('luts'))} | "
                       f"{f(r.get('ffs'))} | {f(r.get('dsps'))} | {f(r.get('brams'))} | {fmax} | "
                       f"{f(r.get('gmacs'), '{:.2f}')} | {f(r.get('binary_gops'), '{:.1f}')} | "
                       f"{f(r.get('mmacs_per_klut'), '{:.0f}')} | {f(r.get('fits'))} |")
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", default="ice40:up5k,ecp5:25f")
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--jobs", type=int, default=1, help="place-and-route seeds at a time")
    p.add_argument("--out", type=pathlib.Path, default=ROOT / "build" / "bench")
    p.add_argument("--force", action="store_true")
    p.add_argument("--only", default="", help="only the designs whose label contains this")
    p.add_argument("--pnr-timeout", type=float, default=None,
                   help="seconds per place-and-route seed (a seed stopped counts as unplaced)")
    args = p.parse_args(argv)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    devices = [tuple(d.split(":")) for d in args.devices.split(",")]
    t0 = time.monotonic()
    results = []
    for board, device in devices:
        for spec in DESIGNS[(board, device)]:
            if args.only not in _label({"spec": resolve(spec, board, device)}):
                r = cached(spec, board, device, seeds=seeds, root=args.out / "branches-cache")
                if r is not None:                   # the table keeps points measured before
                    results.append(r)
                continue
            r = measure(spec, board, device, seeds=seeds, root=args.out / "branches-cache",
                        force=args.force, jobs=args.jobs, pnr_timeout=args.pnr_timeout)
            print(f"{board} {device} {_label(r)}: luts {r.get('luts')} fmax {r.get('fmax_mhz')} "
                  f"gmacs {r.get('gmacs')} {r.get('error') or ''}", flush=True)
            results.append(r)
    md = ["# Multi-branch array beside int8 MAC arrays", "",
          f"Seeds {args.seeds}, nextpnr exploration mode; {time.monotonic() - t0:.0f} s.", "",
          table(results)]
    from boards.report import write_atomic

    write_atomic(args.out / "branches.json", json.dumps(results, indent=1, sort_keys=True))
    write_atomic(args.out / "branches.md", "\n".join(md) + "\n")
    sys.stdout.write("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
