"""cocotb bench of the generated ``densehw_branch_array`` (run through
:mod:`sim.branch_driver`).

The bench talks to the array only through its documented ports, with the agents of the shift
array's bench (:class:`sim.array_tb.ArrayBench`: cocotbext-axi sources for ``s_axis_act`` and
``s_axis_wgt``, a sink for ``m_axis_res``, an AXI4-Lite master, random stalls on every stream)
and the branch array's register map. ``DENSEHW_BRANCH_JOB`` names the job folder written by
:func:`sim.branch_driver.run_branch_layers`. Per layer the bench writes the result beats in
stream order (``res<i>.npy``), the ``tlast`` frame lengths (``frames<i>.npy``) and an entry of
``results.json``; the host compares with the golden model.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, with_timeout
from cocotbext.axi import AxiStreamFrame

from contract.branch_array import (
    BRANCH_CTRL,
    BRANCH_ERROR,
    BRANCH_REGISTERS,
    BRANCH_STATUS,
    BranchArrayConfig,
    branch_activation_stream,
    branch_weight_stream,
)
from contract.files import write_atomic
from sim.array_tb import _PERIOD_NS, ArrayBench, _frames, open_bench

REG = {r.name: r.offset for r in BRANCH_REGISTERS}
COUNTERS = [r.name for r in BRANCH_REGISTERS if r.access == "rc"]


class BranchBench(ArrayBench):
    """:class:`ArrayBench` with the branch array's registers and streams."""

    async def write(self, name: str, value: int):
        await self.axil.write_dword(REG[name], int(value) & 0xFFFFFFFF)

    async def read(self, name: str) -> int:
        return int(await self.axil.read_dword(REG[name]))

    async def counters(self) -> dict:
        return {name: await self.read(name) for name in COUNTERS}

    async def probe_start_errors(self) -> list[str]:
        """``START`` with a bad shape or mode sets the documented ``ERROR`` bit and does not
        start; write-1-to-clear clears it."""
        cfg = self.config
        cases = [("K=0", dict(N=1, K=0, M=1), 0, BRANCH_ERROR["K_RANGE"]),
                 (f"K={cfg.depth + 1}", dict(N=1, K=cfg.depth + 1, M=1), 0,
                  BRANCH_ERROR["K_RANGE"]),
                 ("N=0", dict(N=0, K=1, M=1), 0, BRANCH_ERROR["SHAPE"]),
                 ("M=2**24", dict(N=1, K=1, M=1 << 24), 0, BRANCH_ERROR["SHAPE"])]
        if not cfg.float_path:
            cases.append(("SCALE", dict(N=1, K=1, M=1), BRANCH_CTRL["SCALE"],
                          BRANCH_ERROR["SCALE_MODE"]))
        problems = []
        for label, regs, ctrl, want in cases:
            for name, value in regs.items():
                await self.write(name, value)
            await self.write("CTRL", BRANCH_CTRL["START"] | ctrl)
            await ClockCycles(self.dut.clk, 4)
            status, error = await self.read("STATUS"), await self.read("ERROR")
            if error != want or status & BRANCH_STATUS["BUSY"]:
                problems.append(f"START with {label}: STATUS={status:#x} ERROR={error:#x}, "
                                f"expected ERROR={want:#x} and not BUSY")
            await self.write("ERROR", 0xFFFFFFFF)
            if await self.read("ERROR"):
                problems.append(f"START with {label}: ERROR not cleared by writing 1s")
        return problems

    async def run_branch_layer(self, index: int, entry: dict, folder: Path, rng) -> dict:
        cfg = self.config
        n, k, m = entry["n"], entry["k"], entry["m"]
        x = np.load(folder / f"x{index}.npy")
        w = np.load(folder / f"w{index}.npy")
        scaled = entry["scale_x"] is not None
        sw = np.load(folder / f"sw{index}.npy") if scaled else None
        problems: list[str] = []
        self.set_stall(entry["stall"], rng)
        ctrl = BRANCH_CTRL["START"] | (BRANCH_CTRL["SCALE"] if scaled else 0)
        ctrl |= BRANCH_CTRL["RELU"] if entry["relu"] else 0
        for name, value in (("N", n), ("K", k), ("M", m),
                            ("SCALE_X", entry["scale_x"] if scaled else 0)):
            await self.write(name, value)
        await self.write("CTRL", ctrl)
        start = self.cycle
        wgt_frames = _frames(branch_weight_stream(cfg, w, sw))
        act_frames = _frames(branch_activation_stream(cfg, x, m))
        expect_error = 0
        merge = entry.get("merge_frames")
        if merge == "act" and len(act_frames) > 1:      # tlast only on the very last beat
            act_frames = [AxiStreamFrame(tdata=[v for f in act_frames for v in f.tdata])]
            expect_error |= BRANCH_ERROR["ACT_FRAMING"]
        if merge == "wgt" and len(wgt_frames) > 1:
            wgt_frames = [AxiStreamFrame(tdata=[v for f in wgt_frames for v in f.tdata])]
            expect_error |= BRANCH_ERROR["WGT_FRAMING"]
        for frame in wgt_frames:
            self.wgt.send_nowait(frame)
        for frame in act_frames:
            self.act.send_nowait(frame)
        if entry.get("abort_after"):
            await ClockCycles(self.dut.clk, entry["abort_after"])
            await self.reset()
            await ClockCycles(self.dut.clk, 20)
            status, error = await self.read("STATUS"), await self.read("ERROR")
            if status & (BRANCH_STATUS["BUSY"] | BRANCH_STATUS["DONE"]) or error:
                problems.append(f"after reset STATUS={status:#x} ERROR={error:#x}, expected "
                                f"idle and no error")
            late = sum(len(f.tdata) for f in self._drain_sink())
            if late:
                problems.append(f"{late} result beats after the reset")
            return {"problems": problems, "status": status, "error": error, "aborted": True}
        total = n * m
        chunks = cfg.chunks(k)
        period = max(chunks, cfg.rows * cfg.cols) + cfg.cols * (chunks * 2 + 4) + 200
        budget = int(10 * period / (1 - entry["stall"]) * (2 * entry["stall"] + 1))
        beats, frames = [], []
        while len(beats) < total:
            try:
                frame = await with_timeout(self.res.recv(compact=False), budget * _PERIOD_NS,
                                           "ns")
            except cocotb.triggers.SimTimeoutError:
                problems.append(f"no result frame for {budget} clocks after {len(beats)} of "
                                f"{total} beats (lost beats or a hang)")
                break
            beats.extend(int(v) for v in frame.tdata)
            frames.append(len(frame.tdata))
        status = 0
        for _ in range(50):
            status = await self.read("STATUS")
            if status & BRANCH_STATUS["DONE"]:
                break
        end = self.cycle
        if not status & BRANCH_STATUS["DONE"]:
            problems.append(f"STATUS={status:#x}: DONE not set after the last result")
        error = await self.read("ERROR")
        if error != expect_error:
            problems.append(f"ERROR={error:#x} after the layer, expected {expect_error:#x}")
        if error:
            await self.write("ERROR", error)
            if await self.read("ERROR"):
                problems.append("ERROR not cleared by writing its bits")
        counters = await self.counters()
        self.set_stall(0.0, rng)
        await ClockCycles(self.dut.clk, 2 * cfg.rows * cfg.cols + 50)
        extra = [int(v) for f in self._drain_sink() for v in f.tdata]
        if extra or self.res.active:
            problems.append(f"{len(extra)} extra result beats after the last expected one")
        np.save(folder / f"res{index}.npy", np.asarray(beats, dtype=np.uint64))
        np.save(folder / f"frames{index}.npy", np.asarray(frames, dtype=np.int64))
        return {"problems": problems, "status": status, "error": error, "counters": counters,
                "bench_cycles": end - start}


@cocotb.test()
async def run_branch_job(dut):
    """Run every layer of the job folder; results go to ``results.json`` as they finish."""
    folder = Path(os.environ["DENSEHW_BRANCH_JOB"])
    job = json.loads((folder / "job.json").read_text())
    cfg = BranchArrayConfig.from_dict(job["config"])
    results = {"layers": {}, "ident_problems": []}

    def save():
        write_atomic(folder / "results.json", json.dumps(results, indent=1))

    bench = await open_bench(dut, BranchBench, cfg)
    try:
        results["ident_problems"] = await bench.check_ident()
        if job.get("probes"):
            results["ident_problems"] += await bench.probe_start_errors()
        for i, entry in enumerate(job["layers"]):
            rng = np.random.default_rng([int(job["seed"]), i])
            t0 = time.perf_counter()
            results["layers"][str(i)] = await bench.run_branch_layer(i, entry, folder, rng)
            results["layers"][str(i)]["wall_s"] = time.perf_counter() - t0
            save()
            if results["layers"][str(i)]["problems"]:
                await bench.reset()
    except Exception as exc:
        results["fatal"] = f"bench failed: {type(exc).__name__}: {exc}"
        save()
        raise
    save()
