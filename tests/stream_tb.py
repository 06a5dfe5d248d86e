"""Amaranth testbench pieces for a design with a ``lib.stream`` input ``i`` of ``{x, w, last}``
beats and a stream output ``o`` (the baseline MAC arrays of ``boards.fpmac`` and
``boards.intmac``): a producer with random gaps, a consumer with random stalls, both bounded so
that a deadlock fails a test instead of hanging it. ``rng``: anything with ``random()``."""

from __future__ import annotations

from amaranth.sim import Simulator


def consumer(o, out: list, *, limit: int, stalls: float, rng, n_out: int | None = None):
    """Testbench: take ``o``'s payloads into ``out`` (``ready`` low with probability
    ``stalls``) for at most ``limit`` clocks, or until ``n_out`` have come."""
    async def bench(ctx):
        for _ in range(limit):
            if n_out is not None and len(out) == n_out:
                break
            ready = int(not (stalls and rng.random() < stalls))
            ctx.set(o.ready, ready)
            *_, valid, payload = await ctx.tick().sample(o.valid, o.payload)
            if valid and ready:
                out.append(int(payload))
    return bench


def run_beats(dut, beats, n_out: int, *, rng, gaps: float, stalls: float, limit: int) -> list:
    """Feed ``(x, w, last)`` beats to ``dut.i`` (a gap before a beat with probability ``gaps``)
    and return the first ``n_out`` payloads of ``dut.o``."""
    out = []

    async def producer(ctx):
        for x, w, last in beats:
            while gaps and rng.random() < gaps:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.payload, {"x": x, "w": w, "last": last})
            ctx.set(dut.i.valid, 1)
            for _ in range(limit):
                *_, ready = await ctx.tick().sample(dut.i.ready)
                if ready:
                    break
            else:
                return
        ctx.set(dut.i.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer(dut.o, out, limit=limit, stalls=stalls, rng=rng, n_out=n_out))
    sim.run()
    return out
