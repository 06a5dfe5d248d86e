"""The PE array's output FIFO for large devices: a block RAM read through its own output
register, so that no path starts at the RAM's slow unregistered output.

It stores in a :class:`hw.wstore.WeightStore` (two-clock read; on ECP5 one DP16KD with
``REGMODE="OUTREG"``) and keeps reading ahead into a small queue of flip-flops, as long as the
queue has room for every read in flight: ``r_data`` comes from that queue. A write is seen at
the read side :data:`LATENCY` clocks later (``tready`` high). The caller never writes into a
full FIFO (the array's drain keeps the results in flight within ``depth``): ``w_rdy`` says
whether there is room, for checks.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .wstore import WeightStore

__all__ = ["OutputFIFO", "LATENCY"]

#: Clocks from ``w_en`` to ``r_rdy`` with the FIFO empty before: the count, the RAM's address
#: and output registers, and the queue's two.
LATENCY = 5
#: Entries of the read-ahead queue: a read is in the queue's output four clocks after it is
#: issued, so five entries keep one result leaving in every clock while the reader takes them.
QUEUE = 5


class OutputFIFO(wiring.Component):
    """``depth`` entries of ``width`` bits (``depth`` a power of two, at least 2).

    Members
    -------
    w_en : In(1); w_data : In(width); w_rdy : Out(1)
    r_en : In(1); r_data : Out(width); r_rdy : Out(1)
        As :class:`amaranth.lib.fifo.SyncFIFOBuffered`'s.

    ``family``: the block RAM's (:data:`hw.wstore.FAMILIES`).
    """

    def __init__(self, *, width, depth, family=None):
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 2 \
                or depth & (depth - 1):
            raise ValueError(f"depth must be a power of two of at least 2, not {depth!r}")
        self._width, self._depth, self._family = width, depth, family
        super().__init__({
            "w_en": In(1), "w_data": In(width), "w_rdy": Out(1),
            "r_en": In(1), "r_data": Out(width), "r_rdy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth, bits = self._depth, (self._depth - 1).bit_length()
        m.submodules.ram = ram = WeightStore(width=self._width, depth=depth,
                                             family=self._family)
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=self._width, depth=QUEUE)
        produce, consume = Signal(bits), Signal(bits)
        stored = Signal(range(depth + 1))          # written, not yet read from the RAM
        m.d.comb += [ram.w_addr.eq(produce), ram.w_data.eq(self.w_data), ram.w_en.eq(self.w_en),
                     self.w_rdy.eq(stored != depth)]
        # reads in flight plus the queue's entries, counted against its room
        claimed = Signal(range(QUEUE + 1))
        issue = (stored != 0) & (claimed != QUEUE)
        pop = queue.r_rdy & self.r_en
        m.d.comb += ram.r_addr.eq(consume)
        with m.If(self.w_en):
            m.d.sync += produce.eq(produce + 1)
        with m.If(issue):
            m.d.sync += consume.eq(consume + 1)
        m.d.sync += [stored.eq(stored + self.w_en - issue), claimed.eq(claimed + issue - pop)]
        # the RAM's data arrives two clocks after its address
        arrive = Signal(2)
        m.d.sync += arrive.eq(arrive << 1 | issue)
        m.d.comb += [queue.w_en.eq(arrive[1]), queue.w_data.eq(ram.r_data),
                     self.r_data.eq(queue.r_data), self.r_rdy.eq(queue.r_rdy),
                     queue.r_en.eq(self.r_en)]
        return m
