# amaranth: UnusedElaboratable=no
"""The level interrupt of the array top (``irq``, register ``IRQ_EN``), in the Amaranth
simulator: it rises when an enabled ``STATUS`` condition (``DONE``, ``ERROR``) holds, falls
when the condition or its enable is cleared, and stays low while masked."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator
from amaranth_axil import axil_read, axil_write, put_stream  # noqa: E402  (tests/ helper)

from contract.array import (
    CTRL,
    ERROR,
    IRQ_EN,
    REGISTER_BY_NAME,
    STATUS,
    ArrayConfig,
    activation_stream,
    weight_stream,
)
from hw.array_top import ArrayTop

REG = {name: r.offset for name, r in REGISTER_BY_NAME.items()}


def test_irq_bits_match_the_register_map():
    status = REGISTER_BY_NAME["STATUS"]
    for f in REGISTER_BY_NAME["IRQ_EN"].fields:
        assert f.lsb == status.field(f.name).lsb       # IRQ_EN enables STATUS's bit of the name
        assert IRQ_EN[f.name] == f.mask == STATUS[f.name]
    assert STATUS["IRQ"] == status.field("IRQ").mask


def _layer(cfg, rng, n, k, m):
    x = rng.integers(0, 0x7C00, (n, k)).astype(np.int64)          # finite fp16
    codes = rng.integers(0, 1 << cfg.wbits, (m, k)).astype(np.int64)
    return (weight_stream(cfg, codes, 0, None), activation_stream(cfg, x, m), n * m)


def test_irq_rises_clears_and_is_masked():
    cfg = ArrayConfig(rows=2, cols=2, depth=16)
    rng = np.random.default_rng(4)
    n, k, m = 3, 5, 3
    wgt, act, count = _layer(cfg, rng, n, k, m)
    dut = ArrayTop(config=cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    log = {"clock": 0, "irq": [], "events": {}}

    def mark(name):
        log["events"][name] = log["clock"]

    async def monitor(ctx):
        async for _, _, irq in ctx.tick().sample(dut.irq):
            log["irq"].append(irq)
            log["clock"] += 1

    def irq_since(name):
        # irq before each clock edge after the event (the sample at the event's own edge may
        # show the value from before it)
        return log["irq"][log["events"][name] + 1:]

    async def wait_irq(ctx, value, limit=20):
        for _ in range(limit):
            if ctx.get(dut.irq) == value:
                return True
            await ctx.tick()
        return False

    async def start(ctx, bus, n, k, m):
        for name, v in (("N", n), ("K", k), ("M", m), ("E0", 0)):
            await axil_write(ctx, bus, REG[name], v)
        await axil_write(ctx, bus, REG["CTRL"], CTRL["START"])

    async def host(ctx):
        bus = dut.s_axil
        assert ctx.get(dut.irq) == 0
        assert await axil_read(ctx, bus, REG["IRQ_EN"]) == 0                 # reset: masked
        # 1. DONE enabled: low while the layer runs, high once DONE is set
        await axil_write(ctx, bus, REG["IRQ_EN"], IRQ_EN["DONE"] | IRQ_EN["ERROR"])
        assert await axil_read(ctx, bus, REG["IRQ_EN"]) == IRQ_EN["DONE"] | IRQ_EN["ERROR"]
        await start(ctx, bus, n, k, m)
        mark("start")
        await put_stream(ctx, dut.s_axis_wgt, wgt, rng, 0)
        await put_stream(ctx, dut.s_axis_act, act, rng, 0)
        ctx.set(dut.m_axis_res.tready, 1)
        for _ in range(count):
            await ctx.tick().until(dut.m_axis_res.tvalid)
        ctx.set(dut.m_axis_res.tready, 0)
        mark("last_result")
        assert not any(irq_since("start")), "irq high before the layer was done"
        assert await wait_irq(ctx, 1, 5), "irq did not rise within 5 clocks of the last result"
        status = await axil_read(ctx, bus, REG["STATUS"])
        assert status & STATUS["DONE"] and status & STATUS["IRQ"], f"STATUS {status:#x}"
        for _ in range(10):                                                   # a level: holds
            await ctx.tick()
            assert ctx.get(dut.irq) == 1
        # 2. masking DONE lowers it; DONE itself stays set
        await axil_write(ctx, bus, REG["IRQ_EN"], IRQ_EN["ERROR"])
        assert await wait_irq(ctx, 0, 2), "irq still high after DONE was masked"
        mark("masked")
        status = await axil_read(ctx, bus, REG["STATUS"])
        assert status & STATUS["DONE"] and not status & STATUS["IRQ"], f"STATUS {status:#x}"
        assert not any(irq_since("masked"))
        # 3. enabled again: high again at once (the condition still holds)
        await axil_write(ctx, bus, REG["IRQ_EN"], IRQ_EN["DONE"])
        assert await wait_irq(ctx, 1, 2), "irq did not rise when DONE was enabled again"
        # 4. START clears DONE: irq falls while the next layer runs
        await start(ctx, bus, 1, 4, 1)                   # no streams: stays BUSY
        assert await wait_irq(ctx, 0, 3), "irq still high after START"
        mark("second_start")
        status = await axil_read(ctx, bus, REG["STATUS"])
        assert status & STATUS["BUSY"] and not status & STATUS["DONE"], f"STATUS {status:#x}"
        # 5. ERROR while masked (only DONE enabled): START while BUSY sets START_BUSY, no irq
        await axil_write(ctx, bus, REG["CTRL"], CTRL["START"])
        error = await axil_read(ctx, bus, REG["ERROR"])
        assert error == ERROR["START_BUSY"], f"ERROR {error:#x}"
        for _ in range(4):
            await ctx.tick()
        assert not any(irq_since("second_start")), "irq rose for a masked ERROR"
        # 6. ERROR enabled: high while the bit is set, low once it is cleared (write 1)
        await axil_write(ctx, bus, REG["IRQ_EN"], IRQ_EN["ERROR"])
        assert await wait_irq(ctx, 1, 2), "irq did not rise for an enabled ERROR"
        status = await axil_read(ctx, bus, REG["STATUS"])
        assert status & STATUS["ERROR"] and status & STATUS["IRQ"], f"STATUS {status:#x}"
        await axil_write(ctx, bus, REG["ERROR"], error)
        assert await wait_irq(ctx, 0, 2), "irq still high after ERROR was cleared"
        mark("cleared")
        for _ in range(6):
            await ctx.tick()
        assert not any(irq_since("cleared"))

    sim.add_testbench(host)
    sim.add_testbench(monitor, background=True)
    sim.run_until(2e-3)
    assert "cleared" in log["events"], "the test did not reach its end"


def test_irq_on_a_bad_start():
    """A START with a bad shape sets ERROR.K_RANGE and, with ERROR enabled, raises irq."""
    cfg = ArrayConfig(rows=2, cols=2, depth=16)
    dut = ArrayTop(config=cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    out = {}

    async def host(ctx):
        bus = dut.s_axil
        await axil_write(ctx, bus, REG["IRQ_EN"], IRQ_EN["ERROR"])
        for name, v in (("N", 1), ("K", 0), ("M", 1)):
            await axil_write(ctx, bus, REG[name], v)
        await axil_write(ctx, bus, REG["CTRL"], CTRL["START"])
        for _ in range(5):
            if ctx.get(dut.irq):
                break
            await ctx.tick()
        out["irq"] = ctx.get(dut.irq)
        out["error"] = await axil_read(ctx, bus, REG["ERROR"])
        await axil_write(ctx, bus, REG["ERROR"], out["error"])
        await ctx.tick()
        out["after"] = ctx.get(dut.irq)

    sim.add_testbench(host)
    sim.run()
    assert out == {"irq": 1, "error": ERROR["K_RANGE"], "after": 0}


def test_irq_in_header_and_metadata():
    from densehw.emit import c_header, metadata

    cfg = ArrayConfig(rows=2, cols=2, depth=16)
    header = c_header(cfg)
    for text in ("#define DENSEHW_REG_IRQ_EN 0x2Cu", "#define DENSEHW_IRQ_EN_DONE_MASK 0x00000002u",
                 "#define DENSEHW_IRQ_EN_ERROR_MASK 0x00000004u",
                 "#define DENSEHW_STATUS_IRQ_MASK 0x00000008u"):
        assert text in header, text
    meta = metadata(cfg)
    assert {"name": "irq", "dir": "out", "width": 1} in meta["ports"]
    reg = next(r for r in meta["registers"] if r["name"] == "IRQ_EN")
    assert (reg["offset"], reg["access"], reg["reset"]) == (0x2C, "rw", 0)
    assert [(f["name"], f["lsb"]) for f in reg["fields"]] == [("DONE", 1), ("ERROR", 2)]
