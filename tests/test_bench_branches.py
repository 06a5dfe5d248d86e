"""benchmarks/bench_branches.py bookkeeping (no synthesis tools run): specs, labels, the
encoded-width MAC figures, the cache and the table."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_branches",
                                                  ROOT / "benchmarks" / "bench_branches.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_specs_resolve(bench):
    for (board, device), specs in bench.DESIGNS.items():
        kinds = {s["kind"] for s in specs}
        assert kinds == {"branch-array", "int8-array", "array"}, (board, device)
        assert {s["mult"] for s in specs if s["kind"] == "int8-array"} == {"dsp", "lut"}
        for s in specs:
            r = bench.resolve(s, board, device)
            if s["kind"] == "branch-array":
                assert r["config"]["arith"] == "branches"
            if s["kind"] == "array":
                assert r["config"]["rows"] >= 1          # the device's default file
            assert bench._label({"spec": r})


def test_measure_counts_encoded_width(bench, tmp_path, monkeypatch):
    import boards.flow
    import boards.report

    calls = []

    def fake_flow(design, **kw):
        calls.append(design.name)
        return {"design": design.name}

    def fake_summary(res):
        return {"design": res["design"], "board": "ice40", "device": "up5k",
                "macs_per_cycle": 96, "gmacs": 2.5, "luts": 1000}

    monkeypatch.setattr(boards.flow, "run_flow", fake_flow)
    monkeypatch.setattr(boards.report, "summarise", fake_summary)
    monkeypatch.setattr(bench, "_design",
                        lambda spec, board: type("D", (), {"name": spec["kind"]})())
    spec = {"kind": "branch-array", "config": {"wbits": 2, "abits": 3, "rows": 2, "cols": 3,
                                               "lanes": 16, "out_fmt": "none",
                                               "scale_fmt": "none"}}
    r = bench.measure(spec, "ice40", "up5k", seeds=(1,), root=tmp_path)
    assert r["bits"] == 6 and r["binary_gops"] == 15.0
    again = bench.measure(spec, "ice40", "up5k", seeds=(1,), root=tmp_path)
    assert again == r and calls == ["branch-array"]         # the second comes from the cache
    assert bench.cached(spec, "ice40", "up5k", seeds=(1,), root=tmp_path) == r
    assert bench.cached(spec, "ice40", "up5k", seeds=(2,), root=tmp_path) is None
    i8 = bench.measure({"kind": "int8-array", "rows": 2, "cols": 2, "mult": "lut"}, "ice40",
                       "up5k", seeds=(1,), root=tmp_path)
    assert i8["bits"] == 64 and i8["binary_gops"] == 160.0
    sh = bench.measure({"kind": "array", "config": "default"}, "ice40", "up5k", seeds=(1,),
                       root=tmp_path)
    assert sh["bits"] is None and "binary_gops" not in sh
    text = bench.table([r, i8, sh])
    assert "branches w2a3 2x3 x 16 lanes" in text and "| 15.0 |" in text
    assert "int8 MAC (LUT multipliers) 2x2" in text
