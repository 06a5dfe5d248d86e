"""The ASIC table (``boards.asic_table``): records, ratios, the Markdown, argument errors."""

import json
import pathlib

import pytest


def _result(area_um2, fmax, macs, **extra):
    lib = {"area_um2": area_um2, "fmax_mhz": fmax, "critical_path_ns": 1000 / fmax - 0.1,
           "cells": 10, "ffs": 5, "ff_area_um2": 96.0, "buffers_added": 1,
           "startpoint": "a_reg", "endpoint": "b_reg", "logic_levels": 7, "path_cells": {},
           "library": {"name": "osu018_stdcells"}, "sta_version": "OpenSTA 2.0.17"}
    gmacs = macs * fmax / 1000
    return {"macs_per_cycle": macs, "area_um2": area_um2, "std_cells": 10,
            "critical_path_ns": lib["critical_path_ns"], "fmax_mhz": fmax, "gmacs": gmacs,
            "gmacs_per_mm2": round(gmacs / (area_um2 / 1e6), 2), "liberty": lib,
            "commit": "abc1234", **extra}


def test_records_ratios_and_table():
    from boards.asic_table import add_ratios, record, table

    recs = [record("shift", 8, 8, _result(2.0e6, 200.0, 64)),
            record("fma16", 8, 8, _result(6.0e6, 200.0, 64)),
            record("fma16-32", 8, 8, _result(8.0e6, 200.0, 64)),
            record("bf16", 8, 8, {"error": "FlowError: yosys failed"}),
            record("int8", 8, 8, {"macs_per_cycle": 64, "liberty": {"error": "no sta"}})]
    add_ratios(recs)
    assert recs[0]["ratio_vs_best_fp16"] == pytest.approx(3.0, abs=0.01)
    assert recs[1]["ratio_vs_best_fp16"] == 1.0
    assert recs[3]["error"] == "FlowError: yosys failed" and recs[4]["error"] == "no sta"
    assert recs[0]["ffs"] == 5 and recs[0]["path_levels"] == 7
    md = table(recs)
    assert "| shift array, exact fp16, B=3 | 8x8 | 2.000 | 10 | 5 (0 %) | - | 4.900 |" in md
    assert md.count("abc1234") == 3
    assert "3.00x" in md and "`a_reg` -> `b_reg`, 7 levels" in md
    assert "- bf16 FMA, fp32 acc 8x8: FlowError: yosys failed" in md


def test_asic_jobs_have_the_liberty_flow_and_distinct_keys(tmp_path):
    from boards.asic_table import DESIGNS, asic_job

    jobs = [asic_job(d, 2, 2, root=tmp_path) for d in DESIGNS]
    assert all(j["pnr"] and j["blocks"] is False and j["board"] == "asic" for j in jobs)
    assert len({j["workdir"] for j in jobs}) == len(jobs)


@pytest.mark.parametrize("argv, msg", [
    (["--designs", "shift,fp64"], "unknown design 'fp64'"),
    (["--sizes", "8by8"], "--sizes wants RxC"),
    (["--sizes", "0x8"], "--sizes wants positive RxC"),
    (["--jobs", "0"], "workers must be a positive integer"),
    (["--scheduler", "8786"], "must look like tcp://HOST:PORT"),
])
def test_bad_arguments_exit_2(argv, msg, tmp_path, capsys):
    from boards.asic_table import main

    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and msg in err, err
    assert not (tmp_path / "out").exists()


def test_cached_only_reads_the_cache(tmp_path, capsys):
    from boards.asic_table import asic_job, main

    job = asic_job("shift", 2, 2, root=tmp_path / "cache")
    pathlib.Path(job["workdir"]).mkdir(parents=True)
    (pathlib.Path(job["workdir"]) / "result.json").write_text(
        json.dumps(_result(1.0e6, 250.0, 4)))
    rc = main(["--sizes", "2x2", "--designs", "shift,fma16", "--cached-only",
               "--out", str(tmp_path)])
    assert rc == 1                                 # fma16 was not measured
    doc = json.loads((tmp_path / "asic.json").read_text())
    shift, fma = doc["records"]
    assert shift["gmacs_per_mm2"] == 1.0 and shift["commit"] == "abc1234"
    assert shift["command"] == "python -m boards.asic_table --sizes 2x2 --designs shift"
    assert fma["error"] == "not measured (--cached-only)"
    assert doc["commit"] == "abc1234"
    assert "not measured" in (tmp_path / "asic.md").read_text()


def test_docs_keep_the_points_this_run_did_not_measure(tmp_path):
    """``--docs``: measured and failed points replace theirs; points not asked for, or not in
    the cache, keep their figures and commits; the ratios are recomputed over the merge."""
    from boards.asic_table import DOC_BEGIN, DOC_END, NOT_MEASURED, record, write_docs

    (tmp_path / "docs" / "results").mkdir(parents=True)
    md = tmp_path / "docs" / "synthesis.md"
    md.write_text(f"# S\n\n{DOC_BEGIN}\nold\n{DOC_END}\n\nprose\n")
    old = [record("shift", 8, 8, _result(2.0e6, 200.0, 64, commit="old1111")),
           record("fma16", 8, 8, _result(6.0e6, 200.0, 64, commit="old1111")),
           record("shift", 16, 16, _result(8.0e6, 200.0, 256, commit="old2222")),
           record("fma16", 16, 16, {"error": "ValueError: n must be in [1, 64], not 256"}),
           record("fma16-32", 16, 16, {"error": "ValueError: n must be in [1, 64], not 256"})]
    (tmp_path / "docs" / "results" / "asic.json").write_text(json.dumps({"records": old}))
    new = [record("fma16", 16, 16, _result(16.0e6, 200.0, 256, commit="new3333")),
           record("shift", 8, 8, {"error": NOT_MEASURED}),
           record("int8", 8, 8, {"error": NOT_MEASURED}),
           record("bf16", 16, 16, {"error": "FlowError: yosys failed"}),
           record("fma16-32", 16, 16, {"error": NOT_MEASURED})]
    doc = write_docs({"command": "x", "records": new}, root=tmp_path)
    recs = {(r["design"], r["rows"]): r for r in doc["records"]}
    assert [(r["design"], r["rows"]) for r in doc["records"]] == [
        ("shift", 8), ("fma16", 8), ("int8", 8), ("shift", 16), ("fma16", 16), ("fma16-32", 16),
        ("bf16", 16)]
    assert recs["shift", 8]["commit"] == "old1111" and recs["shift", 8]["area_um2"] == 2.0e6
    assert recs["shift", 16]["commit"] == "old2222"
    assert recs["fma16", 16]["commit"] == "new3333" and not recs["fma16", 16]["error"]
    assert recs["int8", 8]["error"] == NOT_MEASURED
    assert recs["fma16-32", 16]["error"] == NOT_MEASURED       # an old error is not kept
    assert recs["bf16", 16]["error"] == "FlowError: yosys failed"
    assert recs["shift", 16]["ratio_vs_best_fp16"] == pytest.approx(2.0, abs=0.01)
    assert recs["shift", 8]["ratio_vs_best_fp16"] == pytest.approx(3.0, abs=0.01)
    assert doc["commit"] == "new3333, old1111, old2222"
    saved = json.loads((tmp_path / "docs" / "results" / "asic.json").read_text())
    assert saved["records"] == doc["records"]
    text = md.read_text()
    assert "old\n" not in text and text.endswith(f"{DOC_END}\n\nprose\n")
    assert text.count("old2222") == 1 and "new3333" in text and "- bf16 FMA" in text
