# amaranth: UnusedElaboratable=no
"""The multi-branch array's finalizer (``hw.branches.finalizer``) against the golden model's
rounding (``sw.branches.scale_product``), bit for bit: random and extreme results and scales
(smallest subnormal and largest finite scales, overflow, underflow to signed zero, ties), ReLU,
and the integer path."""

from __future__ import annotations

import random

import pytest
import torch

from contract import BF16, FP8_E4M3FN, FP16, FP32
from contract.branch_array import BranchArrayConfig
from hw.branches.finalizer import BranchFinalizer, corr_width
from sw.branches import _scales, scale_product


def _scale_patterns(fmt, rng, count):
    """Finite positive patterns: the extremes, 1.0 and random ones."""
    top = (fmt.exp_max_field << fmt.frac_bits) - 1            # largest finite
    one = ((fmt.bias) << fmt.frac_bits)
    fixed = [1, 2, (1 << fmt.frac_bits) - 1, 1 << fmt.frac_bits, one, one + 1, top]
    return fixed + [rng.randrange(1, top + 1) for _ in range(count - len(fixed))]


def _results(cfg, rng):
    """Exact results ``Y`` in ``[-depth*Q, depth*Q]``: the extremes, small values, random."""
    big = cfg.depth * cfg.q
    fixed = [0, 1, -1, 2, -2, 3, big, -big, big - 1, -(big - 1)]
    return fixed + [rng.randrange(-big, big + 1) for _ in range(30)] + \
        [rng.randrange(-64, 65) for _ in range(10)]


def _expected(cfg, y, sx, sw, *, scaled, relu):
    if not scaled:
        v = max(y, 0) if relu else y
        return v & ((1 << cfg.res_tdata_width) - 1)
    sig_x, exp_x = _scales(torch.tensor(sx), cfg.scale_fmt, 1, "scale_x")
    sig_w, exp_w = _scales(torch.tensor([sw]), cfg.scale_fmt, 1, "scale_w")
    out = int(scale_product(torch.tensor([[y]], dtype=torch.int64), sig_x[0], exp_x[0], sig_w,
                            exp_w, cfg.out_fmt)[0, 0])
    return 0 if relu and out & cfg.out_fmt.sign_mask else out


CONFIGS = {
    "fp16-out-fp32-scales": dict(wbits=2, abits=8, out_fmt=FP16, scale_fmt=FP32),
    "fp32-out-bf16-scales": dict(wbits=8, abits=8, out_fmt=FP32, scale_fmt=BF16),
    "bf16-out-fp16-scales": dict(wbits=1, abits=1, out_fmt=BF16, scale_fmt=FP16),
    "fp8e4m3fn-out-fp16-scales": dict(wbits=2, abits=4, out_fmt=FP8_E4M3FN, scale_fmt=FP16),
}


def test_golden_e4m3fn_rounding_saturates():
    """``scale_product`` to ``fp8_e4m3fn`` = the exact product rounded once by the contract's
    saturating rule (``FloatFormat.from_fraction``): overflow gives ±448, never a NaN."""
    seed = 2029
    rng = random.Random(seed)
    print(f"seed {seed}")
    cfg = BranchArrayConfig(rows=2, cols=2, lanes=4, depth=64,
                            **CONFIGS["fp8e4m3fn-out-fp16-scales"])
    for y in _results(cfg, rng):
        for sx in _scale_patterns(FP16, rng, 12):
            sw = rng.choice(_scale_patterns(FP16, rng, 12))
            exact = y * FP16.to_fraction(sx) * FP16.to_fraction(sw)
            want = 0 if y == 0 else FP8_E4M3FN.from_fraction(exact)
            got = _expected(cfg, y, sx, sw, scaled=True, relu=False)
            assert got == want, f"seed {seed}: Y={y} sx={sx:#x} sw={sw:#x}: {got:#x} != {want:#x}"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_finalizer_matches_golden_rounding(name):
    from amaranth.sim import Simulator

    seed = 2500 + sorted(CONFIGS).index(name)
    rng = random.Random(seed)
    cfg = BranchArrayConfig(rows=2, cols=2, lanes=4, depth=64, **CONFIGS[name])
    dut = BranchFinalizer(config=cfg)
    # (scaled, relu, scale_x, [(acc, corr-adjusted y, scale_w)]) batches
    batches = []
    for scaled, relu in ((True, False), (True, True), (False, True), (False, False)):
        for sx in _scale_patterns(cfg.scale_fmt, rng, 9 if scaled else 1):
            corr = rng.randrange(0, 1 << corr_width(cfg)) & ~1
            entries = []
            for y in _results(cfg, rng):
                acc = (y + corr) // 2 if (y + corr) % 2 == 0 else None
                if acc is None or not 0 <= acc < 1 << cfg.acc_width:
                    continue
                sw = rng.choice(_scale_patterns(cfg.scale_fmt, rng, 9))
                entries.append((acc, y, sw))
            batches.append((scaled, relu, sx, corr, entries))
    got, want = [], []

    async def bench(ctx):
        for scaled, relu, sx, corr, entries in batches:
            ctx.set(dut.scaled, scaled)
            ctx.set(dut.relu, relu)
            ctx.set(dut.scale_x, sx)
            ctx.set(dut.corr, corr)
            await ctx.tick().repeat(2)                    # the decoded scale_x register
            for j, (acc, y, sw) in enumerate(entries):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"acc": acc, "last": j == len(entries) - 1,
                                        "last_layer": 0, "scale": sw})
                want.append((_expected(cfg, y, sx, sw, scaled=scaled, relu=relu),
                             j == len(entries) - 1, (y, sx, sw, scaled, relu)))
                await ctx.tick()
                if ctx.get(dut.o.valid):
                    got.append((ctx.get(dut.o.payload.bits), ctx.get(dut.o.payload.last)))
            ctx.set(dut.i.valid, 0)
            for _ in range(dut.stages + 1):                # drain before the options change
                await ctx.tick()
                if ctx.get(dut.o.valid):
                    got.append((ctx.get(dut.o.payload.bits), ctx.get(dut.o.payload.last)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    print(f"seed {seed}: {len(want)} results")
    assert len(got) == len(want), (len(got), len(want))
    for (bits, last), (exp_bits, exp_last, case) in zip(got, want, strict=True):
        assert (bits, last) == (exp_bits, exp_last), \
            f"seed {seed}: first mismatch at (Y, sx, sw, scaled, relu) = {case}: got " \
            f"{bits:#x} last={last}, expected {exp_bits:#x} last={exp_last}"


def test_rounding_geometry_covers_every_exponent():
    """The clamp of ``E`` keeps results: below ``e0_min`` every ``P`` is under half the smallest
    subnormal, above ``e0_max`` every nonzero ``P`` overflows."""
    from hw.branches.finalizer import rounding_geometry

    for kw in CONFIGS.values():
        cfg = BranchArrayConfig(rows=2, cols=2, lanes=4, depth=64, **kw)
        geometry, pw = rounding_geometry(cfg)
        assert 2.0 ** (pw + geometry.e0_min) <= 2.0 ** (cfg.out_fmt.lsb_exp - 1)
        assert 2.0 ** geometry.e0_max >= 2.0 ** (cfg.out_fmt.emax + 1)
