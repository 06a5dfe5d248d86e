"""Floating-point MAC baselines built like a pipelined FPU: fused multiply-add PEs whose
accumulation loop is broken by interleaved partial sums, in an output-stationary array.

A PE (:class:`FmaCore`) multiplies exactly (:class:`boards.fpmul.Product`, one multiplier
block) and adds the product into an accumulator with one rounding (:class:`boards.fpadd.FmaAdd`,
``STAGES`` pipeline stages). The adder's output register feeds its own input, so the loop holds
``L = STAGES`` partial sums: beat ``k`` of a dot product updates partial sum ``k mod L`` and the
PE takes one MAC per clock. :mod:`boards.fpref` defines the result bit for bit (partial sums
start at ``-0``, dot products shorter than ``L`` are padded, the partial sums are added in the
order they were last written).

:class:`FmaArray` (``rows x cols`` PEs, the streaming interface of
:class:`boards.baselines.MacArray`): one :class:`boards.fpmul.Unpack` per row and per column,
whose operand reaches the PEs through register copies (one per :data:`boards.fanout.SHARE`
PEs of the row or column); a sequencer that starts the partial sums afresh, pads short dot
products and flushes the loop when the input pauses. The pipeline has no enable (no signal
fans out to every register): where the old beat would stall, the sequencer inserts idle beats
``-0 * +0``, a whole turn of the loop at a time (:class:`_Sequencer`). Per PE ``L`` capture
registers that take
the finished partial sums as the next dot product pushes them out of the loop; one
:class:`Reducer` (a further :class:`FmaAdd`) that adds each PE's ``L`` partial sums while the
next dot product runs and streams the results row-major. The capture registers form
``STAGES`` drain chains (PE ``p`` passes its values on to PE ``p - STAGES``), so the reducer
reads ``STAGES`` chain heads and no wire runs from every PE to one place; each PE's capture
registers load when a register of its own says so (a capture, or its chain's shift, decided a
clock ahead). The reducer works
through the PEs in groups of ``STAGES`` (its adder's depth), so it needs no storage beyond
that adder, and takes ``L * STAGES * ceil(rows * cols / STAGES)`` clocks per dot product
(about ``L`` per result): shorter dot products wait for it. Arrays of up to 64 x 64 PEs.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from boards.fanout import SHARE, copies, copy_of
from boards.fpadd import STAGES, FmaAdd, acc_addend_range
from boards.fpmul import (
    MULTIPLIERS,
    Product,
    Unpack,
    addend_layout,
    operand_layout,
    product_exponent_range,
)
from boards.fpref import check_formats

__all__ = ["FmaCore", "FmaPE", "Reducer", "FmaArray", "SLOTS", "fma_top", "fma_name"]

#: Partial sums per PE (the depth of the accumulation loop).
SLOTS = STAGES

#: Advances from a beat's input register to the PEs' operand inputs (input register, unpack 2,
#: operand copy).
OPERAND_DEPTH = 4

#: Entries of the reducer's output FIFO (:class:`Reducer`): two groups' sums.
REDUCER_FIFO = 2 * STAGES

#: How an array's PEs use their multiplier blocks (:class:`FmaArray`).
BLOCK_MULTIPLIERS = ("dsp", "mult18x18d")

#: Registers of a PE's product (:class:`FmaCore`): two, so that neither the path into the
#: multiplier block nor the one from it to the adder (which the placer may put apart) holds the
#: block's own delay and a long route; with ``mult="mult18x18d"`` they are the block's own
#: input and output registers.
PRODUCT_STAGES = 2


#: Largest array side and largest PE count (:class:`FmaArray`, :class:`Reducer`).
MAX_SIDE, MAX_PES = 64, 64 * 64


def _check_dims(**dims):
    """``name=(value, upper bound)``: integers in ``[1, bound]``."""
    for name, (v, hi) in dims.items():
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{name} must be an integer, not {v!r}")
        if not 1 <= v <= hi:
            raise ValueError(f"{name} must be in [1, {hi}], not {v}")


class FmaCore(wiring.Component):
    """One PE: exact product of two unpacked operands, fused into the accumulation loop.

    Members
    -------
    en : In(1)
        Pipeline advance.
    a, b : In(operand_layout(in_fmt))
        Unpacked operands (:class:`boards.fpmul.Unpack`).
    clear : In(1)
        In the advance before an operand pair reaches the adder: start its partial sum afresh
        (the loop register loads ``-0``; the finished sum is on ``r`` meanwhile).
    r : Out(unsigned(acc_fmt.width))
        The partial sum leaving the adder (combinational).
    o : Out(unsigned(acc_fmt.width))
        The loop register.
    """

    def __init__(self, *, in_fmt="fp16", acc_fmt="fp16", mult="dsp"):
        self._in, self._acc = check_formats(in_fmt, acc_fmt)
        if mult not in MULTIPLIERS:
            raise ValueError(f"mult must be one of {', '.join(MULTIPLIERS)}, not {mult!r}")
        self._mult = mult
        layout = operand_layout(self._in)
        w = self._acc.width
        super().__init__({"en": In(1), "a": In(layout), "b": In(layout), "clear": In(1),
                          "r": Out(unsigned(w)), "o": Out(unsigned(w))})

    def elaborate(self, platform):
        m = Module()
        p = self._in.frac_bits + 1
        bias = self._acc.bias
        m.submodules.prod = prod = Product(fmt=self._in, mult=self._mult, bias=bias,
                                           stages=PRODUCT_STAGES)
        lo, hi = product_exponent_range(self._in, bias)
        m.submodules.add = add = FmaAdd(acc_fmt=self._acc, b_width=2 * p, e_lo=lo, e_hi=hi)
        m.d.comb += [prod.en.eq(self.en), prod.a.eq(self.a), prod.b.eq(self.b),
                     add.en.eq(self.en), add.b.eq(prod.o), add.c.eq(add.o),
                     add.clear.eq(self.clear), self.r.eq(add.r), self.o.eq(add.o)]
        return m


class FmaPE(wiring.Component):
    """A stand-alone PE with its own unpackers: raw operand bits in, the loop register out.
    Operands enter with ``en`` (unpack 2 advances, product :data:`PRODUCT_STAGES`, then the
    adder); their ``clear`` is presented ``1 + PRODUCT_STAGES`` advances after them (see
    :class:`FmaCore`).

    Members
    -------
    en, clear : In(1)
    a, b : In(unsigned(in_fmt.width))
    o : Out(unsigned(acc_fmt.width))
    """

    def __init__(self, *, in_fmt="fp16", acc_fmt="fp16", mult="dsp"):
        self._in, self._acc = check_formats(in_fmt, acc_fmt)
        if mult not in MULTIPLIERS:
            raise ValueError(f"mult must be one of {', '.join(MULTIPLIERS)}, not {mult!r}")
        self._mult = mult
        w = self._in.width
        super().__init__({"en": In(1), "clear": In(1), "a": In(unsigned(w)),
                          "b": In(unsigned(w)), "o": Out(unsigned(self._acc.width))})

    @property
    def macs_per_cycle(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        m.submodules.ua = ua = Unpack(fmt=self._in)
        m.submodules.ub = ub = Unpack(fmt=self._in)
        m.submodules.core = core = FmaCore(in_fmt=self._in, acc_fmt=self._acc, mult=self._mult)
        m.d.comb += [ua.en.eq(self.en), ub.en.eq(self.en), ua.x.eq(self.a), ub.x.eq(self.b),
                     core.en.eq(self.en), core.a.eq(ua.o), core.b.eq(ub.o),
                     core.clear.eq(self.clear), self.o.eq(core.o)]
        return m


def unpack_acc(m, bits, fmt):
    """An accumulation-format value as an :func:`boards.fpmul.addend_layout` addend
    (combinational)."""
    F, E = fmt.frac_bits, fmt.exp_bits
    e, f = bits[F:F + E], bits[:F]
    norm, special = e.any(), e == fmt.exp_max_field
    out = Signal(addend_layout(F + 1, *acc_addend_range(fmt)))
    m.d.comb += [out.m.eq(Cat(f, norm)), out.e.eq(Mux(norm, e, 1)),
                 out.sign.eq(bits[-1]), out.zero.eq(~norm & ~f.any()),
                 out.inf.eq(special & ~f.any()), out.nan.eq(special & f.any())]
    return out


class Reducer(wiring.Component):
    """Adds ``slots`` values per input, for ``n`` inputs, with one pipelined adder.

    The inputs come on ``chains = min(STAGES, n)`` drain chains: chain ``k`` presents the
    values of inputs ``k``, ``k + STAGES``, ``k + 2 * STAGES``, ... one after the other, each
    input's ``slots`` values in order, and moves on to its next value after the clock that
    follows a clock with ``shift_next[k]`` (the array registers it in copies near its PEs);
    the reducer reads the head in that clock. The inputs are taken in groups of ``STAGES``
    (the adder's depth; the last group may be shorter): for each group, ``slots`` rounds that
    read chain ``k`` in the round's clock ``k`` (a short group idles for the missing inputs),
    so the adder's own stages hold the group's running sums ``r_q = ((-0 + v_q^(0)) +
    v_q^(1)) + ...`` and no further storage is needed, whatever ``n``. The last round's sums
    go into an output FIFO of :data:`REDUCER_FIFO` entries and stream out on ``o`` in input
    order. Nothing in the reducer waits on ``o.ready``: a group starts only when the FIFO has
    room for its sums, so a full ``o`` pauses the reading between groups. ``busy`` is 1 from
    ``start`` until the clock of the last ``shift_next``: ``slots * STAGES * ceil(n /
    STAGES)`` clocks when ``o`` keeps up.

    Members
    -------
    start : In(1)
    v : In(data.ArrayLayout(unsigned(acc_fmt.width), chains))
        The chains' heads.
    shift_next : Out(chains)
    busy : Out(1)
    o : Out(stream.Signature(unsigned(acc_fmt.width)))
    """

    def __init__(self, *, acc_fmt="fp16", n=4, slots=SLOTS):
        _check_dims(n=(n, MAX_PES), slots=(slots, 64))
        from contract import get_format

        self._acc, self._n, self._slots = get_format(acc_fmt), n, slots
        w = self._acc.width
        chains = min(STAGES, n)
        super().__init__({"start": In(1), "v": In(data.ArrayLayout(unsigned(w), chains)),
                          "shift_next": Out(chains), "busy": Out(1),
                          "o": Out(stream.Signature(unsigned(w)))})

    @property
    def chains(self):
        """Number of drain chains (``min(STAGES, n)``)."""
        return min(STAGES, self._n)

    def elaborate(self, platform):
        m = Module()
        acc, n, slots = self._acc, self._n, self._slots
        groups = -(-n // STAGES)
        k = Signal(range(STAGES), name="k")           # member of the group (the chain read)
        j = Signal(range(slots), name="j")            # round
        g = Signal(range(groups), name="g")           # group
        base = Signal(range(STAGES * groups), name="base")    # = g * STAGES
        reading = self.busy
        with m.If(self.start):
            m.d.sync += reading.eq(1)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=acc.width, depth=REDUCER_FIFO)
        inflight = Signal(range(REDUCER_FIFO + 1))    # final sums issued, not yet in the FIFO
        room = Signal()                               # a group's sums fit (a clock late)
        m.d.sync += room.eq(fifo.level + inflight + STAGES <= REDUCER_FIFO)
        # issue: the read of chain k in this round; the chain moves on a clock later
        issue = reading & ((k != 0) | (j != 0) | room)
        for c in range(self.chains):
            m.d.comb += self.shift_next[c].eq(issue & (k == c))
        meta = data.StructLayout({"valid": 1, "first": 1, "final": 1})
        issued = Signal(meta, name="issued")
        issued_k = Signal(range(STAGES), name="issued_k")
        m.d.sync += [issued.valid.eq(issue & (base + k < n)), issued.first.eq(j == 0),
                     issued.final.eq(j == slots - 1), issued_k.eq(k)]
        with m.If(issue):
            m.d.sync += k.eq(Mux(k == STAGES - 1, 0, k + 1))
            with m.If(k == STAGES - 1):
                m.d.sync += j.eq(Mux(j == slots - 1, 0, j + 1))
                with m.If(j == slots - 1):
                    m.d.sync += [g.eq(Mux(g == groups - 1, 0, g + 1)),
                                 base.eq(Mux(g == groups - 1, 0, base + STAGES))]
                    with m.If(g == groups - 1):
                        m.d.sync += reading.eq(0)
        # read: the issued chain's head, registered with its round flags
        heads = list(self.v)
        head = Array(heads + [heads[-1]] * (STAGES - len(heads)))[issued_k] if n > 1 \
            else heads[0]
        rd = Signal(acc.width, name="rd", reset_less=True)
        rd_meta = Signal(meta, name="rd_meta")
        m.d.sync += [rd.eq(head), rd_meta.eq(issued)]
        # accumulate: the adder's output register feeds its input (the group's STAGES sums)
        lo, hi = acc_addend_range(acc)
        m.submodules.add = add = FmaAdd(acc_fmt=acc, b_width=acc.frac_bits + 1,
                                        e_lo=lo, e_hi=hi, b_lead_zero=False)
        m.d.comb += [add.en.eq(1), add.clear.eq(0),
                     add.c.eq(Mux(rd_meta.first, 1 << (acc.width - 1), add.o)),
                     add.b.eq(unpack_acc(m, rd, acc))]
        out_meta = rd_meta
        for i in range(STAGES):
            nxt = Signal(meta, name=f"meta{i}")
            m.d.sync += nxt.eq(out_meta)
            out_meta = nxt
        push = out_meta.valid & out_meta.final
        m.d.comb += [fifo.w_en.eq(push), fifo.w_data.eq(add.o)]
        m.d.sync += inflight.eq(inflight + (issue & (base + k < n) & (j == slots - 1)) - push)
        m.d.comb += [self.o.valid.eq(fifo.r_rdy), self.o.payload.eq(fifo.r_data),
                     fifo.r_en.eq(self.o.ready)]
        return m


class FmaArray(wiring.Component):
    """A ``rows x cols`` output-stationary array of fused-MAC PEs (see the module docstring).

    ``dsps``: how many PEs use a multiplier block; the others (the last ones, row-major) use
    LUT multipliers. Default: all. ``mult``: how a PE uses its block: ``"dsp"`` (``*``, mapped
    by synthesis) or ``"mult18x18d"`` (the ECP5 primitive with its own registers,
    :class:`boards.mult18x18d.Mult18x18d`).

    Members
    -------
    i : In(stream.Signature(StructLayout({x, w, last})))
        ``x``: ``rows`` activations, ``w``: ``cols`` weights (raw ``in_fmt`` bits); ``last``
        ends the dot products.
    o : Out(stream.Signature(unsigned(acc_fmt.width)))
        ``rows * cols`` results per dot product, row-major.
    """

    def __init__(self, *, rows, cols, in_fmt="fp16", acc_fmt="fp16", dsps=None, mult="dsp"):
        _check_dims(rows=(rows, MAX_SIDE), cols=(cols, MAX_SIDE))
        self._in, self._acc = check_formats(in_fmt, acc_fmt)
        if mult not in BLOCK_MULTIPLIERS:
            raise ValueError(f"mult must be one of {', '.join(BLOCK_MULTIPLIERS)}, not {mult!r}")
        self._mult = mult
        n = rows * cols
        if dsps is None:
            dsps = n
        if not isinstance(dsps, int) or isinstance(dsps, bool) or dsps < 0:
            raise ValueError(f"dsps must be a non-negative integer, not {dsps!r}")
        self._rows, self._cols, self._dsps = rows, cols, min(dsps, n)
        layout = data.StructLayout({
            "x": data.ArrayLayout(unsigned(self._in.width), rows),
            "w": data.ArrayLayout(unsigned(self._in.width), cols),
            "last": unsigned(1),
        })
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(unsigned(self._acc.width)))})

    @property
    def macs_per_cycle(self):
        return self._rows * self._cols

    def elaborate(self, platform):
        m = Module()
        rows, cols, L = self._rows, self._cols, SLOTS
        n = rows * cols
        fmt = self._in
        m.submodules.seq = seq = _Sequencer(slots=L, depth=OPERAND_DEPTH + PRODUCT_STAGES - 1)
        m.submodules.red = red = Reducer(acc_fmt=self._acc, n=n, slots=L)
        wiring.connect(m, wiring.flipped(self.o), red.o)
        m.d.comb += [seq.valid.eq(self.i.valid), seq.last.eq(self.i.payload.last),
                     self.i.ready.eq(seq.ready), seq.red_busy.eq(red.busy),
                     red.start.eq(seq.red_start)]
        # input register (the beat) beside a register of the sequencer's idle-beat flag per
        # operand (so that the flag reaches a few registers, not the reset of every operand
        # bit across the array), then the operand or, for padding, flush and idle beats, the
        # product -0 * +0 into the unpacker, and one copy of the unpacked operand per SHARE
        # PEs of the row or column; no enable anywhere (the sequencer inserts idle beats
        # instead of stalling).
        # The datapath (operands, PEs, capture registers, every copy) has no reset (but for the
        # product registers of an inferred multiplier, see boards.fpmul.Product): only the
        # control (sequencer, reducer) is reset, and its flags reach the copies within a
        # clock of reset, so no reset net spans the array.
        neg0 = 1 << (fmt.width - 1)
        operands = []
        for name, count, values, noop, fanout in (("x", rows, self.i.payload.x, neg0, cols),
                                                  ("w", cols, self.i.payload.w, 0, rows)):
            ops = []
            idle = copies(m, seq.noop, count, f"{name}_idle", reset_less=True)
            for k in range(count):
                reg = Signal(fmt.width, name=f"{name}{k}_in", reset_less=True)
                m.d.sync += reg.eq(values[k])
                m.submodules[f"unpack_{name}{k}"] = u = Unpack(fmt=fmt)
                m.d.comb += [u.en.eq(1), u.x.eq(Mux(idle[k], noop, reg))]
                ops.append(copies(m, u.o, -(-fanout // SHARE), f"{name}{k}", reset_less=True))
            operands.append(ops)
        xs, ws = operands
        # the clear and capture flags: one copy per SHARE PEs (row-major)
        clears = copies(m, seq.clear_next, -(-n // SHARE), "clear", reset_less=True)
        captures = copies(m, seq.capture_next, -(-n // SHARE), "capture", reset_less=True)
        # each PE's capture registers load (a capture, or the reducer's shift of its drain
        # chain) when a register of its own says so, decided a clock ahead: a chain's PEs sit
        # STAGES apart, so a shared copy of the shift would reach registers across the array.
        # Two copies per PE, one for each half of its L registers: the last one feeds the
        # chain's next PE (or the reducer) and sits toward it, away from the first
        loads = [copies(m, seq.capture_next | red.shift_next[idx % STAGES], 2,
                        f"cap_en{idx}", reset_less=True) for idx in range(n)]
        # PEs; their capture registers take the finished partial sums (capture) and pass
        # values down the drain chains to the reducer (shift)
        caps = []
        for r in range(rows):
            for c in range(cols):
                idx = r * cols + c
                m.submodules[f"pe_{r}_{c}"] = pe = FmaCore(
                    in_fmt=fmt, acc_fmt=self._acc, mult=self._mult if idx < self._dsps else "lut")
                m.d.comb += [pe.en.eq(1), pe.a.eq(copy_of(xs[r], c)),
                             pe.b.eq(copy_of(ws[c], r)), pe.clear.eq(copy_of(clears, idx))]
                caps.append((pe.r, [Signal(self._acc.width, name=f"cap_{r}_{c}_{s}",
                                           reset_less=True)
                                    for s in range(L)]))
        for idx, (result, regs) in enumerate(caps):
            capture = copy_of(captures, idx)
            behind = caps[idx + STAGES][1][-1] if idx + STAGES < n else 0
            with m.If(loads[idx][0]):
                m.d.sync += regs[0].eq(Mux(capture, result, behind))
                m.d.sync += [regs[s].eq(regs[s - 1]) for s in range(1, L // 2)]
            with m.If(loads[idx][1]):
                m.d.sync += [regs[s].eq(regs[s - 1]) for s in range(max(L // 2, 1), L)]
            if idx < STAGES:
                m.d.comb += red.v[idx].eq(regs[-1])
        return m


class _Sequencer(wiring.Component):
    """Beat control of :class:`FmaArray`. The pipeline has no enable: every clock a beat
    enters the input register, either a counted beat (from the input, padding a short dot
    product, or flushing the loop when the input pauses) or an idle one (the product
    ``-0 * +0`` into a partial sum that it leaves unchanged). Counted beats keep the loop's
    order (beat ``k`` of a dot product in partial sum ``k mod L``, the next dot product's first
    beats next in the loop), so idle beats come in runs of ``L``, a whole turn of the loop.

    ``depth`` clocks after a beat enters the input register it is one clock from the adders;
    ``clear`` and ``capture`` apply then (the partial sum starts afresh; the one it replaces
    is captured). ``clear_next`` and ``capture_next`` are them a clock earlier (for
    register copies near the PEs)."""

    def __init__(self, *, slots, depth):
        # a window's first capture is injected at least ``slots`` clocks after the previous
        # window's first, which has then reached the PEs (and reserved the registers)
        if not 2 <= depth < slots:
            raise ValueError(f"depth must be in [2, slots), not {depth}")
        self._slots, self._depth = slots, depth
        super().__init__({
            "valid": In(1), "last": In(1), "ready": Out(1),
            "red_busy": In(1), "red_start": Out(1),
            "noop": Out(1), "clear_next": Out(1), "capture_next": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        L = self._slots
        idx = Signal(range(L + 1))          # beats of the current dot product (saturates at L)
        pad = Signal(range(L))               # padding beats still to insert
        capcount = Signal(range(L + 1))      # counted beats still to inject that capture
        ncap = Signal(range(L))              # captures done in the current window
        idle = Signal(range(L))              # idle beats still to insert (the rest of a turn)
        reserved = Signal()                  # capture registers in use (filling or being read)
        reading = Signal()                   # ... and the reducer has started on them
        meta = data.StructLayout({"fresh": 1, "cap": 1})
        pipe = [Signal(meta, name=f"meta{i}") for i in range(self._depth)]
        # a window's first capture waits until the capture registers are free
        blocked = (capcount == L) & reserved
        flush = (idx == 0) & (capcount != 0) & ~self.valid
        counted = Signal()
        m.d.comb += [
            counted.eq((idle == 0) & ~blocked & ((pad != 0) | self.valid | flush)),
            self.ready.eq((idle == 0) & ~blocked & (pad == 0)),
            self.noop.eq(~counted | (pad != 0) | ~self.valid),
            self.clear_next.eq(pipe[-2].fresh),
            self.capture_next.eq(pipe[-2].cap),
        ]
        m.d.sync += [pipe[0].fresh.eq(counted & (idx < L)),
                     pipe[0].cap.eq(counted & (capcount != 0))]
        m.d.sync += [pipe[i].eq(pipe[i - 1]) for i in range(1, len(pipe))]
        with m.If(idle != 0):
            m.d.sync += idle.eq(idle - 1)
        with m.Elif(~counted):
            m.d.sync += idle.eq(L - 1)
        real = self.valid & self.ready
        with m.If(counted):
            with m.If(capcount != 0):
                m.d.sync += capcount.eq(capcount - 1)
            ends = Signal()
            with m.If(pad != 0):
                m.d.sync += pad.eq(pad - 1)
                m.d.comb += ends.eq(pad == 1)
            with m.Elif(real):
                with m.If(self.last & (idx + 1 < L)):
                    m.d.sync += pad.eq(L - 1 - idx)
                with m.Else():
                    m.d.comb += ends.eq(self.last)
            with m.If(ends):
                m.d.sync += [idx.eq(0), capcount.eq(L)]
            with m.Elif((pad != 0) | real):
                m.d.sync += idx.eq(Mux(idx == L, L, idx + 1))
        # captures happen as a beat leaves the operand copies
        with m.If(pipe[-1].cap):
            m.d.sync += ncap.eq(Mux(ncap == L - 1, 0, ncap + 1))
            with m.If(ncap == 0):
                m.d.sync += reserved.eq(1)
            with m.If(ncap == L - 1):
                m.d.comb += self.red_start.eq(1)
        with m.If(self.red_start):
            m.d.sync += reading.eq(1)            # the reducer's busy rises at the same edge
        with m.Elif(reading & ~self.red_busy):
            m.d.sync += [reading.eq(0), reserved.eq(0)]
        return m


def fma_top(spec: dict) -> wiring.Component:
    """The component of ``{"kind": "fma-pe", "in_fmt", "acc_fmt", "mult"}`` (one stand-alone
    PE) or ``{"kind": "fma-array", "in_fmt", "acc_fmt", "rows", "cols", "dsps", "mult"}``."""
    kind = spec.get("kind")
    in_fmt, acc_fmt = spec.get("in_fmt", "fp16"), spec.get("acc_fmt", "fp16")
    if kind == "fma-pe":
        return FmaPE(in_fmt=in_fmt, acc_fmt=acc_fmt, mult=spec.get("mult", "dsp"))
    if kind == "fma-array":
        return FmaArray(rows=spec.get("rows", 4), cols=spec.get("cols", 4), in_fmt=in_fmt,
                        acc_fmt=acc_fmt, dsps=spec.get("dsps"), mult=spec.get("mult", "dsp"))
    raise ValueError(f"unknown FMA design kind {kind!r}; expected fma-pe or fma-array")


def fma_name(spec: dict) -> str:
    """Filesystem-safe name of an FMA spec (:func:`fma_top`)."""
    in_fmt, acc_fmt = spec.get("in_fmt", "fp16"), spec.get("acc_fmt", "fp16")
    if spec.get("kind") == "fma-pe":
        return f"fmape_{in_fmt}_{acc_fmt}_{spec.get('mult', 'dsp')}"
    dsps = "" if spec.get("dsps") is None else f"_d{spec['dsps']}"
    mult = "" if spec.get("mult", "dsp") == "dsp" else f"_{spec['mult']}"
    return f"fma_{in_fmt}_{acc_fmt}_{spec.get('rows', 4)}x{spec.get('cols', 4)}{dsps}{mult}"
