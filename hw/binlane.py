"""Exact accumulation in block RAM, one bin per exponent: a study for small FPGAs.

**Not used by the array.** ``benchmarks/study_bin_lanes.py`` synthesises a grid of these
lanes for the iCE40 UP5K, to measure what accumulating in the device's 16-bit block RAMs
would cost against the array's flip-flop accumulators (``docs/synthesis.md``, the UP5K
reading).

A lane adds products ``±mag · 2^(exp + shift)`` (an fp16 significand times a power-of-two
weight) exactly. It keeps one signed 16-bit bin per exponent ``exp + shift`` in a memory with
one read and one write port, the shape of an iCE40 EBR. Each term reads its bin and writes
back the sum. A sum that leaves the 16-bit range gives up ``±2^15``: the bin keeps the rest,
which is within ``±max(mag)``, and the lane reports a **carry** ``±2^15`` in that bin. So the
lane's value is always::

    sum(bin[b] * 2**b) + sum(carry * 2**(15 + b) for each reported carry (b, carry))

After a carry a bin needs at least ``(2^15 - max(mag)) / max(mag)`` more terms (15 for
11-bit significands) to carry again: no run of terms makes it carry at every term. (Giving up
``±2^16``, the wrap of two's complement, would: a sum just over the top wraps to just over
the bottom.) In the hardware this costs nothing: the written bin is the sum's low 15 bits
under its true sign. The sink of the carries, the combination of the bins into one number and
the rounding are not built here.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["BinLane", "BinLaneGrid"]


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


class BinLane(wiring.Component):
    """One exact accumulator kept in a block RAM of ``2^(exp_bits + 1)`` signed bins.

    Keyword parameters: ``exp_bits`` (5 for fp16), ``shift_bits`` (the weight's exponent code,
    ``B - 1``), ``mag_bits`` (11 for fp16: the significand with its hidden bit), ``bin_bits``
    (16: an iCE40 EBR's width). ``shift_bits`` must leave ``exp + shift`` below
    ``2^(exp_bits + 1)``.

    Ports, all sampled at the clock:

    * ``term``, ``exp``, ``shift``, ``addend``: add ``addend · 2^(exp + shift)`` (``addend`` is
      the signed significand, ``|addend| < 2^mag_bits``).
    * ``drain``, ``drain_bin`` (only while ``term`` is low): read bin ``drain_bin`` and clear
      it. One clock later ``drain_valid`` is high and ``drain_data`` holds the bin's value,
      including every term accepted up to the drain.
    * ``carry_valid``, ``carry_bin``, ``carry_neg``: one clock after a term whose sum left the
      bin's range, a carry of ``-2^(bin_bits - 1)`` (``carry_neg``) or ``+2^(bin_bits - 1)``
      in bin ``carry_bin``.

    A term or drain that follows another on the same bin takes the bin's value from the lane's
    own register of the last write, never from the memory: the memory's result when a read
    meets a write to the same address does not matter, so it is marked ``no_rw_check`` (Yosys
    then adds no collision logic of its own).
    """

    def __init__(self, *, exp_bits=5, shift_bits=2, mag_bits=11, bin_bits=16):
        for name, value in (("exp_bits", exp_bits), ("shift_bits", shift_bits),
                            ("mag_bits", mag_bits), ("bin_bits", bin_bits)):
            _positive(name, value)
        if shift_bits > exp_bits:
            raise ValueError(f"shift_bits={shift_bits} lets exp + shift exceed the "
                             f"{exp_bits + 1}-bit bin index; expected at most {exp_bits}")
        if bin_bits <= mag_bits:
            raise ValueError(f"bin_bits ({bin_bits}) must exceed mag_bits ({mag_bits}): a bin "
                             "holds at least one signed term")
        self._exp_bits, self._bin_bits = exp_bits, bin_bits
        index = exp_bits + 1
        super().__init__({
            "term": In(1), "exp": In(exp_bits), "shift": In(shift_bits),
            "addend": In(signed(mag_bits + 1)),
            "drain": In(1), "drain_bin": In(index),
            "drain_valid": Out(1), "drain_data": Out(signed(bin_bits)),
            "carry_valid": Out(1), "carry_bin": Out(index), "carry_neg": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        index, width = self._exp_bits + 1, self._bin_bits
        m.submodules.bins = bins = Memory(shape=signed(width), depth=1 << index, init=[],
                                          attrs={"no_rw_check": 1})
        rd = bins.read_port(transparent_for=())
        wr = bins.write_port()

        # stage 0 -> 1: the bin is read; whether the operation in stage 1 writes the same bin
        # (then this one must take that value, not the memory's) is decided here, a clock
        # early, so that stage 1 has one multiplexer before its adder
        s1_term, s1_drain, s1_hit = Signal(), Signal(), Signal()
        s1_bin = Signal(index)
        s1_addend = Signal.like(self.addend)
        op = self.term | self.drain
        address = Mux(self.term, self.exp + self.shift, self.drain_bin)
        m.d.comb += rd.addr.eq(address)
        m.d.sync += [s1_term.eq(self.term), s1_drain.eq(self.drain & ~self.term),
                     s1_hit.eq(op & (s1_term | s1_drain) & (address == s1_bin)),
                     s1_bin.eq(address), s1_addend.eq(Mux(self.term, self.addend, 0))]

        # stage 1: the bin's value, the sum written back (a drain writes 0)
        last_written = Signal(signed(width))
        base = Mux(s1_hit, last_written, rd.data)
        total = Signal(signed(width + 1))
        m.d.comb += total.eq(base + s1_addend)
        # the sum, or after an overflow the sum less the carry ±2^(width - 1): its low bits
        # under its true sign
        written = Mux(s1_drain, 0, Cat(total[:width - 1], total[width]).as_signed())
        m.d.comb += [wr.en.eq(s1_term | s1_drain), wr.addr.eq(s1_bin), wr.data.eq(written)]
        m.d.sync += last_written.eq(written)

        m.d.comb += [self.drain_valid.eq(s1_drain), self.drain_data.eq(base)]
        m.d.sync += [self.carry_valid.eq(s1_term & (total[width] != total[width - 1])),
                     self.carry_bin.eq(s1_bin), self.carry_neg.eq(total[width])]
        return m


class BinLaneGrid(wiring.Component):
    """``rows x cols`` :class:`BinLane` s fed like the array's PEs: row ``r`` broadcasts an
    fp16 activation ``x[r]``, column ``c`` a weight code ``w[c]`` (``neg`` in the top bit,
    ``shift`` below it), and lane ``(r, c)`` adds ``x[r] * (-1)^neg * 2^shift``. The inputs
    are registered once per row (decoded) and column; each lane keeps sticky inf/NaN flags.

    This is the study's whole datapath, not an accelerator: there is no sequencing, no sink
    for the carries and no combination or rounding of the bins. Each column shows the lane of
    row ``row_sel``: its drained bin (``col_data``), its last carry and its flags; every
    lane's ``carry_valid`` is an output, so that none is optimised away."""

    def __init__(self, *, rows, cols, shift_bits=2):
        for name, value in (("rows", rows), ("cols", cols), ("shift_bits", shift_bits)):
            _positive(name, value)
        self._rows, self._cols, self._shift_bits = rows, cols, shift_bits
        super().__init__({
            "x": In(16).array(rows), "w": In(shift_bits + 1).array(cols),
            "term": In(1), "drain": In(1), "drain_bin": In(6), "row_sel": In(range(rows)),
            "col_data": Out(signed(16)).array(cols),
            "col_carry": Out(8).array(cols),            # valid, neg, bin (6)
            "col_flags": Out(3).array(cols),            # +inf, -inf, NaN seen
            "carry_valid": Out(rows * cols),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols, sb = self._rows, self._cols, self._shift_bits
        term, drain, drain_bin = Signal(), Signal(), Signal(6)
        m.d.sync += [term.eq(self.term), drain.eq(self.drain), drain_bin.eq(self.drain_bin)]
        w_r = [Signal(sb + 1, name=f"w{c}") for c in range(cols)]
        m.d.sync += [a.eq(b) for a, b in zip(w_r, self.w, strict=True)]
        # each row's activation registered decoded, as the array's row decoders do: the bin
        # exponent (1 for subnormals), the signed significand and its negation (the lanes
        # only choose between them by the weight's sign), the sign and inf/NaN
        exp = [Signal(5, name=f"x{r}_exp") for r in range(rows)]
        plus = [Signal(signed(12), name=f"x{r}_plus") for r in range(rows)]
        minus = [Signal(signed(12), name=f"x{r}_minus") for r in range(rows)]
        sign, inf, nan = ([Signal(name=f"x{r}_{n}") for r in range(rows)]
                          for n in ("sign", "inf", "nan"))
        for r, x in enumerate(self.x):
            field, frac = x[10:15], x[:10]
            mag = Cat(frac, field != 0).as_unsigned()
            m.d.sync += [exp[r].eq(Mux(field == 0, 1, field)),
                         plus[r].eq(Mux(x[15], -mag, mag)), minus[r].eq(Mux(x[15], mag, -mag)),
                         sign[r].eq(x[15]), inf[r].eq((field == 31) & (frac == 0)),
                         nan[r].eq((field == 31) & (frac != 0))]
        carries = []
        for c in range(cols):
            data, carry, flags = [], [], []
            for r in range(rows):
                lane = BinLane(shift_bits=sb)
                m.submodules[f"lane_r{r}_c{c}"] = lane
                w = w_r[c]
                neg = sign[r] ^ w[sb]
                m.d.comb += [lane.term.eq(term & ~inf[r] & ~nan[r]), lane.exp.eq(exp[r]),
                             lane.addend.eq(Mux(w[sb], minus[r], plus[r])),
                             lane.shift.eq(w[:sb]),
                             lane.drain.eq(drain), lane.drain_bin.eq(drain_bin)]
                seen = Signal(3, name=f"flags_r{r}_c{c}")
                hit = Cat(inf[r] & ~neg, inf[r] & neg, nan[r])
                m.d.sync += seen.eq(Mux(drain, 0, seen) | Mux(term, hit, 0))
                data.append(lane.drain_data)
                carry.append(Cat(lane.carry_valid, lane.carry_neg, lane.carry_bin))
                flags.append(seen)
                carries.append(lane.carry_valid)
            m.d.sync += [self.col_data[c].eq(Array(data)[self.row_sel]),
                         self.col_carry[c].eq(Array(carry)[self.row_sel]),
                         self.col_flags[c].eq(Array(flags)[self.row_sel])]
        m.d.comb += self.carry_valid.eq(Cat(*carries))
        return m
