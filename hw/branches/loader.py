"""Weight loader of the multi-branch array: the weight stream into the columns' stores.

Per M tile (``cols`` channels, the last tile ``M mod cols``) and channel: the header word (the
channel's raw weight scale, float-path arrays only) goes into a scale register of the tile's
bank; the packed code words (branch packing version 1) pass a gearbox that cuts the bit stream
into store entries of ``lanes * wbits`` bits (one chunk), written to entry ``0 .. chunks - 1``
of the bank in the channel's column. The last entry of a channel is zero-filled past the last
word and its lanes past ``K`` are forced to code 0. A word is taken only while the gearbox holds
fewer bits than an entry, and an entry is written per clock otherwise, so the stream may stall.

Banks alternate per M tile; a bank is *full* once its tile is loaded and is not loaded again
until ``release`` frees it (its tile has drained). The loader checks the framing: ``tlast`` on
the last word of every channel and on no other word (``err`` pulses otherwise).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract.array import MAX_NM
from contract.branch_array import BranchArrayConfig

from ..stages import is_const

__all__ = ["WeightLoader", "wgt_layout", "NM_BITS"]

NM_BITS = MAX_NM.bit_length()


def wgt_layout():
    return data.StructLayout({"word": unsigned(32), "last": unsigned(1)})


class WeightLoader(wiring.Component):
    """Members
    -------
    wgt : In(stream.Signature(wgt_layout()))
    go : In(1)
        Pulse: a layer starts with ``m``, ``chunks``, ``words`` (code words per channel) and
        ``lane_mask`` (lanes of a channel's last chunk that are inside ``K``), held during the
        layer. Both banks become empty.
    release : In(2)
        Pulses: bank ``b``'s tile has drained; the bank may be loaded again.
    full : Out(2)
        Bank ``b`` holds a loaded tile.
    w_en : Out(cols); w_addr : Out(range(2 * chunks_max)); w_data : Out(entry_bits)
        Store write (column ``c`` when ``w_en[c]``), address ``Cat(entry, bank)``.
    scales : Out(ArrayLayout(scale width, 2 * cols))
        The channels' weight scales, bank ``b`` column ``c`` at ``b * cols + c`` (float path).
    err : Out(1)
        Pulse: a word's ``tlast`` is not where the framing puts it.
    waiting : Out(1)
        The loader has a tile to load and a free bank but no word (a stream stall).
    """

    def __init__(self, *, config):
        if not isinstance(config, BranchArrayConfig):
            raise TypeError(f"config must be a BranchArrayConfig, not {config!r}")
        self._config = config
        cfg = config
        swidth = cfg.scale_fmt.width if cfg.float_path else 1
        super().__init__({
            "wgt": In(stream.Signature(wgt_layout())),
            "go": In(1), "m": In(NM_BITS), "chunks": In(range(cfg.chunks_max + 1)),
            "words": In(range(cfg.chunks_max * cfg.entry_bits // 32 + 2)),
            "lane_mask": In(cfg.lanes),
            "release": In(2), "full": Out(2),
            "w_en": Out(cfg.cols), "w_addr": Out(range(2 * cfg.chunks_max)),
            "w_data": Out(cfg.entry_bits),
            "scales": Out(data.ArrayLayout(unsigned(swidth), 2 * cfg.cols)),
            "err": Out(1), "waiting": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        C, E, wb = cfg.cols, cfg.entry_bits, cfg.wbits
        entry_bits = max(1, (cfg.chunks_max - 1).bit_length())

        active = Signal()                          # tiles left to load
        m_left = Signal(NM_BITS)
        bank = Signal()
        col = Signal(range(max(2, C)))
        cols_valid = Signal(range(C + 1))
        hdr = Signal()                             # the channel's header word comes next
        words_left = Signal.like(self.words)
        entries_left = Signal.like(self.chunks)
        entry = Signal(entry_bits)
        nb = Signal(range(E + 33))                 # bits held by the gearbox
        buf = Signal(E + 31, reset_less=True)
        full = Signal(2)
        scales = Signal.like(self.scales, reset_less=True)
        mask = Signal(E)                           # the last chunk's lanes inside K, per bit
        m.d.comb += [mask.eq(Cat(self.lane_mask[lane].replicate(wb)
                                 for lane in range(cfg.lanes))),
                     self.full.eq(full), self.scales.eq(scales)]

        def channel_start():
            return [hdr.eq(cfg.float_path), words_left.eq(self.words),
                    entries_left.eq(self.chunks), entry.eq(0), nb.eq(0), buf.eq(0)]

        filled = Signal(2)                         # the bank whose tile was just loaded
        m.d.sync += full.eq((full & ~self.release) | filled)
        with m.If(self.go):
            m.d.sync += [active.eq(1), m_left.eq(self.m), bank.eq(0), col.eq(0),
                         cols_valid.eq(Mux(self.m > C, C, self.m)), full.eq(0),
                         *channel_start()]
        loading = active & ~Mux(bank, full[1], full[0])
        emit = loading & ~hdr & entries_left.any() & ((nb >= E) | ~words_left.any())
        take = loading & self.wgt.valid & ~emit & (hdr | (words_left.any() & (nb < E)))
        m.d.comb += [self.wgt.ready.eq(loading & ~emit & (hdr | (words_left.any() & (nb < E)))),
                     self.waiting.eq(self.wgt.ready & ~self.wgt.valid)]
        last_word = ~hdr & (words_left == 1)
        m.d.comb += self.err.eq(take & (self.wgt.payload.last != last_word))

        with m.If(take & hdr):
            for b in range(2):
                for c in range(C):
                    with m.If((bank == b) & is_const(col, c)):
                        m.d.sync += scales[b * C + c].eq(self.wgt.payload.word)
            m.d.sync += hdr.eq(0)
        with m.Elif(take):
            m.d.sync += [buf.eq(buf | (self.wgt.payload.word << nb)), nb.eq(nb + 32),
                         words_left.eq(words_left - 1)]

        last_entry = entries_left == 1
        m.d.comb += [
            self.w_en.eq(Mux(emit, 1 << col, 0)),
            self.w_addr.eq(Cat(entry, bank)),
            self.w_data.eq(buf[:E] & Mux(last_entry, mask, (1 << E) - 1)),
        ]
        with m.If(emit):
            m.d.sync += [buf.eq(buf >> E), nb.eq(Mux(nb > E, nb - E, 0)),
                         entries_left.eq(entries_left - 1), entry.eq(entry + 1)]
            with m.If(last_entry):
                m.d.sync += channel_start()
                with m.If(col == cols_valid - 1):
                    rest = m_left - C
                    m.d.comb += filled.eq(Mux(bank, 0b10, 0b01))
                    m.d.sync += [bank.eq(~bank), col.eq(0),
                                 m_left.eq(rest), active.eq(m_left > C),
                                 cols_valid.eq(Mux(rest > C, C, rest))]
                with m.Else():
                    m.d.sync += col.eq(col + 1)
        return m
