"""The multi-branch training table: digits and spoken commands for ``(k_w, k_a)`` in
``{(1,1), (2,2), (3,3), (4,4), (2,8)}`` beside FP32 and DenseShift 3-bit, several seeds.

Same models, data, schedules and protocol as :mod:`sw.experiments` (digits: the learning rate of
every row picked from the same grid by mean validation accuracy, test accuracy reported at it;
speech: the fixed learning rate of the speech experiment). Writes ``branches.{json,md,png}``.
"""

from __future__ import annotations

import time

from .experiments import (
    SPEECH,
    _environment,
    _map,
    _plt,
    _pm,
    _settings,
    _stats,
    _write,
    best_lr,
    run_digits,
    run_speech,
)

__all__ = ["ROWS", "branches", "render"]

#: key, label, method, wbits, abits
ROWS = [
    ("fp32", "FP32", "fp", 3, None),
    ("ds3", "DenseShift 3-bit weights, FP activations", "denseshift", 3, None),
    ("b11", "branches w1 a1", "branches", 1, 1),
    ("b22", "branches w2 a2", "branches", 2, 2),
    ("b33", "branches w3 a3", "branches", 3, 3),
    ("b44", "branches w4 a4", "branches", 4, 4),
    ("b28", "branches w2 a8", "branches", 2, 8),
]


def _spec(row, seed, **extra):
    key, _, method, wbits, abits = row
    spec = {"method": method, "wbits": wbits, "seed": seed, "row": key, **extra}
    if abits is not None:
        spec["abits"] = abits
    return spec


def branches(out, *, seeds: int = 3, jobs: int = 1, smoke: bool = False, command: str = "",
             cache_dir=None) -> dict:
    """Train every row on digits (learning rate by validation) and on spoken commands; returns
    the JSON payload (also written to ``out``)."""
    from .data import SMOKE_SPEECH, SpeechSpec, speech_commands

    cfg, seed_list = _settings(smoke, seeds)
    start = time.perf_counter()
    digit_specs = [_spec(row, seed, lr=lr, epochs=cfg["epochs"], width=cfg["width"],
                         batch_size=cfg["batch_size"])
                   for row in ROWS for lr in cfg["lrs"] for seed in seed_list]
    digit_runs = _map(run_digits, digit_specs, jobs, "branches digits")
    speech_spec = SMOKE_SPEECH if smoke else SpeechSpec()
    speech_commands(spec=speech_spec, cache_dir=cache_dir, progress=True)   # build once
    epochs = 1 if smoke else SPEECH["epochs"]
    speech_specs = [_spec(row, seed, lr=SPEECH["lr"], epochs=epochs, width=SPEECH["width"],
                          smoke=smoke, cache_dir=cache_dir)
                    for row in ROWS for seed in seed_list]
    speech_runs = _map(run_speech, speech_specs, jobs, "branches speech")
    rows = []
    for key, label, method, wbits, abits in ROWS:
        sp = [r for r in speech_runs if r["spec"]["row"] == key]
        rows.append({"key": key, "label": label, "method": method, "wbits": wbits,
                     "abits": abits, "digits": best_lr(digit_runs, key, cfg["lrs"]),
                     "speech": {"lr": SPEECH["lr"], "val": _stats(r["val_acc"] for r in sp),
                                "test": _stats(r["test_acc"] for r in sp),
                                "seconds": sum(r["seconds"] for r in sp)}})
    payload = {"experiment": "branches", "smoke": smoke, "seeds": seed_list,
               "settings": {"digits": {k: list(v) if isinstance(v, tuple) else v
                                       for k, v in cfg.items()},
                            "speech": {**SPEECH, "epochs": epochs}},
               "rows": rows, "seconds": time.perf_counter() - start,
               "environment": _environment(jobs, command)}
    render(out, payload)
    return payload


def render(out, payload: dict) -> None:
    """Write ``branches.{json,md,png}`` from a :func:`branches` payload."""
    rows, s = payload["rows"], payload["settings"]
    md = [f"# Multi-branch {{-1, +1}} networks: test accuracy (%), mean ± std over "
          f"{len(payload['seeds'])} seeds\n",
          f"Digits: DigitsCNN width {s['digits']['width']}, {s['digits']['epochs']} epochs, "
          f"learning rate per row from {s['digits']['lrs']} by mean validation accuracy. "
          f"Spoken commands: SpeechResNet width {s['speech']['width']}, "
          f"{s['speech']['epochs']} epochs, lr {s['speech']['lr']}. First layer and classifier "
          f"full precision in every row; `branches wK aL`: every other conv has K-branch "
          f"weights and L-branch inputs.\n",
          "| model | digits val | digits test | digits lr | speech val | speech test |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        d, sp = r["digits"], r["speech"]
        md.append(f"| {r['label']} | {_pm(d['val'])} | {_pm(d['test'])} | {d['lr']:g} | "
                  f"{_pm(sp['val'])} | {_pm(sp['test'])} |")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = range(len(rows))
    for offset, task, color in ((-0.18, "digits", "C0"), (0.18, "speech", "C1")):
        ax.bar([i + offset for i in x], [r[task]["test"]["mean"] for r in rows], width=0.36,
               yerr=[r[task]["test"]["std"] for r in rows], color=color, label=task, capsize=3)
    ax.set_xticks(list(x))
    ax.set_xticklabels([r["key"] for r in rows])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    _write(out, "branches", payload, "\n".join(md) + "\n", fig)
