"""Harness: the tile sequencer (:class:`hw.sequencer.TileSequencer`) visits every (N tile,
M tile) exactly once, in stream order, with the documented ragged edges.

The sequencer runs behind the real layer control (:class:`hw.layer.LayerControl`, from a free
``START`` with free ``N``, ``K``, ``M``; one layer per trace) on a free activation stream (any
``tvalid`` and ``tlast``), a free ``drain_idle``, and bank flags moved by the environment as the
loader and the drain move them: the loader fills bank 0, 1, 0... once per M tile, only a free
bank; the drain releases a full bank only after the sequencer ended the last N tile of that
bank's M tile. A reference walks ``ArrayConfig.tiles`` order (M tiles outer, N tiles inner);
the harness asserts that at each tile end the descriptor is the reference's next tile (valid
rows ``min(rows, N - n0)``, valid columns ``min(cols, M - m0)``, bank ``t % 2``, last N tile,
last tile of the layer; ``desc`` shows it from the clock after ``end``), that the tile took
exactly ``K`` beats, and that no tile ends after the last one.

Proved by SAT bounded model checking from reset (:func:`hw.formal.run_sat` ``seq``).

``fault`` (:data:`SEQUENCER_FAULTS`): ``rows`` (the descriptor's valid rows read one less on
a ragged tile), ``bank`` (the descriptor's bank bit flipped), for the tests that check that the
proof can fail.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from contract.array import ArrayConfig

from ..layer import LayerControl
from ..sequencer import TileSequencer

__all__ = ["TileSequencerProof", "SEQUENCER_FAULTS"]

SEQUENCER_FAULTS = ("rows", "bank")


class TileSequencerProof(wiring.Component):
    """Harness of the tile sequencer of ``config`` (module docstring); ``N``, ``M`` and ``K``
    are bounded by ``max_n``, ``max_m``, ``max_k``."""

    def __init__(self, *, config, max_n=None, max_m=None, max_k=2, fault=None):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        if fault is not None and fault not in SEQUENCER_FAULTS:
            raise ValueError(f"fault must be None or one of {', '.join(SEQUENCER_FAULTS)}, "
                             f"not {fault!r}")
        self._config, self._fault = config, fault
        self._max = (max_n or 2 * config.rows + 1, max_m or 2 * config.cols + 1, max_k)
        super().__init__({
            "start": In(1), "n": In(4), "k": In(4), "m": In(4),
            "act_valid": In(1), "act_last": In(1), "drain_idle": In(1),
            "fill_go": In(1), "release": In(2),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fault = self._config, self._fault
        R, C = cfg.rows, cfg.cols
        max_n, max_m, max_k = self._max
        m.submodules.layer = layer = LayerControl(config=cfg)
        m.submodules.seq = seq = TileSequencer(config=cfg)
        # -- one layer from a free START, no reset (the soak resets layers) --------------------
        m.d.comb += Assume(~ResetSignal())
        started = Signal()
        with m.If(self.start):
            m.d.sync += started.eq(1)
        m.d.comb += [
            Assume(~self.start | ~started),
            Assume(self.n >= 1), Assume(self.n <= max_n), Assume(self.m >= 1),
            Assume(self.m <= max_m), Assume(self.k >= 1), Assume(self.k <= max_k),
            layer.start.eq(self.start), layer.n.eq(self.n), layer.k.eq(self.k),
            layer.m.eq(self.m), layer.e0.eq(0), layer.finish.eq(0),
        ]
        n_q, k_q, m_q = Signal(4), Signal(4), Signal(4)
        m.d.sync += [n_q.eq(self.n), k_q.eq(self.k), m_q.eq(self.m)]
        with m.If(started):
            m.d.comb += [Assume(self.n == n_q), Assume(self.k == k_q), Assume(self.m == m_q)]
        wiring.connect(m, layer=layer.layer, seq=seq.layer)
        m.d.comb += [seq.act.valid.eq(self.act_valid), seq.act.payload.last.eq(self.act_last),
                     seq.drain_idle.eq(self.drain_idle)]
        # -- bank flags: the loader fills in order, the drain releases ended M tiles -----------
        fill, free = Signal(2), Signal(2)
        full = fill ^ free
        lb = Signal()                                   # the bank the loader fills next
        fills = Signal(4)
        m_tiles = (self.m + C - 1) // C
        m.d.comb += [Assume(~self.fill_go | (started & ~full.bit_select(lb, 1)
                                             & (fills < m_tiles))),
                     seq.banks.fill.eq(fill), seq.banks.fill_c.eq(fill),
                     seq.banks.free.eq(free)]
        with m.If(self.fill_go):
            m.d.sync += [fill.eq(fill ^ Mux(lb, 0b10, 0b01)), lb.eq(~lb), fills.eq(fills + 1)]
        ended = Signal(2)                               # the bank's M tile has ended
        end, desc = seq.tile.end, seq.tile.desc
        for b in range(2):
            m.d.comb += Assume(~self.release[b] | (full[b] & ended[b]))
            with m.If(self.release[b]):
                m.d.sync += ended[b].eq(0)
            with m.Elif(end & desc.last_m & (desc.bank == b)):
                m.d.sync += ended[b].eq(1)
        m.d.sync += free.eq(free ^ self.release)
        # -- reference walk of the tiles -------------------------------------------------------
        tn, tm = Signal(4), Signal(4)                   # the next tile's indices
        done = Signal()
        n_tiles = (self.n + R - 1) // R
        rows = Mux(self.n - tn * R >= R, R, self.n - tn * R)
        cols = Mux(self.m - tm * C >= C, C, self.m - tm * C)
        last_n = tn == n_tiles - 1
        last_m_tile = tm == m_tiles - 1
        beats = Signal(4)
        with m.If(seq.beat.meta.valid):
            m.d.sync += beats.eq(Mux(seq.beat.meta.last, 0, beats + 1))
        got_rows = desc.rows - ((fault == "rows") & (desc.rows != R))
        got_bank = desc.bank ^ (fault == "bank")
        # the descriptor of a tile is on ``desc`` from the clock after its ``end``
        end_q = Signal()
        m.d.sync += end_q.eq(end)
        with m.If(end):
            m.d.comb += Assert(~done, "a tile ended after the layer's last one")
        with m.If(end_q):
            m.d.comb += [
                Assert(got_rows == rows, "valid rows differ from the reference tile's"),
                Assert(desc.cols == cols, "valid columns differ from the reference tile's"),
                Assert(got_bank == tm[0], "the tile's bank is not its M tile's"),
                Assert(desc.last_m == last_n, "last N tile flag differs"),
                Assert(desc.last_layer == (last_n & last_m_tile), "last tile flag differs"),
            ]
            with m.If(last_n):
                m.d.sync += [tn.eq(0), tm.eq(tm + 1), done.eq(last_m_tile)]
            with m.Else():
                m.d.sync += tn.eq(tn + 1)
        with m.If(seq.beat.meta.valid & seq.beat.meta.last):
            m.d.comb += Assert(beats == self.k - 1, "a tile of other than K beats")
        return m
