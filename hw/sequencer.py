"""The tile sequencer of the PE array: which activation beat the PE grid takes, and when.

The compute side runs M tile ``t`` (weight bank ``t % 2``) over all N tiles, one ``k`` per
clock: beat ``k`` of an N tile carries the activations of its ``rows`` rows. A tile's last beat
is accepted only when the drain chain is free, so that the capture one pipeline delay later
never overwrites undrained results; the clock after a tile's last beat is a bubble (the PEs
restart). An M tile's bank is used once the loader has filled it and until the drain releases
it (:data:`hw.loader.BankSignature`).

Each accepted beat goes to the grid with its side data (:func:`beat_layout`: ``valid``,
``last`` of its tile, ``clear`` at a layer start, the ``live`` rows, the weight-store address);
at a tile's last beat the tile's descriptor (:func:`tile_layout`) goes to the drain control.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract.array import ArrayConfig

from .layer import NM_BITS, LayerSignature, addr_bits, k_bits
from .loader import BankViewSignature
from .stages import KEEP, equal_by_carries, is_const, minus_floor0, registered, tile_size

__all__ = ["TileSequencer", "act_layout", "beat_layout", "tile_layout", "BeatSignature",
           "TileSignature"]


def act_layout(config):
    """An activation beat: ``rows`` lanes of ``lane_width`` bits (``in_fmt``, the MX scale
    above it); ``last`` on beat ``K-1`` of every tile."""
    return data.StructLayout({
        "x": data.ArrayLayout(config.lane_width, config.rows), "last": 1})


def beat_layout(config):
    """The side data of a beat into the grid: a term (``valid``), the tile's last beat
    (``last``), a layer start (``clear``: the clock has no beat), rows that hold a real term
    (``live``), and the weight-store address of the beat's ``k`` (bank in the top bit)."""
    return data.StructLayout({"valid": 1, "last": 1, "clear": 1, "live": config.rows,
                              "addr": addr_bits(config) + 1})


def tile_layout(config):
    """A tile's descriptor: valid rows and columns, weight bank, last N tile of its M tile,
    last tile of the layer."""
    return data.StructLayout({"rows": range(config.rows + 1), "cols": range(config.cols + 1),
                              "bank": 1, "last_m": 1, "last_layer": 1})


def BeatSignature(config):
    """A beat into the grid, every clock: the activations and their side data."""
    return wiring.Signature({
        "x": Out(data.ArrayLayout(config.lane_width, config.rows)),
        "meta": Out(beat_layout(config))})


def TileSignature(config):
    """``end``: a tile's last beat was accepted; ``desc``: that tile's descriptor (held until
    the next tile's end)."""
    return wiring.Signature({"end": Out(1), "desc": Out(tile_layout(config))})


class TileSequencer(wiring.Component):
    """The compute side's sequencing (see the module docstring).

    Members
    -------
    act : In(stream.Signature(act_layout(config)))
    layer : In(LayerSignature(config))
    banks : In(BankViewSignature)
    drain_idle : In(1)
        The drain chain holds no entry and no capture is pending.
    beat : Out(BeatSignature(config))
    tile : Out(TileSignature(config))
    err_act : Out(1)
        Pulse: ``act.last`` not on beat ``K-1`` of a tile.
    active, stall_act, stall_wgt, stall_drain : Out(1)
        Counter events: a beat accepted; waiting for a beat (weights ready, drain free);
        waiting for weights; a tile's last beat waiting for the drain.
    """

    def __init__(self, *, config):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        self._config = config
        super().__init__({
            "act": In(stream.Signature(act_layout(config))),
            "layer": In(LayerSignature(config)),
            "banks": In(BankViewSignature),
            "drain_idle": In(1),
            "beat": Out(BeatSignature(config)),
            "tile": Out(TileSignature(config)),
            "err_act": Out(1),
            "active": Out(1), "stall_act": Out(1), "stall_wgt": Out(1), "stall_drain": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        R, C = cfg.rows, cfg.cols
        spread = cfg.spread
        first, held = self.layer.first, self.layer.held
        clear = self.layer.go                      # a layer starts: the accumulators restart

        c_active = Signal()                        # a tile remains to be computed
        c_last = Signal()                          # c_k == K - 1
        c_last_next = Signal()                     # its next value
        m.d.comb += c_last_next.eq(c_last)
        m.d.sync += c_last.eq(c_last_next)
        c_rem_m = Signal(NM_BITS)                  # channels not yet computed
        c_rem_n = Signal(NM_BITS)                  # activation rows left in this M tile
        c_k = Signal(k_bits(cfg))
        c_bank = Signal()
        # c_k == K - 2: a register (loaded with c_k == K - 3 and so on), so that c_last's next
        # value is not behind a comparator
        c_pen = Signal()
        with m.If(clear):
            m.d.comb += c_last_next.eq(first.k1)
            m.d.sync += [c_active.eq(1), c_rem_m.eq(first.m), c_rem_n.eq(first.n),
                         c_k.eq(0), c_bank.eq(0), c_pen.eq(first.k2)]

        # The counters move on in the bubble after a tile's last beat (``gap``), from
        # registers: no logic behind ``accept`` but the enables. Everything they load is
        # precomputed (registered) from values that have held still since the last update,
        # which was at least ``capture_latency + rows * cols + 2`` clocks earlier (a tile's
        # last beat waits for the previous tile's drain).
        # the clock after a tile's last beat is a bubble (restart); kept, as the grid's input
        # cut registers the same value near the rows and Yosys would merge this one into it
        gap = Signal(attrs=KEEP)
        # registered: the weights of the bank being computed are loaded. One clock late, which
        # is conservative; low in the clock after a bubble that moves to the other bank.
        c_ready_w = Signal()
        rows_valid = Signal(range(R + 1))
        cols_valid = Signal(range(C + 1))
        last_n, last_m = Signal(), Signal()
        banks = self.banks
        bank_full_c = banks.fill_c ^ banks.free
        c_ready_w_next = c_active & Array(bank_full_c)[c_bank] & ~(gap & last_n)
        m.d.sync += c_ready_w.eq(c_ready_w_next)
        # registered (one clock late, conservative: a capture needs a last beat, and the
        # clock after a last beat is a bubble)
        chain_free = Signal()
        m.d.sync += chain_free.eq(self.drain_idle)
        # c_rdy = c_ready_w & (~c_last | chain_free), a register loaded with the next values:
        # ``accept`` is one LUT from flip-flops (and the loop gap -> accept -> gap short)
        c_rdy = Signal()
        m.d.sync += c_rdy.eq(c_ready_w_next & (~c_last_next | self.drain_idle))
        accept_ok = c_rdy & ~gap
        m.d.comb += self.act.ready.eq(accept_ok)
        accept = accept_ok & self.act.valid
        # the remaining sizes after this tile (registered with "spread": they are needed at
        # the next tile's end; the UP5K cannot spare the 48 flip-flops and needs no register)
        c_rem_n_next = c_rem_n - R
        if spread:
            c_rem_n_next = Signal(NM_BITS)
            m.d.sync += c_rem_n_next.eq(c_rem_n - R)
        c_rem_m_next = minus_floor0(m, c_rem_m, C, "c_rem_m_next", registered=spread)
        # (the upper parts of the next sizes are registered flags, so that the 24-bit chains
        # or reductions end in a flip-flop: two clocks behind c_rem_* with "spread", where the
        # next sizes themselves are registers; one with "compact", where each flag is two
        # comparisons of c_rem_* with constants, two carry chains side by side, instead of a
        # subtraction followed by a reduction of its upper bits)
        bits_n, bits_m = R.bit_length(), C.bit_length()
        if spread:
            high_n = c_rem_n_next[bits_n:].any()
            high_m = c_rem_m_next[bits_m:].any()
        else:   # c_rem_n - R is negative, or at least 2**bits_n; max(c_rem_m - C, 0) is
            high_n = (c_rem_n < R) | (c_rem_n >= R + (1 << bits_n))
            high_m = c_rem_m >= C + (1 << bits_m)
        high_n, high_m = registered(m, high_n, "rem_n_high"), registered(m, high_m, "rem_m_high")

        rows_mask = Signal(R)                      # lane r < rows_valid
        rows_first, last_n_first, mask_first = tile_size(m, first.n, R, "rows_first",
                                                         first.n_high)
        cols_first, last_m_first, _ = tile_size(m, first.m, C, "cols_first", first.m_high)
        rows_again, last_n_again, mask_again = tile_size(m, held.n, R, "rows_again",
                                                         held.n_high)     # a new M tile
        rows_next, last_n_next, mask_next = tile_size(m, c_rem_n_next, R, "rows_next", high_n)
        cols_next, last_m_next, _ = tile_size(m, c_rem_m_next, C, "cols_next", high_m)
        with m.If(clear):
            m.d.sync += [rows_valid.eq(rows_first), last_n.eq(last_n_first),
                         rows_mask.eq(mask_first),
                         cols_valid.eq(cols_first), last_m.eq(last_m_first)]
        with m.If(gap):
            with m.If(last_n & last_m):
                m.d.sync += c_active.eq(0)
            with m.If(last_n):
                m.d.sync += [c_rem_n.eq(held.n), c_rem_m.eq(c_rem_m_next), c_bank.eq(~c_bank),
                             rows_valid.eq(rows_again), last_n.eq(last_n_again),
                             rows_mask.eq(mask_again),
                             cols_valid.eq(cols_next), last_m.eq(last_m_next)]
            with m.Else():
                m.d.sync += [c_rem_n.eq(c_rem_n_next),
                             rows_valid.eq(rows_next), last_n.eq(last_n_next),
                             rows_mask.eq(mask_next)]
        # the tile descriptor, travelling with the last beat to the capture
        t_pend = Signal(tile_layout(cfg))
        m.d.sync += gap.eq(accept & c_last)
        with m.If(accept):
            m.d.sync += c_k.eq(c_k + 1)
            # c_last (registered): the beat being accepted is beat K-1 of its tile
            m.d.comb += c_last_next.eq(Mux(c_last, held.k1, c_pen))
            m.d.sync += c_pen.eq(Mux(c_last, is_const(held.km2, 0),
                                     equal_by_carries(c_k, held.km3)))
            with m.If(self.act.payload.last != c_last):
                m.d.comb += self.err_act.eq(1)
            with m.If(c_last):
                m.d.sync += [
                    c_k.eq(0),
                    t_pend.rows.eq(rows_valid), t_pend.cols.eq(cols_valid),
                    t_pend.bank.eq(c_bank), t_pend.last_m.eq(last_n),
                    t_pend.last_layer.eq(last_n & last_m),
                ]

        meta = self.beat.meta
        m.d.comb += [
            self.beat.x.eq(self.act.payload.x),
            meta.valid.eq(accept), meta.last.eq(accept & c_last), meta.clear.eq(clear),
            meta.live.eq(accept.replicate(R) & rows_mask),
            meta.addr.eq(Cat(c_k[:addr_bits(cfg)], c_bank)),
            self.tile.end.eq(accept & c_last), self.tile.desc.eq(t_pend),
            self.active.eq(accept),
            self.stall_act.eq(accept_ok & ~self.act.valid),
            self.stall_wgt.eq(c_active & ~Array(banks.fill ^ banks.free)[c_bank]),
            self.stall_drain.eq(c_ready_w & c_last & ~chain_free),
        ]
        return m
