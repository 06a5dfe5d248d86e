"""The multi-branch array's finalizer: a drained accumulator -> one result per clock.

Integer path: ``Y = 2 * acc - corr`` with the layer's correction ``corr = (2 * chunks * lanes -
K) * Q`` (see ``contract.branch_array``): the exact dot product, two's complement. Float path
(``scaled``): ``round_out(sx * sw * Y)`` rounded once, nearest even, by the rules of
``contract.branches``:

* the magnitude ``|Y|`` is multiplied by the two scale significands (``P = |Y| * sig_x *
  sig_w``, exact; ``sx = sig_x * 2**ex``, ``sw = sig_w * 2**ew``, ``E = ex + ew``);
* with ``p`` the index of ``P``'s leading one, the result's binade is ``max(p + E, emin)`` and
  ``P * 2**(F+1)`` shifted right by ``max(p, emin - E)`` leaves the ``F + 1`` kept bits and the
  guard bit; the bits shifted out, ORed level by level, are the sticky bit;
* the rounded pattern is ``(binade - emin) << F`` plus the kept bits plus the increment (a
  carry walks into the exponent field); a binade above ``emax`` or an all-ones exponent field is
  ``inf``; ``Y = 0`` gives ``+0``, a nonzero ``Y`` that rounds to zero keeps its sign.

ReLU (``relu``) sets negative integers to 0 and results with the sign bit set to ``+0``.

A pipeline of :attr:`BranchFinalizer.stages` register stages that never stalls (the array's
output FIFO and credit count take the results); every stage has one carry chain, one
multiplication or one level group of a shifter.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract.branch_array import BranchArrayConfig

from ..rounding import block_zeros, merge_zeros

__all__ = ["BranchFinalizer", "entry_layout", "result_layout", "corr_width", "EXP_BITS"]

#: Signed width of the exponent arithmetic (scale exponents, binades): ample for formats with
#: up to 11 exponent bits.
EXP_BITS = 14


def _check(config):
    if not isinstance(config, BranchArrayConfig):
        raise TypeError(f"config must be a BranchArrayConfig, not {config!r}")


def corr_width(config):
    """Bits of the layer correction ``(2 * chunks * lanes - K) * Q <= 2 * depth * Q``."""
    return (2 * config.depth * config.q).bit_length()


def entry_layout(config):
    """A drained accumulator with its channel's raw weight scale (float path); ``last``: the
    tile's last entry, ``last_layer``: the layer's last."""
    _check(config)
    fields = {"acc": unsigned(config.acc_width), "last": 1, "last_layer": 1}
    if config.float_path:
        fields["scale"] = unsigned(config.scale_fmt.width)
    return data.StructLayout(fields)


def result_layout(config):
    """A result (``res_tdata_width`` bits) with the entry's ``last`` and ``last_layer``."""
    _check(config)
    return data.StructLayout({"bits": config.res_tdata_width, "last": 1, "last_layer": 1})


def _decode_scale(m, bits, fmt, name):
    """``(sig, exp)`` of a raw positive finite pattern: ``value = sig * 2**exp``."""
    field = bits[fmt.frac_bits:fmt.width - 1]
    sig = Signal(fmt.frac_bits + 1, name=f"{name}_sig")
    exp = Signal(signed(EXP_BITS), name=f"{name}_exp")
    m.d.comb += [sig.eq(Cat(bits[:fmt.frac_bits], field.any())),
                 exp.eq(Mux(field.any(), field - 1, 0) + fmt.lsb_exp)]
    return sig, exp


def _stage(m, layout, name):
    reg = Signal(data.StructLayout(layout), name=name, reset_less=True)
    valid = Signal(name=f"{name}_valid")
    return reg, valid


class BranchFinalizer(wiring.Component):
    """The finalizer (see the module docstring).

    Members
    -------
    i : In(stream.Signature(entry_layout(config), always_ready=True))
    o : Out(stream.Signature(result_layout(config), always_ready=True))
    corr : In(corr_width(config))
        The layer's correction, held while entries are in flight.
    scaled, relu : In(1)
        The layer's options, held while entries are in flight.
    scale_x : In(scale_fmt.width)
        The layer's raw activation scale (float path), held while entries are in flight.
    """

    def __init__(self, *, config):
        _check(config)
        self._config = config
        members = {
            "i": In(stream.Signature(entry_layout(config), always_ready=True)),
            "o": Out(stream.Signature(result_layout(config), always_ready=True)),
            "corr": In(corr_width(config)),
            "scaled": In(1),
            "relu": In(1),
        }
        if config.float_path:
            members["scale_x"] = In(config.scale_fmt.width)
        super().__init__(members)

    @property
    def stages(self):
        """Clocks from an entry on ``i`` to its result on ``o``."""
        return 8 if self._config.float_path else 2

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        rw = cfg.result_width
        width = cfg.res_tdata_width
        flags = {"last": 1, "last_layer": 1}

        # A: the exact result Y = 2 * acc - corr
        a, a_valid = _stage(m, {"y": signed(rw), **flags,
                                **({"scale": cfg.scale_fmt.width} if cfg.float_path else {})},
                            "fin_a")
        m.d.sync += [a_valid.eq(self.i.valid), a.y.eq((self.i.payload.acc << 1) - self.corr),
                     a.last.eq(self.i.payload.last), a.last_layer.eq(self.i.payload.last_layer)]
        if cfg.float_path:
            m.d.sync += a.scale.eq(self.i.payload.scale)
        if not cfg.float_path:
            o, o_valid = _stage(m, {"bits": width, **flags}, "fin_o")
            y = Mux(self.relu & a.y[rw - 1], 0, a.y)
            m.d.sync += [o_valid.eq(a_valid), o.bits.eq(y.as_signed()),
                         o.last.eq(a.last), o.last_layer.eq(a.last_layer)]
            m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.eq(o)]
            return m
        self._float_path(m, a, a_valid, flags)
        return m

    def _float_path(self, m, a, a_valid, flags):
        cfg = self._config
        rw, width = cfg.result_width, cfg.res_tdata_width
        sfmt, ofmt = cfg.scale_fmt, cfg.out_fmt
        fo = ofmt.frac_bits
        sig_bits = sfmt.frac_bits + 1
        mag_w = rw - 1                               # |Y| <= depth * Q
        pw = mag_w + 2 * sig_bits                    # P = |Y| * sig_x * sig_w
        ext_w = pw + fo + 1                          # P << (F + 1)
        shift_max = ext_w                            # larger shifts leave only the sticky bit
        keep = {"y": signed(rw), **flags}            # carried along for the integer path

        # the layer's activation scale, decoded once (it holds still during the layer)
        sx_sig, sx_exp = _decode_scale(m, self.scale_x, sfmt, "sx")
        sx_sig_r = Signal.like(sx_sig, name="sx_sig_r", reset_less=True)
        sx_exp_r = Signal.like(sx_exp, name="sx_exp_r", reset_less=True)
        m.d.sync += [sx_sig_r.eq(sx_sig), sx_exp_r.eq(sx_exp)]

        # B: sign, magnitude, the channel's scale decoded, E = ex + ew
        sw_sig, sw_exp = _decode_scale(m, a.scale, sfmt, "sw")
        b, b_valid = _stage(m, {**keep, "neg": 1, "mag": mag_w, "sig_w": sig_bits,
                                "e": signed(EXP_BITS)}, "fin_b")
        m.d.sync += [b_valid.eq(a_valid), b.y.eq(a.y), b.last.eq(a.last),
                     b.last_layer.eq(a.last_layer), b.neg.eq(a.y[rw - 1]),
                     b.mag.eq(Mux(a.y[rw - 1], -a.y, a.y)), b.sig_w.eq(sw_sig),
                     b.e.eq(sx_exp_r + sw_exp)]
        # C: T = |Y| * sig_x
        c, c_valid = _stage(m, {**keep, "neg": 1, "t": mag_w + sig_bits, "sig_w": sig_bits,
                                "e": signed(EXP_BITS)}, "fin_c")
        m.d.sync += [c_valid.eq(b_valid), c.y.eq(b.y), c.last.eq(b.last),
                     c.last_layer.eq(b.last_layer), c.neg.eq(b.neg), c.t.eq(b.mag * sx_sig_r),
                     c.sig_w.eq(b.sig_w), c.e.eq(b.e)]
        # D: P = T * sig_w
        d, d_valid = _stage(m, {**keep, "neg": 1, "p": pw, "e": signed(EXP_BITS)}, "fin_d")
        m.d.sync += [d_valid.eq(c_valid), d.y.eq(c.y), d.last.eq(c.last),
                     d.last_layer.eq(c.last_layer), d.neg.eq(c.neg), d.p.eq(c.t * c.sig_w),
                     d.e.eq(c.e)]
        # E: leading one p of P; the shift max(p, emin - E) and the field max(p + E - emin, 0)
        nonzero, lz = merge_zeros(block_zeros(m, d.p, "fin_lz"))
        zero = ~nonzero
        lead = Signal(signed(EXP_BITS), name="fin_lead")
        m.d.comb += lead.eq(pw - 1 - lz)
        floor_sh = Signal(signed(EXP_BITS), name="fin_floor")   # emin - E
        m.d.comb += floor_sh.eq(ofmt.emin - d.e)
        e, e_valid = _stage(m, {**keep, "neg": 1, "zero": 1, "p": pw, "sh": signed(EXP_BITS),
                                "field": signed(EXP_BITS)}, "fin_e")
        m.d.sync += [e_valid.eq(d_valid), e.y.eq(d.y), e.last.eq(d.last),
                     e.last_layer.eq(d.last_layer), e.neg.eq(d.neg), e.zero.eq(zero),
                     e.p.eq(d.p), e.sh.eq(Mux(lead > floor_sh, lead, floor_sh)),
                     e.field.eq(lead - floor_sh)]
        # F: the shift amount clamped; G: window and sticky
        sh_bits = shift_max.bit_length()
        f, f_valid = _stage(m, {**keep, "neg": 1, "zero": 1, "p": pw, "amount": sh_bits,
                                "field": signed(EXP_BITS)}, "fin_f")
        m.d.sync += [f_valid.eq(e_valid), f.y.eq(e.y), f.last.eq(e.last),
                     f.last_layer.eq(e.last_layer), f.neg.eq(e.neg), f.zero.eq(e.zero),
                     f.p.eq(e.p), f.field.eq(e.field),
                     f.amount.eq(Mux(e.sh > shift_max, shift_max, e.sh[:sh_bits]))]
        value = Cat(Const(0, fo + 1), f.p)           # P << (F + 1)
        sticky = Const(0, 1)
        for level in range(sh_bits):
            step = 1 << level
            shifted = Signal(ext_w, name=f"fin_sh{level}")
            lost = Signal(name=f"fin_st{level}")
            m.d.comb += [shifted.eq(Mux(f.amount[level], value >> step, value)),
                         lost.eq(sticky | (f.amount[level] & value[:min(step, ext_w)].any()))]
            value, sticky = shifted, lost
        g, g_valid = _stage(m, {**keep, "neg": 1, "zero": 1, "window": fo + 2, "sticky": 1,
                                "field": signed(EXP_BITS)}, "fin_g")
        m.d.sync += [g_valid.eq(f_valid), g.y.eq(f.y), g.last.eq(f.last),
                     g.last_layer.eq(f.last_layer), g.neg.eq(f.neg), g.zero.eq(f.zero),
                     g.window.eq(value[:fo + 2]), g.sticky.eq(sticky), g.field.eq(f.field)]
        # H: round, pack, specials, ReLU; the integer path beside it
        kept = g.window[1:]
        inc = g.window[0] & (g.sticky | kept[0])
        span = ofmt.emax - ofmt.emin
        field = Mux(g.field < 0, 0, Mux(g.field > span, span, g.field))
        body = Signal(ofmt.width, name="fin_body")
        m.d.comb += body.eq((field.as_unsigned()[:ofmt.exp_bits] << fo) + kept + inc)
        overflow = (g.field > span) | (body >= ofmt.pos_inf)
        number = Mux(overflow, ofmt.pos_inf, body) | (g.neg << (ofmt.width - 1))
        fbits = Mux(g.zero | (self.relu & g.neg), 0, number)
        ibits = Mux(self.relu & g.neg, 0, g.y)
        o, o_valid = _stage(m, {"bits": width, **flags}, "fin_o")
        m.d.sync += [o_valid.eq(g_valid), o.last.eq(g.last), o.last_layer.eq(g.last_layer),
                     o.bits.eq(Mux(self.scaled, fbits, ibits.as_signed()))]
        m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.eq(o)]
