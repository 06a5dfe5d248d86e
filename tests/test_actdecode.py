"""The activation decoder (hw/actdecode.py) against sw.mx on every element pattern and scale:
raw carrier patterns compared bit for bit (zeros, subnormals, NaN, inf, bad scales)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from contract.array import ArrayConfig
from hw.actdecode import ActDecoder
from sw.mx import fold_scales, to_carrier


def _simulate(cfg, lanes):
    dut = ActDecoder(config=cfg)
    out = []

    async def bench(ctx):
        for v in lanes:
            ctx.set(dut.x, int(v))
            out.append(ctx.get(dut.y))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return np.array(out, dtype=np.int64)


@pytest.mark.parametrize("fmt", ["fp8_e4m3fn", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1"])
def test_narrow_without_scales(fmt):
    cfg = ArrayConfig(in_fmt=fmt, out_fmt="fp16")
    x = np.arange(1 << cfg.in_fmt.width)
    got, want = _simulate(cfg, x), to_carrier(x, cfg.in_fmt, cfg.pe_fmt)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{fmt} x={x[bad[0]]:#x}: {got[bad[0]]:#x} != {want[bad[0]]:#x}"


@pytest.mark.parametrize("fmt, window", [("fp8_e4m3fn", (-8, 7)), ("fp8_e5m2", (-8, 7)),
                                         ("fp6_e3m2", (-3, 12)), ("fp6_e2m3", (0, 0)),
                                         ("fp4_e2m1", (-127, 127))])
def test_mx_lanes(fmt, window):
    cfg = ArrayConfig(in_fmt=fmt, out_fmt="fp16", mx_block=32, scale_min=window[0],
                      scale_max=window[1])
    w = cfg.in_fmt.width
    lo, hi = 127 + window[0], 127 + window[1]
    scales = sorted({0, 1, 0xFE, 0xFF, lo, hi, max(lo - 1, 0), min(hi + 1, 0xFF),
                     (lo + hi) // 2, min(lo + 1, hi)})
    x = np.arange(1 << w)
    xs = np.tile(x, (len(scales), 1))
    s = np.array(scales)[:, None] * np.ones((1, (x.size + 31) // 32), dtype=np.int64)
    want, car = fold_scales(xs, s, fmt, scale_min=window[0], scale_max=window[1])
    assert car == cfg.pe_fmt
    lanes = xs | (np.repeat(s, 32, axis=1)[:, :x.size] << w)
    got = _simulate(cfg, lanes.ravel()).reshape(want.shape)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"{fmt} lane {lanes[tuple(bad[0])]:#x}: {got[tuple(bad[0])]:#x} != "
                           f"{want[tuple(bad[0])]:#x}")


def test_saturating_output_maps():
    """hw.narrow_out.saturate / widen against sw.mx.from_carrier / to_carrier on every pattern
    (the e4m3fn carrier's 512, with and without a finite exact sum; e4m3fn's 256)."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from contract import FP8_E4M3FN, carrier_format
    from hw.narrow_out import saturate, widen
    from sw.mx import from_carrier

    car = carrier_format(FP8_E4M3FN)

    class Maps(wiring.Component):
        c: In(car.width)
        b: In(8)
        finite: In(1)
        o: Out(8)
        of: Out(8)
        w: Out(car.width)

        def elaborate(self, platform):
            m = Module()
            m.d.comb += [self.o.eq(saturate(self.c, car, FP8_E4M3FN)),
                         self.of.eq(saturate(self.c, car, FP8_E4M3FN, finite=self.finite)),
                         self.w.eq(widen(self.b, FP8_E4M3FN, car))]
            return m

    dut = Maps()
    got_o, got_w, got_f = [], [], []

    async def bench(ctx):
        for v in range(1 << car.width):
            ctx.set(dut.c, v)
            ctx.set(dut.b, v & 0xFF)
            got_o.append(ctx.get(dut.o))
            got_f.append([ctx.get(dut.of)])
            ctx.set(dut.finite, 1)
            got_f[-1].append(ctx.get(dut.of))
            ctx.set(dut.finite, 0)
            got_w.append(ctx.get(dut.w))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    allc = np.arange(1 << car.width)
    want_o = from_carrier(allc, car, FP8_E4M3FN)
    bad = np.flatnonzero(np.array(got_o) != want_o)
    assert bad.size == 0, f"carrier {bad[0]:#x}: {got_o[bad[0]]:#x} != {want_o[bad[0]]:#x}"
    for finite in (0, 1):
        want_f = from_carrier(allc, car, FP8_E4M3FN, finite=bool(finite))
        got = np.array(got_f)[:, finite]
        bad = np.flatnonzero(got != want_f)
        assert bad.size == 0, (f"carrier {bad[0]:#x} finite={finite}: {got[bad[0]]:#x} != "
                               f"{want_f[bad[0]]:#x}")
    assert list(from_carrier([car.pos_inf, car.neg_inf], car, FP8_E4M3FN, finite=True)) == \
        [0x7E, 0xFE]
    want_w = to_carrier(allc & 0xFF, FP8_E4M3FN, car)
    bad = np.flatnonzero(np.array(got_w) != want_w)
    assert bad.size == 0, f"e4m3fn {bad[0] & 0xFF:#x}: {got_w[bad[0]]:#x} != {want_w[bad[0]]:#x}"
