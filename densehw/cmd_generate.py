"""``densehw generate --config CFG.toml -o DIR``: the RTL and its companions for one array.

The configuration (TOML or JSON, read by :func:`densehw.cli.load_config` like every command's
``--config``) holds :class:`contract.array.ArrayConfig` fields at the top level (every key is
optional; missing ones take the defaults)::

    in_fmt = "fp16"      # fp16, bf16, fp32, fp8_e5m2, fp8_e4m3fn, fp6_e3m2, fp6_e2m3, fp4_e2m1
                         # (or a table {name, exp_bits, frac_bits})
    out_fmt = "fp16"     # defaults to in_fmt
    wbits = 3
    rows = 4
    cols = 4
    depth = 512
    e0_min = -8
    e0_max = 7
    pipeline = 2
    accumulator = "exact"
    mx_block = 0         # 32: OCP MX activations (E8M0 scale per block of 32, in each lane)
    scale_min = -8       # MX: accepted scale exponents
    scale_max = 7

Writes ``DIR/densehw_array.v``, ``densehw_array.json``, ``densehw_params.h``,
``densehw_params.vh`` and ``densehw.core`` (see :mod:`densehw.emit`). A file with
``arith = "branches"`` holds :class:`contract.branch_array.BranchArrayConfig` fields instead and
gives the multi-branch array's files (:mod:`densehw.emit_branches`, ``docs/branches.md``).
Everything is generated in memory first; each file is then written to a temporary file in
``DIR`` and renamed, so an error leaves no partial file. Output is byte-identical across runs
for the same configuration.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .cli import UserError, load_config

HELP = "generate the PE-array Verilog, metadata JSON, C header and FuseSoC core from a config"

#: Keys a configuration file may hold (the ArrayConfig fields).
CONFIG_KEYS = ("in_fmt", "out_fmt", "wbits", "rows", "cols", "depth", "e0_min", "e0_max",
               "pipeline", "accumulator", "mx_block", "scale_min", "scale_max", "floorplan",
               "counters")


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, metavar="CFG",
                        help="array configuration: TOML or JSON file (ArrayConfig fields), "
                             "'default', or a name in configs/ (e.g. ecp5_25f)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="output directory (created if missing)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def write_outputs(files: dict[str, str], out_dir) -> list[Path]:
    """Write ``{name: text}`` into ``out_dir`` (created if missing), each file atomically."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output {str(out_dir)!r} exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory {str(out_dir)!r}: "
                        f"{exc.strerror}") from None
    umask = os.umask(0)
    os.umask(umask)
    temps = []
    try:
        for name, text in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
            temps.append((tmp, out_dir / name))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            os.chmod(tmp, 0o666 & ~umask)
        # all written: move them into place
        for tmp, final in temps:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise
    return [final for _, final in temps]


def run(args) -> int:
    from contract.branch_array import BranchArrayConfig

    config = load_config(args.config, branches=True)
    if isinstance(config, BranchArrayConfig):
        from .emit_branches import generate_branch_files as generate_files
    else:
        from .emit import generate_files

    files = generate_files(config)
    written = write_outputs(files, args.output)
    if not args.quiet:
        print(f"configuration {config.name}")
        for path in written:
            print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0
