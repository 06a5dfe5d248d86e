"""Row aligner and processing element of the shift-add PE array (see ``docs/array.md``).

The work of a product ``x * (-1)**s * 2**(e0 + p)`` is split three ways:

* the **row aligner** (one per array row, shared by all PEs of the row) decodes the activation
  and moves its significand to ``sig << (max(E, 1) - 1)`` (``config.align_width`` bits, LSB
  weight ``2**(e0 + pe_fmt.lsb_exp)`` once the weight's ``2**e0`` is factored out), ones'
  complemented when ``x`` is negative; special and zero activations align to 0 (before the
  complement) and are reported by class bits;
* the **column** (one per array column) supplies the weight code;
* the **PE** selects ``aligned << p`` (a ``2**(B-1)``-way choice, shifting in the row's sign),
  complements it once more when the weight is negative (so it is complemented when the product
  is, ``sign(x) ^ s``; the ``+1`` of the two's complement rides on the accumulator adder's
  carry-in) and adds it into its exact ``pe_acc_width``-bit accumulator. The row's sign is
  folded in by the aligner, once per row, so that a PE's selection takes its weight's sign
  straight from the code register: no sign-product gate between them.
  A wide accumulator is cut into ``config.pe_pieces`` carry chains; the carry out of a piece
  enters the piece above one clock later (it is *pending* meanwhile), so the clock rate does
  not depend on the width. :func:`pe_sum` gives the exact sum from the accumulator and the
  pending carries; the array's finalizer resolves them.

``e0`` and the bias never reach the PE: they are applied by the shared finalizer.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract.array import ArrayConfig

from .actdecode import ActDecoder, needs_decoder
from .rounding import flags_layout

__all__ = ["RowAligner", "RowDecoder", "RowShifter", "ShiftPE", "row_decode_layout",
           "row_layout", "pe_flags_layout", "pe_state_layout", "pe_sum", "pe_carry_vector"]


def _check(config):
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")


def row_layout(config):
    """What a row aligner broadcasts to the PEs of its row."""
    _check(config)
    return data.StructLayout({
        "value": unsigned(config.align_width),   # aligned significand, ^ sign
        "sign": unsigned(1),                     # sign bit of x
        "zero": unsigned(1),                     # x is +-0
        "inf": unsigned(1),                      # x is +-inf
        "nan": unsigned(1),                      # x is NaN
    })


def pe_flags_layout():
    """Special-value state of a PE (and of its shadow): some NaN term, some +inf / -inf
    product, every term so far is -0 (the layout of ``hw.rounding.flags_layout``)."""
    return flags_layout()


def pe_state_layout(config):
    """What a PE holds at a tile's end (its drain entry): the accumulator, its pending carries
    and the flags (:func:`pe_sum` gives the exact sum)."""
    _check(config)
    return data.StructLayout({"acc": signed(config.pe_acc_width),
                              "carries": unsigned(config.pe_pending_bits),
                              "flags": pe_flags_layout()})


def pe_carry_vector(config, carries):
    """The pending carries of a PE (``carries``, ``config.pe_pending_bits`` bits: the first
    stage's carry of each piece boundary, then the second stage's when ``pe_carry_delay`` is
    2; or an int) placed at their weights: an Amaranth value or an int of ``pe_acc_width``
    bits. The carries of one boundary add up at its weight."""
    _check(config)
    size, width, n = config.pe_piece_bits, config.pe_acc_width, config.pe_pieces - 1
    stages = config.pe_carry_delay
    if isinstance(carries, int):
        return sum(((carries >> (s * n + j)) & 1) << ((j + 1) * size)
                   for j in range(n) for s in range(stages)) & ((1 << width) - 1)
    parts = [Const(0, size)]
    for j in range(n):
        if stages == 1:
            parts += [carries[j], Const(0, size - 1)]
        else:                              # two carries of one weight: a 2-bit sum
            a, b = carries[j], carries[n + j]
            parts += [a ^ b, a & b, Const(0, size - 2)]
    return Cat(*parts)[:width]


def pe_sum(config, acc, carries):
    """The exact sum a PE holds, as a signed int, from its ``acc`` and ``carries`` outputs (raw
    bit patterns as ints): ``acc + pending carries`` modulo ``2**pe_acc_width``."""
    width = config.pe_acc_width
    total = (acc + pe_carry_vector(config, carries)) & ((1 << width) - 1)
    return total - (1 << width) if total >> (width - 1) else total


def row_decode_layout(config):
    """A decoded activation: significand, alignment shift and class bits."""
    _check(config)
    fmt = config.pe_fmt
    return data.StructLayout({
        "sig": unsigned(fmt.frac_bits + 1),      # 0 for specials
        "amount": unsigned((fmt.exp_max_field - 2).bit_length()),   # max(E, 1) - 1
        "sign": unsigned(1), "zero": unsigned(1), "inf": unsigned(1), "nan": unsigned(1),
    })


class RowDecoder(wiring.Component):
    """First half of a row aligner: decode one activation (combinational). A narrow or MX lane
    (``fp8_e4m3fn``, MX elements with their scale) goes through
    :class:`~hw.actdecode.ActDecoder` to its ``pe_fmt`` carrier first.

    Members
    -------
    x : In(unsigned(lane_width))
        Raw activation lane (``in_fmt`` bits, and the MX scale above them).
    o : Out(row_decode_layout(config))
    """

    def __init__(self, *, config):
        _check(config)
        self._config = config
        super().__init__({
            "x": In(unsigned(config.lane_width)),
            "o": Out(row_decode_layout(config)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt = self._config.pe_fmt
        x = self.x
        if needs_decoder(self._config):
            m.submodules.carrier = carrier = ActDecoder(config=self._config)
            m.d.comb += carrier.x.eq(self.x)
            x = carrier.y
        exp = x[fmt.frac_bits:fmt.width - 1]
        frac = x[:fmt.frac_bits]
        special = exp == fmt.exp_max_field
        normal = exp.any()
        m.d.comb += [
            self.o.sig.eq(Mux(special, 0, Cat(frac, normal))),
            self.o.amount.eq(Mux(normal, exp - 1, 0)),
            self.o.sign.eq(x[fmt.width - 1]),
            self.o.zero.eq(~normal & ~frac.any()),
            self.o.inf.eq(special & ~frac.any()),
            self.o.nan.eq(special & frac.any()),
        ]
        return m


class RowShifter(wiring.Component):
    """Second half of a row aligner: move the significand to ``sig << amount`` (barrel shifter)
    and ones' complement it when the activation is negative (``value = (sig << amount) ^
    sign``: an all-zero decode, a bubble, gives an all-zero output).

    Parameters
    ----------
    cut : int or None
        ``None``: combinational. An int ``0 < cut < len(amount)``: a register after the first
        ``cut`` levels (the ``cut`` low bits of ``amount``), so that ``o`` follows ``i`` one
        clock later and no clock crosses the whole shifter. The register has no reset: a
        bubble (``sig = 0``) flushes it.

    Members
    -------
    i : In(row_decode_layout(config))
    o : Out(row_layout(config))
    """

    def __init__(self, *, config, cut=None):
        _check(config)
        levels = row_decode_layout(config)["amount"].shape.width
        if cut is not None:
            if not isinstance(cut, int) or isinstance(cut, bool):
                raise TypeError(f"cut must be an int or None, not {cut!r}")
            if not 0 < cut < levels:
                raise ValueError(f"cut must be in 1..{levels - 1} (the shifter has {levels} "
                                 f"levels), not {cut}")
        self._config = config
        self._cut = cut
        super().__init__({
            "i": In(row_decode_layout(config)),
            "o": Out(row_layout(config)),
        })

    @property
    def latency(self):
        """Clocks from ``i`` to ``o``."""
        return 0 if self._cut is None else 1

    def elaborate(self, platform):
        m = Module()
        width = self._config.align_width
        value, amount = self.i.sig, self.i.amount
        flags = Cat(self.i.sign, self.i.zero, self.i.inf, self.i.nan)
        for k in range(len(amount)):              # barrel shifter, one named level per bit
            if k == self._cut:
                held = Signal(len(value) + len(amount) - k + len(flags), name="align_mid",
                              reset_less=True)
                m.d.sync += held.eq(Cat(value, amount[k:], flags))
                value = held[:len(value)]
                amount = Cat(Const(0, k), held[len(value):len(value) + len(amount) - k])
                flags = held[len(held) - len(flags):]
            shifted = Mux(amount[k], value << (1 << k), value)
            level = Signal(min(len(shifted), width), name=f"align_sh{k}")
            m.d.comb += level.eq(shifted)
            value = level
        m.d.comb += [
            self.o.value.eq(value ^ flags[0].replicate(width)),
            Cat(self.o.sign, self.o.zero, self.o.inf, self.o.nan).eq(flags),
        ]
        return m


class RowAligner(wiring.Component):
    """Decode one activation and align its significand (combinational): a
    :class:`RowDecoder` feeding a :class:`RowShifter` (the array puts a register between them).

    Members
    -------
    x : In(unsigned(lane_width))
        Raw activation lane.
    o : Out(row_layout(config))
    """

    def __init__(self, *, config):
        _check(config)
        self._config = config
        super().__init__({
            "x": In(unsigned(config.lane_width)),
            "o": Out(row_layout(config)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.decode = decode = RowDecoder(config=self._config)
        m.submodules.shift = shift = RowShifter(config=self._config)
        m.d.comb += [decode.x.eq(self.x), shift.i.eq(decode.o), self.o.eq(shift.o)]
        return m


class ShiftPE(wiring.Component):
    """One processing element: ``acc += (-1)**(sign(x)^s) * (aligned << p)``, exact.

    Members
    -------
    row : In(row_layout(config))
        The row's broadcast (a bubble is all zero, with ``valid = 0``).
    code : In(unsigned(wbits))
        The column's weight code.
    valid : In(1)
        The row/code pair is a real term (not a bubble); qualifies the flags.
    restart : In(1)
        Zero the accumulator and reset the flags (the domain reset does neither: the PE's
        state is defined from its first restart on). The cycle must be a bubble (``valid = 0``,
        ``row`` all zero): its term is not added. ``acc``/``flags`` show the finished tile
        during the restart cycle (at the accumulator stage).
    acc : Out(signed(pe_acc_width)); carries : Out(unsigned(pe_pending_bits))
        The accumulator pieces and their pending carries (``config.pe_carry_delay`` per piece
        boundary): the exact sum of products so far (LSB ``2**(e0 + pe_fmt.lsb_exp)``) is
        :func:`pe_sum` of the two.
    flags : Out(pe_flags_layout())
        Special-value flags of the terms so far.

    With ``config.pipeline == 2`` the addend and the term's flags are registered first: a term
    presented in cycle ``t`` is in ``acc`` after the edge ending cycle ``t + 1`` (else ``t``);
    ``valid`` and ``restart`` are delayed along with it.

    ``carry_copy``: ``carries`` comes from a copy of the pending-carry flip-flops (marked
    ``keep``, see ``hw.stages.replicas``), so that the accumulator's own carry stays by its
    adder when the consumer of ``carries`` (the array's drain chain) sits elsewhere; with
    ``pipeline == 2`` the addend's sign also has two kept registers, one for the carry-in and
    one for the sign extension. The same values either way.
    """

    def __init__(self, *, config, carry_copy=False):
        _check(config)
        if not isinstance(carry_copy, bool):
            raise TypeError(f"carry_copy must be a bool, not {carry_copy!r}")
        self._config = config
        self._carry_copy = carry_copy
        super().__init__({
            "row": In(row_layout(config)),
            "code": In(unsigned(config.wbits)),
            "valid": In(1),
            "restart": In(1),
            "acc": Out(signed(config.pe_acc_width)),
            "carries": Out(unsigned(config.pe_pending_bits)),
            "flags": Out(pe_flags_layout()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        width = cfg.pe_acc_width
        row, code = self.row, self.code
        psign, wsign = Signal(), code[cfg.wbits - 1]
        m.d.comb += psign.eq(row.sign ^ wsign)
        # the 2**(B-1)-way select of row.value << p with the row's sign on both sides (the
        # complement of the zeros shifted in and above): the aligned value times 2**p, ones'
        # complemented when x < 0
        shift = code[:cfg.wbits - 1]
        pad = row.sign.replicate((1 << len(shift)) - 1)
        mag = (Cat(pad, row.value, pad) << shift)[len(pad):2 * len(pad) + len(row.value)]
        addend = Cat(mag ^ wsign.replicate(len(mag)), psign.replicate(width - len(mag)))
        t_nan = self.valid & row.nan
        t_pinf = self.valid & row.inf & ~psign
        t_ninf = self.valid & row.inf & psign
        t_neg0 = ~self.valid | (row.zero & psign)
        term = Cat(addend, psign, t_nan, t_pinf, t_ninf, t_neg0, self.restart)
        if cfg.pipeline == 2:
            held = Signal(len(term), name="term_reg", reset_less=True)
            m.d.sync += held.eq(term)
            term = held
        add, cin = term[:width], term[width]
        if cfg.pipeline == 2 and self._carry_copy and len(mag) < width:
            # The addend's sign enters the adder at both ends: as the carry-in at the bottom
            # and as the sign extension at the top. One flip-flop for both (synthesis merges
            # the equal bits) sits between them, a route away from each; two kept copies can
            # sit at their own ends.
            sign_cin, sign_ext = (Signal(name=n, reset_less=True, attrs={"keep": 1})
                                  for n in ("sign_cin", "sign_ext"))
            m.d.sync += [sign_cin.eq(psign), sign_ext.eq(psign)]
            add = Cat(term[:len(mag)], sign_ext.replicate(width - len(mag)))
            cin = sign_cin
        n_nan, n_pinf, n_ninf, n_neg0, restart = (term[width + 1 + i] for i in range(5))

        # The restart cycle carries no term (the sequencer guarantees a bubble), so the
        # accumulator and flags simply reset: the DFFs' synchronous reset, no multiplexer.
        acc = Signal(signed(width), reset_less=True)
        # with a copy both carry Yosys's ``keep``: a copy without it is merged back into
        # the original (``opt_merge``), and the original's fan-out with it
        n = cfg.pe_pieces - 1
        kept = {"keep": 1} if self._carry_copy else {}
        carries = Signal(n, name="pending", reset_less=True, attrs=kept)
        # with pe_carry_delay 2 a second register between a piece's carry out and the piece
        # above, so that each sits by its own carry chain
        later = Signal(n, name="pending2", reset_less=True, attrs=kept) \
            if cfg.pe_carry_delay == 2 else None
        carries_out = carries if later is None else Cat(carries, later)
        copy = copy2 = None
        if self._carry_copy:
            copy = Signal(n, name="carries_copy", reset_less=True, attrs={"keep": 1})
            carries_out = copy
            if later is not None:
                copy2 = Signal(n, name="carries_copy2", reset_less=True, attrs={"keep": 1})
                carries_out = Cat(copy, copy2)
        entering = carries if later is None else later
        # (no reset: a layer start restarts the PE, so its state needs no reset fan-out)
        flags = Signal(pe_flags_layout(), init={"neg0": 1}, reset_less=True)
        size = cfg.pe_piece_bits
        with m.If(restart):
            m.d.sync += [acc.eq(0), carries.eq(0), flags.eq(flags.shape().const({"neg0": 1}))]
            for reg in (later, copy, copy2):
                if reg is not None:
                    m.d.sync += reg.eq(0)
        with m.Else():
            for j in range(cfg.pe_pieces):         # one carry chain per piece
                lo, hi = j * size, min(width, (j + 1) * size)
                piece = acc[lo:hi] + add[lo:hi] + (cin if j == 0 else entering[j - 1])
                m.d.sync += acc[lo:hi].eq(piece[:hi - lo])
                if j + 1 < cfg.pe_pieces:
                    m.d.sync += carries[j].eq(piece[hi - lo])
                    if copy is not None:
                        m.d.sync += copy[j].eq(piece[hi - lo])
            if later is not None:
                m.d.sync += later.eq(carries)
            if copy2 is not None:
                m.d.sync += copy2.eq(copy)
            m.d.sync += [
                flags.eq(Cat(flags.nan | n_nan, flags.pinf | n_pinf, flags.ninf | n_ninf,
                             flags.neg0 & n_neg0)),
            ]
        m.d.comb += [self.acc.eq(acc), self.carries.eq(carries_out), self.flags.eq(flags)]
        return m
