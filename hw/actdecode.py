"""The activation decoder: a narrow or block-scaled activation lane -> its carrier pattern.

``fp8_e4m3fn`` and the OCP MX element formats have no infinities (and FP6/FP4 no NaN); the
PEs work on the lane's *carrier* (``ArrayConfig.pe_fmt``, :func:`contract.formats.carrier_format`),
an IEEE format on the same grid with enough exponent range. This component re-encodes one lane,
combinationally, folding the MX block scale into the exponent:

* a normal element ``(e, f)`` becomes ``(e + d, f)`` with ``d = scale - 127 - scale_min``
  (``d = 0`` without scales: the carrier's LSB is the element's);
* a subnormal element ``f`` (leading one at bit ``L - 1``) becomes normal once
  ``L - 1 + d >= F`` (exponent field ``L - F + d``, the bits below its leading one as the
  fraction), otherwise stays subnormal as ``f << d``;
* zeros keep their sign, infinities (``fp8_e5m2``) stay infinities, and a NaN element, a NaN
  scale (0xFF) or a scale outside ``[scale_min, scale_max]`` gives the carrier's canonical NaN.

``sw.mx.fold_scales`` / ``sw.mx.to_carrier`` compute the same patterns through exact values;
``tests/test_actdecode.py`` compares the two on every element pattern and scale.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from contract.array import ArrayConfig
from contract.mx import SCALE_BIAS, SCALE_NAN

__all__ = ["ActDecoder", "needs_decoder"]


def needs_decoder(config: ArrayConfig) -> bool:
    """True when activation lanes are not already PE patterns (a narrow format or MX)."""
    return bool(config.mx_block) or config.pe_fmt != config.in_fmt


class ActDecoder(wiring.Component):
    """One activation lane (:attr:`ArrayConfig.lane_width` bits) -> one ``pe_fmt`` pattern.

    Members
    -------
    x : In(unsigned(lane_width))
        The element pattern, with (MX) its block's E8M0 scale above it.
    y : Out(unsigned(pe_fmt.width))
    """

    def __init__(self, *, config: ArrayConfig):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        self._config = config
        super().__init__({"x": In(unsigned(config.lane_width)),
                          "y": Out(unsigned(config.pe_fmt.width))})

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        fmt, car = cfg.in_fmt, cfg.pe_fmt
        frac_bits, w = fmt.frac_bits, fmt.width
        x = self.x
        sign, exp, frac = x[w - 1], x[frac_bits:w - 1], x[:frac_bits]
        top = exp == fmt.exp_max_field
        if fmt.specials == "ieee":
            nan, inf = top & frac.any(), top & ~frac.any()
        elif fmt.specials == "fn":
            nan, inf = top & (frac == fmt.frac_mask), Const(0)
        else:
            nan, inf = Const(0), Const(0)
        span = cfg.scale_max - cfg.scale_min if cfg.mx_block else 0
        d = Signal(range(span + 1), name="d")           # scale - 127 - scale_min
        bad = Signal(name="bad_scale")
        if cfg.mx_block:
            scale = x[w:w + 8]
            lo, hi = SCALE_BIAS + cfg.scale_min, SCALE_BIAS + cfg.scale_max
            m.d.comb += [bad.eq((scale == SCALE_NAN) | (scale < lo) | (scale > hi)),
                         d.eq(scale - lo)]
        ec = Signal(car.exp_bits, name="exp_c")
        fc = Signal(frac_bits, name="frac_c")
        with m.If(exp.any()):
            m.d.comb += [ec.eq(exp + d), fc.eq(frac)]
        # a subnormal element: its leading one decides where it lands
        for lead in range(frac_bits, 0, -1):
            with m.Elif(frac[lead - 1]):
                below = frac[:lead - 1] if lead > 1 else Const(0, 0)
                with m.If(d + (lead - 1) >= frac_bits):
                    m.d.comb += [ec.eq(d + lead - frac_bits),
                                 fc.eq(Cat(Const(0, frac_bits - lead + 1), below))]
                with m.Else():
                    m.d.comb += fc.eq(frac << d)
        number = Cat(fc, ec, sign)
        m.d.comb += self.y.eq(Mux(nan | bad, car.canonical_nan,
                                  Mux(inf, Cat(Const(car.pos_inf, car.width - 1), sign),
                                      number)))
        return m
