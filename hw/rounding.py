"""Finalizer of the shift-add dot-product unit: exact accumulator -> one rounded output float.

The accumulator holds the exact sum ``S`` as a ``W``-bit two's complement integer whose LSB
weighs ``2**(e0 + acc_lsb_exp)``. Rounding it to ``out_fmt`` (precision ``F`` fraction bits)
takes two combinational halves, so that a pipeline register may sit between them:

:class:`LeadingOne` (sign, magnitude, exponent)
    ``mag = |S|`` (``W - 1`` bits, top bit index ``T = W - 2``) and its leading-zero count
    ``lz``. The output's subnormal LSB (weight ``2**out_fmt.lsb_exp``) sits at accumulator bit
    ``sub = bias_shift_base - e0``, so a normal result needs its leading one at or above bit
    ``sub + F``. Normalizing means moving the leading one up to bit ``T``, but never more
    than ``cap = T - F - sub`` places (the subnormal limit)::

        lsh = min(lz, cap)           # how far a left-normalizer would move mag
        r   = T - F - lsh            # equivalently: the result LSB is mag bit r
        field - hidden = cap - lsh   # biased exponent field minus the hidden bit

    (For a normal result the leading one lands on ``T`` and ``field = cap - lsh + 1``; for a
    subnormal one ``lsh = cap``, the bit on ``T`` is 0 and ``field = 0``.)

:class:`Rounder` (round to nearest even, specials)
    A narrow right shifter extracts ``q = mag[r : r+F+1]`` and the guard bit ``mag[r-1]``;
    the bits it shifts out below the guard bit, ORed level by level, are the sticky bit
    (no wide mask or trailing-zero count needed). The rounded pattern is
    ``((field - hidden) << F) + q + inc`` with ``inc = guard & (sticky | q[0])``:
    a carry out of the significand walks into the exponent field on its own (which also
    turns the largest subnormal into the smallest normal), and a field that reaches all ones
    is an overflow to infinity. A nonzero sum that rounds to 0 keeps its sign. Then the
    specials (NaN, infinities, exact zero with the -0 rule) and ReLU override the number.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from contract import DotConfig

__all__ = ["LeadingOne", "Rounder", "count_leading_zeros", "finalizer_geometry", "select_result"]


def count_leading_zeros(m, value, name):
    """Log-depth leading-zero counter. Returns ``(zero, count)``: ``zero`` is set when
    ``value`` is 0 (``count`` is then meaningless). Every tree node is a named signal (the
    simulator would otherwise copy shared subexpressions once per use)."""
    width = len(value)
    size = 1 << max(1, (width - 1).bit_length())
    padded = Signal(size, name=f"{name}_in")
    m.d.comb += padded.eq(Cat(Const(0, size - width), value))  # zeros below the LSB: same count

    def tree(bits, path):
        z = Signal(name=f"{name}_z{path}")
        if len(bits) == 2:
            m.d.comb += z.eq(~(bits[0] | bits[1]))
            return z, ~bits[1]
        half = len(bits) // 2
        z_lo, c_lo = tree(bits[:half], path + "0")
        z_hi, c_hi = tree(bits[half:], path + "1")
        c = Signal(len(c_lo) + 1, name=f"{name}_c{path}")
        m.d.comb += [z.eq(z_lo & z_hi), c.eq(Cat(Mux(z_hi, c_lo, c_hi), z_hi))]
        return z, c

    return tree(padded, "")


def finalizer_geometry(config):
    """Constants of the finalizer: ``dict`` with ``T`` (top magnitude bit), ``cap_base``
    (``cap = cap_base + e0``), ``cap_max`` and ``r_max``."""
    top = config.acc_width - 2
    frac = config.out_fmt.frac_bits
    cap_base = top - frac - config.bias_shift_base
    assert cap_base + config.e0_min >= 0
    return {"T": top, "cap_base": cap_base, "cap_max": cap_base + config.e0_max,
            "r_max": top - frac}


def _check_config(config):
    if not isinstance(config, DotConfig):
        raise TypeError(f"config must be a DotConfig, not {config!r}")


class LeadingOne(wiring.Component):
    """Sign/magnitude, leading-one detection and the subnormal-limited exponent.

    Members
    -------
    total : In(signed(acc_width)); e0 : In(signed(e0_bits))
    sign, zero : Out(1)
        Sign of the sum; the sum is exactly 0.
    mag : Out(unsigned(acc_width - 1))
    shift : Out
        ``r``: the result LSB is ``mag`` bit ``r``.
    field_m1 : Out
        Biased exponent field minus the hidden bit (before rounding).
    """

    def __init__(self, *, config):
        _check_config(config)
        self._config = config
        self._geo = geo = finalizer_geometry(config)
        super().__init__({
            "total": In(signed(config.acc_width)),
            "e0": In(signed(config.e0_bits)),
            "sign": Out(1),
            "zero": Out(1),
            "mag": Out(unsigned(config.acc_width - 1)),
            "shift": Out(unsigned(geo["r_max"].bit_length())),
            "field_m1": Out(unsigned(geo["cap_max"].bit_length())),
        })

    def elaborate(self, platform):
        m = Module()
        geo = self._geo
        width = self._config.acc_width
        frac = self._config.out_fmt.frac_bits
        total = self.total
        sign = total[width - 1]
        mag = Signal(width - 1)
        m.d.comb += mag.eq(Mux(sign, -total, total))
        zero, lz = count_leading_zeros(m, mag, "lz")
        cap_bits = max(geo["cap_max"].bit_length(), len(lz))
        cap = Signal(cap_bits)
        m.d.comb += cap.eq(geo["cap_base"] + self.e0)  # >= 0 for e0 in [e0_min, e0_max]
        lsh = Mux(lz < cap, lz, cap)
        r = (geo["T"] - frac - lsh)[:len(self.shift)]
        m.d.comb += [
            self.sign.eq(sign),
            self.zero.eq(zero),
            self.mag.eq(mag),
            self.shift.eq(r),
            self.field_m1.eq(cap - lsh),
        ]
        return m


class Rounder(wiring.Component):
    """Round to nearest even, overflow, specials and ReLU; produces the output bits.

    Members
    -------
    sign, zero, mag, shift, field_m1 : In
        From :class:`LeadingOne`.
    nan, pinf, ninf, neg0, relu : In(1)
        Dot-product flags: some NaN term; some +inf / -inf term; every term is -0; ReLU.
    bits : Out(unsigned(out_fmt.width))
    """

    def __init__(self, *, config):
        _check_config(config)
        self._config = config
        geo = finalizer_geometry(config)
        super().__init__({
            "sign": In(1),
            "zero": In(1),
            "mag": In(unsigned(config.acc_width - 1)),
            "shift": In(unsigned(geo["r_max"].bit_length())),
            "field_m1": In(unsigned(geo["cap_max"].bit_length())),
            "nan": In(1),
            "pinf": In(1),
            "ninf": In(1),
            "neg0": In(1),
            "relu": In(1),
            "bits": Out(unsigned(config.out_fmt.width)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt = self._config.out_fmt
        frac = fmt.frac_bits
        keep = frac + 2                                  # guard + F + 1 significand bits
        # Narrow right shifter: window = (mag << 1) >> r, bit 0 = guard bit mag[r-1]. Levels go
        # from the largest step down; after the step 2**k only keep + 2**k - 1 bits can still
        # reach the window, and the 2**k bits a taken step drops are all below the guard bit.
        window = Cat(Const(0, 1), self.mag)
        dropped = []
        for k in reversed(range(len(self.shift))):
            step = 1 << k
            dropped.append(self.shift[k] & window[:step].any())
            shifted = Mux(self.shift[k], window >> step, window)
            window = Signal(min(len(shifted), keep + step - 1), name=f"window{k}")
            m.d.comb += window.eq(shifted)
        sticky = Cat(*dropped).any()
        guard = window[0]
        q = window[1:keep]
        inc = guard & (sticky | q[0])
        packed = Cat(q[:frac], self.field_m1 + q[frac]) + inc
        overflow = (packed >> frac) >= fmt.exp_max_field
        number = Mux(overflow, fmt.pos_inf, packed[:fmt.width - 1])
        result = Cat(number[:fmt.width - 1], self.sign)
        m.d.comb += self.bits.eq(select_result(
            m, fmt, nan=self.nan, pinf=self.pinf, ninf=self.ninf, zero=self.zero,
            neg0=self.neg0, number=result, relu=self.relu))
        return m


def select_result(m, fmt, *, nan, pinf, ninf, zero, neg0, number, relu):
    """The contract's result bits (combinational, added to ``m``): canonical NaN for a NaN term
    or +inf and -inf together, else the infinity, else the signed zero of an exact zero sum
    (``neg0``: every term was -0), else ``number`` (the rounded finite result); then ReLU, which
    turns any set sign bit (negative numbers, -0, -inf) into +0 (NaN has sign 0)."""
    bits = Signal(fmt.width)
    with m.If(nan | (pinf & ninf)):
        m.d.comb += bits.eq(fmt.canonical_nan)
    with m.Elif(pinf):
        m.d.comb += bits.eq(fmt.pos_inf)
    with m.Elif(ninf):
        m.d.comb += bits.eq(fmt.neg_inf)
    with m.Elif(zero):
        m.d.comb += bits.eq(Mux(neg0, fmt.sign_mask, 0))
    with m.Else():
        m.d.comb += bits.eq(number)
    return Mux(relu & bits[fmt.width - 1], 0, bits)
