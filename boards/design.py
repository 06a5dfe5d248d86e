"""A design under measurement: Verilog text, its top module, its configuration and the
multiply-accumulates it performs per clock."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

__all__ = ["Design", "design_from_verilog"]


@dataclass(frozen=True)
class Design:
    """Verilog text of a design under measurement.

    ``macs_per_cycle``: multiply-accumulates (one weight times one activation, added into an
    accumulator) completed per clock in steady state. ``config``: JSON-ready description written
    into the reports; ``name``: filesystem-safe identifier used in report paths.
    """

    name: str
    top: str
    verilog: str
    config: dict
    macs_per_cycle: int
    kind: str = "verilog"
    extra: dict = field(default_factory=dict)


def design_from_verilog(path, *, top, macs_per_cycle, name=None, config=None) -> Design:
    """A design from a Verilog file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Verilog file {str(path)!r} does not exist")
    if not isinstance(macs_per_cycle, int) or macs_per_cycle < 1:
        raise ValueError(f"macs_per_cycle must be a positive integer, not {macs_per_cycle!r}")
    return Design(name=name or path.stem, top=top, verilog=path.read_text(),
                  config=config or {"verilog": str(path), "top": top},
                  macs_per_cycle=macs_per_cycle)
