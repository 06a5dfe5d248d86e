"""INT8 x INT8 -> INT32 MAC baselines: a pipelined PE and an output-stationary array.

A PE registers its operands, multiplies them (a device multiplier block where synthesis maps
``*``; with ``mult="lut"`` partial products summed by LUT adders, :mod:`boards.lutmul`; with
``mult="mult18x18d"`` an ECP5 MULT18X18D whose own input and output registers are the operand
and product registers, :mod:`boards.mult18x18d`), registers the 16-bit product and adds it
into a 32-bit accumulator (two's complement, wrapping modulo ``2**32``). The integer loop
closes in one clock, so no interleaving is needed.

:class:`IntMacArray` has the streaming interface of :class:`boards.baselines.MacArray`: each
beat carries ``rows`` activations and ``cols`` weights (signed 8-bit), PE ``(r, c)`` accumulates
``x[r] * w[c]``; the operands reach the PEs through input register copies (one per
:data:`boards.fanout.SHARE` PEs of the row or column); the beat with ``last`` ends the dot
products, whose sums move into a shadow chain and drain one per clock (row-major) into a small
output FIFO while the next dot products run (capture and shift decided a clock ahead and
registered in copies per :data:`boards.fanout.SHARE` PEs; nothing waits on ``o.ready``).
The pipeline has no enable: a clock without a beat sends zero operands. One MAC per PE per
clock; a dot product shorter than ``rows * cols`` beats waits for the drain.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from boards.fanout import SHARE, copies, copy_of
from boards.lutmul import lut_multiply
from boards.mult18x18d import WIDTH as BLOCK_WIDTH
from boards.mult18x18d import Mult18x18d

__all__ = ["IntMacPE", "IntMacArray", "int_top", "int_name", "int_design"]

MULTIPLIERS = ("dsp", "lut", "mult18x18d")

#: Advances from a PE's operand inputs to its accumulator (operand, product, accumulator).
PE_DEPTH = 3

#: Entries of an array's output FIFO (the shadow chain drains into it).
OUTPUT_FIFO = 4


def _check_mult(mult):
    if mult not in MULTIPLIERS:
        raise ValueError(f"mult must be one of {', '.join(MULTIPLIERS)}, not {mult!r}")


class IntMacPE(wiring.Component):
    """One INT8 MAC: ``acc <- (first ? 0 : acc) + a * b``, operands in, sum out three
    advances later (operand registers, product register, accumulator).

    Members
    -------
    en : In(1)
        Pipeline advance.
    a, b : In(signed(8))
    first : In(1)
        With the operands: this product starts a new sum.
    acc : Out(signed(32))
    """

    def __init__(self, *, mult="dsp"):
        _check_mult(mult)
        self._mult = mult
        super().__init__({"en": In(1), "a": In(signed(8)), "b": In(signed(8)),
                          "first": In(1), "acc": Out(signed(32))})

    @property
    def macs_per_cycle(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        en = self.en
        # datapath registers: no reset (the array flushes them before they count)
        a, b = Signal(signed(8), reset_less=True), Signal(signed(8), reset_less=True)
        first1, first2 = Signal(reset_less=True), Signal(reset_less=True)
        prod = Signal(signed(16), reset_less=True)
        acc = Signal(signed(32), reset_less=True)
        if self._mult == "mult18x18d":
            # unsigned 18 x 18 of the sign-extended operands: its low 16 bits are a * b
            m.submodules.block = block = Mult18x18d(a_width=BLOCK_WIDTH, b_width=BLOCK_WIDTH)
            m.d.comb += [block.en.eq(en), block.a.eq(self.a.as_signed()),
                         block.b.eq(self.b.as_signed()), prod.eq(block.p[:16])]
        else:
            if self._mult == "dsp":
                p = a * b
            else:
                p = lut_multiply(m, a.as_unsigned(), b.as_unsigned(), signed=True).as_signed()
            with m.If(en):
                m.d.sync += [a.eq(self.a), b.eq(self.b), prod.eq(p)]
        with m.If(en):
            m.d.sync += [first1.eq(self.first), first2.eq(first1),
                         acc.eq(Mux(first2, 0, acc) + prod)]
        m.d.comb += self.acc.eq(acc)
        return m


class IntMacArray(wiring.Component):
    """A ``rows x cols`` INT8 MAC array (see the module docstring).

    ``dsps``: how many PEs (the first ones, row-major) use a multiplier block with
    ``mult="dsp"`` or ``"mult18x18d"``; the others use LUT multipliers. Default: all of them.

    Members
    -------
    i : In(stream.Signature(StructLayout({x, w, last})))
    o : Out(stream.Signature(unsigned(32)))
    """

    def __init__(self, *, rows, cols, mult="dsp", dsps=None):
        for name, v in (("rows", rows), ("cols", cols)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if not 1 <= v <= 64:
                raise ValueError(f"{name} must be in [1, 64], not {v}")
        _check_mult(mult)
        n = rows * cols
        if dsps is None:
            dsps = n if mult != "lut" else 0
        if not isinstance(dsps, int) or isinstance(dsps, bool) or dsps < 0:
            raise ValueError(f"dsps must be a non-negative integer, not {dsps!r}")
        self._rows, self._cols = rows, cols
        self._dsps = min(dsps, n) if mult != "lut" else 0
        self._mult = mult
        layout = data.StructLayout({"x": data.ArrayLayout(signed(8), rows),
                                    "w": data.ArrayLayout(signed(8), cols),
                                    "last": unsigned(1)})
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(unsigned(32)))})

    @property
    def macs_per_cycle(self):
        return self._rows * self._cols

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols
        n = rows * cols
        # The pipeline has no enable: a clock without a beat sends zero operands (a bubble,
        # adding 0). A finished sum waits in the accumulators (under bubbles) while the shadow
        # chain still drains the previous one: a dot product's end enters only when no other
        # end is under way, and a beat behind an end only when that end will be captured as it
        # arrives (the chain is empty).
        first = Signal(init=1)
        lasts = [Signal(name=f"last{k}") for k in range(1 + PE_DEPTH)]
        hold = Signal()                   # a finished sum waits in the accumulators
        shadow = [Signal(32, name=f"shadow{j}", reset_less=True) for j in range(n)]
        pending = Signal(range(n + 1))
        ending = Cat(*lasts, hold).any()
        m.d.comb += self.i.ready.eq(~hold & ~(ending & ((pending != 0) | self.i.payload.last)))
        accept = self.i.valid & self.i.ready
        m.d.sync += lasts[0].eq(accept & self.i.payload.last)
        m.d.sync += [lasts[i].eq(lasts[i - 1]) for i in range(1, len(lasts))]
        with m.If(accept):
            m.d.sync += first.eq(self.i.payload.last)
        # The shadow chain's capture and shift are decided a clock ahead, from registers only
        # (the chain moves into the output FIFO when it has room, never on o.ready), and
        # reach the shadow registers through copies.
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=32, depth=OUTPUT_FIFO)
        capture, shift = Signal(), Signal()
        hold_next = Mux(capture, 0, Mux(lasts[-1], 1, hold))
        pending_next = Mux(capture, n, pending - shift)
        capture_next = (lasts[-2] | hold_next) & (pending_next == 0)
        shift_next = (pending_next != 0) & (fifo.level + shift < OUTPUT_FIFO)
        m.d.sync += [capture.eq(capture_next), shift.eq(shift_next), hold.eq(hold_next),
                     pending.eq(pending_next)]
        captures = copies(m, capture_next, -(-n // SHARE), "capture", reset_less=True)
        shifts = copies(m, shift_next, -(-n // SHARE), "shift", reset_less=True)
        # input registers: one copy per SHARE PEs of the row or column (0 for bubbles)
        xs = [copies(m, Mux(accept, self.i.payload.x[r], 0), -(-cols // SHARE), f"x{r}",
                     reset_less=True)
              for r in range(rows)]
        ws = [copies(m, Mux(accept, self.i.payload.w[c], 0), -(-rows // SHARE), f"w{c}",
                     reset_less=True)
              for c in range(cols)]
        firsts = copies(m, accept & first, -(-n // SHARE), "first", reset_less=True)
        for r in range(rows):
            for c in range(cols):
                j = r * cols + c
                m.submodules[f"pe_{r}_{c}"] = pe = IntMacPE(
                    mult=self._mult if j < self._dsps else "lut")
                m.d.comb += [pe.en.eq(1), pe.first.eq(copy_of(firsts, j)),
                             pe.a.eq(copy_of(xs[r], c)), pe.b.eq(copy_of(ws[c], r))]
                with m.If(copy_of(captures, j)):
                    m.d.sync += shadow[j].eq(pe.acc)
                with m.Elif(copy_of(shifts, j)):
                    m.d.sync += shadow[j].eq(shadow[j + 1] if j + 1 < n else 0)
        m.d.comb += [fifo.w_en.eq(shift), fifo.w_data.eq(shadow[0]),
                     self.o.valid.eq(fifo.r_rdy), self.o.payload.eq(fifo.r_data),
                     fifo.r_en.eq(self.o.ready)]
        return m


def int_top(spec: dict) -> wiring.Component:
    """The component of ``{"kind": "int8-pe", "mult"}`` or ``{"kind": "int8-array", "rows",
    "cols", "mult", "dsps"}``."""
    kind, mult = spec.get("kind"), spec.get("mult", "dsp")
    if kind == "int8-pe":
        return IntMacPE(mult=mult)
    if kind == "int8-array":
        return IntMacArray(rows=spec.get("rows", 4), cols=spec.get("cols", 4), mult=mult,
                           dsps=spec.get("dsps"))
    raise ValueError(f"unknown int8 design kind {kind!r}; expected int8-pe or int8-array")


def int_name(spec: dict) -> str:
    """Filesystem-safe name of an int8 spec (:func:`int_top`)."""
    mult = spec.get("mult", "dsp")
    if spec.get("kind") == "int8-pe":
        return f"int8pe_{mult}"
    dsps = "" if spec.get("dsps") is None else f"_d{spec['dsps']}"
    return f"int8_{mult}_{spec.get('rows', 4)}x{spec.get('cols', 4)}{dsps}"


def int_design(spec: dict):
    """A :class:`boards.design.Design` (top ``densehw_baseline``) of an int8 spec
    (:func:`int_top`)."""
    from boards.baselines import baseline_design

    return baseline_design(spec)
