"""One lane's exact sum rounded to an output float: a study for small FPGAs.

**Not used by the array.** It completes the :mod:`binlane` study: a column's
:class:`bincombine.BinCombiner` gives a lane's exact sum as ``out_total * 2**out_lsb`` in
units of the lane's bins, and the columns of a grid would share one :class:`BinRounder` that
turns such sums into output float bits, one per clock.

Contract (keyword parameters ``total_bits``, default 81; ``lsb_range``, default ``(-63, 63)``;
``e0_range``, default ``(-8, 7)``, both inclusive; ``offset``, default -25; ``out_fmt``, default
``"fp16"``, a name or format that :func:`contract.get_format` accepts; every port sampled at the
clock):

* In a clock with ``valid`` high, ``total`` (``signed(total_bits)``), ``lsb`` and ``e0``
  (signed, wide enough for their ranges) stand for the exact value::

      V = total * 2**(lsb + e0 + offset)

  (An fp16 term in bin ``b``, its biased exponent field, 1 for subnormals, plus the weight's
  shift, is ``significand * 2**(b - 25) * 2**e0``: hence ``offset = -25`` for the combiner's
  ``out_total`` and ``out_lsb``.)
* ``V`` is rounded once to ``out_fmt``: round to nearest, ties to even, subnormal results,
  overflow to ``±inf``; a nonzero ``V`` that rounds to zero keeps its sign. An exact zero gives
  ``+0``, or ``-0`` when ``neg0`` is high (every term was ``-0``).
* The specials override the number: ``nan`` high, or ``pinf`` and ``ninf`` both high, give the
  canonical NaN (sign 0); else ``pinf`` gives ``+inf``; else ``ninf`` gives ``-inf``.
* Last, ``relu``: a result with its sign bit set (a negative number, ``-0``, ``-inf``) becomes
  ``+0``. These are the golden model's rules (:mod:`sw.golden`), bit for bit.
* The latency is :data:`LATENCY` (6) clocks: the inputs of clock ``t`` give ``out_valid`` high
  and their result on ``bits`` (``unsigned(out_fmt.width)``) in clock ``t + 6``. A new input
  may come in every clock; ``out_valid`` is ``valid`` delayed, and ``bits`` means something only
  while ``out_valid`` is high. There is no back-pressure.
* ``lsb`` or ``e0`` outside its range, and ``total == -2**(total_bits - 1)``, give an undefined
  result.

The cost is 435 LUT4s, 49 carries and 374 flip-flops for the defaults (Yosys ``synth_ice40``,
this component alone), and it runs at 54.1 to 59.7 MHz on the iCE40 UP5K (nextpnr, three seeds,
behind the flow's serial I/O harness). Six stages are what 50 MHz takes there: with three
(the magnitude, the leading zeros, the rest) it ran at 19 MHz.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from contract import FloatFormat, get_format
from hw.rounding import block_zeros, merge_zeros, select_result

__all__ = ["BinRounder", "LATENCY"]

#: Clocks from the inputs to ``out_valid`` and ``bits``.
LATENCY = 6

_BLOCK = 16         # bits per block of the leading-zero count's first stage


def _integer(name, value):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")


def _range(name, value):
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or any(not isinstance(v, int) or isinstance(v, bool) for v in value)):
        raise TypeError(f"{name} must be a pair of integers (low, high), not {value!r}")
    low, high = value
    if low > high:
        raise ValueError(f"{name} must be (low, high) with low <= high, not {value!r}")
    return low, high


def _signed_bits(low, high):
    """The narrowest signed width that holds every integer in ``[low, high]``."""
    return max((~low).bit_length() if low < 0 else 0, high.bit_length()) + 1


class BinRounder(wiring.Component):
    """``total * 2**(lsb + e0 + offset)`` rounded to ``out_fmt``, then the specials and ReLU;
    the contract is the module's (:mod:`binround`).

    Ports: ``valid``, ``total``, ``lsb``, ``e0``, ``nan``, ``pinf``, ``ninf``, ``neg0``,
    ``relu`` in; ``out_valid`` and ``bits`` out, :data:`LATENCY` clocks later.

    The algorithm is :mod:`hw.rounding`'s (a leading-zero count, the exponent with the
    subnormal limit, a narrow right shifter that extracts the kept bits and the guard bit
    with the sticky bit ORed level by level), with two changes for the UP5K, whose 80-bit
    carry chain alone takes 37 ns: the magnitude is never formed (``x = total ^ sign`` is
    ``|total| - 1`` for a negative total; the final rounding adder adds the 1 back), and the
    overflow is known before that adder. Stages: 1 leading zeros per 16-bit block | 2 the
    count, ``c - lz`` | 3 shift amount, field, shifter levels 64 and 32 | 4 levels 16, 8, 4 |
    5 levels 2 and 1, the window of ``|total|``, the specials | 6 round and pack."""

    def __init__(self, *, total_bits=81, lsb_range=(-63, 63), e0_range=(-8, 7), offset=-25,
                 out_fmt="fp16"):
        _integer("total_bits", total_bits)
        if total_bits < 2:
            raise ValueError(f"total_bits must be at least 2, not {total_bits}")
        lsb_lo, lsb_hi = _range("lsb_range", lsb_range)
        e0_lo, e0_hi = _range("e0_range", e0_range)
        _integer("offset", offset)
        if not isinstance(out_fmt, (str, FloatFormat)):
            raise TypeError(f"out_fmt must be a format name or a FloatFormat, not {out_fmt!r}")
        try:
            fmt = get_format(out_fmt)
        except ValueError as exc:
            raise ValueError(f"out_fmt: {exc}") from None
        self._fmt = fmt
        # Geometry. x has W = total_bits - 1 bits; with lz its leading-zero count its leading
        # one is bit T - lz (T = W - 1) and weighs 2**(T - lz + lsb + e0 + offset). ``c`` is
        # the count at which that is 2**emin, the smallest normal binade:
        #     c = T + lsb + e0 + offset - emin
        # so the result is normal for lz <= c. The rounding window is read from
        # total << (F + 2) (F = out_fmt.frac_bits), whose bit W - min(lz, c) is the guard bit:
        # W - lz for a normal result, u = W - c (up to W - min(c) bits) for a subnormal one.
        self._width = width = total_bits - 1
        c_base = width - 1 + offset - fmt.emin
        c_lo, c_hi = lsb_lo + e0_lo + c_base, lsb_hi + e0_hi + c_base
        self._c_base, self._c_bits = c_base, _signed_bits(c_lo, c_hi)
        self._u_base, self._u_bits = width - c_base, _signed_bits(width - c_hi, width - c_lo)
        self._d_bits = _signed_bits(c_lo - width, max(c_hi, 0))
        shift_max = width - min(c_lo, 0)
        self._shift_bits = shift_max.bit_length()
        # the sign bits above total's that the window's top bit can reach
        self._ext = max(0, shift_max - width - 1)
        super().__init__({
            "valid": In(1),
            "total": In(signed(total_bits)),
            "lsb": In(signed(_signed_bits(lsb_lo, lsb_hi))),
            "e0": In(signed(_signed_bits(e0_lo, e0_hi))),
            "nan": In(1), "pinf": In(1), "ninf": In(1), "neg0": In(1), "relu": In(1),
            "out_valid": Out(1),
            "bits": Out(fmt.width),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, width = self._fmt, self._width
        # the window: the guard bit and the fraction's F bits (the hidden bit is in the field)
        frac, keep = fmt.frac_bits, fmt.frac_bits + 1
        shift_bits = self._shift_bits

        def reg(name, value, shape=None):
            r = Signal(len(value) if shape is None else shape, name=name, reset_less=True)
            m.d.sync += r.eq(value)
            return r

        # -- stage 1: leading zeros of x per block; the exponent sums ---------------------------
        # x = total ^ sign is |total| for total >= 0 and |total| - 1 below: no 80-bit negation.
        # A 1 appended below x's LSB makes x == 0 (total 0 or -1) count W zeros: its leading
        # one is then bit -1, where |total| == 1 has it once the 1 is added back.
        sign = self.total[width]
        x = Cat(Const(1, 1), self.total[:width] ^ sign.replicate(width))
        blocks = -(-len(x) // _BLOCK)
        pad = blocks * _BLOCK - len(x)
        x = Cat(Const(0, pad), x)
        found = block_zeros(m, x, "lz", block=_BLOCK)           # block 0 is the top one
        nzs = [reg(f"s1_nz{k}", nz) for k, (nz, _) in enumerate(found)]
        counts = [reg(f"s1_count{k}", count) for k, (_, count) in enumerate(found)]
        s1_c = reg("s1_c", self.lsb + self.e0 + self._c_base, signed(self._c_bits))
        s1_u = reg("s1_u", self._u_base - self.lsb - self.e0, signed(self._u_bits))
        s1_total = reg("s1_total", self.total)
        s1_flags = reg("s1_flags", Cat(self.nan, self.pinf, self.ninf, self.neg0, self.relu))

        # -- stage 2: lz from the blocks; d = c - lz --------------------------------------------
        _, lz = merge_zeros(list(zip(nzs, counts, strict=True)), block=_BLOCK)
        d = Signal(signed(self._d_bits))
        m.d.comb += d.eq(s1_c - lz)
        s2_d = reg("s2_d", d, d.shape())
        s2_wl = reg("s2_wl", (width - lz)[:shift_bits])
        s2_u = reg("s2_u", s1_u[:shift_bits])
        s2_total = reg("s2_total", s1_total)
        s2_flags = reg("s2_flags", s1_flags)
        # total == 0: total >= 0 and every block of x zero but for the appended 1
        s2_zero = reg("s2_zero", ~s1_total[width] & ~Cat(*nzs[:-1]).any()
                      & (counts[-1] == _BLOCK - 1 - pad))

        # -- stage 3: the shift amount, the exponent field; shifter levels ----------------------
        # d >= 0: a normal result, x's leading one its hidden bit, its field d + 1 before any
        # carry out of the significand; d < 0: a subnormal result (field 0), the window at the
        # subnormal LSB. A field of all ones or more (``full``) is an overflow; all ones less
        # one and a carry out of the significand give all ones and a zero fraction: the
        # pattern of infinity already.
        normal = ~s2_d[-1]
        full = s2_d >= fmt.exp_max_field - 1
        field = Signal(fmt.exp_bits)                          # any value when ``full``
        m.d.comb += field.eq(Mux(normal, s2_d + 1, 0))
        shift = Signal(shift_bits)
        m.d.comb += shift.eq(Mux(normal, s2_wl, s2_u))
        sign = s2_total[width]
        # the window: total << (F + 2) in two's complement, sign-extended as far as a shift
        # can reach; its bit ``shift`` is the guard bit
        window = Cat(Const(0, frac + 2), s2_total[:width], sign.replicate(self._ext))
        levels = list(reversed(range(shift_bits)))
        window, sticky = _shift_right(m, window, shift, levels[:2], keep, Const(0, 1))
        s3_window, s3_sticky, s3_shift = (reg("s3_window", window), reg("s3_sticky", sticky),
                                          reg("s3_shift", shift))
        s3_meta = reg("s3_meta", Cat(field, full, sign, s2_zero, s2_flags))

        # -- stage 4: shifter levels ------------------------------------------------------------
        window, sticky = _shift_right(m, s3_window, s3_shift, levels[2:5], keep, s3_sticky)
        s4_window, s4_sticky, s4_shift = (reg("s4_window", window), reg("s4_sticky", sticky),
                                          reg("s4_shift", s3_shift))
        s4_meta = reg("s4_meta", s3_meta)

        # -- stage 5: the last levels; the window of |total|; the specials ----------------------
        # w is total's window (w[0] the guard bit), sticky: some bit of total below it is 1
        # (the same bits of |total| then are nonzero too). For total < 0 |total| = ~total + 1,
        # whose window is ~w + 1 when no bit below is 1 (the 1 carries up into the window),
        # else ~w. The rounding adds that ``carry`` in the same adder as its own 1.
        n = len(field)
        field = s4_meta[:n]
        full, sign, zero, nan, pinf, ninf, neg0, relu = s4_meta[n:]
        w, sticky = _shift_right(m, s4_window, s4_shift, levels[5:], keep, s4_sticky)
        carry = sign & ~sticky
        s5_v = reg("s5_v", w ^ sign.replicate(keep))
        s5_addend = reg("s5_addend", Cat(~carry, carry))       # 1 + carry
        s5_tie = reg("s5_tie", w[0] & ~sticky)                 # guard bit of |total|: w[0]
        s5_field, s5_sign = reg("s5_field", field), reg("s5_sign", sign)
        # the results not taken from the rounded number: specials, exact zeros, overflows
        # (±inf), ReLU of a negative number (+0)
        s5_force = reg("s5_force", nan | pinf | ninf | zero | full | (relu & sign))
        s5_forced = reg("s5_forced", select_result(
            m, fmt, nan=nan, pinf=pinf, ninf=ninf, zero=zero, neg0=neg0,
            number=Mux(full, Cat(Const(fmt.pos_inf, fmt.width - 1), sign), 0), relu=relu))

        # -- stage 6: round and pack ------------------------------------------------------------
        # With A the window of |total| (A[0] the guard bit), round to nearest even is
        # (A + 1) >> 1 with its LSB cleared on a tie (A[0] set, nothing below). A + 1 is
        # v + 1 + carry, v being x's window; its hidden bit is in ``field`` already, so one
        # adder gives the packed result: a carry out of the significand walks into the field
        # (the largest subnormal becomes the smallest normal, a binade's largest significand
        # the next binade's smallest). A nonzero total that rounds to 0 keeps its sign.
        summed = Signal(fmt.width)
        m.d.comb += summed.eq(Cat(s5_v, s5_field) + s5_addend)
        number = Cat(summed[1] & ~s5_tie, summed[2:], s5_sign)
        m.d.sync += self.bits.eq(Mux(s5_force, s5_forced, number))

        valid = self.valid
        for i in range(LATENCY):
            r = Signal(name=f"valid{i + 1}")
            m.d.sync += r.eq(valid)
            valid = r
        m.d.comb += self.out_valid.eq(valid)
        return m


def _shift_right(m, window, shift, levels, keep, sticky):
    """Levels ``levels`` (bits of ``shift``, highest first) of the narrow right shifter; returns
    the window and the sticky bit (``sticky`` ORed with every bit shifted out). Once the steps
    from 2**k up are taken, only ``keep + 2**k - 1`` bits can still reach the final ``keep``-bit
    window, so the window narrows level by level; the 2**k bits a taken step drops all lie
    below the final window's bit 0 (the guard bit)."""
    source, taken, dropped = window, [], [sticky]
    for k in levels:
        step, take = 1 << k, shift[k]
        # the dropped bits' OR from the stage's input bits, chosen by the steps taken before
        # (an OR of the multiplexers' outputs would come after their depth)
        dropped.append(take & _any_after(source, taken, 0, step))
        taken.append((take, step))
        shifted = Mux(take, window[step:] if step < len(window) else 0, window)
        window = Signal(min(len(window), keep + step - 1), name=f"window{k}")
        m.d.comb += window.eq(shifted)
    out = Signal(name=f"sticky{levels[-1]}" if levels else "sticky")
    m.d.comb += out.eq(Cat(*dropped).any())
    return window, out


def _any_after(source, taken, lo, hi):
    """Whether bits ``[lo, hi)`` of ``source`` shifted right by the steps ``taken`` ((take,
    step) pairs, in order) hold a 1."""
    if not taken:
        return source[lo:hi].any() if lo < len(source) else Const(0, 1)
    (take, step), rest = taken[-1], taken[:-1]
    return Mux(take, _any_after(source, rest, lo + step, hi + step),
               _any_after(source, rest, lo, hi))
