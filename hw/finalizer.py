"""The array's finalizer: one drained PE sum per clock -> one rounded result per clock.

The entry is a PE's accumulator and pending carries (``hw.pe.pe_sum``), its special-value
flags, and the bias and ``e0`` of its output channel. The finalizer adds the pending carries,
aligns the bias against ``2**e0`` (:class:`hw.lanes.BiasAligner`), forms the exact total, and
rounds it once (:class:`hw.rounding.Rounder`): the same bits as ``hw.dot.ShiftDotUnit`` and the
golden model for the same terms.

It is a pipeline of :attr:`Finalizer.stages` register stages that never stalls (the array's
output FIFO and its credit count take up the results): an entry presented with ``i.valid`` in
clock ``t`` is on ``o`` in clock ``t + stages``. Every register loads every clock; no stage has
more than a few LUT levels or one carry chain of at most ``contract.array.FINAL_CARRY_BITS``
bits. The entry's side data (its flags, ``e0`` and the caller's ``meta``) travels beside it
through every stage. Stages::

    A entry | AR (+) pending carries, beside the bias aligner's terms, amount and half
    | A2 bias aligned | B total (*) | M magnitude (*) | the rounder's stages

    (+) ``config.pe_resolve_stages`` registers, or two when fewer (the aligner's); (*)
    ``config.final_add_stages`` registers; the rounder: every cut of
    ``hw.rounding.ROUNDER_CUTS``, ``hop`` only with ``config.final_cut``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract.array import ArrayConfig

from .lanes import BiasAligner
from .narrow_out import saturate, widen
from .pe import pe_carry_vector, pe_flags_layout, pe_state_layout
from .rounding import ROUNDER_CUTS, Rounder
from .stages import delayed, pipelined_add, sext

__all__ = ["Finalizer", "entry_layout", "result_layout", "array_meta_layout"]


def array_meta_layout():
    """The array's side data of an entry: ``last``, the tile's last result; ``last_layer``, the
    layer's last."""
    return data.StructLayout({"last": 1, "last_layer": 1})


def entry_layout(config, meta_layout=None):
    """One drained entry: a PE's state (``hw.pe.pe_state_layout``) with its channel's bias bits
    and ``e0``, and the caller's ``meta`` (default :func:`array_meta_layout`)."""
    meta_layout = array_meta_layout() if meta_layout is None else meta_layout
    state = {name: field.shape for name, field in pe_state_layout(config)}
    return data.StructLayout({**state, "bias": config.out_fmt.width,
                              "e0": signed(config.e0_bits), "meta": meta_layout})


def result_layout(config, meta_layout=None):
    """One result: its ``out_fmt`` bits and the entry's ``meta``."""
    meta_layout = array_meta_layout() if meta_layout is None else meta_layout
    return data.StructLayout({"bits": config.out_fmt.width, "meta": meta_layout})


class Finalizer(wiring.Component):
    """The array's pipelined finalizer (see the module docstring).

    Parameters
    ----------
    config : ArrayConfig
    meta_layout : data.Layout
        Side data carried from each entry to its result (default :func:`array_meta_layout`).

    Members
    -------
    i : In(stream.Signature(entry_layout(config, meta_layout), always_ready=True))
    o : Out(stream.Signature(result_layout(config, meta_layout), always_ready=True))
    bias_en, relu : In(1)
        The layer's options, held steady while entries are in flight: add the entry's bias
        (without it the bias bits are ignored); apply ReLU.
    """

    def __init__(self, *, config, meta_layout=None):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {type(config).__name__}")
        meta_layout = array_meta_layout() if meta_layout is None else meta_layout
        if not isinstance(meta_layout, data.Layout):
            raise TypeError(f"meta_layout must be a data.Layout, not {meta_layout!r}")
        self._config, self._meta_layout = config, meta_layout
        super().__init__({
            "i": In(stream.Signature(entry_layout(config, meta_layout), always_ready=True)),
            "o": Out(stream.Signature(result_layout(config, meta_layout), always_ready=True)),
            "bias_en": In(1),
            "relu": In(1),
        })

    @property
    def config(self):
        return self._config

    @property
    def rounder_cuts(self):
        return tuple(c for c in ROUNDER_CUTS if c != "hop" or self._config.final_cut)

    @property
    def stages(self):
        """Clocks from an entry on ``i`` to its result on ``o``."""
        cfg = self._config
        return (2 + max(cfg.pe_resolve_stages, 2) + 2 * cfg.final_add_stages
                + len(self.rounder_cuts))

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        dot = cfg.dot_config
        entry = self.i.payload
        side_l = data.StructLayout({"e0": signed(cfg.e0_bits), "meta": self._meta_layout})

        # A, AR: the accumulator registered, then its pending carries added
        # (pe_resolve_stages) and, when that is shorter than the bias path, held
        acc = Signal(signed(cfg.pe_acc_width), name="a_acc", reset_less=True)
        carries = Signal(cfg.pe_pending_bits, name="a_carries", reset_less=True)
        m.d.sync += [acc.eq(entry.acc), carries.eq(entry.carries)]
        acc_r = acc.as_unsigned()
        if cfg.pe_resolve_stages:
            acc_r = pipelined_add(m, acc_r, pe_carry_vector(cfg, carries), Const(0, 1),
                                  stages=cfg.pe_resolve_stages, name="resolve")
        acc_r = delayed(m, acc_r, cfg.bias_wait_stages[0], "acc_wait")

        # beside it the bias aligner (its entry register is A), which also merges the entry's
        # flags with the bias's, with the side data
        m.submodules.aligner = bias = BiasAligner(config=dot, cuts=("terms", "amount", "half"),
                                                  meta_layout=side_l)
        bias_bits = entry.bias
        if cfg.po_fmt != cfg.out_fmt:               # a saturating output: bias into the carrier
            bias_bits = widen(entry.bias, cfg.out_fmt, cfg.po_fmt)
        m.d.comb += [bias.bias.eq(bias_bits), bias.e0.eq(entry.e0), bias.flags.eq(entry.flags),
                     bias.enable.eq(self.bias_en), bias.valid.eq(self.i.valid),
                     bias.meta.e0.eq(entry.e0), bias.meta.meta.eq(entry.meta)]
        # (the bias waits for the carry resolution when that is the longer path)
        aligned = Cat(bias.o_valid, bias.o_meta, bias.value, bias.neg, bias.nan, bias.pinf,
                      bias.ninf, bias.neg0)
        aligned = delayed(m, aligned, cfg.bias_wait_stages[1], "bias_wait")
        b_valid, b_side, b_value = Signal(), Signal(side_l), Signal(bias.width)
        b_neg, b_nan, b_pinf, b_ninf, b_neg0 = (Signal(name=f"bias_{n}")
                                               for n in ("neg", "nan", "pinf", "ninf", "neg0"))
        m.d.comb += Cat(b_valid, b_side, b_value, b_neg, b_nan, b_pinf, b_ninf,
                        b_neg0).eq(aligned)

        # A2: the two paths meet
        side_l = data.StructLayout({"flags": pe_flags_layout(), "e0": signed(cfg.e0_bits),
                                    "meta": self._meta_layout})
        a2_valid = Signal()
        a2_acc = Signal(cfg.pe_acc_width, name="a2_acc", reset_less=True)
        a2_bias = Signal(bias.width, name="a2_bias", reset_less=True)
        a2_neg = Signal(name="a2_neg", reset_less=True)
        a2_side = Signal(side_l, name="a2_side", reset_less=True)
        m.d.sync += [
            a2_valid.eq(b_valid), a2_acc.eq(acc_r), a2_bias.eq(b_value), a2_neg.eq(b_neg),
            a2_side.e0.eq(b_side.e0), a2_side.meta.eq(b_side.meta),
            a2_side.flags.eq(Cat(b_nan, b_pinf, b_ninf, b_neg0)),
        ]

        # B (final_add_stages registers): acc + bias. Both operands are aligned at the finer
        # one's LSB ``lo``; the bias' ones' complement +1 (weight 2**boff) is the carry-in at
        # ``lo`` with the bias' known-zero bits below ``boff`` set to ``neg``.
        psb, boff = dot.product_shift_base, bias.offset
        lo = min(psb, boff)
        add_w = cfg.acc_width - lo
        op_acc = sext(Cat(Const(0, psb - lo), a2_acc), add_w)
        op_bias = sext(Cat(a2_neg.replicate(boff - lo), a2_bias), add_w)
        stages = cfg.final_add_stages
        total = Cat(Const(0, lo), pipelined_add(m, op_acc, op_bias, a2_neg, stages=stages,
                                                name="total"))
        b_valid, b_side = Signal(), Signal(side_l)
        m.d.comb += Cat(b_valid, b_side).eq(delayed(m, Cat(a2_valid, a2_side), stages,
                                                    "b_side"))

        # M (final_add_stages registers): sign and magnitude, |t| = (t - neg) ^ neg for the
        # total t with sign neg (for neg: ~(t - 1) = -t). Each piece's complement is taken on
        # its sum before its register, so that it shares the sum's LUT.
        neg = total[-1]
        w = cfg.acc_width - 1
        mag = pipelined_add(m, total[:-1], neg.replicate(w), Const(0, 1), stages=stages,
                            name="mag", invert=neg)
        m_valid, m_sign, m_side = Signal(), Signal(), Signal(side_l)
        m.d.comb += Cat(m_valid, m_sign, m_side).eq(
            delayed(m, Cat(b_valid, neg, b_side), stages, "m_side"))

        # the rounding, its side data the caller's meta; ReLU, an option held while entries
        # are in flight, with "spread" through a register of the finalizer's own (the layer's
        # option register sits far from the output stage)
        # (a saturating output also carries whether the sum had an infinite or NaN term)
        saturating = cfg.po_fmt != cfg.out_fmt
        r_meta_l = (data.StructLayout({"meta": self._meta_layout, "special": 1}) if saturating
                    else self._meta_layout)
        m.submodules.rounder = rounder = Rounder(config=dot, cuts=self.rounder_cuts,
                                                 meta_layout=r_meta_l,
                                                 mag_in_ram=bool(cfg.ram_delays))
        relu = self.relu
        if cfg.spread:
            relu = Signal(name="relu_r", reset_less=True)
            m.d.sync += relu.eq(self.relu)
        s = rounder.i.payload.sum
        bits, r_in, r_out = rounder.o.payload.bits, rounder.i.payload.meta, rounder.o.payload.meta
        if saturating:                              # ... and the result out of it, saturated
            flags = m_side.flags
            m.d.comb += r_in.special.eq(flags.nan | flags.pinf | flags.ninf)
            bits = saturate(bits, cfg.po_fmt, cfg.out_fmt, finite=~r_out.special)
            r_in, r_out = r_in.meta, r_out.meta
        m.d.comb += [
            rounder.i.valid.eq(m_valid), s.sign.eq(m_sign), s.mag.eq(mag),
            s.e0.eq(m_side.e0), s.flags.eq(m_side.flags), rounder.relu.eq(relu),
            r_in.eq(m_side.meta),
            self.o.valid.eq(rounder.o.valid), self.o.payload.bits.eq(bits),
            self.o.payload.meta.eq(r_out),
        ]
        return m
