"""Harness: the PE array's product path (:class:`hw.pe.RowAligner` feeding one
:class:`hw.pe.ShiftPE`) accumulates the exact products. Sequential: k-induction closes it
(:func:`hw.formal.run_sby` ``mode="prove"``).

``fault`` (:data:`ARRAY_FAULTS`): ``align`` flips the aligned value's LSB for one exponent
field.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from contract.array import ArrayConfig

from ..pe import RowAligner, ShiftPE, pe_carry_vector
from .common import check_fault, classes, exact_term

__all__ = ["ArrayProductProof", "ARRAY_FAULTS"]

ARRAY_FAULTS = ("align",)


class ArrayProductProof(wiring.Component):
    """Harness: the PE array's product path (:class:`hw.pe.RowAligner` feeding one
    :class:`hw.pe.ShiftPE`) accumulates the exact products.

    Free inputs ``x``, ``code``, ``valid``, ``restart`` (``Assume``: a restart cycle is a
    bubble, ``valid = 0``; bubbles reach the PE with ``row.value`` and ``row.sign`` 0, as
    ``ShiftPE`` requires of its row and the grid's zeroed decode gives it). The harness keeps
    a shadow accumulator that adds the exact product
    ``(-1)**(sx^s) * sig * 2**(max(E,1) - bias - frac + p)`` in units of
    ``2**(e0 + in_fmt.lsb_exp)`` (case split over ``(E, p)``) for every valid term, delayed
    like the PE (``config.pipeline``), and shadow flags from their definitions; asserted:
    ``acc`` equals the shadow (modulo ``2**pe_acc_width``) and ``flags`` equal the shadow
    flags. (The accumulator is compared with its pending carries added, see
    :func:`hw.pe.pe_sum`.) Sequential; k-induction closes it (:func:`run_sby` ``mode="prove"``)."""

    def __init__(self, *, config, fault=None):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        check_fault(fault, ARRAY_FAULTS)
        self._config, self._fault = config, fault
        super().__init__({
            "x": In(unsigned(config.in_fmt.width)),
            "code": In(unsigned(config.wbits)),
            "valid": In(1),
            "restart": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self._config, self._config.in_fmt
        m.submodules.align = align = RowAligner(config=cfg)
        m.submodules.pe = pe = ShiftPE(config=cfg, carry_copy=bool(cfg.spread))   # as hw.grid
        m.d.comb += Assume(~self.restart | ~self.valid)
        value = Mux(self.valid, align.o.value, 0)
        if self._fault == "align":
            e_bug = fmt.bias + 1
            value = value ^ (self.x[fmt.frac_bits:fmt.width - 1] == e_bug)
        m.d.comb += [
            align.x.eq(self.x),
            pe.row.value.eq(value),
            pe.row.sign.eq(align.o.sign & self.valid), pe.row.zero.eq(align.o.zero),
            pe.row.inf.eq(align.o.inf), pe.row.nan.eq(align.o.nan),
            pe.code.eq(self.code), pe.valid.eq(self.valid), pe.restart.eq(self.restart),
        ]

        def shift_of(e, p):
            return max(e, 1) - fmt.bias - fmt.frac_bits + p - fmt.lsb_exp

        width = cfg.pe_acc_width
        ref_width = fmt.frac_bits + 2 + shift_of(fmt.exp_max_field - 1, cfg.pmax)
        x, code = self.x, self.code
        psign = x[fmt.width - 1] ^ code[cfg.wbits - 1]
        finite, is_nan, is_inf, is_zero = classes(fmt, x)
        mag = exact_term(m, "pe", psign, x[fmt.frac_bits:fmt.width - 1], x[:fmt.frac_bits],
                          fmt, (code[:cfg.wbits - 1], range(cfg.pmax + 1)), shift_of,
                          ref_width)
        term = Signal(signed(max(ref_width, width) + 1))
        v = self.valid
        m.d.comb += term.eq(Mux(v & finite, Mux(psign, -mag, mag), 0))
        now = Cat(term, v & is_nan, v & is_inf & ~psign, v & is_inf & psign,
                  ~v | (is_zero & psign), self.restart)
        if cfg.pipeline == 2:
            held = Signal(len(now), name="term_delay", reset_less=True)   # as the PE's
            m.d.sync += held.eq(now)
            now = held
        t_term = now[:len(term)].as_signed()
        t_nan, t_pinf, t_ninf, t_neg0, t_restart = (now[len(term) + n] for n in range(5))
        # like the PE's accumulator and flags: defined by a restart, not by the domain reset
        shadow = Signal(signed(width), reset_less=True)
        flags = Signal(data.StructLayout({"nan": 1, "pinf": 1, "ninf": 1, "neg0": 1}),
                       init={"neg0": 1}, reset_less=True)
        with m.If(t_restart):
            m.d.sync += [shadow.eq(0), flags.eq(flags.shape().const({"neg0": 1}))]
        with m.Else():
            m.d.sync += [
                shadow.eq(shadow + t_term),
                flags.nan.eq(flags.nan | t_nan), flags.pinf.eq(flags.pinf | t_pinf),
                flags.ninf.eq(flags.ninf | t_ninf), flags.neg0.eq(flags.neg0 & t_neg0),
            ]
        m.d.comb += [
            Assert((pe.acc.as_unsigned() + pe_carry_vector(cfg, pe.carries))[:width]
                   == shadow.as_unsigned(),
                   "PE accumulator (with its pending carries) differs from the sum of exact "
                   "products"),
            Assert(pe.flags.as_value() == flags.as_value(), "PE flags differ from definitions"),
        ]
        return m
