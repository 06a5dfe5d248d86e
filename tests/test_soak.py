"""The soak (:mod:`sim.soak`): its protocol monitors, a short run, replay, and proof that every
checker fails on a broken driver or broken RTL."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from contract.array import ArrayConfig
from sim import soak
from sim.axi_monitor import AxiLiteMonitor, StreamMonitor, framing_problems
from sim.soak_top import PortMap, soak_wrapper

needs_verilator = pytest.mark.skipif(shutil.which("verilator") is None,
                                     reason="verilator not installed")

SMALL = ArrayConfig(in_fmt="fp16", wbits=3, rows=2, cols=3, depth=32)


# -- monitors on hand-made traces ---------------------------------------------------------------

def stream(trace, rst=()):
    """Feed ``(valid, ready, data, last)`` per clock; returns the monitor."""
    mon = StreamMonitor("s")
    for t, (v, r, d, lst) in enumerate(trace):
        mon.sample(t, int(t in rst), v, r, d, lst)
    return mon


def test_stream_monitor_rules():
    good = [(1, 0, 5, 0), (1, 0, 5, 0), (1, 1, 5, 0), (0, 1, 9, 1), (1, 1, 6, 1), (1, 0, 7, 0),
            (1, 1, 7, 0)]
    mon = stream(good)
    assert mon.violations == 0
    assert mon.beats == [(5, 0), (6, 1), (7, 0)]
    c = mon.counts.snapshot()
    assert (c["transfers"], c["lasts"], c["stalls"], c["idle"]) == (3, 1, 3, 1)
    changed = stream([(1, 0, 5, 0), (1, 1, 4, 0)])
    assert changed.violations == 1 and "changed while stalled" in changed.messages[0]
    last_changed = stream([(1, 0, 5, 0), (1, 1, 5, 1)])
    assert last_changed.violations == 1
    dropped = stream([(1, 0, 5, 0), (0, 0, 5, 0), (1, 1, 5, 0)])
    assert dropped.violations == 1 and "tvalid dropped" in dropped.messages[0]
    # a reset between the stall and the change excuses it
    assert stream([(1, 0, 5, 0), (0, 0, 0, 0), (1, 1, 4, 0)], rst={1}).violations == 0


def test_framing_problems():
    assert framing_problems("r", [0, 1, 0, 0, 1], [2, 3]) == []
    (p,) = framing_problems("r", [0, 1, 0, 1, 0], [2, 3])
    assert "tlast at beat 3 is 1, the framing says 0" in p
    (p,) = framing_problems("r", [0, 1], [2, 3])
    assert "2 beats, expected 5" in p


AXIL_IDLE = dict(awvalid=0, awready=0, awaddr=0, wvalid=0, wready=0, wdata=0, wstrb=0,
                 bvalid=0, bready=0, bresp=0, arvalid=0, arready=0, araddr=0, rvalid=0,
                 rready=0, rdata=0, rresp=0)


def axil(trace):
    mon = AxiLiteMonitor()
    for t, changes in enumerate(trace):
        mon.sample(t, 0, dict(AXIL_IDLE, **changes))
    return mon


def test_axil_monitor_write_orders_and_reads():
    aw = dict(awvalid=1, awaddr=0x30)
    w = dict(wvalid=1, wdata=7, wstrb=0x3)
    both_taken = dict(aw, **w, awready=1, wready=1)
    b = dict(bvalid=1, bready=1)
    for trace in ([aw, aw, both_taken, {}, b],                              # address first
                  [w, w, both_taken, b],                                    # data first
                  [both_taken, dict(bvalid=1), b],                          # together
                  [dict(aw, awready=1), dict(w, wready=1), b]):             # taken apart
        mon = axil(trace)
        assert mon.violations == 0, mon.messages
        assert mon.writes == [(0x30, 7, 0x3)] and mon.idle_problems() == []
    mon = axil([dict(arvalid=1, araddr=0x24), dict(arvalid=1, araddr=0x24, arready=1), {},
                dict(rvalid=1, rdata=2), dict(rvalid=1, rdata=2, rready=1)])
    assert mon.violations == 0 and mon.reads == [(0x24, 2)]


@pytest.mark.parametrize("trace, message", [
    ([dict(awvalid=1, awaddr=0x30), dict(awvalid=1, awaddr=0x34, awready=1, wvalid=1,
                                         wready=1)], "aw channel changed while stalled"),
    ([dict(wvalid=1, wdata=1), dict(wvalid=0)], "wvalid dropped before wready"),
    ([dict(bvalid=1, bready=1)], "bvalid without a write"),
    ([dict(awvalid=1, awready=1, wvalid=1, wready=1), dict(bvalid=1, bready=1, bresp=2)],
     "bresp 2"),
    ([dict(rvalid=1, rready=1)], "rvalid without a read address"),
    ([dict(arvalid=1, arready=1), dict(rvalid=1, rdata=1), dict(rvalid=1, rdata=2, rready=1)],
     "r channel changed while stalled"),
])
def test_axil_monitor_catches(trace, message):
    mon = axil(trace)
    assert mon.violations >= 1 and any(message in m for m in mon.messages), mon.messages


def test_axil_monitor_outstanding():
    mon = axil([dict(awvalid=1, awready=1, wvalid=1, wready=1), dict(arvalid=1, arready=1)])
    assert mon.idle_problems() == ["s_axil: 1 writes without a response",
                                   "s_axil: 1 reads without a response"]


def test_wrapper_ports():
    from hw.array_top import generate_array_verilog

    text = generate_array_verilog(SMALL, name="densehw_array")
    wrapped, pm = soak_wrapper(text, "densehw_array")
    names = [p[1] for p in pm.ports]
    assert {"clk", "rst", "s_axis_act__tdata", "m_axis_res__tready", "s_axil__wstrb",
            "irq"} <= set(names)
    assert "clk" not in pm.drive and "rst" not in pm.drive
    assert pm.probe_width == sum(w for _, _, w in pm.ports)
    assert pm.drive_width == sum(w for d, n, w in pm.ports
                                 if d == "input" and n not in ("clk", "rst"))
    word = pm.pack({"s_axil__wstrb": 0xA, "s_axis_act__tdata": (1 << 32) - 1})
    off, width = pm.drive["s_axil__wstrb"]
    assert width == 4 and (word >> off) & 0xF == 0xA
    assert "module densehw_soak(" in wrapped and "densehw_array dut (" in wrapped
    assert PortMap.from_dict(pm.to_dict()) == pm


def test_layer_entries_cover_the_plan():
    entries = [soak.layer_entry(SMALL, 5, i)[0] for i in range(600)]
    layers = [e for e in entries if e["kind"] == "layer"]
    assert any(e["kind"] == "probe" for e in entries)
    triggers = {e["reset"]["on"] for e in layers if e["reset"]}
    assert triggers == {"wgt", "act", "res", "clock"}
    stalls = np.array([e["stall"] for e in layers])
    assert (stalls.max(axis=0) == 0.9).all() and (stalls.min(axis=0) == 0).all()
    assert any(e["start_busy"] for e in layers) and any(e["merge_frames"] for e in layers)
    assert any(e["k"] == SMALL.depth for e in layers)
    assert {e["per_channel"] for e in layers} == {True, False}
    # layer i depends on (seed, i) only
    assert soak.layer_entry(SMALL, 5, 17)[0] == entries[17]


# -- on the simulator ------------------------------------------------------------------------------

def run(tmp_path, layers, *, seed=3, faults=None, verilog=None, variant=None, first=0,
        configs=(SMALL,)):
    return soak.soak(layers, seed=seed, first=first, chunk=max(layers, 1), out=tmp_path,
                     configs=list(configs), echo=lambda s: None, faults=faults)


@needs_verilator
def test_short_soak_is_clean_and_replays(tmp_path):
    """120 random layers (resets in every phase, 90 % stalls, bad STARTs, a second START,
    merged frames) with every count 0; the same seed replays to the same counts and clocks."""
    rep = run(tmp_path / "a", 120)
    assert rep["passed"], rep["problems"][:5]
    assert rep["layers"] >= 110 and rep["outputs"] > 1000 and rep["resets"] >= 5
    for key in soak.REPORT_KEYS[2:]:
        if key != "resets":
            assert rep[key] == 0, key
    assert (tmp_path / "a" / "report.json").is_file()
    again = run(tmp_path / "b", 30)
    first = run(tmp_path / "c", 30)
    assert (again["clocks"], again["outputs"], again["resets"]) == \
        (first["clocks"], first["outputs"], first["resets"])


def _broken_driver(tmp_path, faults):
    return run(tmp_path, 6, seed=11, faults=faults)


@needs_verilator
@pytest.mark.parametrize("faults, where", [
    ({"act": "unstable"}, "s_axis_act"),
    ({"act": "drop"}, "s_axis_act"),
    ({"wgt": "unstable"}, "s_axis_wgt"),
    ({"act": "tlast"}, "s_axis_act"),
    ({"axil": "unstable"}, "s_axil"),
    ({"axil": "drop"}, "s_axil"),
])
def test_monitors_catch_a_broken_driver(tmp_path, faults, where):
    rep = _broken_driver(tmp_path, faults)
    assert rep["protocol_violations"] > 0, rep["problems"]
    assert any(where in p for p in rep["problems"]), rep["problems"][:5]


needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None,
                                  reason="iverilog not installed")


@needs_icarus
@pytest.mark.parametrize("target, broken, key, where", [
    ("assign m_axis_res__tdata = res__payload[15:0];",
     "assign m_axis_res__tdata = res__payload[15:0] ^ {15'h0, ~m_axis_res__tready};",
     "protocol_violations", "m_axis_res clock"),
    ("assign m_axis_res__tlast = res__payload[16];", "assign m_axis_res__tlast = 1'h0;",
     "protocol_violations", "m_axis_res: "),
    (".r_en(res__ready),",
     ".r_en(res__ready | res__payload[0]),", "lost_beats", "m_axis_res"),
    (".r_en(res__ready),",
     ".r_en(res__ready & ~res__payload[0]),", "duplicated_beats", ""),
    ("assign s_axil__bresp = 2'h0;", "assign s_axil__bresp = 2'h2;", "protocol_violations",
     "bresp 2"),
], ids=["res-unstable", "res-no-tlast", "res-lost", "res-duplicated", "axil-bresp"])
def test_checks_catch_broken_rtl(tmp_path, target, broken, key, where):
    """Copies of the array's RTL with one deliberate fault (Icarus: each is a build of its
    own): the soak's counts say so."""
    from sim.array_driver import array_verilog

    text = array_verilog(SMALL)
    assert text.count(target) == 1, "the generated RTL changed: update this test's target line"
    variant = "broken-" + str(abs(hash(broken)) % 10**8)
    rep = soak.soak(4, seed=13, chunk=4, out=tmp_path, configs=[SMALL], echo=lambda s: None,
                    sim="icarus", verilog=text.replace(target, broken), variant=variant)
    assert rep[key] > 0, (key, rep["problems"][:5])
    assert any(where in p for p in rep["problems"]), rep["problems"][:5]
