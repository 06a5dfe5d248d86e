"""The shift-add PE array with its sequencing: weight loader, compute, drain chain, finalizer.

Streams use ``lib.stream`` here; :mod:`hw.array_top` maps them to AXI4-Stream names and adds
the register block. Framing, tiling and the meaning of every control input are specified in
``docs/array.md`` and ``contract/array.py``.

Structure (``|`` is a register)::

    act beat | x_reg -> RowDecoder | dec_reg -> RowShifter (| inside) | row copies -.
    | address -> weight store (2-clock read) ---------------------- | code copy --+-> ShiftPE
        (| addend, pipeline 2) | acc
    acc --(capture)--> shadow chain (hw.drain.DrainChain, r-major) -> head
        -> hw.finalizer.Finalizer (register stages A .. O) (| fifo_cut) -> output FIFO -> res

    (``contract.array.ArrayConfig.final_latency`` counts the finalizer's stages, the
    ``fifo_cut`` register and the FIFO's two clocks)

Sequencing: the weight loader fills bank ``t % 2`` with M tile ``t`` (codes unpacked one per
clock) while the compute side runs M tile ``t - 1`` from the other bank over all N tiles, one
``k`` per clock. A tile's last beat is accepted only when the drain chain is free, so that the
capture one pipeline delay later never overwrites undrained results. A bank is released when
the drain of the last N tile of its M tile has left the chain (the finalizer reads the bank's
bias and ``e0`` registers while draining).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from contract.array import MAX_NM, WIDE_COLS, ArrayConfig

from .drain import DrainChain
from .finalizer import Finalizer
from .pe import (
    RowDecoder,
    RowShifter,
    ShiftPE,
    pe_flags_layout,
    row_decode_layout,
    row_layout,
)
from .stages import registered
from .wstore import FAMILIES, WeightStore

__all__ = ["PEArray", "act_layout", "wgt_layout", "res_layout"]

NM_BITS = MAX_NM.bit_length()


def _check(config):
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")


def act_layout(config):
    _check(config)
    return data.StructLayout({
        "x": data.ArrayLayout(unsigned(config.in_fmt.width), config.rows),
        "last": unsigned(1),
    })


def wgt_layout():
    return data.StructLayout({"word": unsigned(32), "last": unsigned(1)})


def res_layout(config):
    _check(config)
    return data.StructLayout({"bits": unsigned(config.out_fmt.width), "last": unsigned(1)})


#: PEs of a row fed by one copy of the row's aligned-activation register, and PEs of a
#: column fed by one copy of the column's weight-code register.
ROW_SHARE = 4
CODE_SHARE = 2


def _pick(values, index):
    """``values[index]``, the list padded to ``2**len(index)`` entries (a fully covered case)."""
    values = list(values)
    size = 1 << len(index)
    return Array(values + [values[-1]] * (size - len(values)))[index]


def _minus_floor0(m, value, const, name, *, registered):
    """``max(value - const, 0)``. ``registered``: a register, with the comparison registered a
    clock earlier (one carry chain per clock; ``value`` must hold still for two clocks before
    the result is used); else combinational."""
    if not registered:                   # value > const, split as ``_tile_size`` splits
        w = const.bit_length()
        more = value[w:].any()
        if const != (1 << w) - 1:            # (else no w-bit value exceeds it)
            more = more | (value[:w] > const)
        return Mux(more, value - const, 0)
    more = Signal(name=f"{name}_more")
    result = Signal(len(value), name=name)
    m.d.sync += [more.eq(value > const), result.eq(Mux(more, value - const, 0))]
    return result


def _tile_size(m, rem, size, name, high=None):
    """``min(rem, size)``, ``rem <= size`` and the mask of the first ``min(rem, size)`` lanes,
    registered. ``rem`` is split at ``size.bit_length()`` bits: ``high`` (given, when a
    register already holds it) says its upper part is not zero, so that no wide comparison
    remains."""
    low = rem[:size.bit_length()]
    if high is None:
        high = rem[size.bit_length():].any()
    valid, last = Signal(range(size + 1), name=f"{name}_valid"), Signal(name=f"{name}_last")
    mask = Signal(size, name=f"{name}_mask")
    full = size == (1 << len(low)) - 1          # every value of ``low`` is <= size
    m.d.sync += [valid.eq(Mux(high, size, low if full else _min_const(low, size))),
                 last.eq(~high if full else ~high & (low <= size)),
                 mask.eq(Cat(high | (low > i) for i in range(size)))]
    return valid, last, mask


def _eq(value, const):
    """``value == const``; for 0 as a reduction (lints clean where ``!x`` would not)."""
    return ~value.any() if const == 0 else value == const


_KEEP = {"keep": 1}


def _replicas(m, value, count, name, *, shape=1, reset_less=False):
    """``count`` registers of ``shape`` that all take ``value``: copies of one register, so that
    each drives a part of a large fan-out and can sit near it. They carry Yosys's ``keep``
    attribute; ``boards.flow`` passes it on to the flip-flops so that synthesis does not merge
    the copies back into one. Where ``value`` is itself also registered (a copy of an existing
    register), that register needs ``keep`` too (``_KEEP``): otherwise Yosys merges it into a
    copy, which then drives both fan-outs."""
    copies = [Signal(shape, name=f"{name}_rep{i}", attrs=_KEEP, reset_less=reset_less)
              for i in range(count)]
    for copy in copies:
        m.d.sync += copy.eq(value)
    return copies


def _fits_signed(value, bits):
    """The two's complement ``value`` fits ``bits`` bits (its top bits are all equal)."""
    top = value[bits - 1:]
    return ~top.any() | top.all()


def _groups(m, bits, kind):
    """``bits`` reduced (``kind``: ``"any"`` or ``"all"``) in groups of four, registered: a
    short path now, and a narrow reduction of the result later."""
    out = Signal(max(1, -(-len(bits) // 4)), name=f"grp_{kind}")
    for i in range(0, len(bits), 4):
        part = bits[i:i + 4]
        m.d.sync += out[i // 4].eq(part.any() if kind == "any" else part.all())
    return out


def _min_const(value, const):
    return Mux(value < const, value, const)


def _times_const(value, const):
    """``value * const`` as a sum of shifted copies: the array has no multiplier anywhere (a
    ``*`` would be mapped to a DSP block)."""
    terms = [value << i for i in range(const.bit_length()) if const >> i & 1]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


class PEArray(wiring.Component):
    """The array core.

    Members
    -------
    act : In(stream.Signature(act_layout(config)))
        Activation beats (``rows`` lanes, ``last`` on beat ``K-1`` of every tile).
    wgt : In(stream.Signature(wgt_layout()))
        Weight-stream words (bias, e0, packed codes per channel; ``last`` ends a channel).
    res : Out(stream.Signature(res_layout(config)))
        Results, row-major per tile, ``last`` ends a tile.
    start : In(1)
        Pulse: start a layer of ``n``, ``k``, ``m``, ``e0`` (which must hold still from the
        pulse until two clocks after it: the register block applies its next write four clocks
        after the pulse at the earliest) with the options ``relu``, ``bias_en``, ``e0_pc``
        (sampled at the pulse). A pulse while a layer runs or is starting is refused with the
        START_BUSY error (``busy`` is read one clock after the pulse in arrays wider than
        ``WIDE_COLS`` columns, two clocks after it in the others).
    n, k, m : In(unsigned(32)); e0 : In(signed(32)); relu, bias_en, e0_pc : In(1)
    busy, done : Out(1)
        A layer runs; the last result beat of the last layer was accepted (until ``start``).
    err : Out(6)
        One-cycle error pulses, bit order of ``contract.array.ERROR``.
    ev : Out(6)
        One-cycle counter events: busy, active, stall_act, stall_wgt, stall_res, stall_drain
        (the order of the ``rc`` registers).
    started : Out(1)
        Pulse: a layer starts (a START accepted; the register block restarts its counters).

    ``family``: ``"ecp5"`` builds the weight stores from ECP5 block RAM primitives
    (:class:`hw.wstore.WeightStore`); ``None`` (default) infers them. The behaviour is the same.
    """

    def __init__(self, *, config, family=None):
        _check(config)
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
        self._config = config
        self._family = family
        super().__init__({
            "act": In(stream.Signature(act_layout(config))),
            "wgt": In(stream.Signature(wgt_layout())),
            "res": Out(stream.Signature(res_layout(config))),
            "start": In(1),
            "n": In(unsigned(32)),
            "k": In(unsigned(32)),
            "m": In(unsigned(32)),
            "e0": In(signed(32)),
            "relu": In(1),
            "bias_en": In(1),
            "e0_pc": In(1),
            "busy": Out(1),
            "done": Out(1),
            "err": Out(6),
            "ev": Out(6),
            "started": Out(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        R, C, B = cfg.rows, cfg.cols, cfg.wbits
        wide = C > WIDE_COLS                       # the timing structures of large devices
        depth = cfg.depth
        kbits = depth.bit_length()                 # holds K in 1..depth
        abits = (depth - 1).bit_length()
        e0_bits = cfg.e0_bits

        # -- layer registers --------------------------------------------------------------------
        busy = Signal()
        done = Signal()
        L_n = Signal(NM_BITS)
        L_n_high = Signal()                        # L_n[R.bit_length():] is not zero
        L_e0 = Signal(signed(e0_bits))
        L_relu = Signal()
        L_bias = Signal()
        L_pc = Signal()
        L_km1 = Signal(kbits)                      # K - 1
        L_km2 = Signal(kbits + 1)                  # K - 2 (-1 when K = 1)
        L_km3 = Signal(kbits + 1)                  # K - 3 (negative values never match)
        L_words_m1 = Signal(kbits + 3)             # code words per channel - 1
        err_k, err_shape, err_e0, err_act, err_wgt, err_busy = (Signal(name=f"err_{n}")
                                                                for n in ("k", "shape", "e0",
                                                                          "act", "wgt", "busy"))
        # (registered: the pulses leave from flip-flops, one clock after their cause)
        m.d.sync += self.err.eq(Cat(err_k, err_shape, err_e0, err_act, err_wgt, err_busy))
        clear = Signal()                           # layer start: zero the accumulators

        # START is handled two clocks late. The clock of the pulse reduces the inputs' bits in
        # groups of four (the inputs hold still until the layer starts); the next one combines
        # the groups into the three checks; then the layer starts. This keeps the wide
        # comparisons off the control paths.
        start1, start = Signal(), Signal()
        k_ok, shape_ok, e0_in_range = Signal(), Signal(), Signal()
        # The inputs hold still from the pulse until the layer starts (see the docstring), so
        # they are read where they are needed; only values that take logic are registered.
        s_n, s_m = self.n[:NM_BITS], self.m[:NM_BITS]
        s_k = self.k[:kbits]
        s_kb = Signal(kbits + B.bit_length())     # K * B, the code bits of one channel
        s_e0 = self.e0[:e0_bits].as_signed()
        s_relu, s_bias, s_pc = Signal(), Signal(), Signal()    # sampled: the register block
        with m.If(self.start):                    # shows options as they are written
            m.d.sync += [s_relu.eq(self.relu), s_bias.eq(self.bias_en), s_pc.eq(self.e0_pc)]
        e0_low = self.e0[:e0_bits].as_signed()
        e0_top = self.e0[e0_bits - 1:]             # all equal: e0 fits e0_bits bits
        g = {
            "n_any": _groups(m, self.n[:NM_BITS], "any"),
            "n_hi": _groups(m, self.n[NM_BITS:], "any"),
            "m_any": _groups(m, self.m[:NM_BITS], "any"),
            "m_hi": _groups(m, self.m[NM_BITS:], "any"),
            "k_any": _groups(m, self.k[:abits], "any"),
            "k_hi": _groups(m, self.k[abits + 1:], "any"),
            "e0_zeros": _groups(m, e0_top, "any"),
            "e0_ones": _groups(m, e0_top, "all"),
        }
        k_top, e0_ge, e0_le = Signal(), Signal(), Signal()
        m.d.sync += [start1.eq(self.start), start.eq(start1),
                     k_top.eq(self.k[abits]),
                     e0_ge.eq(e0_low >= cfg.e0_min), e0_le.eq(e0_low <= cfg.e0_max)]
        # (the layer start's first tile sizes need N and M split as ``tile_size`` does: the
        # upper parts are reduced here)
        s_n_high, s_m_high = Signal(), Signal()
        m.d.sync += [
            s_n_high.eq(self.n[R.bit_length():NM_BITS].any()),
            s_m_high.eq(self.m[C.bit_length():NM_BITS].any()),
            s_kb.eq(_times_const(self.k[:kbits], B)),
        ]
        k_ok_d = ((g["k_any"].any() | k_top) & ~g["k_hi"].any()     # 1 <= K <= depth
                  & ~(k_top & g["k_any"].any()))
        shape_ok_d = g["n_any"].any() & ~g["n_hi"].any() & g["m_any"].any() & ~g["m_hi"].any()
        e0_in_range_d = (~g["e0_zeros"].any() | g["e0_ones"].all()) & e0_ge & e0_le
        # args_ok: all three checks in one register, so that the layer start's enable (which
        # reaches most of the control registers) is one LUT from flip-flops
        args_ok = Signal()
        args_ok_d = k_ok_d & shape_ok_d & (s_pc | e0_in_range_d)
        m.d.sync += [k_ok.eq(k_ok_d), shape_ok.eq(shape_ok_d), e0_in_range.eq(e0_in_range_d),
                     args_ok.eq(args_ok_d)]
        # go: the layer starts (START handled, not busy, arguments valid). Wide arrays decide it
        # a clock ahead, into a register of its own, so that the layer start's enable reaches
        # the control registers across the device from a flip-flop; BUSY is then sampled in the
        # clock after the pulse (with a start already decided counted as busy).
        if wide:
            go, busy_seen = Signal(), Signal()
            m.d.sync += [go.eq(start1 & ~busy & ~go & args_ok_d), busy_seen.eq(busy | go)]
        else:
            busy_seen = busy
        e0_ok = s_pc | e0_in_range
        # what the layer start loads from K: in wide arrays registered in the clock after the
        # pulse (K holds still), so that no carry chain or comparator sits behind START, and
        # computed from a register of K taken at the pulse, so that the route from the
        # register block is not followed by a carry chain either
        k_src = registered(m, s_k, "k_pulse", reset_less=True) if wide else s_k
        k_minus = {j: k_src - j for j in (1, 2, 3)}
        k_is = {j: k_src == j for j in (1, 2)}
        words_m1 = ((s_kb + 31) >> 5) - 1
        if wide:
            width = {1: len(L_km1), 2: len(L_km2), 3: len(L_km3)}
            k_minus = {j: registered(m, v[:width[j]], f"k_minus{j}")
                       for j, v in k_minus.items()}
            k_is = {j: registered(m, v, f"k_is{j}") for j, v in k_is.items()}
            words_m1 = registered(m, words_m1[:len(L_words_m1)], "words_m1")

        ld_active = Signal()                       # an M tile remains to be loaded
        c_active = Signal()                        # a tile remains to be computed
        c_last = Signal()                          # c_k == K - 1
        c_last_next = Signal()                     # its next value
        L_k1 = Signal()                            # K == 1
        m.d.comb += c_last_next.eq(c_last)
        m.d.sync += c_last.eq(c_last_next)
        # loader state
        ld_rem = Signal(NM_BITS)                   # channels still to load
        ld_bank = Signal()
        ld_c = Signal(range(max(2, C)))
        ld_phase = Signal(2)                       # 0 bias, 1 e0, 2 codes
        ld_k = Signal(kbits)
        ld_k_last = Signal()                       # registered ld_k == K - 1
        # registered: the next code written completes the M tile (phase 2, the channel's last
        # code, its last channel); kept beside ld_k_last, so that no chain of conditions sits
        # between the loader's enable and the bank flags
        ld_ending = Signal()
        ld_w = Signal(kbits + 3)                   # code words taken in this channel
        hold = Signal(32 + B - 1)
        nbits = Signal(range(32 + B))
        have_code = Signal()                       # registered nbits >= B (a short path)
        # the next values of ld_phase, ld_ending and have_code (wide arrays keep copies of them
        # by the bank flags, see below)
        ld_phase_n, ld_ending_n, have_code_n = Signal(2), Signal(), Signal()
        m.d.comb += [ld_phase_n.eq(ld_phase), ld_ending_n.eq(ld_ending),
                     have_code_n.eq(have_code)]
        m.d.sync += [ld_phase.eq(ld_phase_n), ld_ending.eq(ld_ending_n),
                     have_code.eq(have_code_n)]
        # A bank is full from the loader's last code of an M tile to the drain of that tile's
        # last N tile. Each side owns one flag per bank and toggles it (the loader at a fill,
        # the drain at a release), so that no register takes logic from both sides, far
        # apart on a large array; the bank is full while they differ. Both are equal whenever
        # the core is idle, so a layer start needs no clear.
        # (wide arrays copy ld_fill and ld_free: the originals carry ``keep`` as their copies
        # do, see ``_replicas``)
        ld_fill = Signal(2, attrs=_KEEP if wide else {})
        dr_free = Signal(2)
        bank_full = ld_fill ^ dr_free
        bank_full_c = bank_full            # the compute side's view (wide arrays: see below)
        # compute state
        c_rem_m = Signal(NM_BITS)                  # channels not yet computed
        c_rem_n = Signal(NM_BITS)                  # activation rows left in this M tile
        c_k = Signal(kbits)
        # c_k == K - 2 and ld_k == K - 2: registers in wide arrays (loaded with ld_k == K - 3
        # and so on), comparators in narrow ones, which cannot spare the flip-flops
        if wide:
            c_pen, ld_k_pen = Signal(), Signal()
        else:
            c_pen, ld_k_pen = c_k == L_km2, ld_k == L_km2

        def pen_sync(*stmts):                      # the pen registers' updates (wide arrays)
            if wide:
                m.d.sync += list(stmts)
        c_bank = Signal()
        # drain state
        ch_count = Signal(range(R * C + 1))
        cap_pending = Signal()

        # what a layer start does (go); lists, not a function: a closure over these signals
        # would cost them their inferred names
        start_comb = [clear.eq(1), c_last_next.eq(k_is[1]),
                      ld_phase_n.eq(0), ld_ending_n.eq(0), have_code_n.eq(0)]
        start_sync = [
            busy.eq(1), done.eq(0),
            L_n.eq(s_n), L_n_high.eq(s_n_high), L_e0.eq(s_e0),
            L_relu.eq(s_relu), L_bias.eq(s_bias), L_pc.eq(s_pc),
            L_km1.eq(k_minus[1]), L_km2.eq(k_minus[2]),
            L_words_m1.eq(words_m1),
            ld_active.eq(1), c_active.eq(1), L_k1.eq(k_is[1]),
            ld_rem.eq(s_m), ld_bank.eq(0), ld_c.eq(0), ld_k.eq(0),
            ld_k_last.eq(k_is[1]),
            ld_w.eq(0), nbits.eq(0),
            c_rem_m.eq(s_m), c_rem_n.eq(s_n), c_k.eq(0), c_bank.eq(0),
        ]
        if wide:
            start_sync += [c_pen.eq(k_is[2]), ld_k_pen.eq(k_is[2]), L_km3.eq(k_minus[3])]

        with m.If(start):
            with m.If(busy_seen):
                m.d.comb += err_busy.eq(1)
            with m.Elif(~args_ok):
                m.d.comb += [err_k.eq(~k_ok), err_shape.eq(~shape_ok), err_e0.eq(~e0_ok)]
            if not wide:
                with m.Else():
                    m.d.comb += start_comb + [self.started.eq(1)]
                    m.d.sync += start_sync
        if wide:
            with m.If(go):
                m.d.comb += start_comb + [self.started.eq(1)]
                m.d.sync += start_sync
        m.d.comb += [self.busy.eq(busy), self.done.eq(done)]

        # -- weight store and loader -------------------------------------------------------------
        stores = []
        for c in range(C):
            store = WeightStore(width=B, depth=2 * depth, family=self._family)
            m.submodules[f"wmem{c}"] = store
            stores.append(store)
        bias_r = [[Signal(cfg.out_fmt.width, name=f"bias_b{b}_c{c}") for c in range(C)]
                  for b in range(2)]
        e0_r = [[Signal(signed(e0_bits), name=f"e0_b{b}_c{c}") for c in range(C)]
                for b in range(2)]

        # min(ld_rem, C) and ld_rem <= C, registered (ld_rem is stable for K + 3 clocks)
        ld_cols, ld_last_tile, _ = _tile_size(m, ld_rem, C, "ld_tile")
        # The loader works while ``ld_free``: a register, so that the loop from a completed M
        # tile (``bank_full`` set, ``ld_bank`` flipped) back to the loader's enables is cut.
        # It is one clock late, which is conservative: it is low the clock after an M tile is
        # complete and sees a released bank one clock after the release.
        ld_free = Signal(attrs=_KEEP if wide else {})
        # registered (one clock behind ld_rem, which changes only when a tile completes and
        # is next needed K + 3 clocks later)
        # ld_rem - ld_cols (registered in wide arrays; ld_rem holds still for K + 3 clocks)
        ld_rem_next = _minus_floor0(m, ld_rem, C, "ld_rem_next", registered=wide)
        ld_last_c = Signal()
        m.d.sync += ld_last_c.eq(ld_c == ld_cols - 1)
        # In wide arrays the loader's two ends sit apart: the word side (header and code words,
        # the code register, the stores' write port) and the bank side (bank flags, remaining
        # channels). Each computes its enable from its own flip-flops: the word side from a
        # copy of ld_free, the bank side from a copy of "codes ready, the tile's last one"
        # (loaded from next values).
        ld_free_w = ld_free
        tile_loaded = Signal()
        bank_full_l = bank_full            # the loader's view
        if wide:
            # the drain's release toggles reach the loader through a copy of its own (the drain
            # sits far from the loader): a released bank is seen one clock later
            # (``release_cut``), which is safe, as a release only ever frees a bank
            bank_full_l = ld_fill ^ registered(m, dr_free, "dr_free_l")
        ld_free_next = ld_active & ~Array(bank_full_l)[ld_bank] & ~tile_loaded
        m.d.sync += ld_free.eq(ld_free_next)
        if wide:
            ld_free_w = _replicas(m, ld_free_next, 1, "ld_free_w")[0]
        # phase 2 (codes) wants a word while it has no whole code, and emits one otherwise
        if wide:
            # both kept as registers, loaded from the next values of ld_phase and have_code, so
            # that the loader's enables (and those of nbits and have_code) are one LUT from
            # flip-flops rather than a chain through the phase decode
            ph2_word, ph2_emit = Signal(name="ld_ph2_word"), Signal(name="ld_ph2_emit")
            m.d.sync += [ph2_word.eq((ld_phase_n == 2) & ~have_code_n),
                         ph2_emit.eq((ld_phase_n == 2) & have_code_n)]
            take_hdr = ld_free_w & ~ph2_word & ~ph2_emit
            take_word, emit = ld_free_w & ph2_word, ld_free_w & ph2_emit
        else:
            take_hdr = ld_free_w & (ld_phase != 2)
            take_word = ld_free_w & (ld_phase == 2) & ~have_code
            emit = ld_free_w & (ld_phase == 2) & have_code
        if wide:
            # "codes ready, the tile's last" = (ld_phase_n == 2) & have_code_n & ld_ending_n,
            # written out as a choice on ld_free_w between what the loader's branches below
            # make of it when the loader works and when it holds, so that ld_free_w, placed by
            # the word side, is one LUT from this copy. (A start, which clears the three, is
            # taken only while the loader is idle: ld_free_w low, ld_phase 0.)
            if_free = Mux(ld_phase == 2,
                          Mux(have_code,
                              ~ld_k_last & (nbits >= 2 * B) & ld_k_pen & ld_last_c,
                              self.wgt.valid & ld_ending),
                          self.wgt.valid & (ld_phase == 1) & have_code & ld_k_last & ld_last_c)
            if_held = (ld_phase == 2) & have_code & ld_ending
            end_ok = _replicas(m, Mux(ld_free_w, if_free, if_held), 1, "ld_end_ok")[0]
            m.d.comb += tile_loaded.eq(ld_free & end_ok)
        else:
            m.d.comb += tile_loaded.eq(emit & ld_ending)
        m.d.comb += self.wgt.ready.eq(take_hdr | take_word)
        word = self.wgt.payload.word
        wlast = self.wgt.payload.last
        # the header words land in bias_r/e0_r; in wide arrays two clocks later (the
        # destinations sit with the bias ring, far from the loader): the take and where it goes
        # are registered by the loader, then decoded into one enable flip-flop per destination,
        # so that only flip-flops drive the route across. They are read at the tile's capture.
        hdr_word = word
        if wide:
            take_r = registered(m, self.wgt.valid & take_hdr, "hdr_take")
            bank_r = registered(m, ld_bank, "hdr_bank", reset_less=True)
            col_r = registered(m, ld_c, "hdr_col", reset_less=True)
            e0_r1 = registered(m, ld_phase[0], "hdr_is_e0", reset_less=True)
            hdr_word = registered(m, registered(m, word, "hdr_word0", reset_less=True),
                                  "hdr_word", reset_less=True)
            hdr_en = [[[registered(m, take_r & (bank_r == b) & _eq(col_r, c)
                                   & (e0_r1 if phase else ~e0_r1),
                                   f"hdr_en_b{b}_c{c}_{phase}")
                        for phase in range(2)] for c in range(C)] for b in range(2)]
        else:
            hdr_en = [[[self.wgt.valid & take_hdr & (ld_bank == b) & _eq(ld_c, c)
                        & (_eq(ld_phase, 0) if phase == 0 else ld_phase[0])
                        for phase in range(2)] for c in range(C)] for b in range(2)]
        for b in range(2):
            for c in range(C):
                with m.If(hdr_en[b][c][0]):
                    m.d.sync += bias_r[b][c].eq(hdr_word)
                with m.If(hdr_en[b][c][1]):
                    m.d.sync += e0_r[b][c].eq(hdr_word)
        with m.If(self.wgt.valid & take_hdr):
            with m.If(wlast):
                m.d.comb += err_wgt.eq(1)
            if not wide:
                with m.If((ld_phase == 1) & L_pc & ((word.as_signed() < cfg.e0_min)
                                                    | (word.as_signed() > cfg.e0_max))):
                    m.d.comb += err_e0.eq(1)
            m.d.comb += ld_phase_n.eq(ld_phase + 1)
            with m.If(ld_phase == 1):
                m.d.comb += ld_ending_n.eq(ld_k_last & ld_last_c)
        if wide:
            # a channel's e0 word checked in two clocks as START checks E0 (the word's upper
            # bits in groups and its low bits against the range, registered, then combined):
            # ERROR.E0_RANGE rises one clock after the word is taken
            e0_check = registered(m, self.wgt.valid & take_hdr & (ld_phase == 1) & L_pc,
                                   "hdr_e0_check")
            w_top = word[e0_bits - 1:]
            w_zeros, w_ones = _groups(m, w_top, "any"), _groups(m, w_top, "all")
            w_low = word[:e0_bits].as_signed()
            w_ge = registered(m, w_low >= cfg.e0_min, "hdr_e0_ge")
            w_le = registered(m, w_low <= cfg.e0_max, "hdr_e0_le")
            with m.If(e0_check & ~((~w_zeros.any() | w_ones.all()) & w_ge & w_le)):
                m.d.comb += err_e0.eq(1)
        with m.If(self.wgt.valid & take_word):
            # nbits < B here: a narrow shifter
            low = nbits[:max(1, (B - 1).bit_length())]
            m.d.sync += [hold.eq(hold | (word << low)), nbits.eq(nbits + 32), ld_w.eq(ld_w + 1)]
            m.d.comb += have_code_n.eq(1)
            with m.If(wlast != (ld_w == L_words_m1)):
                m.d.comb += err_wgt.eq(1)
        # In wide arrays the stores' write ports are registered (the block RAMs sit apart from
        # the loader): a code lands one clock after its emit, at least two clocks before the
        # compute side can read its bank (``c_ready_w`` follows ``bank_full`` one clock late).
        w_addr, w_data = Cat(ld_k[:abits], ld_bank), hold[:B]
        w_en = Cat(emit & _eq(ld_c, c) for c in range(C))
        if wide:
            w_addr, w_data, w_en = (registered(m, v, name, reset_less=name != "w_en")
                                    for v, name in ((w_addr, "w_addr"), (w_data, "w_data"),
                                                    (w_en, "w_en")))
        for c, store in enumerate(stores):
            m.d.comb += [store.w_addr.eq(w_addr), store.w_data.eq(w_data),
                         store.w_en.eq(w_en[c])]
        with m.If(emit):
            m.d.sync += [hold.eq(hold >> B), nbits.eq(nbits - B),
                         ld_k.eq(ld_k + 1), ld_k_last.eq(ld_k_pen)]
            m.d.comb += [have_code_n.eq(nbits >= 2 * B), ld_ending_n.eq(ld_k_pen & ld_last_c)]
            pen_sync(ld_k_pen.eq(ld_k == L_km3))
            with m.If(ld_k_last):                  # channel complete
                m.d.sync += [nbits.eq(0), hold.eq(0), ld_k.eq(0), ld_w.eq(0),
                             ld_k_last.eq(_eq(L_km1, 0))]
                m.d.comb += [have_code_n.eq(0), ld_ending_n.eq(0), ld_phase_n.eq(0)]
                pen_sync(ld_k_pen.eq(_eq(L_km2, 0)))
                m.d.sync += ld_c.eq(Mux(ld_ending, 0, ld_c + 1))
        # M tile complete (ld_ending implies ld_k_last: the condition is kept short)
        with m.If(tile_loaded):
            m.d.sync += [ld_rem.eq(ld_rem_next), ld_bank.eq(~ld_bank)]
            with m.If(ld_last_tile):
                m.d.sync += ld_active.eq(0)
        ld_fill_next = ld_fill ^ Cat(tile_loaded & ~ld_bank, tile_loaded & ld_bank)
        m.d.sync += ld_fill.eq(ld_fill_next)
        if wide:       # the compute side reads its own copy of the loader's flags
            bank_full_c = _replicas(m, ld_fill_next, 1, "ld_fill_c", shape=2)[0] ^ dr_free

        # -- compute sequencer -------------------------------------------------------------------
        # The counters of the compute side move on in the bubble after a tile's last beat
        # (``gap``), from registers: no logic behind ``accept`` but the enables. Everything they
        # load is precomputed (registered) from values that have held still since the last
        # update, which was at least ``capture_latency + rows * cols + 2`` clocks earlier (a
        # tile's last beat waits for the previous tile's drain).
        gap = Signal()              # the clock after a tile's last beat is a bubble (restart)
        # registered: the weights of the bank being computed are loaded. One clock late, which
        # is conservative; low in the clock after a bubble that moves to the other bank.
        c_ready_w = Signal()
        rows_valid = Signal(range(R + 1))
        cols_valid = Signal(range(C + 1))
        last_n, last_m = Signal(), Signal()
        c_ready_w_next = c_active & Array(bank_full_c)[c_bank] & ~(gap & last_n)
        m.d.sync += c_ready_w.eq(c_ready_w_next)
        # registered (one clock late, conservative: a capture needs a last beat, and the
        # clock after a last beat is a bubble)
        chain_free = Signal()
        chain_free_next = _eq(ch_count, 0) & ~cap_pending
        m.d.sync += chain_free.eq(chain_free_next)
        # c_rdy = c_ready_w & (~c_last | chain_free), a register loaded with the next values:
        # ``accept`` is one LUT from flip-flops (and the loop gap -> accept -> gap short)
        c_rdy = Signal()
        m.d.sync += c_rdy.eq(c_ready_w_next & (~c_last_next | chain_free_next))
        accept_ok = c_rdy & ~gap
        m.d.comb += self.act.ready.eq(accept_ok)
        accept = accept_ok & self.act.valid
        # the remaining sizes after this tile (registered in wide arrays: they are needed at
        # the next tile's end; the UP5K cannot spare the 48 flip-flops and needs no register)
        c_rem_n_next = c_rem_n - R
        if wide:
            c_rem_n_next = Signal(NM_BITS)
            m.d.sync += c_rem_n_next.eq(c_rem_n - R)
        c_rem_m_next = _minus_floor0(m, c_rem_m, C, "c_rem_m_next", registered=wide)
        # (the upper parts of the next sizes are registered flags, so that the 24-bit chains
        # or reductions end in a flip-flop: two clocks behind c_rem_* in narrow arrays, three
        # in wide ones, where the next sizes themselves are registers)
        high_n, high_m = (registered(m, v[size.bit_length():].any(), name)
                          for v, size, name in ((c_rem_n_next, R, "rem_n_high"),
                                                (c_rem_m_next, C, "rem_m_high")))


        rows_mask = Signal(R)                      # lane r < rows_valid
        rows_first, last_n_first, mask_first = _tile_size(m, s_n, R, "rows_first", s_n_high)
        cols_first, last_m_first, _ = _tile_size(m, s_m, C, "cols_first", s_m_high)   # layer start
        rows_again, last_n_again, mask_again = _tile_size(m, L_n, R, "rows_again",  # new M tile
                                                          L_n_high)
        rows_next, last_n_next, mask_next = _tile_size(m, c_rem_n_next, R, "rows_next", high_n)
        cols_next, last_m_next, _ = _tile_size(m, c_rem_m_next, C, "cols_next", high_m)
        with m.If(clear):                          # a layer starts
            m.d.sync += [rows_valid.eq(rows_first), last_n.eq(last_n_first),
                         rows_mask.eq(mask_first),
                         cols_valid.eq(cols_first), last_m.eq(last_m_first)]
        with m.If(gap):
            with m.If(last_n & last_m):
                m.d.sync += c_active.eq(0)
            with m.If(last_n):
                m.d.sync += [c_rem_n.eq(L_n), c_rem_m.eq(c_rem_m_next), c_bank.eq(~c_bank),
                             rows_valid.eq(rows_again), last_n.eq(last_n_again),
                             rows_mask.eq(mask_again),
                             cols_valid.eq(cols_next), last_m.eq(last_m_next)]
            with m.Else():
                m.d.sync += [c_rem_n.eq(c_rem_n_next),
                             rows_valid.eq(rows_next), last_n.eq(last_n_next),
                             rows_mask.eq(mask_next)]
        # tile descriptor, travelling with the last beat to the capture
        tile_layout = data.StructLayout({"rows": range(R + 1), "cols": range(C + 1),
                                         "bank": 1, "last_m": 1, "last_layer": 1})
        t_pend = Signal(tile_layout)
        m.d.sync += gap.eq(accept & c_last)
        with m.If(accept):
            m.d.sync += c_k.eq(c_k + 1)
            # c_last (registered): the beat being accepted is beat K-1 of its tile
            m.d.comb += c_last_next.eq(Mux(c_last, L_k1, c_pen))
            pen_sync(c_pen.eq(Mux(c_last, _eq(L_km2, 0), c_k == L_km3)))
            with m.If(self.act.payload.last != c_last):
                m.d.comb += err_act.eq(1)
            with m.If(c_last):
                m.d.sync += [
                    c_k.eq(0), cap_pending.eq(1),
                    t_pend.rows.eq(rows_valid), t_pend.cols.eq(cols_valid),
                    t_pend.bank.eq(c_bank), t_pend.last_m.eq(last_n),
                    t_pend.last_layer.eq(last_n & last_m),
                ]

        # stage 0 -> 1: activations and the weight-store address. The data registers of the
        # product path have no reset (a reset's fan-out would reach every one of them): bubbles
        # reach the PEs as zero activations, and a layer start restarts the accumulators.
        x_reg = [Signal(cfg.in_fmt.width, name=f"x_reg{r}", reset_less=True) for r in range(R)]
        v1, last1, clr1 = Signal(), Signal(), Signal()
        # x_reg takes every beat's payload (no enable: ``accept`` fans out to few registers);
        # ``live`` says which rows hold a real term, and the decoded activations of the others
        # are zeroed one stage later (bubbles and padding rows reach the PEs as 0)
        live = Signal(R)
        for r in range(R):
            m.d.sync += x_reg[r].eq(self.act.payload.x[r])
        m.d.sync += live.eq(accept.replicate(R) & rows_mask)
        m.d.sync += [v1.eq(accept), last1.eq(accept & c_last), clr1.eq(clear)]
        # (with the aligner's middle register the read starts a clock later, in step)
        r_addr = Cat(c_k[:abits], c_bank)
        if cfg.aligner_cut:
            r_addr_q = Signal(abits + 1, reset_less=True)
            m.d.sync += r_addr_q.eq(r_addr)
            r_addr = r_addr_q
        for store in stores:
            m.d.comb += store.r_addr.eq(r_addr)

        # stage 1 -> 1b: activations decoded (per row); weight-store read
        dec_reg = [Signal(row_decode_layout(cfg), name=f"dec_reg{r}", reset_less=True)
                   for r in range(R)]
        for r in range(R):
            decoder = RowDecoder(config=cfg)
            m.submodules[f"decode{r}"] = decoder
            m.d.comb += decoder.x.eq(x_reg[r])
            m.d.sync += dec_reg[r].eq(Mux(live[r], decoder.o.as_value(), 0))
        v1b, last1b, clr1b = Signal(), Signal(), Signal()
        m.d.sync += [v1b.eq(v1), last1b.eq(last1), clr1b.eq(clr1)]

        # stage 1b -> 2: alignment (per row; in wide arrays in two halves, with a register
        # inside the shifter); the codes leave the store's two-clock read (per column). The PE
        # inputs are register copies (``_replicas``): the aligned activation once per ROW_SHARE
        # PEs of a row, the weight code once per CODE_SHARE PEs of a column, so that no
        # register drives a whole row or column of PEs spread over the device.
        row_reg, code_reg = [None] * R, [None] * C
        levels = row_decode_layout(cfg)["amount"].shape.width
        for r in range(R):
            shifter = RowShifter(config=cfg, cut=(levels + 1) // 2 if cfg.aligner_cut else None)
            m.submodules[f"align{r}"] = shifter
            m.d.comb += shifter.i.eq(dec_reg[r])
            row_reg[r] = _replicas(m, shifter.o, -(-C // ROW_SHARE), f"row{r}",
                                   shape=row_layout(cfg), reset_less=True)
        for c in range(C):
            code_reg[c] = _replicas(m, stores[c].r_data, -(-R // CODE_SHARE), f"code{c}",
                                    shape=B, reset_less=True)
        v1c, last1c, clr1c = v1b, last1b, clr1b
        if cfg.aligner_cut:
            v1c, last1c, clr1c = Signal(), Signal(), Signal()
            m.d.sync += [v1c.eq(v1b), last1c.eq(last1b), clr1c.eq(clr1b)]
        v2, last2 = Signal(), Signal()
        # restart: the bubble after a tile's last term (or the layer start) at the PE input;
        # the tile ending there is captured at the accumulator stage (a clear only zeroes)
        restart2 = Signal()
        m.d.sync += [v2.eq(v1c), last2.eq(last1c), restart2.eq(clr1c | (v2 & last2))]
        capture2 = Signal()
        m.d.sync += capture2.eq(v2 & last2)

        # PEs
        pes = [[None] * C for _ in range(R)]
        for r in range(R):
            for c in range(C):
                pe = ShiftPE(config=cfg, carry_copy=wide)
                m.submodules[f"pe_{r}_{c}"] = pe
                pes[r][c] = pe
                m.d.comb += [pe.row.eq(row_reg[r][c // ROW_SHARE]),
                             pe.code.eq(code_reg[c][r // CODE_SHARE]),
                             pe.valid.eq(v2), pe.restart.eq(restart2)]
        # capture at the accumulator stage
        capture = capture2
        if cfg.pipeline == 2:                     # kept apart from the chain's copies of it
            capture = _replicas(m, capture2, 1, "capture")[0]

        # -- drain chain -------------------------------------------------------------------------
        entry = data.StructLayout({"acc": signed(cfg.pe_acc_width),
                                   "carries": unsigned(cfg.pe_pieces - 1),
                                   "flags": pe_flags_layout()})
        m.submodules.drain = drain = DrainChain(rows=R, cols=C, entry=entry)
        for r in range(R):
            for c in range(C):
                m.d.comb += drain.entries[r * C + c].eq(
                    Cat(pes[r][c].acc, pes[r][c].carries, pes[r][c].flags))
        t_drain = Signal(tile_layout)
        ch_r = Signal(range(max(2, R)))
        ch_c = Signal(range(max(2, C)))
        # The chain's shift enable reaches every shadow register: it is a flip-flop, set for
        # the next clock when the chain will hold entries and a finalizer credit is free.
        shift_d = Signal()                 # the next value of ``shift``
        shift = Signal()
        ch_last = Signal()                 # ch_count == 1
        ch_last_next = Signal()
        # ch_count == 2: in wide arrays a register beside the count (set at a capture and a
        # shift as the count is), so that ch_go's next value is not behind a comparator
        ch_two = ch_count == 2
        if wide:
            ch_two = Signal()
            with m.If(capture):
                m.d.sync += ch_two.eq(R * C == 2)
            with m.Elif(shift):
                m.d.sync += ch_two.eq(ch_count == 3)
        m.d.comb += ch_last_next.eq(Mux(capture, R * C == 1, Mux(shift, ch_two, ch_last)))
        m.d.sync += ch_last.eq(ch_last_next)
        # ch_go: the chain holds entries after this clock (a capture, or entries that this
        # clock's shift, if any, leaves). A register, computed from the next values.
        capture_d = capture2 if cfg.pipeline == 2 else v2 & last2
        ch_go = Signal()
        m.d.sync += ch_go.eq(capture_d | (ch_go & ~(shift_d & ch_last_next)))
        # The shadow registers' load and move enables reach R*C entries of ~pe_acc_width bits
        # each, spread over the whole array: each row of entries has its own copies (see
        # ``_replicas``), loaded with the next values of ``capture`` and of ``capture | shift``.
        chain_load = _replicas(m, capture_d, R, "chain_load")
        chain_move = _replicas(m, capture_d | shift_d, R, "chain_move")
        m.d.comb += [drain.load.eq(Cat(chain_load)), drain.move.eq(Cat(chain_move))]
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

        # The bias and e0 of the head's channel. In wide arrays a ring of C registers, loaded
        # from the tile's bank at the capture and rotated with each shift (the head's column
        # is ch_c, counting 0 .. C-1 round each row), so that no C-way multiplexer follows
        # ch_c; in narrow ones that multiplexer.
        if wide:
            bias_ring = [Signal(cfg.out_fmt.width, name=f"bias_ring{c}", reset_less=True)
                         for c in range(C)]
            e0_ring = [Signal(signed(e0_bits), name=f"e0_ring{c}", reset_less=True)
                       for c in range(C)]
            # the ring's enables have their own registers (the ring is C * ~22 flip-flops: a
            # LUT shared with the chain's control would be pulled into its midst)
            ring_load = _replicas(m, capture_d, 2, "ring_load")
            ring_move = _replicas(m, capture_d | shift_d, 2, "ring_move")
            for c in range(C):
                half = c * 2 // C
                with m.If(ring_move[half]):
                    m.d.sync += [
                        bias_ring[c].eq(Mux(ring_load[half],
                                            Mux(t_pend.bank, bias_r[1][c], bias_r[0][c]),
                                            bias_ring[(c + 1) % C])),
                        e0_ring[c].eq(Mux(ring_load[half],
                                          Mux(t_pend.bank, e0_r[1][c], e0_r[0][c]),
                                          e0_ring[(c + 1) % C]))]
            bias_sel, e0_sel = bias_ring[0], e0_ring[0]
        else:
            bias_sel = Mux(t_drain.bank, _pick(bias_r[1], ch_c), _pick(bias_r[0], ch_c))
            e0_sel = Mux(t_drain.bank, _pick(e0_r[1], ch_c), _pick(e0_r[0], ch_c))

        # -- finalizer ---------------------------------------------------------------------------
        head = drain.head
        in_tile = (ch_r < t_drain.rows) & (ch_c < t_drain.cols)
        is_last = (ch_r == t_drain.rows - 1) & (ch_c == t_drain.cols - 1)
        if wide:
            # the same two, registered with the head's position: loaded from the next values
            # (ch_r, ch_c and t_drain change only at a capture and a shift), so that the credit
            # count's enable is not behind the comparisons. (They differ from the comparisons
            # only after the last shift, where ch_r wraps and neither is read.)
            in_tile, is_last = Signal(), Signal()
            wrap = ch_c == C - 1
            with m.If(capture):
                m.d.sync += [in_tile.eq((0 < t_pend.rows) & (0 < t_pend.cols)),
                             is_last.eq((t_pend.rows == 1) & (t_pend.cols == 1))]
            with m.Elif(shift):
                m.d.sync += [
                    in_tile.eq(Mux(wrap, (ch_r + 1 < t_drain.rows) & (0 < t_drain.cols),
                                   (ch_r < t_drain.rows) & (ch_c + 1 < t_drain.cols))),
                    is_last.eq(Mux(wrap, (ch_r + 1 == t_drain.rows - 1) & (t_drain.cols == 1),
                                   (ch_r == t_drain.rows - 1) & (ch_c + 1 == t_drain.cols - 1))),
                ]

        # The finalizer never stalls: results collect in an output FIFO, and the chain feeds
        # a new entry only while every entry in flight (stages and FIFO) has a FIFO slot
        # (credits), so no ready signal ripples back through the stages. With ``tready`` high
        # an entry is in flight for ``final_latency`` clocks; the FIFO holds two more (the
        # credit check is registered, one clock stale) so that the chain never waits.
        # In wide arrays the FIFO's reads reach the count one clock late, through a register
        # of their own (the FIFO sits by the output port, the count by the chain's head), and
        # the FIFO holds one more.
        fifo_depth = cfg.final_latency + 2 + wide
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFOBuffered(
            width=cfg.out_fmt.width + 2, depth=fifo_depth)
        inflight = Signal(range(fifo_depth + 1))
        # credit = (inflight < fifo_depth - 1), kept as a register with inflight
        credit = Signal(init=1)
        m.d.comb += shift_d.eq(ch_go & credit)
        m.d.sync += shift.eq(shift_d)
        res_take = self.res.valid & self.res.ready
        returned = res_take
        if wide:
            returned = _replicas(m, res_take, 1, "returned")[0]
        entering = shift & in_tile
        with m.If(entering & ~returned):
            m.d.sync += [inflight.eq(inflight + 1), credit.eq(inflight < fifo_depth - 2)]
        with m.Elif(~entering & returned):
            m.d.sync += [inflight.eq(inflight - 1), credit.eq(inflight < fifo_depth)]
        with m.Else():
            m.d.sync += credit.eq(inflight < fifo_depth - 1)

        # the entry: the chain's head with its channel's bias and e0 (hw.finalizer)
        m.submodules.finalizer = fin = Finalizer(config=cfg)
        m.d.comb += [
            fin.i.valid.eq(shift & in_tile),
            fin.i.payload.acc.eq(head.acc), fin.i.payload.carries.eq(head.carries),
            fin.i.payload.flags.eq(head.flags), fin.i.payload.bias.eq(bias_sel),
            fin.i.payload.e0.eq(Mux(L_pc, e0_sel, L_e0)),
            fin.i.payload.last.eq(is_last),
            fin.i.payload.last_layer.eq(is_last & t_drain.last_layer),
            fin.bias_en.eq(L_bias), fin.relu.eq(L_relu),
        ]
        w_valid = fin.o.valid
        w_data = Cat(fin.o.payload.bits, fin.o.payload.last, fin.o.payload.last_layer)
        if cfg.fifo_cut:        # (the FIFO sits by the result port, far from the finalizer)
            w_valid = registered(m, w_valid, "fifo_w_valid")
            w_data = registered(m, w_data, "fifo_w_data", reset_less=True)
        m.d.comb += [
            out_fifo.w_en.eq(w_valid),
            out_fifo.w_data.eq(w_data),
            self.res.valid.eq(out_fifo.r_rdy),
            out_fifo.r_en.eq(self.res.ready),
            self.res.payload.bits.eq(out_fifo.r_data[:cfg.out_fmt.width]),
            self.res.payload.last.eq(out_fifo.r_data[cfg.out_fmt.width]),
        ]
        # the layer's last result beat taken ends the layer; in wide arrays through a register
        # by the FIFO (``done_cut``: the control sits far from the result port)
        last_taken = res_take & out_fifo.r_data[cfg.out_fmt.width + 1]
        if cfg.done_cut:
            last_taken = registered(m, last_taken, "last_taken")
        with m.If(last_taken):
            m.d.sync += [busy.eq(0), done.eq(1)]

        # -- counter events ----------------------------------------------------------------------
        m.d.comb += self.ev.eq(Cat(
            busy,
            accept,
            accept_ok & ~self.act.valid,
            c_active & ~Array(bank_full)[c_bank],
            self.res.valid & ~self.res.ready,
            c_ready_w & c_last & ~chain_free,
        ))
        return m
