"""Conventional MAC arrays, the baselines the shift array is measured against.

All baselines share one streaming interface (:class:`MacArray`): an output-stationary
``rows x cols`` grid of processing elements; each input beat carries ``rows`` activations and
``cols`` weights, PE ``(r, c)`` accumulates ``x[r] * w[c]``; the beat with ``last = 1`` ends the
dot products, the accumulators move into a shadow chain and drain one result per clock on ``o``
(row-major: ``(0, 0), (0, 1), ...``) while the next dot products start. One MAC per PE per clock.

Kinds (``arith``):

* ``"fp"``: IEEE-style multiply (mantissa multiplier; DSP blocks where synthesis maps them) and a
  one-cycle floating-point adder loop, both rounding to nearest even, in ``fmt`` (fp16, bf16 ...).
* ``"int8"``: signed 8 x 8 -> 32-bit integer MAC.
* ``"shift"``: DenseShift product ``x * (-1)**s * 2**(e0 + p)`` (exponent add, no multiplier)
  followed by the same naive floating-point adder loop: what an exact accumulator replaces.

These are honest conventional designs, not bit-exact to the DenseShift contract: subnormal inputs
and results are flushed to zero, infinities and NaNs are not handled (finite inputs that overflow
saturate to infinity), and every addition is rounded (the sum depends on the order). The
one-clock adder loop of ``"fp"`` and ``"shift"`` is what limits their clock.

:data:`BASELINES` also holds the competent baselines, built like a pipelined FPU and checked
bit for bit against SoftFloat: ``fma-pe`` / ``fma-array`` (:mod:`boards.fpmac`) and ``int8-pe``
/ ``int8-array`` (:mod:`boards.intmac`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract import FloatFormat, check_wbits, get_format
from hw.emit import to_verilog

from .design import Design
from .fpmac import fma_name, fma_top
from .intmac import int_name, int_top

__all__ = ["MacArray", "fp_mul", "fp_add", "shift_mul", "Baseline", "BASELINES",
           "baseline_array", "baseline_name", "baseline_design"]


# -- combinational floating-point operators (FTZ, round to nearest even) ----------------------

def _fields(v, fmt):
    f, e = fmt.frac_bits, fmt.exp_bits
    return v[f + e], v[f:f + e], v[:f]


def _pack(m, sign, exp, frac, zero, inf, fmt):
    """Result bits from a signed exponent and fraction, with flush-to-zero and saturation."""
    e_all = (1 << fmt.exp_bits) - 1
    out = Signal(fmt.width)
    with m.If(zero):
        m.d.comb += out.eq(Cat(Const(0, fmt.exp_bits + fmt.frac_bits), sign))
    with m.Elif(inf):
        m.d.comb += out.eq(Cat(Const(0, fmt.frac_bits), Const(e_all, fmt.exp_bits), sign))
    with m.Else():
        m.d.comb += out.eq(Cat(frac, exp[:fmt.exp_bits], sign))
    return out


def _round_pack(m, sign, exp, mant, guard, sticky, zero, fmt):
    """Round ``mant`` (``1.frac``, ``F+1`` bits) to nearest even with ``guard``/``sticky``."""
    F = fmt.frac_bits
    rnd = guard & (sticky | mant[0])
    mant_r = Signal(F + 2)
    m.d.comb += mant_r.eq(mant + rnd)
    exp2 = Signal(signed(fmt.exp_bits + 3))
    m.d.comb += exp2.eq(exp + mant_r[F + 1])
    frac = Mux(mant_r[F + 1], mant_r[1:F + 1], mant_r[:F])
    return _pack(m, sign, exp2, frac, zero | (exp2 <= 0),
                 exp2 >= (1 << fmt.exp_bits) - 1, fmt)


def fp_mul(m, a, b, fmt: FloatFormat):
    """``a * b`` in ``fmt``: sign xor, exponent add, ``(F+1) x (F+1)`` mantissa product."""
    F, bias = fmt.frac_bits, fmt.bias
    sa, ea, fa = _fields(a, fmt)
    sb, eb, fb = _fields(b, fmt)
    prod = Signal(2 * F + 2)
    m.d.comb += prod.eq(Cat(fa, 1) * Cat(fb, 1))
    top = prod[2 * F + 1]
    mant = Mux(top, prod[F + 1:2 * F + 2], prod[F:2 * F + 1])
    guard = Mux(top, prod[F], prod[F - 1])
    sticky = Mux(top, prod[:F].any(), prod[:F - 1].any() if F > 1 else 0)
    exp = Signal(signed(fmt.exp_bits + 3))
    m.d.comb += exp.eq(ea + eb - bias + top)
    return _round_pack(m, sa ^ sb, exp, mant, guard, sticky, (ea == 0) | (eb == 0), fmt)


def _leading_zeros(m, v, width):
    lz = Signal(range(width + 1), init=width)
    m.d.comb += lz.eq(width)
    for i in range(width):                   # the highest set bit assigns last and wins
        with m.If(v[i]):
            m.d.comb += lz.eq(width - 1 - i)
    return lz


def fp_add(m, a, b, fmt: FloatFormat):
    """``a + b`` in ``fmt``: swap, align with guard/round/sticky bits, add or subtract,
    normalise, round to nearest even."""
    E, F = fmt.exp_bits, fmt.frac_bits
    W = F + 4                                 # 1.frac + guard, round, sticky
    swap = b[:E + F] > a[:E + F]
    x, y = Mux(swap, b, a), Mux(swap, a, b)
    sx, ex, fx = _fields(x, fmt)
    sy, ey, fy = _fields(y, fmt)
    mx = Mux(ex == 0, 0, Cat(Const(0, 3), fx, Const(1, 1)))
    my = Mux(ey == 0, 0, Cat(Const(0, 3), fy, Const(1, 1)))
    d = Signal(E)
    m.d.comb += d.eq(ex - ey)
    dc = Signal(range(W + 2))
    m.d.comb += dc.eq(Mux(d > W, W + 1, d))
    shifted = Signal(W)
    m.d.comb += shifted.eq(my >> dc)
    sticky = Signal()
    m.d.comb += sticky.eq((shifted << dc)[:W] != my)
    aligned = Cat(shifted[0] | sticky, shifted[1:])
    s = Signal(W + 1)
    m.d.comb += s.eq(Mux(sx == sy, mx + aligned, mx - aligned))
    lz = _leading_zeros(m, s[:W], W)
    n = Signal(W)
    exp = Signal(signed(E + 3))
    with m.If(s[W]):
        m.d.comb += [n.eq(Cat(s[0] | s[1], s[2:W + 1])), exp.eq(ex + 1)]
    with m.Else():
        m.d.comb += [n.eq(s[:W] << lz), exp.eq(ex - lz)]
    return _round_pack(m, sx, exp, n[3:W], n[2], n[1] | n[0], s == 0, fmt)


def shift_mul(m, x, code, e0, fmt: FloatFormat, wbits: int):
    """DenseShift product ``x * (-1)**s * 2**(e0 + p)``: sign xor and exponent add only."""
    sx, ex, fx = _fields(x, fmt)
    s, p = code[wbits - 1], code[:wbits - 1]
    exp = Signal(signed(fmt.exp_bits + 8))
    m.d.comb += exp.eq(ex + e0 + p)
    return _pack(m, sx ^ s, exp, fx, (ex == 0) | (exp <= 0),
                 exp >= (1 << fmt.exp_bits) - 1, fmt)


# -- the array ------------------------------------------------------------------------------

class MacArray(wiring.Component):
    """A ``rows x cols`` output-stationary MAC array (see the module docstring).

    Members
    -------
    i : In(stream.Signature(StructLayout({x, w, last, e0})))
        ``x``: ``rows`` activations; ``w``: ``cols`` weights (``fmt`` bits, int8, or
        ``wbits``-bit DenseShift codes); ``e0``: signed 6-bit weight offset (``"shift"`` only,
        used on every beat); ``last``: this beat ends the dot products.
    o : Out(stream.Signature(out_width))
        Results, ``rows * cols`` beats per dot product, row-major.
    """

    def __init__(self, *, arith, rows, cols, fmt="fp16", wbits=3):
        if arith not in ("fp", "int8", "shift"):
            raise ValueError(f"arith must be 'fp', 'int8' or 'shift', not {arith!r}")
        for name, v in (("rows", rows), ("cols", cols)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if not 1 <= v <= 64:
                raise ValueError(f"{name} must be in [1, 64], not {v}")
        self._arith, self._rows, self._cols = arith, rows, cols
        self._fmt = get_format(fmt)
        self._wbits = check_wbits(wbits)
        if arith == "int8":
            xw, ww, ow = 8, 8, 32
        elif arith == "fp":
            xw = ww = ow = self._fmt.width
        else:
            xw, ww, ow = self._fmt.width, wbits, self._fmt.width
        self._out_width = ow
        layout = data.StructLayout({
            "x": data.ArrayLayout(unsigned(xw), rows),
            "w": data.ArrayLayout(unsigned(ww), cols),
            "last": unsigned(1),
            "e0": signed(6),
        })
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(unsigned(ow)))})

    @property
    def macs_per_cycle(self):
        return self._rows * self._cols

    def _product(self, m, x, w, e0):
        if self._arith == "int8":
            p = Signal(signed(16))
            m.d.comb += p.eq(x.as_signed() * w.as_signed())
            return p
        if self._arith == "fp":
            return fp_mul(m, x, w, self._fmt)
        return shift_mul(m, x, w, e0, self._fmt, self._wbits)

    def _add(self, m, acc, p):
        if self._arith == "int8":
            return (acc.as_signed() + p)[:32]
        return fp_add(m, acc, p, self._fmt)

    def elaborate(self, platform):
        m = Module()
        rows, cols, ow = self._rows, self._cols, self._out_width
        n = rows * cols
        # stage 1: products; stage 2: accumulate; shadow chain drains the finished sums
        p_valid, p_last = Signal(), Signal()
        first = Signal(init=1)
        shadow = [Signal(ow, name=f"shadow{j}") for j in range(n)]
        pending = Signal(range(n + 1))
        stall = p_valid & p_last & (pending != 0)
        m.d.comb += self.i.ready.eq(~stall)
        advance = ~stall
        e0 = self.i.payload.e0
        for r in range(rows):
            for c in range(cols):
                j = r * cols + c
                prod = self._product(m, self.i.payload.x[r], self.i.payload.w[c], e0)
                p_reg = Signal.like(prod, name=f"prod_{r}_{c}")
                acc = Signal(ow, name=f"acc_{r}_{c}")
                acc_in = Mux(first, 0, acc)
                total = self._add(m, acc_in, p_reg)
                with m.If(advance & self.i.valid):
                    m.d.sync += p_reg.eq(prod)
                with m.If(advance & p_valid):
                    m.d.sync += acc.eq(total)
                    with m.If(p_last):
                        m.d.sync += shadow[j].eq(total)
        with m.If(advance):
            m.d.sync += [p_valid.eq(self.i.valid), p_last.eq(self.i.payload.last)]
            with m.If(p_valid):
                m.d.sync += first.eq(p_last)
        m.d.comb += [self.o.valid.eq(pending != 0), self.o.payload.eq(shadow[0])]
        with m.If(self.o.valid & self.o.ready):
            for j in range(n - 1):
                m.d.sync += shadow[j].eq(shadow[j + 1])
            m.d.sync += pending.eq(pending - 1)
        with m.If(advance & p_valid & p_last):
            m.d.sync += pending.eq(n)
        return m


@dataclass(frozen=True)
class Baseline:
    """How to build one kind of baseline from its spec: ``build(spec)`` gives the component
    (with ``macs_per_cycle`` and the :class:`MacArray` streaming interface), ``name(spec)`` a
    filesystem-safe name."""

    build: Callable[[dict], wiring.Component]
    name: Callable[[dict], str]


def _dims(spec):
    return spec.get("rows", 4), spec.get("cols", 4)


#: The baselines by spec ``kind``; a new baseline is one more entry.
BASELINES: dict[str, Baseline] = {
    "fp-mac": Baseline(
        build=lambda s: MacArray(arith="fp", rows=_dims(s)[0], cols=_dims(s)[1],
                                 fmt=s.get("fmt", "fp16")),
        name=lambda s: f"fpmac_{s.get('fmt', 'fp16')}_{_dims(s)[0]}x{_dims(s)[1]}"),
    "int8-mac": Baseline(
        build=lambda s: MacArray(arith="int8", rows=_dims(s)[0], cols=_dims(s)[1]),
        name=lambda s: f"int8mac_{_dims(s)[0]}x{_dims(s)[1]}"),
    "shift-fpadd": Baseline(
        build=lambda s: MacArray(arith="shift", rows=_dims(s)[0], cols=_dims(s)[1],
                                 fmt=s.get("fmt", "fp16"), wbits=s.get("wbits", 3)),
        name=lambda s: (f"shiftfpadd_{s.get('fmt', 'fp16')}_b{s.get('wbits', 3)}"
                        f"_{_dims(s)[0]}x{_dims(s)[1]}")),
    # pipelined fused-MAC PEs and arrays (boards.fpmac), int8 MACs (boards.intmac)
    "fma-pe": Baseline(build=fma_top, name=fma_name),
    "fma-array": Baseline(build=fma_top, name=fma_name),
    "int8-pe": Baseline(build=int_top, name=int_name),
    "int8-array": Baseline(build=int_top, name=int_name),
}


def _baseline(spec: dict) -> Baseline:
    kind = spec.get("kind")
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline kind {kind!r}; expected one of "
                         f"{', '.join(BASELINES)}")
    return BASELINES[kind]


def baseline_array(spec: dict) -> wiring.Component:
    """The component a baseline spec describes (:data:`BASELINES`), e.g.
    ``{"kind": "fp-mac", "fmt", "rows", "cols"}``, ``{"kind": "int8-mac", "rows", "cols"}``,
    ``{"kind": "shift-fpadd", "fmt", "wbits", "rows", "cols"}``."""
    return _baseline(spec).build(spec)


def baseline_name(spec: dict) -> str:
    return _baseline(spec).name(spec)


def baseline_design(spec: dict) -> Design:
    """A :class:`boards.design.Design` (Verilog top ``densehw_baseline``) for a baseline spec."""
    top = baseline_array(spec)
    cfg = {k: spec[k] for k in sorted(spec)}
    return Design(name=baseline_name(spec), top="densehw_baseline",
                  verilog=to_verilog(top, name="densehw_baseline"),
                  config=cfg, macs_per_cycle=top.macs_per_cycle, kind=spec["kind"])
