"""The task-accuracy axis of the design-space sweep (``boards/sweep.py``, ``densehw sweep
--accuracy``): a DenseShift model trained on digits and run through the array's golden model,
cached per (format, weight bits, epochs, seed); the Pareto front with accuracy on x. No synthesis
runs here: sweep results are made by hand."""

from __future__ import annotations

import json

import pytest

from boards import sweep

EPOCHS = 5        # ~0.4 s of training; measured 94.7-96.4 % golden accuracy over seeds 0-2


@pytest.fixture
def frozen_sources(monkeypatch):
    """Freeze the source fingerprints for one test: another engineer editing ``contract/`` or
    ``sw/`` meanwhile must not turn a cache hit into a retraining."""
    real, memo = sweep._fingerprint, {}
    monkeypatch.setattr(sweep, "_fingerprint", lambda pats: memo.setdefault(pats, real(pats)))
    return memo


def _no_training(*args, **kwargs):
    raise AssertionError("trained again although the result is cached")


def test_digits_accuracy_trains_once_then_serves_the_cache(tmp_path, monkeypatch,
                                                            frozen_sources):
    first = sweep.digits_accuracy("fp16", 3, epochs=EPOCHS, seed=0, root=tmp_path)
    paths = sweep.accuracy_paths("fp16", 3, epochs=EPOCHS, seed=0, root=tmp_path)
    assert paths["json"] == tmp_path / "accuracy" / f"digits_fp16_b3_e{EPOCHS}_s0.json"
    assert first["trained"] and not first["cached"]
    assert first["samples"] == 360                              # the digits test split
    assert first["golden_accuracy"] > 90.0, first
    assert first["torch_accuracy"] > 90.0, first
    # fp16 activations and an exact array: the golden model follows the float model closely
    assert abs(first["golden_accuracy"] - first["torch_accuracy"]) <= 2.0, first
    assert first["agreement"] > 0.97
    assert first["nonfinite_array_outputs"] == 0
    assert first["export"] == str(paths["export"]) and paths["export"].is_file()
    assert first["config"]["in_fmt"]["name"] == "fp16" and first["config"]["wbits"] == 3
    assert first["train_seconds"] > 0 and first["seconds"] >= first["train_seconds"]
    stored = json.loads(paths["json"].read_text())
    for key in ("export", "torch_accuracy", "golden_accuracy", "samples", "seconds", "epochs",
                "seed", "fmt", "wbits"):
        assert stored[key] == first[key], key

    monkeypatch.setattr(sweep, "_train_digits", _no_training)
    again = sweep.digits_accuracy("fp16", 3, epochs=EPOCHS, seed=0, root=tmp_path)
    assert again["cached"] and again["golden_accuracy"] == first["golden_accuracy"]

    # another format of the same weight bits reuses the trained export (no training)
    bf16 = sweep.digits_accuracy("bf16", 3, epochs=EPOCHS, seed=0, root=tmp_path)
    assert not bf16["cached"] and not bf16["trained"]
    assert bf16["config"]["in_fmt"]["name"] == "bf16"
    assert bf16["torch_accuracy"] == first["torch_accuracy"]        # the same float model
    assert bf16["golden_accuracy"] > 90.0

    # other compiler/runtime sources: the record is recomputed, the export still reused;
    # other training sources or another budget: it would have to train
    frozen_sources[sweep.ACCURACY_SOURCES] = "changed"
    redo = sweep.digits_accuracy("fp16", 3, epochs=EPOCHS, seed=0, root=tmp_path)
    assert not redo["cached"] and not redo["trained"]
    assert redo["golden_accuracy"] == first["golden_accuracy"]
    frozen_sources[sweep.TRAIN_SOURCES] = "changed"      # a subset of ACCURACY_SOURCES,
    frozen_sources[sweep.ACCURACY_SOURCES] = "changed again"          # so both change
    with pytest.raises(AssertionError, match="trained again"):
        sweep.digits_accuracy("fp16", 3, epochs=EPOCHS, seed=0, root=tmp_path)
    with pytest.raises(AssertionError, match="trained again"):
        sweep.digits_accuracy("fp16", 3, epochs=EPOCHS + 1, seed=0, root=tmp_path)


def test_digits_accuracy_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="Unknown format"):
        sweep.digits_accuracy("fp7", 3, root=tmp_path)
    with pytest.raises(ValueError, match="6"):
        sweep.digits_accuracy("fp16", 6, root=tmp_path)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        sweep.digits_accuracy("fp16", 3, epochs=0, root=tmp_path)
    assert not (tmp_path / "accuracy").exists()


# -- hand-made sweep results ----------------------------------------------------------------

def _array(fmt, b, rows, luts, fmax=50.0, board="ice40", device="up5k"):
    macs = rows * rows
    return {"board": board, "device": device, "kind": "shift-array",
            "design": f"array_{fmt}_b{b}_{rows}x{rows}_d512_0000",
            "spec": {"kind": "array", "config": {"in_fmt": fmt, "wbits": b, "rows": rows,
                                                 "cols": rows, "depth": 512}},
            "macs_per_cycle": macs, "luts": luts, "fmax_mhz": fmax,
            "mmacs_per_klut": round(macs * fmax / (luts / 1000.0), 1)}


def _baseline(kind, fmt, rows, luts, fmax=50.0):
    spec = {"kind": kind, "rows": rows, "cols": rows}
    if fmt:
        spec["fmt"] = fmt
    macs = rows * rows
    return {"board": "ice40", "device": "up5k", "kind": kind, "spec": spec,
            "design": f"{kind.replace('-', '')}_{fmt or 'int8'}_{rows}x{rows}",
            "macs_per_cycle": macs, "luts": luts, "fmax_mhz": fmax,
            "mmacs_per_klut": round(macs * fmax / (luts / 1000.0), 1)}


def _fake_records(calls):
    accuracy = {("fp16", 2): 97.5, ("fp16", 3): 98.6, ("bf16", 3): 98.9}

    def fake(fmt, wbits, *, epochs, seed, root):
        calls.append((fmt, wbits, epochs, seed))
        if (fmt, wbits) not in accuracy:
            raise ValueError(f"no model for {fmt} B={wbits}")
        return {"fmt": fmt, "wbits": wbits, "epochs": epochs, "seed": seed, "samples": 360,
                "golden_accuracy": accuracy[fmt, wbits], "torch_accuracy": 98.6,
                "agreement": 1.0, "train_seconds": 1.0, "trained": False, "cached": True}
    return fake


def test_pareto_front_with_accuracy_on_x():
    pts = [(98.0, 10.0), (99.0, 5.0), (97.0, 8.0), (99.0, 4.0), (98.0, 10.0)]
    # higher accuracy and higher efficiency are better; equal points are both kept
    assert sweep.pareto_front(pts, higher_x_better=True) == [0, 1, 4]
    # as an error (lower is better) the same numbers give another front
    assert sweep.pareto_front(pts) == [0, 2, 4]
    assert sweep.pareto_front([(1.0, 10.0), (0.5, 5.0), (2.0, 8.0), (0.5, 4.0)]) == [0, 1]


def test_attach_accuracy_marks_baselines_and_failures(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "digits_accuracy", _fake_records(calls))
    results = [_array("fp16", 3, 2, 4000), _array("fp16", 3, 4, 9000),
               _array("bf16", 3, 2, 5000), _array("fp16", 4, 2, 4200),
               _baseline("fp-mac", "fp16", 2, 1500), _baseline("int8-mac", None, 2, 900),
               dict(_array("fp16", 2, 2, 3000), error="nextpnr failed")]
    records = sweep.attach_accuracy(results, epochs=7, seed=3, root=tmp_path)
    # one computation per (format, weight bits), array shape does not matter; failed points
    # are not asked
    assert sorted(calls) == [("bf16", 3, 7, 3), ("fp16", 3, 7, 3), ("fp16", 4, 7, 3)]
    assert [r.get("task_accuracy") for r in results] == [98.6, 98.6, 98.9, None, None, None,
                                                         None]
    assert "no model for fp16 B=4" in results[3]["task_accuracy_error"]
    assert "no task accuracy" in results[4]["task_accuracy_note"]
    assert all(r["accuracy_axis"] == "digits" for r in results)
    assert results[4]["gemm_rel_error"] > results[0]["gemm_rel_error"] > 0   # kept as well
    assert results[0]["task_accuracy_file"].endswith("digits_fp16_b3_e7_s3.json")
    assert {(r["fmt"], r["wbits"]) for r in records} == {("fp16", 3), ("bf16", 3), ("fp16", 4)}
    assert [r for r in records if r.get("error")] == [
        {"fmt": "fp16", "wbits": 4, "error": "no model for fp16 B=4"}]

    calls.clear()
    plain = [_array("fp16", 3, 2, 4000)]
    assert sweep.attach_accuracy(plain, axis="gemm-error", root=tmp_path) == []
    assert calls == [] and "task_accuracy" not in plain[0] and plain[0]["gemm_rel_error"] > 0
    with pytest.raises(ValueError, match="accuracy axis must be one of digits, gemm-error"):
        sweep.attach_accuracy(plain, axis="bogus")


def test_write_sweep_in_accuracy_mode(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "digits_accuracy", _fake_records([]))
    results = [_array("fp16", 3, 2, 4000),          # 98.6 %,  50 MMAC/s per kLUT
               _array("fp16", 3, 4, 16000),         # 98.6 %,  50: tie with the 2x2
               _array("bf16", 3, 2, 8000),          # 98.9 %,  25: best accuracy
               _array("fp16", 2, 2, 5000),          # 97.5 %,  40: dominated by fp16 B=3 2x2
               _baseline("fp-mac", "fp16", 2, 1000),  # 200, but no task accuracy
               _array("fp16", 3, 2, 2000, board="ecp5", device="25f")]
    records = sweep.attach_accuracy(results, root=tmp_path)
    paths = sweep.write_sweep(results, tmp_path, accuracy=records)
    assert sweep.plot_axis(results) == "digits"
    got = json.loads(paths["json"].read_text())
    assert [r.get("pareto_front") for r in got] == [True, True, True, False, None, True]
    assert got[4]["task_accuracy"] is None and got[4]["gemm_rel_error"] is not None
    md = paths["md"].read_text()
    assert "digits % (golden)" in md and "| 98.60 |" in md
    assert "digits test accuracy (%)" in md and "higher is better" in md
    assert "no task accuracy" in md
    assert "| bf16 | 3 | 98.90 | 98.60 |" in md                      # the records' table
    assert paths["png"].stat().st_size > 1000


def test_write_sweep_falls_back_to_gemm_error(tmp_path):
    results = [_array("fp16", 3, 2, 4000), _array("bf16", 3, 2, 3000),
               _baseline("fp-mac", "bf16", 2, 1000)]
    sweep.attach_accuracy(results, axis="gemm-error", root=tmp_path)
    assert sweep.plot_axis(results) == "gemm-error"
    paths = sweep.write_sweep(results, tmp_path)
    got = json.loads(paths["json"].read_text())
    # error: fp16 array < bf16 array < bf16 MAC; efficiency: the reverse, all on the front
    errors = [r["gemm_rel_error"] for r in got]
    assert errors[0] < errors[1] < errors[2]
    assert [r["pareto_front"] for r in got] == [True, True, True]
    md = paths["md"].read_text()
    assert "relative RMS error vs float64" in md and "lower is better" in md
    assert "## Digits accuracy" not in md
    assert not (tmp_path / "accuracy").exists()
    with pytest.raises(ValueError, match="axis must be one of"):
        sweep.plot_pareto(results, tmp_path / "x.png", axis="bogus")


# -- command line -----------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--accuracy", "bogus"], "--accuracy must be one of digits, gemm-error, not 'bogus'"),
    (["--accuracy-epochs", "0"], "--accuracy-epochs must be a positive integer, not '0'"),
    (["--accuracy-epochs", "many"], "--accuracy-epochs must be a positive integer"),
    (["--accuracy-seed", "x"], "--accuracy-seed must be an integer, not 'x'"),
])
def test_cli_accuracy_option_errors(argv, message, tmp_path, capsys, monkeypatch):
    from densehw.cli import main

    monkeypatch.setattr(sweep, "run_jobs", _no_training)      # never reached
    assert main(["sweep", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("densehw sweep: error: "), err
    assert message in err
    assert not any(tmp_path.iterdir())


def test_cli_sweep_digits_axis_without_synthesis(tmp_path, capsys, monkeypatch,
                                                  frozen_sources):
    """``densehw sweep`` end to end with the synthesis replaced by hand-made results: the
    accuracy is trained (tiny budget), attached and written."""
    from densehw.cli import main

    def fake_run_jobs(jobs, **kwargs):
        assert len(jobs) == 3                         # the array, the fp16 and int8 MACs
        return [_array("fp16", 3, 2, 4000),
                _baseline("fp-mac", "fp16", 2, 1000)]
    monkeypatch.setattr(sweep, "run_jobs", fake_run_jobs)
    rc = main(["sweep", "--wbits", "3", "--formats", "fp16", "--shapes", "2x2", "--devices",
               "asic", "--baselines", "--out", str(tmp_path), "--accuracy-epochs", str(EPOCHS),
               "--jobs", "1"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "digits accuracy fp16 B=3: golden" in err and f"{EPOCHS} epochs, seed 0" in err
    got = json.loads((tmp_path / "sweep.json").read_text())
    assert got[0]["task_accuracy"] > 90.0 and got[0]["accuracy_axis"] == "digits"
    assert got[1]["task_accuracy"] is None
    assert (tmp_path / "accuracy" / f"digits_fp16_b3_e{EPOCHS}_s0.json").is_file()
    assert (tmp_path / "pareto.png").is_file()


def test_training_sources_exist_and_are_part_of_the_record_fingerprint():
    import fnmatch
    import pathlib

    root = pathlib.Path(sweep.__file__).resolve().parent.parent
    for name in sweep.TRAIN_SOURCES:
        assert (root / name).is_file(), name
        assert any(fnmatch.fnmatch(name, pat) for pat in sweep.ACCURACY_SOURCES), name
    assert sweep._fingerprint(sweep.TRAIN_SOURCES) != sweep._fingerprint(sweep.ACCURACY_SOURCES)
