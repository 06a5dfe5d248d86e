# amaranth: UnusedElaboratable=no
"""The baseline MAC arrays (``boards.baselines``) in simulation against NumPy."""


import numpy as np
import pytest


def _bf16_bits(v32):
    """float32 values -> bf16 bits, round to nearest even."""
    b = np.asarray(v32, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.int64)


def _bf16_val(bits):
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)


def _fmt_ops(fmt):
    if fmt == "fp16":
        return (lambda v: np.float16(v).view(np.uint16).astype(np.int64).reshape(np.shape(v)),
                lambda b: np.asarray(b, dtype=np.uint16).view(np.float16).astype(np.float32))
    return (lambda v: _bf16_bits(np.float32(v)), _bf16_val)


def _run_mac(dut, beats, n_out, *, e0=0, ready_pattern=None):
    from amaranth.sim import Simulator

    out = []

    async def producer(ctx):
        for x, w, last in beats:
            ctx.set(dut.i.payload, {"x": [int(v) for v in x], "w": [int(v) for v in w],
                                    "last": last, "e0": e0})
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        cycles = 0
        while len(out) < n_out and cycles < 200 + 4 * n_out + 4 * len(beats):
            ready = 1 if ready_pattern is None else ready_pattern[cycles % len(ready_pattern)]
            ctx.set(dut.o.ready, ready)
            *_, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                out.append(int(payload))
            cycles += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return out


def _check(got, want, what, xs, ws):
    for j, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, (f"{what}: output {j}: got {g:#x} want {w:#x}; "
                        f"x={[hex(v) for v in np.ravel(xs)]} w={[hex(v) for v in np.ravel(ws)]}")


@pytest.mark.parametrize("fmt", ["fp16", "bf16"])
def test_fp_mac_baseline_matches_numpy(fmt):
    from boards.baselines import MacArray

    to_bits, to_val = _fmt_ops(fmt)
    rng = np.random.default_rng(7)
    rows, cols, k = 2, 3, 6
    for trial in range(2):
        xv = rng.choice([-1, 1], (k, rows)) * rng.uniform(0.25, 4, (k, rows))
        wv = rng.choice([-1, 1], (k, cols)) * rng.uniform(0.25, 4, (k, cols))
        xb, wb = to_bits(xv), to_bits(wv)
        x, w = to_val(xb), to_val(wb)
        # reference: product rounded, sequential rounded sums (float32 holds both exactly
        # enough: double rounding through float32 is innocuous for 11- and 8-bit significands)
        acc = np.zeros((rows, cols), dtype=np.float32)
        for kk in range(k):
            p = to_val(to_bits(np.outer(x[kk], w[kk]).astype(np.float32)))
            acc = to_val(to_bits((acc + p).astype(np.float32)))
        want = [int(v) for v in to_bits(acc).ravel()]
        dut = MacArray(arith="fp", rows=rows, cols=cols, fmt=fmt)
        beats = [(xb[kk], wb[kk], int(kk == k - 1)) for kk in range(k)]
        got = _run_mac(dut, beats, rows * cols, ready_pattern=[1, 0, 1] if trial else None)
        _check(got, want, f"{fmt} seed 7 trial {trial}", xb, wb)


def test_int8_mac_baseline_matches_numpy():
    from boards.baselines import MacArray

    rng = np.random.default_rng(3)
    rows, cols, k = 2, 2, 9
    x = rng.integers(-128, 128, (2 * k, rows))
    w = rng.integers(-128, 128, (2 * k, cols))
    x[0, 0], w[0, 0] = -128, -128
    dut = MacArray(arith="int8", rows=rows, cols=cols)
    beats = [(x[kk] & 0xFF, w[kk] & 0xFF, int(kk % k == k - 1)) for kk in range(2 * k)]
    got = _run_mac(dut, beats, 2 * rows * cols, ready_pattern=[1, 0, 0])
    want = []
    for t in range(2):                          # two back-to-back dot products
        ref = x[t * k:(t + 1) * k].T @ w[t * k:(t + 1) * k]
        want += [int(v) & 0xFFFFFFFF for v in ref.ravel()]
    _check(got, want, "int8 seed 3", x, w)


def test_shift_fpadd_baseline_matches_numpy():
    from boards.baselines import MacArray

    rng = np.random.default_rng(5)
    rows, cols, k, wbits, e0 = 2, 2, 5, 3, -2
    xv = rng.choice([-1, 1], (k, rows)) * rng.uniform(0.25, 4, (k, rows))
    xb = np.float16(xv).view(np.uint16).astype(np.int64)
    x = xb.astype(np.uint16).view(np.float16).astype(np.float32)
    codes = rng.integers(0, 1 << wbits, (k, cols))
    s, p = codes >> (wbits - 1), codes & ((1 << (wbits - 1)) - 1)
    wval = np.where(s == 1, -1.0, 1.0) * np.exp2(e0 + p)
    acc = np.zeros((rows, cols), dtype=np.float16)
    for kk in range(k):
        acc = (acc + np.float16(np.outer(x[kk], wval[kk]))).astype(np.float16)
    want = [int(v) for v in acc.view(np.uint16).ravel()]
    dut = MacArray(arith="shift", rows=rows, cols=cols, fmt="fp16", wbits=wbits)
    beats = [(xb[kk], codes[kk], int(kk == k - 1)) for kk in range(k)]
    got = _run_mac(dut, beats, rows * cols, e0=e0)
    _check(got, want, "shift-fpadd seed 5", xb, codes)


def test_mac_array_bad_args():
    from boards.baselines import MacArray

    with pytest.raises(ValueError, match="arith must be"):
        MacArray(arith="fp8", rows=1, cols=1)
    with pytest.raises(ValueError, match="rows must be in"):
        MacArray(arith="fp", rows=0, cols=1)
    with pytest.raises(TypeError, match="cols must be an integer"):
        MacArray(arith="fp", rows=1, cols="2")
