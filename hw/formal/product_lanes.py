"""Harness: :class:`hw.lanes.ProductLanes` equals the exact products for all inputs.

For every activation pattern, weight code and ``keep`` mask, every lane's term ``value + neg``,
scaled by ``2**product_shift_base``, equals the exact product ``(-1)**(sx^s) * significand *
2**(max(E,1) - bias - frac + p)`` in units of the accumulator LSB ``2**(e0 + acc_lsb_exp)``,
written as an explicit case split over ``(E, p)`` (no shifter), and 0 for lanes that are not
kept or not finite; and the ``nan``/``pinf``/``ninf``/``neg0`` flags match their definitions.
Combinational: prove with :func:`hw.formal.run_sat`.

``fault`` (:data:`PRODUCT_FAULTS`): ``align`` flips lane 0's value LSB at one
(:func:`fault_point`) input; ``neg0`` reports a +0 activation times a positive weight in lane 0
as a -0 product.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from ..lanes import ProductLanes, lane_geometry
from .common import check_dot_config, check_fault, classes, exact_term

__all__ = ["ProductLanesProof", "PRODUCT_FAULTS", "fault_point", "product_shift"]

PRODUCT_FAULTS = ("align", "neg0")


def fault_point(config):
    """``(E, p)`` at which the ``align`` fault corrupts lane 0: a mid-range exponent field and
    the largest weight exponent (a single point among all inputs)."""
    return config.in_fmt.bias + 1, config.pmax

class _FaultyProductLanes(wiring.Component):
    """:class:`ProductLanes` with one bug injected on its outputs.

    ``align``: lane 0's value has its LSB flipped when the activation's exponent field and the
    code's ``p`` equal :func:`fault_point`. ``neg0``: a +0 activation times a positive weight in
    lane 0 is reported as a -0 product."""

    def __init__(self, *, config, fault):
        self._config, self._fault = config, fault
        self._inner = ProductLanes(config=config)
        super().__init__(self._inner.signature)

    def elaborate(self, platform):
        m = Module()
        cfg, inner = self._config, self._inner
        m.submodules.inner = inner
        m.d.comb += [inner.x.eq(self.x), inner.w.eq(self.w), inner.keep.eq(self.keep),
                     self.neg.eq(inner.neg), self.nan.eq(inner.nan), self.pinf.eq(inner.pinf),
                     self.ninf.eq(inner.ninf), self.neg0.eq(inner.neg0)]
        for j in range(cfg.lanes):
            m.d.comb += self.value[j].eq(inner.value[j])
        fmt = cfg.in_fmt
        x0, w0 = self.x[0], self.w[0]
        if self._fault == "align":
            e_bug, p_bug = fault_point(cfg)
            hit = (x0[fmt.frac_bits:fmt.width - 1] == e_bug) & (w0[:cfg.wbits - 1] == p_bug)
            m.d.comb += self.value[0].eq(inner.value[0] ^ hit)
        elif self._fault == "neg0":
            m.d.comb += self.neg0.eq(inner.neg0 | ((x0 == 0) & (w0 == 0) & self.keep.all()))
        return m

def product_shift(config, exp_field, p):
    """Accumulator bit of the significand LSB of ``x * 2**(e0+p)`` for a finite activation
    with exponent field ``exp_field``: ``x = sig * 2**(max(E,1) - bias - frac)`` and the
    accumulator LSB weighs ``2**(e0 + acc_lsb_exp)`` (straight from the contract's
    definitions, not from :attr:`DotConfig.product_shift_base`)."""
    fmt = config.in_fmt
    return max(exp_field, 1) - fmt.bias - fmt.frac_bits + p - config.acc_lsb_exp

class ProductLanesProof(wiring.Component):
    """Harness: :class:`hw.lanes.ProductLanes` equals the exact products for all inputs.

    Free inputs ``x``, ``w``, ``keep`` (the unit's own inputs). Combinational; prove with
    :func:`run_sat`."""

    def __init__(self, *, config, fault=None):
        check_dot_config(config)
        check_fault(fault, PRODUCT_FAULTS)
        self._config, self._fault = config, fault
        super().__init__({
            "x": In(data.ArrayLayout(unsigned(config.in_fmt.width), config.lanes)),
            "w": In(data.ArrayLayout(unsigned(config.wbits), config.lanes)),
            "keep": In(unsigned(config.lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self._config, self._config.in_fmt
        if self._fault is None:
            dut = ProductLanes(config=cfg)
        else:
            dut = _FaultyProductLanes(config=cfg, fault=self._fault)
        m.submodules.dut = dut
        m.d.comb += [dut.x.eq(self.x), dut.w.eq(self.w), dut.keep.eq(self.keep)]

        def shift_of(e, p):
            return product_shift(cfg, e, p)

        ref_width = fmt.frac_bits + 2 + shift_of(fmt.exp_max_field - 1, cfg.pmax)
        _, lane_width = lane_geometry(cfg)
        got_width = max(ref_width, lane_width + 1 + cfg.product_shift_base) + 2
        nan, pinf, ninf, neg0 = [], [], [], []
        for j in range(cfg.lanes):
            x, code, keep = self.x[j], self.w[j], self.keep[j]
            psign = x[fmt.width - 1] ^ code[cfg.wbits - 1]
            finite, is_nan, is_inf, is_zero = classes(fmt, x)
            mag = exact_term(m, f"lane{j}", psign, x[fmt.frac_bits:fmt.width - 1],
                              x[:fmt.frac_bits], fmt, (code[:cfg.wbits - 1],
                                                       range(cfg.pmax + 1)),
                              shift_of, ref_width)
            expected = Signal(signed(got_width), name=f"lane{j}_expected")
            got = Signal(signed(got_width), name=f"lane{j}_got")
            m.d.comb += [
                expected.eq(Mux(keep & finite, Mux(psign, -mag, mag), 0)),
                got.eq((dut.value[j] + dut.neg[j]) << cfg.product_shift_base),
                Assert(got == expected, f"lane {j}: term differs from the exact product"),
            ]
            nan.append(keep & is_nan)
            pinf.append(keep & is_inf & ~psign)
            ninf.append(keep & is_inf & psign)
            neg0.append(~keep | (is_zero & psign))
        m.d.comb += [
            Assert(dut.nan == Cat(*nan).any(), "nan flag"),
            Assert(dut.pinf == Cat(*pinf).any(), "pinf flag"),
            Assert(dut.ninf == Cat(*ninf).any(), "ninf flag"),
            Assert(dut.neg0 == Cat(*neg0).all(), "neg0 flag"),
        ]
        return m
