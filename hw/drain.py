"""The drain chain: the PEs' sums captured at a tile's end and shifted out one per clock.

Entry ``i`` (``r * cols + c``: row-major) is PE ``(r, c)``'s. In the clock a row's ``load`` and
``move`` are both high, that row's shadow registers take their PEs' entries; with ``move``
alone each register takes the next one's, so that the head (entry 0) presents the entries in
order, while the PEs already accumulate the next tile. The enables come per row, so that the
array can give each row its own copy of them (no flip-flop drives the whole array).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DrainChain"]


class DrainChain(wiring.Component):
    """``rows * cols`` shadow registers of ``entry`` (a ``data.Layout``) in one chain.

    Ports: ``entries`` (``rows * cols`` entries, row-major), ``load`` and ``move`` (one enable
    per row), ``head`` (entry 0's register). The registers have no reset: only entries loaded
    since the last capture are ever read."""

    def __init__(self, *, rows, cols, entry):
        for name, value in (("rows", rows), ("cols", cols)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(entry, data.Layout):
            raise TypeError(f"entry must be a data.Layout, not {type(entry).__name__}")
        self._rows, self._cols, self._entry = rows, cols, entry
        super().__init__({
            "entries": In(data.ArrayLayout(entry, rows * cols)),
            "load": In(rows),
            "move": In(rows),
            "head": Out(entry),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols
        count = rows * cols
        chain = [Signal(self._entry, name=f"shadow{i}", reset_less=True) for i in range(count)]
        for r in range(rows):
            with m.If(self.move[r]):
                for c in range(cols):
                    i = r * cols + c
                    if i + 1 < count:
                        m.d.sync += chain[i].eq(Mux(self.load[r], self.entries[i], chain[i + 1]))
                    else:                        # the tail: after a shift it is never read
                        m.d.sync += chain[i].eq(self.entries[i])
        m.d.comb += self.head.eq(chain[0])
        return m
