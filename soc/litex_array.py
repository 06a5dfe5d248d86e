"""The generated ``densehw_array`` as a LiteX peripheral: its AXI4-Lite register block on the SoC
bus, its three AXI4-Stream ports fed from and drained to main RAM by LiteX's Wishbone DMA cores,
its ``irq`` wired to the CPU.

::

    main RAM --WishboneDMAReader--> Framer(frame words) ----------------------> s_axis_wgt
    main RAM --WishboneDMAReader--> Framer(frame words) --Converter(32->beat)--> s_axis_act
    main RAM <-WishboneDMAWriter <-- zero-extend to 32 bits <--------------------- m_axis_res
    SoC bus (Wishbone) --LiteX's Wishbone-to-AXI-Lite bridge--> s_axil
    irq ----------------------------------------------------------------------> CPU interrupt

The DMA moves 32-bit words in the memory framing of ``densehw_driver.h`` (an activation beat is
``ceil(act_tdata_width / 32)`` words, lane 0 in the lowest bits; one result per word). The
framers put ``tlast`` on the last word of every frame of ``frame`` words (their CSR), counted
from the start of each transfer: weight frames are one channel, activation frames one tile.

Needs LiteX (``make soc-sim`` installs it); every width comes from the metadata JSON that
``densehw generate`` writes beside the Verilog.
"""

from __future__ import annotations

from litex.gen import LiteXModule
from litex.soc.cores.dma import WishboneDMAReader, WishboneDMAWriter
from litex.soc.interconnect import stream, wishbone
from litex.soc.interconnect.axi import AXILiteInterface
from litex.soc.interconnect.csr import CSRStorage
from migen import ClockSignal, If, Instance, ResetSignal, Signal

__all__ = ["Framer", "DenseHWArray", "IRQLine"]

WORD = 32


class Framer(LiteXModule):
    """A 32-bit word stream passed through with ``last`` on every ``frame``-th word (CSR
    ``frame``); the count restarts while ``restart`` is high (the DMA is disabled)."""

    def __init__(self, restart):
        self.sink = sink = stream.Endpoint([("data", WORD)])
        self.source = source = stream.Endpoint([("data", WORD)])
        self._frame = CSRStorage(32, description="words per frame: tlast on the last one")
        count = Signal(32)
        self.comb += [
            sink.connect(source, omit={"last", "first"}),
            source.last.eq(count == self._frame.storage - 1),
        ]
        self.sync += If(restart, count.eq(0)).Elif(
            source.valid & source.ready,
            If(source.last, count.eq(0)).Else(count.eq(count + 1)))


class IRQLine:
    """What LiteX's interrupt wiring looks for (``module.ev.irq``): here the array's own level
    line, not an EventManager (the array's ``IRQ_EN`` register is the mask)."""

    def __init__(self, irq):
        self.irq = irq


class DenseHWArray(LiteXModule):
    """The array with its DMA engines. Add it with :meth:`attach`.

    ``meta``: the metadata JSON (``densehw_array.json``) of the generated Verilog at
    ``verilog``; ``platform``: the LiteX platform (the Verilog is added to its sources)."""

    def __init__(self, platform, *, meta, verilog):
        cfg = meta["config"]
        act_width = cfg["act_tdata_width"]
        res_width = cfg["res_tdata_width"]
        addr_width = cfg["csr_addr_width"]
        beat_words = -(-act_width // WORD)
        platform.add_source(str(verilog))

        self.axil = axil = AXILiteInterface(data_width=32, address_width=32)
        self.irq_line = Signal()
        self.ev = IRQLine(self.irq_line)

        def bus():
            return wishbone.Interface(data_width=WORD, address_width=32, addressing="word")

        # LiteX's DMA "little" swaps the bytes of each word, "big" passes the bus word as it
        # is: the memory images are little-endian words on a little-endian CPU, so "big".
        self.wgt_dma = WishboneDMAReader(bus(), endianness="big", with_csr=True)
        self.act_dma = WishboneDMAReader(bus(), endianness="big", with_csr=True)
        self.res_dma = WishboneDMAWriter(bus(), endianness="big", with_csr=True)
        self.wgt_framer = Framer(~self.wgt_dma._enable.storage)
        self.act_framer = Framer(~self.act_dma._enable.storage)
        self.comb += [self.wgt_dma.source.connect(self.wgt_framer.sink),
                      self.act_dma.source.connect(self.act_framer.sink)]
        act = self.act_framer.source
        if beat_words > 1:
            self.act_conv = conv = stream.Converter(WORD, WORD * beat_words)
            self.comb += self.act_framer.source.connect(conv.sink)
            act = conv.source
        wgt = self.wgt_framer.source
        res = self.res_dma.sink

        res_data = Signal(res_width)
        res_last = Signal()
        self.comb += [res.data.eq(res_data), res.last.eq(0)]   # the writer counts words
        ports = {
            "i_clk": ClockSignal("sys"), "i_rst": ResetSignal("sys"),
            # AXI4-Lite: the register offset is the low csr_addr_width bits of the address
            "i_s_axil__awaddr": axil.aw.addr[:addr_width], "i_s_axil__awvalid": axil.aw.valid,
            "o_s_axil__awready": axil.aw.ready,
            "i_s_axil__wdata": axil.w.data, "i_s_axil__wstrb": axil.w.strb,
            "i_s_axil__wvalid": axil.w.valid, "o_s_axil__wready": axil.w.ready,
            "o_s_axil__bresp": axil.b.resp, "o_s_axil__bvalid": axil.b.valid,
            "i_s_axil__bready": axil.b.ready,
            "i_s_axil__araddr": axil.ar.addr[:addr_width], "i_s_axil__arvalid": axil.ar.valid,
            "o_s_axil__arready": axil.ar.ready,
            "o_s_axil__rdata": axil.r.data, "o_s_axil__rresp": axil.r.resp,
            "o_s_axil__rvalid": axil.r.valid, "i_s_axil__rready": axil.r.ready,
            # streams
            "i_s_axis_wgt__tdata": wgt.data, "i_s_axis_wgt__tvalid": wgt.valid,
            "o_s_axis_wgt__tready": wgt.ready, "i_s_axis_wgt__tlast": wgt.last,
            "i_s_axis_act__tdata": act.data[:act_width], "i_s_axis_act__tvalid": act.valid,
            "o_s_axis_act__tready": act.ready, "i_s_axis_act__tlast": act.last,
            "o_m_axis_res__tdata": res_data, "o_m_axis_res__tvalid": res.valid,
            "i_m_axis_res__tready": res.ready, "o_m_axis_res__tlast": res_last,
            "o_irq": self.irq_line,
        }
        want = {p["name"] for p in meta["ports"]}
        have = {name.split("_", 1)[1] for name in ports}
        if want != have:
            raise ValueError(f"densehw_array ports {sorted(want ^ have)} differ from the "
                             f"metadata's: regenerate the Verilog with this densehw")
        self.specials += Instance(meta["top"], **ports)

    def attach(self, soc, *, name="densehw", origin=0x9000_0000, size=0x1000):
        """Add the register block at ``origin`` (uncached: in the CPU's IO region), the three
        DMA masters and the interrupt to ``soc`` (``soc.<name>`` must be this module)."""
        from litex.soc.integration.soc import SoCRegion

        soc.bus.add_slave(name, self.axil, SoCRegion(origin=origin, size=size, cached=False))
        for dma in ("wgt_dma", "act_dma", "res_dma"):
            soc.bus.add_master(name=f"{name}_{dma}", master=getattr(self, dma).bus)
        soc.irq.add(name, use_loc_if_exists=True)
