"""AXI4-Lite and AXI4-Stream host-side helpers for Amaranth-simulator testbenches (async ``ctx``
API)."""


async def axil_write(ctx, bus, addr, data, strb=0xF):
    ctx.set(bus.awaddr, addr)
    ctx.set(bus.wdata, data & 0xFFFFFFFF)
    ctx.set(bus.wstrb, strb)
    ctx.set(bus.awvalid, 1)
    ctx.set(bus.wvalid, 1)
    await ctx.tick().until(bus.awready)
    ctx.set(bus.awvalid, 0)
    ctx.set(bus.wvalid, 0)
    ctx.set(bus.bready, 1)
    await ctx.tick().until(bus.bvalid)
    ctx.set(bus.bready, 0)


async def axil_read(ctx, bus, addr):
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    ctx.set(bus.rready, 1)
    (data,) = await ctx.tick().sample(bus.rdata).until(bus.rvalid)
    ctx.set(bus.rready, 0)
    return data


async def put_stream(ctx, port, beats, rng, stall):
    """Send ``(tdata, tlast)`` beats on an AXI4-Stream input, idling ``tvalid`` with probability
    ``stall`` before each beat."""
    for data, last in beats:
        while stall and rng.random() < stall:
            ctx.set(port.tvalid, 0)
            await ctx.tick()
        ctx.set(port.tdata, data)
        ctx.set(port.tlast, last)
        ctx.set(port.tvalid, 1)
        await ctx.tick().until(port.tready)
        ctx.set(port.tvalid, 0)
