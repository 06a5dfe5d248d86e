"""cocotb tests of the generated ``densehw_dot`` against the golden model.

Run through :mod:`sim.runner`, which passes the parameters in the environment:

``DENSEHW_CONFIG``   the :class:`~contract.DotConfig` as JSON (``to_dict``)
``DENSEHW_SEED``     base seed (each test derives its own generator from it)
``DENSEHW_RESULT``   JSON file that collects one entry per test (read by ``sim.run``)
``DENSEHW_RANDOM_N`` / ``DENSEHW_BP_N`` / ``DENSEHW_RESET_N``  vectors of the random and
                     backpressure tests, reset episodes
``DENSEHW_KMAX``     largest K of the random test (default 1024)
``DENSEHW_EXH_E0``   comma-separated e0 values of the exhaustive product test
``DENSEHW_EXH_STRIDE``  test every n-th input pattern only (1 = exhaustive)
``DENSEHW_FLIP``     ``index:bit``: flip one expected bit in the random test (checker self-test)

All payloads are packed up front (:mod:`sim.payload`) and the golden results of a whole batch are
computed before the first clock. Per cycle the bench writes the input beat and ``o__ready`` just
after the rising edge and samples the handshakes at the falling edge, when every signal has
settled: one clocked coroutine plays driver and monitor in lockstep, which keeps Python's work
per cycle to a handful of signal accesses.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from contract import DotConfig
from sim import payload

_MARK = "DENSEHW|"
_MASK_LEN = 65521          # prime: gap and stall patterns do not align with beat patterns


def _env_int(name, default):
    return int(os.environ.get(name, default))


def _config() -> DotConfig:
    return DotConfig.from_dict(json.loads(os.environ["DENSEHW_CONFIG"]))


def _seed() -> int:
    return _env_int("DENSEHW_SEED", 1)


def _rng(test_id: int) -> np.random.Generator:
    """Generator of one test: from the seed, the test and the configuration's name."""
    return np.random.default_rng([_seed(), test_id, zlib.crc32(_config().name.encode())])


class StreamError(AssertionError):
    """The unit stopped making progress or produced results it should not have."""


class DotBench:
    """Drives ``i`` and consumes ``o`` of ``densehw_dot`` one clock at a time."""

    def __init__(self, dut):
        self.dut = dut
        self.re = RisingEdge(dut.clk)
        self.fe = FallingEdge(dut.clk)
        self.cycles = 0
        self._iv = False       # what we drive on i__valid
        self._ordy = False     # what we drive on o__ready

    async def start(self):
        Clock(self.dut.clk, 10, unit="ns").start()
        self.dut.i__valid.value = 0
        self.dut.i__payload.value = 0
        self.dut.o__ready.value = 0
        self.dut.rst.value = 1
        self._iv, self._ordy = False, False
        await self.re
        await self.reset(3)

    async def reset(self, cycles: int):
        """Synchronous reset for ``cycles`` clocks; drops ``i__valid``. Call just after a rising
        edge; returns just after one."""
        dut = self.dut
        dut.rst.value = 1
        dut.i__valid.value = 0
        self._iv = False
        for _ in range(cycles):
            await self.re
            self.cycles += 1
        dut.rst.value = 0

    async def stream(self, beats, n_out, rng, *, gap=0.0, stall=0.0, stop_at=None,
                     idle_limit=5000):
        """Send ``beats`` and collect ``n_out`` results; returns ``(outs, beats_sent)``.

        ``gap``: chance that ``i__valid`` stays low on a cycle without a pending beat.
        ``stall``: chance that ``o__ready`` is low on a cycle. ``stop_at``: return after that
        many cycles (for the reset test) without draining. Results with X/Z bits are ``None``."""
        dut = self.dut
        iv, ip, ir = dut.i__valid, dut.i__payload, dut.i__ready
        ov, op, orr = dut.o__valid, dut.o__payload, dut.o__ready
        re, fe = self.re, self.fe
        gapm = (rng.random(_MASK_LEN) < gap).tolist() if gap else None
        stallm = (rng.random(_MASK_LEN) < stall).tolist() if stall else None
        nb = len(beats)
        outs = []
        bi = 0
        vi, ordy = self._iv, self._ordy
        fired = False
        idle = 0
        cyc = 0
        if not stall and not ordy:
            orr.value = 1
            ordy = True
        while len(outs) < n_out:
            # just after a rising edge: present the next beat, choose o__ready
            if not vi or fired:
                if bi < nb and not (gapm and gapm[cyc % _MASK_LEN]):
                    ip.value = beats[bi]
                    if not vi:
                        iv.value = 1
                        vi = True
                elif vi:
                    iv.value = 0
                    vi = False
            if stallm is not None:
                want = not stallm[cyc % _MASK_LEN]
                if want != ordy:
                    orr.value = int(want)
                    ordy = want
            # falling edge: everything settled; these handshakes happen at the next rising edge
            await fe
            fired = vi and ir.value == 1
            got = ordy and ov.value == 1
            if got:
                try:
                    outs.append(op.value.to_unsigned())
                except ValueError:
                    outs.append(None)
            if fired:
                bi += 1
            if fired or got:
                idle = 0
            else:
                idle += 1
                if idle > idle_limit:
                    self._iv, self._ordy = vi, ordy
                    raise StreamError(
                        f"no handshake for {idle_limit} cycles: {bi}/{nb} beats accepted, "
                        f"{len(outs)}/{n_out} results (i__ready={ir.value}, "
                        f"o__valid={ov.value})")
            await re
            cyc += 1
            if stop_at is not None and cyc >= stop_at:
                break
        self.cycles += cyc
        self._iv, self._ordy = vi, ordy
        return outs, bi

    async def drain(self, cycles: int) -> int:
        """Keep ``o__ready`` high and ``i__valid`` low for ``cycles``; count results that
        still appear (there should be none)."""
        dut = self.dut
        if self._iv:
            dut.i__valid.value = 0
            self._iv = False
        if not self._ordy:
            dut.o__ready.value = 1
            self._ordy = True
        extra = 0
        for _ in range(cycles):
            await self.fe
            if dut.o__valid.value == 1:
                extra += 1
            await self.re
        self.cycles += cycles
        return extra


class Checker:
    """Compares observed raw bits with the golden bits and keeps the evidence."""

    def __init__(self, dut, config: DotConfig, test: str):
        self.log = dut._log
        self.config = config
        self.test = test
        self.vectors = 0
        self.mismatches = 0
        self.failures: list[dict] = []
        self.errors: list[str] = []

    def check(self, vecs: payload.Vectors, outs, *, label="", first_index=0) -> int:
        exp = vecs.expected
        n = len(exp)
        od = (self.config.out_fmt.width + 3) // 4
        if len(outs) != n:
            self.errors.append(f"{label}: {len(outs)} results for {n} dot products")
        obs = np.array([-1 if o is None else o for o in outs[:n]] + [-2] * (n - len(outs)),
                       dtype=np.int64)
        bad = np.flatnonzero(obs != exp)
        self.vectors += n
        self.mismatches += len(bad)
        for i in bad[:10]:
            got = "X/Z" if obs[i] == -1 else ("missing" if obs[i] == -2 else
                                                f"0x{int(obs[i]):0{od}x}")
            msg = (f"MISMATCH test={self.test} {label} seed={_seed()} vector={first_index + i}: "
                   f"expected 0x{int(exp[i]):0{od}x} got {got}; "
                   f"{vecs.describe(self.config, int(i))}")
            self.log.error(msg)
            if len(self.failures) < 20:
                entry = vecs.to_json(self.config, int(i))
                entry.update(index=int(first_index + i), label=label,
                             got=None if obs[i] < 0 else int(obs[i]))
                self.failures.append(entry)
        if len(bad) > 10:
            self.log.error(f"... {len(bad) - 10} more mismatches in {label}")
        return len(bad)


def _write_result(test: str, entry: dict):
    path = os.environ.get("DENSEHW_RESULT")
    if not path:
        return
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[test] = entry
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


class _Run:
    """Bookkeeping of one cocotb test: timing, counts, result entry, final verdict."""

    def __init__(self, dut, name: str):
        self.dut = dut
        self.name = name
        self.config = _config()
        self.bench = DotBench(dut)
        self.checker = Checker(dut, self.config, name)
        self.t0 = time.perf_counter()
        self.sim_time = 0.0
        self.extra = {}

    async def timed(self, coro):
        t = time.perf_counter()
        res = await coro
        self.sim_time += time.perf_counter() - t
        return res

    def finish(self):
        c = self.checker
        wall = time.perf_counter() - self.t0
        entry = {
            "test": self.name, "config": self.config.name, "seed": _seed(),
            "vectors": c.vectors, "mismatches": c.mismatches, "errors": c.errors,
            "cycles": self.bench.cycles, "wall_s": round(wall, 3),
            "sim_s": round(self.sim_time, 3),
            "vectors_per_s": round(c.vectors / self.sim_time, 1) if self.sim_time else None,
            "cycles_per_s": round(self.bench.cycles / self.sim_time) if self.sim_time else None,
            "passed": c.mismatches == 0 and not c.errors and c.vectors > 0,
            "failures": c.failures, **self.extra,
        }
        _write_result(self.name, entry)
        self.dut._log.info(
            f"{_MARK} {self.name}: {c.vectors} vectors, {c.mismatches} mismatches, "
            f"{self.bench.cycles} cycles, {wall:.1f} s, "
            f"{entry['vectors_per_s'] or 0:.0f} vectors/s in simulation"
            + ("" if entry["passed"] else f"  FAILED {'; '.join(c.errors)}"))
        assert c.vectors > 0, "no vectors were checked"
        assert not c.errors, "; ".join(c.errors)
        assert c.mismatches == 0, (f"{c.mismatches} of {c.vectors} results differ from the "
                                   f"golden model (seed {_seed()})")


async def _run_batch(run: _Run, vecs, rng, *, label, gap=0.0, stall=0.0, drain=None):
    config = run.config
    beats, _ = payload.build_beats(config, vecs, rng)
    try:
        outs, sent = await run.timed(run.bench.stream(beats, len(vecs), rng, gap=gap,
                                                      stall=stall))
    except StreamError as exc:
        run.checker.errors.append(f"{label}: {exc}")
        run.checker.vectors += len(vecs)
        run.checker.mismatches += len(vecs)
        return
    if sent != len(beats):
        run.checker.errors.append(f"{label}: all results came out after {sent} of "
                                  f"{len(beats)} beats")
    extra = await run.timed(run.bench.drain(drain if drain is not None
                                            else 8 * config.pipeline + 16))
    if extra:
        run.checker.errors.append(f"{label}: {extra} results beyond the {len(vecs)} expected")
    run.checker.check(vecs, outs, label=label)


def _with_expected(config, made):
    vecs, groups = made
    vecs.expected = payload.expect(config, groups)
    return vecs


@cocotb.test()
async def test_exhaustive_products(dut):
    """Every input pattern times every weight code as one-term dot products (no bias), for
    each e0 in DENSEHW_EXH_E0; the kept lane is random, the other lanes carry garbage."""
    run = _Run(dut, "exhaustive_products")
    config = run.config
    rng = _rng(1)
    stride = _env_int("DENSEHW_EXH_STRIDE", 1)
    e0s = [int(v) for v in os.environ.get(
        "DENSEHW_EXH_E0", f"0,{config.e0_min},{config.e0_max}").split(",") if v.strip()]
    run.extra.update(e0=e0s, stride=stride, exhaustive=stride == 1)
    await run.bench.start()
    for e0 in e0s:
        offset = int(rng.integers(0, stride)) if stride > 1 else 0
        vecs = _with_expected(config, payload.exhaustive_products(
            config, e0, x_stride=stride, x_offset=offset))
        await _run_batch(run, vecs, rng, label=f"e0={e0}")
    run.finish()


@cocotb.test()
async def test_random_dots(dut):
    """Random dot products, K up to DENSEHW_KMAX over several beats with keep holes, special
    values at a high rate, bias or not, ReLU or not, e0 per row over the whole range."""
    run = _Run(dut, "random_dots")
    config = run.config
    rng = _rng(2)
    n = _env_int("DENSEHW_RANDOM_N", 1000)
    vecs = _with_expected(config, payload.random_dots(config, rng, n,
                                                      kmax=_env_int("DENSEHW_KMAX", 1024)))
    flip = os.environ.get("DENSEHW_FLIP")
    if flip:
        index, bit = (int(v) for v in flip.split(":"))
        vecs.expected[index] ^= 1 << bit
        run.extra["flipped"] = [index, bit]
    run.extra["kmax_seen"] = int(vecs.k.max())
    run.extra["terms"] = int(vecs.k.sum())
    await run.bench.start()
    await _run_batch(run, vecs, rng, label="random", gap=0.1, stall=0.1)
    run.finish()


@cocotb.test()
async def test_backpressure(dut):
    """Short dot products with random valid gaps (30 %) and ready stalls (50 %): every result
    arrives once, in order, with the right bits."""
    run = _Run(dut, "backpressure")
    config = run.config
    rng = _rng(3)
    n = _env_int("DENSEHW_BP_N", 1000)
    vecs = _with_expected(config, payload.backpressure_dots(config, rng, n))
    await run.bench.start()
    await _run_batch(run, vecs, rng, label="gaps 0.3 stalls 0.5", gap=0.3, stall=0.5)
    # then a consumer that is almost never ready: the unit must hold i__ready low, not drop
    vecs2 = _with_expected(config, payload.backpressure_dots(config, rng, max(8, n // 4)))
    await _run_batch(run, vecs2, rng, label="stalls 0.9", gap=0.0, stall=0.9)
    run.finish()


@cocotb.test()
async def test_reset_mid_dot(dut):
    """Reset while a dot product is half sent (and results are stalled), then clean dot
    products must come out right, with no stale result."""
    run = _Run(dut, "reset_mid_dot")
    config = run.config
    rng = _rng(4)
    episodes = _env_int("DENSEHW_RESET_N", 8)
    await run.bench.start()
    for ep in range(episodes):
        junk, _ = payload.random_dots(config, rng, 6, kmax=min(config.max_k, 8 * config.lanes))
        beats, _ = payload.build_beats(config, junk, rng)
        stop = int(rng.integers(1, max(2, len(beats))))
        await run.timed(run.bench.stream(beats, len(junk), rng, gap=0.2,
                                         stall=float(rng.choice([0.0, 0.5, 1.0])),
                                         stop_at=stop))
        await run.bench.reset(int(rng.integers(1, 4)))
        # nothing may come out of a freshly reset unit
        stale = await run.bench.drain(4)
        if stale:
            run.checker.errors.append(f"episode {ep}: {stale} results right after reset")
        clean = _with_expected(config, payload.random_dots(config, rng, 12, kmax=64))
        await _run_batch(run, clean, rng, label=f"after reset {ep}", gap=0.2, stall=0.3)
    run.finish()
