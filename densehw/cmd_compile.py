"""``densehw compile MODEL -o PROGRAM_DIR --config CFG``: lower a model to a program for the PE
array (``sw.compile``; format in ``sw.program``).

``MODEL``: a densehw export (``sw.export_model``, ``.dshw``), a ``torch.export`` file (``.pt2``)
or an ONNX file (``.onnx``). ``--config``: a TOML or JSON ``ArrayConfig`` file, ``default``, or a
name in ``configs/`` (``densehw.cli.load_config``). ``--host PATTERN`` (repeatable) keeps the
matching layers in floating point on the host. Prints every graph node, where it runs and its
MACs (also in ``program.json``'s ``meta.graph``), and the rounding of each host op used.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cli import UserError, load_config

HELP = "lower a model (densehw export, torch.export .pt2, ONNX) to a program for the PE array"


def add_arguments(p) -> None:
    p.add_argument("export", type=Path, metavar="MODEL",
                   help="densehw export (.dshw, sw.export_model), torch.export file (.pt2) or "
                        "ONNX file (.onnx)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="PROGRAM_DIR",
                   help="program directory to write (replaced atomically if it is one)")
    p.add_argument("--config", required=True, metavar="CFG",
                   help="ArrayConfig: TOML or JSON file, 'default', or a name in configs/")
    p.add_argument("--input-shape", metavar="C,H,W",
                   help="per-sample input shape (default: the one the model was recorded with)")
    p.add_argument("--host", action="append", default=[], metavar="PATTERN",
                   help="keep layers (or ONNX initialisers) matching this fnmatch pattern in "
                        "floating point on the host; repeatable")
    p.add_argument("-q", "--quiet", action="store_true", help="print the summary line only")


def _shape(text):
    try:
        shape = [int(v) for v in text.split(",")]
    except ValueError:
        shape = []
    if not shape or any(v < 1 for v in shape):
        raise UserError(f"--input-shape must be positive integers separated by commas, not "
                        f"{text!r}")
    return shape


def node_table(program) -> list[str]:
    """Lines of the table of every graph node: where it runs, its steps and its MACs."""
    rows = program.meta.get("graph") or []
    width = max([len(r["node"]) for r in rows] + [4])
    lines = [f"  {'node':{width}s} {'op':16s} {'where':10s} {'steps':>6s} {'MACs/sample':>13s}"]
    for r in rows:
        steps = r.get("steps", [] if r["step"] is None else [r["step"]])
        macs = f"{r['macs']:,}" if r["macs"] else ""
        lines.append(f"  {r['node']:{width}s} {r['op']:16s} {r['where']:10s} "
                     f"{','.join(map(str, steps)):>6s} {macs:>13s}")
    return lines


def rounding_lines(program) -> list[str]:
    """One line per host op of the program: its rounding (``densehw.cmd_run.ROUNDING``)."""
    from .cmd_run import ROUNDING

    ops = dict.fromkeys(s["op"] for s in program.steps if s["where"] == "host")
    width = max([len(op) for op in ops] + [2])
    return [f"  {op:{width}s} {ROUNDING.get(op, 'see docs/deployment.md')}" for op in ops]


def run(args) -> int:
    import torch

    from sw.compile import compile_model
    from sw.export import ExportError
    from sw.program import save

    torch.set_num_threads(1)
    config = load_config(args.config)
    shape = _shape(args.input_shape) if args.input_shape else None
    if not args.export.is_file():
        raise UserError(f"model file {str(args.export)!r} does not exist")
    try:
        program = compile_model(args.export, config, input_shape=shape, host=args.host)
    except ExportError as exc:
        raise UserError(str(exc)) from None
    save(program, args.output)
    array = program.array_steps()
    host = [s for s in program.steps if s["where"] == "host"]
    macs = sum(s.get("macs", 0) for s in array)
    host_macs = sum(s.get("macs", 0) for s in host)
    print(f"compile: {args.export} -> {args.output} for {config.name}: {len(program.steps)} "
          f"steps ({len(array)} on the array, {len(host)} on the host); {macs:,} MACs/sample "
          f"on the array, {host_macs:,} in floating point on the host", file=sys.stdout)
    if args.quiet:
        return 0
    for s in program.steps:
        shape_out = program.values[s["output"]]["shape"]
        extra = (f" N={s['n']}/sample K={s['k']} M={s['m']} e0={s['e0']} relu={s['relu']}"
                 + (f" groups={s['groups']}" if s.get("groups", 1) != 1 else "")
                 if s["where"] == "array" else "")
        print(f"  {s['id']:3d} {s['where']:5s} {s['op']:16s} {s.get('name', ''):22s} -> "
              f"{program.values[s['output']]['fmt']} {shape_out}{extra}")
    print("graph nodes:")
    print("\n".join(node_table(program)))
    print("host-step rounding:")
    print("\n".join(rounding_lines(program)))
    return 0
