"""cocotb bench of the soak (:mod:`sim.soak`): layers back to back on ``densehw_array`` with
lockstep drivers, protocol monitors on every port and resets at chosen moments.

The array sits in the wrapper of :mod:`sim.soak_top`: every input but ``clk``/``rst`` is written
once per clock (``drive``, just after the rising edge) and every port is read once per clock
(``probe``, at the falling edge, where everything is stable for the coming edge). The drivers:

* two AXI4-Stream sources (activations, weights) that start a beat with probability
  ``1 - stall`` on each clock and then hold it until it is taken;
* a result sink that raises ``tready`` with probability ``1 - stall`` on each clock;
* an AXI4-Lite master whose writes present the address first, the data first or both at once
  (with a gap of up to five clocks), use byte strobes (a register written in two halves with
  garbage in the bytes not strobed), and hold ``bready``/``rready`` low at random.

The monitors (:mod:`sim.axi_monitor`) read only the probe: data stable while stalled on all
three streams and the five AXI4-Lite channels, responses only for taken requests, and they count
and keep the beats of every stream. ``DENSEHW_SOAK_JOB`` names the folder written by
:func:`sim.soak.run_chunk` (``job.json``, ``inputs.npz``); the bench writes ``results.json``
(per layer: the streams' beat counts and ``tlast`` positions, counters, ``STATUS``/``ERROR``,
what the reset hit) and ``outputs.npz`` (result beats); the host compares.

``job["faults"]`` makes a driver break the rules on purpose (tests of the monitors):
``{"act"|"wgt": "unstable"|"drop"|"tlast", "axil": "unstable"|"drop"}``.
"""

from __future__ import annotations

import json
import os
import random
from collections import deque
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import Event, FallingEdge, RisingEdge

from contract.array import (
    CTRL,
    REGISTERS,
    STATUS,
    ArrayConfig,
    activation_stream,
    weight_stream,
)

from .axi_monitor import AxiLiteMonitor, StreamMonitor
from .soak_top import PortMap

REG = {r.name: r.offset for r in REGISTERS}
COUNTERS = [r.name for r in REGISTERS if r.access == "rc"]
_PERIOD_NS = 10
_AXIL = ("awvalid", "awready", "awaddr", "wvalid", "wready", "wdata", "wstrb", "bvalid",
         "bready", "bresp", "arvalid", "arready", "araddr", "rvalid", "rready", "rdata", "rresp")


class Source:
    """AXI4-Stream source: beats ``(tdata, tlast)``; a new beat starts on a clock with
    probability ``1 - stall`` and is held until taken. ``fault``: ``"unstable"`` (tdata
    changes once while a beat is stalled), ``"drop"`` (tvalid drops once while stalled),
    ``"tlast"`` (tlast one beat early in every frame)."""

    def __init__(self, name, fault=None):
        self.name = name
        self.fault = fault
        self.clear()

    def clear(self):
        self.beats, self.i = [], 0
        self.valid = self.data = self.last = 0
        self.showing = False
        self.faulted = False

    def load(self, beats, stall, rng):
        self.clear()
        if self.fault == "tlast":
            lasts = [b[1] for b in beats]
            moved = lasts[1:] + [1]           # every tlast one beat early, and on the end
            beats = [(d, m) for (d, _), m in zip(beats, moved, strict=True)]
        self.beats, self.stall, self.rng = beats, stall, rng

    def drive(self):
        if self.showing:
            self.valid = 1
            if self.fault in ("unstable", "drop") and not self.faulted:
                self.faulted = True
                if self.fault == "unstable":
                    return 1, self.data ^ 1, self.last
                return 0, self.data, self.last
            return 1, self.data, self.last
        if self.i < len(self.beats) and (not self.stall or self.rng.random() >= self.stall):
            self.valid = 1
            self.data, self.last = self.beats[self.i]
        else:
            self.valid = 0
        return self.valid, self.data, self.last

    def observe(self, ready):
        if self.valid and ready:
            self.i += 1
            self.showing = False
        elif self.valid:
            self.showing = True

    @property
    def done(self):
        return self.i >= len(self.beats)


class Op:
    def __init__(self, kind, addr, data=0, strb=0xF, order="both", gap=0):
        self.kind, self.addr, self.data, self.strb = kind, addr, data, strb
        self.order, self.gap = order, gap
        self.event = Event()
        self.result = None
        self.aborted = False


class AxiLiteMaster:
    """One transaction at a time. A write shows ``aw`` and ``w`` in ``order`` (``"aw"``:
    address first, ``"w"``: data first, ``"both"``), the second ``gap`` clocks after the first;
    ``bready``/``rready`` are low with probability ``stall``. ``fault``: ``"unstable"``
    (``awaddr`` changes while the address waits), ``"drop"`` (``awvalid`` drops while it
    waits)."""

    def __init__(self, rng, fault=None):
        self.rng = rng
        self.fault = fault
        self.stall = 0.0
        self.ops = deque()
        self.cur = None
        self.out = dict(awvalid=0, awaddr=0, wvalid=0, wdata=0, wstrb=0, bready=0, arvalid=0,
                        araddr=0, rready=0)

    def clear(self):
        for op in ([self.cur] if self.cur else []) + list(self.ops):
            op.aborted = True
            op.event.set()
        self.ops.clear()
        self.cur = None
        for k in self.out:
            self.out[k] = 0

    def submit(self, op: Op) -> Op:
        self.ops.append(op)
        return op

    def drive(self):
        o = self.out
        if self.cur is None and self.ops:
            self.cur = op = self.ops.popleft()
            op.t, op.aw_done, op.w_done, op.ar_done, op.faulted = 0, False, False, False, False
        op = self.cur
        o["awvalid"] = o["wvalid"] = o["bready"] = o["arvalid"] = o["rready"] = 0
        if op is None:
            return o
        ready_p = not self.stall or self.rng.random() >= self.stall
        if op.kind == "w":
            if not op.aw_done and (op.order in ("aw", "both") or op.t >= op.gap):
                o["awvalid"], o["awaddr"] = 1, op.addr
                if op.t >= 1 and not op.faulted and self.fault in ("unstable", "drop"):
                    op.faulted = True
                    if self.fault == "unstable":
                        o["awaddr"] = op.addr ^ 4
                    else:
                        o["awvalid"] = 0
            if not op.w_done and (op.order in ("w", "both") or op.t >= op.gap):
                o["wvalid"], o["wdata"], o["wstrb"] = 1, op.data, op.strb
            o["bready"] = int(op.aw_done and op.w_done and ready_p)
        else:
            if not op.ar_done:
                o["arvalid"], o["araddr"] = 1, op.addr
            o["rready"] = int(op.ar_done and ready_p)
        op.t += 1
        return o

    def observe(self, s):
        op, o = self.cur, self.out
        if op is None:
            return
        if op.kind == "w":
            if o["awvalid"] and s["awready"]:
                op.aw_done = True
            if o["wvalid"] and s["wready"]:
                op.w_done = True
            if o["bready"] and s["bvalid"]:
                op.result = s["bresp"]
                self._finish()
        else:
            if o["arvalid"] and s["arready"]:
                op.ar_done = True
            if o["rready"] and s["rvalid"]:
                op.result = s["rdata"]
                self._finish()

    def _finish(self):
        self.cur.event.set()
        self.cur = None


class Engine:
    """The clock loop: drives the agents after each rising edge, samples the probe at each
    falling edge into the monitors and the agents, and wakes waiters."""

    def __init__(self, dut, pm: PortMap, faults, seed):
        self.dut, self.pm = dut, pm
        self.cycle = 0
        self.rst = 1
        self.rst_left = 0
        rng = random.Random(seed)
        self.rng = rng
        self.act = Source("s_axis_act", faults.get("act"))
        self.wgt = Source("s_axis_wgt", faults.get("wgt"))
        self.res_stall = 0.0
        self.res_ready = 0
        self.axil = AxiLiteMaster(rng, faults.get("axil"))
        self.mon = {name: StreamMonitor(name) for name in ("s_axis_act", "s_axis_wgt",
                                                             "m_axis_res")}
        self.mon_axil = AxiLiteMonitor("s_axil")
        self.waiters = []
        self.irq = 0
        self.xz_clocks = 0
        self.xz_messages = []
        self._last_drive = None
        self._fields = {name: pm.probe[name] for name in pm.probe}

    def reset(self, cycles):
        self.rst_left = cycles

    def until(self, pred):
        ev = Event()
        self.waiters.append((pred, ev))
        return ev.wait()

    async def clocks(self, n):
        target = self.cycle + n
        await self.until(lambda: self.cycle >= target)

    def _drive(self):
        if self.rst_left:
            if not self.rst:
                self.dut.rst.value = 1
                self.rst = 1
            self.rst_left -= 1
            self.act.clear()
            self.wgt.clear()
            self.axil.clear()
        elif self.rst:
            self.dut.rst.value = 0
            self.rst = 0
        av, ad, al = self.act.drive()
        wv, wd, wl = self.wgt.drive()
        self.res_ready = int(not self.res_stall or self.rng.random() >= self.res_stall)
        a = self.axil.drive()
        pm = self.pm
        word = pm.pack({
            "s_axis_act__tvalid": av, "s_axis_act__tdata": ad, "s_axis_act__tlast": al,
            "s_axis_wgt__tvalid": wv, "s_axis_wgt__tdata": wd, "s_axis_wgt__tlast": wl,
            "m_axis_res__tready": self.res_ready,
            **{f"s_axil__{k}": v for k, v in a.items()}})
        if word != self._last_drive:
            self.dut.drive.value = word
            self._last_drive = word

    def _sample(self):
        value = self.dut.probe.value
        try:
            word = value.to_unsigned()
        except ValueError:                  # X or Z somewhere (Icarus)
            word = self._xz(str(value))
        f = self._fields

        def get(name):
            off, width = f[name]
            return (word >> off) & ((1 << width) - 1)

        rst = self.rst
        for prefix, mon in self.mon.items():
            mon.sample(self.cycle, rst, get(f"{prefix}__tvalid"), get(f"{prefix}__tready"),
                       get(f"{prefix}__tdata"), get(f"{prefix}__tlast"))
        s = {k: get(f"s_axil__{k}") for k in _AXIL}
        self.mon_axil.sample(self.cycle, rst, s)
        self.irq = get("irq") if "irq" in f else 0
        if not rst:
            self.act.observe(get("s_axis_act__tready"))
            self.wgt.observe(get("s_axis_wgt__tready"))
            self.axil.observe(s)

    _QUALIFIER = {"tdata": "tvalid", "tlast": "tvalid", "awaddr": "awvalid",
                  "wdata": "wvalid", "wstrb": "wvalid", "bresp": "bvalid", "araddr": "arvalid",
                  "rdata": "rvalid", "rresp": "rvalid"}

    def _xz(self, bits: str) -> int:
        """The probe word with X/Z read as 0; X/Z outside reset is a problem unless it is in
        the data of a channel whose valid is low."""
        width = len(bits)
        word = int("".join(c if c in "01" else "0" for c in bits), 2)
        if self.rst:
            return word
        bad = []
        for name, (off, w) in self._fields.items():
            field = bits[width - off - w:width - off]
            if all(c in "01" for c in field):
                continue
            prefix, _, sig = name.rpartition("__")
            qual = self._QUALIFIER.get(sig)
            if qual is not None:
                qoff, _ = self._fields[f"{prefix}__{qual}"]
                if bits[width - qoff - 1] == "0":
                    continue
            bad.append(f"{name}={field}")
        if bad:
            self.xz_clocks += 1
            if len(self.xz_messages) < 5:
                self.xz_messages.append(f"clock {self.cycle}: " + ", ".join(bad))
        return word

    async def run(self):
        rising, falling = RisingEdge(self.dut.clk), FallingEdge(self.dut.clk)
        while True:
            await rising
            self.cycle += 1
            self._drive()
            await falling
            self._sample()
            if self.waiters:
                keep = []
                for pred, ev in self.waiters:
                    if pred():
                        ev.set()
                    else:
                        keep.append((pred, ev))
                self.waiters = keep


class Soak:
    """The layer program on top of the engine."""

    def __init__(self, eng: Engine, cfg: ArrayConfig, rng: random.Random):
        self.eng, self.cfg, self.rng = eng, cfg, rng
        self.axil_ok = True

    # -- register access ----------------------------------------------------------------------
    async def write(self, name, value, strb=0xF):
        r = self.rng
        op = Op("w", REG[name], int(value) & 0xFFFFFFFF, strb, r.choice(("aw", "w", "both")),
                r.randint(0, 5))
        self.eng.axil.submit(op)
        await op.event.wait()
        return op

    async def write_split(self, name, value):
        """``value`` written in two parts with complementary strobes; the bytes not strobed
        carry garbage."""
        r = self.rng
        s = r.randint(0, 15)
        garbage = r.getrandbits(32)
        for strb in (s, 0xF ^ s):
            mask = sum(0xFF << (8 * i) for i in range(4) if strb >> i & 1)
            await self.write(name, (value & mask) | (garbage & ~mask & 0xFFFFFFFF), strb)

    async def read(self, name):
        op = self.eng.axil.submit(Op("r", REG[name]))
        await op.event.wait()
        return op.result if not op.aborted else None

    # -- one layer ------------------------------------------------------------------------------
    def _window(self):
        return {name: m.counts.snapshot() for name, m in self.eng.mon.items()}

    def _since(self, snap):
        return {name: m.counts.since(snap[name]) for name, m in self.eng.mon.items()}

    def _take_beats(self):
        return {name: m.beats[:] for name, m in self.eng.mon.items()}

    def _clear_beats(self):
        for m in self.eng.mon.values():
            m.beats.clear()

    async def layer(self, e, x, codes, e0, bias) -> dict:
        eng, cfg, r = self.eng, self.cfg, self.rng
        out = {"problems": []}
        between = self._since(self._mark) if hasattr(self, "_mark") else None
        if between and between["m_axis_res"]["transfers"]:
            out["beats_between_layers"] = between["m_axis_res"]["transfers"]
        n, k, m = e["n"], e["k"], e["m"]
        for name, value in (("N", n), ("K", k), ("M", m), ("E0", e["e0"] or 0)):
            if r.random() < 0.3:
                await self.write_split(name, value)
            else:
                await self.write(name, value)
        if r.random() < 0.1:
            for name, value in (("N", n), ("K", k), ("M", m), ("E0", e["e0"] or 0)):
                got = await self.read(name)
                if got != value & 0xFFFFFFFF:
                    out["problems"].append(f"register {name} reads {got:#x} after writing "
                                           f"{value & 0xFFFFFFFF:#x}")
        irq_en = e.get("irq_en", 0)
        await self.write("IRQ_EN", irq_en)
        wgt = weight_stream(cfg, codes, e0 if e["per_channel"] else e["e0"], bias)
        act = activation_stream(cfg, x, m)
        if e.get("merge_frames") == "act":
            act = [(d, int(i == len(act) - 1)) for i, (d, _) in enumerate(act)]
        if e.get("merge_frames") == "wgt":
            wgt = [(d, int(i == len(wgt) - 1)) for i, (d, _) in enumerate(wgt)]
        opts = (CTRL["RELU"] if e["relu"] else 0) | (CTRL["BIAS_EN"] if e["bias"] else 0) \
            | (CTRL["E0_PER_CHANNEL"] if e["per_channel"] else 0)
        self._clear_beats()
        snap = self._window()
        await self.write("CTRL", CTRL["START"] | opts, strb=1 if r.random() < 0.5 else 0xF)
        start = eng.cycle
        sa, sw, sr = e["stall"]
        eng.act.load(act, sa, r)
        eng.wgt.load(wgt, sw, r)
        eng.res_stall = sr
        eng.axil.stall = e.get("axil_stall", 0.0)
        total = n * m
        res = eng.mon["m_axis_res"]
        base = res.counts.transfers
        deadline = start + e["budget"]
        reset = e.get("reset")
        if e.get("start_busy"):
            j = e["start_busy"]
            act_mon = eng.mon["s_axis_act"]
            a0 = act_mon.counts.transfers
            await eng.until(lambda: act_mon.counts.transfers - a0 >= j or eng.cycle > deadline)
            other = r.choice([0, CTRL["RELU"], CTRL["BIAS_EN"], CTRL["E0_PER_CHANNEL"]])
            await self.write("CTRL", CTRL["START"] | (opts ^ other))
        if reset:
            mon = eng.mon[{"act": "s_axis_act", "wgt": "s_axis_wgt",
                           "res": "m_axis_res"}.get(reset["on"], "m_axis_res")]
            c0 = mon.counts.transfers
            if reset["on"] == "clock":
                await eng.until(lambda: eng.cycle - start >= reset["after"])
            else:
                await eng.until(lambda: mon.counts.transfers - c0 >= reset["after"]
                                or eng.cycle > deadline)
            out["reset_cycle"] = eng.cycle - start
            out["window"] = self._since(snap)
            beats_before = res.counts.transfers - base
            eng.reset(reset["cycles"])
            await eng.clocks(reset["cycles"] + 1)
            after = res.counts.transfers
            await eng.clocks(4 * cfg.rows * cfg.cols + 60)
            out["late_beats"] = res.counts.transfers - after
            out["beats_before_reset"] = beats_before
            out["after_reset"] = {"STATUS": await self.read("STATUS"),
                                  "ERROR": await self.read("ERROR"),
                                  "IRQ_EN": await self.read("IRQ_EN"),
                                  "counters": [await self.read(c) for c in COUNTERS]}
            out["aborted"] = True
            self._mark = self._window()
            return out
        await eng.until(lambda: res.counts.transfers - base >= total or eng.cycle > deadline)
        out["cycles"] = eng.cycle - start
        if res.counts.transfers - base < total:
            out["problems"].append(f"timeout: {res.counts.transfers - base} of {total} result "
                                   f"beats after {eng.cycle - start} clocks")
            out["window"] = self._since(snap)
            out["beats"] = self._take_beats()
            eng.reset(3)                       # leave a clean array to the next layer
            await eng.clocks(8)
            out["timed_out"] = True
            self._mark = self._window()
            return out
        status = 0
        for _ in range(20):
            status = await self.read("STATUS")
            if status is None or status & STATUS["DONE"]:
                break
        out["STATUS"] = status
        out["irq"] = eng.irq
        out["ERROR"] = await self.read("ERROR")
        out["counters"] = {c: await self.read(c) for c in COUNTERS}
        if out["ERROR"]:
            await self.write("ERROR", out["ERROR"])
            out["ERROR_after_clear"] = await self.read("ERROR")
        eng.res_stall = 0.0
        if e.get("idle_check"):
            await eng.clocks(cfg.rows * cfg.cols + 40)
        out["window"] = self._since(snap)
        out["beats"] = self._take_beats()
        self._mark = self._window()
        return out

    async def probe(self, e) -> dict:
        """``START`` with a bad register: the ``ERROR`` bit, not ``BUSY``, cleared by
        write-1-to-clear."""
        out = {"problems": []}
        for name, value in e["regs"].items():
            await self.write(name, value)
        await self.write("CTRL", CTRL["START"])
        await self.eng.clocks(3)
        out["STATUS"] = await self.read("STATUS")
        out["ERROR"] = await self.read("ERROR")
        await self.write("ERROR", 0xFFFFFFFF)
        out["ERROR_after_clear"] = await self.read("ERROR")
        self._mark = self._window()
        return out


@cocotb.test()
async def soak(dut):
    folder = Path(os.environ["DENSEHW_SOAK_JOB"])
    job = json.loads((folder / "job.json").read_text())
    cfg = ArrayConfig.from_dict(job["config"])
    pm = PortMap.from_dict(job["portmap"])
    inputs = np.load(folder / "inputs.npz")
    Clock(dut.clk, _PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    dut.drive.value = 0
    eng = Engine(dut, pm, job.get("faults", {}), job["seed"])
    eng.reset(5)
    cocotb.start_soon(eng.run())
    await eng.clocks(8)
    prog = Soak(eng, cfg, random.Random(job["seed"] * 7919 + 1))
    results = {"layers": [], "axil": {}}
    beats = {}
    for i, e in enumerate(job["layers"]):
        if e["kind"] == "probe":
            res = await prog.probe(e)
        else:
            x = inputs[f"x{i}"]
            codes = inputs[f"codes{i}"]
            e0 = inputs[f"e0_{i}"] if e["per_channel"] else None
            bias = inputs[f"bias{i}"] if e["bias"] else None
            res = await prog.layer(e, x, codes, e0, bias)
            for name, bl in res.pop("beats", {}).items():
                beats[f"{name}_{i}_last"] = np.asarray([b[1] for b in bl], dtype=np.uint8)
                if name == "m_axis_res":
                    beats[f"{name}_{i}_data"] = np.asarray([b[0] for b in bl], dtype=np.uint64)
        res["cycle"] = eng.cycle
        results["layers"].append(res)
    await eng.clocks(20)
    results["axil"] = {"violations": eng.mon_axil.violations,
                       "messages": eng.mon_axil.messages,
                       "writes": len(eng.mon_axil.writes), "reads": len(eng.mon_axil.reads),
                       "idle_problems": eng.mon_axil.idle_problems()}
    results["streams"] = {n: {"violations": m.violations, "messages": m.messages}
                          for n, m in eng.mon.items()}
    results["cycles"] = eng.cycle
    results["xz"] = {"clocks": eng.xz_clocks, "messages": eng.xz_messages}
    np.savez(folder / "outputs.npz", **beats)
    tmp = folder / "results.tmp"
    tmp.write_text(json.dumps(results))
    tmp.replace(folder / "results.json")
