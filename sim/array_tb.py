"""cocotb bench of the generated ``densehw_array`` (run through :mod:`sim.array_driver`).

The bench talks to the array only through its documented ports (``docs/array.md``), with
cocotbext-axi: an ``AxiStreamSource`` each for ``s_axis_act`` and ``s_axis_wgt``, an
``AxiStreamSink`` for ``m_axis_res`` (one ``tdata`` word per beat, ``byte_lanes=1``) and an
``AxiLiteMaster`` for ``s_axil``. Random pause generators hold ``tvalid`` of both sources and
``tready`` of the sink low with the layer's stall probability.

``DENSEHW_ARRAY_JOB`` names the job folder written by :func:`sim.array_driver.run_layers`:
``job.json`` (configuration, seed, layers) and the ``.npy`` inputs. Per layer the bench writes
the result beats in stream order (``res<i>.npy``), the lengths of the ``tlast``-delimited
frames (``frames<i>.npy``) and an entry of ``results.json`` (``STATUS``, ``ERROR``, the
performance counters, problems seen). It does not compare with the golden model: the host does.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
import warnings
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamSink,
    AxiStreamSource,
)

from contract.array import (
    CTRL,
    ERROR,
    REGISTERS,
    STATUS,
    ArrayConfig,
    activation_stream,
    weight_stream,
)

# cocotbext-axi 0.1.28 still calls the deprecated setimmediatevalue
warnings.filterwarnings("ignore", category=DeprecationWarning, module="cocotbext")

REG = {r.name: r.offset for r in REGISTERS}
COUNTERS = [r.name for r in REGISTERS if r.access == "rc"]
_PAUSE_LEN = 4099          # prime: pause patterns do not line up with tiles
_PERIOD_NS = 10


def _frames(pairs) -> list[AxiStreamFrame]:
    """``(word, tlast)`` pairs -> one frame per ``tlast``."""
    frames, cur = [], []
    for word, last in pairs:
        cur.append(int(word))
        if last:
            frames.append(AxiStreamFrame(tdata=cur))
            cur = []
    if cur:
        frames.append(AxiStreamFrame(tdata=cur))
    return frames


class ArrayBench:
    """The array with its AXI agents. Create it before the first reset pulse."""

    def __init__(self, dut, config: ArrayConfig):
        self.dut = dut
        self.config = config
        self.cycle = 0
        self.act = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_act", bus_separator="__"),
                                   dut.clk, dut.rst, byte_lanes=1)
        self.wgt = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_wgt", bus_separator="__"),
                                   dut.clk, dut.rst, byte_lanes=1)
        self.res = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_res", bus_separator="__"),
                                 dut.clk, dut.rst, byte_lanes=1)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__"),
                                  dut.clk, dut.rst)
        for agent in (self.act, self.wgt, self.res):
            agent.log.setLevel(logging.WARNING)
        for sub in ("write_if", "read_if"):
            obj = getattr(self.axil, sub, None)
            if obj is not None:
                obj.log.setLevel(logging.WARNING)
        cocotb.start_soon(self._count())

    async def _count(self):
        edge = RisingEdge(self.dut.clk)
        while True:
            await edge
            self.cycle += 1

    async def reset(self, cycles: int = 4):
        """Pulse ``rst`` (synchronous) and drop whatever the agents still hold."""
        await RisingEdge(self.dut.clk)
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        for agent in (self.act, self.wgt, self.res):
            agent.clear()
        await ClockCycles(self.dut.clk, 2)

    def set_stall(self, probs, rng: np.random.Generator):
        """Pause the activation, weight and result streams on about ``probs`` (one probability,
        or one per stream in that order) of the clocks (independent patterns)."""
        probs = [probs] * 3 if isinstance(probs, (int, float)) else list(probs)
        for agent, prob in zip((self.act, self.wgt, self.res), probs, strict=True):
            if prob > 0:
                pattern = (rng.random(_PAUSE_LEN) < prob).tolist()
                agent.set_pause_generator(itertools.cycle(pattern))
            else:
                agent.clear_pause_generator()
                agent.pause = False

    async def write(self, name: str, value: int):
        await self.axil.write_dword(REG[name], int(value) & 0xFFFFFFFF)

    async def read(self, name: str) -> int:
        return int(await self.axil.read_dword(REG[name]))

    async def check_ident(self) -> list[str]:
        """Identification registers against :meth:`ArrayConfig.register_resets`."""
        problems = []
        for name, want in self.config.register_resets().items():
            got = await self.read(name)
            if got != want:
                problems.append(f"register {name} reads {got:#010x}, expected {want:#010x}")
        return problems

    async def probe_start_errors(self) -> list[str]:
        """``START`` with a bad shape or offset sets the documented ``ERROR`` bits, does not
        start (not ``BUSY``), and write-1-to-clear clears them."""
        cfg = self.config
        cases = [
            ("K=0", dict(N=1, K=0, M=1, E0=0), 0, ERROR["K_RANGE"]),
            (f"K=depth+1={cfg.depth + 1}", dict(N=1, K=cfg.depth + 1, M=1, E0=0), 0,
             ERROR["K_RANGE"]),
            ("N=0", dict(N=0, K=1, M=1, E0=0), 0, ERROR["SHAPE"]),
            ("M=0", dict(N=1, K=1, M=0, E0=0), 0, ERROR["SHAPE"]),
            ("N=2**24", dict(N=1 << 24, K=1, M=1, E0=0), 0, ERROR["SHAPE"]),
            (f"E0=e0_max+1={cfg.e0_max + 1}", dict(N=1, K=1, M=1, E0=cfg.e0_max + 1), 0,
             ERROR["E0_RANGE"]),
            (f"E0=e0_min-1={cfg.e0_min - 1}", dict(N=1, K=1, M=1, E0=cfg.e0_min - 1), 0,
             ERROR["E0_RANGE"]),
        ]
        problems = []
        for label, regs, ctrl, want in cases:
            for name, value in regs.items():
                await self.write(name, value)
            await self.write("CTRL", CTRL["START"] | ctrl)
            await ClockCycles(self.dut.clk, 3)
            status, error = await self.read("STATUS"), await self.read("ERROR")
            if error != want or status & STATUS["BUSY"] or not status & STATUS["ERROR"]:
                problems.append(f"START with {label}: STATUS={status:#x} ERROR={error:#x}, "
                                f"expected ERROR={want:#x}, STATUS.ERROR set, not BUSY")
            await self.write("ERROR", 0xFFFFFFFF)
            left = await self.read("ERROR")
            if left:
                problems.append(f"START with {label}: ERROR={left:#x} after write-1-to-clear")
            if await self.read("STATUS") & STATUS["BUSY"]:
                await self.reset()
        return problems

    async def probe_start_busy(self) -> list[str]:
        """A second ``START`` while a layer runs sets ``START_BUSY``; the running layer is
        then abandoned by a reset."""
        problems = []
        for name, value in dict(N=2, K=4, M=2, E0=0).items():
            await self.write(name, value)
        await self.write("CTRL", CTRL["START"])
        await ClockCycles(self.dut.clk, 2)
        busy = await self.read("STATUS")
        await self.write("CTRL", CTRL["START"])
        await ClockCycles(self.dut.clk, 2)
        error = await self.read("ERROR")
        if not busy & STATUS["BUSY"]:
            problems.append(f"STATUS={busy:#x} after START of a 2x4x2 layer with no input: "
                            f"expected BUSY")
        elif not error & ERROR["START_BUSY"]:
            problems.append(f"START while BUSY: ERROR={error:#x}, expected START_BUSY")
        await self.reset()
        status, error = await self.read("STATUS"), await self.read("ERROR")
        if status or error:
            problems.append(f"after reset STATUS={status:#x} ERROR={error:#x}, expected 0")
        return problems

    async def counters(self) -> dict:
        return {name: await self.read(name) for name in COUNTERS}

    async def run_layer(self, index: int, entry: dict, folder: Path, rng) -> dict:
        cfg = self.config
        n, k, m = entry["n"], entry["k"], entry["m"]
        x = np.load(folder / f"x{index}.npy")
        codes = np.load(folder / f"codes{index}.npy")
        e0 = np.load(folder / f"e0_{index}.npy") if entry["per_channel"] else entry["e0"]
        bias = np.load(folder / f"bias{index}.npy") if entry["bias"] else None
        wgt_frames = _frames(weight_stream(cfg, codes, e0, bias))
        scales = np.load(folder / f"scales{index}.npy") if entry.get("scales") else None
        act_frames = _frames(activation_stream(cfg, x, m, scales))
        problems: list[str] = []
        out = {"problems": problems}
        expect_error = 0
        merge = entry.get("merge_frames")
        if merge == "act" and len(act_frames) > 1:      # tlast only on the very last beat
            act_frames = [AxiStreamFrame(tdata=[v for f in act_frames for v in f.tdata])]
            expect_error |= ERROR["ACT_FRAMING"]
        if merge == "wgt" and len(wgt_frames) > 1:
            wgt_frames = [AxiStreamFrame(tdata=[v for f in wgt_frames for v in f.tdata])]
            expect_error |= ERROR["WGT_FRAMING"]
        out["expect_error"] = expect_error
        self.set_stall(entry["stall"], rng)

        ctrl = CTRL["START"]
        ctrl |= CTRL["RELU"] if entry["relu"] else 0
        ctrl |= CTRL["BIAS_EN"] if entry["bias"] else 0
        ctrl |= CTRL["E0_PER_CHANNEL"] if entry["per_channel"] else 0
        await self.write("N", n)
        await self.write("K", k)
        await self.write("M", m)
        await self.write("E0", 0 if entry["per_channel"] else entry["e0"])
        await self.write("CTRL", ctrl)
        start = self.cycle
        err = await self.read("ERROR")
        if err:
            problems.append(f"ERROR={err:#x} right after START")
        # queue both input streams; the array backpressures each
        for frame in wgt_frames:
            self.wgt.send_nowait(frame)
        for frame in act_frames:
            self.act.send_nowait(frame)

        if entry["abort_after"]:
            await ClockCycles(self.dut.clk, entry["abort_after"])
            got_before = sum(len(f.tdata) for f in self._drain_sink())
            await self.reset()
            await ClockCycles(self.dut.clk, 20)
            status, error = await self.read("STATUS"), await self.read("ERROR")
            if status & (STATUS["BUSY"] | STATUS["DONE"]) or error:
                problems.append(f"after reset STATUS={status:#x} ERROR={error:#x}, expected "
                                f"idle and no error")
            late = sum(len(f.tdata) for f in self._drain_sink())
            if late:
                problems.append(f"{late} result beats after the reset")
            out.update(status=status, error=error, aborted=True, beats_before_reset=got_before)
            return out

        total = n * m
        tile_period = max(k, cfg.rows * cfg.cols) + cfg.cols * (k + 2 + k) + 200
        stall = max(entry["stall"])
        budget = int(10 * tile_period / (1 - stall) * max(1.0, 2 * stall + 1)
                     * entry.get("timeout_factor", 1.0))
        beats: list[int] = []
        frames: list[int] = []
        while len(beats) < total:
            try:
                frame = await with_timeout(self.res.recv(compact=False),
                                           budget * _PERIOD_NS, "ns")
            except cocotb.triggers.SimTimeoutError:
                problems.append(f"no result frame for {budget} clocks after {len(beats)} of "
                                f"{total} beats (lost beats or a hang)")
                break
            beats.extend(int(v) for v in frame.tdata)
            frames.append(len(frame.tdata))
        status = 0
        for _ in range(200):
            status = await self.read("STATUS")
            if status & STATUS["DONE"] or not len(beats) >= total:
                break
        end = self.cycle
        if len(beats) >= total and not status & STATUS["DONE"]:
            problems.append(f"STATUS={status:#x}: DONE not set after the last result")
        if bool(status & STATUS["ERROR"]) != bool(expect_error):
            problems.append(f"STATUS={status:#x}: ERROR bit {'not ' if expect_error else ''}"
                            f"set")
        error = await self.read("ERROR")
        if error != expect_error:
            problems.append(f"ERROR={error:#x} after the layer, expected {expect_error:#x}")
        if error:
            await self.write("ERROR", error)           # write 1 to clear
            left = await self.read("ERROR")
            if left:
                problems.append(f"ERROR={left:#x} after writing {error:#x} to clear it")
        out["counters"] = await self.counters()
        # nothing more may come out, whatever tready does
        self.set_stall(0.0, rng)
        await ClockCycles(self.dut.clk, 4 * cfg.rows * cfg.cols + 50)
        extra = [int(v) for f in self._drain_sink() for v in f.tdata]
        if extra or self.res.active:
            problems.append(f"{len(extra)} extra result beats after the last expected one"
                            + (" (a frame without tlast in progress)" if self.res.active
                               else ""))
        status_after = await self.read("STATUS")
        if status_after & STATUS["BUSY"]:
            problems.append(f"STATUS={status_after:#x}: still BUSY after the layer")
        np.save(folder / f"res{index}.npy", np.asarray(beats, dtype=np.uint64))
        np.save(folder / f"frames{index}.npy", np.asarray(frames, dtype=np.int64))
        out.update(status=status, error=error, bench_cycles=end - start)
        return out

    def _drain_sink(self) -> list:
        got = []
        while not self.res.empty():
            got.append(self.res.recv_nowait(compact=False))
        return got


async def open_bench(dut, bench_class, config):
    """Start the clock and return ``bench_class(dut, config)`` after a reset. Icarus starts
    with X on the ports: they settle under reset before the agents sample them, then the agents
    are created and see a reset pulse of their own."""
    Clock(dut.clk, _PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    for name in ("s_axis_act__tvalid", "s_axis_wgt__tvalid", "m_axis_res__tready",
                 "s_axil__awvalid", "s_axil__wvalid", "s_axil__bready", "s_axil__arvalid",
                 "s_axil__rready"):
        getattr(dut, name).value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    bench = bench_class(dut, config)
    await bench.reset(5)
    return bench


@cocotb.test()
async def run_job(dut):
    """Run every layer of the job folder; results go to ``results.json`` as they finish."""
    folder = Path(os.environ["DENSEHW_ARRAY_JOB"])
    job = json.loads((folder / "job.json").read_text())
    cfg = ArrayConfig.from_dict(job["config"])
    seed = int(job["seed"])
    results = {"layers": {}, "ident_problems": [], "probe_problems": []}
    out_file = folder / "results.json"

    def save():
        tmp = out_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(out_file)

    bench = await open_bench(dut, ArrayBench, cfg)
    try:
        if job.get("check_ident", True):
            results["ident_problems"] = await bench.check_ident()
        if job.get("probes"):
            results["probe_problems"] += await bench.probe_start_errors()
            results["probe_problems"] += await bench.probe_start_busy()
        for i, entry in enumerate(job["layers"]):
            entry = dict(entry, timeout_factor=job.get("timeout_factor", 1.0))
            rng = np.random.default_rng([seed, i])
            t0 = time.perf_counter()
            results["layers"][str(i)] = await bench.run_layer(i, entry, folder, rng)
            results["layers"][str(i)]["wall_s"] = time.perf_counter() - t0
            save()
            if any("lost beats or a hang" in p for p in results["layers"][str(i)]["problems"]):
                await bench.reset()      # leave a clean array to the next layer
    except Exception as exc:
        results["fatal"] = f"bench failed: {type(exc).__name__}: {exc}"
        save()
        raise
    save()
