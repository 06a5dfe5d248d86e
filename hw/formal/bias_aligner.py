"""Harness: :class:`hw.lanes.BiasAligner` (without register stages) equals the exact bias in
accumulator units for every bias pattern, ``enable``, and ``e0`` in ``[e0_min, e0_max]``
(assumed: outside the domain the unit is undefined), and its flags their definitions.
Combinational: prove with :func:`hw.formal.run_sat`. The aligner with register stages is
covered by ``hw.formal.finalizer`` (the array's finalizer uses it).

``fault`` (:data:`BIAS_FAULTS`): ``align`` flips the value's LSB for one exponent field at
``e0_min``.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from ..lanes import BiasAligner, bias_geometry
from .common import check_dot_config, check_fault, classes, exact_term

__all__ = ["BiasAlignerProof", "BIAS_FAULTS", "bias_shift"]

BIAS_FAULTS = ("align",)


class _FaultyBiasAligner(wiring.Component):
    """:class:`BiasAligner` with its value's LSB flipped for one exponent field at ``e0_min``."""

    def __init__(self, *, config, fault):
        self._config, self._fault = config, fault
        self._inner = BiasAligner(config=config)
        super().__init__(self._inner.signature)

    def elaborate(self, platform):
        m = Module()
        cfg, inner, fmt = self._config, self._inner, self._config.out_fmt
        m.submodules.inner = inner
        m.d.comb += [inner.bias.eq(self.bias), inner.e0.eq(self.e0), inner.enable.eq(self.enable),
                     inner.flags.eq(self.flags),
                     self.neg.eq(inner.neg), self.nan.eq(inner.nan), self.pinf.eq(inner.pinf),
                     self.ninf.eq(inner.ninf), self.neg0.eq(inner.neg0)]
        hit = ((self.bias[fmt.frac_bits:fmt.width - 1] == fmt.bias + 1)
               & (self.e0 == cfg.e0_min))
        m.d.comb += self.value.eq(inner.value ^ hit)
        return m

def bias_shift(config, exp_field, e0):
    """Accumulator bit of the significand LSB of a finite bias (``out_fmt``) with exponent
    field ``exp_field``, for the weight offset ``e0``."""
    fmt = config.out_fmt
    return max(exp_field, 1) - fmt.bias - fmt.frac_bits - e0 - config.acc_lsb_exp

class BiasAlignerProof(wiring.Component):
    """Harness: :class:`hw.lanes.BiasAligner` equals the exact bias in accumulator units for
    every bias pattern, ``enable``, and ``e0`` in ``[e0_min, e0_max]``. Combinational."""

    def __init__(self, *, config, fault=None):
        check_dot_config(config)
        check_fault(fault, BIAS_FAULTS)
        self._config, self._fault = config, fault
        super().__init__({
            "bias": In(unsigned(config.out_fmt.width)),
            "e0": In(signed(config.e0_bits)),
            "enable": In(1),
            "flags": In(data.StructLayout({"nan": 1, "pinf": 1, "ninf": 1, "neg0": 1})),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self._config, self._config.out_fmt
        if self._fault is None:
            dut = BiasAligner(config=cfg)
        else:
            dut = _FaultyBiasAligner(config=cfg, fault=self._fault)
        m.submodules.dut = dut
        m.d.comb += [dut.bias.eq(self.bias), dut.e0.eq(self.e0), dut.enable.eq(self.enable),
                     dut.flags.eq(self.flags)]
        m.d.comb += Assume((self.e0 >= cfg.e0_min) & (self.e0 <= cfg.e0_max))

        def shift_of(e, e0):
            return bias_shift(cfg, e, e0)

        ref_width = fmt.frac_bits + 2 + shift_of(fmt.exp_max_field - 1, cfg.e0_min)
        _, width, offset = bias_geometry(cfg)
        got_width = max(ref_width, width + 1 + offset) + 2
        sign = self.bias[fmt.width - 1]
        finite, is_nan, is_inf, is_zero = classes(fmt, self.bias)
        mag = exact_term(m, "bias", sign, self.bias[fmt.frac_bits:fmt.width - 1],
                          self.bias[:fmt.frac_bits], fmt,
                          (self.e0, range(cfg.e0_min, cfg.e0_max + 1)), shift_of, ref_width)
        expected = Signal(signed(got_width))
        got = Signal(signed(got_width))
        en, fl = self.enable, self.flags
        m.d.comb += [
            expected.eq(Mux(en & finite, Mux(sign, -mag, mag), 0)),
            got.eq((dut.value + dut.neg) << offset),
            Assert(got == expected, "bias term differs from the exact bias"),
            Assert(dut.nan == (fl.nan | (en & is_nan)), "nan flag"),
            Assert(dut.pinf == (fl.pinf | (en & is_inf & ~sign)), "pinf flag"),
            Assert(dut.ninf == (fl.ninf | (en & is_inf & sign)), "ninf flag"),
            Assert(dut.neg0 == (fl.neg0 & (~en | (is_zero & sign))), "neg0 flag"),
        ]
        return m
