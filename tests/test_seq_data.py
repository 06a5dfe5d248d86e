"""The spoken-intent set (sw.data.spoken_intents): phrases, synthesis, voice split and cache,
on a tiny generated set; the sequence-experiment table renderer."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from sw.data import (
    _OBJECT_WORDS,
    INTENTS,
    LOCATIONS,
    SMOKE_INTENTS,
    IntentSpec,
    build_intents,
    intent_phrase,
    spoken_intents,
)

SEED = 0
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (make setup installs it)")


def test_intents_and_phrases():
    assert len(INTENTS) == len(set(INTENTS)) == 34
    rng = np.random.default_rng(SEED)
    seen = Counter()
    for i, (_action, obj, loc) in enumerate(INTENTS):
        for _ in range(30):
            text = intent_phrase(i, rng)
            seen[text] += 1
            assert text == " ".join(text.split()) and text.islower(), text
            assert set(_OBJECT_WORDS[obj]) & set(text.split()), (INTENTS[i], text)
            rooms = {"kitchen", "bedroom", "washroom", "bathroom"}
            said = rooms & set(text.split())
            # the location is said exactly when the intent has one, and it is the right room
            assert (loc == "none") == (not said), (INTENTS[i], text)
            if loc != "none":
                assert said <= ({"washroom", "bathroom"} if loc == "washroom" else {loc})
    assert len(seen) > 300                               # many distinct phrasings
    assert set(LOCATIONS) == {loc for _, _, loc in INTENTS}


def test_key_ignores_the_split_only():
    a = IntentSpec()
    assert IntentSpec(test_voices=("en-us",), val_voices=("en-gb",)).key() == a.key()
    assert IntentSpec(per_voice=10).key() != a.key()
    assert IntentSpec(snr_db=(20.0,)).key() != a.key()
    assert a.frames == 121


@needs_espeak
def test_build_deterministic_and_split(tmp_path):
    spec = IntentSpec(voices=("en-us", "en-gb"), per_voice=4, seconds=1.5,
                      val_voices=(), test_voices=("en-gb",))
    a = build_intents(spec, seed=SEED)
    b = build_intents(spec, seed=SEED)
    assert torch.equal(a["features"], b["features"]) and a["texts"] == b["texts"]
    assert a["features"].shape == (8, spec.n_mels, spec.frames)
    assert a["voices"] == ["en-us"] * 4 + ["en-gb"] * 4
    assert set(a["noise"]) <= set(spec.noises) and set(a["snr_db"]) <= set(spec.snr_db)
    assert torch.isfinite(a["features"].float()).all()
    c = build_intents(spec, seed=SEED + 1)
    assert c["texts"] != a["texts"]


@needs_espeak
def test_spoken_intents_cache_and_voice_split(tmp_path):
    split = spoken_intents(spec=SMOKE_INTENTS, cache_dir=tmp_path)
    n = SMOKE_INTENTS.per_voice
    assert split.sizes() == {"train": n, "val": n, "test": n}   # one voice each
    assert split.num_classes == len(INTENTS)
    assert split.x_train.shape[1:] == (SMOKE_INTENTS.n_mels, SMOKE_INTENTS.frames)
    # normalised with the training statistics
    assert split.x_train.mean(dim=(0, 2)).abs().max() < 1e-3
    files = list(tmp_path.glob("intents_*.pt"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    again = spoken_intents(spec=SMOKE_INTENTS, cache_dir=tmp_path)     # read, not rebuilt
    assert files[0].stat().st_mtime_ns == mtime
    assert torch.equal(again.x_test, split.x_test)
    files[0].write_bytes(b"junk")                                      # unreadable: rebuilt
    third = spoken_intents(spec=SMOKE_INTENTS, cache_dir=tmp_path)
    assert torch.equal(third.x_test, split.x_test)


def test_render_methods_table():
    from sw.seq_experiments import METHOD_ROWS, render

    runs = {"ResNet / FP32": [{"seed": s, "epochs": 3, "lr": 0.005, "params": 10,
                               "train_acc": 90.0 + s, "val_acc": 80.0 + s, "test_acc": 70.0 + s,
                               "seconds": 60.0} for s in range(3)]}
    md = render("methods", runs, command="python -m sw.seq_experiments methods",
                sizes={"train": 3, "val": 1, "test": 1})
    row = "| ResNet | FP32 | 3 | 0.005 | 10 | 91.00 ± 1.00 | 81.00 ± 1.00 | 71.00 ± 1.00 | 3 |"
    assert row in md
    assert "3 seeds [0, 1, 2]" in md and "samples" in md and "3.0 min" in md
    assert {"FP32", "DenseShift 5-bit", "S3 3-bit", "DeepShift-PS 3-bit"} <= set(METHOD_ROWS)
