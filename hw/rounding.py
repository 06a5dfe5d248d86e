"""The one rounding pipeline: an exact sum's magnitude -> one rounded output float.

The exact sum ``S`` is given as its sign and magnitude ``mag = |S|`` (``W - 1`` bits for an
accumulator of ``W = acc_width`` bits, top bit index ``T = W - 2``), whose LSB weighs
``2**(e0 + acc_lsb_exp)``. The output's subnormal LSB (weight ``2**out_fmt.lsb_exp``) sits at
magnitude bit ``sub = bias_shift_base - e0``, so a normal result needs its leading one at or
above bit ``sub + F`` (``F = out_fmt.frac_bits``). With ``lz`` the leading-zero count of
``mag``, normalizing moves the leading one up to bit ``T``, but never more than
``cap = T - F - sub`` places (the subnormal limit)::

    lsh = min(lz, cap)           # how far a left-normalizer would move mag
    r   = T - F - lsh            # the result LSB is mag bit r (``shift``)
    field - hidden = cap - lsh   # biased exponent field minus the hidden bit (``field_m1``)

(For a normal result the leading one lands on ``T`` and ``field = cap - lsh + 1``; for a
subnormal one ``lsh = cap``, the bit on ``T`` is 0 and ``field = 0``.)

A narrow right shifter then extracts ``q = mag[r : r+F+1]`` and the guard bit ``mag[r-1]``;
the bits it shifts out below the guard bit, ORed level by level, are the sticky bit (no wide
mask or trailing-zero count). The rounded pattern is ``((field - hidden) << F) + q + inc`` with
``inc = guard & (sticky | q[0])``: a carry out of the significand walks into the exponent field
on its own (which also turns the largest subnormal into the smallest normal), and a field that
reaches all ones is an overflow to infinity. A nonzero sum that rounds to 0 keeps its sign.
Then the specials (NaN, infinities, exact zero with the -0 rule) and ReLU override the number
(:func:`select_result`).

:class:`Rounder` is that algorithm as a pipeline whose register stages are a parameter
(``cuts``): none for the dot-product unit's combinational finalizer, all of them for the
array's finalizer. :func:`block_zeros` and :func:`merge_zeros` are the leading-zero counter
(used by the rounder and by anything else that counts leading zeros). The geometry is a
:class:`~contract.DotConfig`'s accumulator or, for other exact values (the multi-branch array's
scaled dot products), a :class:`RoundingGeometry`.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract import DotConfig
from contract.formats import FloatFormat

from .stages import delayed_in_ram

__all__ = ["Rounder", "RoundingGeometry", "ROUNDER_CUTS", "rounder_layout", "flags_layout",
           "block_zeros", "merge_zeros", "finalizer_geometry", "select_result"]

#: The register stages a :class:`Rounder` may have, in pipeline order: ``blocks`` after the
#: leading-zero count of each 8-bit block, ``count`` after the merged count, ``shift`` after
#: the shift amount and exponent field, ``hop`` a plain register after ``shift`` (it also finds
#: the bits the window's upper levels will drop, so that the next stage's sticky bit is a
#: short OR), ``window_hi`` after the upper half of the window shifter, ``window`` after the
#: whole window, ``round`` after the rounding adder, ``out`` after the specials and ReLU.
ROUNDER_CUTS = ("blocks", "count", "shift", "hop", "window_hi", "window", "round", "out")

_BLOCK = 8          # bits per block of the leading-zero counter's first half
_SHIFT_CUTS = frozenset({"blocks", "count", "shift"})   # the cuts before the shift amount


@dataclass(frozen=True)
class RoundingGeometry:
    """What a :class:`Rounder` rounds when it is not a :class:`~contract.DotConfig`'s
    accumulator: magnitudes of ``acc_width - 1`` bits whose LSB weighs ``2**(e0 +
    out_fmt.lsb_exp - bias_shift_base)``, ``e0`` in ``[e0_min, e0_max]``, rounded to the IEEE
    format ``out_fmt`` (the same attributes as a ``DotConfig``, given directly). As in an
    accumulator, a nonzero magnitude has at least ``out_fmt.frac_bits + 1`` bits below its
    leading one (the caller pads it), and at ``e0_min`` the subnormal LSB is not above the top
    magnitude bit (checked)."""

    acc_width: int
    out_fmt: FloatFormat
    bias_shift_base: int
    e0_min: int
    e0_max: int

    def __post_init__(self):
        if not isinstance(self.out_fmt, FloatFormat) or not self.out_fmt.is_ieee:
            raise ValueError(f"out_fmt must be an IEEE FloatFormat, not {self.out_fmt!r}")
        for key in ("acc_width", "bias_shift_base", "e0_min", "e0_max"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{key} must be an integer, not {value!r}")
        if self.e0_min > self.e0_max:
            raise ValueError(f"e0_min ({self.e0_min}) must not exceed e0_max ({self.e0_max})")
        cap = self.acc_width - 2 - self.out_fmt.frac_bits - self.bias_shift_base + self.e0_min
        if cap < 0:
            raise ValueError(f"at e0_min={self.e0_min} the subnormal LSB is above the top "
                             f"magnitude bit of a {self.acc_width}-bit accumulator")

    @property
    def e0_bits(self) -> int:
        """Width of the signed ``e0`` field that holds ``[e0_min, e0_max]``."""
        def magnitude_bits(v):
            return (-v - 1).bit_length() if v < 0 else v.bit_length()
        return max(magnitude_bits(self.e0_min), magnitude_bits(self.e0_max)) + 1


def flags_layout():
    """Special-value flags of a sum: some NaN term, some +inf / -inf term, every term -0."""
    return data.StructLayout({"nan": 1, "pinf": 1, "ninf": 1, "neg0": 1})


def block_zeros(m, value, name, *, block=_BLOCK):
    """First half of the leading-zero counter: ``value`` cut into ``block``-bit blocks from
    the top (the lowest block padded with zeros below the LSB, which does not change the
    count), and for each block, top block first, ``(nonzero, count)``: whether it holds a 1
    and the leading zeros of its bits (meaningless when it holds none). Combinational."""
    if block < 2 or block & (block - 1):
        raise ValueError(f"block must be a power of two of at least 2, not {block!r}")
    count = -(-len(value) // block)
    padded = Cat(Const(0, count * block - len(value)), value)
    width = (block - 1).bit_length()
    out = []
    for j in range(count):                                 # block 0 is the top one
        bits = padded[len(padded) - block * (j + 1):len(padded) - block * j]
        lzc = Const(block, width + 1)
        for i in range(block):                             # the highest set bit wins
            lzc = Mux(bits[i], block - 1 - i, lzc)
        nz = Signal(name=f"{name}_nz{j}")
        lz = Signal(width, name=f"{name}_lz{j}")
        m.d.comb += [nz.eq(bits.any()), lz.eq(lzc[:width])]
        out.append((nz, lz))
    return out


def merge_zeros(blocks, *, block=_BLOCK):
    """Second half of the leading-zero counter: ``(nonzero, count)`` of the whole value from
    :func:`block_zeros`'s per-block results (top block first), by a tree that takes the upper
    part's count when it holds a 1, else the lower part's plus the upper part's width."""
    def tree(lo, hi):                                      # [lo, hi) blocks
        if hi - lo == 1:
            return blocks[lo]
        size = 1 << ((hi - lo - 1).bit_length() - 1)
        nz_a, lz_a = tree(lo, lo + size)
        nz_b, lz_b = tree(lo + size, hi)
        return nz_a | nz_b, Mux(nz_a, lz_a, size * block + lz_b)

    return tree(0, len(blocks))


def finalizer_geometry(config):
    """Constants of the rounding: ``dict`` with ``T`` (top magnitude bit), ``cap_base``
    (``cap = cap_base + e0``), ``cap_max`` and ``r_max``."""
    top = config.acc_width - 2
    frac = config.out_fmt.frac_bits
    cap_base = top - frac - config.bias_shift_base
    assert cap_base + config.e0_min >= 0
    return {"T": top, "cap_base": cap_base, "cap_max": cap_base + config.e0_max,
            "r_max": top - frac}


def rounder_layout(config):
    """What a :class:`Rounder` rounds: the sign and magnitude of an exact sum, its ``e0`` and the
    flags of its terms."""
    return data.StructLayout({
        "sign": 1, "mag": config.acc_width - 1, "e0": signed(config.e0_bits),
        "flags": flags_layout()})


def select_result(m, fmt, *, nan, pinf, ninf, zero, neg0, number, relu):
    """The contract's result bits (combinational, added to ``m``): canonical NaN for a NaN term
    or +inf and -inf together, else the infinity, else the signed zero of an exact zero sum
    (``neg0``: every term was -0), else ``number`` (the rounded finite result); then ReLU, which
    turns any set sign bit (negative numbers, -0, -inf) into +0 (NaN has sign 0)."""
    bits = Signal(fmt.width)
    with m.If(nan | (pinf & ninf)):
        m.d.comb += bits.eq(fmt.canonical_nan)
    with m.Elif(pinf):
        m.d.comb += bits.eq(fmt.pos_inf)
    with m.Elif(ninf):
        m.d.comb += bits.eq(fmt.neg_inf)
    with m.Elif(zero):
        m.d.comb += bits.eq(Mux(neg0, fmt.sign_mask, 0))
    with m.Else():
        m.d.comb += bits.eq(number)
    return Mux(relu & bits[fmt.width - 1], 0, bits)


class Rounder(wiring.Component):
    """Round an exact sum once to nearest even, then the specials and ReLU (the module's
    algorithm), with register stages where ``cuts`` says.

    Parameters
    ----------
    config : DotConfig or RoundingGeometry
        Accumulator geometry, output format and ``e0`` range.
    cuts : iterable of str
        The register stages, a subset of :data:`ROUNDER_CUTS` (``hop`` only with ``shift``).
        The latency is their number.
    meta_layout : data.Layout or None
        Side data carried beside each sum and given back with its result (default: none, and
        the streams have no ``meta`` field).
    stall : bool
        ``True``: the registers load only in clocks with ``en`` high (a pipeline that holds
        under back-pressure); ``False``: every register loads every clock (a feed-forward
        pipeline).
    mag_in_ram : bool
        The magnitude waits for the shift amount in a block RAM (``hw.stages.delayed_in_ram``)
        instead of the registers of the cuts ``blocks``, ``count`` and ``shift`` (at least two
        of them, and not with ``stall``): for a device short of flip-flops. Same latency.

    Members
    -------
    i : In(stream.Signature(StructLayout({"sum": rounder_layout(config), "meta": meta_layout})))
        ``sum.e0`` must be in ``[e0_min, e0_max]`` and ``sum.mag`` below ``2**(acc_width-1)``.
        Always ready.
    o : Out(stream.Signature(StructLayout({"bits": out_fmt.width, "meta": meta_layout})))
        The result ``latency`` clocks (loads) after its sum, with its ``meta``. Not
        back-pressured (``stall`` holds the whole pipeline instead).
    relu : In(1)
        Apply ReLU: read by the output stage (before its register, when ``out`` is a cut), so
        it must belong to the result leaving the last stage: an option held steady while
        results are in flight, or a bit of ``meta`` fed back from ``o.payload.meta``.
    en : In(1)
        Only with ``stall``.
    """

    def __init__(self, *, config, cuts=(), meta_layout=None, stall=False, mag_in_ram=False):
        if not isinstance(config, (DotConfig, RoundingGeometry)):
            raise TypeError(f"config must be a DotConfig or a RoundingGeometry, not {config!r}")
        if isinstance(cuts, str):
            raise TypeError(f"cuts must be an iterable of stage names, not {cuts!r}")
        cuts = frozenset(cuts)
        unknown = sorted(cuts - set(ROUNDER_CUTS))
        if unknown:
            raise ValueError(f"cuts must be among {', '.join(ROUNDER_CUTS)}, not {unknown[0]!r}")
        if "hop" in cuts and "shift" not in cuts:
            raise ValueError("cut 'hop' needs cut 'shift'")
        if meta_layout is not None and not isinstance(meta_layout, data.Layout):
            raise TypeError(f"meta_layout must be a data.Layout or None, not {meta_layout!r}")
        if not isinstance(stall, bool):
            raise TypeError(f"stall must be a bool, not {stall!r}")
        if not isinstance(mag_in_ram, bool):
            raise TypeError(f"mag_in_ram must be a bool, not {mag_in_ram!r}")
        if mag_in_ram and (stall or len(cuts & _SHIFT_CUTS) < 2):
            raise ValueError("mag_in_ram needs at least two of the cuts "
                             f"{', '.join(sorted(_SHIFT_CUTS))} and no stall")
        geo = finalizer_geometry(config)
        if geo["r_max"].bit_length() < 2:
            raise ValueError(f"accumulator of {config.acc_width} bits is too narrow to round "
                             f"to {config.out_fmt.name}")
        self._config, self._cuts, self._stall = config, cuts, stall
        self._mag_in_ram = mag_in_ram
        self._meta_layout = meta_layout
        meta = {} if meta_layout is None else {"meta": meta_layout}
        members = {
            "i": In(stream.Signature(data.StructLayout({
                "sum": rounder_layout(config), **meta}), always_ready=True)),
            "o": Out(stream.Signature(data.StructLayout({
                "bits": config.out_fmt.width, **meta}), always_ready=True)),
            "relu": In(1),
        }
        if stall:
            members["en"] = In(1)
        super().__init__(members)

    @property
    def cuts(self):
        return self._cuts

    @property
    def latency(self):
        """Register stages from ``i`` to ``o``."""
        return len(self._cuts)

    def _stage(self, m, cut, name, fields, *, valid):
        """``fields`` (a dict of values) and ``valid`` through a register when ``cut`` is one of
        the cuts, else as they are. The data registers have no reset; ``valid``'s has."""
        if cut not in self._cuts:
            return fields, valid
        regs = {}
        for key, value in fields.items():
            if isinstance(value, data.View):
                regs[key] = Signal(value.shape(), name=f"{name}_{key}", reset_less=True)
            else:
                regs[key] = Signal(len(value), name=f"{name}_{key}", reset_less=True)
        v = Signal(name=f"{name}_valid")
        stmts = [v.eq(valid)] + [regs[key].eq(value) for key, value in fields.items()]
        if self._stall:
            with m.If(self.en):
                m.d.sync += stmts
        else:
            m.d.sync += stmts
        return regs, v

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        fmt = cfg.out_fmt
        frac = fmt.frac_bits
        geo = finalizer_geometry(cfg)
        top = geo["T"]
        payload = self.i.payload
        s = payload.sum

        # blocks: leading zeros per block; cap = cap_base + e0 (the subnormal limit)
        blocks = block_zeros(m, s.mag, "lz")
        lz_bits = (len(blocks) * _BLOCK).bit_length()
        cap_w = max(geo["cap_max"].bit_length(), lz_bits) + 1
        cap = Signal(cap_w, name="cap")
        m.d.comb += cap.eq(geo["cap_base"] + s.e0)
        side = {"cap": cap, "sign": s.sign, "flags": s.flags}
        if self._mag_in_ram:
            mag_late = delayed_in_ram(m, s.mag, len(self._cuts & _SHIFT_CUTS), "mag_ram")
        else:
            side["mag"] = s.mag
        if self._meta_layout is not None:
            side["meta"] = payload.meta
        nz = {f"nz{j}": b[0] for j, b in enumerate(blocks)}
        lz = {f"lz{j}": b[1] for j, b in enumerate(blocks)}
        f, valid = self._stage(m, "blocks", "l1", {**side, **nz, **lz}, valid=self.i.valid)
        blocks = [(f[f"nz{j}"], f[f"lz{j}"]) for j in range(len(blocks))]

        # count: the leading-zero count and whether the magnitude is zero
        any_nz, count = merge_zeros(blocks)
        side = {k: f[k] for k in ("mag", "cap", "sign", "flags", "meta") if k in f}
        f, valid = self._stage(m, "count", "l2", {**side, "lz": count, "zero": ~any_nz},
                               valid=valid)

        # shift: lsh = min(lz, cap) with both outcomes computed beside the comparison (carry
        # chains side by side and a multiplexer); r = T - F - lsh; field - 1 = cap - lsh
        lz_first = f["lz"] < f["cap"]
        shift_w, field_w = geo["r_max"].bit_length(), geo["cap_max"].bit_length()
        shift, field_m1 = Signal(shift_w, name="shift"), Signal(field_w, name="field_m1")
        m.d.comb += [shift.eq(Mux(lz_first, top - frac - f["lz"], top - frac - f["cap"])),
                     field_m1.eq(Mux(lz_first, f["cap"] - f["lz"], 0))]
        keep_fields = ("mag", "zero", "sign", "flags", "meta")
        f, valid = self._stage(m, "shift", "c", {**{k: f[k] for k in keep_fields if k in f},
                                                 "shift": shift, "field_m1": field_m1},
                               valid=valid)

        if self._mag_in_ram:
            f = {**f, "mag": mag_late}

        # hop: a plain register; it also finds which bits the window's upper levels drop, in
        # blocks of 2**split: block j of the window goes when shift >> split exceeds j, so the
        # next stage's sticky bit is the OR of these few flags, not a tree behind its shifter
        split = shift_w // 2
        drops = None
        if "hop" in self._cuts:
            grain = 1 << split
            window0 = Cat(Const(0, 1), f["mag"])
            count = min(1 << (shift_w - split), -(-len(window0) // grain))
            found = Cat(window0[j * grain:(j + 1) * grain].any() & (f["shift"][split:] > j)
                        for j in range(count))
            f, valid = self._stage(m, "hop", "hop", {**f, "drops": found}, valid=valid)
            drops = f["drops"]

        # window_hi, window: the narrow right shifter, window = (mag << 1) >> r, bit 0 = the
        # guard bit mag[r-1]. Levels go from the largest step down; after the step 2**k only
        # keep + 2**k - 1 bits can still reach the window, and the 2**k bits a taken step
        # drops are all below the guard bit.
        keep = frac + 2                                   # guard + F + 1 significand bits
        window = Cat(Const(0, 1), f["mag"])
        dropped = []
        shift = f["shift"]
        later = {k: f[k] for k in ("field_m1", "sign", "zero", "flags", "meta") if k in f}
        for k in reversed(range(shift_w)):
            if k == split - 1:
                sticky = drops.any() if drops is not None else Cat(*dropped).any()
                f, valid = self._stage(m, "window_hi", "r1",
                                       {**later, "window": window, "low": shift[:split],
                                        "sticky": sticky}, valid=valid)
                later = {key: f[key] for key in later}
                window, dropped, shift = f["window"], [f["sticky"]], f["low"]
            step = 1 << k
            dropped.append(shift[k] & window[:step].any())
            shifted = Mux(shift[k], window >> step, window)
            window = Signal(min(len(shifted), keep + step - 1), name=f"window{k}")
            m.d.comb += window.eq(shifted)
        # (the field's comparisons for the overflow, made a stage early: see below)
        top_field = fmt.exp_max_field
        fm = later["field_m1"]
        ahead = {"f_ge": fm >= top_field, "f_eq1": fm == top_field - 1,
                 "f_eq2": fm == top_field - 2}
        f, valid = self._stage(m, "window", "r2", {**later, **ahead, "window": window[:keep],
                                                   "sticky": Cat(*dropped).any()}, valid=valid)

        # round: to nearest even. The field before the increment is field_m1 + q[F]; the
        # overflow (that field reaching all ones, or all ones less one with a carry out of the
        # significand) from the comparisons of field_m1 alone, beside the carry chain
        guard = f["window"][0]
        q = f["window"][1:keep]
        inc = guard & (f["sticky"] | q[0])
        biased = f["field_m1"] + q[frac]                # the exponent field before the increment
        packed = Cat(q[:frac], biased) + inc
        mant_carry = inc & q[:frac].all()
        q_top = q[frac]
        overflow = (f["f_ge"] | (q_top & f["f_eq1"])
                    | (mant_carry & Mux(q_top, f["f_eq2"], f["f_eq1"])))
        # the specials and ReLU decided beside the carry chain, from what is known before it:
        # a special (or ReLU's +0 for a negative finite result) replaces the rounded number
        fl = f["flags"]
        special = fl.nan | fl.pinf | fl.ninf | f["zero"] | (self.relu & f["sign"])
        special_bits = select_result(m, fmt, nan=fl.nan, pinf=fl.pinf, ninf=fl.ninf,
                                     zero=f["zero"], neg0=fl.neg0, number=0, relu=self.relu)
        later = {k: f[k] for k in ("sign", "meta") if k in f}
        f, valid = self._stage(m, "round", "p", {**later, "number": packed[:fmt.width - 1],
                                                 "overflow": overflow, "special": special,
                                                 "special_bits": special_bits}, valid=valid)

        # out: one LUT level per bit
        number = Mux(f["overflow"], fmt.pos_inf, f["number"])
        bits = Mux(f["special"], f["special_bits"], Cat(number[:fmt.width - 1], f["sign"]))
        meta = {k: f[k] for k in ("meta",) if k in f}
        f, valid = self._stage(m, "out", "o", {"bits": bits, **meta}, valid=valid)
        m.d.comb += [self.o.valid.eq(valid), self.o.payload.bits.eq(f["bits"])]
        if "meta" in f:
            m.d.comb += self.o.payload.meta.eq(f["meta"])
        return m
