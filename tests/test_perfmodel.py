# amaranth: UnusedElaboratable=no
"""The cycle-level performance model (``sw.perfmodel``) against the RTL's measured cycles.

Each layer runs on ``hw.array_top.ArrayTop`` in the Amaranth simulator with every stream
always valid/ready (no stalls); the measured count is the ``CYCLES_BUSY`` register, checked
against the testbench's own count from the START write to the last result beat. The model
must be within 5% (it is meant to be exact)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from amaranth_axil import axil_read, axil_write, put_stream  # noqa: E402  (tests/ helper)

from contract.array import CTRL, REGISTER_BY_NAME, ArrayConfig, activation_stream, weight_stream
from hw.array_top import ArrayTop
from sw.perfmodel import layer_cycles, steady_state_cycles

REG = {name: r.offset for name, r in REGISTER_BY_NAME.items()}


def measure_cycles(cfg, n, k, m, *, seed=0, stall=0.0):
    """Run one layer (with no stalls unless ``stall`` > 0: then every stream idles with that
    probability per clock); return ``(CYCLES_BUSY, CYCLES_ACTIVE, tb_cycles)`` where
    ``tb_cycles`` counts clocks from the START handshake to the last result handshake."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 1 << cfg.in_fmt.width, (n, k))
    codes = rng.integers(0, 1 << cfg.wbits, (m, k))
    wgt = weight_stream(cfg, codes, 0)
    act = activation_stream(cfg, x, m)
    dut = ArrayTop(config=cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    clock = {"now": 0, "start": None, "last": None}
    out = {}

    async def counter(ctx):
        async for _ in ctx.tick():
            clock["now"] += 1

    async def sink(ctx):
        port = dut.m_axis_res
        for _ in range(n * m):
            while stall and rng.random() < stall:
                ctx.set(port.tready, 0)
                await ctx.tick()
            ctx.set(port.tready, 1)
            await ctx.tick().until(port.tvalid)
        clock["last"] = clock["now"]

    async def host(ctx):
        bus = dut.s_axil
        for name, v in (("N", n), ("K", k), ("M", m), ("E0", 0)):
            await axil_write(ctx, bus, REG[name], v)
        ctx.set(bus.awaddr, REG["CTRL"])
        ctx.set(bus.wdata, CTRL["START"])
        ctx.set(bus.wstrb, 0xF)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        await ctx.tick().until(bus.awready)
        clock["start"] = clock["now"]
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        ctx.set(bus.bready, 1)
        while clock["last"] is None:
            await ctx.tick()
        for _ in range(20):
            if await axil_read(ctx, bus, REG["STATUS"]) & 2:
                break
        out["busy"] = await axil_read(ctx, bus, REG["CYCLES_BUSY"])
        out["active"] = await axil_read(ctx, bus, REG["CYCLES_ACTIVE"])
        out["error"] = await axil_read(ctx, bus, REG["ERROR"])

    async def watchdog(ctx):
        await ctx.delay(200_000e-6)
        raise AssertionError("simulation did not finish in 200000 cycles")

    async def wgt_source(ctx):
        await put_stream(ctx, dut.s_axis_wgt, wgt, rng, stall)

    async def act_source(ctx):
        await put_stream(ctx, dut.s_axis_act, act, rng, stall)

    sim.add_testbench(counter, background=True)
    sim.add_testbench(wgt_source)
    sim.add_testbench(act_source)
    sim.add_testbench(sink)
    sim.add_testbench(host)
    sim.add_testbench(watchdog, background=True)
    sim.run()
    assert out["error"] == 0, f"ERROR = {out['error']:#x}"
    return out["busy"], out["active"], clock["last"] - clock["start"]


# (config, (N, K, M)): compute-bound, drain-bound (K < rows*cols), weight-load-bound (few N
# tiles), ragged tiles, K = 1, several M tiles so that both banks are reused.
CASES = [
    (dict(rows=2, cols=2, depth=16), (8, 16, 4)),
    (dict(rows=2, cols=2, depth=16), (5, 3, 7)),
    (dict(rows=2, cols=2, depth=64), (2, 64, 6)),
    (dict(rows=2, cols=2, depth=64), (16, 40, 10)),
    (dict(rows=2, cols=3, depth=16, pipeline=1), (7, 1, 5)),
    (dict(rows=3, cols=2, depth=32, wbits=5, in_fmt="bf16"), (9, 32, 9)),
    (dict(rows=4, cols=4, depth=32, wbits=2, in_fmt="fp8_e5m2"), (12, 32, 12)),
    (dict(rows=4, cols=4, depth=64, pipeline=1), (16, 20, 9)),
    # more PEs than the finalizer's latency: the drain must not wait for output credits
    (dict(rows=8, cols=4, depth=32), (16, 8, 8)),
    # "spread": the row aligner's middle register (capture_latency + 1)
    (dict(rows=2, cols=6, depth=32, floorplan="spread"), (6, 24, 13)),
    # ... where the loader waits for a bank the drain releases (release_cut: one clock later)
    (dict(rows=2, cols=6, depth=32, floorplan="spread"), (3, 4, 18)),
]


@pytest.mark.parametrize("cfg_kwargs,shape", CASES,
                         ids=[f"{'x'.join(map(str, s))}-{i}" for i, (_, s) in enumerate(CASES)])
def test_model_matches_rtl(cfg_kwargs, shape):
    cfg = ArrayConfig(**cfg_kwargs)
    n, k, m = shape
    busy, active, tb = measure_cycles(cfg, n, k, m, seed=n * 1000 + k * 10 + m)
    perf = layer_cycles(cfg, n, k, m)
    err = abs(perf.cycles - busy) / busy
    print(f"{cfg.name} N={n} K={k} M={m}: model {perf.cycles}, measured {busy} "
          f"(tb {tb}), error {100 * err:.2f}%")
    # the register and the testbench agree on the layer's length: BUSY rises three clocks
    # after the START handshake (the CSR write register, the sampled inputs, the checks)
    assert abs(tb - busy) <= 3, (tb, busy)
    assert active == perf.active_cycles
    assert err <= 0.05, f"model {perf.cycles} vs measured {busy} ({100 * err:.2f}%)"
    # the model steps the same registers as the RTL: no stalls, no error at all
    assert perf.cycles == busy, f"model {perf.cycles} vs measured {busy}"


def test_model_is_a_lower_bound_under_stalls():
    """With 30% idle clocks on every stream the array can only be slower than the model."""
    cfg = ArrayConfig(rows=2, cols=2, depth=16)
    n, k, m = 6, 12, 5
    busy, active, _ = measure_cycles(cfg, n, k, m, seed=7, stall=0.3)
    perf = layer_cycles(cfg, n, k, m)
    assert active == perf.active_cycles
    assert busy > perf.cycles, (busy, perf.cycles)


def test_model_shape_properties():
    cfg = ArrayConfig(rows=4, cols=4, depth=512)
    big = layer_cycles(cfg, 64, 512, 64)
    # compute-bound with the weights of the next M tile loading in time: close to ideal
    assert big.cycles >= cfg.ideal_cycles(64, 512, 64)
    assert big.utilization > 0.9
    assert big.macs == 64 * 512 * 64
    # a short K is drain-bound: one tile per rows*cols + latency clocks
    short = layer_cycles(cfg, 64, 4, 64)
    assert steady_state_cycles(cfg, 4) > 4 + 1
    assert short.utilization < 0.3
    # more rows of X never cost fewer cycles
    prev = 0
    for n in range(1, 40):
        c = layer_cycles(cfg, n, 32, 8).cycles
        assert c >= prev
        prev = c


def test_model_rejects_bad_input():
    cfg = ArrayConfig(rows=2, cols=2, depth=16)
    with pytest.raises(ValueError, match="K must be in"):
        layer_cycles(cfg, 1, 17, 1)
    with pytest.raises(TypeError, match="ArrayConfig"):
        layer_cycles("fp16", 1, 1, 1)
