"""The multiply half of the floating-point MAC baselines: operand unpacking and the exact product.

* :class:`Unpack` (two pipeline stages) decodes one IEEE operand and normalises a subnormal
  significand (leading-zero count, left shift), so that every finite nonzero operand reaches the
  multiplier as ``m * 2**(e - F)`` with ``m`` in ``[2**F, 2**(F+1))``. In an array one unpacker
  serves a whole row (activations) or column (weights).
* :class:`Product` (``stages`` pipeline stages) multiplies two unpacked operands exactly: a
  ``2(F+1)``-bit significand product (on the device's multiplier block where synthesis maps
  ``*``; with ``mult="lut"`` as an explicit LUT adder tree; with ``mult="mult18x18d"`` on an
  ECP5 MULT18X18D and its own registers), the exponent sum and the special-value flags.
  Its output is the addend of :class:`boards.fpadd.FmaAdd`.

Every register of both components is enabled by ``en`` (the pipeline advances when it is 1)
and has no reset (datapath: what it holds after reset is flushed before it counts).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from boards.lutmul import lut_multiply
from boards.mult18x18d import LATENCY as BLOCK_LATENCY
from boards.mult18x18d import Mult18x18d
from contract import FloatFormat, get_format

__all__ = ["operand_layout", "addend_layout", "leading_zeros", "Unpack", "Product",
           "product_exponent_range", "MULTIPLIERS"]

MULTIPLIERS = ("dsp", "lut", "mult18x18d")


def _signed_for(lo: int, hi: int):
    """The narrowest signed shape holding ``lo .. hi``."""
    return signed(max(abs(lo).bit_length(), abs(hi).bit_length()) + 1)


def _exp_range(fmt: FloatFormat):
    """Unbiased exponent of the leading significand bit of a normalised finite operand."""
    emin, emax = 1 - fmt.bias, fmt.bias
    return emin - fmt.frac_bits, emax


def product_exponent_range(fmt: FloatFormat, bias: int = 0):
    """``e`` (exponent of the top bit of the ``2p``-bit product, plus ``bias``) over all
    operands."""
    lo, hi = _exp_range(fmt)
    return 2 * lo + 1 + bias, 2 * hi + 1 + bias


def operand_layout(fmt) -> data.StructLayout:
    """An unpacked operand: ``m`` normalised significand (0 for zeros), ``e`` unbiased exponent
    of its top bit, sign and class bits (``inf``, ``nan`` leave ``m`` and ``e`` undefined)."""
    fmt = get_format(fmt)
    return data.StructLayout({
        "m": unsigned(fmt.frac_bits + 1),
        "e": _signed_for(*_exp_range(fmt)),
        "sign": 1, "zero": 1, "inf": 1, "nan": 1,
    })


def addend_layout(width: int, e_lo: int, e_hi: int) -> data.StructLayout:
    """An exact addend ``(-1)**sign * m * 2**(e - bias - width + 1)`` for the accumulation
    format's ``bias``: ``e`` is the biased exponent of the top bit of the ``width``-bit ``m``
    (``m`` may have leading zeros; 0 when ``zero``), with the class bits of the value
    (``inf``/``nan`` leave ``m`` and ``e`` undefined)."""
    return data.StructLayout({
        "m": unsigned(width), "e": _signed_for(e_lo, e_hi),
        "sign": 1, "zero": 1, "inf": 1, "nan": 1,
    })


def leading_zeros(value):
    """Number of leading zero bits of ``value`` (``len(value)`` when it is 0), as a tree of
    2:1 choices (depth ``log2``)."""
    n = len(value)
    size = 1 << max(0, (n - 1).bit_length())
    if size > n:                                 # pad below with a one: an all-zero value
        value = Cat(Const(0, size - n - 1), Const(1, 1), value)   # then counts exactly n

    def tree(v):                                 # -> (all zero, count of the lower log2 bits)
        if len(v) == 1:
            return ~v[0], Const(0, 0)
        half = len(v) // 2
        zh, ch = tree(v[half:])
        zl, cl = tree(v[:half])
        return zh & zl, Cat(Mux(zh, cl, ch), zh)

    zero, count = tree(value)
    if size > n:
        return count
    return Mux(zero, n, count)


class Unpack(wiring.Component):
    """Decode and normalise one operand, two pipeline stages (fields and leading-zero count;
    normalising shift and exponent).

    Members
    -------
    en : In(1)
        Pipeline advance.
    x : In(unsigned(fmt.width))
        Raw operand bits, consumed in the clock ``en`` is 1.
    o : Out(operand_layout(fmt))
        The unpacked operand, two advances later.
    """

    def __init__(self, *, fmt="fp16"):
        self._fmt = get_format(fmt)
        super().__init__({"en": In(1), "x": In(unsigned(self._fmt.width)),
                          "o": Out(operand_layout(self._fmt))})

    def elaborate(self, platform):
        m = Module()
        fmt = self._fmt
        F, p = fmt.frac_bits, fmt.frac_bits + 1
        x = self.x
        exp, frac = x[F:fmt.width - 1], x[:F]
        normal = exp.any()
        special = exp == fmt.exp_max_field
        # stage 1: fields, classes, leading zeros of the significand (0 for normal numbers)
        sig1 = Signal(p, name="sig1", reset_less=True)
        lz1 = Signal(range(p + 1), name="lz1", reset_less=True)
        emax1 = Signal(range(fmt.exp_max_field + 1), name="ebase1", reset_less=True)
        cls1 = Signal(data.StructLayout({"sign": 1, "zero": 1, "inf": 1, "nan": 1}),
                      name="cls1", reset_less=True)
        out = Signal(self.o.shape(), name="out", reset_less=True)
        m.d.comb += self.o.eq(out)
        with m.If(self.en):
            m.d.sync += [
                sig1.eq(Cat(frac, normal)),
                lz1.eq(leading_zeros(Cat(frac, normal))),
                emax1.eq(Mux(normal, exp, 1)),
                cls1.sign.eq(x[-1]),
                cls1.zero.eq(~normal & ~frac.any()),
                cls1.inf.eq(special & ~frac.any()),
                cls1.nan.eq(special & frac.any()),
            ]
        # stage 2: normalising shift, exponent of the top bit
        with m.If(self.en):
            m.d.sync += [
                out.m.eq((sig1 << lz1)[:p]),
                out.e.eq(emax1 - fmt.bias - lz1),
                out.sign.eq(cls1.sign), out.zero.eq(cls1.zero),
                out.inf.eq(cls1.inf), out.nan.eq(cls1.nan),
            ]
        return m


class Product(wiring.Component):
    """The exact product of two unpacked operands, ``stages`` pipeline stages.

    ``mult``: where the significand product is formed: ``"dsp"`` (``*``, which synthesis maps
    onto the device's multiplier block, its registers in the fabric), ``"lut"`` (an explicit
    LUT adder tree) or ``"mult18x18d"`` (an ECP5 MULT18X18D with its own input and output
    registers, :class:`boards.mult18x18d.Mult18x18d`: ``stages`` at least 2). Every further
    stage is a register copy.

    Members
    -------
    en : In(1)
    a, b : In(operand_layout(fmt))
    o : Out(addend_layout(2 * (F + 1), *product_exponent_range(fmt, bias)))
        ``a * b`` exactly: sign, ``2(F+1)``-bit significand product, ``e = e_a + e_b + 1 +
        bias`` (``bias``: the accumulation format's);
        ``nan`` for a NaN operand or ``inf * 0``; ``inf`` for an infinite product; ``zero``
        for a zero product.
    """

    def __init__(self, *, fmt="fp16", mult="dsp", bias=15, stages=1):
        self._fmt = get_format(fmt)
        if mult not in MULTIPLIERS:
            raise ValueError(f"mult must be one of {', '.join(MULTIPLIERS)}, not {mult!r}")
        if not isinstance(bias, int) or isinstance(bias, bool):
            raise TypeError(f"bias must be an integer, not {bias!r}")
        if not isinstance(stages, int) or isinstance(stages, bool):
            raise TypeError(f"stages must be an integer, not {stages!r}")
        least = BLOCK_LATENCY if mult == "mult18x18d" else 1
        if stages < least:
            raise ValueError(f"stages must be at least {least} with mult={mult!r}, not {stages}")
        self._mult, self._bias, self._stages = mult, bias, stages
        p = self._fmt.frac_bits + 1
        layout = operand_layout(self._fmt)
        super().__init__({"en": In(1), "a": In(layout), "b": In(layout),
                          "o": Out(addend_layout(2 * p,
                                                 *product_exponent_range(self._fmt, bias)))})

    def elaborate(self, platform):
        m = Module()
        a, b = self.a, self.b

        def delayed(value, shape, n, name, reset_less=True):
            for i in range(n):
                reg = Signal(shape, name=f"{name}{i + 1}", reset_less=reset_less)
                with m.If(self.en):
                    m.d.sync += reg.eq(value)
                value = reg
            return value

        w = len(self.o.m)
        if self._mult == "mult18x18d":
            m.submodules.block = block = Mult18x18d(a_width=len(a.m), b_width=len(b.m))
            m.d.comb += [block.en.eq(self.en), block.a.eq(a.m), block.b.eq(b.m)]
            prod = delayed(block.p, w, self._stages - BLOCK_LATENCY, "prod")
        else:
            mul = (a.m * b.m) if self._mult == "dsp" else lut_multiply(m, a.m, b.m, name="pm")
            # with "dsp" the product registers have a reset: synth_ice40 -dsp absorbs them
            # into SB_MAC16, and with reset-less ones (an init value) it kept the init as the
            # product ("Driver-driver conflict"; boards.flow fails such a synthesis)
            prod = delayed(mul, w, self._stages, "prod", reset_less=self._mult != "dsp")
        # the exponent sum and the class bits (``m`` unused), through as many registers
        side = Signal(self.o.shape(), name="side0")
        nan = a.nan | b.nan | (a.inf & b.zero) | (a.zero & b.inf)
        inf = (a.inf | b.inf) & ~nan
        m.d.comb += [side.e.eq(a.e + b.e + (1 + self._bias)), side.sign.eq(a.sign ^ b.sign),
                     side.nan.eq(nan), side.inf.eq(inf),
                     side.zero.eq((a.zero | b.zero) & ~nan & ~inf)]
        side = delayed(side, self.o.shape(), self._stages, "side")
        m.d.comb += [self.o.eq(side), self.o.m.eq(prod)]
        return m
