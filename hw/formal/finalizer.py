"""Formal harness for the array's pipelined finalizer (``hw.finalizer.Finalizer``).

:class:`FinalizerProof` (sequential, proved with Yosys ``sat -seq``, see :func:`hw.formal.run_sat`)
    For every entry (any accumulator pattern and pending carries, any flags, any bias pattern,
    every ``e0`` in ``[e0_min, e0_max]``) and every setting of the layer options ``bias_en``
    and ``relu`` (held steady, as the array holds them while entries are in flight), the
    finalizer's result, ``stages`` clocks after the entry, has the same bits and ``meta`` as
    the unpipelined reference: the PE sum with its pending carries (``hw.pe.pe_sum``) plus
    the bias aligned by a :class:`hw.lanes.BiasAligner` without register stages (proved
    exact by ``BiasAlignerProof``), rounded by a
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

from contract.array import ArrayConfig

from ..finalizer import Finalizer, entry_layout, result_layout
from ..lanes import BiasAligner
from ..pe import pe_carry_vector
from ..rounding import Rounder
from ..stages import RING_POINTER
from .common import check_fault

__all__ = ["FINALIZER_FAULTS", "FinalizerProof", "feedforward_problems"]

FINALIZER_FAULTS = ("sticky", "relu_neg0", "carry")


def _check(config, kind, what, fault, faults):
    if not isinstance(config, kind):
        raise TypeError(f"config must be {what}, not {config!r}")
    check_fault(fault, faults)


def feedforward_problems(component):
    """Why ``component``'s registers are not a feed-forward pipeline, as a list of strings
    (empty when they are): a register assigned under a condition (it may hold its value), or
    a register whose next value depends, through combinational logic and other registers, on
    itself. The pointers of block-RAM delay lines (``hw.stages.RING_POINTER``) are exempt:
    their delay does not depend on the pointer's value (``tests/test_ram_delays.py`` runs it
    through every value). Looks at the statements of the elaborated component and its
    submodules."""
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
        if RING_POINTER.items() <= reg.attrs.items():
            continue
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
        return self._config.final_latency - self._config.out_latency

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
            bias.flags.eq(entry.flags),
            s.flags.nan.eq(bias.nan), s.flags.pinf.eq(bias.pinf), s.flags.ninf.eq(bias.ninf),
            s.flags.neg0.eq(bias.neg0), rnd.relu.eq(self.relu),
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
