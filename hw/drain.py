"""The drain of the PE array: the PEs' sums captured at a tile's end and shifted out one per
clock (:class:`DrainChain`), and its control (:class:`DrainControl`).

Entry ``i`` (``r * cols + c``: row-major) is PE ``(r, c)``'s. In the clock a row's ``load`` and
``move`` are both high, that row's shadow registers take their PEs' entries; with ``move``
alone each register takes the next one's, so that the head (entry 0) presents the entries in
order, while the PEs already accumulate the next tile. The enables come per row, so that the
array can give each row its own copy of them (no flip-flop drives the whole array).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract.array import ArrayConfig

from .channels import HeadSignature
from .finalizer import array_meta_layout
from .grid import CaptureSignature
from .loader import BankSignature
from .sequencer import TileSignature, tile_layout
from .stages import is_const, replicas

__all__ = ["DrainChain", "DrainControl", "out_fifo_depth"]


class DrainChain(wiring.Component):
    """``rows * cols`` shadow registers of ``entry`` (a ``data.Layout``) in one chain.

    Ports: ``entries`` (``rows * cols`` entries, row-major), ``load`` and ``move`` (one enable
    per row), ``head`` (entry 0's register). The registers have no reset: only entries loaded
    since the last capture are ever read."""

    def __init__(self, *, rows, cols, entry):
        for name, value in (("rows", rows), ("cols", cols)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(entry, data.Layout):
            raise TypeError(f"entry must be a data.Layout, not {type(entry).__name__}")
        self._rows, self._cols, self._entry = rows, cols, entry
        super().__init__({
            "entries": In(data.ArrayLayout(entry, rows * cols)),
            "load": In(rows),
            "move": In(rows),
            "head": Out(entry),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols
        count = rows * cols
        chain = [Signal(self._entry, name=f"shadow{i}", reset_less=True) for i in range(count)]
        for r in range(rows):
            with m.If(self.move[r]):
                for c in range(cols):
                    i = r * cols + c
                    if i + 1 < count:
                        m.d.sync += chain[i].eq(Mux(self.load[r], self.entries[i], chain[i + 1]))
                    else:                        # the tail: after a shift it is never read
                        m.d.sync += chain[i].eq(self.entries[i])
        m.d.comb += self.head.eq(chain[0])
        return m


def out_fifo_depth(config):
    """Entries of the array's output FIFO: every result in flight (``final_latency`` clocks
    with ``tready`` high) has a slot, plus two (the credit check is registered, one clock
    stale) so that the chain never waits, plus one with ``"spread"`` (the FIFO's reads reach
    the credit count through a register of their own)."""
    return config.final_latency + 2 + config.spread


class DrainControl(wiring.Component):
    """When the drain chain loads and shifts, and what its head's entry is.

    At a capture the chain takes the PEs' states; each shift moves the next entry to the head
    and into the finalizer, while the entry is inside the tile (ragged tiles leave unused
    entries, shifted out without a result). The finalizer never stalls: results collect in an
    output FIFO, and the chain feeds a new entry only while every entry in flight (finalizer
    stages and FIFO) has a FIFO slot (credits, :func:`out_fifo_depth`), so no ready signal
    ripples back through the finalizer's stages. The drain of an M tile's last N tile
    releases the tile's weight bank.

    Members
    -------
    capture : In(hw.grid.CaptureSignature)
    tile : In(hw.sequencer.TileSignature(config))
    returned : In(1)
        A result left the output FIFO.
    load, move : Out(rows)
        The chain's enables (:class:`DrainChain`), one per row.
    head : Out(hw.channels.HeadSignature(config))
    entry : Out(StructLayout({"valid", "meta": hw.finalizer.array_meta_layout()}))
        The head's entry goes to the finalizer (``valid``), with its tile's ``last`` and the
        layer's ``last_layer``.
    banks : In(hw.loader.BankSignature)
        Drives ``free``: toggled when a bank is released.
    idle : Out(1)
        The chain holds no entry and no capture is pending.
    """

    def __init__(self, *, config):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        self._config = config
        super().__init__({
            "capture": In(CaptureSignature),
            "tile": In(TileSignature(config)),
            "returned": In(1),
            "load": Out(config.rows), "move": Out(config.rows),
            "head": Out(HeadSignature(config)),
            "entry": Out(data.StructLayout({"valid": 1, "meta": array_meta_layout()})),
            "banks": In(BankSignature),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        R, C = cfg.rows, cfg.cols
        spread = cfg.spread
        capture, capture_d = self.capture.now, self.capture.next
        t_pend = self.tile.desc
        t_drain = Signal(tile_layout(cfg))
        ch_count = Signal(range(R * C + 1))
        cap_pending = Signal()
        ch_r = Signal(range(max(2, R)))
        ch_c = Signal(range(max(2, C)))
        dr_free = Signal(2)
        with m.If(self.tile.end):
            m.d.sync += cap_pending.eq(1)
        # The chain's shift enable reaches every shadow register: it is a flip-flop, set for
        # the next clock when the chain will hold entries and a finalizer credit is free.
        shift_d = Signal()                 # the next value of ``shift``
        shift = Signal()
        ch_last = Signal()                 # ch_count == 1
        ch_last_next = Signal()
        # ch_count == 2: with "spread" a register beside the count (set at a capture and a
        # shift as the count is), so that ch_go's next value is not behind a comparator
        ch_two = ch_count == 2
        if spread:
            ch_two = Signal()
            with m.If(capture):
                m.d.sync += ch_two.eq(R * C == 2)
            with m.Elif(shift):
                m.d.sync += ch_two.eq(ch_count == 3)
        m.d.comb += ch_last_next.eq(Mux(capture, R * C == 1, Mux(shift, ch_two, ch_last)))
        m.d.sync += ch_last.eq(ch_last_next)
        # ch_go: the chain holds entries after this clock (a capture, or entries that this
        # clock's shift, if any, leaves). A register, computed from the next values.
        ch_go = Signal()
        m.d.sync += ch_go.eq(capture_d | (ch_go & ~(shift_d & ch_last_next)))
        # The shadow registers' load and move enables reach R*C entries of ~pe_acc_width bits
        # each, spread over the whole array: each row of entries has its own copies (see
        # ``replicas``), loaded with the next values of ``capture`` and of ``capture | shift``.
        chain_load = replicas(m, capture_d, R, "chain_load")
        chain_move = replicas(m, capture_d | shift_d, R, "chain_move")
        m.d.comb += [self.load.eq(Cat(chain_load)), self.move.eq(Cat(chain_move))]
        with m.If(capture):
            m.d.sync += [ch_count.eq(R * C), cap_pending.eq(0), t_drain.eq(t_pend),
                         ch_r.eq(0), ch_c.eq(0)]
        with m.Elif(shift):
            m.d.sync += ch_count.eq(ch_count - 1)
            with m.If(ch_c == C - 1):
                m.d.sync += [ch_c.eq(0), ch_r.eq(ch_r + 1)]
            with m.Else():
                m.d.sync += ch_c.eq(ch_c + 1)
            with m.If(ch_last & t_drain.last_m):
                for b in range(2):
                    with m.If(t_drain.bank == b):
                        m.d.sync += dr_free[b].eq(~dr_free[b])

        in_tile, is_last = self._position(m, capture, shift, ch_r, ch_c, t_pend, t_drain)

        # credits: with "spread" the FIFO's reads reach the count one clock late, through a
        # register of their own (the FIFO sits by the output port, the count by the chain's
        # head), and the FIFO holds one more
        depth = out_fifo_depth(cfg)
        inflight = Signal(range(depth + 1))
        credit = Signal(init=1)            # inflight < depth - 1, kept as a register
        m.d.comb += shift_d.eq(ch_go & credit)
        m.d.sync += shift.eq(shift_d)
        returned = replicas(m, self.returned, 1, "returned")[0] if spread else self.returned
        entering = shift & in_tile
        with m.If(entering & ~returned):
            m.d.sync += [inflight.eq(inflight + 1), credit.eq(inflight < depth - 2)]
        with m.Elif(~entering & returned):
            m.d.sync += [inflight.eq(inflight - 1), credit.eq(inflight < depth)]
        with m.Else():
            m.d.sync += credit.eq(inflight < depth - 1)

        head = self.head
        m.d.comb += [
            self.idle.eq(is_const(ch_count, 0) & ~cap_pending), self.banks.free.eq(dr_free),
            head.bank.eq(t_drain.bank), head.col.eq(ch_c), head.tile_bank.eq(t_pend.bank),
            head.load.eq(capture_d), head.move.eq(capture_d | shift_d),
            self.entry.valid.eq(shift & in_tile), self.entry.meta.last.eq(is_last),
            self.entry.meta.last_layer.eq(is_last & t_drain.last_layer),
        ]
        return m

    def _position(self, m, capture, shift, ch_r, ch_c, t_pend, t_drain):
        """Whether the head's entry is inside its tile, and whether it is the tile's last. With
        "spread" the two are registered with the head's position: loaded from the next values
        (ch_r, ch_c and t_drain change only at a capture and a shift), so that the credit
        count's enable is not behind the comparisons. (They differ from the comparisons only
        after the last shift, where ch_r wraps and neither is read.)"""
        if not self._config.spread:
            return ((ch_r < t_drain.rows) & (ch_c < t_drain.cols),
                    (ch_r == t_drain.rows - 1) & (ch_c == t_drain.cols - 1))
        R, C = self._config.rows, self._config.cols
        in_tile, is_last = Signal(), Signal()
        wrap = ch_c == C - 1
        # the tile's bounds as the comparisons need them (a tile has at least one row and one
        # column), registered at the capture with t_drain: no adder before the flags
        rows_m1, rows_m2 = (Signal(range(max(2, R)), name=f"drain_rows_m{j}") for j in (1, 2))
        cols_m1, cols_m2 = (Signal(range(max(2, C)), name=f"drain_cols_m{j}") for j in (1, 2))
        rows_ge2, cols_ge2, cols_is1 = (Signal(name=f"drain_{n}")
                                        for n in ("rows_ge2", "cols_ge2", "cols_is1"))
        with m.If(capture):
            m.d.sync += [in_tile.eq((0 < t_pend.rows) & (0 < t_pend.cols)),
                         is_last.eq((t_pend.rows == 1) & (t_pend.cols == 1)),
                         rows_m1.eq(t_pend.rows - 1), rows_m2.eq(t_pend.rows - 2),
                         cols_m1.eq(t_pend.cols - 1), cols_m2.eq(t_pend.cols - 2),
                         rows_ge2.eq(t_pend.rows >= 2), cols_ge2.eq(t_pend.cols >= 2),
                         cols_is1.eq(t_pend.cols == 1)]
        with m.Elif(shift):
            m.d.sync += [
                in_tile.eq(Mux(wrap, (ch_r < rows_m1) & (0 < t_drain.cols),
                               (ch_r < t_drain.rows) & (ch_c < cols_m1))),
                is_last.eq(Mux(wrap, rows_ge2 & (ch_r == rows_m2) & cols_is1,
                               (ch_r == rows_m1) & cols_ge2 & (ch_c == cols_m2))),
            ]
        return in_tile, is_last
