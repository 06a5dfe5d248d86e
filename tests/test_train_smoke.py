"""Training smoke tests: every experiment in its tiny version, one real (short) training run,
determinism, and the `densehw train` command line. Whole file well under a minute."""

import json
import shutil
import time

import pytest
import torch

from sw.data import class_subset, digits
from sw.models import DigitsCNN
from sw.train import TrainConfig, evaluate, set_seed, train

torch.set_num_threads(1)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (make setup installs it)")


def test_digits_split_is_fixed_and_stratified():
    a, b = digits(), digits()
    assert a.sizes() == {"train": 1077, "val": 360, "test": 360}
    assert torch.equal(a.y_test, b.y_test) and torch.equal(a.x_train, b.x_train)
    counts = torch.bincount(a.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37, counts.tolist()
    sub = class_subset(a, [5, 6, 7, 8, 9])
    assert sub.num_classes == 5 and set(sub.y_train.tolist()) == {0, 1, 2, 3, 4}
    assert len(sub.y_test) == int((a.y_test >= 5).sum())


def test_denseshift_learns_digits_and_is_deterministic():
    data = digits()
    accs, hists = [], []
    for _ in range(2):
        set_seed(0)
        model = DigitsCNN(method="denseshift", wbits=3, width=6)
        hist = train(model, data, TrainConfig(epochs=4, progress=False, track_freezing=True))
        hists.append(hist)
        accs.append(evaluate(model, data.x_val, data.y_val))
    assert accs[0] == accs[1], accs
    assert [e["loss"] for e in hists[0]["epochs"][1:]] == [e["loss"] for e in
                                                           hists[1]["epochs"][1:]]
    assert accs[0] > 85.0, f"DenseShift 3-bit reached only {accs[0]:.1f} % after 4 epochs"
    assert 0 < hists[0]["epochs"][-1]["sign_changed"] <= 1


@needs_espeak
def test_all_experiments_smoke(tmp_path):
    from sw.experiments import run_all

    start = time.perf_counter()
    results = run_all(tmp_path / "out", smoke=True, cache_dir=tmp_path / "data")
    assert time.perf_counter() - start < 60
    for name in ("digits_table", "freezing", "init_ablation", "speech"):
        for ext in ("json", "md", "png"):
            assert (tmp_path / "out" / f"{name}.{ext}").stat().st_size > 0, (name, ext)
        payload = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert payload["smoke"] is True
    rows = results["table"]["rows"]
    assert len(rows) == 10 and all(0 <= r["test"]["mean"] <= 100 for r in rows)
    assert {t["target"] for t in results["table"]["targets"]} >= {
        "DenseShift 3-bit >= FP32 - 0.5", "zero-free 2-bit > ternary (best of both)"}
    curves = results["freezing"]["curves"]
    assert [c["key"] for c in curves] == ["dsps3", "s3_3", "ds3"]
    assert all(c["sign_changed"][0] == 0.0 for c in curves)
    assert results["speech"]["sizes"] == {"train": 10, "val": 10, "test": 10}
    # the cache is reused
    assert len(list((tmp_path / "data").glob("speech_*.pt"))) == 1


def test_cli_digits_export(tmp_path, capsys):
    from densehw.cli import main

    out = tmp_path / "m.dshw"
    rc = main(["train", "digits", "--epochs", "1", "--no-progress", "--export", str(out),
               "--json", str(tmp_path / "h.json")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "denseshift 3-bit seed 0: val" in text and "exported 3 shift layers" in text
    assert out.stat().st_size > 0 and json.loads((tmp_path / "h.json").read_text())["test_acc"] > 0


def test_cli_errors_are_one_line(tmp_path, capsys):
    from densehw.cli import main

    assert main(["train", "digits", "--method", "s3", "--export", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err == ("densehw train: error: --export needs zero-free weights (denseshift), "
                   "not --method s3\n")
    assert not (tmp_path / "x").exists()
    assert main(["train", "digits", "--wbits", "7"]) == 2
    assert "--wbits must be in 2..5, not 7" in capsys.readouterr().err
