"""Row aligner and processing element of the shift-add PE array (see ``docs/array.md``).

The work of a product ``x * (-1)**s * 2**(e0 + p)`` is split three ways:

* the **row aligner** (one per array row, shared by all PEs of the row) decodes the activation
  and moves its significand to ``sig << (max(E, 1) - 1)`` (``config.align_width`` bits, LSB
  weight ``2**(e0 + in_fmt.lsb_exp)`` once the weight's ``2**e0`` is factored out); special
  and zero activations align to 0 and are reported by class bits;
* the **column** (one per array column) supplies the weight code;
* the **PE** selects ``aligned << p`` (a ``2**(B-1)``-way choice), complements it when the
  product is negative (``sign(x) ^ s``; the ``+1`` of the two's complement rides on the
  accumulator adder's carry-in) and adds it into its exact ``pe_acc_width``-bit accumulator.

``e0`` and the bias never reach the PE: they are applied by the shared finalizer.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract.array import ArrayConfig

__all__ = ["RowAligner", "ShiftPE", "row_layout", "pe_flags_layout"]


def _check(config):
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")


def row_layout(config):
    """What a row aligner broadcasts to the PEs of its row."""
    _check(config)
    return data.StructLayout({
        "value": unsigned(config.align_width),   # aligned significand magnitude
        "sign": unsigned(1),                     # sign bit of x
        "zero": unsigned(1),                     # x is +-0
        "inf": unsigned(1),                      # x is +-inf
        "nan": unsigned(1),                      # x is NaN
    })


def pe_flags_layout():
    """Special-value state of a PE (and of its shadow): some NaN term, some +inf / -inf
    product, every term so far is -0."""
    return data.StructLayout({"nan": 1, "pinf": 1, "ninf": 1, "neg0": 1})


class RowAligner(wiring.Component):
    """Decode one activation and align its significand (combinational).

    Members
    -------
    x : In(unsigned(in_fmt.width))
        Raw activation bits.
    o : Out(row_layout(config))
    """

    def __init__(self, *, config):
        _check(config)
        self._config = config
        super().__init__({
            "x": In(unsigned(config.in_fmt.width)),
            "o": Out(row_layout(config)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt = self._config.in_fmt
        x = self.x
        exp = x[fmt.frac_bits:fmt.width - 1]
        frac = x[:fmt.frac_bits]
        special = exp == fmt.exp_max_field
        normal = exp.any()
        sig = Mux(special, 0, Cat(frac, normal))
        amount = Mux(normal, exp - 1, 0)[:(fmt.exp_max_field - 2).bit_length()]
        width = self._config.align_width
        value = sig
        for k in range(len(amount)):              # barrel shifter, one named level per bit
            shifted = Mux(amount[k], value << (1 << k), value)
            level = Signal(min(len(shifted), width), name=f"align_sh{k}")
            m.d.comb += level.eq(shifted)
            value = level
        m.d.comb += [
            self.o.value.eq(value),
            self.o.sign.eq(x[fmt.width - 1]),
            self.o.zero.eq(~normal & ~frac.any()),
            self.o.inf.eq(special & ~frac.any()),
            self.o.nan.eq(special & frac.any()),
        ]
        return m


class ShiftPE(wiring.Component):
    """One processing element: ``acc += (-1)**(sign(x)^s) * (aligned << p)``, exact.

    Members
    -------
    row : In(row_layout(config))
        The row's broadcast (a bubble is ``value = 0`` with ``valid = 0``).
    code : In(unsigned(wbits))
        The column's weight code.
    valid : In(1)
        The row/code pair is a real term (not a bubble); qualifies the flags.
    restart : In(1)
        Zero the accumulator and reset the flags. The cycle must be a bubble (``valid = 0``,
        ``row.value = 0``): its term is not added. ``acc``/``flags`` show the finished tile
        during the restart cycle (at the accumulator stage).
    acc : Out(signed(pe_acc_width)); flags : Out(pe_flags_layout())
        Current exact sum of products (LSB ``2**(e0 + in_fmt.lsb_exp)``) and special flags.

    With ``config.pipeline == 2`` the addend and the term's flags are registered first: a term
    presented in cycle ``t`` is in ``acc`` after the edge ending cycle ``t + 1`` (else ``t``);
    ``valid`` and ``restart`` are delayed along with it.
    """

    def __init__(self, *, config):
        _check(config)
        self._config = config
        super().__init__({
            "row": In(row_layout(config)),
            "code": In(unsigned(config.wbits)),
            "valid": In(1),
            "restart": In(1),
            "acc": Out(signed(config.pe_acc_width)),
            "flags": Out(pe_flags_layout()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        width = cfg.pe_acc_width
        row, code = self.row, self.code
        psign = Signal()
        m.d.comb += psign.eq(row.sign ^ code[cfg.wbits - 1])
        mag = row.value << code[:cfg.wbits - 1]                  # the 2**(B-1)-way select
        addend = Cat(mag, Const(0, width - len(mag))) ^ psign.replicate(width)
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
        n_nan, n_pinf, n_ninf, n_neg0, restart = (term[width + 1 + i] for i in range(5))

        # The restart cycle carries no term (the sequencer guarantees a bubble), so the
        # accumulator and flags simply reset: the DFFs' synchronous reset, no multiplexer.
        acc = Signal(signed(width), reset_less=True)
        flags = Signal(pe_flags_layout(), init={"neg0": 1})
        with m.If(restart):
            m.d.sync += [acc.eq(0), flags.eq(flags.shape().const({"neg0": 1}))]
        with m.Else():
            m.d.sync += [
                acc.eq(acc + add.as_signed() + cin),
                flags.eq(Cat(flags.nan | n_nan, flags.pinf | n_pinf, flags.ninf | n_ninf,
                             flags.neg0 & n_neg0)),
            ]
        m.d.comb += [self.acc.eq(acc), self.flags.eq(flags)]
        return m
