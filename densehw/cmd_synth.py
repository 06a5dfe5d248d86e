"""``densehw synth``: synthesise (and place and route) one design; write its report.

The design is the shift PE array by default, in the configuration :func:`boards.specs.default_spec`
gives for the device (the largest measured to fit). ``--config FILE`` (TOML or JSON) holds either
array configuration keys (``rows = 8``, ``cols = 8``, ``in_fmt = "fp16"`` ...) or a design spec
with a ``kind`` (``array``, ``dot``, ``fp-mac``, ``int8-mac``, ``shift-fpadd``, ``verilog``; see
``boards.specs.make_design``). Reports go to ``<out>/<board>/<design>/summary.json`` and
``summary.md``.
"""

from __future__ import annotations

import os
import pathlib
import sys

from .cli import UserError

HELP = "synthesise a design for ice40/ecp5/asic; report resources, Fmax and throughput"


def add_arguments(p):
    p.add_argument("--board", choices=["ice40", "ecp5", "asic"], default="ice40")
    p.add_argument("--device", help="ice40: up5k (default) or hx8k; ecp5: 25f (default) or 85f")
    p.add_argument("--config", type=pathlib.Path,
                   help="TOML or JSON: array configuration keys, or a design spec with 'kind'")
    p.add_argument("--seeds", default="1,2,3", help="nextpnr seeds, comma separated (1,2,3)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="runs at the same time after synthesis: the place-and-route seeds "
                        "and the per-block synthesis (default: all cores)")
    p.add_argument("--target-mhz", type=float,
                   help="clock target for place and route (default: ice40 40, ecp5 125)")
    p.add_argument("--explore", action="store_true",
                   help="measure Fmax even when the target is missed (--timing-allow-fail)")
    p.add_argument("--pnr-timeout", type=float, metavar="SECONDS",
                   help="stop a place-and-route seed after this long (default: 3600 s, the "
                        "limit of every tool run); with --explore the other seeds still count")
    p.add_argument("--no-pnr", action="store_true", help="synthesis only (no Fmax)")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("build/reports"))
    p.add_argument("--build-dir", type=pathlib.Path, default=pathlib.Path("build/synth"))


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UserError(f"--seeds must be comma-separated integers, not {text!r}") from None
    if not seeds:
        raise UserError("--seeds needs at least one seed")
    return seeds


def check_pnr_timeout(seconds: float | None) -> None:
    if seconds is not None and not seconds > 0:      # also rejects nan
        raise UserError(f"--pnr-timeout must be a positive number of seconds, not {seconds:g}")


def run(args) -> int:
    from boards import flow, report, specs
    from boards.errors import FlowError

    seeds = parse_seeds(args.seeds)
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {args.jobs}")
    check_pnr_timeout(args.pnr_timeout)
    spec = (specs.load_spec(args.config) if args.config
            else specs.default_spec(args.board, args.device))
    try:
        design = specs.make_design(spec, board=args.board)
    except (TypeError, KeyError) as exc:
        raise UserError(f"bad design configuration: {exc}") from None
    workdir = args.build_dir / args.board / design.name
    print(f"densehw synth: {design.name} on {args.board} ({design.macs_per_cycle} MAC/cycle), "
          f"build folder {workdir}", file=sys.stderr)
    try:
        res = flow.run_flow(design, board=args.board, device=args.device, workdir=workdir,
                            seeds=seeds, target_mhz=args.target_mhz, explore=args.explore,
                            pnr=not args.no_pnr, pnr_timeout=args.pnr_timeout,
                            pnr_jobs=args.jobs)
    except FlowError as exc:
        raise UserError(str(exc)) from None
    summary = report.summarise(res)
    folder = report.write_report(summary, args.out)
    sys.stdout.write(report.markdown_table([summary]))
    blocks = report.breakdown_markdown(summary.get("breakdown"))
    if blocks:
        sys.stdout.write("\n" + "\n".join(blocks))
    slowest = report.endpoints_markdown(summary.get("runs"))
    if slowest:
        sys.stdout.write("\n" + "\n".join(slowest))
    print(f"densehw synth: report in {folder}", file=sys.stderr)
    if not args.explore and not args.no_pnr and not summary.get("timing_met", True):
        raise UserError(f"median Fmax {summary['fmax_mhz']} MHz (worst "
                        f"{summary['fmax_min_mhz']} MHz) misses the {summary['target_mhz']:g} "
                        f"MHz target; the report is written (use --explore to only measure)")
    return 0
