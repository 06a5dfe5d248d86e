"""The multi-branch array's finalizer: a drained accumulator -> one result per clock.

Integer path: ``Y = 2 * acc - corr`` with the layer's correction ``corr = (2 * chunks * lanes -
K) * Q`` (see ``contract.branch_array``): the exact dot product, two's complement. Float path
(``scaled``): ``round_out(sx * sw * Y)`` rounded once, nearest even, by the rules of
``contract.branches``:

* the magnitude ``|Y|`` is multiplied by the two scale significands (``P = |Y| * sig_x *
  sig_w``, exact; ``sx = sig_x * 2**ex``, ``sw = sig_w * 2**ew``, ``E = ex + ew``);
* ``sign(Y) * P * 2**E`` is rounded by the array's one rounding pipeline,
  :class:`hw.rounding.Rounder`, on the geometry of :func:`rounding_geometry`: overflow to
  ``inf``, subnormals, ``Y = 0`` gives ``+0``, a nonzero ``Y`` that rounds to zero keeps its
  sign.

ReLU (``relu``) sets negative integers to 0 and results with the sign bit set to ``+0``.

A pipeline of :attr:`BranchFinalizer.stages` register stages that never stalls (the array's
output FIFO and credit count take the results): ``A`` the exact ``Y``, ``B`` sign, magnitude and
``E``, ``C`` and ``D`` the two multiplications, the rounder's :data:`ROUNDING_CUTS`, then the
output register (the rounded bits, or the integer when ``scaled`` is low).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract import carrier_format
from contract.branch_array import BranchArrayConfig

from ..narrow_out import saturate
from ..rounding import Rounder, RoundingGeometry

__all__ = ["BranchFinalizer", "entry_layout", "result_layout", "corr_width", "rounding_geometry",
           "ROUNDING_CUTS", "EXP_BITS"]

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


#: The register stages of the rounding (:data:`hw.rounding.ROUNDER_CUTS`): after the leading-zero
#: count, after the shift amount, after the window shifter (the finalizer's output register
#: follows the rounding adder).
ROUNDING_CUTS = ("count", "shift", "window")


def rounding_geometry(config):
    """``(geometry, pw)``: the :class:`hw.rounding.RoundingGeometry` of ``P * 2**E`` (``P =
    |Y| * sig_x * sig_w``, ``pw`` bits) rounded to ``out_fmt``'s carrier (``out_fmt`` itself
    for IEEE formats; ``fp8_e4m3fn`` is saturated from it). ``e0`` is ``E``, clamped to
    ``[lsb_exp - pw - 1, emax + 1]``: below, every ``P < 2**pw`` is under half the smallest
    subnormal (a signed zero); above, every ``P >= 1`` overflows. The magnitude is ``P << (F +
    1)`` (a leading one has ``F + 1`` bits below it) with ``F + 2`` zero bits above, so that the
    subnormal LSB is never above its top bit."""
    _check(config)
    ofmt, sig_bits = carrier_format(config.out_fmt), config.scale_fmt.frac_bits + 1
    pw = config.result_width - 1 + 2 * sig_bits
    low = ofmt.frac_bits + 1
    geometry = RoundingGeometry(acc_width=pw + low + ofmt.frac_bits + 3, out_fmt=ofmt,
                                bias_shift_base=ofmt.lsb_exp + low,
                                e0_min=ofmt.lsb_exp - pw - 1, e0_max=ofmt.emax + 1)
    return geometry, pw


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
        return 5 + len(ROUNDING_CUTS) if self._config.float_path else 2

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
        sfmt = cfg.scale_fmt
        sig_bits = sfmt.frac_bits + 1
        mag_w = rw - 1                               # |Y| <= depth * Q
        geometry, pw = rounding_geometry(cfg)
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
        # C: T = |Y| * sig_x; E clamped to the rounder's range (outside it the result is the
        # same: every nonzero P rounds to a signed zero below it, overflows above it)
        e_lo, e_hi = geometry.e0_min, geometry.e0_max
        c, c_valid = _stage(m, {**keep, "neg": 1, "t": mag_w + sig_bits, "sig_w": sig_bits,
                                "e": signed(geometry.e0_bits)}, "fin_c")
        m.d.sync += [c_valid.eq(b_valid), c.y.eq(b.y), c.last.eq(b.last),
                     c.last_layer.eq(b.last_layer), c.neg.eq(b.neg), c.t.eq(b.mag * sx_sig_r),
                     c.sig_w.eq(b.sig_w),
                     c.e.eq(Mux(b.e < e_lo, e_lo, Mux(b.e > e_hi, e_hi, b.e)))]
        # D: P = T * sig_w
        d, d_valid = _stage(m, {**keep, "neg": 1, "p": pw, "e": signed(geometry.e0_bits)},
                            "fin_d")
        m.d.sync += [d_valid.eq(c_valid), d.y.eq(c.y), d.last.eq(c.last),
                     d.last_layer.eq(c.last_layer), d.neg.eq(c.neg), d.p.eq(c.t * c.sig_w),
                     d.e.eq(c.e)]
        # the rounding of sign(Y) * P * 2**E (hw.rounding.Rounder), the integer path beside it
        m.submodules.rounder = rnd = Rounder(config=geometry, cuts=ROUNDING_CUTS,
                                             meta_layout=data.StructLayout(keep))
        s = rnd.i.payload.sum
        m.d.comb += [rnd.i.valid.eq(d_valid), s.sign.eq(d.neg),
                     s.mag.eq(Cat(Const(0, cfg.out_fmt.frac_bits + 1), d.p)), s.e0.eq(d.e),
                     s.flags.eq(0), rnd.relu.eq(self.relu),
                     rnd.i.payload.meta.y.eq(d.y), rnd.i.payload.meta.last.eq(d.last),
                     rnd.i.payload.meta.last_layer.eq(d.last_layer)]
        r = rnd.o.payload.meta
        ibits = Mux(self.relu & r.y[rw - 1], 0, r.y)
        fbits = rnd.o.payload.bits
        if geometry.out_fmt != cfg.out_fmt:          # every result is finite: saturate
            fbits = saturate(fbits, geometry.out_fmt, cfg.out_fmt, finite=Const(1))
        o, o_valid = _stage(m, {"bits": width, **flags}, "fin_o")
        m.d.sync += [o_valid.eq(rnd.o.valid), o.last.eq(r.last), o.last_layer.eq(r.last_layer),
                     o.bits.eq(Mux(self.scaled, fbits, ibits.as_signed()))]
        m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.eq(o)]
