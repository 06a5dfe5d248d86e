"""Harness: the register block's semantics (:class:`hw.csr.CSRBlock`), black box, bounded.

Every input is free (bus requests, ``busy``, ``done``, ``err``, ``ev``, ``started``), under an
environment that follows AXI4-Lite (a request's valid held and its address/data/strobes stable
until taken), runs one transaction at a time, and changes ``busy``, ``done``, ``err``, ``ev``
and ``started`` only while no transaction is in flight (so that the moment a write takes
effect inside its transaction does not matter). A shadow register file follows the register
map (``contract.array.REGISTERS``) as documented, and the harness asserts:

* a read returns: the last value written to an ``rw`` register, byte by byte as its strobes
  selected (``CTRL`` reads its ``START`` bit as 0); the constant of a read-only identification
  register; ``STATUS`` = ``busy``, ``done``, any ``ERROR`` bit; the ``ERROR`` bits set by
  ``err`` pulses and not yet cleared by writing 1 to them (``rw1c``; writing 0 keeps a bit, and
  a write never sets one); each counter's ``ev`` pulses since the last ``started`` (counting
  that clock's); 0 for an unmapped address; writes to read-only, counter and unmapped
  addresses change nothing;
* a write to ``CTRL`` with ``START`` (byte 0 strobed, bit 0 set) gives exactly one ``start``
  pulse during its transaction, any other write none, and in the clock of the pulse ``ctrl``
  shows the options being written;
* ``bvalid`` only for a write whose address and data were taken, ``rvalid`` only for a taken
  read address, both ``OKAY``;
* ``irq`` is ``STATUS & IRQ_EN`` (``DONE``, ``ERROR``) of the clock before, once nothing has
  changed for a clock.

Proved by SAT bounded model checking from reset (:func:`hw.formal.run_sat` ``seq``).

``fault`` (:data:`REGISTER_FAULTS`) breaks the block at its boundary, for the tests that check
that the proof can fail: ``strobe`` (the block sees every byte strobed), ``err`` (it never sees
an ``err`` pulse), ``ev`` (counter 0 never sees its event), ``start`` (it sees bit 0 set in
every ``CTRL`` write), ``restart`` (it sees ``started`` at every ``START``, the counters' old
bug), ``rdata`` (one bit of what it answers is flipped).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring

from contract.array import CSR_ADDR_WIDTH, REGISTERS, ArrayConfig

from ..csr import CSRBlock

__all__ = ["RegisterBlockProof", "REGISTER_FAULTS"]

REGISTER_FAULTS = ("strobe", "err", "ev", "start", "restart", "rdata")


def _merge(old, data, strb):
    return Cat(*(Mux(strb[i], data[8 * i:8 * i + 8], old[8 * i:8 * i + 8]) for i in range(4)))


class RegisterBlockProof(wiring.Component):
    """Harness of :class:`hw.csr.CSRBlock` for ``config`` (see the module docstring); its
    ports are the block's, free inputs of the proof."""

    def __init__(self, *, config, fault=None):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        if fault is not None and fault not in REGISTER_FAULTS:
            raise ValueError(f"fault must be None or one of {', '.join(REGISTER_FAULTS)}, "
                             f"not {fault!r}")
        self._config, self._fault = config, fault
        self._dut = CSRBlock(config=config)
        super().__init__(self._dut.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self._dut
        fault, cfg = self._fault, self._config
        bus, dbus = self.bus, dut.bus
        # -- the block, its inputs passed through (or broken) --------------------------------
        word = {r.name: r.offset >> 2 for r in REGISTERS}
        ctrl_w = bus.awaddr[2:CSR_ADDR_WIDTH] == word["CTRL"]
        m.d.comb += [
            dbus.awaddr.eq(bus.awaddr), dbus.awvalid.eq(bus.awvalid),
            dbus.wdata.eq(bus.wdata | ctrl_w if fault == "start" else bus.wdata),
            dbus.wstrb.eq(0xF if fault == "strobe" else bus.wstrb),
            dbus.wvalid.eq(bus.wvalid), dbus.bready.eq(bus.bready),
            dbus.araddr.eq(bus.araddr), dbus.arvalid.eq(bus.arvalid),
            dbus.rready.eq(bus.rready),
            bus.awready.eq(dbus.awready), bus.wready.eq(dbus.wready),
            bus.bvalid.eq(dbus.bvalid), bus.bresp.eq(dbus.bresp),
            bus.arready.eq(dbus.arready), bus.rvalid.eq(dbus.rvalid),
            bus.rdata.eq(dbus.rdata ^ (fault == "rdata")), bus.rresp.eq(dbus.rresp),
            dut.busy.eq(self.busy), dut.done.eq(self.done),
            dut.err.eq(0 if fault == "err" else self.err),
            dut.ev.eq(self.ev & ~Const(fault == "ev", len(self.ev))),
            dut.started.eq(self.started | dut.start if fault == "restart" else self.started),
            self.start.eq(dut.start), self.irq.eq(dut.irq),
        ]
        for name in ("ctrl", "n", "k", "m", "e0", "irq_en"):
            if hasattr(dut, name):
                m.d.comb += getattr(self, name).eq(getattr(dut, name))

        # -- environment -------------------------------------------------------------------
        def hold(valid, ready, payload, name):
            stalled = Signal(name=f"{name}_stalled")
            held = Signal(len(payload), name=f"{name}_held")
            m.d.sync += [stalled.eq(valid & ~ready), held.eq(payload)]
            with m.If(stalled):
                m.d.comb += [Assume(valid), Assume(payload == held)]

        hold(bus.awvalid, bus.awready, bus.awaddr, "aw")
        hold(bus.wvalid, bus.wready, Cat(bus.wdata, bus.wstrb), "w")
        hold(bus.arvalid, bus.arready, bus.araddr, "ar")
        aw_taken, w_taken, ar_taken = Signal(), Signal(), Signal()
        w_open = Signal()                 # a write presented and not yet answered
        r_open = Signal()
        aw_hs = bus.awvalid & bus.awready
        w_hs = bus.wvalid & bus.wready
        b_hs = bus.bvalid & bus.bready
        ar_hs = bus.arvalid & bus.arready
        r_hs = bus.rvalid & bus.rready
        w_open_now = w_open | bus.awvalid | bus.wvalid
        r_open_now = r_open | bus.arvalid
        m.d.comb += Assume(~(w_open_now & r_open_now))                 # one at a time
        with m.If(b_hs):
            m.d.sync += [w_open.eq(0), aw_taken.eq(0), w_taken.eq(0)]
        with m.Elif(w_open_now):
            m.d.sync += w_open.eq(1)
        with m.If(r_hs):
            m.d.sync += [r_open.eq(0), ar_taken.eq(0)]
        with m.Elif(r_open_now):
            m.d.sync += r_open.eq(1)
        with m.If(w_open):                                              # one write at a time
            m.d.comb += [Assume(~bus.awvalid | ~aw_taken), Assume(~bus.wvalid | ~w_taken)]
        with m.If(r_open):
            m.d.comb += Assume(~bus.arvalid | ~ar_taken)
        quiet = ~w_open_now & ~r_open_now & ~w_open & ~r_open
        busy_q, done_q = Signal(), Signal()
        m.d.sync += [busy_q.eq(self.busy), done_q.eq(self.done)]
        with m.If(~quiet):
            m.d.comb += [Assume(self.err == 0), Assume(self.ev == 0), Assume(~self.started),
                         Assume(self.busy == busy_q), Assume(self.done == done_q)]

        # -- shadow register file ------------------------------------------------------------
        aw_addr = Signal(CSR_ADDR_WIDTH - 2)
        w_data, w_strb = Signal(32), Signal(4)
        ar_addr = Signal(CSR_ADDR_WIDTH - 2)
        with m.If(aw_hs):
            m.d.sync += [aw_taken.eq(1), aw_addr.eq(bus.awaddr[2:])]
        with m.If(w_hs):
            m.d.sync += [w_taken.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        with m.If(ar_hs):
            m.d.sync += [ar_taken.eq(1), ar_addr.eq(bus.araddr[2:])]
        rw = [r for r in REGISTERS if r.access == "rw"]
        rc = [r for r in REGISTERS if r.access == "rc"]
        shadow = {r.name: Signal(32, name=f"shadow_{r.name.lower()}") for r in rw}
        counts = [Signal(32, name=f"shadow_{r.name.lower()}") for r in rc]
        n_err = len(self.err)
        errors = Signal(n_err)
        # the write's address and data, from this clock's handshake or an earlier one
        cur_addr = Mux(aw_taken, aw_addr, bus.awaddr[2:])
        cur_data = Mux(w_taken, w_data, bus.wdata)
        cur_strb = Mux(w_taken, w_strb, bus.wstrb)
        with m.If(b_hs):
            for r in rw:
                with m.If(aw_addr == word[r.name]):
                    value = _merge(shadow[r.name], w_data, w_strb)
                    if r.name == "CTRL":
                        value = Cat(0, value[1:])
                    m.d.sync += shadow[r.name].eq(value)
        clear = Mux(b_hs & (aw_addr == word["ERROR"]) & w_strb[0], w_data[:n_err], 0)
        m.d.sync += errors.eq((errors & ~clear) | self.err)
        for i, cnt in enumerate(counts):
            with m.If(self.started):
                m.d.sync += cnt.eq(self.ev[i])
            with m.Elif(self.ev[i]):
                m.d.sync += cnt.eq(cnt + 1)

        # -- START ---------------------------------------------------------------------------
        starts = Signal(2)
        is_start = (cur_addr == word["CTRL"]) & cur_strb[0] & cur_data[0]
        with m.If(b_hs):
            m.d.sync += starts.eq(0)
        with m.Elif(dut.start):
            m.d.sync += starts.eq(starts + (starts != 3))
        with m.If(dut.start):
            m.d.comb += [
                Assert(w_open & aw_taken & w_taken & is_start,
                       "start pulse outside a START write"),
                Assert(starts == 0, "a second start pulse in one write"),
                Assert(dut.ctrl[1:4] == _merge(shadow["CTRL"], w_data, w_strb)[1:4],
                       "ctrl does not show the options written with START"),
            ]
        with m.If(b_hs):
            m.d.comb += Assert(((starts != 0) | dut.start) == is_start,
                               "a START write without its pulse")

        # -- responses and read data -----------------------------------------------------------
        m.d.comb += [
            Assert(~bus.bvalid | (w_open & aw_taken & w_taken), "bvalid without a write"),
            Assert(~bus.rvalid | (r_open & ar_taken), "rvalid without a read"),
            Assert(~bus.bvalid | (bus.bresp == 0), "bresp not OKAY"),
            Assert(~bus.rvalid | (bus.rresp == 0), "rresp not OKAY"),
        ]
        resets = cfg.register_resets()
        expect = Signal(32)
        mask = Signal(32, init=0xFFFFFFFF)
        with m.Switch(ar_addr):
            for r in REGISTERS:
                with m.Case(r.offset >> 2):
                    if r.name in shadow:
                        m.d.comb += expect.eq(shadow[r.name])
                    elif r.access == "rc":
                        m.d.comb += expect.eq(counts[rc.index(r)])
                    elif r.name == "ERROR":
                        m.d.comb += expect.eq(errors)
                    elif r.name == "STATUS":
                        m.d.comb += [expect.eq(Cat(self.busy, self.done, errors.any())),
                                     mask.eq(0b0111 | ~0xF)]    # (IRQ is checked below)
                    else:
                        m.d.comb += expect.eq(resets[r.name])
            with m.Default():
                m.d.comb += expect.eq(0)
        with m.If(r_hs):
            m.d.comb += Assert((bus.rdata & mask) == (expect & mask),
                               "read data differ from the register map's semantics")
        # irq: one clock after its condition, when nothing moved in the clock before
        status_bits = Cat(self.busy, self.done, errors.any())
        cond = Signal()
        irq_en = shadow["IRQ_EN"]
        m.d.comb += cond.eq((status_bits[1] & irq_en[1]) | (status_bits[2] & irq_en[2]))
        cond_q, calm = Signal(), Signal()
        m.d.sync += [cond_q.eq(cond), calm.eq(quiet & (self.err == 0))]
        with m.If(calm & quiet):
            m.d.comb += Assert(self.irq == cond_q, "irq differs from STATUS & IRQ_EN")
        return m
