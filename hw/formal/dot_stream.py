"""Harness: the stream protocol rules of :class:`hw.dot.ShiftDotUnit`.

The environment obeys the stream rules on ``i`` (``Assume``: once ``valid`` is high and
``ready`` low, ``valid`` stays high and the payload stays put); reset is a free input and may
rise at any time. Asserted on ``o``: while ``valid`` and not ``ready``, ``valid`` stays high and
the payload is stable; the number of accepted ``last`` beats minus emitted results (results in
flight) is never negative (nothing duplicated) and at most ``pipeline``; zero in flight means
``o.valid`` low; and after ``pipeline + 1`` cycles with ``o.ready`` high and no ``last`` beat
accepted, nothing is in flight (nothing dropped). With ``invariant=True`` the harness also
asserts that the in-flight count equals the number of result-carrying stage registers inside
the unit (found by name in its elaborated fragment), the strengthening that makes the
properties k-inductive. With ``track_data=True`` (activations 1.0, free codes and ``keep``)
every result is checked against the rounded sum of its own beats (bounded model check).
Sequential: prove with :func:`hw.formal.run_sby`.

``fault`` (:data:`STREAM_FAULTS`) injects a protocol bug at the unit's ports
(:func:`faulty_dot_unit`).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cat, Const, Fragment, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from ..dot import ShiftDotUnit, _beat_layout, in_layout
from .common import check_dot_config, check_fault

__all__ = ["DotStreamProof", "STREAM_FAULTS", "faulty_dot_unit"]

STREAM_FAULTS = ("ready", "payload", "valid", "dup", "skip")


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
    check_dot_config(config)
    if fault not in STREAM_FAULTS:
        raise ValueError(f"fault must be one of {', '.join(STREAM_FAULTS)}, not {fault!r}")
    inner = ShiftDotUnit(config=config)
    return _FaultyDotUnit(inner=inner, fragment=inner, fault=fault)

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
        terms.append(sigs["beat_valid"] & data.View(_beat_layout(config), sigs["beat"]).last)
    return terms


class DotStreamProof(wiring.Component):
    """Harness: stream protocol rules of :class:`hw.dot.ShiftDotUnit`.

    Free inputs: ``i_valid``, ``i_payload``, ``o_ready`` (and the ``sync`` domain's reset).
    Sequential; prove with :func:`run_sby` (``mode="bmc"`` or, with ``invariant=True``,
    ``mode="prove"``)."""

    def __init__(self, *, config, fault=None, invariant=False, track_data=False):
        check_dot_config(config)
        check_fault(fault, STREAM_FAULTS)
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
