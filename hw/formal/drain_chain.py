"""Harness: the drain chain (:class:`hw.drain.DrainChain`) delivers every captured entry once,
in order, against a reference queue.

The enables come as the arrays make them: every row's ``load`` is the capture, every row's
``move`` the capture or a shift (the multi-branch array); with ``moving`` (the PE array)
``move`` is always high, so that the chain moves in every clock, also in those the environment
does not shift in; with ``load_share`` (the PE array with ``"spread"``) every row's ``load``
comes a clock ahead of the capture and is taken through the chain's copies. The environment
captures free entries at any clock when no captured entry is left undelivered (or the last one
leaves in that clock) and shifts only while one is (with ``moving``: in every clock one is). A
reference keeps a copy of the entries of the last capture and the index of the next one to
deliver; the harness asserts that while entries are pending the chain's ``head`` is the
reference's next entry: each shift delivers the next entry, none skipped, none twice, none
from an older capture.

Proved by SAT bounded model checking from reset (:func:`hw.formal.run_sat` ``seq``): two
captures and every entry of both shifted out need ``2 * rows * cols + 3`` steps.

``fault`` (:data:`DRAIN_FAULTS`) breaks the chain at its boundary, for the tests that check
that the proof can fail: ``row`` (the last row's ``move`` misses the shifts; with ``moving``
the load), ``order`` (the entries wired column-major), ``late`` (the rows'
``load`` a clock late).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..drain import DrainChain

__all__ = ["DrainChainProof", "DRAIN_FAULTS"]

DRAIN_FAULTS = ("row", "order", "late")


class DrainChainProof(wiring.Component):
    """Harness of a ``rows`` x ``cols`` :class:`hw.drain.DrainChain` of ``width``-bit entries;
    its ports (``entries``, ``capture``, ``shift``) are free inputs of the proof, ``head`` the
    chain's."""

    def __init__(self, *, rows, cols, width=3, fault=None, moving=False, load_share=None):
        for name, value in (("rows", rows), ("cols", cols), ("width", width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if load_share is not None and (not isinstance(load_share, int)
                                       or isinstance(load_share, bool) or load_share < 1):
            raise ValueError(f"load_share must be None or a positive integer, "
                             f"not {load_share!r}")
        if not isinstance(moving, bool):
            raise TypeError(f"moving must be a bool, not {moving!r}")
        self._moving, self._load_share = moving, load_share
        if fault is not None and fault not in DRAIN_FAULTS:
            raise ValueError(f"fault must be None or one of {', '.join(DRAIN_FAULTS)}, "
                             f"not {fault!r}")
        self._rows, self._cols, self._width, self._fault = rows, cols, width, fault
        self._entry = data.StructLayout({"value": width})
        super().__init__({
            "entries": In(data.ArrayLayout(width, rows * cols)),
            "capture": In(1),
            "shift": In(1),
            "head": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols, fault = self._rows, self._cols, self._fault
        count = rows * cols
        share = self._load_share
        m.submodules.dut = dut = DrainChain(rows=rows, cols=cols, entry=self._entry,
                                            load_share=share)
        # -- the chain, driven as the array drives it (or broken) -----------------------------
        # with load_share the capture input is the load a clock ahead; ``capture`` below is
        # the clock the chain loads in
        capture = self.capture
        if share is not None:
            capture = Signal()
            m.d.sync += capture.eq(self.capture)
        late = Signal()
        m.d.sync += late.eq(self.capture)
        load = late if fault == "late" else self.capture
        for r in range(rows):
            if self._moving:
                move = ~capture if fault == "row" and r == rows - 1 else 1
                m.d.comb += [dut.load[r].eq(load), dut.move[r].eq(move)]
                continue
            move = self.capture if fault == "row" and r == rows - 1 else (
                self.capture | self.shift)
            m.d.comb += [dut.load[r].eq(load), dut.move[r].eq(move | (load & (fault == "late")))]
        for i in range(count):
            src = (i % cols) * rows + i // cols if fault == "order" else i
            m.d.comb += dut.entries[i].eq(self.entries[src])
        m.d.comb += self.head.eq(dut.head)

        # -- reference queue and environment ----------------------------------------------------
        snap = [Signal(self._width, name=f"ref{i}") for i in range(count)]
        index = Signal(range(count + 1))
        pending = Signal(range(count + 1))
        m.d.comb += [
            Assume(~capture | (pending == 0) | ((pending == 1) & self.shift)),
            Assume(~self.shift | (pending != 0)),
        ]
        if self._moving:           # the chain moves in every clock: a pending entry shifts
            m.d.comb += Assume(self.shift | (pending == 0) | capture)
        with m.If(capture):
            m.d.sync += [index.eq(0), pending.eq(count)]
            m.d.sync += [snap[i].eq(self.entries[i]) for i in range(count)]
        with m.Elif(self.shift):
            m.d.sync += [index.eq(index + 1), pending.eq(pending - 1)]
        expect = Signal(self._width)
        with m.Switch(index):
            for i in range(count):
                with m.Case(i):
                    m.d.comb += expect.eq(snap[i])
        with m.If(pending != 0):
            m.d.comb += Assert(self.head == expect, "the head is not the next captured entry")
        return m
