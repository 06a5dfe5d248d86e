"""``densehw`` command line.

Each subcommand lives in its own module ``densehw.cmd_<name>`` exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules must import heavy packages (torch,
amaranth, cocotb) inside ``run`` so that ``densehw --help`` stays fast.

Errors meant for the user are raised as :class:`UserError` (or ``ValueError``/``OSError``) and
printed as one line on stderr with a non-zero exit code, never as a traceback. A backend that
cannot run here (``sw.backends.BackendUnavailable``: its simulator is not installed, the board
does not answer) exits with :data:`EXIT_UNAVAILABLE`, so scripts can tell "not available" from
"wrong".
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

COMMANDS = ["gemm", "generate", "sim", "synth", "sweep", "train", "compile", "run", "board",
            "seq"]

#: Modules that register array backends in ``sw.backends`` when imported (cheap imports).
BACKEND_PROVIDERS = ("sim.backends", "boards.board_backend")
EXIT_UNAVAILABLE = 3

#: Example and board-default array configurations (``<board>_<device>.toml`` are the defaults
#: of ``densehw synth``).
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class UserError(Exception):
    """A problem with the user's input; printed as one line, exit code 2."""


def load_config(text, *, branches=False):
    """The :class:`~contract.array.ArrayConfig` a ``--config`` names: a TOML or JSON file
    (:func:`contract.array.load_array_config`), ``default`` (``ArrayConfig()``), or the name of
    a file in ``configs/`` without its suffix (``ecp5_25f``, ``ice40_up5k`` ...). With
    ``branches``, a file with ``arith = "branches"`` gives a
    :class:`~contract.branch_array.BranchArrayConfig` (commands that build either array); without
    it such a file is an error. Problems raise :class:`UserError` naming the file."""
    from contract.array import ArrayConfig, load_array_config, read_config_file
    from contract.branch_array import is_branch_config, load_branch_array_config

    text = str(text)
    if text == "default":
        return ArrayConfig()
    path = Path(text)
    if not path.exists() and path.suffix == "" and (CONFIGS / f"{text}.toml").is_file():
        path = CONFIGS / f"{text}.toml"
    if not path.exists():
        named = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.toml")))
        raise UserError(f"config file {text!r} does not exist (give a .toml or .json file, "
                        f"'default' or one of: {named})")
    try:
        if is_branch_config(read_config_file(path)):
            if not branches:
                raise UserError(f"config file {text!r} describes a multi-branch array (arith = "
                                f"\"branches\"); this command takes a shift array "
                                f"configuration")
            return load_branch_array_config(path)
        return load_array_config(path)
    except ValueError as exc:
        raise UserError(str(exc)) from None

def backend_factory(name: str):
    """The factory of the array backend ``name`` (after importing :data:`BACKEND_PROVIDERS`).
    An unknown name is a :class:`UserError`; a registered backend that cannot run here raises
    ``sw.backends.BackendUnavailable``."""
    from sw.backends import get_backend, load_providers, registered_backends

    notes = load_providers(BACKEND_PROVIDERS)
    if name not in registered_backends():
        raise UserError(f"unknown backend {name!r}; expected one of "
                        f"{', '.join(registered_backends())}"
                        + (f" (not loaded: {'; '.join(notes)})" if notes else ""))
    return get_backend(name)


def add_backend_arguments(parser, *, only=None, exclude=()) -> None:
    """The options of the array backends (all, or those named in ``only``: ``--stall``,
    ``--port`` ...) for ``parser``."""
    from sw.backends import add_arguments, load_providers

    load_providers(BACKEND_PROVIDERS)
    add_arguments(parser, only=only, exclude=exclude)


def _load(name):
    try:
        return importlib.import_module(f"densehw.cmd_{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"densehw.cmd_{name}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="densehw",
        description="DenseShift hardware generator, golden model and co-simulation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = _load(name)
        if module is None:
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    from sw.backends import BackendUnavailable

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except BackendUnavailable as exc:
        print(f"densehw {args.command}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (UserError, ValueError, OSError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"densehw {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"densehw {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
