"""``densehw compile MODEL_EXPORT -o PROGRAM_DIR --config CFG``: lower an exported DenseShift
model to a program for the PE array (``sw.compile``; format in ``sw.program``).

``--config`` is a JSON file holding an ``ArrayConfig`` (``ArrayConfig.to_dict()``, or a
metadata file with a ``"config"`` object), or ``default`` for ``ArrayConfig()``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cli import UserError, load_config

HELP = "lower an exported DenseShift model to a program for the PE array"


def add_arguments(p) -> None:
    p.add_argument("export", type=Path, metavar="MODEL_EXPORT",
                   help="export file written by `densehw train digits --export` (sw.export)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="PROGRAM_DIR",
                   help="program directory to write (replaced atomically if it is one)")
    p.add_argument("--config", required=True, metavar="CFG",
                   help="ArrayConfig JSON file, or 'default'")
    p.add_argument("--input-shape", metavar="C,H,W",
                   help="per-sample input shape (default: from the model kind)")


def _shape(text):
    try:
        shape = [int(v) for v in text.split(",")]
    except ValueError:
        shape = []
    if not shape or any(v < 1 for v in shape):
        raise UserError(f"--input-shape must be positive integers separated by commas, not "
                        f"{text!r}")
    return shape


def run(args) -> int:
    import torch

    from sw.compile import compile_model
    from sw.export import ExportError
    from sw.program import save

    torch.set_num_threads(1)
    config = load_config(args.config)
    shape = _shape(args.input_shape) if args.input_shape else None
    if not args.export.is_file():
        raise UserError(f"export file {str(args.export)!r} does not exist")
    try:
        program = compile_model(args.export, config, input_shape=shape)
    except ExportError as exc:
        raise UserError(str(exc)) from None
    save(program, args.output)
    array = program.array_steps()
    host = [s for s in program.steps if s["where"] == "host"]
    print(f"compile: {args.export} -> {args.output} for {config.name}: {len(program.steps)} "
          f"steps ({len(array)} on the array, {len(host)} on the host)", file=sys.stdout)
    for s in program.steps:
        shape_out = program.values[s["output"]]["shape"]
        extra = (f" N={s['n']}/sample K={s['k']} M={s['m']} e0={s['e0']} relu={s['relu']}"
                 if s["where"] == "array" else "")
        print(f"  {s['id']:2d} {s['where']:5s} {s['op']:10s} {s.get('name', ''):22s} -> "
              f"{program.values[s['output']]['fmt']} {shape_out}{extra}")
    return 0
