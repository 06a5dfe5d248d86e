"""Layer control of the PE array: the START checks, the layer's registers, BUSY and DONE.

A START pulse is handled two clocks late. The clock of the pulse reduces the inputs' bits in
groups of four (the inputs hold still until the layer starts); the next one combines the groups
into the three checks (``1 <= K <= depth``, ``1 <= N, M <= MAX_NM``, ``e0`` in range unless
per channel); then the layer starts (``go``) or the pulse is refused with an error (a pulse
while a layer runs or is starting: ``START_BUSY``). This keeps the wide comparisons off the
control paths.

At ``go`` the other components load their state: from :attr:`LayerSignature` ``first`` (values
valid in that clock: ``N`` and ``M`` with their upper parts reduced, ``K == 1``, ``K == 2``)
and ``held`` (registers loaded at ``go``, steady until the next layer: the options, ``N``,
``e0``, ``K - 1``, ``K - 2``, ``K - 3``, code words per channel - 1).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract.array import MAX_NM, ArrayConfig

from .stages import reduce_groups, registered, times_const

__all__ = ["LayerControl", "LayerSignature", "NM_BITS", "k_bits", "addr_bits"]

#: Bits of N and M inside the array.
NM_BITS = MAX_NM.bit_length()


def k_bits(config):
    """Bits that hold ``K`` in ``1 .. depth``."""
    return config.depth.bit_length()


def addr_bits(config):
    """Address bits of one bank of a weight store (``k`` in ``0 .. depth - 1``)."""
    return (config.depth - 1).bit_length()


def LayerSignature(config):
    """What the layer control gives the other components (see the module docstring)."""
    kbits = k_bits(config)
    return wiring.Signature({
        "go": Out(1),
        "first": Out(data.StructLayout({
            "n": NM_BITS, "n_high": 1, "m": NM_BITS, "m_high": 1, "k1": 1, "k2": 1})),
        "held": Out(data.StructLayout({
            "n": NM_BITS, "n_high": 1, "e0": signed(config.e0_bits), "relu": 1, "bias": 1,
            "pc": 1, "k1": 1, "km1": kbits, "km2": kbits + 1, "km3": kbits + 1,
            "words_m1": kbits + 3})),
    })


class LayerControl(wiring.Component):
    """START checks and the layer's registers.

    Members
    -------
    start : In(1)
        Pulse: start a layer of ``n``, ``k``, ``m``, ``e0`` (which hold still from the pulse
        until two clocks after it) with the options ``relu``, ``bias_en``, ``e0_pc`` (sampled
        at the pulse).
    n, k, m : In(unsigned(32)); e0 : In(signed(32)); relu, bias_en, e0_pc : In(1)
    finish : In(1)
        The layer's last result beat was taken: BUSY falls, DONE rises.
    busy, done : Out(1)
    err : Out(StructLayout({"k", "nm", "e0", "busy"}))
        One-clock pulses: a START refused for ``K``, for ``N``/``M``, for ``e0``, or because a
        layer runs or is starting.
    layer : Out(LayerSignature(config))

    With the ``"spread"`` floorplan ``go`` is a register decided a clock ahead, so that the
    layer start's enable reaches the control registers across the device from a flip-flop;
    BUSY is then sampled in the clock after the pulse (with a start already decided counted
    as busy), and everything loaded from ``K`` is computed from a register of ``K`` taken at
    the pulse, in registers (no carry chain or comparator behind the start).
    """

    def __init__(self, *, config):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        self._config = config
        super().__init__({
            "start": In(1), "n": In(unsigned(32)), "k": In(unsigned(32)),
            "m": In(unsigned(32)), "e0": In(signed(32)), "relu": In(1), "bias_en": In(1),
            "e0_pc": In(1), "finish": In(1),
            "busy": Out(1), "done": Out(1),
            "err": Out(data.StructLayout({"k": 1, "nm": 1, "e0": 1, "busy": 1})),
            "layer": Out(LayerSignature(config)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        R, C, B = cfg.rows, cfg.cols, cfg.wbits
        spread = cfg.spread
        kbits, abits, e0_bits = k_bits(cfg), addr_bits(cfg), cfg.e0_bits

        busy, done = Signal(), Signal()
        L_n = Signal(NM_BITS)
        L_n_high = Signal()                        # L_n[R.bit_length():] is not zero
        L_e0 = Signal(signed(e0_bits))
        L_relu, L_bias, L_pc = Signal(), Signal(), Signal()
        L_k1 = Signal()                            # K == 1
        L_km1 = Signal(kbits)                      # K - 1
        L_km2 = Signal(kbits + 1)                  # K - 2 (-1 when K = 1)
        L_km3 = Signal(kbits + 1)                  # K - 3 (negative values never match)
        L_words_m1 = Signal(kbits + 3)             # code words per channel - 1

        start1, start = Signal(), Signal()
        k_ok, shape_ok, e0_in_range = Signal(), Signal(), Signal()
        # The inputs hold still from the pulse until the layer starts, so they are read where
        # they are needed; only values that take logic are registered.
        s_n, s_m = self.n[:NM_BITS], self.m[:NM_BITS]
        s_k = self.k[:kbits]
        s_kb = Signal(kbits + B.bit_length())     # K * B, the code bits of one channel
        s_e0 = self.e0[:e0_bits].as_signed()
        s_relu, s_bias, s_pc = Signal(), Signal(), Signal()    # sampled: the register block
        with m.If(self.start):                    # shows options as they are written
            m.d.sync += [s_relu.eq(self.relu), s_bias.eq(self.bias_en), s_pc.eq(self.e0_pc)]
        e0_top = self.e0[e0_bits - 1:]             # all equal: e0 fits e0_bits bits
        g = {
            "n_any": reduce_groups(m, self.n[:NM_BITS], "any"),
            "n_hi": reduce_groups(m, self.n[NM_BITS:], "any"),
            "m_any": reduce_groups(m, self.m[:NM_BITS], "any"),
            "m_hi": reduce_groups(m, self.m[NM_BITS:], "any"),
            "k_any": reduce_groups(m, self.k[:abits], "any"),
            "k_hi": reduce_groups(m, self.k[abits + 1:], "any"),
            "e0_zeros": reduce_groups(m, e0_top, "any"),
            "e0_ones": reduce_groups(m, e0_top, "all"),
        }
        k_top, e0_ge, e0_le = Signal(), Signal(), Signal()
        m.d.sync += [start1.eq(self.start), start.eq(start1), k_top.eq(self.k[abits]),
                     e0_ge.eq(s_e0 >= cfg.e0_min), e0_le.eq(s_e0 <= cfg.e0_max)]
        # (the first tile sizes need N and M split as ``tile_size`` does: the upper parts are
        # reduced here)
        s_n_high, s_m_high = Signal(), Signal()
        m.d.sync += [
            s_n_high.eq(self.n[R.bit_length():NM_BITS].any()),
            s_m_high.eq(self.m[C.bit_length():NM_BITS].any()),
            s_kb.eq(times_const(self.k[:kbits], B)),
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
        go = Signal()
        if spread:
            busy_seen = Signal()
            m.d.sync += [go.eq(start1 & ~busy & ~go & args_ok_d), busy_seen.eq(busy | go)]
        else:
            busy_seen = busy
            m.d.comb += go.eq(start & ~busy & args_ok)
        e0_ok = s_pc | e0_in_range
        k_src = registered(m, s_k, "k_pulse", reset_less=True) if spread else s_k
        k_minus = {j: k_src - j for j in (1, 2, 3)}
        k_is = {j: k_src == j for j in (1, 2)}
        words_m1 = ((s_kb + 31) >> 5) - 1
        if spread:
            width = {1: len(L_km1), 2: len(L_km2), 3: len(L_km3)}
            k_minus = {j: registered(m, v[:width[j]], f"k_minus{j}")
                       for j, v in k_minus.items()}
            k_is = {j: registered(m, v, f"k_is{j}") for j, v in k_is.items()}
            words_m1 = registered(m, words_m1[:len(L_words_m1)], "words_m1")

        with m.If(start):
            with m.If(busy_seen):
                m.d.comb += self.err.busy.eq(1)
            with m.Elif(~args_ok):
                m.d.comb += [self.err.k.eq(~k_ok), self.err.nm.eq(~shape_ok),
                             self.err.e0.eq(~e0_ok)]
        with m.If(go):
            m.d.sync += [
                busy.eq(1), done.eq(0),
                L_n.eq(s_n), L_n_high.eq(s_n_high), L_e0.eq(s_e0),
                L_relu.eq(s_relu), L_bias.eq(s_bias), L_pc.eq(s_pc),
                L_km1.eq(k_minus[1]), L_km2.eq(k_minus[2]), L_km3.eq(k_minus[3]),
                L_words_m1.eq(words_m1), L_k1.eq(k_is[1]),
            ]
        with m.If(self.finish):
            m.d.sync += [busy.eq(0), done.eq(1)]

        first, held = self.layer.first, self.layer.held
        m.d.comb += [
            self.busy.eq(busy), self.done.eq(done), self.layer.go.eq(go),
            first.n.eq(s_n), first.n_high.eq(s_n_high), first.m.eq(s_m),
            first.m_high.eq(s_m_high), first.k1.eq(k_is[1]), first.k2.eq(k_is[2]),
            held.n.eq(L_n), held.n_high.eq(L_n_high), held.e0.eq(L_e0), held.relu.eq(L_relu),
            held.bias.eq(L_bias), held.pc.eq(L_pc), held.k1.eq(L_k1), held.km1.eq(L_km1),
            held.km2.eq(L_km2), held.km3.eq(L_km3), held.words_m1.eq(L_words_m1),
        ]
        return m
