"""``densehw board info|gemm|run --port DEV``: the PE array of a board image (``make bitstream``)
over its serial port.

* ``info``: link check, array reset, the array's configuration read from its identification
  registers (``--save CFG.json`` writes it, for ``densehw compile --config``).
* ``gemm``: ``densehw gemm --backend board`` (same inputs, outputs and conventions).
* ``run``: ``densehw run --backend board`` (same report).

A progress bar shows each GEMM's streaming when stderr is a terminal. A port that cannot be
opened or a board that does not answer exits with code 3 (``densehw.cli.EXIT_UNAVAILABLE``), one
line naming the port; a board that answers wrongly (another image, a protocol error, the array's
ERROR bits, a timeout in the middle of a layer) exits with code 2, one line; bit mismatches
against the golden model in ``run`` exit 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import cmd_gemm, cmd_run
from .cli import UserError, add_backend_arguments

HELP = "run a GEMM or a compiled program on a board image over its serial port"


def _port_options(q) -> None:
    q.add_argument("--port", required=True, metavar="DEV",
                   help="serial port of the board image, e.g. /dev/ttyUSB0")
    add_backend_arguments(q, only=("board",), exclude=("--port",))


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="board_command", metavar="ACTION", required=True)
    q = sub.add_parser("info", help="check the link and print the board's array",
                       description="link check, array reset, the array's configuration")
    _port_options(q)
    q.add_argument("--save", type=Path, metavar="CFG.json",
                   help="write the board's ArrayConfig (for densehw compile --config)")
    q = sub.add_parser("gemm", help="densehw gemm on the board",
                       description="densehw gemm --backend board: " + cmd_gemm.HELP)
    cmd_gemm.add_arguments(q, backend=False)
    _port_options(q)
    q = sub.add_parser("run", help="densehw run on the board",
                       description="densehw run --backend board: " + cmd_run.HELP)
    cmd_run.add_arguments(q, backend=False)
    _port_options(q)


def info(args) -> int:
    from boards.board_backend import factory

    gemm = factory(None, port=args.port, baud=args.baud, timeout=args.timeout)
    board = gemm.board
    cfg = board.config
    link = board.link
    print(f"board: {args.port}: densehw_array {cfg.rows}x{cfg.cols}, depth {cfg.depth}, "
          f"{cfg.in_fmt.name} -> {cfg.out_fmt.name}, B={cfg.wbits}, e0 in [{cfg.e0_min}, "
          f"{cfg.e0_max}], pipeline {cfg.pipeline} ({cfg.name}); {link.commands} commands, "
          f"{link.bytes_out + link.bytes_in} bytes")
    if args.save is not None:
        directory = args.save.parent if str(args.save.parent) else Path(".")
        if not directory.is_dir():
            raise UserError(f"--save directory {str(directory)!r} does not exist")
        from .cmd_generate import write_outputs

        write_outputs({args.save.name: json.dumps(cfg.to_dict(), indent=1) + "\n"}, directory)
        print(f"board: configuration -> {args.save}", file=sys.stdout)
    gemm.close()
    return 0


def run(args) -> int:
    args.backend = "board"
    if args.board_command == "info":
        return info(args)
    if args.board_command == "gemm":
        return cmd_gemm.run(args)
    return cmd_run.run(args)
