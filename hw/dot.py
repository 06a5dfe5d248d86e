"""The shift-add dot-product unit: ``y = round_out(sum_k x[k] * w[k] + bias)``, no multiplier.

Data path (one beat = ``lanes`` terms):

1. *lanes* (:mod:`hw.lanes`): every product is a sign XOR and a barrel shift of the
   activation's significand to a fixed-point position; the bias is aligned the same way.
2. *accumulate*: an adder tree sums the beat's terms into a ``acc_width``-bit two's complement
   accumulator that holds every partial sum exactly (:class:`contract.DotConfig`). Flags track
   NaN, +inf and -inf terms and whether every term so far is -0.
3. *finalize* (:mod:`hw.rounding`): on the beat with ``last`` the exact sum is rounded once to
   ``out_fmt`` (round to nearest even), and specials and ReLU are applied.

Pipeline (``config.pipeline``, register stages between a beat and its result; results never
depend on it). ``|`` marks a register::

    pipeline 1:  lanes, tree, accumulate | finalize -> o        (o.payload is combinational)
    pipeline 2:  lanes, tree, accumulate | finalize | o
    pipeline 3:  lanes | tree, accumulate | finalize | o
    pipeline 4:  lanes | tree, accumulate | magnitude, leading zeros, shift | round | o

The accumulator register doubles as the result register of the accumulate stage. Latency:
the result of a dot product is valid on ``o`` ``pipeline`` clock cycles after the clock edge
that accepted its last beat. Every stage holds its data while the next one is full and not
accepting (a ready chain from ``o.ready`` back to ``i.ready``, combinational), so backpressure
loses and duplicates nothing and, with ``o.ready`` high, one beat is accepted per clock.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract import DotConfig

from .lanes import BiasAligner, ProductLanes, add_aligned, bias_geometry, lane_geometry, sum_terms
from .rounding import Rounder

__all__ = ["ShiftDotUnit", "in_layout"]


def in_layout(config):
    """The input beat layout (a fixed contract; first field at the LSB of ``i__payload``)."""
    if not isinstance(config, DotConfig):
        raise TypeError(f"config must be a DotConfig, not {config!r}")
    return data.StructLayout({
        "x": data.ArrayLayout(unsigned(config.in_fmt.width), config.lanes),
        "w": data.ArrayLayout(unsigned(config.wbits), config.lanes),
        "keep": unsigned(config.lanes),
        "last": unsigned(1),
        "has_bias": unsigned(1),
        "relu": unsigned(1),
        "e0": signed(config.e0_bits),
        "bias": unsigned(config.out_fmt.width),
    })


def _beat_layout(config):
    """An aligned beat, as held between the lanes and the accumulator (pipeline >= 3)."""
    _, lane_width = lane_geometry(config)
    _, bias_width, _ = bias_geometry(config)
    return data.StructLayout({
        "value": data.ArrayLayout(signed(lane_width), config.lanes),
        "neg": unsigned(config.lanes),
        "bias": signed(bias_width),
        "bias_neg": unsigned(1),
        "nan": unsigned(1),
        "pinf": unsigned(1),
        "ninf": unsigned(1),
        "neg0": unsigned(1),
        "last": unsigned(1),
        "relu": unsigned(1),
        "e0": signed(config.e0_bits),
    })


class ShiftDotUnit(wiring.Component):
    """Streaming DenseShift dot-product unit.

    Parameters
    ----------
    config : DotConfig
        Formats, weight width, lanes, pipeline depth and the domain (``max_k``, ``e0`` range)
        the exact accumulator is sized for.

    Members
    -------
    i : In(stream.Signature(in_layout(config)))
        Input beats; a dot product is one or more beats, the last with ``last = 1``.
        ``has_bias``, ``relu``, ``e0`` and ``bias`` are sampled on that beat only.
    o : Out(stream.Signature(unsigned(out_fmt.width)))
        One result (raw ``out_fmt`` bits) per dot product, in order.
    """

    def __init__(self, *, config):
        if not isinstance(config, DotConfig):
            raise TypeError(f"config must be a DotConfig, not {config!r}")
        self._config = config
        super().__init__({
            "i": In(stream.Signature(in_layout(config))),
            "o": Out(stream.Signature(unsigned(config.out_fmt.width))),
        })

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Clock cycles from the edge accepting a last beat to its result on ``o``."""
        return self._config.pipeline

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        stages = cfg.pipeline
        payload = self.i.payload

        # -- lanes: products and bias, aligned -----------------------------------------------
        m.submodules.lanes = lanes = ProductLanes(config=cfg)
        m.submodules.bias = bias = BiasAligner(config=cfg)
        m.d.comb += [
            lanes.x.eq(payload.x),
            lanes.w.eq(payload.w),
            lanes.keep.eq(payload.keep),
            bias.bias.eq(payload.bias),
            bias.e0.eq(payload.e0),
            bias.enable.eq(payload.last & payload.has_bias),
            bias.flags.nan.eq(lanes.nan), bias.flags.pinf.eq(lanes.pinf),
            bias.flags.ninf.eq(lanes.ninf), bias.flags.neg0.eq(lanes.neg0),
        ]
        beat_in = Signal(_beat_layout(cfg))
        m.d.comb += [
            beat_in.value.eq(lanes.value),
            beat_in.neg.eq(lanes.neg),
            beat_in.bias.eq(bias.value),
            beat_in.bias_neg.eq(bias.neg),
            beat_in.nan.eq(bias.nan),               # (the lanes' flags merged in the aligner)
            beat_in.pinf.eq(bias.pinf),
            beat_in.ninf.eq(bias.ninf),
            beat_in.neg0.eq(bias.neg0),
            beat_in.last.eq(payload.last),
            beat_in.relu.eq(payload.relu),
            beat_in.e0.eq(payload.e0),
        ]

        # -- the ready chain, from the output back -------------------------------------------
        # `<stage>_accept`: that stage's register may load this cycle (it is empty, or its
        # content moves on in the same cycle).
        out_valid = Signal()
        out_bits = Signal(cfg.out_fmt.width, reset_less=True)
        out_accept = ~out_valid | self.o.ready
        n_valid = Signal()
        n_accept = ~n_valid | out_accept
        if stages == 1:
            post_accept = self.o.ready
        elif stages == 4:
            post_accept = n_accept
        else:
            post_accept = out_accept
        done = Signal()                 # the accumulator holds a finished sum
        acc_accept = ~done | post_accept

        # -- optional register after alignment ----------------------------------------------
        if stages >= 3:
            beat = Signal(_beat_layout(cfg), reset_less=True)
            beat_valid = Signal()
            a_accept = ~beat_valid | acc_accept
            m.d.comb += self.i.ready.eq(a_accept)
            with m.If(a_accept):
                m.d.sync += [beat_valid.eq(self.i.valid), beat.eq(beat_in)]
        else:
            beat, beat_valid = beat_in, self.i.valid
            m.d.comb += self.i.ready.eq(acc_accept)

        # -- adder tree and accumulator -------------------------------------------------------
        # Lane values are in units of accumulator bit product_shift_base, the bias in units of
        # bit bias_offset; the ones' complement +1s ride on the adders' carry-ins: L-1 tree
        # adders take L-1 lane +1s; of the remaining lane +1 and the bias +1, the one whose
        # unit is the coarser goes into the bias adder, the other into the accumulator adder.
        lane_off = cfg.product_shift_base
        _, _, bias_off = bias_geometry(cfg)
        lane_sum, spare = sum_terms(list(beat.value), list(beat.neg), lane_off)
        assert len(spare) == 1
        if bias_off >= lane_off:
            term, term_off = add_aligned(lane_sum, lane_off, beat.bias, bias_off, beat.bias_neg)
            acc_cin = spare[0]
        else:
            term, term_off = add_aligned(lane_sum, lane_off, beat.bias, bias_off, spare[0])
            acc_cin = beat.bias_neg

        acc = Signal(signed(cfg.acc_width), reset_less=True)
        start = Signal(init=1)          # the next beat starts a new dot product
        nan, pinf, ninf = Signal(), Signal(), Signal()
        neg0 = Signal()
        relu = Signal(reset_less=True)
        e0 = Signal(signed(cfg.e0_bits), reset_less=True)
        base = Mux(start, 0, acc)
        acc_next, _ = add_aligned(base, 0, term, term_off, acc_cin)
        with m.If(acc_accept):
            with m.If(beat_valid):
                m.d.sync += [
                    acc.eq(acc_next),
                    nan.eq((nan & ~start) | beat.nan),
                    pinf.eq((pinf & ~start) | beat.pinf),
                    ninf.eq((ninf & ~start) | beat.ninf),
                    neg0.eq((neg0 | start) & beat.neg0),
                    start.eq(beat.last),
                    done.eq(beat.last),
                ]
                with m.If(beat.last):
                    m.d.sync += [relu.eq(beat.relu), e0.eq(beat.e0)]
            with m.Else():
                m.d.sync += done.eq(0)

        # -- finalizer (hw.rounding.Rounder): sign and magnitude of the exact sum, rounded once;
        # with pipeline 4 a register after the rounder's shift amount, which holds while the
        # output register is full
        sign = acc[cfg.acc_width - 1]
        mag = Signal(cfg.acc_width - 1)
        m.d.comb += mag.eq(Mux(sign, -acc, acc))
        # (relu travels beside the sum, so that the output stage applies the result's own)
        m.submodules.rounder = rounder = Rounder(
            config=cfg, cuts=("shift",) if stages == 4 else (), stall=stages == 4,
            meta_layout=data.StructLayout({"relu": 1}))
        s = rounder.i.payload.sum
        m.d.comb += [s.sign.eq(sign), s.mag.eq(mag), s.e0.eq(e0),
                     s.flags.eq(Cat(nan, pinf, ninf, neg0)), rounder.i.valid.eq(done),
                     rounder.i.payload.meta.relu.eq(relu),
                     rounder.relu.eq(rounder.o.payload.meta.relu)]
        if stages == 4:
            m.d.comb += rounder.en.eq(n_accept)
            with m.If(n_accept):
                m.d.sync += n_valid.eq(done)
            result_valid = n_valid
        else:
            result_valid = done

        if stages == 1:
            m.d.comb += [self.o.valid.eq(done), self.o.payload.eq(rounder.o.payload.bits)]
        else:
            with m.If(out_accept):
                m.d.sync += [out_valid.eq(result_valid), out_bits.eq(rounder.o.payload.bits)]
            m.d.comb += [self.o.valid.eq(out_valid), self.o.payload.eq(out_bits)]
        return m
