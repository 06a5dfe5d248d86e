"""AXI4-Lite control/status register block generated from a register map as data
(``contract.array.REGISTERS``; the branch array passes ``contract.branch_array.BRANCH_REGISTERS``,
which has the same ``CTRL``, ``STATUS``, ``ERROR`` and ``IRQ_EN`` conventions).

Every register of the map becomes hardware by its access type, so the map in
``contract/array.py`` (and the documentation and header generated from it) cannot drift from
the gateware:

* ``ro`` identification registers read the constants of
  :meth:`contract.array.ArrayConfig.register_resets`; ``STATUS`` reads ``busy``/``done`` and
  the OR of ``ERROR``;
* ``rw`` registers are stored (byte-wise ``wstrb``) and exposed as outputs named after the
  register in lower case (``n``, ``k``, ``m``, ``e0``, ``ctrl``); ``CTRL.START`` is not stored:
  writing it 1 pulses ``start`` for one clock;
* ``rw1c`` (``ERROR``) bits are set by ``err`` pulses and cleared by writing 1;
* ``rc`` counters count the ``ev`` bits (one per counter, in map order) and restart when a
  layer starts (``started``: an accepted ``START``; a refused one leaves them alone); without
  ``counters`` they read 0 and ``ev`` is ignored;
* ``irq`` is a registered level: high while a ``STATUS`` condition enabled in ``IRQ_EN`` holds
  (``STATUS.IRQ`` reads it).

Bus behaviour: one write and one read at a time; a write is taken when both ``awvalid`` and
``wvalid`` are high, applied one clock later and then answered ``OKAY`` on ``b``; reads are
answered ``OKAY`` three clocks after ``ar`` with the register value (unmapped addresses read 0,
writes to them are ignored).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from contract.array import CSR_ADDR_WIDTH, REGISTERS, ArrayConfig

__all__ = ["AXI4LiteSignature", "CSRBlock"]


def AXI4LiteSignature(addr_width=CSR_ADDR_WIDTH, data_width=32):
    """AXI4-Lite, seen from the manager (``Out`` members are driven by the manager); the
    register block takes it as ``In``. ``awprot``/``arprot`` are omitted."""
    return wiring.Signature({
        "awaddr": Out(addr_width), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
        "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(addr_width), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })


def _rw_names(registers=REGISTERS):
    return [r.name for r in registers if r.access == "rw"]


def _rc_names(registers=REGISTERS):
    return [r.name for r in registers if r.access == "rc"]


class CSRBlock(wiring.Component):
    """The register block of the array.

    Members
    -------
    bus : In(AXI4LiteSignature())
    start : Out(1)
        One-clock pulse when ``CTRL`` is written with ``START`` set.
    ctrl, n, k, m, e0 : Out(unsigned(32))
        Stored ``rw`` registers (``ctrl`` bit 0 always reads 0); ``ctrl`` already shows the
        value being written in the cycle of a write (so ``start`` sees its own options).
    irq : Out(1)
        Level interrupt, registered: ``(STATUS & IRQ_EN) != 0`` one clock earlier.
    busy, done : In(1)
    err : In(len(ERROR fields))
        Pulses setting ``ERROR`` bits.
    ev : In(number of ``rc`` registers)
        Counter increments, in register map order.
    started : In(1)
        Pulse: a layer starts; the counters restart with this clock's ``ev``.

    ``counters=False`` leaves the ``rc`` registers out (they read 0): ``ArrayConfig.counters``.
    """

    def __init__(self, *, config, registers=REGISTERS, counters=True):
        from contract.branch_array import BranchArrayConfig

        if not isinstance(config, (ArrayConfig, BranchArrayConfig)):
            raise TypeError(f"config must be an ArrayConfig or a BranchArrayConfig, not "
                            f"{config!r}")
        if not isinstance(counters, bool):
            raise TypeError(f"counters must be a bool, not {counters!r}")
        self._counters = counters
        self._config, self._registers = config, tuple(registers)
        self._by_name = {r.name: r for r in self._registers}
        self._n_err = len(self._by_name["ERROR"].fields)
        members = {"bus": In(AXI4LiteSignature()), "start": Out(1), "irq": Out(1)}
        for name in _rw_names(self._registers):
            members[name.lower()] = Out(unsigned(32))
        members.update({"busy": In(1), "done": In(1), "err": In(self._n_err),
                        "ev": In(len(_rc_names(self._registers))), "started": In(1)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        registers, by_name = self._registers, self._by_name
        resets = self._config.register_resets()
        word = {r.name: r.offset >> 2 for r in registers}
        abits = CSR_ADDR_WIDTH - 2

        stored = {name: getattr(self, name.lower()) for name in _rw_names(registers)}
        regs = {name: Signal(32, name=f"reg_{name.lower()}") for name in stored}
        for name, port in stored.items():
            if name != "CTRL":
                m.d.comb += port.eq(regs[name])
        error = Signal(self._n_err)
        counters = {name: Signal(32, name=f"cnt_{name.lower()}")
                    for name in _rc_names(registers)} if self._counters else {}

        # write channel: a write is taken into registers, applied in the next clock and then
        # answered on b (so the register decode starts from flip-flops: a short path)
        bvalid = Signal()
        w_pend = Signal()
        w_word = Signal(CSR_ADDR_WIDTH - 2)
        w_start = Signal()                        # START's pulse, decoded as the write is taken
        aw_word = bus.awaddr[2:CSR_ADDR_WIDTH]
        w_data = Signal(32)
        w_strb = Signal(4)
        take_w = bus.awvalid & bus.wvalid & ~bvalid & ~w_pend
        m.d.comb += [bus.awready.eq(take_w), bus.wready.eq(take_w), bus.bvalid.eq(bvalid),
                     bus.bresp.eq(0)]
        m.d.sync += w_pend.eq(take_w)
        with m.If(take_w):
            m.d.sync += [w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
            m.d.sync += w_word.eq(aw_word)
        # (a reduction for word 0: it lints clean where ``!x`` would not)
        ctrl_hit = ~aw_word.any() if word["CTRL"] == 0 else aw_word == word["CTRL"]
        m.d.sync += w_start.eq(take_w & ctrl_hit & bus.wstrb[0] & bus.wdata[0])
        with m.If(w_pend):
            m.d.sync += bvalid.eq(1)
        with m.Elif(bus.bready):
            m.d.sync += bvalid.eq(0)
        start = w_start
        m.d.comb += self.start.eq(start)
        for name, reg in regs.items():
            with m.If(w_pend & (w_word == word[name])):
                for i in range(4):
                    with m.If(w_strb[i]):
                        m.d.sync += reg[8 * i:8 * i + 8].eq(w_data[8 * i:8 * i + 8])
            if name == "CTRL":
                m.d.sync += reg[0].eq(0)          # START is a pulse, never stored
        # CTRL shows the options being written in the cycle of the START pulse
        ctrl_next = Signal(32)
        m.d.comb += ctrl_next.eq(regs["CTRL"])
        with m.If(w_pend & (w_word == word["CTRL"])):
            for i in range(4):
                with m.If(w_strb[i]):
                    m.d.comb += ctrl_next[8 * i:8 * i + 8].eq(w_data[8 * i:8 * i + 8])
        m.d.comb += self.ctrl.eq(ctrl_next)
        clear_err = Signal(self._n_err)
        with m.If(w_pend & (w_word == word["ERROR"]) & w_strb[0]):
            m.d.comb += clear_err.eq(w_data[:self._n_err])
        m.d.sync += error.eq((error & ~clear_err) | self.err)
        # a layer start restarts the counters with that clock's events (a refused START, or
        # one with bad registers, leaves them alone)
        for i, cnt in enumerate(counters.values()):
            with m.If(self.started):
                m.d.sync += cnt.eq(self.ev[i])
            with m.Elif(self.ev[i]):
                m.d.sync += cnt.eq(cnt + 1)

        # STATUS (field order of the map) and the interrupt it drives through IRQ_EN
        status = Signal(len(by_name["STATUS"].fields))
        m.d.comb += status.eq(Cat(self.busy, self.done, error.any(), self.irq))
        assert [f.name for f in by_name["STATUS"].fields] == ["BUSY", "DONE", "ERROR", "IRQ"]
        irq_en = by_name["IRQ_EN"]
        enabled = [status[by_name["STATUS"].field(f.name).lsb] & regs["IRQ_EN"][f.lsb]
                   for f in irq_en.fields]
        m.d.sync += self.irq.eq(Cat(*enabled).any())

        # read channel
        values = dict(resets)
        values["STATUS"] = status
        values["ERROR"] = error
        values.update(regs)
        values.update(counters)
        # three clocks per read: the address is registered, then decoded into one select flip-flop
        # per register, then the selected value is picked by an AND-OR tree, so that no path
        # crosses the whole read multiplexer (and the stages cost 1 flip-flop per register, not
        # one per data bit)
        by_word = {reg.offset >> 2: values.get(reg.name, 0) for reg in registers}
        rvalid = Signal()
        rstage = Signal(2)                         # one-hot: address held, address decoded
        rdata = Signal(32)
        raddr = Signal(abits)
        rsel = {w: Signal(name=f"rsel{w}") for w in by_word}
        idle = ~rvalid & ~rstage.any()
        m.d.comb += [bus.arready.eq(idle), bus.rvalid.eq(rvalid),
                     bus.rdata.eq(rdata), bus.rresp.eq(0)]
        m.d.sync += rstage.eq(Cat(bus.arvalid & idle, rstage[0]))
        with m.If(bus.arvalid & idle):
            m.d.sync += raddr.eq(bus.araddr[2:CSR_ADDR_WIDTH])
        for w, sel in rsel.items():
            m.d.sync += sel.eq(~raddr.any() if w == 0 else raddr == w)   # (lints clean)
        picked = 0
        for w, sel in rsel.items():
            picked = picked | Mux(sel, by_word[w], 0)
        with m.If(rstage[1]):
            m.d.sync += [rvalid.eq(1), rdata.eq(picked)]
        with m.Elif(rvalid & bus.rready):
            m.d.sync += rvalid.eq(0)
        assert abits > 0
        return m
