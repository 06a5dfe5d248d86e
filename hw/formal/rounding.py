"""Harness: :class:`hw.rounding.Rounder` (without register stages) against the contract's
rounding, for every exact total (see :class:`RoundingProof`). Combinational: prove with
:func:`hw.formal.run_sat`. The rounder with register stages is covered by
``hw.formal.finalizer`` (the array's finalizer uses it).

``fault`` (:data:`ROUNDING_FAULTS`): ``sticky`` loses the magnitude's LSB; ``e0`` gives the
rounder ``e0 - 1``.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from contract import DotConfig

from ..rounding import Rounder
from .common import check_fault

__all__ = ["ROUNDING_FAULTS", "RoundingProof"]

ROUNDING_FAULTS = ("sticky", "e0")


def _check(config, kind, what, fault, faults):
    if not isinstance(config, kind):
        raise TypeError(f"config must be {what}, not {config!r}")
    check_fault(fault, faults)


class RoundingProof(wiring.Component):
    """Harness: :class:`hw.rounding.Rounder` (without register stages), given the sign and
    magnitude of an exact total, gives the contract's result for every exact total, every
    ``e0`` in ``[e0_min, e0_max]``, every combination of the flags and ReLU. Combinational:
    :func:`hw.formal.run_sat` proves it for all inputs.

    The specification is written out without a normalizing shifter: a case split over ``e0``
    and the position ``k`` of the leading one of ``|total|`` gives, as constants, the result
    exponent ``L = e0 + acc_lsb_exp + k`` and the bit ``r`` of ``|total|`` that becomes the
    result LSB (``k - F``, or the subnormal LSB when ``L`` is below the smallest normal
    exponent); the significand, guard and sticky bits are then fixed slices. Round to
    nearest, ties to even; a significand carry moves to the next binade (the largest
    subnormal to the smallest normal); a biased exponent of all ones or more is an infinity; a
    nonzero total that rounds to 0 keeps its sign. Then the specials: NaN for a NaN term or
    +inf with -inf (canonical, sign 0), else the infinity, else for an exact zero ``-0`` when
    every term was ``-0`` and ``+0`` otherwise; ReLU turns any pattern with its sign bit set
    into ``+0``.

    The total's most negative pattern ``-2**(acc_width - 1)`` is assumed away: its magnitude
    needs ``acc_width`` bits, and no sum of the domain reaches it (``FinalizerProof`` asserts
    this of the array's totals).

    ``fault``: ``sticky`` hands the rounder the magnitude without its LSB (a lost sticky bit);
    ``e0`` gives it ``e0 - 1`` except at ``e0_min`` (every exponent field and the subnormal
    limit one off).
    """

    def __init__(self, *, config, fault=None):
        _check(config, DotConfig, "a DotConfig", fault, ROUNDING_FAULTS)
        self._config, self._fault = config, fault
        super().__init__({
            "total": In(signed(config.acc_width)),
            "e0": In(signed(config.e0_bits)),
            "nan": In(1), "pinf": In(1), "ninf": In(1), "neg0": In(1), "relu": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self._config, self._config.out_fmt
        width, frac = cfg.acc_width, fmt.frac_bits
        m.d.comb += [
            Assume((self.e0 >= cfg.e0_min) & (self.e0 <= cfg.e0_max)),
            Assume(self.total != -(1 << (width - 1))),
        ]
        # the unit under test
        m.submodules.rnd = rnd = Rounder(config=cfg)
        e0_in = self.e0
        if self._fault == "e0":
            e0_in = Signal(signed(cfg.e0_bits))
            m.d.comb += e0_in.eq(Mux(self.e0 == cfg.e0_min, self.e0, self.e0 - 1))
        mag_in = Signal(width - 1)
        m.d.comb += mag_in.eq(Mux(self.total[width - 1], -self.total, self.total))
        s = rnd.i.payload.sum
        m.d.comb += [
            s.sign.eq(self.total[width - 1]), s.e0.eq(e0_in),
            s.mag.eq(mag_in & ~1 if self._fault == "sticky" else mag_in),
            s.flags.nan.eq(self.nan), s.flags.pinf.eq(self.pinf), s.flags.ninf.eq(self.ninf),
            s.flags.neg0.eq(self.neg0), rnd.relu.eq(self.relu),
        ]
        got = rnd.o.payload.bits
        # the specification
        sign = self.total[width - 1]
        mag = Signal(width - 1)
        m.d.comb += mag.eq(Mux(sign, ~self.total + 1, self.total))
        below = [Const(0, 1)] + [mag[:j].any() for j in range(1, width)]   # below[j]: bits < j
        emin = 1 - fmt.bias                       # exponent of the smallest normal
        sig = Signal(frac + 1)
        guard, sticky = Signal(), Signal()
        field = Signal(range(4 * (fmt.exp_max_field + 2) + 1))   # biased exponent, 0: subnormal
        e0_mask = (1 << cfg.e0_bits) - 1
        with m.Switch(self.e0.as_unsigned()):
            for e0 in range(cfg.e0_min, cfg.e0_max + 1):
                with m.Case(e0 & e0_mask):
                    for n, k in enumerate(reversed(range(width - 1))):
                        with (m.If if n == 0 else m.Elif)(mag[k]):
                            lead_exp = e0 + cfg.acc_lsb_exp + k
                            lift = max(0, emin - lead_exp)          # subnormal: LSB held up
                            r = k - frac + lift
                            m.d.comb += [
                                sig.eq(Cat(mag[r + i] if 0 <= r + i < width - 1 else Const(0, 1)
                                           for i in range(frac + 1))),
                                guard.eq(mag[r - 1] if r >= 1 else 0),
                                sticky.eq(below[r - 1] if r >= 2 else 0),
                                field.eq(lead_exp + fmt.bias if lift == 0 else 0),
                            ]
        inc = guard & (sticky | sig[0])
        rounded = Signal(frac + 2)
        m.d.comb += rounded.eq(sig + inc)
        pattern = Signal(len(field) + frac + 1)
        with m.If(field == 0):                    # subnormal: at most 2**F, the smallest normal
            m.d.comb += pattern.eq(rounded)
        with m.Elif(rounded[frac + 1]):           # 2**(F+1): the next binade
            m.d.comb += pattern.eq((field + 1) << frac)
        with m.Else():
            m.d.comb += pattern.eq(Cat(rounded[:frac], field))
        number = Cat(Mux(pattern >= fmt.pos_inf, fmt.pos_inf, pattern)[:fmt.width - 1], sign)
        expected = Signal(fmt.width)
        with m.If(self.nan | (self.pinf & self.ninf)):
            m.d.comb += expected.eq(fmt.canonical_nan)
        with m.Elif(self.pinf):
            m.d.comb += expected.eq(fmt.pos_inf)
        with m.Elif(self.ninf):
            m.d.comb += expected.eq(fmt.neg_inf)
        with m.Elif(mag == 0):
            m.d.comb += expected.eq(Mux(self.neg0, fmt.sign_mask, 0))
        with m.Else():
            m.d.comb += expected.eq(number)
        m.d.comb += Assert(got == Mux(self.relu & expected[fmt.width - 1], 0, expected),
                           "rounded result differs from the specification")
        return m
