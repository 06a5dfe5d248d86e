# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the PE array top (``hw.array_top.ArrayTop``) against the golden
model, bit for bit, through its AXI4-Stream and AXI4-Lite ports."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from amaranth.sim import Simulator
from amaranth_axil import axil_read, axil_write, put_stream  # noqa: E402  (tests/ helper)

from contract import FORMATS, get_format
from contract.array import (
    CTRL,
    ERROR,
    REGISTER_BY_NAME,
    ArrayConfig,
    activation_stream,
    result_order,
    weight_stream,
)
from hw.array import PEArray
from hw.array_top import ArrayTop, generate_array_verilog
from sim.payload import random_floats
from sw.golden import gemm_golden

REG = {name: r.offset for name, r in REGISTER_BY_NAME.items()}


# -- host-side AXI helpers ------------------------------------------------------------------------

async def get_stream(ctx, port, count, rng, stall):
    out = []
    for _ in range(count):
        while stall and rng.random() < stall:
            ctx.set(port.tready, 0)
            await ctx.tick()
        ctx.set(port.tready, 1)
        data, last = await ctx.tick().sample(port.tdata, port.tlast).until(port.tvalid)
        ctx.set(port.tready, 0)
        out.append((data, last))
    return out


# -- data -----------------------------------------------------------------------------------------

def make_layer(rng, cfg, n, k, m, *, p_special=0.02, per_channel=False, bias=True,
               narrow=False):
    x = random_floats(rng, cfg.in_fmt, (n, k), p_special)
    if narrow:       # a few binades only: heavy cancellation, results near the LSB
        f = cfg.in_fmt
        e = rng.integers(f.bias - 2, f.bias + 2, (n, k))
        x = ((rng.integers(0, 2, (n, k)) << (f.width - 1)) | (e << f.frac_bits)
             | rng.integers(0, 1 << f.frac_bits, (n, k))).astype(np.int64)
    codes = rng.integers(0, 1 << cfg.wbits, (m, k)).astype(np.int64)
    if per_channel:
        e0 = rng.integers(cfg.e0_min, cfg.e0_max + 1, m).astype(np.int64)
    else:
        e0 = int(rng.integers(cfg.e0_min, cfg.e0_max + 1))
    b = random_floats(rng, cfg.out_fmt, (m,), p_special) if bias else None
    return x, codes, e0, b


# -- the simulation -------------------------------------------------------------------------------

def run_layers(cfg, layers, *, seed=0, stall=0.0, deadline=200_000, vcd=None):
    """Run layers back to back on one simulated top. Each layer is a dict with x, codes, e0,
    bias (or None), relu, per_channel. Returns per layer ``(results, counters)`` where
    results are ``(tdata, tlast)`` pairs."""
    dut = ArrayTop(config=cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    rng = np.random.default_rng(seed)
    plans = []
    for layer in layers:
        x, codes, e0 = layer["x"], layer["codes"], layer["e0"]
        m = codes.shape[0]
        pc = layer["per_channel"]
        # the header e0 is garbage when not per channel, the bias when disabled: ignored
        hdr_e0 = e0 if pc else rng.integers(-(1 << 31), 1 << 31, m)
        bias_words = layer["bias"]
        if bias_words is None:
            bias_words = rng.integers(0, 1 << cfg.out_fmt.width, m)
        plans.append({
            "wgt": weight_stream(cfg, codes, hdr_e0, bias_words),
            "act": activation_stream(cfg, x, m),
            "count": x.shape[0] * m,
        })
    state = {"go": -1, "res": {}}
    outcome = []

    async def wait_go(ctx, i):
        while state["go"] < i:
            await ctx.tick()

    async def wgt_src(ctx):
        for i, plan in enumerate(plans):
            await wait_go(ctx, i)
            await put_stream(ctx, dut.s_axis_wgt, plan["wgt"], rng, stall)

    async def act_src(ctx):
        for i, plan in enumerate(plans):
            await wait_go(ctx, i)
            await put_stream(ctx, dut.s_axis_act, plan["act"], rng, stall)

    async def res_sink(ctx):
        for i, plan in enumerate(plans):
            await wait_go(ctx, i)
            state["res"][i] = await get_stream(ctx, dut.m_axis_res, plan["count"], rng, stall)

    async def host(ctx):
        bus = dut.s_axil
        for i, layer in enumerate(layers):
            x, codes, e0 = layer["x"], layer["codes"], layer["e0"]
            n, k = x.shape
            m = codes.shape[0]
            pc = layer["per_channel"]
            await axil_write(ctx, bus, REG["N"], n)
            await axil_write(ctx, bus, REG["K"], k)
            await axil_write(ctx, bus, REG["M"], m)
            await axil_write(ctx, bus, REG["E0"], 0 if pc else int(e0))
            ctrl = (CTRL["START"] | (CTRL["RELU"] if layer["relu"] else 0)
                    | (CTRL["BIAS_EN"] if layer["bias"] is not None else 0)
                    | (CTRL["E0_PER_CHANNEL"] if pc else 0))
            await axil_write(ctx, bus, REG["CTRL"], ctrl)
            state["go"] = i
            while i not in state["res"]:
                await ctx.tick()
            for _ in range(200):
                status = await axil_read(ctx, bus, REG["STATUS"])
                if status & 2:
                    break
            counters = {name: await axil_read(ctx, bus, REG[name])
                        for name in ("CYCLES_BUSY", "CYCLES_ACTIVE", "STALL_ACT", "STALL_WGT",
                                     "STALL_RES", "STALL_DRAIN", "ERROR", "STATUS")}
            outcome.append((state["res"][i], counters))
        # nothing more may come out
        ctx.set(dut.m_axis_res.tready, 1)
        for _ in range(8):
            *_, v = await ctx.tick().sample(dut.m_axis_res.tvalid)
            assert not v, "extra result beat after the last layer"

    async def watchdog(ctx):
        await ctx.delay(deadline * 1e-6)
        raise AssertionError(f"simulation did not finish in {deadline} cycles")

    for tb in (host, wgt_src, act_src, res_sink):
        sim.add_testbench(tb)
    sim.add_testbench(watchdog, background=True)
    if vcd:
        with sim.write_vcd(str(vcd)):
            sim.run()
    else:
        sim.run()
    assert len(outcome) == len(layers), f"simulation did not finish in {deadline} cycles"
    return outcome


def check_layer(cfg, layer, results, *, seed):
    x, codes, e0, bias = layer["x"], layer["codes"], layer["e0"], layer["bias"]
    n, k = x.shape
    m = codes.shape[0]
    want = gemm_golden(x, codes, e0, in_fmt=cfg.in_fmt, wbits=cfg.wbits, out_fmt=cfg.out_fmt,
                       bias_bits=bias, relu=layer["relu"], config=cfg.dot_config).numpy()
    order = result_order(cfg, n, k, m)
    assert len(results) == len(order), f"{len(results)} results, expected {len(order)}"
    w = (cfg.out_fmt.width + 3) // 4
    for (nn, mm, last), (got, got_last) in zip(order, results, strict=True):
        if got != want[nn, mm] or got_last != last:
            b = "none" if bias is None else f"{int(bias[mm]):#x}"
            e = e0 if np.ndim(e0) == 0 else e0[mm]
            raise AssertionError(
                f"seed {seed} cfg {cfg.name}: y[{nn},{mm}] = {got:#0{w + 2}x} (tlast {got_last}),"
                f" expected {int(want[nn, mm]):#0{w + 2}x} (tlast {last}); x row "
                f"{[hex(int(v)) for v in x[nn]]}, codes {codes[mm].tolist()}, e0 {e}, bias {b},"
                f" relu {layer['relu']}")


def layer_dict(x, codes, e0, bias, *, relu=False, per_channel=False):
    return {"x": x, "codes": codes, "e0": e0, "bias": bias, "relu": relu,
            "per_channel": per_channel}


# -- tests ----------------------------------------------------------------------------------------

def run_and_check(cfg, layers, *, seed, stall=0.0):
    outcome = run_layers(cfg, layers, seed=seed, stall=stall)
    for layer, (res, counters) in zip(layers, outcome, strict=True):
        check_layer(cfg, layer, res, seed=seed)
        assert counters["ERROR"] == 0, f"seed {seed}: ERROR = {counters['ERROR']:#x}"
        assert counters["STATUS"] & 0b111 == 0b010, f"seed {seed}: STATUS {counters['STATUS']}"
    return outcome


def test_smoke_fp16_2x2():
    cfg = ArrayConfig(rows=2, cols=2, depth=16)
    rng = np.random.default_rng(1)
    x, codes, e0, b = make_layer(rng, cfg, 3, 5, 3)
    (_, counters), = run_and_check(cfg, [layer_dict(x, codes, e0, b)], seed=1)
    assert counters["CYCLES_ACTIVE"] == 2 * 2 * 5       # 2 M tiles x 2 N tiles x K


@pytest.mark.parametrize("fmt,wbits,rows,cols,pipeline", [
    ("fp16", 2, 2, 3, 2),
    ("fp16", 3, 3, 2, 1),
    ("fp16", 5, 2, 2, 2),
    ("fp8_e5m2", 2, 2, 2, 1),
    ("fp8_e5m2", 3, 3, 3, 2),
    ("fp8_e5m2", 4, 2, 3, 2),
    ("fp8_e5m2", 5, 1, 2, 1),
    ("bf16", 3, 2, 2, 2),
])
def test_random_ragged_with_stalls(fmt, wbits, rows, cols, pipeline):
    """Ragged (N, K, M), specials mixed in, 35% stalls on every stream, back-to-back layers
    with different options."""
    seed = zlib.crc32(f"{fmt}-{wbits}-{rows}-{cols}-{pipeline}".encode()) % 10_000
    cfg = ArrayConfig(in_fmt=fmt, wbits=wbits, rows=rows, cols=cols, depth=32,
                      pipeline=pipeline)
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n, k, m) in enumerate([(rows * 2 + 1, 7, cols + 1), (rows - 1 or 1, 32, 2 * cols),
                                   (5, 1, 3)]):
        x, codes, e0, b = make_layer(rng, cfg, n, k, m, p_special=0.05, per_channel=i == 1,
                                     bias=i != 2)
        layers.append(layer_dict(x, codes, e0, b, relu=i == 2, per_channel=i == 1))
    run_and_check(cfg, layers, seed=seed, stall=0.35)


def test_cancellation_and_subnormal_results():
    """Narrow exponent spread: sums cancel down to a few ulps, outputs often subnormal or
    zero (the -0 rule and the sign of underflow)."""
    cfg = ArrayConfig(in_fmt="fp8_e5m2", wbits=2, rows=2, cols=2, depth=16, e0_min=-20,
                      e0_max=-10)
    rng = np.random.default_rng(7)
    layers = []
    for relu in (False, True):
        x, codes, e0, b = make_layer(rng, cfg, 4, 16, 4, narrow=True, bias=False)
        layers.append(layer_dict(x, codes, e0, b, relu=relu))
    run_and_check(cfg, layers, seed=7)


def test_negative_zero_rule():
    """All-(-0) products give -0 (with a -0 bias or none); one +0 product or a +0 bias gives
    +0; padding rows and columns never break the rule."""
    cfg = ArrayConfig(rows=2, cols=2, depth=16)
    f = cfg.in_fmt
    neg0, pos0 = f.sign_mask, 0
    # x = -0 with s = 0 -> -0 product; x = +0 with s = 1 -> -0 product
    x = np.array([[neg0, pos0, neg0], [neg0, neg0, neg0], [pos0, pos0, pos0]], dtype=np.int64)
    codes = np.array([[0, 4, 1], [4, 4, 4], [0, 0, 0]], dtype=np.int64)
    layers = [layer_dict(x, codes, 0, None),
              layer_dict(x, codes, 0, np.array([neg0, neg0, pos0], dtype=np.int64)),
              layer_dict(x, codes, -3, np.array([pos0, neg0, neg0], dtype=np.int64))]
    run_and_check(cfg, layers, seed=0)


def test_specials_dense():
    """Rows full of inf/NaN/extremes: NaN, inf - inf, overflow to inf, ReLU of -inf."""
    cfg = ArrayConfig(rows=2, cols=3, depth=16)
    rng = np.random.default_rng(11)
    layers = []
    for relu in (False, True):
        x, codes, e0, b = make_layer(rng, cfg, 5, 9, 4, p_special=0.3)
        layers.append(layer_dict(x, codes, e0, b, relu=relu))
    run_and_check(cfg, layers, seed=11, stall=0.3)


def test_out_format_differs():
    cfg = ArrayConfig(in_fmt="fp8_e5m2", out_fmt="fp16", wbits=3, rows=2, cols=2, depth=16)
    rng = np.random.default_rng(5)
    x, codes, e0, b = make_layer(rng, cfg, 3, 11, 3, p_special=0.05)
    run_and_check(cfg, [layer_dict(x, codes, e0, b)], seed=5)


def test_utilization_counters():
    """K >= rows*cols and whole tiles: the array consumes one beat per clock once the weights
    are in, so CYCLES_ACTIVE == tiles * K and busy time is close to it."""
    cfg = ArrayConfig(rows=2, cols=2, depth=16)
    rng = np.random.default_rng(3)
    n, k, m = 8, 16, 4
    x, codes, e0, b = make_layer(rng, cfg, n, k, m)
    (_, c), = run_and_check(cfg, [layer_dict(x, codes, e0, b)], seed=3)
    tiles = (n // 2) * (m // 2)
    assert c["CYCLES_ACTIVE"] == tiles * k
    assert c["STALL_DRAIN"] == 0
    # a tile takes K + 1 clocks (one restart bubble); plus the first weight tile's load
    # (2 channels of 2 header words, 1 code word, K codes) and the fill/drain latencies
    load = 2 * (k + 3)
    fill = cfg.capture_latency + cfg.rows * cfg.cols + cfg.final_latency + 4
    assert tiles * (k + 1) <= c["CYCLES_BUSY"] <= tiles * (k + 1) + load + fill, c


def test_without_counters():
    """``counters=False`` (the iCEBreaker image): the same results, bit for bit, and the counter
    registers read 0."""
    cfg = ArrayConfig(rows=2, cols=2, depth=16, counters=False)
    rng = np.random.default_rng(4)
    x, codes, e0, b = make_layer(rng, cfg, 3, 5, 3)
    (_, c), = run_and_check(cfg, [layer_dict(x, codes, e0, b)], seed=4)
    assert all(c[name] == 0 for name in ("CYCLES_BUSY", "CYCLES_ACTIVE", "STALL_ACT",
                                         "STALL_WGT", "STALL_RES", "STALL_DRAIN")), c
    assert cfg.name != ArrayConfig(rows=2, cols=2, depth=16).name
    assert ArrayConfig.from_dict(cfg.to_dict()) == cfg
    assert "counters" not in ArrayConfig().to_dict()       # (the names of the others stay)


def _start_errors(cfg, n, k, m, e0, ctrl_extra=0):
    dut = ArrayTop(config=cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    out = {}

    async def host(ctx):
        bus = dut.s_axil
        for name, v in (("N", n), ("K", k), ("M", m), ("E0", e0)):
            await axil_write(ctx, bus, REG[name], v)
        await axil_write(ctx, bus, REG["CTRL"], CTRL["START"] | ctrl_extra)
        out["status"] = await axil_read(ctx, bus, REG["STATUS"])
        out["error"] = await axil_read(ctx, bus, REG["ERROR"])
        await axil_write(ctx, bus, REG["ERROR"], out["error"])
        out["cleared"] = await axil_read(ctx, bus, REG["ERROR"])
        out["id"] = {name: await axil_read(ctx, bus, REG[name])
                     for name in ("ID", "VERSION", "GEOMETRY", "DEPTH", "FORMATS", "E0_RANGE")}

    sim.add_testbench(host)
    sim.run()
    return out


@pytest.mark.parametrize("n,k,m,e0,bit", [
    (1, 0, 1, 0, "K_RANGE"), (1, 17, 1, 0, "K_RANGE"), (0, 4, 1, 0, "SHAPE"),
    (1, 4, 0, 0, "SHAPE"), (1, 4, 1, 8, "E0_RANGE"), (1, 4, 1, -9 & 0xFFFFFFFF, "E0_RANGE"),
    (1, 4, 1, 0x107, "E0_RANGE"), (1 << 24, 4, 1, 0, "SHAPE"), (1, 4, 1 << 24, 0, "SHAPE"),
    (1, 0x10004, 1, 0, "K_RANGE"), (1, 32, 1, 0, "K_RANGE"),
])
def test_start_errors(n, k, m, e0, bit):
    cfg = ArrayConfig(rows=2, cols=2, depth=16)
    out = _start_errors(cfg, n, k, m, e0)
    assert out["error"] == ERROR[bit]
    assert out["status"] == 0b100                          # not busy, not done, error
    assert out["cleared"] == 0
    resets = cfg.register_resets()
    assert out["id"] == {name: resets[name] for name in out["id"]}


def _start_pulses(cfg, gaps, *, k=4):
    """Drive the core's START directly: a valid layer (N = M = 1, K = ``k``) started by a pulse,
    then one more pulse after each clock count in ``gaps``; no streams, so the layer stays busy.
    Returns the ERROR pulses seen (as ints, one per clock with any bit set) and BUSY at the end."""
    dut = PEArray(config=cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    out = {"errors": []}

    async def host(ctx):
        for port, v in ((dut.n, 1), (dut.k, k), (dut.m, 1), (dut.e0, 0)):
            ctx.set(port, v)
        for gap in (0, *gaps):
            for _ in range(gap):
                await ctx.tick()
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
        for _ in range(12):
            await ctx.tick()
        out["busy"] = ctx.get(dut.busy)

    async def watch(ctx):
        async for _, _, err in ctx.tick().sample(dut.err):
            if err:
                out["errors"].append(err)

    sim.add_testbench(host)
    sim.add_testbench(watch, background=True)
    sim.run()
    return out


@pytest.mark.parametrize("floorplan", ["compact", "spread"])
@pytest.mark.parametrize("gap", [0, 1, 2, 6])
def test_start_pulses_while_starting(floorplan, gap):
    """A second START pulse while the first one's layer is starting or running (the next clock
    on) is refused with one START_BUSY pulse, and the first layer goes on ("spread" decides
    the start a clock ahead, into a register: a start already decided counts as busy)."""
    cfg = ArrayConfig(rows=2, cols=5, depth=16, floorplan=floorplan)
    out = _start_pulses(cfg, [gap])
    assert out["errors"] == [ERROR["START_BUSY"]], (gap, out["errors"])
    assert out["busy"] == 1


@pytest.mark.parametrize("floorplan", ["compact", "spread"])
def test_start_pulse_with_bad_arguments_does_not_start(floorplan):
    """A START whose K is out of range sets K_RANGE only, and the core stays idle."""
    cfg = ArrayConfig(rows=2, cols=5, depth=16, floorplan=floorplan)
    out = _start_pulses(cfg, [], k=0)
    assert out["errors"] == [ERROR["K_RANGE"]]
    assert out["busy"] == 0


def _run_streams(cfg, regs, options, act, wgt, rng):
    """Write ``regs``, START with ``options``, feed the two streams as given (no stalls), take
    ``N*M`` results; then, once BUSY has fallen, read ERROR and STATUS. Returns
    ``{"res", "error", "status"}``."""
    dut = ArrayTop(config=cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    out = {}

    async def host(ctx):
        bus = dut.s_axil
        for name, v in regs.items():
            await axil_write(ctx, bus, REG[name], v)
        await axil_write(ctx, bus, REG["CTRL"], CTRL["START"] | options)
        out["go"] = True
        while "res" not in out:
            await ctx.tick()
        for _ in range(4):                                 # BUSY falls after the last beat
            await ctx.tick()
        out["error"] = await axil_read(ctx, bus, REG["ERROR"])
        out["status"] = await axil_read(ctx, bus, REG["STATUS"])

    async def source(ctx, port, beats):
        while "go" not in out:
            await ctx.tick()
        await put_stream(ctx, port, beats, rng, 0)

    async def sink(ctx):
        while "go" not in out:
            await ctx.tick()
        out["res"] = await get_stream(ctx, dut.m_axis_res, regs["N"] * regs["M"], rng, 0)

    async def wgt_source(ctx):
        await source(ctx, dut.s_axis_wgt, wgt)

    async def act_source(ctx):
        await source(ctx, dut.s_axis_act, act)

    for tb in (host, wgt_source, act_source, sink):
        sim.add_testbench(tb)
    sim.run()
    return out


def test_framing_errors_flagged():
    """A tlast in the wrong place sets the framing bits; the layer still completes by count."""
    cfg = ArrayConfig(rows=2, cols=2, depth=16)
    rng = np.random.default_rng(2)
    x, codes, e0, b = make_layer(rng, cfg, 2, 5, 2)
    layer = layer_dict(x, codes, e0, b)
    act = activation_stream(cfg, x, 2)
    wgt = weight_stream(cfg, codes, e0, b)
    act[1] = (act[1][0], 1)                                # early tlast
    wgt[0] = (wgt[0][0], 1)                                # tlast on a header word
    out = _run_streams(cfg, {"N": 2, "K": 5, "M": 2, "E0": e0}, CTRL["BIAS_EN"], act, wgt,
                       rng)
    check_layer(cfg, layer, out["res"], seed=2)
    assert out["error"] == ERROR["ACT_FRAMING"] | ERROR["WGT_FRAMING"]
    assert out["status"] == 0b110


def _run_with_e0_words(cfg, e0_words):
    """One layer (N = 2, K = 3, M = len(e0_words)) with E0_PER_CHANNEL and the given raw 32-bit
    channel e0 words; returns (ERROR, STATUS, number of results)."""
    rng = np.random.default_rng(5)
    n, k, m = 2, 3, len(e0_words)
    x = random_floats(rng, cfg.in_fmt, (n, k), 0.0)
    codes = rng.integers(0, 1 << cfg.wbits, (m, k))
    wgt = weight_stream(cfg, codes, np.zeros(m, dtype=np.int64))
    # replace each channel's e0 header word (the second word of a channel) with the raw word
    words_per_channel = 2 + -(-k * cfg.wbits // 32)
    for c, word in enumerate(e0_words):
        wgt[c * words_per_channel + 1] = (word & 0xFFFFFFFF, 0)
    act = activation_stream(cfg, x, m)
    out = _run_streams(cfg, {"N": n, "K": k, "M": m, "E0": 0}, CTRL["E0_PER_CHANNEL"], act,
                       wgt, rng)
    return out["error"], out["status"], len(out["res"])


@pytest.mark.parametrize("floorplan", ["compact", "spread"])
@pytest.mark.parametrize("bad", ["above", "below", "high_bits", "none"])
def test_channel_e0_range_error(floorplan, bad):
    """A channel header's e0 outside the configured range sets ERROR.E0_RANGE (the layer still
    completes by count); in-range words at both ends of the range do not ("compact" checks the
    word as it is taken, "spread" over two clocks)."""
    # a range that does not fill its field (e0_bits = 4): the comparisons decide, not the width
    cfg = ArrayConfig(rows=2, cols=2, depth=16, e0_min=-5, e0_max=6, floorplan=floorplan)
    lo, hi = cfg.e0_min, cfg.e0_max
    assert cfg.e0_bits == 4
    words = [lo, hi, 0]
    if bad != "none":
        words[1] = {"above": hi + 1, "below": lo - 1, "high_bits": (1 << 20) | (hi & 0xFF)}[bad]
    error, status, results = _run_with_e0_words(cfg, words)
    assert results == 2 * len(words)
    assert error == (0 if bad == "none" else ERROR["E0_RANGE"]), (bad, hex(error))
    assert status == (0b010 if bad == "none" else 0b110)


def test_verilog_deterministic():
    cfg = ArrayConfig(rows=2, cols=2, depth=16)
    a = generate_array_verilog(cfg)
    b = generate_array_verilog(ArrayConfig.from_dict(cfg.to_dict()))
    assert a == b
    assert "module densehw_array(" in a
    for port in ("s_axis_act__tdata", "s_axis_wgt__tlast", "m_axis_res__tready",
                 "s_axil__awaddr", "s_axil__rdata"):
        assert port in a


@pytest.mark.slow
@pytest.mark.parametrize("fmt", sorted(n for n, f in FORMATS.items() if f.is_ieee))
@pytest.mark.parametrize("wbits", [2, 3, 4, 5])
def test_sweep_slow(fmt, wbits):
    fmt = get_format(fmt)
    seed = wbits * 100 + fmt.width
    cfg = ArrayConfig(in_fmt=fmt, wbits=wbits, rows=3, cols=2, depth=64)
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(3):
        n, k, m = (int(v) for v in rng.integers(1, [10, 65, 8]))
        x, codes, e0, b = make_layer(rng, cfg, n, k, m, p_special=0.03, per_channel=i == 1,
                                     bias=i != 2)
        layers.append(layer_dict(x, codes, e0, b, relu=i == 2, per_channel=i == 1))
    run_and_check(cfg, layers, seed=seed, stall=0.3)


LINT_CONFIGS = {
    "fp16_b3_2x3_p2": ArrayConfig(rows=2, cols=3, depth=64),
    "fp8_b5_1x1_p1": ArrayConfig(in_fmt="fp8_e5m2", wbits=5, rows=1, cols=1, depth=16,
                                 pipeline=1),
    "bf16_fp32_b2_3x2": ArrayConfig(in_fmt="bf16", out_fmt="fp32", wbits=2, rows=3, cols=2,
                                    depth=32),
}


@pytest.mark.parametrize("name", list(LINT_CONFIGS))
def test_verilator_lint_clean(name, tmp_path):
    import shutil
    import subprocess

    from hw.array_top import write_array_verilog
    from hw.gen import VERILATOR_LINT_WAIVERS

    exe = shutil.which("verilator")
    if exe is None:
        pytest.skip("verilator not installed (run `make setup`)")
    path = write_array_verilog(LINT_CONFIGS[name], tmp_path / "densehw_array.v")
    result = subprocess.run(
        [exe, "--lint-only", "-Wall", *VERILATOR_LINT_WAIVERS, "--top-module",
         "densehw_array", path.name], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and "%Warning" not in result.stderr, result.stderr[-4000:]


@pytest.mark.parametrize("carry_copy,floorplan", [(False, "compact"), (True, "compact"),
                                                 (True, "spread")])
def test_pe_products_exhaustive_fp8(carry_copy, floorplan):
    """RowAligner + ShiftPE (pipeline 1): every fp8_e5m2 activation times every 3-bit code
    lands in the accumulator as the exact product in units of 2**(e0 + lsb_exp), with the
    contract's flags (also with the pending carries read from their copy, and with two
    registers per pending carry, "spread")."""
    from fractions import Fraction

    from amaranth.hdl import Module

    from hw.pe import RowAligner, ShiftPE, pe_sum

    cfg = ArrayConfig(in_fmt="fp8_e5m2", wbits=3, rows=1, cols=1, depth=16, pipeline=1,
                      floorplan=floorplan)
    assert cfg.pe_pieces == 2
    f = cfg.in_fmt
    m = Module()
    m.submodules.al = al = RowAligner(config=cfg)
    m.submodules.pe = pe = ShiftPE(config=cfg, carry_copy=carry_copy)
    m.d.comb += pe.row.eq(al.o)
    sim = Simulator(m)
    sim.add_clock(1e-6)
    bad = []

    async def tb(ctx):
        for x in range(1 << f.width):
            for code in range(1 << cfg.wbits):
                ctx.set(pe.restart, 1)
                ctx.set(pe.valid, 0)
                ctx.set(al.x, 0)
                await ctx.tick()
                ctx.set(pe.restart, 0)
                ctx.set(pe.valid, 1)
                ctx.set(al.x, x)
                ctx.set(pe.code, code)
                await ctx.tick()
                ctx.set(pe.valid, 0)
                ctx.set(al.x, 0)
                flags = ctx.get(pe.flags)
                acc = pe_sum(cfg, ctx.get(pe.acc) & ((1 << cfg.pe_acc_width) - 1),
                             ctx.get(pe.carries))
                s, p = code >> (cfg.wbits - 1), code & cfg.pmax
                psign = ((x >> (f.width - 1)) ^ s) & 1
                if f.is_nan(x):
                    want = (0, 1, 0, 0, 0)
                elif f.is_inf(x):
                    want = (0, 0, 1 - psign, psign, 0)
                else:
                    v = f.to_fraction(x) * (-1 if s else 1) * 2 ** p / Fraction(2) ** f.lsb_exp
                    zero = v == 0
                    want = (int(v), 0, 0, 0, int(zero and psign == 1))
                got = (acc if not (f.is_nan(x) or f.is_inf(x)) else 0, flags.nan, flags.pinf,
                       flags.ninf, flags.neg0)
                if got != want:
                    bad.append((hex(x), code, got, want))

    sim.add_testbench(tb)
    sim.run()
    assert not bad, f"{len(bad)} mismatches, first: x, code, (acc, nan, pinf, ninf, neg0) " \
                    f"got / expected: {bad[:3]}"


def test_rounding_at_the_overflow_boundary():
    """Sums around the largest finite fp16 value: below, exactly at and above the rounding
    midpoint to infinity (65520), with the significand's increment carrying into the exponent
    field (the rounder computes overflow beside its carry chain), in both signs; plus a carry
    into the exponent that stays finite (2047 + 0.5 rounds to 2048)."""
    from fractions import Fraction

    from contract import FP16

    cfg = ArrayConfig(rows=2, cols=2, depth=16)
    big = FP16.from_fraction(65504)
    # x row 0: [65504, 16, 0]; row 1: [2047, 0.5, 0]  (codes: +2**0 for every weight, e0 = 0)
    x = np.array([[big, FP16.from_fraction(16), 0],
                  [FP16.from_fraction(2047), FP16.from_fraction(Fraction(1, 2)), 0]],
                 dtype=np.int64)
    codes = np.zeros((4, 3), dtype=np.int64)            # s = 0, p = 0
    # channel biases shift the totals across the boundaries
    bias = np.array([FP16.from_fraction(-1), 0, FP16.from_fraction(-17),
                     FP16.from_fraction(-2048 * 2)], dtype=np.int64)
    neg = x.copy()
    neg[:, :2] |= 1 << 15                                # the same sums, negative
    layers = [layer_dict(x, codes, 0, bias), layer_dict(neg, codes, 0, bias)]
    run_and_check(cfg, layers, seed=0)
    want = gemm_golden(x, codes, 0, in_fmt=cfg.in_fmt, wbits=cfg.wbits, bias_bits=bias,
                       config=cfg.dot_config).numpy()
    # the cases the test is about are really there: inf, the largest finite, a finite carry
    assert FP16.pos_inf in want[0] and big in want[0]
    assert FP16.from_fraction(2048) in want[1]


def test_shift_pe_rejects_a_non_bool_carry_copy():
    from hw.pe import ShiftPE

    with pytest.raises(TypeError, match="carry_copy must be a bool, not 'yes'"):
        ShiftPE(config=ArrayConfig(), carry_copy="yes")
