"""``densehw sweep``: weight bits x format x array shape x device; Pareto plot.

Every point is synthesised (and placed and routed, exploration mode) by the same job function
the other flows use (``boards.flow.run_job``), in parallel over ``--jobs`` local processes; points
are cached by configuration hash under ``--out`` (``build/sweep``). Writes ``sweep.json``,
``sweep.md`` and ``pareto.png`` (throughput per area against the relative error of a random GEMM
versus float64).
"""

from __future__ import annotations

import os
import pathlib
import sys

from .cli import UserError

HELP = "design-space sweep (weight bits x format x shape x device) with a Pareto plot"


def add_arguments(p):
    p.add_argument("--wbits", default="3", help="weight code widths, e.g. 2,3,4")
    p.add_argument("--formats", default="fp16", help="activation formats, e.g. fp16,bf16")
    p.add_argument("--shapes", default="2x2,4x4", help="array shapes RxC, e.g. 2x2,4x4,8x8")
    p.add_argument("--devices", default="ice40:up5k",
                   help="board:device list, e.g. ice40:up5k,ecp5:25f,asic")
    p.add_argument("--depth", type=int, default=512, help="weight store depth (largest K)")
    p.add_argument("--seeds", default="1", help="nextpnr seeds per point")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="parallel local processes (default: all cores)")
    p.add_argument("--baselines", action="store_true",
                   help="also build the fp-multiplier and int8 MAC baselines of each shape")
    p.add_argument("--force", action="store_true", help="rebuild cached points")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("build/sweep"))


def _ints(text, what):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--{what} must be comma-separated integers, not {text!r}") from None
    if not vals:
        raise UserError(f"--{what} is empty")
    return vals


def _shapes(text):
    out = []
    for part in text.split(","):
        try:
            r, c = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise UserError(f"--shapes wants RxC,RxC..., not {text!r}") from None
        out.append((r, c))
    return out


def _devices(text):
    from boards.flow import DEFAULT_DEVICE, DEVICES

    out = []
    for part in text.split(","):
        board, _, device = part.partition(":")
        if board not in DEVICES:
            raise UserError(f"unknown board {board!r} in --devices; expected "
                            f"{', '.join(DEVICES)}")
        device = device or DEFAULT_DEVICE[board]
        if device not in DEVICES[board]:
            raise UserError(f"unknown {board} device {device!r}; expected "
                            f"{', '.join(DEVICES[board])}")
        out.append((board, device))
    return out


def run(args) -> int:
    from contract import check_wbits, get_format

    wbits = _ints(args.wbits, "wbits")
    for b in wbits:
        check_wbits(b)
    formats = [f for f in args.formats.split(",") if f]
    for f in formats:
        get_format(f)
    shapes, devices = _shapes(args.shapes), _devices(args.devices)
    seeds = _ints(args.seeds, "seeds")
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {args.jobs}")

    from boards.sweep import attach_error, run_jobs, sweep_jobs, write_sweep

    jobs = sweep_jobs(wbits=wbits, formats=formats, shapes=shapes, devices=devices,
                      depth=args.depth, seeds=seeds, root=args.out / "points",
                      baselines=args.baselines)
    print(f"densehw sweep: {len(jobs)} points, {args.jobs} processes, cache {args.out}",
          file=sys.stderr)
    results = run_jobs(jobs, workers=args.jobs, force=args.force)
    attach_error(results)
    paths = write_sweep(results, args.out)
    failed = sum(1 for r in results if r.get("error"))
    print(f"densehw sweep: {len(results) - failed} built, {failed} failed; "
          f"{paths['md']}, {paths['png']}", file=sys.stderr)
    return 0
