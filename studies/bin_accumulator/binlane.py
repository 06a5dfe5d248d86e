"""Exact accumulation in block RAM, one bin per exponent: a study for small FPGAs.

**Not used by the array.** ``study_bin_lanes.py`` synthesises a grid of these lanes for the
iCE40 UP5K, to measure what accumulating in the device's 16-bit block RAMs would cost against
the array's flip-flop accumulators (``README.md`` of this study).

A lane adds products ``±mag · 2^(exp + shift)`` (an fp16 significand times a power-of-two
weight) exactly. It keeps one signed 16-bit bin per exponent in a memory with one read and one
write port, the shape of an iCE40 EBR. Each term reads its bin and writes back the sum. A sum
that leaves the 16-bit range gives up a **carry** ``±2^15``: the bin keeps the rest, which is
within ``±max(mag)``, and the lane adds the carry as ``±1`` to the bin 15 places up, in a clock
in which its grid stalls (one clock per carry). So once the carries are in, the lane's value
is always ``sum(bin[b] * 2**b)``.

After a carry a bin needs at least ``(2^15 - max(mag)) / max(mag)`` more terms (15 for
11-bit significands) to carry again: no run of terms makes it carry at every term, so a lane
stalls its grid for at most one clock per 15 of its terms. (Giving up ``±2^16``, the wrap of two's
complement, would not do: a sum just over the top wraps to just over the bottom, and the next
term carries back.) In the hardware the rest costs nothing: the written bin is the sum's low
15 bits under its true sign. :class:`bincombine.BinCombiner` sums a lane's drained bins into
one exact number (a :class:`BinLaneGrid` with ``combine=True`` has one per column) and
:class:`binround.BinRounder` rounds it (``rounding=True``). There is no sequencing here:
the grid is the datapath that such an array would have.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from studies.bin_accumulator.bincombine import BinCombiner
from studies.bin_accumulator.binround import BinRounder

__all__ = ["BinLane", "BinLaneGrid"]

_KEEP = {"keep": 1}


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
      it. Two clocks later ``drain_valid`` is high and ``drain_data`` holds the bin's value.
      Drains come in phases of their own, of distinct bins, the first taken at least
      ``4 * h`` operations after the last term (eight for fp16; ``h``, below, is 2): by then
      every term and carry has been added, and a drain reads its bin from the memory, with
      no bypass. A term may follow a drain at once.
    * ``stall_next``: the lane holds a **carry** (below) and needs ``stall`` high in the next
      clock, when it adds the carry.
    * ``stall``: the lane takes neither a term nor a drain in this clock; it adds its carry, if
      it holds one. ``stall`` must be high in every clock that follows one in which
      ``stall_next`` is high (a lane alone: ``stall_next`` registered; a grid: the OR of its
      lanes', registered), and the source must then hold its operation for the next clock.

    **Carries.** A sum that leaves the bin's range keeps the rest and gives up a carry of
    ``±2^(bin_bits - 1)`` in its bin ``b``. The lane adds it as ``±1`` to bin
    ``b + bin_bits - 1``, an operation of its own that enters the pipeline in the stalled
    clock, behind the three operations taken after the one that carried. So the drained bins
    alone sum to the exact total, provided that the bins above the terms' are drained too
    when a carry happened. A bin above the terms' carries only after ``2^(bin_bits - 1)``
    carries into it, so with fp16's 64 bins at most ``h = 2`` carries follow one another, and
    a carry can leave the index only after more than ``2^33`` terms between drains.

    A term that follows another operation on its bin takes the bin's value from the lane's own
    register of the last write, never from the memory: the memory's result when a read meets
    a write to the same address does not matter, so it is marked ``no_rw_check`` (Yosys then
    adds no collision logic of its own).
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
            "stall": In(1),
            "drain_valid": Out(1), "drain_data": Out(signed(bin_bits)),
            "stall_next": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        index, width = self._exp_bits + 1, self._bin_bits
        m.submodules.bins = bins = Memory(shape=signed(width), depth=1 << index, init=[],
                                          attrs={"no_rw_check": 1})
        rd = bins.read_port(transparent_for=())
        wr = bins.write_port()

        # a carry found in stage 1 waits here a clock (``stall_next``: the grid's OR of these
        # reaches every lane from a register), then in ``c_*`` for the stalled clock
        n_valid, n_neg = Signal(), Signal()
        n_bin = Signal(index)
        c_valid, c_neg = Signal(), Signal()
        c_bin = Signal(index)
        m.d.sync += [c_valid.eq(n_valid), c_neg.eq(n_neg), c_bin.eq(n_bin)]

        # stage a: the operation and its bin's address (exp + shift, the drained bin or the
        # carry's bin) registered, so that the inputs' fan-out and the address adder end at a
        # flip-flop. In a stalled clock the operation is the lane's carry (an add of ±1) or
        # nothing. Each lane keeps its own copies of the control registers (``keep``): merged,
        # one register would reach every lane of a grid.
        a_term, a_drain = Signal(attrs=_KEEP), Signal(attrs=_KEEP)
        a_bin = Signal(index)
        # the addend: a term's, else 0; a carry's ±1 is set into stage 1's register by the
        # flip-flops' own set inputs (``a_set_lo`` sets bit 0, ``a_set_hi`` the bits above)
        a_addend = Signal.like(self.addend, reset_less=True)
        a_set_lo, a_set_hi = Signal(), Signal()
        take_term = self.term & ~self.stall
        m.d.sync += [a_term.eq(take_term | c_valid),
                     a_drain.eq(self.drain & ~self.term & ~self.stall),
                     a_bin.eq(Mux(take_term, self.exp + self.shift,
                                  Mux(c_valid, c_bin, self.drain_bin))),
                     a_addend.eq(Mux(take_term, self.addend, 0)),
                     a_set_lo.eq(c_valid), a_set_hi.eq(c_valid & c_neg)]

        # stage a -> 1: the bin is read; whether the operation in stage 1 writes the same bin
        # (then this one must take that value, not the memory's) is decided here, a clock
        # early, so that stage 1 has one multiplexer before its adder
        s1_term, s1_drain = Signal(attrs=_KEEP), Signal(attrs=_KEEP)
        s1_hit = Signal()
        s1_bin = Signal(index)
        s1_addend = Signal.like(self.addend, reset_less=True)
        m.d.comb += rd.addr.eq(a_bin)
        m.d.sync += [s1_term.eq(a_term), s1_drain.eq(a_drain),
                     s1_hit.eq((a_term | a_drain) & (s1_term | s1_drain) & (a_bin == s1_bin)),
                     s1_bin.eq(a_bin),
                     # a drain adds 0, a carry ±1 (all ones for -1), a term its addend
                     s1_addend.eq(Cat(Mux(a_set_lo, 1, a_addend[0]),
                                      *(Mux(a_set_hi, 1, bit) for bit in a_addend[1:])))]

        # stage 1: the bin's value, the sum written back. A drain writes 0: it adds its
        # addend 0 to 0 instead of the bin, so that no multiplexer follows the adder
        last_written = Signal(signed(width), reset_less=True)
        base = Mux(s1_drain, 0, Mux(s1_hit, last_written, rd.data))
        total = Signal(signed(width + 1))
        m.d.comb += total.eq(base + s1_addend)
        # the sum, or after an overflow the sum less the carry ±2^(width - 1): its low bits
        # under its true sign
        written = Cat(total[:width - 1], total[width]).as_signed()
        m.d.comb += [wr.en.eq(s1_term | s1_drain), wr.addr.eq(s1_bin), wr.data.eq(written)]
        m.d.sync += last_written.eq(written)

        # a drain's bin as the memory holds it: no operation just ahead of a drain writes its
        # bin (the contract), so the bypass is not needed
        m.d.comb += [self.drain_valid.eq(s1_drain), self.drain_data.eq(rd.data),
                     self.stall_next.eq(n_valid)]
        m.d.sync += [n_valid.eq(s1_term & (total[width] != total[width - 1])),
                     n_bin.eq(s1_bin + (width - 1)), n_neg.eq(total[width])]
        return m


class BinLaneGrid(wiring.Component):
    """``rows x cols`` :class:`BinLane` s fed like the array's PEs: row ``r`` broadcasts an
    fp16 activation ``x[r]``, column ``c`` a weight code ``w[c]`` (``neg`` in the top bit,
    ``shift`` below it), and lane ``(r, c)`` adds ``x[r] * (-1)^neg * 2^shift``. The inputs
    are registered once per row (decoded) and column; each lane keeps sticky inf/NaN flags.

    The inputs (``term`` with ``x`` and ``w``, or ``drain`` with ``drain_bin``) are taken in a
    clock in which ``ready`` is high; while it is low (a lane adds a carry: one clock per
    carry) the source holds them. Each column shows the lane of row ``row_sel``: ``col_valid``
    marks each of its drained bins (``col_data``, in the order drained); ``col_flags`` holds
    its flags.

    With ``combine=True`` each column also sums the bins it shows with a
    :class:`bincombine.BinCombiner`: a drain with ``drain_first`` starts a sequence of bins
    (``drain_bin`` its lowest), one with ``drain_last`` ends it. ``out_valid``, ``out_total``
    and ``out_lsb`` give column ``out_sel``'s exact sums, one clock after its combiner's (the
    multiplexer in front of a rounder that the columns would share).

    With ``rounding=True`` as well, that rounder is there: a :class:`binround.BinRounder`
    turns the shown sums into fp16 bits (``out_valid``, ``out_bits``, instead of ``out_total``
    and ``out_lsb``) with the offset ``e0`` and the flags ``round_flags`` (NaN, +inf, -inf,
    -0 and ReLU, as the rounder takes them) given as inputs: the lanes' flags are not routed
    to it.

    This is the study's datapath, not an accelerator: there is no sequencing."""

    def __init__(self, *, rows, cols, shift_bits=2, combine=False, rounding=False):
        for name, value in (("rows", rows), ("cols", cols), ("shift_bits", shift_bits)):
            _positive(name, value)
        for name, value in (("combine", combine), ("rounding", rounding)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, not {value!r}")
        if rounding and not combine:
            raise ValueError("rounding=True rounds the combiners' sums: it needs combine=True")
        self._rows, self._cols, self._shift_bits = rows, cols, shift_bits
        self._combine, self._rounding = combine, rounding
        ports = {
            "x": In(16).array(rows), "w": In(shift_bits + 1).array(cols),
            "term": In(1), "drain": In(1), "drain_bin": In(6), "row_sel": In(range(rows)),
            "ready": Out(1),
            "col_valid": Out(1).array(cols), "col_data": Out(signed(16)).array(cols),
            "col_flags": Out(3).array(cols),            # +inf, -inf, NaN seen
        }
        if combine:
            ports.update({"drain_first": In(1), "drain_last": In(1), "out_sel": In(range(cols)),
                          "out_valid": Out(1)})
        if rounding:
            ports.update({"e0": In(signed(4)), "round_flags": In(5), "out_bits": Out(16)})
        elif combine:
            total = signed(64 + 16 + 1)             # BinCombiner's, for 64 bins of 16 bits
            ports.update({"out_total": Out(total), "out_lsb": Out(range(-63, 64))})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        rows, cols, sb = self._rows, self._cols, self._shift_bits
        lanes = [[BinLane(shift_bits=sb) for _ in range(cols)] for _ in range(rows)]
        for r, c in ((r, c) for r in range(rows) for c in range(cols)):
            m.submodules[f"lane_r{r}_c{c}"] = lanes[r][c]
        # a lane's carry stalls the grid for one clock: every lane takes nothing then, and
        # the registered inputs hold (the source holds the next ones: ``ready`` is low)
        stall = Signal()
        m.d.sync += stall.eq(Cat(lane.stall_next for row in lanes for lane in row).any())
        m.d.comb += self.ready.eq(~stall)

        term, drain, drain_bin = Signal(), Signal(), Signal(6)
        w_r = [Signal(sb + 1, name=f"w{c}") for c in range(cols)]
        # each row's activation registered decoded, as the array's row decoders do: the bin
        # exponent (1 for subnormals), the signed significand and its negation (the lanes
        # only choose between them by the weight's sign), the sign and inf/NaN
        exp = [Signal(5, name=f"x{r}_exp") for r in range(rows)]
        plus = [Signal(signed(12), name=f"x{r}_plus") for r in range(rows)]
        minus = [Signal(signed(12), name=f"x{r}_minus") for r in range(rows)]
        sign, inf, nan = ([Signal(name=f"x{r}_{n}") for r in range(rows)]
                          for n in ("sign", "inf", "nan"))
        with m.If(~stall):
            m.d.sync += [term.eq(self.term), drain.eq(self.drain), drain_bin.eq(self.drain_bin)]
            m.d.sync += [a.eq(b) for a, b in zip(w_r, self.w, strict=True)]
            for r, x in enumerate(self.x):
                field, frac = x[10:15], x[:10]
                mag = Cat(frac, field != 0).as_unsigned()
                m.d.sync += [exp[r].eq(Mux(field == 0, 1, field)),
                             plus[r].eq(Mux(x[15], -mag, mag)),
                             minus[r].eq(Mux(x[15], mag, -mag)),
                             sign[r].eq(x[15]), inf[r].eq((field == 31) & (frac == 0)),
                             nan[r].eq((field == 31) & (frac != 0))]
        for c in range(cols):
            data, valid, flags = [], [], []
            for r in range(rows):
                lane, w = lanes[r][c], w_r[c]
                neg = sign[r] ^ w[sb]
                m.d.comb += [lane.term.eq(term & ~inf[r] & ~nan[r]), lane.exp.eq(exp[r]),
                             lane.addend.eq(Mux(w[sb], minus[r], plus[r])),
                             lane.shift.eq(w[:sb]), lane.stall.eq(stall),
                             lane.drain.eq(drain), lane.drain_bin.eq(drain_bin)]
                seen = Signal(3, name=f"flags_r{r}_c{c}")
                hit = Cat(inf[r] & ~neg, inf[r] & neg, nan[r])
                with m.If(~stall):
                    m.d.sync += seen.eq(Mux(drain, 0, seen) | Mux(term, hit, 0))
                data.append(lane.drain_data)
                valid.append(lane.drain_valid)
                flags.append(seen)
            m.d.sync += [self.col_valid[c].eq(Array(valid)[self.row_sel]),
                         self.col_data[c].eq(Array(data)[self.row_sel]),
                         self.col_flags[c].eq(Array(flags)[self.row_sel])]
        if self._combine:
            self._combiners(m, stall, term, drain, drain_bin)
        return m

    def _combiners(self, m, stall, term, drain, drain_bin):
        """A combiner per column, fed the column's drained bins; a drain's ``first``, ``last``
        and bin travel beside it through the lanes' two stages and the column register."""
        first, last = Signal(), Signal()
        with m.If(~stall):
            m.d.sync += [first.eq(self.drain_first), last.eq(self.drain_last)]
        a_first, a_last, s1_first, s1_last, c_first, c_last = (Signal() for _ in range(6))
        a_bin, s1_bin, c_bin = (Signal(6) for _ in range(3))
        taken = drain & ~term & ~stall
        m.d.sync += [a_first.eq(taken & first), a_last.eq(taken & last), a_bin.eq(drain_bin),
                     s1_first.eq(a_first), s1_last.eq(a_last), s1_bin.eq(a_bin),
                     c_first.eq(s1_first), c_last.eq(s1_last), c_bin.eq(s1_bin)]
        outs = []
        for c in range(self._cols):
            comb = BinCombiner(max_bins=64)
            m.submodules[f"combiner_c{c}"] = comb
            m.d.comb += [comb.valid.eq(self.col_valid[c]), comb.value.eq(self.col_data[c]),
                         comb.first.eq(c_first), comb.last.eq(c_last), comb.start.eq(c_bin)]
            outs.append(comb)
        shown = Array(outs)[self.out_sel]
        if not self._rounding:
            m.d.sync += [self.out_valid.eq(shown.out_valid), self.out_total.eq(shown.out_total),
                         self.out_lsb.eq(shown.out_lsb)]
            return
        sel_valid = Signal()
        sel_total, sel_lsb = Signal.like(shown.out_total), Signal.like(shown.out_lsb)
        m.d.sync += [sel_valid.eq(shown.out_valid), sel_total.eq(shown.out_total),
                     sel_lsb.eq(shown.out_lsb)]
        m.submodules.rounder = rnd = BinRounder()
        flags = self.round_flags
        m.d.comb += [rnd.valid.eq(sel_valid), rnd.total.eq(sel_total), rnd.lsb.eq(sel_lsb),
                     rnd.e0.eq(self.e0), rnd.nan.eq(flags[0]), rnd.pinf.eq(flags[1]),
                     rnd.ninf.eq(flags[2]), rnd.neg0.eq(flags[3]), rnd.relu.eq(flags[4]),
                     self.out_valid.eq(rnd.out_valid), self.out_bits.eq(rnd.bits)]
