"""The weight loader of the PE array: the weight stream into the weight stores and the channel
headers.

The weight stream carries, per output channel, a bias word, an ``e0`` word and the channel's
packed codes (``contract.array.weight_stream``). The loader fills bank ``t % 2`` of every
column's weight store with M tile ``t`` (``cols`` channels, one per column), unpacking one code
per clock, while the compute side runs M tile ``t - 1`` from the other bank. The header words
go to :class:`hw.channels.ChannelParams`.

A bank is full from the loader's last code of an M tile to the drain of that tile's last N
tile. Each side owns one flag per bank and toggles it (the loader at a fill, the drain at a
release, :data:`BankSignature`), so that no register takes logic from both sides, far apart on
a large array; the bank is full while they differ. Both are equal whenever the core is idle,
so a layer start needs no clear.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from contract.array import ArrayConfig

from .layer import NM_BITS, LayerSignature, addr_bits, k_bits
from .stages import (
    KEEP,
    equal_by_carries,
    is_const,
    minus_floor0,
    reduce_groups,
    registered,
    replicas,
    tile_size,
)

__all__ = ["WeightLoader", "LoadPhase", "wgt_layout", "StoreWriteSignature",
           "HeaderWriteSignature", "BankSignature", "BankViewSignature"]


class LoadPhase(enum.Enum, shape=2):
    """What the loader takes next within a channel."""
    BIAS = 0
    E0 = 1
    CODES = 2


def wgt_layout():
    return data.StructLayout({"word": 32, "last": 1})


def StoreWriteSignature(config):
    """The write port of every column's weight store: one address and code, one enable per
    column."""
    return wiring.Signature({"addr": Out(addr_bits(config) + 1), "data": Out(config.wbits),
                             "en": Out(config.cols)})


def HeaderWriteSignature(config):
    """Channel header writes: ``en[bank][col]`` bit 0 writes the bias, bit 1 the ``e0`` of that
    bank and column, from ``word``."""
    return wiring.Signature({
        "en": Out(data.ArrayLayout(data.ArrayLayout(2, config.cols), 2)), "word": Out(32)})


#: The bank flags, as the loader sees them: ``fill`` its flags, ``fill_c`` a copy of them for
#: the compute side (the same register with ``"compact"``), ``free`` the drain's flags.
BankSignature = wiring.Signature({"fill": Out(2), "fill_c": Out(2), "free": In(2)})

#: The bank flags, as a component that only reads them sees them (flip it).
BankViewSignature = wiring.Signature({"fill": Out(2), "fill_c": Out(2), "free": Out(2)})


class WeightLoader(wiring.Component):
    """The weight loader (see the module docstring).

    Members
    -------
    wgt : In(stream.Signature(wgt_layout()))
        Weight-stream words (``last`` ends a channel).
    layer : In(LayerSignature(config))
    store : Out(StoreWriteSignature(config))
    header : Out(HeaderWriteSignature(config))
    banks : Out(BankSignature)
    err_wgt, err_e0 : Out(1)
        One-clock pulses: ``last`` not on a channel's last word; a channel's ``e0`` outside
        the range (with ``e0`` per channel).
    """

    def __init__(self, *, config):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        self._config = config
        super().__init__({
            "wgt": In(stream.Signature(wgt_layout())),
            "layer": In(LayerSignature(config)),
            "store": Out(StoreWriteSignature(config)),
            "header": Out(HeaderWriteSignature(config)),
            "banks": Out(BankSignature),
            "err_wgt": Out(1), "err_e0": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        C, B = cfg.cols, cfg.wbits
        spread = cfg.spread
        kbits, abits = k_bits(cfg), addr_bits(cfg)
        layer, first, held = self.layer, self.layer.first, self.layer.held

        ld_active = Signal()                       # an M tile remains to be loaded
        ld_rem = Signal(NM_BITS)                   # channels still to load
        ld_bank = Signal()
        ld_c = Signal(range(max(2, C)))
        ld_phase = Signal(LoadPhase)
        ld_k = Signal(kbits)
        ld_k_last = Signal()                       # registered ld_k == K - 1
        # registered: the next code written completes the M tile (the channel's last code,
        # its last channel); kept beside ld_k_last, so that no chain of conditions sits
        # between the loader's enable and the bank flags
        ld_ending = Signal()
        ld_w = Signal(kbits + 3)                   # code words taken in this channel
        hold = Signal(32 + B - 1)
        nbits = Signal(range(32 + B))
        have_code = Signal()                       # registered nbits >= B (a short path)
        # the next values of ld_phase, ld_ending and have_code ("spread" keeps copies of them
        # by the bank flags, see below)
        ld_phase_n, ld_ending_n, have_code_n = Signal(LoadPhase), Signal(), Signal()
        m.d.comb += [ld_phase_n.eq(ld_phase), ld_ending_n.eq(ld_ending),
                     have_code_n.eq(have_code)]
        m.d.sync += [ld_phase.eq(ld_phase_n), ld_ending.eq(ld_ending_n),
                     have_code.eq(have_code_n)]
        # ("spread" copies ld_fill and ld_free: the originals carry ``keep`` as their copies do)
        ld_fill = Signal(2, attrs=KEEP if spread else {})
        dr_free = self.banks.free
        # ld_k == K - 2: a register (loaded with ld_k == K - 3 and so on), not a comparator
        ld_k_pen = Signal()

        with m.If(layer.go):
            m.d.comb += [ld_phase_n.eq(LoadPhase.BIAS), ld_ending_n.eq(0), have_code_n.eq(0)]
            m.d.sync += [ld_active.eq(1), ld_rem.eq(first.m), ld_bank.eq(0), ld_c.eq(0),
                         ld_k.eq(0), ld_k_last.eq(first.k1), ld_w.eq(0), nbits.eq(0),
                         ld_k_pen.eq(first.k2)]

        # min(ld_rem, C) and ld_rem <= C, registered (ld_rem is stable for K + 3 clocks)
        ld_cols, ld_last_tile, _ = tile_size(m, ld_rem, C, "ld_tile")
        # The loader works while ``ld_free``: a register, so that the loop from a completed M
        # tile (the bank full, ``ld_bank`` flipped) back to the loader's enables is cut. It is
        # one clock late, which is conservative: it is low the clock after an M tile is
        # complete and sees a released bank one clock after the release.
        ld_free = Signal(attrs=KEEP if spread else {})
        # ld_rem - ld_cols (registered with "spread"; ld_rem holds still for K + 3 clocks)
        ld_rem_next = minus_floor0(m, ld_rem, C, "ld_rem_next", registered=spread)
        ld_last_c = Signal()
        m.d.sync += ld_last_c.eq(ld_c == ld_cols - 1)
        # With "spread" the loader's two ends sit apart: the word side (header and code words,
        # the code register, the stores' write port) and the bank side (bank flags, remaining
        # channels). Each computes its enable from its own flip-flops: the word side from a
        # copy of ld_free, the bank side from a copy of "codes ready, the tile's last one"
        # (loaded from next values).
        ld_free_w = ld_free
        tile_loaded = Signal()
        # the loader's view of the bank flags; with "spread" the drain's release toggles reach
        # it through a copy of its own (the drain sits far from the loader): a released bank
        # is seen one clock later (``release_cut``), which is safe, as a release only ever
        # frees a bank
        bank_full_l = ld_fill ^ (registered(m, dr_free, "dr_free_l") if spread else dr_free)
        ld_free_next = ld_active & ~Array(bank_full_l)[ld_bank] & ~tile_loaded
        m.d.sync += ld_free.eq(ld_free_next)
        codes = ld_phase == LoadPhase.CODES
        if spread:
            ld_free_w = replicas(m, ld_free_next, 1, "ld_free_w")[0]
            # "codes, no whole code" and "codes, a code ready" as registers, loaded from the
            # next values of ld_phase and have_code, so that the loader's enables (and those of
            # nbits and have_code) are one LUT from flip-flops rather than a chain through the
            # phase decode
            ph2_word, ph2_emit = Signal(name="ld_ph2_word"), Signal(name="ld_ph2_emit")
            codes_n = ld_phase_n == LoadPhase.CODES
            m.d.sync += [ph2_word.eq(codes_n & ~have_code_n), ph2_emit.eq(codes_n & have_code_n)]
            take_hdr = ld_free_w & ~ph2_word & ~ph2_emit
            take_word, emit = ld_free_w & ph2_word, ld_free_w & ph2_emit
            # "codes ready, the tile's last" = codes_n & have_code_n & ld_ending_n, written out
            # as a choice on ld_free_w between what the branches below make of it when the
            # loader works and when it holds, so that ld_free_w, placed by the word side, is
            # one LUT from this copy. (A start, which clears the three, is taken only while
            # the loader is idle: ld_free_w low, the phase BIAS.)
            if_free = Mux(codes,
                          Mux(have_code,
                              ~ld_k_last & (nbits >= 2 * B) & ld_k_pen & ld_last_c,
                              self.wgt.valid & ld_ending),
                          self.wgt.valid & (ld_phase == LoadPhase.E0) & have_code & ld_k_last
                          & ld_last_c)
            if_held = codes & have_code & ld_ending
            end_ok = replicas(m, Mux(ld_free_w, if_free, if_held), 1, "ld_end_ok")[0]
            m.d.comb += tile_loaded.eq(ld_free & end_ok)
        else:
            take_hdr = ld_free_w & ~codes
            take_word = ld_free_w & codes & ~have_code
            emit = ld_free_w & codes & have_code
            m.d.comb += tile_loaded.eq(emit & ld_ending)
        m.d.comb += self.wgt.ready.eq(take_hdr | take_word)
        word = self.wgt.payload.word
        wlast = self.wgt.payload.last
        take = self.wgt.valid & take_hdr
        is_e0 = ld_phase == LoadPhase.E0
        self._header_writes(m, take, word, ld_bank, ld_c, ld_phase)

        with m.If(take):
            with m.If(wlast):
                m.d.comb += self.err_wgt.eq(1)
            m.d.comb += ld_phase_n.eq(ld_phase.as_value() + 1)
            with m.If(is_e0):
                m.d.comb += ld_ending_n.eq(ld_k_last & ld_last_c)
        self._check_e0(m, take & is_e0 & held.pc, word)
        with m.If(self.wgt.valid & take_word):
            # nbits < B here: a narrow shifter
            low = nbits[:max(1, (B - 1).bit_length())]
            m.d.sync += [hold.eq(hold | (word << low)), nbits.eq(nbits + 32), ld_w.eq(ld_w + 1)]
            m.d.comb += have_code_n.eq(1)
            with m.If(wlast != (ld_w == held.words_m1)):
                m.d.comb += self.err_wgt.eq(1)
        # With "spread" the stores' write ports are registered (the block RAMs sit apart from
        # the loader): a code lands one clock after its emit, at least two clocks before the
        # compute side can read its bank (which sees the bank full one clock late).
        w_addr, w_data = Cat(ld_k[:abits], ld_bank), hold[:B]
        w_en = Cat(emit & is_const(ld_c, c) for c in range(C))
        if spread:
            w_addr, w_data, w_en = (registered(m, v, name, reset_less=name != "w_en")
                                    for v, name in ((w_addr, "w_addr"), (w_data, "w_data"),
                                                    (w_en, "w_en")))
        m.d.comb += [self.store.addr.eq(w_addr), self.store.data.eq(w_data),
                     self.store.en.eq(w_en)]
        with m.If(emit):
            m.d.sync += [hold.eq(hold >> B), nbits.eq(nbits - B),
                         ld_k.eq(ld_k + 1), ld_k_last.eq(ld_k_pen)]
            m.d.comb += [have_code_n.eq(nbits >= 2 * B), ld_ending_n.eq(ld_k_pen & ld_last_c)]
            m.d.sync += ld_k_pen.eq(equal_by_carries(ld_k, held.km3))
            with m.If(ld_k_last):                  # channel complete
                m.d.sync += [nbits.eq(0), hold.eq(0), ld_k.eq(0), ld_w.eq(0),
                             ld_k_last.eq(is_const(held.km1, 0))]
                m.d.comb += [have_code_n.eq(0), ld_ending_n.eq(0),
                             ld_phase_n.eq(LoadPhase.BIAS)]
                m.d.sync += ld_k_pen.eq(is_const(held.km2, 0))
                m.d.sync += ld_c.eq(Mux(ld_ending, 0, ld_c + 1))
        # M tile complete (ld_ending implies ld_k_last: the condition is kept short)
        with m.If(tile_loaded):
            m.d.sync += [ld_rem.eq(ld_rem_next), ld_bank.eq(~ld_bank)]
            with m.If(ld_last_tile):
                m.d.sync += ld_active.eq(0)
        ld_fill_next = ld_fill ^ Cat(tile_loaded & ~ld_bank, tile_loaded & ld_bank)
        m.d.sync += ld_fill.eq(ld_fill_next)
        # the compute side reads its own copy of the flags with "spread"
        fill_c = replicas(m, ld_fill_next, 1, "ld_fill_c", shape=2)[0] if spread else ld_fill
        m.d.comb += [self.banks.fill.eq(ld_fill), self.banks.fill_c.eq(fill_c)]
        return m

    def _check_e0(self, m, check, word):
        """ERROR.E0_RANGE for a channel's ``e0`` word taken while ``check``: at once
        ("compact"), or in two clocks as START checks E0 ("spread": the word's upper bits in
        groups and its low bits against the range, registered, then combined), one clock
        after the word is taken."""
        cfg = self._config
        if not cfg.spread:
            with m.If(check & ((word.as_signed() < cfg.e0_min)
                               | (word.as_signed() > cfg.e0_max))):
                m.d.comb += self.err_e0.eq(1)
            return
        e0_check = registered(m, check, "hdr_e0_check")
        w_top = word[cfg.e0_bits - 1:]
        w_zeros, w_ones = reduce_groups(m, w_top, "any"), reduce_groups(m, w_top, "all")
        w_low = word[:cfg.e0_bits].as_signed()
        w_ge = registered(m, w_low >= cfg.e0_min, "hdr_e0_ge")
        w_le = registered(m, w_low <= cfg.e0_max, "hdr_e0_le")
        with m.If(e0_check & ~((~w_zeros.any() | w_ones.all()) & w_ge & w_le)):
            m.d.comb += self.err_e0.eq(1)

    def _header_writes(self, m, take, word, bank, col, phase):
        """The header words land in :class:`hw.channels.ChannelParams`; with "spread" two clocks
        after the take (the destinations sit with the drained channel's selection, far from
        the loader): the take and where it goes are registered here, then decoded into one
        enable flip-flop per destination, so that only flip-flops drive the route across."""
        cfg = self._config
        en = self.header.en
        if cfg.spread:
            take_r = registered(m, take, "hdr_take")
            bank_r = registered(m, bank, "hdr_bank", reset_less=True)
            col_r = registered(m, col, "hdr_col", reset_less=True)
            e0_r = registered(m, phase == LoadPhase.E0, "hdr_is_e0", reset_less=True)
            word = registered(m, registered(m, word, "hdr_word0", reset_less=True),
                              "hdr_word", reset_less=True)
            for b in range(2):
                for c in range(cfg.cols):
                    for kind in range(2):
                        m.d.comb += en[b][c][kind].eq(registered(
                            m, take_r & (bank_r == b) & is_const(col_r, c)
                            & (e0_r if kind else ~e0_r), f"hdr_en_b{b}_c{c}_{kind}"))
        else:
            for b in range(2):
                for c in range(cfg.cols):
                    for kind, at in enumerate((LoadPhase.BIAS, LoadPhase.E0)):
                        # (BIAS, 0: as a reduction, which lints clean where ``!x`` would not)
                        is_at = is_const(phase.as_value(), at.value)
                        m.d.comb += en[b][c][kind].eq(take & (bank == b) & is_const(col, c)
                                                      & is_at)
        m.d.comb += self.header.word.eq(word)
