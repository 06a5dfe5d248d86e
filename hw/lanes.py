"""Product and alignment stage of the shift-add dot-product unit (combinational).

Every lane turns one activation ``x`` and one weight code ``(s, p)`` into a fixed-point term
without a multiplier: the product ``x * (-1)**s * 2**(e0+p)`` has the sign ``sign(x) ^ s`` and
the significand of ``x`` moved ``p`` places up. Relative to ``2**e0`` the significand's LSB
(weight ``2**(max(E,1) - bias - frac + p)``) sits at accumulator bit

    max(E, 1) - 1 + p + config.product_shift_base

(see :class:`contract.DotConfig`). The constant part of that position is wiring: lane values
are produced in *lane units* whose LSB is accumulator bit ``product_shift_base``, and only
``max(E, 1) - 1 + p`` goes through a barrel shifter.

Negative terms are produced in ones' complement: a lane outputs ``value`` and ``neg`` such that
the term is ``value + neg`` (``value = ~(m << pos)``, ``neg = 1`` when the product is negative).
Shifting the unsigned significand keeps the shifter narrow (its upper bits are known zeros),
the complement folds into the shifter's last LUT level, and the ``+1``s enter the adders of
the summation tree as carry-ins (free on FPGA carry chains, see :func:`sum_terms`).

The bias (raw bits in the output format) is aligned in the same way at accumulator bit
``max(E_b, 1) - 1 - e0 + config.bias_shift_base``; its unit LSB is accumulator bit
``bias_shift_base - e0_max`` (never negative, by the choice of ``acc_lsb_exp``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract import DotConfig

__all__ = ["ProductLanes", "BiasAligner", "BIAS_CUTS", "lane_geometry", "bias_geometry",
           "sum_terms"]


def _check_config(config):
    if not isinstance(config, DotConfig):
        raise TypeError(f"config must be a DotConfig, not {config!r}")


def lane_geometry(config):
    """``(amount_max, width)`` of a lane: the largest shift ``max(E,1) - 1 + p`` of a finite
    activation, and the two's complement width of a lane value in lane units."""
    fmt = config.in_fmt
    amount_max = (fmt.exp_max_field - 2) + config.pmax
    return amount_max, fmt.frac_bits + 1 + amount_max + 1


def bias_geometry(config):
    """``(amount_max, width, offset)`` of the aligned bias: the largest shift
    ``max(E_b,1) - 1 + (e0_max - e0)``, its two's complement width, and the accumulator bit of
    its unit LSB."""
    fmt = config.out_fmt
    amount_max = (fmt.exp_max_field - 2) + (config.e0_max - config.e0_min)
    offset = config.bias_shift_base - config.e0_max
    assert offset >= 0
    return amount_max, fmt.frac_bits + 1 + amount_max + 1, offset


def _decode(fmt, bits):
    """Fields and classes of a raw float: (sign, exp, significand, finite, nan, inf, zero)."""
    sign = bits[fmt.width - 1]
    exp = bits[fmt.frac_bits:fmt.width - 1]
    frac = bits[:fmt.frac_bits]
    special = exp == fmt.exp_max_field
    normal = exp.any()
    return (sign, exp, Cat(frac, normal), ~special, special & frac.any(),
            special & ~frac.any(), ~normal & ~frac.any())


def _shift_ones_complement(m, value, amount, neg, width, name):
    """``(value << amount) ^ (-neg)`` as a ``width``-bit two's complement value. ``value`` is
    unsigned; intermediate levels keep only the bits that can still reach the result (each
    level is a named signal, so that the simulator shares it instead of copying it)."""
    for k in range(len(amount)):
        shifted = Mux(amount[k], value << (1 << k), value)
        level = Signal(min(len(shifted), width - 1), name=f"{name}_sh{k}")
        m.d.comb += level.eq(shifted)
        value = level
    return (Cat(value, Const(0, width - len(value))) ^ neg.replicate(width)).as_signed()


class ProductLanes(wiring.Component):
    """Decode and align the ``lanes`` products of one beat.

    Members
    -------
    x, w : In(ArrayLayout)
        Raw activations (``in_fmt``) and weight codes, lane 0 first.
    keep : In(unsigned(lanes))
        Lanes that carry a term.
    value : Out(ArrayLayout(signed(width), lanes))
        Ones' complement lane values in lane units (0 for dropped and non-finite lanes).
    neg : Out(unsigned(lanes))
        Bit ``j`` set: lane ``j``'s term is ``value[j] + 1`` (negative product).
    nan, pinf, ninf : Out(1)
        Some kept lane has a NaN activation / a +inf / a -inf product.
    neg0 : Out(1)
        Every kept lane's product is -0 (true when no lane is kept).
    """

    def __init__(self, *, config):
        _check_config(config)
        self._config = config
        self._amount_max, self._width = lane_geometry(config)
        super().__init__({
            "x": In(data.ArrayLayout(unsigned(config.in_fmt.width), config.lanes)),
            "w": In(data.ArrayLayout(unsigned(config.wbits), config.lanes)),
            "keep": In(unsigned(config.lanes)),
            "value": Out(data.ArrayLayout(signed(self._width), config.lanes)),
            "neg": Out(unsigned(config.lanes)),
            "nan": Out(1),
            "pinf": Out(1),
            "ninf": Out(1),
            "neg0": Out(1),
        })

    @property
    def width(self):
        return self._width

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        fmt = cfg.in_fmt
        amount_bits = self._amount_max.bit_length()
        nan, pinf, ninf, neg0 = [], [], [], []
        for j in range(cfg.lanes):
            sx, exp, sig, finite, is_nan, is_inf, is_zero = _decode(fmt, self.x[j])
            code = self.w[j]
            psign = sx ^ code[cfg.wbits - 1]
            p = code[:cfg.wbits - 1]
            keep = self.keep[j]
            active = keep & finite
            # max(E, 1) - 1 + p: subnormals share the binade of E = 1.
            amount = (Mux(exp.any(), exp - 1, 0) + p)[:amount_bits]
            neg = psign & active
            m.d.comb += [
                self.value[j].eq(_shift_ones_complement(
                    m, Mux(active, sig, 0), amount, neg, self._width, f"lane{j}")),
                self.neg[j].eq(neg),
            ]
            nan.append(keep & is_nan)
            pinf.append(keep & is_inf & ~psign)
            ninf.append(keep & is_inf & psign)
            neg0.append(~keep | (is_zero & psign))
        m.d.comb += [
            self.nan.eq(Cat(*nan).any()),
            self.pinf.eq(Cat(*pinf).any()),
            self.ninf.eq(Cat(*ninf).any()),
            self.neg0.eq(Cat(*neg0).all()),
        ]
        return m


#: The register stages a :class:`BiasAligner` may have, in pipeline order: ``terms`` after the
#: bias bits and the two terms of the shift amount, ``amount`` after their sum (and the
#: decoded significand, sign and flags), ``half`` after the first half of the shifter's levels.
BIAS_CUTS = ("terms", "amount", "half")


class BiasAligner(wiring.Component):
    """Decode and align the bias (raw ``out_fmt`` bits) against ``2**e0``, with register stages
    where ``cuts`` says (a subset of :data:`BIAS_CUTS`; none: combinational). Every register
    loads every clock; the data registers have no reset.

    Members
    -------
    bias : In(unsigned(out_fmt.width)); e0 : In(signed(e0_bits))
    enable : In(1)
        The bias takes part only when ``enable`` is set. Read by the ``amount`` stage: with
        cuts, hold it steady while biases are in flight (an option of the whole sum).
    flags : In(StructLayout({"nan", "pinf", "ninf", "neg0"}))
        The flags of the sum's other terms, merged with the bias's into ``nan`` ... ``neg0``
        (0 and ``neg0`` 1 for none).
    valid, meta : In(1), In(meta_layout)
        Carried beside the bias to ``o_valid`` and ``o_meta`` (``meta`` and ``o_meta`` only
        with a ``meta_layout``).
    value, neg : Out
        Ones' complement aligned bias (units of accumulator bit ``offset``) and its ``+1``.
    nan, pinf, ninf : Out(1)
        A term (the enabled bias, or one of ``flags``) is NaN / +inf / -inf.
    neg0 : Out(1)
        ``flags.neg0``, and the bias is absent or is -0 (it does not spoil the
        all-terms-are--0 rule).
    o_valid, o_meta : Out(1), Out(meta_layout)

    The outputs follow the inputs ``latency`` clocks (the number of cuts) later.
    """

    def __init__(self, *, config, cuts=(), meta_layout=None):
        _check_config(config)
        if isinstance(cuts, str):
            raise TypeError(f"cuts must be an iterable of stage names, not {cuts!r}")
        cuts = frozenset(cuts)
        unknown = sorted(cuts - set(BIAS_CUTS))
        if unknown:
            raise ValueError(f"cuts must be among {', '.join(BIAS_CUTS)}, not {unknown[0]!r}")
        if meta_layout is not None and not isinstance(meta_layout, data.Layout):
            raise TypeError(f"meta_layout must be a data.Layout or None, not {meta_layout!r}")
        self._config, self._cuts, self._meta_layout = config, cuts, meta_layout
        self._amount_max, self._width, self._offset = bias_geometry(config)
        meta = {} if meta_layout is None else {"meta": In(meta_layout),
                                                  "o_meta": Out(meta_layout)}
        super().__init__({
            "bias": In(unsigned(config.out_fmt.width)),
            "e0": In(signed(config.e0_bits)),
            "enable": In(1),
            "flags": In(data.StructLayout({"nan": 1, "pinf": 1, "ninf": 1, "neg0": 1}),
                        init={"neg0": 1}),
            "valid": In(1),
            "value": Out(signed(self._width)),
            "neg": Out(1),
            "nan": Out(1),
            "pinf": Out(1),
            "ninf": Out(1),
            "neg0": Out(1),
            "o_valid": Out(1),
            **meta,
        })

    @property
    def width(self):
        return self._width

    @property
    def offset(self):
        return self._offset

    @property
    def latency(self):
        return len(self._cuts)

    def _stage(self, m, cut, name, fields):
        if cut not in self._cuts:
            return fields
        regs = {}
        for key, value in fields.items():
            shape = value.shape() if isinstance(value, data.View) else len(value)
            regs[key] = Signal(shape, name=f"{name}_{key}", reset_less=key != "valid")
            m.d.sync += regs[key].eq(value)
        return regs

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        fmt = cfg.out_fmt
        amount_bits = self._amount_max.bit_length()
        # terms: the shift amount max(E_b, 1) - 1 + (e0_max - e0) as its two terms (modulo
        # 2**amount_bits), so that one carry chain adds them; the constant
        # bias_shift_base - e0_max is the offset
        exp = self.bias[fmt.frac_bits:fmt.width - 1]
        meta = {} if self._meta_layout is None else {"meta": self.meta}
        f = self._stage(m, "terms", "bt", {
            "bias": self.bias, "flags": self.flags, "valid": self.valid, **meta,
            "exp_m1": Mux(exp.any(), exp - 1, 0)[:fmt.exp_bits],
            "e0_off": (cfg.e0_max - self.e0)[:amount_bits]})
        # amount: the sum; the significand, sign and flags decoded
        sign, _, sig, finite, is_nan, is_inf, is_zero = _decode(fmt, f["bias"])
        en = self.enable
        fl = f["flags"]
        active = en & finite
        neg = sign & active
        amount = Signal(amount_bits, name="bias_amount")
        m.d.comb += amount.eq(f["exp_m1"] + f["e0_off"])
        f = self._stage(m, "amount", "ba", {
            "valid": f["valid"], **{k: f[k] for k in ("meta",) if k in f}, "amount": amount,
            "sig": Mux(active, sig, 0), "neg": neg,
            "nan": fl.nan | (en & is_nan), "pinf": fl.pinf | (en & is_inf & ~sign),
            "ninf": fl.ninf | (en & is_inf & sign), "neg0": fl.neg0 & (~en | (is_zero & sign))})
        # the shifter, (sig << amount) ^ -neg, its levels cut in two halves
        half = amount_bits // 2
        value = f["sig"]
        for k in range(half):
            value = _shift_level(m, value, f["amount"][k], k, self._width)
        flags = ("valid", "meta", "neg", "nan", "pinf", "ninf", "neg0")
        f = self._stage(m, "half", "bh", {**{key: f[key] for key in flags if key in f},
                                          "value": value,
                                          "amount_hi": f["amount"][half:]})
        value = f["value"]
        for k in range(half, amount_bits):
            value = _shift_level(m, value, f["amount_hi"][k - half], k, self._width)
        width = self._width
        m.d.comb += [
            self.value.eq(Cat(value, Const(0, width - len(value))) ^ f["neg"].replicate(width)),
            self.neg.eq(f["neg"]), self.nan.eq(f["nan"]), self.pinf.eq(f["pinf"]),
            self.ninf.eq(f["ninf"]), self.neg0.eq(f["neg0"]),
            self.o_valid.eq(f["valid"]),
        ]
        if "meta" in f:
            m.d.comb += self.o_meta.eq(f["meta"])
        return m


def _shift_level(m, value, take, k, width):
    """One level of the bias shifter: ``value << 2**k`` when ``take``, kept to the bits that can
    reach a ``width``-bit two's complement result (a named signal, so that the simulator
    shares it instead of copying it)."""
    shifted = Mux(take, value << (1 << k), value)
    level = Signal(min(len(shifted), width - 1), name=f"bias_sh{k}")
    m.d.comb += level.eq(shifted)
    return level


def _add(a, b, cin=None):
    total = a + b
    return total if cin is None else total + cin


def add_aligned(a, a_off, b, b_off, cin=None):
    """``a * 2**a_off + b * 2**b_off + cin * 2**max(a_off, b_off)`` for signed ``a``, ``b``.

    Returns ``(value, offset)`` with ``offset = min(a_off, b_off)``: the bits of the finer
    operand below the coarser one's LSB pass through, only the overlap goes through an adder
    (whose carry-in takes ``cin``)."""
    if a_off > b_off:
        a, a_off, b, b_off = b, b_off, a, a_off
    d = b_off - a_off
    if d == 0:
        return _add(a, b, cin), a_off
    if len(a) <= d:                                  # sign-extend so that a >> d exists
        a = Cat(a, a[-1].replicate(d + 1 - len(a))).as_signed()
    return Cat(a[:d], _add(a >> d, b, cin)).as_signed(), a_off


def sum_terms(values, negs, offset, carries=()):
    """Adder tree over ones' complement ``values`` (all at ``offset``) and their ``negs``.

    Each two-input adder absorbs one ``+1`` as a carry-in. Returns ``(total, leftover)`` where
    ``leftover`` is the list of ``+1`` bits (weight ``2**offset``) that found no adder;
    ``carries`` are extra such bits to place first."""
    pending = list(carries) + list(negs)
    level = list(values)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            nxt.append(_add(level[i], level[i + 1], pending.pop() if pending else None))
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0], pending
