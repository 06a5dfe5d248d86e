"""The array's finalizer: one drained PE sum per clock -> one rounded result per clock.

The entry is a PE's accumulator and pending carries (``hw.pe.pe_sum``), its special-value
flags, and the bias and ``e0`` of its output channel. The finalizer adds the pending carries,
aligns the bias against ``2**e0`` (the algorithm of ``hw.lanes.BiasAligner``), forms the exact
total, and rounds it once to nearest even (the algorithms of ``hw.rounding.LeadingOne`` and
``Rounder``), then applies the special values, the -0 rule and ReLU: the same bits as
``hw.dot.DotUnit`` and the golden model for the same terms.

It is a pipeline of ``ArrayConfig.final_latency - 2 - fifo_cut`` register stages that never
stalls (the array's output FIFO and its credit count take up the results): an entry presented
with ``i.valid`` in clock ``t`` is on ``o`` in clock ``t + stages``. No stage has more than a
few LUT levels or one carry chain of at most ``contract.array.FINAL_CARRY_BITS`` bits. Stages::

    A entry | AR (+) pending carries, beside A1 bias decoded | A1b | A2 bias aligned
    | B total (*) | M magnitude (*) | L1 leading zeros per block | L2 tree
    | C min(lz, cap) (| hop, ``final_cut``) | R1 | R2 rounding window | P rounded | O specials

    (+) ``config.pe_resolve_stages`` registers; (*) ``config.final_add_stages`` registers
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract.array import WIDE_COLS, ArrayConfig

from .lanes import bias_geometry
from .pe import pe_carry_vector, pe_flags_layout
from .rounding import finalizer_geometry, select_result
from .stages import delayed, pipelined_add, sext

__all__ = ["Finalizer", "entry_layout", "result_layout"]


def entry_layout(config):
    """One drained entry: a PE's sum and flags with its channel's bias bits and ``e0``;
    ``last``: the tile's last entry, ``last_layer``: the layer's last."""
    return data.StructLayout({
        "acc": signed(config.pe_acc_width), "carries": unsigned(config.pe_pieces - 1),
        "flags": pe_flags_layout(), "bias": config.out_fmt.width,
        "e0": signed(config.e0_bits), "last": 1, "last_layer": 1})


def result_layout(config):
    """One result: its ``out_fmt`` bits and the entry's ``last`` and ``last_layer``."""
    return data.StructLayout({"bits": config.out_fmt.width, "last": 1, "last_layer": 1})


class Finalizer(wiring.Component):
    """The array's pipelined finalizer (see the module docstring).

    Ports: ``i`` (``entry_layout``, no back-pressure), ``o`` (``result_layout``, no
    back-pressure), and the layer's options ``bias_en`` (add the entry's bias; without it the
    bias bits are ignored) and ``relu``, held steady while entries are in flight."""

    def __init__(self, *, config):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {type(config).__name__}")
        self._config = config
        super().__init__({
            "i": In(stream.Signature(entry_layout(config), always_ready=True)),
            "o": Out(stream.Signature(result_layout(config), always_ready=True)),
            "bias_en": In(1),
            "relu": In(1),
        })

    @property
    def config(self):
        return self._config

    @property
    def stages(self):
        """Clocks from an entry on ``i`` to its result on ``o``."""
        return self._config.final_latency - 2 - self._config.fifo_cut

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        dot = cfg.dot_config
        e0_bits = cfg.e0_bits
        flags_l = pe_flags_layout()

        # stage A: entry, bias and offset of its channel, and the two terms of the bias's
        # shift amount, max(E_b, 1) - 1 and e0_max - e0 (modulo 2**amount_w), so that stage
        # A1 adds them with one carry chain
        b_amax, b_width, b_off = bias_geometry(dot)
        amount_w = b_amax.bit_length()
        ofmt = cfg.out_fmt
        a_valid = Signal()
        a_layout = data.StructLayout({
            "acc": signed(cfg.pe_acc_width), "carries": unsigned(cfg.pe_pieces - 1),
            "flags": flags_l, "bias": ofmt.width, "e0": signed(e0_bits), "last": 1,
            "last_layer": 1, "bexp_m1": ofmt.exp_bits, "e0_off": amount_w})
        a = Signal(a_layout)
        # stage A2: bias aligned against 2**e0
        a2_valid = Signal()
        a2 = Signal(data.StructLayout({
            "acc": signed(cfg.pe_acc_width), "bias": signed(b_width), "neg": 1,
            "flags": flags_l,
            "e0": signed(e0_bits), "last": 1, "last_layer": 1}))
        # stage B: exact total
        b_valid = Signal()
        b = Signal(data.StructLayout({
            "total": signed(cfg.acc_width), "flags": flags_l, "e0": signed(e0_bits),
            "last": 1, "last_layer": 1}))
        # stage M: sign and magnitude
        m_valid = Signal()
        mg = Signal(data.StructLayout({
            "sign": 1, "mag": cfg.acc_width - 1, "flags": flags_l, "e0": signed(e0_bits),
            "last": 1, "last_layer": 1}))
        # stage C: leading one
        c_valid = Signal()
        c_sign = Signal(reset_less=True)
        geo = finalizer_geometry(dot)
        mag_w = cfg.acc_width - 1
        c_front = Signal(data.StructLayout({
            "mag": mag_w, "zero": 1, "shift": geo["r_max"].bit_length(),
            "field_m1": geo["cap_max"].bit_length()}), reset_less=True)
        c_flags = Signal(flags_l, reset_less=True)
        cs_last, cs_last_layer = Signal(), Signal()
        e0_entry = self.i.payload.e0
        sel_bexp = self.i.payload.bias[ofmt.frac_bits:ofmt.width - 1]
        m.d.sync += [
            a_valid.eq(self.i.valid),
            a.acc.eq(self.i.payload.acc), a.carries.eq(self.i.payload.carries),
            a.flags.eq(self.i.payload.flags), a.bias.eq(self.i.payload.bias), a.e0.eq(e0_entry),
            a.bexp_m1.eq(Mux(sel_bexp.any(), sel_bexp - 1, 0)),
            a.e0_off.eq(cfg.e0_max - e0_entry),
            a.last.eq(self.i.payload.last), a.last_layer.eq(self.i.payload.last_layer),
        ]
        # stage AR (pe_resolve_stages registers): the PE's pending carries added. The bias
        # stages A1, A1b run beside it; the two paths meet in A2.
        acc_r = a.acc.as_unsigned()
        if cfg.pe_resolve_stages:
            acc_r = pipelined_add(m, acc_r, pe_carry_vector(cfg, a.carries), Const(0, 1),
                                   stages=cfg.pe_resolve_stages, name="resolve")
        acc_r = delayed(m, acc_r, cfg.bias_wait_stages[0], "acc_wait")
        # stages A1, A1b, A2: the bias decoded and aligned against 2**e0 (the algorithm of
        # hw.lanes.BiasAligner, with a register between the shift amount and the shifter, and
        # the barrel shift cut in two)
        bsign = a.bias[ofmt.width - 1]
        bexp = a.bias[ofmt.frac_bits:ofmt.width - 1]
        bfrac = a.bias[:ofmt.frac_bits]
        bspecial = bexp == ofmt.exp_max_field
        bnormal = bexp.any()
        bactive = self.bias_en & ~bspecial
        half = amount_w // 2
        side_l = data.StructLayout({"valid": 1, "neg": 1, "flags": flags_l,
                                    "e0": signed(e0_bits), "last": 1, "last_layer": 1})
        a1 = Signal(side_l)
        a1_amount = Signal(amount_w)
        a1_sig = Signal(ofmt.frac_bits + 1)
        m.d.sync += [
            a1.valid.eq(a_valid),
            # max(E_b, 1) - 1 + (e0_max - e0)
            a1_amount.eq(a.bexp_m1 + a.e0_off),
            a1_sig.eq(Mux(bactive, Cat(bfrac, bnormal), 0)),
            a1.neg.eq(bsign & bactive),
            a1.flags.nan.eq(a.flags.nan | (self.bias_en & bspecial & bfrac.any())),
            a1.flags.pinf.eq(a.flags.pinf | (self.bias_en & bspecial & ~bfrac.any() & ~bsign)),
            a1.flags.ninf.eq(a.flags.ninf | (self.bias_en & bspecial & ~bfrac.any() & bsign)),
            a1.flags.neg0.eq(a.flags.neg0 & (~self.bias_en | (~bnormal & ~bfrac.any() & bsign))),
            a1.e0.eq(a.e0), a1.last.eq(a.last), a1.last_layer.eq(a.last_layer),
        ]
        value = a1_sig
        for k in range(half):                  # A1 -> A1b: the amount's low bits
            shifted = Mux(a1_amount[k], value << (1 << k), value)
            level = Signal(min(len(shifted), b_width - 1), name=f"bias_sh{k}")
            m.d.comb += level.eq(shifted)
            value = level
        a1b = Signal(side_l)
        a1b_amount = Signal(amount_w - half)
        a1b_value = Signal(len(value), reset_less=True)
        m.d.sync += [a1b.eq(a1), a1b_amount.eq(a1_amount[half:]), a1b_value.eq(value)]
        # (the bias waits for the carry resolution when that is the longer path)
        held = delayed(m, Cat(a1b, a1b_amount, a1b_value), cfg.bias_wait_stages[1], "bias_wait")
        a1b = Signal(side_l)
        a1b_amount = Signal(amount_w - half)
        value = Signal(len(value))
        m.d.comb += Cat(a1b, a1b_amount, value).eq(held)
        for k in range(half, amount_w):        # A1b -> A2: the high bits
            shifted = Mux(a1b_amount[k - half], value << (1 << k), value)
            level = Signal(min(len(shifted), b_width - 1), name=f"bias_sh{k}")
            m.d.comb += level.eq(shifted)
            value = level
        m.d.sync += [
            a2_valid.eq(a1b.valid),
            a2.acc.eq(acc_r),
            a2.bias.eq(Cat(value, Const(0, b_width - len(value))) ^ a1b.neg.replicate(b_width)),
            a2.neg.eq(a1b.neg), a2.flags.eq(a1b.flags),
            a2.e0.eq(a1b.e0), a2.last.eq(a1b.last), a2.last_layer.eq(a1b.last_layer),
        ]
        # stage B (final_add_stages registers): acc + bias. Both operands are aligned at the
        # finer one's LSB ``lo``; the bias' ones' complement +1 (weight 2**boff) is the carry-in
        # at ``lo`` with the bias' known-zero bits below ``boff`` set to ``neg``.
        psb, boff = dot.product_shift_base, b_off
        lo = min(psb, boff)
        add_w = cfg.acc_width - lo
        op_acc = sext(Cat(Const(0, psb - lo), a2.acc), add_w)
        op_bias = sext(Cat(a2.neg.replicate(boff - lo), a2.bias), add_w)
        stages = cfg.final_add_stages
        total = pipelined_add(m, op_acc, op_bias, a2.neg, stages=stages, name="total")
        side = delayed(m, Cat(a2_valid, a2.flags, a2.e0, a2.last, a2.last_layer), stages,
                        "b_side")
        m.d.comb += [
            Cat(b_valid, b.flags, b.e0, b.last, b.last_layer).eq(side),
            b.total.eq(Cat(Const(0, lo), total)),
        ]
        # stage M (final_add_stages registers): sign and magnitude, |t| = (t - neg) ^ neg for
        # the total t with sign neg (for neg: ~(t - 1) = -t). Each piece's complement is
        # taken on its sum before its register, so that it shares the sum's LUT.
        neg = b.total[-1]
        w = cfg.acc_width - 1
        mag = pipelined_add(m, b.total[:-1], neg.replicate(w), Const(0, 1), stages=stages,
                            name="mag", invert=neg)
        side = delayed(m, Cat(b_valid, neg, b.flags, b.e0, b.last, b.last_layer), stages,
                       "m_side")
        m.d.comb += [
            Cat(m_valid, mg.sign, mg.flags, mg.e0, mg.last, mg.last_layer).eq(side),
            mg.mag.eq(mag),
        ]
        # stages L1, L2, C: the leading one and the subnormal-limited exponent (the algorithm
        # of hw.rounding.LeadingOne, in three register stages): leading zeros per 8-bit block,
        # then a block tree, then lsh = min(lz, cap), r = T - F - lsh, field - 1 = cap - lsh.
        top = geo["T"]
        nblk = -(-mag_w // 8)
        padded = Cat(Const(0, nblk * 8 - mag_w), mg.mag)       # zeros below the LSB
        lz_bits = (nblk * 8).bit_length()
        cap_w = max(geo["cap_max"].bit_length(), lz_bits) + 1
        side = data.StructLayout({"mag": mag_w, "cap": cap_w, "sign": 1, "flags": flags_l,
                                  "last": 1, "last_layer": 1})
        l1_valid, l2_valid = Signal(), Signal()
        # (the finalizer's data registers have no reset: only the valid flags need one)
        l1, l2 = Signal(side, reset_less=True), Signal(side, reset_less=True)
        blk_nz = Signal(nblk, reset_less=True)
        blk_lz = [Signal(3, name=f"blk_lz{j}", reset_less=True) for j in range(nblk)]
        for j in range(nblk):                                  # block 0 is the top one
            bits = padded[len(padded) - 8 * (j + 1):len(padded) - 8 * j]
            lzc = Const(8, 4)
            for i in range(8):                                 # the highest set bit wins
                lzc = Mux(bits[i], 7 - i, lzc)
            m.d.sync += [blk_nz[j].eq(bits.any()), blk_lz[j].eq(lzc[:3])]
        m.d.sync += [
            l1_valid.eq(m_valid), l1.mag.eq(mg.mag), l1.cap.eq(geo["cap_base"] + mg.e0),
            l1.sign.eq(mg.sign), l1.flags.eq(mg.flags), l1.last.eq(mg.last),
            l1.last_layer.eq(mg.last_layer),
        ]

        def tree(lo, hi):                                      # [lo, hi) blocks
            if hi - lo == 1:
                return blk_nz[lo], blk_lz[lo]
            size = 1 << ((hi - lo - 1).bit_length() - 1)
            nz_a, lz_a = tree(lo, lo + size)
            nz_b, lz_b = tree(lo + size, hi)
            return nz_a | nz_b, Mux(nz_a, lz_a, size * 8 + lz_b)

        any_nz, lz = tree(0, nblk)
        l2_lz = Signal(lz_bits, reset_less=True)
        l2_zero = Signal(reset_less=True)
        m.d.sync += [l2_valid.eq(l1_valid), l2.eq(l1), l2_lz.eq(lz), l2_zero.eq(~any_nz)]
        # lsh = min(lz, cap): both outcomes are computed beside the comparison, so that
        # carry chains side by side and a multiplexer make the stage
        lz_first = l2_lz < l2.cap
        m.d.sync += [
            c_valid.eq(l2_valid),
            c_front.mag.eq(l2.mag), c_front.zero.eq(l2_zero),
            c_front.shift.eq(Mux(lz_first, top - cfg.out_fmt.frac_bits - l2_lz,
                                 top - cfg.out_fmt.frac_bits - l2.cap)),
            c_front.field_m1.eq(Mux(lz_first, l2.cap - l2_lz, 0)),
            c_flags.eq(l2.flags), c_sign.eq(l2.sign), cs_last.eq(l2.last),
            cs_last_layer.eq(l2.last_layer),
        ]
        # wide arrays: a plain register stage here (``final_cut``): the finalizer reaches from
        # the chain's head to the output port, and a large device puts them far apart
        split = len(c_front.shift) // 2      # stage R1: the shift's high bits, R2: the rest
        hop_drops = None
        if cfg.final_cut:
            # The hop also finds which bits R1's shift will drop, in blocks of 2**split: block
            # j of the window (bits [j, j+1) * 2**split) goes when shift >> split exceeds j.
            # R1's sticky bit is then the OR of these few flags, not a tree behind its shifter.
            grain = 1 << split
            window0 = Cat(Const(0, 1), c_front.mag)
            blocks = min(1 << (len(c_front.shift) - split), -(-len(window0) // grain))
            drops = Cat(window0[j * grain:(j + 1) * grain].any() & (c_front.shift[split:] > j)
                        for j in range(blocks))
            hop = delayed(m, Cat(c_valid, c_front, c_flags, c_sign, cs_last, cs_last_layer,
                                  drops), 1, "c_hop")
            c_valid, c_front, c_flags = Signal(), Signal.like(c_front), Signal.like(c_flags)
            c_sign, cs_last, cs_last_layer = Signal(), Signal(), Signal()
            hop_drops = Signal(blocks)
            m.d.comb += Cat(c_valid, c_front, c_flags, c_sign, cs_last, cs_last_layer,
                            hop_drops).eq(hop)
        # stages R1, R2: the rounding window (the first half of hw.rounding.Rounder, registered
        # here so that the shifter and the rounding adder are not one path), in two halves
        fields = {"mag": c_front.mag, "zero": c_front.zero, "shift": c_front.shift,
                  "field_m1": c_front.field_m1}
        fmt = cfg.out_fmt
        frac = fmt.frac_bits
        keep = frac + 2
        window = Cat(Const(0, 1), fields["mag"])
        dropped = []
        shift = fields["shift"]
        r1_valid = Signal()
        r1 = Signal(data.StructLayout({
            "low": split, "sticky": 1, "field_m1": len(fields["field_m1"]), "sign": 1,
            "zero": 1, "flags": flags_l, "last": 1, "last_layer": 1}))
        for k in reversed(range(len(shift))):
            if k == split - 1:
                held = Signal(len(window), name="r1_window", reset_less=True)
                m.d.sync += [
                    held.eq(window), r1_valid.eq(c_valid), r1.low.eq(shift[:split]),
                    r1.sticky.eq(Cat(*dropped).any() if hop_drops is None else hop_drops.any()),
                    r1.field_m1.eq(fields["field_m1"]),
                    r1.sign.eq(c_sign), r1.zero.eq(fields["zero"]), r1.flags.eq(c_flags),
                    r1.last.eq(cs_last), r1.last_layer.eq(cs_last_layer),
                ]
                window, dropped, shift = held, [r1.sticky], r1.low
            step = 1 << k
            dropped.append(shift[k] & window[:step].any())
            shifted = Mux(shift[k], window >> step, window)
            window = Signal(min(len(shifted), keep + step - 1), name=f"window{k}")
            m.d.comb += window.eq(shifted)
        r_valid = Signal()
        rr = Signal(data.StructLayout({
            "window": keep, "sticky": 1, "field_m1": len(fields["field_m1"]), "sign": 1,
            "zero": 1, "flags": flags_l, "last": 1, "last_layer": 1}))
        m.d.sync += [
            r_valid.eq(r1_valid), rr.window.eq(window[:keep]), rr.sticky.eq(Cat(*dropped).any()),
            rr.field_m1.eq(r1.field_m1), rr.sign.eq(r1.sign), rr.zero.eq(r1.zero),
            rr.flags.eq(r1.flags), rr.last.eq(r1.last), rr.last_layer.eq(r1.last_layer),
        ]
        # stage P: round to nearest even and overflow; stage O: specials and ReLU (the second
        # half of the Rounder's algorithm, in two register stages)
        guard = rr.window[0]
        q = rr.window[1:keep]
        inc = guard & (rr.sticky | q[0])
        biased = rr.field_m1 + q[frac]               # the exponent field before the increment
        packed = Cat(q[:frac], biased) + inc
        # overflow from the short exponent sum, beside the carry chain rather than after it
        mant_carry = inc & q[:frac].all()
        overflow = (biased >= fmt.exp_max_field) | (mant_carry
                                                    & (biased == fmt.exp_max_field - 1))
        p_valid = Signal()
        pp = Signal(data.StructLayout({
            "number": fmt.width - 1, "overflow": 1, "sign": 1, "zero": 1, "flags": flags_l,
            "last": 1, "last_layer": 1}))
        m.d.sync += [
            p_valid.eq(r_valid), pp.number.eq(packed[:fmt.width - 1]),
            pp.overflow.eq(overflow),
            pp.sign.eq(rr.sign), pp.zero.eq(rr.zero), pp.flags.eq(rr.flags),
            pp.last.eq(rr.last), pp.last_layer.eq(rr.last_layer),
        ]
        number = Mux(pp.overflow, fmt.pos_inf, pp.number)
        fl = pp.flags
        # Wide arrays (the finalizer far from the layer's option registers and the result
        # port): the result's payload needs no reset (valid has one), so that its register's
        # reset input is free for the ReLU's and the flags' zeroing with no reset net in
        # front, and ``relu`` comes through a register of the finalizer's own (it holds still
        # while entries are in flight). Narrow arrays keep the plain form (the UP5K image has
        # no logic cells to spare: with these two it no longer placed).
        o_payload, relu = self.o.payload, self.relu
        if cfg.cols > WIDE_COLS:
            o_payload = Signal.like(self.o.payload, reset_less=True, name="o_payload")
            relu = Signal(reset_less=True, name="relu_r")
            m.d.sync += relu.eq(self.relu)
            m.d.comb += self.o.payload.eq(o_payload)
        m.d.sync += [self.o.valid.eq(p_valid),
                     o_payload.bits.eq(select_result(
                         m, fmt, nan=fl.nan, pinf=fl.pinf, ninf=fl.ninf, zero=pp.zero,
                         neg0=fl.neg0, number=Cat(number[:fmt.width - 1], pp.sign),
                         relu=relu)),
                     o_payload.last.eq(pp.last),
                     o_payload.last_layer.eq(pp.last_layer)]
        return m
