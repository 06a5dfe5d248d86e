"""The drain of the PE array: the PEs' sums captured at a tile's end and shifted out one per
clock (:class:`DrainChain`), and its control (:class:`DrainControl`).

Entry ``i`` (``r * cols + c``: row-major) is PE ``(r, c)``'s. In the clock a row's ``load`` and
``move`` are both high, that row's shadow registers take their PEs' entries; with ``move``
alone each register takes the next one's, so that the head (entry 0) presents the entries in
order, while the PEs already accumulate the next tile. The enables come per row, so that the
array can give each row its own copy of them (no flip-flop drives the whole array).

The PE array's chain moves every clock (``move`` high: its registers have no enable), so
only ``load`` reaches them, through a tree of copies; :class:`DrainControl` captures a tile
only when the output FIFO has room for all of it, so that the chain never waits.
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
    since the last capture are ever read.

    ``load_share``: ``None``, ``load[r]`` is row ``r``'s load enable in the clock it loads; an
    int, ``load[r]`` is that enable a clock early, and the chain takes it through registered
    copies, one per ``load_share`` entries of the row, each selecting the load of its entries
    (a long row is not one fan-out)."""

    def __init__(self, *, rows, cols, entry, load_share=None):
        for name, value in (("rows", rows), ("cols", cols)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(entry, data.Layout):
            raise TypeError(f"entry must be a data.Layout, not {type(entry).__name__}")
        if load_share is not None and (not isinstance(load_share, int)
                                       or isinstance(load_share, bool) or load_share < 1):
            raise ValueError(f"load_share must be None or a positive integer, "
                             f"not {load_share!r}")
        self._rows, self._cols, self._entry = rows, cols, entry
        self._load_share = load_share
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
        share = self._load_share
        for r in range(rows):
            load = [self.load[r]] * cols
            if share is not None:
                copies = replicas(m, self.load[r], -(-cols // share), f"load{r}")
                load = [copies[c // share] for c in range(cols)]
            with m.If(self.move[r]):
                for c in range(cols):
                    i = r * cols + c
                    if i + 1 < count:
                        m.d.sync += chain[i].eq(Mux(load[c], self.entries[i], chain[i + 1]))
                    else:                        # the tail: after a shift it is never read
                        m.d.sync += chain[i].eq(self.entries[i])
        m.d.comb += self.head.eq(chain[0])
        return m


#: Entries of a row of the drain chain that share one copy of its load enable (``"spread"``).
LOAD_SHARE = 4


def out_fifo_depth(config):
    """Entries of the array's output FIFO: a whole tile (``rows * cols``) beside the results in
    flight when the next tile is captured with ``tready`` high (``final_latency`` clocks, the
    FIFO's own two, one for the registered room check and one with ``"spread"``, where the
    FIFO's reads reach the count through a register of their own), so that the chain never
    waits; rounded up to a power of two. (With ``fifo_cut`` the FIFO's read-ahead queue comes on
    top.)"""
    need = config.rows * config.cols + config.final_latency + 3 + config.spread
    return 1 << (need - 1).bit_length()


class DrainControl(wiring.Component):
    """When the drain chain loads and shifts, and what its head's entry is.

    At a capture the chain takes the PEs' states; it moves every clock, and for ``rows *
    cols`` clocks after a capture (``shift``) its head's entry goes into the finalizer, while
    the entry is inside the tile (ragged tiles leave unused entries, shifted out without a
    result). The finalizer never stalls: results collect in an output FIFO
    (:func:`out_fifo_depth`), and a tile is captured only when every entry in flight
    (finalizer stages and FIFO) and all of the tile's fit in it (``idle``), so no ready signal
    ripples back through the finalizer or the chain. The drain of an M tile's last N tile
    releases the tile's weight bank.

    Members
    -------
    capture : In(hw.grid.CaptureSignature)
    tile : In(hw.sequencer.TileSignature(config))
    returned : In(1)
        A result left the output FIFO.
    load : Out(rows)
        The chain's load enables (:class:`DrainChain`, whose ``move`` is high), one per row;
        with ``"spread"`` a clock early, for a chain with ``load_share`` :data:`LOAD_SHARE`.
    head : Out(hw.channels.HeadSignature(config))
    entry : Out(StructLayout({"valid", "meta": hw.finalizer.array_meta_layout()}))
        The head's entry goes to the finalizer (``valid``), with its tile's ``last`` and the
        layer's ``last_layer``.
    banks : In(hw.loader.BankSignature)
        Drives ``free``: toggled when a bank is released.
    idle : Out(1)
        The chain holds no entry, no capture is pending, and the output FIFO has room for a
        tile beside the results in flight (a register: one clock stale, which is safe, as
        while the chain holds no entry the room only grows).
    """

    def __init__(self, *, config):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        self._config = config
        super().__init__({
            "capture": In(CaptureSignature),
            "tile": In(TileSignature(config)),
            "returned": In(1),
            "load": Out(config.rows),
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
        capture_dd = self.capture.ahead
        t_pend = self.tile.desc
        t_drain = Signal(tile_layout(cfg))
        ch_count = Signal(range(R * C + 1))
        cap_pending = Signal()
        ch_r = Signal(range(max(2, R)))
        ch_c = Signal(range(max(2, C)))
        dr_free = Signal(2)
        with m.If(self.tile.end):
            m.d.sync += cap_pending.eq(1)
        # shift: the head holds an entry of the tile being drained (the chain itself moves
        # every clock); a flip-flop, set for the next clock when the chain will hold entries
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
        # The shadow registers' load enable reaches R*C entries of ~pe_acc_width bits each,
        # spread over the whole array: each row of entries has its own copy (see ``replicas``),
        # loaded with the next value of ``capture``; with "spread" the value two clocks ahead,
        # for the chain's copies per LOAD_SHARE entries.
        chain_load = replicas(m, capture_dd if spread else capture_d, R, "chain_load")
        m.d.comb += self.load.eq(Cat(chain_load))
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

        # the results in flight (finalizer and FIFO); with "spread" the FIFO's reads reach the
        # count one clock late, through a register of their own (the FIFO sits by the output
        # port, the count by the chain's head), and the FIFO holds one more. room(t):
        # inflight(t - 1) <= depth - R*C - 1, so inflight(t) <= depth - R*C: a tile fits.
        depth = out_fifo_depth(cfg)
        inflight = Signal(range(depth + 1))
        room = Signal(init=1)
        m.d.comb += shift_d.eq(ch_go)
        m.d.sync += [shift.eq(shift_d), room.eq(inflight <= depth - R * C - 1)]
        returned = replicas(m, self.returned, 1, "returned")[0] if spread else self.returned
        entering = shift & in_tile
        with m.If(entering & ~returned):
            m.d.sync += inflight.eq(inflight + 1)
        with m.Elif(~entering & returned):
            m.d.sync += inflight.eq(inflight - 1)

        head = self.head
        m.d.comb += [
            self.idle.eq(is_const(ch_count, 0) & ~cap_pending & room),
            self.banks.free.eq(dr_free),
            head.bank.eq(Mux(capture, t_pend.bank, t_drain.bank)),
            head.col.eq(Mux(capture | (shift & (ch_c == C - 1)), 0, ch_c + shift)),
            head.tile_bank.eq(t_pend.bank),
            head.load.eq(capture_d),
            self.entry.valid.eq(shift & in_tile), self.entry.meta.last.eq(is_last),
            self.entry.meta.last_layer.eq(is_last & t_drain.last_layer),
        ]
        return m

    def _position(self, m, capture, shift, ch_r, ch_c, t_pend, t_drain):
        """Whether the head's entry is inside its tile, and whether it is the tile's last. With
        "spread" the two are registered with the head's position: loaded from the next values
        (ch_r, ch_c and t_drain change only at a capture and a shift), so that the inflight
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
