"""The ECP5 multiplier block ``MULT18X18D`` used with its own registers.

Yosys maps ``*`` onto a MULT18X18D but leaves its registers in the fabric, so a product's path
runs from a fabric flip-flop through the routing into the block, through its multiplier, and
through the routing again to the next fabric flip-flop. Instantiated here with its input
registers A and B and its output register (all on ``CLK0``, enabled by ``CE0``; ``RST0`` tied
low: datapath registers without a reset, like the fabric's around it), the block's
multiplier sits between two of its own registers and each fabric path is a route alone
(nextpnr times the block as ``MULT18X18D_REGS_ALL``). The pipeline register (``REG_PIPELINE``)
is bypassed.

Simulation: the generated Verilog needs a model of the primitive (Yosys ships it only as a
black box); ``sim/models/mult18x18d.v`` covers the configuration used here.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Mult18x18d", "LATENCY", "WIDTH"]

#: Operand width of the block (unsigned operands use up to all of it; the sign inputs are 0).
WIDTH = 18

#: Enabled clocks from an operand pair to its product on ``p`` (input and output registers).
LATENCY = 2


class Mult18x18d(wiring.Component):
    """``p = a * b``, unsigned, on one MULT18X18D: ``p`` holds the product of the operands
    presented ``LATENCY`` enabled clocks (``en``, domain ``sync``) earlier.

    Members
    -------
    en : In(1)
    a : In(unsigned(a_width))
    b : In(unsigned(b_width))
    p : Out(unsigned(a_width + b_width))
    """

    def __init__(self, *, a_width: int, b_width: int):
        for name, v in (("a_width", a_width), ("b_width", b_width)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if not 1 <= v <= WIDTH:
                raise ValueError(f"{name} must be in [1, {WIDTH}], not {v}")
        super().__init__({"en": In(1), "a": In(unsigned(a_width)), "b": In(unsigned(b_width)),
                          "p": Out(unsigned(a_width + b_width))})

    def elaborate(self, platform):
        zero = Const(0, 1)
        pins = {}
        for port, value in (("A", self.a), ("B", self.b)):
            for i in range(WIDTH):
                pins[f"i_{port}{i}"] = value[i] if i < len(value) else zero
        for i in range(len(self.p)):
            pins[f"o_P{i}"] = self.p[i]
        regs = {}
        for reg in ("INPUTA", "INPUTB", "OUTPUT"):
            regs.update({f"p_REG_{reg}_CLK": "CLK0", f"p_REG_{reg}_CE": "CE0",
                         f"p_REG_{reg}_RST": "RST0"})
        return Instance(
            "MULT18X18D",
            p_REG_PIPELINE_CLK="NONE", p_REG_INPUTC_CLK="NONE", p_GSR="DISABLED",
            p_RESETMODE="SYNC", p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
            p_CAS_MATCH_REG="FALSE", **regs,
            i_SIGNEDA=zero, i_SIGNEDB=zero, i_SOURCEA=zero, i_SOURCEB=zero,
            i_CLK0=ClockSignal(), i_CE0=self.en, i_RST0=zero,
            **pins,
        )
