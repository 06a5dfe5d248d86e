"""Formal harness for the array's pipelined finalizer (``hw.finalizer.Finalizer``).

:class:`FinalizerProof` (sequential, proved with Yosys ``sat -seq``, see :func:`hw.formal.run_sat`)
    For every entry (any accumulator pattern and pending carries, any flags, any bias pattern,
    every ``e0`` in ``[e0_min, e0_max]``) and every setting of the layer options ``bias_en``
    and ``relu`` (held steady, as the array holds them while entries are in flight), the
    finalizer's result, ``stages`` clocks after the entry, has the same bits, ``last`` and
    ``meta`` as the unpipelined reference: the PE sum with its pending carries
    (``hw.pe.pe_sum``) plus the bias aligned by a :class:`hw.lanes.BiasAligner` without
    register stages (proved exact by ``BiasAlignerProof``), rounded by a
    :class:`hw.rounding.Rounder` without register stages (the dot unit's, checked against the
    golden model in simulation; ``RoundingProof`` proves it against the contract's rounding),
    and ``o.valid``
    follows ``i.valid`` at that latency. It also asserts that the exact total never reaches
    ``-2**(acc_width - 1)``, the one pattern outside ``RoundingProof``'s domain. The
    pipelined finalizer's aligner and rounder have every register stage: the proof covers the
    cut variants of both against their combinational forms.

    Why one entry suffices: every register of the finalizer loads on every clock (it never
    stalls) and no register feeds back (:func:`feedforward_problems` checks both on the
    elaborated unit), so the result in clock ``t`` is one fixed function of the entry in
    clock ``t - stages`` and the held options. A bounded check of depth ``stages + 1``
    compares that function with the reference on every input; the harness also asserts at the
    earlier steps, where the valid flags (reset to 0) must agree.

``fault`` wraps the finalizer in a deliberately broken variant (:data:`FINALIZER_FAULTS`) for
the tests that check that the proof can fail:

* ``sticky``: the entry's accumulator LSB is cleared (a lost sticky bit: only some rounding
  ties come out differently);
* ``relu_neg0``: a ``-0`` result passes ReLU unchanged;
* ``carry``: the top pending carry is ignored.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cat, Const, Fragment, Module, Mux, Signal, signed
from amaranth.hdl._ast import Assign, SignalDict, SignalSet, Switch
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from contract import DotConfig
from contract.array import ArrayConfig

from .finalizer import Finalizer, entry_layout, result_layout
from .formal import _check_fault
from .lanes import BiasAligner
from .pe import pe_carry_vector
from .rounding import Rounder

__all__ = ["FINALIZER_FAULTS", "ROUNDING_FAULTS", "FinalizerProof", "RoundingProof",
           "feedforward_problems"]

FINALIZER_FAULTS = ("sticky", "relu_neg0", "carry")
ROUNDING_FAULTS = ("sticky", "e0")


def _check(config, kind, what, fault, faults):
    if not isinstance(config, kind):
        raise TypeError(f"config must be {what}, not {config!r}")
    _check_fault(fault, faults)


def feedforward_problems(component):
    """Why ``component``'s registers are not a feed-forward pipeline, as a list of strings
    (empty when they are): a register assigned under a condition (it may hold its value), or
    a register whose next value depends, through combinational logic and other registers, on
    itself. Looks at the statements of the elaborated component and its submodules."""
    fragment = Fragment.get(component, None)
    deps, registers, problems = SignalDict(), SignalSet(), []

    def reads(stmt, conds):
        """(assigned signal, signals it reads) of ``stmt``, with the tests it sits under."""
        if isinstance(stmt, Assign):
            read = stmt.rhs._rhs_signals()
            for cond in conds:
                read |= cond
            for sig in stmt._lhs_signals():
                yield sig, read, bool(conds)
        elif isinstance(stmt, Switch):
            inner = conds + [stmt.test._rhs_signals()]
            for case in stmt.cases:              # (patterns, statements, source location)
                for sub in case[1]:
                    yield from reads(sub, inner)

    def visit(frag):
        for domain, stmts in frag.statements.items():
            for stmt in stmts:
                for sig, read, conditional in reads(stmt, []):
                    if domain != "comb":
                        registers.add(sig)
                        if conditional:
                            problems.append(f"register {sig.name} is assigned under a condition")
                    deps.setdefault(sig, SignalSet()).update(read)
        for sub, _name, _src in frag.subfragments:
            visit(sub)

    visit(fragment)
    for reg in registers:                      # depth-first search from each register's inputs
        seen, todo = SignalSet(), list(deps.get(reg, ()))
        while todo:
            sig = todo.pop()
            if sig is reg:
                problems.append(f"register {reg.name} feeds back into itself")
                break
            if sig not in seen:
                seen.add(sig)
                todo.extend(deps.get(sig, ()))
    return sorted(set(problems))


class _FaultyFinalizer(wiring.Component):
    """A :class:`Finalizer` with one deliberate defect (see the module docstring)."""

    def __init__(self, *, config, fault):
        self._config, self._fault = config, fault
        self._inner = Finalizer(config=config)
        super().__init__(dict(self._inner.signature.members.items()))

    @property
    def stages(self):
        return self._inner.stages

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self._inner
        fmt = self._config.out_fmt
        entry = Signal(entry_layout(self._config))
        m.d.comb += entry.eq(self.i.payload)
        if self._fault == "sticky":
            m.d.comb += entry.acc.eq(Cat(Const(0, 1), self.i.payload.acc[1:]))
        elif self._fault == "carry" and len(entry.carries):
            top = len(entry.carries) - 1
            m.d.comb += entry.carries.eq(self.i.payload.carries & ~(1 << top))
        relu_neg0 = self._fault == "relu_neg0"
        m.d.comb += [
            inner.i.valid.eq(self.i.valid), inner.i.payload.eq(entry),
            inner.bias_en.eq(self.bias_en), inner.relu.eq(self.relu & ~relu_neg0),
            self.o.valid.eq(inner.o.valid), self.o.payload.eq(inner.o.payload),
        ]
        if relu_neg0:             # ReLU applied by hand, except to -0
            bits = inner.o.payload.bits
            neg = bits[fmt.width - 1] & (bits != fmt.sign_mask)
            relu = Signal()
            m.d.sync += relu.eq(self.relu)          # the result is at least one clock late
            m.d.comb += self.o.payload.bits.eq(Mux(relu & neg, 0, bits))
        return m


class FinalizerProof(wiring.Component):
    """Harness: :class:`hw.finalizer.Finalizer` equals the unpipelined reference (see the
    module docstring). Sequential: run it with ``run_sat(..., seq=proof.depth)``."""

    def __init__(self, *, config, fault=None):
        _check(config, ArrayConfig, "an ArrayConfig", fault, FINALIZER_FAULTS)
        self._config, self._fault = config, fault
        super().__init__({
            "valid": In(1),
            "entry": In(entry_layout(config)),
            "bias_en": In(1),
            "relu": In(1),
        })

    @property
    def stages(self):
        """Clocks from an entry to its result."""
        return self._config.final_latency - 2 - self._config.fifo_cut

    @property
    def depth(self):
        """Steps of the bounded check that reach the first entry's result."""
        return self.stages + 1

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        dot = cfg.dot_config
        if self._fault is None:
            dut = Finalizer(config=cfg)
        else:
            dut = _FaultyFinalizer(config=cfg, fault=self._fault)
        m.submodules.dut = dut
        assert dut.stages == self.stages
        problems = feedforward_problems(Finalizer(config=cfg))
        if problems:            # the one-entry argument of the module docstring would not hold
            raise ValueError(f"the finalizer is not a feed-forward pipeline: {problems[0]}")
        entry = self.entry
        m.d.comb += [
            dut.i.valid.eq(self.valid), dut.i.payload.eq(entry),
            dut.bias_en.eq(self.bias_en), dut.relu.eq(self.relu),
        ]
        # the environment: e0 in the accepted range, the options held steady
        started = Signal()
        held_en, held_relu = Signal(), Signal()
        m.d.sync += [started.eq(1), held_en.eq(self.bias_en), held_relu.eq(self.relu)]
        m.d.comb += [
            Assume((entry.e0 >= cfg.e0_min) & (entry.e0 <= cfg.e0_max)),
            Assume(~started | ((self.bias_en == held_en) & (self.relu == held_relu))),
        ]
        # the reference: exact total, one rounding
        m.submodules.bias = bias = BiasAligner(config=dot)
        m.submodules.rnd = rnd = Rounder(config=dot)
        width = cfg.pe_acc_width
        pe_sum = Signal(signed(width))
        total = Signal(signed(cfg.acc_width))
        s = rnd.i.payload.sum
        m.d.comb += [
            bias.bias.eq(entry.bias), bias.e0.eq(entry.e0), bias.enable.eq(self.bias_en),
            pe_sum.eq(entry.acc.as_unsigned() + pe_carry_vector(cfg, entry.carries)),
            total.eq((pe_sum << dot.product_shift_base)
                     + ((bias.value + bias.neg) << bias.offset)),
            s.sign.eq(total[-1]), s.mag.eq(Mux(total[-1], -total, total)), s.e0.eq(entry.e0),
            s.flags.nan.eq(entry.flags.nan | bias.nan),
            s.flags.pinf.eq(entry.flags.pinf | bias.pinf),
            s.flags.ninf.eq(entry.flags.ninf | bias.ninf),
            s.flags.neg0.eq(entry.flags.neg0 & bias.neg0), s.relu.eq(self.relu),
        ]
        # the reference result, delayed like the finalizer's
        expected = Signal(result_layout(cfg))
        m.d.comb += [expected.bits.eq(rnd.o.payload.bits), expected.meta.eq(entry.meta)]
        ref_valid, ref = self.valid, expected.as_value()
        for k in range(self.stages):
            v = Signal(name=f"ref_valid{k}")
            r = Signal(len(ref), name=f"ref{k}", reset_less=True)
            m.d.sync += [v.eq(ref_valid), r.eq(ref)]
            ref_valid, ref = v, r
        m.d.comb += [
            Assert(total != -(1 << (cfg.acc_width - 1)),
                   "the exact total reaches -2**(acc_width - 1), outside the rounder's domain"),
            Assert(dut.o.valid == ref_valid, "o.valid differs from i.valid delayed by stages"),
            Assert(~ref_valid | (dut.o.payload.as_value() == ref),
                   "result differs from the reference rounding of the exact total"),
        ]
        return m


class RoundingProof(wiring.Component):
    """Harness: :class:`hw.rounding.Rounder` (without register stages), given the sign and
    magnitude of an exact total, gives the contract's result for every exact total, every
    ``e0`` in ``[e0_min, e0_max]``, every combination of the flags and ReLU. Combinational:
    :func:`hw.formal.run_sat` proves it for all inputs.

    The specification is written out without a normalizing shifter: a case split over ``e0``
    and the position ``k`` of the leading one of ``|total|`` gives, as constants, the result
    exponent ``L = e0 + acc_lsb_exp + k`` and the bit ``r`` of ``|total|`` that becomes the
    result LSB (``k - F``, or the subnormal LSB when ``L`` is below the smallest normal
    exponent); the significand, guard and sticky bits are then fixed slices. Round to
    nearest, ties to even; a significand carry moves to the next binade (the largest
    subnormal to the smallest normal); a biased exponent of all ones or more is an infinity; a
    nonzero total that rounds to 0 keeps its sign. Then the specials: NaN for a NaN term or
    +inf with -inf (canonical, sign 0), else the infinity, else for an exact zero ``-0`` when
    every term was ``-0`` and ``+0`` otherwise; ReLU turns any pattern with its sign bit set
    into ``+0``.

    The total's most negative pattern ``-2**(acc_width - 1)`` is assumed away: its magnitude
    needs ``acc_width`` bits, and no sum of the domain reaches it (``FinalizerProof`` asserts
    this of the array's totals).

    ``fault``: ``sticky`` hands the rounder the magnitude without its LSB (a lost sticky bit);
    ``e0`` gives it ``e0 - 1`` except at ``e0_min`` (every exponent field and the subnormal
    limit one off).
    """

    def __init__(self, *, config, fault=None):
        _check(config, DotConfig, "a DotConfig", fault, ROUNDING_FAULTS)
        self._config, self._fault = config, fault
        super().__init__({
            "total": In(signed(config.acc_width)),
            "e0": In(signed(config.e0_bits)),
            "nan": In(1), "pinf": In(1), "ninf": In(1), "neg0": In(1), "relu": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self._config, self._config.out_fmt
        width, frac = cfg.acc_width, fmt.frac_bits
        m.d.comb += [
            Assume((self.e0 >= cfg.e0_min) & (self.e0 <= cfg.e0_max)),
            Assume(self.total != -(1 << (width - 1))),
        ]
        # the unit under test
        m.submodules.rnd = rnd = Rounder(config=cfg)
        e0_in = self.e0
        if self._fault == "e0":
            e0_in = Signal(signed(cfg.e0_bits))
            m.d.comb += e0_in.eq(Mux(self.e0 == cfg.e0_min, self.e0, self.e0 - 1))
        mag_in = Signal(width - 1)
        m.d.comb += mag_in.eq(Mux(self.total[width - 1], -self.total, self.total))
        s = rnd.i.payload.sum
        m.d.comb += [
            s.sign.eq(self.total[width - 1]), s.e0.eq(e0_in),
            s.mag.eq(mag_in & ~1 if self._fault == "sticky" else mag_in),
            s.flags.nan.eq(self.nan), s.flags.pinf.eq(self.pinf), s.flags.ninf.eq(self.ninf),
            s.flags.neg0.eq(self.neg0), s.relu.eq(self.relu),
        ]
        got = rnd.o.payload.bits
        # the specification
        sign = self.total[width - 1]
        mag = Signal(width - 1)
        m.d.comb += mag.eq(Mux(sign, ~self.total + 1, self.total))
        below = [Const(0, 1)] + [mag[:j].any() for j in range(1, width)]   # below[j]: bits < j
        emin = 1 - fmt.bias                       # exponent of the smallest normal
        sig = Signal(frac + 1)
        guard, sticky = Signal(), Signal()
        field = Signal(range(4 * (fmt.exp_max_field + 2) + 1))   # biased exponent, 0: subnormal
        e0_mask = (1 << cfg.e0_bits) - 1
        with m.Switch(self.e0.as_unsigned()):
            for e0 in range(cfg.e0_min, cfg.e0_max + 1):
                with m.Case(e0 & e0_mask):
                    for n, k in enumerate(reversed(range(width - 1))):
                        with (m.If if n == 0 else m.Elif)(mag[k]):
                            lead_exp = e0 + cfg.acc_lsb_exp + k
                            lift = max(0, emin - lead_exp)          # subnormal: LSB held up
                            r = k - frac + lift
                            m.d.comb += [
                                sig.eq(Cat(mag[r + i] if 0 <= r + i < width - 1 else Const(0, 1)
                                           for i in range(frac + 1))),
                                guard.eq(mag[r - 1] if r >= 1 else 0),
                                sticky.eq(below[r - 1] if r >= 2 else 0),
                                field.eq(lead_exp + fmt.bias if lift == 0 else 0),
                            ]
        inc = guard & (sticky | sig[0])
        rounded = Signal(frac + 2)
        m.d.comb += rounded.eq(sig + inc)
        pattern = Signal(len(field) + frac + 1)
        with m.If(field == 0):                    # subnormal: at most 2**F, the smallest normal
            m.d.comb += pattern.eq(rounded)
        with m.Elif(rounded[frac + 1]):           # 2**(F+1): the next binade
            m.d.comb += pattern.eq((field + 1) << frac)
        with m.Else():
            m.d.comb += pattern.eq(Cat(rounded[:frac], field))
        number = Cat(Mux(pattern >= fmt.pos_inf, fmt.pos_inf, pattern)[:fmt.width - 1], sign)
        expected = Signal(fmt.width)
        with m.If(self.nan | (self.pinf & self.ninf)):
            m.d.comb += expected.eq(fmt.canonical_nan)
        with m.Elif(self.pinf):
            m.d.comb += expected.eq(fmt.pos_inf)
        with m.Elif(self.ninf):
            m.d.comb += expected.eq(fmt.neg_inf)
        with m.Elif(mag == 0):
            m.d.comb += expected.eq(Mux(self.neg0, fmt.sign_mask, 0))
        with m.Else():
            m.d.comb += expected.eq(number)
        m.d.comb += Assert(got == Mux(self.relu & expected[fmt.width - 1], 0, expected),
                           "rounded result differs from the specification")
        return m
