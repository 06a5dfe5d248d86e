"""The addition half of the floating-point MAC baselines: ``round(c + b)`` for an accumulator
``c`` (raw bits of the accumulation format) and an exact addend ``b`` (a product from
:class:`boards.fpmul.Product`, or an unpacked accumulator value), rounded once to nearest even.

Datapath (:data:`STAGES` pipeline stages, every register enabled by ``en``):

1. decode ``c``; compare the top-bit exponents ``t`` of the two operands; the one with the
   larger ``t`` (``x``) goes to the top of a ``W``-bit window, the other (``y``) beside it;
2. align: ``y`` shifted right by the exponent difference, the bits shifted out ORed into the
   window's lowest bit (a sticky proxy: the sum's bits above it and the inexactness stay exact);
3. add or subtract on ``W + 2`` bits; a negative difference is replaced by ``y - x``;
4. leading-zero count of the magnitude, limited so the exponent stays >= ``emin`` (subnormal
   results keep their fixed rounding position);
5. normalising left shift: significand, guard bit, sticky bit, biased exponent;
6. round to nearest even on the packed exponent and fraction (the carry of the increment
   moves a subnormal to the smallest normal and the largest finite value to infinity), then
   infinities, NaN (canonical quiet NaN) and zero signs.

Window width ``W = max(wb + 1, p + 3 + z)`` for a ``wb``-bit addend significand and a ``p``-bit
accumulator significand, ``z = 1`` when the addend may have one leading zero (a product of
normalised significands) and 0 when it is normalised. The accumulator may be subnormal: its
``t`` is then ``emin``, and a result whose window top is at ``emin`` rounds at the fixed
subnormal position. Otherwise a bit is shifted out below the window only when the exponent
difference is at least ``z + 2``; ``y`` is then below half the leading weight of ``x``, the
result's leading one lies within ``z + 1`` bits of the window top, and its ``p`` bits and guard
bit lie above the sticky proxy.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from boards.fpmul import addend_layout, leading_zeros
from contract import get_format

__all__ = ["FmaAdd", "STAGES", "window_width", "acc_addend_range"]

#: Pipeline stages of :class:`FmaAdd`: an accumulator loop around it holds this many
#: interleaved partial sums.
STAGES = 6


def window_width(b_width: int, acc_fmt, *, lead_zero: bool = True) -> int:
    """``W`` for a ``b_width``-bit addend (with one possible leading zero if ``lead_zero``)."""
    p = get_format(acc_fmt).frac_bits + 1
    return max(b_width + 1, p + 3 + int(lead_zero))


def acc_addend_range(acc_fmt):
    """``e`` range of an accumulator value used as the addend (``FmaAdd(b_width=p)``)."""
    fmt = get_format(acc_fmt)
    return 1, fmt.exp_max_field


def _reg(m, en, value, name):
    reg = Signal(value.shape(), name=name, reset_less=True)      # datapath: no reset
    with m.If(en):
        m.d.sync += reg.eq(value)
    return reg


def _shift_right_sticky(value, amount):
    """``value >> amount`` with bit 0 replaced by the OR of every bit that lands at or below
    it: a logarithmic shifter, largest step first, each step ORing the bits it drops."""
    width, sticky = len(value), Const(0, 1)
    for k in reversed(range(len(amount))):
        step = 1 << k
        dropped = value[:min(step, width)].any()
        sticky = sticky | (amount[k] & dropped)
        value = Mux(amount[k], value >> step if step < width else Const(0, width), value)
    return Cat(sticky | value[0], value[1:])


def _one_hot_below(value, top):
    """``top + 1`` bits, bit ``i`` set when ``value == top - i`` (``value`` unsigned-valued,
    wider than needed): a two-level decode of the low bits, gated by the high bits being 0."""
    n = top.bit_length()
    low, high_zero = value[:n], ~value[n:].any()
    lo_bits = min(n, 3)
    lo = [low[:lo_bits] == v for v in range(1 << lo_bits)]
    hi = [high_zero & (low[lo_bits:] == v) for v in range(1 << (n - lo_bits))]
    return Cat(*(lo[(top - i) & ((1 << lo_bits) - 1)] & hi[(top - i) >> lo_bits]
                 for i in range(top + 1)))


class FmaAdd(wiring.Component):
    """``round(c + b)``, pipelined (see the module docstring).

    Members
    -------
    en : In(1)
        Pipeline advance.
    c : In(unsigned(acc_fmt.width))
        Accumulator operand, raw bits.
    b : In(addend_layout(b_width, e_lo, e_hi))
        Exact addend, consumed with ``c``: normalised, or with one leading zero when
        ``b_lead_zero``, or subnormal with ``t = emin`` of the accumulation format.
    clear : In(1)
        Read in the advance that ends the last stage: ``o`` loads ``-0`` instead of the sum.
    r : Out(unsigned(acc_fmt.width))
        The rounded sum of the operands presented ``STAGES - 1`` advances earlier
        (combinational, valid in the clock of the last stage).
    o : Out(unsigned(acc_fmt.width))
        ``r`` registered (or ``-0``, see ``clear``): ``STAGES`` advances after the operands.
    """

    def __init__(self, *, acc_fmt="fp16", b_width=22, e_lo=-32, e_hi=46, b_lead_zero=True):
        self._acc = get_format(acc_fmt)
        self._lead_zero = bool(b_lead_zero)
        for name, v in (("b_width", b_width), ("e_lo", e_lo), ("e_hi", e_hi)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name} must be an integer, not {v!r}")
        if b_width < 2:
            raise ValueError(f"b_width must be at least 2, not {b_width}")
        if e_lo > e_hi:
            raise ValueError(f"e_lo must not exceed e_hi, not {e_lo} > {e_hi}")
        self._bw, self._e = b_width, (e_lo, e_hi)
        w = self._acc.width
        super().__init__({"en": In(1), "c": In(unsigned(w)),
                          "b": In(addend_layout(b_width, e_lo, e_hi)),
                          "clear": In(1), "r": Out(unsigned(w)), "o": Out(unsigned(w))})

    @property
    def window(self) -> int:
        return window_width(self._bw, self._acc, lead_zero=self._lead_zero)

    def elaborate(self, platform):
        m = Module()
        acc, en = self._acc, self.en
        F, E = acc.frac_bits, acc.exp_bits
        p = F + 1
        W, wb = self.window, self._bw
        e_lo, e_hi = min(self._e[0], 1), max(self._e[1], acc.exp_max_field)
        e_shape = signed(max(abs(e_lo).bit_length(), abs(e_hi).bit_length(),
                             (W + 1).bit_length()) + 2)
        d_bits = W.bit_length()                   # shift amounts up to 2**d_bits - 1 >= W

        # -- stage 1: decode c, compare exponents, swap --------------------------------------
        # exponents are biased (the accumulation format's bias): c's top bit has max(E, 1)
        c, b = self.c, self.b
        ce, cf, cs = c[F:F + E], c[:F], c[-1]
        c_norm = ce.any()
        c_special = ce == acc.exp_max_field
        c_zero = ~c_norm & ~cf.any()
        ec = Cat(ce[0] | ~c_norm, ce[1:])
        d_bc, d_cb = Signal(e_shape), Signal(e_shape)
        m.d.comb += [d_bc.eq(b.e - ec), d_cb.eq(ec - b.e)]
        x_is_b = d_cb[-1] & ~b.zero                       # b's top bit is the higher one

        def clamp(d):                                     # >= the window: all bits to sticky
            return Mux(d[d_bits:].any(), (1 << d_bits) - 1, d[:d_bits])

        mb_top = Cat(Const(0, W - wb), b.m)
        mc_top = Cat(Const(0, W - p), cf, c_norm)
        nan1 = b.nan | (c_special & cf.any()) | (b.inf & c_special & ~cf.any() & (b.sign ^ cs))
        inf1 = (b.inf | (c_special & ~cf.any())) & ~nan1
        x1 = _reg(m, en, Mux(x_is_b, mb_top, mc_top), "x1")
        y1 = _reg(m, en, Mux(x_is_b, mc_top, mb_top), "y1")
        d1 = _reg(m, en, Mux(x_is_b, clamp(d_bc), clamp(d_cb)), "d1")
        ex1 = _reg(m, en, Mux(x_is_b, b.e, ec), "ex1")
        sx1 = _reg(m, en, Mux(x_is_b, b.sign, cs), "sx1")
        sub1 = _reg(m, en, b.sign ^ cs, "sub1")
        # specials and the sign of an exact zero ride along to stage 6
        flags1 = _reg(m, en, Cat(nan1, inf1, Mux(b.inf, b.sign, cs),
                                 b.zero & c_zero & b.sign & cs), "flags1")

        # -- stage 2: align y -----------------------------------------------------------------
        x2 = _reg(m, en, x1, "x2")
        y2 = _reg(m, en, _shift_right_sticky(y1, d1), "y2")
        ex2 = _reg(m, en, ex1, "ex2")
        sx2 = _reg(m, en, sx1, "sx2")
        sub2 = _reg(m, en, sub1, "sub2")
        flags2 = _reg(m, en, flags1, "flags2")

        # -- stage 3: add / subtract, magnitude ----------------------------------------------
        ext = unsigned(W + 2)
        t3 = Signal(ext)
        m.d.comb += t3.eq(x2 + (Cat(y2, Const(0, 2)) ^ sub2.replicate(W + 2)) + sub2)
        neg = t3[W + 1]
        rdiff = Signal(unsigned(W + 1))
        m.d.comb += rdiff.eq(y2 - x2)
        mag3 = _reg(m, en, Mux(neg, rdiff, t3[:W + 1]), "mag3")
        s3 = _reg(m, en, sx2 ^ neg, "s3")
        # the normalising shift stops at emin: at most ex (the biased exponent of the window
        # top, >= 1) bits; a marker bit there makes the leading-zero count stop at it
        marker3 = _reg(m, en, _one_hot_below(ex2.as_unsigned(), W), "marker3")
        ex3 = _reg(m, en, ex2, "ex3")
        flags3 = _reg(m, en, flags2, "flags3")

        # -- stage 4: leading zeros, limited at emin ------------------------------------------
        sh4 = _reg(m, en, leading_zeros(mag3 | marker3), "sh4")
        mag4 = _reg(m, en, mag3, "mag4")
        ex4 = _reg(m, en, ex3, "ex4")
        zero4 = _reg(m, en, mag3 == 0, "zero4")
        s4 = _reg(m, en, s3, "s4")
        flags4 = _reg(m, en, flags3, "flags4")

        # -- stage 5: normalise ---------------------------------------------------------------
        top = (mag4 << sh4)[W - p:W + 1]         # guard bit, then p significand bits
        guard, mant = top[0], top[1:]
        low = W - p                               # bits of mag << sh below the guard bit
        sticky5 = (mag4[:low] & Cat(*(sh4 <= low - 1 - j for j in range(low)))).any() \
            if low > 0 else Const(0, 1)
        lead = mant[p - 1]
        ebias = Signal(e_shape)                  # biased exponent of the leading bit
        m.d.comb += ebias.eq(ex4 + 1 - sh4)
        ovf = lead & (ebias >= acc.exp_max_field)
        packed = Cat(mant[:F], Mux(lead, ebias[:E], 0))
        packed5 = _reg(m, en, packed, "packed5")
        rnd5 = _reg(m, en, guard & (sticky5 | mant[0]), "rnd5")
        ovf5 = _reg(m, en, ovf, "ovf5")
        zero5 = _reg(m, en, zero4, "zero5")
        s5 = _reg(m, en, s4, "s5")
        flags5 = _reg(m, en, flags4, "flags5")

        # -- stage 6: round, specials ---------------------------------------------------------
        nan6, inf6, inf_sign6, zero_sign6 = flags5[0], flags5[1], flags5[2], flags5[3]
        rounded = (packed5 + rnd5)[:acc.width - 1]
        inf_bits = Const(acc.exp_max_field << F, acc.width - 1)
        result = Signal(unsigned(acc.width))
        with m.If(nan6):
            m.d.comb += result.eq((acc.exp_max_field << F) | (1 << (F - 1)))
        with m.Elif(inf6):
            m.d.comb += result.eq(Cat(inf_bits, inf_sign6))
        with m.Elif(ovf5):
            m.d.comb += result.eq(Cat(inf_bits, s5))
        with m.Elif(zero5):
            m.d.comb += result.eq(Cat(Const(0, acc.width - 1), zero_sign6))
        with m.Else():
            m.d.comb += result.eq(Cat(rounded, s5))
        m.d.comb += self.r.eq(result)
        loop = Signal(acc.width, name="loop", reset_less=True)
        with m.If(en):
            m.d.sync += loop.eq(Mux(self.clear, 1 << (acc.width - 1), result))
        m.d.comb += self.o.eq(loop)
        return m
