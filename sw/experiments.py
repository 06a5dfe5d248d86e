"""The experiments of the DenseShift reproduction; each writes ``<name>.json``, ``<name>.md``
and ``<name>.png`` into an output folder.

* :func:`table` -- digits test accuracy, mean ± std over seeds: FP32, DenseShift 2/3/4-bit,
  S3 3-bit, DeepShift-Q/-PS 3-bit, ternary (threshold, and S3-style 2-bit sign-sparse). The
  learning rate of every row is picked from a small grid by mean **validation** accuracy; the test
  split is only evaluated for the reported numbers.
* :func:`freezing` -- per-epoch fraction of weights whose sign / value differs from the init,
  for DeepShift-PS, S3 and DenseShift (3-bit).
* :func:`init_ablation` -- DenseShift 3-bit with low-variance vs He-normal latents: on all digits,
  and transferred (pre-train on digits 0-4, fine-tune on 5-9 with a new head).
* :func:`speech` -- spoken commands (espeak-ng), FP32 vs DenseShift 3-bit, 1-D conv ResNet.

``smoke=True`` runs every experiment in seconds (tiny epochs, one seed) to test the machinery;
its numbers mean nothing.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from contract.files import write_atomic

__all__ = ["DIGITS", "table", "freezing", "init_ablation", "speech", "run_all", "run_digits",
           "run_speech", "EXPERIMENTS"]

# The narrow digits model and its schedule (chosen on the validation split during development:
# at width 8 every method saturates near 99 %, so quantization would not matter).
DIGITS = {"width": 6, "epochs": 40, "batch_size": 64, "lrs": (2e-3, 5e-3, 1e-2),
          "default_lr": 5e-3, "s3_reg": 1e-2}
SPEECH = {"width": 24, "epochs": 20, "batch_size": 64, "lr": 5e-3}

TABLE_ROWS = [
    # key, label, method, wbits, options
    ("fp32", "FP32", "fp", 3, {}),
    ("ds2", "DenseShift 2-bit {±1, ±2}", "denseshift", 2, {}),
    ("ds3", "DenseShift 3-bit", "denseshift", 3, {}),
    ("ds4", "DenseShift 4-bit", "denseshift", 4, {}),
    ("ds3_exact", "DenseShift 3-bit, exact gradient", "denseshift", 3, {"surrogate": False}),
    ("s3_3", "S3 3-bit {0, ±1, ±2, ±4}", "s3", 3, {"reg": "s3"}),
    ("dsq3", "DeepShift-Q 3-bit", "deepshift_q", 3, {}),
    ("dsps3", "DeepShift-PS 3-bit", "deepshift_ps", 3, {}),
    ("tern", "Ternary {0, ±1} (threshold)", "ternary", 2, {}),
    ("tern_s3", "Ternary {0, ±1} (S3 sign-sparse, 2-bit)", "s3", 2, {"reg": "s3"}),
]


# -- single runs (top-level functions: they run in worker processes) ---------------------------
def _threads():
    torch.set_num_threads(int(os.environ.get("DENSEHW_THREADS", "1")))


def run_digits(spec: dict) -> dict:
    """Train one digits model described by ``spec`` (keys: method, wbits, seed, lr, epochs,
    width, reg, init, surrogate, track_freezing, classes, transfer_to, progress) and evaluate it.
    With ``transfer_to``, the model is pre-trained on ``classes`` and then, for each budget in
    ``finetune_epochs``, fine-tuned from the same pre-trained weights with a new head on
    ``transfer_to``; ``out["transfer"][budget]`` holds those accuracies."""
    from .data import class_subset, digits
    from .models import DigitsCNN
    from .train import TrainConfig, evaluate, set_seed

    _threads()
    data = digits()
    if spec.get("classes"):
        data = class_subset(data, spec["classes"])
    qkw = {k: spec[k] for k in ("init", "surrogate", "abits") if k in spec}
    set_seed(spec["seed"])
    model = DigitsCNN(method=spec["method"], wbits=spec["wbits"], width=spec["width"],
                      num_classes=data.num_classes, **qkw)
    cfg = TrainConfig(epochs=spec["epochs"], batch_size=spec.get("batch_size", 64),
                      lr=spec["lr"], reg=spec.get("reg", 0.0), seed=spec["seed"],
                      track_freezing=spec.get("track_freezing", False),
                      progress=spec.get("progress", False), desc=spec.get("desc", "train"))
    hist = _train(model, data, cfg)
    out = {"spec": spec, "val_acc": hist["val_acc"], "seconds": hist["seconds"],
           "epochs": hist["epochs"]}
    if spec.get("transfer_to"):
        import copy

        out["pretrain_val_acc"] = hist["val_acc"]
        data = class_subset(digits(), spec["transfer_to"])
        pretrained = copy.deepcopy(model.state_dict())
        out["transfer"] = {}
        for budget in spec.get("finetune_epochs", [spec["epochs"]]):
            model.load_state_dict(pretrained)
            set_seed(spec["seed"] + 1000)
            model.head = torch.nn.Linear(model.head.in_features, data.num_classes)
            ft = TrainConfig(epochs=budget, batch_size=cfg.batch_size, lr=cfg.lr, reg=cfg.reg,
                             seed=spec["seed"] + 1000, track_freezing=True, progress=False)
            h = _train(model, data, ft)
            out["transfer"][str(budget)] = {
                "val_acc": h["val_acc"], "test_acc": evaluate(model, data.x_test, data.y_test),
                "epochs": h["epochs"], "seconds": h["seconds"]}
        return out
    out["test_acc"] = evaluate(model, data.x_test, data.y_test)
    return out


def _train(model, data, cfg):
    from .train import train

    return train(model, data, cfg)


def run_speech(spec: dict) -> dict:
    """Train one spoken-command model (keys: method, wbits, seed, lr, epochs, width, smoke)."""
    from .data import SMOKE_SPEECH, SpeechSpec, speech_commands
    from .models import SpeechResNet
    from .train import TrainConfig, evaluate, set_seed

    _threads()
    data = speech_commands(spec=SMOKE_SPEECH if spec.get("smoke") else SpeechSpec(),
                           cache_dir=spec.get("cache_dir"))
    set_seed(spec["seed"])
    model = SpeechResNet(method=spec["method"], wbits=spec["wbits"], width=spec["width"],
                         n_mels=data.x_train.shape[1], num_classes=data.num_classes,
                         **{k: spec[k] for k in ("abits",) if k in spec})
    cfg = TrainConfig(epochs=spec["epochs"], lr=spec["lr"], seed=spec["seed"],
                      progress=spec.get("progress", False), desc=spec.get("desc", "speech"))
    hist = _train(model, data, cfg)
    return {"spec": spec, "val_acc": hist["val_acc"], "seconds": hist["seconds"],
            "epochs": hist["epochs"], "test_acc": evaluate(model, data.x_test, data.y_test),
            "sizes": data.sizes()}


def _map(fn, specs, jobs, desc):
    """Run ``fn`` over ``specs`` (in ``jobs`` spawned processes when > 1), with a progress bar."""
    from tqdm import tqdm

    if jobs <= 1:
        results = []
        for spec in tqdm(specs, desc=desc, dynamic_ncols=True):
            results.append(fn(spec))
        return results
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Pool(jobs) as pool:
        return list(tqdm(pool.imap(fn, specs), total=len(specs), desc=desc,
                         dynamic_ncols=True))


def best_lr(results, key, lrs) -> dict:
    """The runs of table row ``key`` summarised per learning rate, and the rate with the best
    mean validation accuracy (ties: the smaller rate): ``{"lr", "val", "test", "by_lr"}``."""
    per_lr = {}
    for lr in lrs:
        rs = [r for r in results if r["spec"]["row"] == key and r["spec"]["lr"] == lr]
        per_lr[lr] = {"val": _stats(r["val_acc"] for r in rs),
                      "test": _stats(r["test_acc"] for r in rs),
                      "seconds": sum(r["seconds"] for r in rs)}
    best = max(lrs, key=lambda lr: (per_lr[lr]["val"]["mean"], -lr))
    return {"lr": best, "val": per_lr[best]["val"], "test": per_lr[best]["test"],
            "by_lr": {str(lr): v for lr, v in per_lr.items()}}


# -- output ---------------------------------------------------------------------------------------
def _stats(values):
    values = list(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std, "values": values}


def _pm(s, digits=2):
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _atomic_write(path: Path, data: bytes):
    write_atomic(path, data, make_parents=True)


def _environment(jobs, command):
    return {"torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "jobs": jobs,
            "threads_per_job": int(os.environ.get("DENSEHW_THREADS", "1")),
            "command": command, "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def _write(out: Path, name: str, payload: dict, markdown: str, fig) -> list:
    out = Path(out)
    _atomic_write(out / f"{name}.json", (json.dumps(payload, indent=1, sort_keys=True) + "\n")
                  .encode())
    _atomic_write(out / f"{name}.md", markdown.encode())
    paths = [out / f"{name}.json", out / f"{name}.md"]
    if fig is not None:
        import io

        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight",
                    metadata={"Software": None})
        plt.close(fig)
        _atomic_write(out / f"{name}.png", buf.getvalue())
        paths.append(out / f"{name}.png")
    return paths


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _settings(smoke, seeds):
    if smoke:
        return {**DIGITS, "epochs": 2, "lrs": (DIGITS["default_lr"],)}, list(range(1))
    return dict(DIGITS), list(range(seeds))


# -- experiments ----------------------------------------------------------------------------------
def table(out, *, seeds: int = 5, jobs: int = 1, smoke: bool = False, command: str = "") -> dict:
    """The digits results table (see module docstring); returns the JSON payload."""
    cfg, seed_list = _settings(smoke, seeds)
    start = time.perf_counter()

    def spec(row, lr, seed):
        key, _, method, wbits, opts = row
        s = {"method": method, "wbits": wbits, "seed": seed, "lr": lr, "epochs": cfg["epochs"],
             "width": cfg["width"], "batch_size": cfg["batch_size"], "row": key}
        if opts.get("reg") == "s3":
            s["reg"] = cfg["s3_reg"]
        if "surrogate" in opts:
            s["surrogate"] = opts["surrogate"]
        return s

    specs = [spec(row, lr, seed) for row in TABLE_ROWS for lr in cfg["lrs"] for seed in seed_list]
    results = _map(run_digits, specs, jobs, "digits table")
    rows = []
    for row in TABLE_ROWS:
        key, label, method, wbits, _ = row
        rows.append({"key": key, "label": label, "method": method, "wbits": wbits,
                     **best_lr(results, key, cfg["lrs"])})
    elapsed = time.perf_counter() - start
    by_key = {r["key"]: r for r in rows}
    payload = {"experiment": "digits_table", "smoke": smoke, "seeds": seed_list,
               "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
               "rows": rows, "targets": _targets(by_key), "seconds": elapsed,
               "environment": _environment(jobs, command)}
    render_table(out, payload)
    return payload


SHORT = {"fp32": "FP32", "ds2": "DenseShift 2b", "ds3": "DenseShift 3b", "ds4": "DenseShift 4b",
         "ds3_exact": "DenseShift 3b\nexact grad", "s3_3": "S3 3b", "dsq3": "DeepShift-Q 3b",
         "dsps3": "DeepShift-PS 3b", "tern": "ternary\n(threshold)", "tern_s3": "ternary\n(S3 2b)"}


def render_table(out, payload: dict) -> None:
    """Write ``digits_table.{json,md,png}`` from a :func:`table` payload (also used to re-render
    committed results: ``render_table(dir, json.load(open(dir/"digits_table.json")))``)."""
    rows = payload["rows"]
    settings = payload["settings"]
    md = [f"# Digits: test accuracy (%), mean ± std over {len(payload['seeds'])} seeds\n",
          f"Narrow CNN (width {settings['width']}), {settings['epochs']} epochs, Adam + cosine; "
          f"learning rate per row chosen from {list(settings['lrs'])} by mean validation "
          "accuracy.\n",
          "| method | bits | lr | val acc | test acc |", "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['label']} | {r['wbits'] if r['method'] != 'fp' else 32} | {r['lr']:g} "
                  f"| {_pm(r['val'])} | {_pm(r['test'])} |")
    md.append("\n## Targets (on test accuracy means)\n")
    md.append("| target | measured | met |")
    md.append("|---|---|---|")
    for t in payload["targets"]:
        md.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |")
    md.append(f"\nWall time {payload['seconds']:.0f} s with "
              f"{payload['environment']['jobs']} process(es).\n")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    labels = [SHORT.get(r["key"], r["label"]) for r in rows]
    ax.bar(range(len(rows)), [r["test"]["mean"] for r in rows],
           yerr=[r["test"]["std"] for r in rows], capsize=3, color="tab:blue")
    ax.set_xticks(range(len(rows)), labels, rotation=45, ha="right", fontsize=7)
    lo = min(r["test"]["mean"] - r["test"]["std"] for r in rows)
    ax.set_ylim(max(0.0, math.floor(lo) - 1), 100)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"sklearn digits, narrow CNN, {len(payload['seeds'])} seeds")
    _write(out, "digits_table", payload, "\n".join(md), fig)


def _targets(rows):
    def m(key):
        return rows[key]["test"]["mean"]

    out = []

    def add(text, measured, met):
        out.append({"target": text, "measured": measured, "met": bool(met)})

    add("DenseShift 3-bit >= FP32 - 0.5", f"{m('ds3'):.2f} vs {m('fp32') - 0.5:.2f}",
        m("ds3") >= m("fp32") - 0.5)
    add("DenseShift 2-bit >= FP32 - 1.5", f"{m('ds2'):.2f} vs {m('fp32') - 1.5:.2f}",
        m("ds2") >= m("fp32") - 1.5)
    add("DenseShift 3-bit >= S3 3-bit", f"{m('ds3'):.2f} vs {m('s3_3'):.2f}",
        m("ds3") >= m("s3_3"))
    deep = max(m("dsq3"), m("dsps3"))
    add("S3 3-bit >= DeepShift 3-bit (best of -Q, -PS)", f"{m('s3_3'):.2f} vs {deep:.2f}",
        m("s3_3") >= deep)
    tern = max(m("tern"), m("tern_s3"))
    add("zero-free 2-bit > ternary (best of both)", f"{m('ds2'):.2f} vs {tern:.2f}",
        m("ds2") > tern)
    return out


FREEZE_ROWS = [("dsps3", "DeepShift-PS 3-bit", "deepshift_ps", 3, {}),
               ("s3_3", "S3 3-bit", "s3", 3, {"reg": True}),
               ("ds3", "DenseShift 3-bit", "denseshift", 3, {})]


def freezing(out, *, seeds: int = 5, jobs: int = 1, smoke: bool = False,
             command: str = "") -> dict:
    """Weight-freezing curves (fraction of shift weights whose sign / value differs from init)."""
    cfg, seed_list = _settings(smoke, seeds)
    start = time.perf_counter()
    specs = []
    for key, _, method, wbits, opts in FREEZE_ROWS:
        for seed in seed_list:
            s = {"method": method, "wbits": wbits, "seed": seed, "lr": cfg["default_lr"],
                 "epochs": cfg["epochs"], "width": cfg["width"], "track_freezing": True,
                 "row": key}
            if opts.get("reg"):
                s["reg"] = cfg["s3_reg"]
            specs.append(s)
    results = _map(run_digits, specs, jobs, "freezing")
    curves = []
    for key, label, *_ in FREEZE_ROWS:
        rs = [r for r in results if r["spec"]["row"] == key]
        n_ep = len(rs[0]["epochs"])
        curves.append({
            "key": key, "label": label,
            "epoch": [rs[0]["epochs"][i]["epoch"] for i in range(n_ep)],
            "sign_changed": [statistics.fmean(r["epochs"][i]["sign_changed"] for r in rs)
                             for i in range(n_ep)],
            "value_changed": [statistics.fmean(r["epochs"][i]["value_changed"] for r in rs)
                              for i in range(n_ep)],
            "test": _stats(r["test_acc"] for r in rs)})
    elapsed = time.perf_counter() - start
    payload = {"experiment": "freezing", "smoke": smoke, "seeds": seed_list,
               "lr": cfg["default_lr"], "curves": curves, "seconds": elapsed,
               "environment": _environment(jobs, command)}
    md = [f"# Weight freezing on digits (3-bit, mean over {len(seed_list)} seeds)\n",
          "Fraction of shift-layer weights whose sign / value differs from its value at "
          "initialisation, after each epoch.\n",
          "| method | sign changed, epoch 1 | sign changed, final | value changed, final "
          "| test acc |", "|---|---|---|---|---|"]
    for c in curves:
        first = c["sign_changed"][1] if len(c["sign_changed"]) > 1 else c["sign_changed"][0]
        md.append(f"| {c['label']} | {first:.3f} | {c['sign_changed'][-1]:.3f} | "
                  f"{c['value_changed'][-1]:.3f} | {_pm(c['test'])} |")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for c in curves:
        axes[0].plot(c["epoch"], c["sign_changed"], label=c["label"])
        axes[1].plot(c["epoch"], c["value_changed"], label=c["label"])
    axes[0].set_title("sign changed since init")
    axes[1].set_title("value changed since init")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of weights")
    axes[1].legend(fontsize=8)
    _write(out, "freezing", payload, "\n".join(md) + "\n", fig)
    return payload


FINETUNE_BUDGETS = (2, 10, 40)


def init_ablation(out, *, seeds: int = 5, jobs: int = 1, smoke: bool = False,
                  command: str = "") -> dict:
    """Low-variance vs He-normal latents for DenseShift 3-bit: all digits, and transfer
    (pre-train on 0-4, fine-tune on 5-9 with a new head, for each budget in
    :data:`FINETUNE_BUDGETS` epochs, from the same pre-trained model)."""
    cfg, seed_list = _settings(smoke, seeds)
    budgets = (1,) if smoke else FINETUNE_BUDGETS
    start = time.perf_counter()
    specs = []
    for init in ("lowvar", "he"):
        for seed in seed_list:
            base = {"method": "denseshift", "wbits": 3, "seed": seed, "lr": cfg["default_lr"],
                    "epochs": cfg["epochs"], "width": cfg["width"], "init": init}
            specs.append({**base, "row": f"full_{init}"})
            specs.append({**base, "row": f"transfer_{init}", "classes": [0, 1, 2, 3, 4],
                          "transfer_to": [5, 6, 7, 8, 9], "finetune_epochs": list(budgets)})
    results = _map(run_digits, specs, jobs, "init ablation")
    rows = []
    for init in ("lowvar", "he"):
        rs = [r for r in results if r["spec"]["row"] == f"full_{init}"]
        rows.append({"setting": "full", "init": init, "val": _stats(r["val_acc"] for r in rs),
                     "test": _stats(r["test_acc"] for r in rs)})
    for budget in budgets:
        for init in ("lowvar", "he"):
            rs = [r for r in results if r["spec"]["row"] == f"transfer_{init}"]
            ts = [r["transfer"][str(budget)] for r in rs]
            rows.append({
                "setting": "transfer", "finetune_epochs": budget, "init": init,
                "pretrain_val": _stats(r["pretrain_val_acc"] for r in rs),
                "val": _stats(t["val_acc"] for t in ts), "test": _stats(t["test_acc"] for t in ts),
                "finetune_sign_changed": _stats(t["epochs"][-1]["sign_changed"] for t in ts),
                "finetune_curve": [statistics.fmean(t["epochs"][i]["val_acc"] for t in ts)
                                   for i in range(1, len(ts[0]["epochs"]))]})
    elapsed = time.perf_counter() - start
    payload = {"experiment": "init_ablation", "smoke": smoke, "seeds": seed_list,
               "lr": cfg["default_lr"], "epochs": cfg["epochs"], "finetune_budgets": budgets,
               "rows": rows, "seconds": elapsed, "environment": _environment(jobs, command)}
    names = {"lowvar": "low-variance N(0, 1e-3²)", "he": "He-normal"}
    md = [f"# Init ablation, DenseShift 3-bit on digits ({len(seed_list)} seeds)\n",
          "*full*: train on all ten digits. *transfer, E ep*: pre-train on digits 0-4 "
          f"({cfg['epochs']} epochs), replace the head, fine-tune everything on digits 5-9 for E "
          "epochs (same learning rate, cosine schedule, every budget from the same pre-trained "
          "model); accuracy on the 5-9 images.\n",
          "| setting | latent init | val acc | test acc | sign changed in fine-tune |",
          "|---|---|---|---|---|"]
    for r in rows:
        ch = f"{r['finetune_sign_changed']['mean']:.3f}" if "finetune_sign_changed" in r else "-"
        setting = (f"transfer, {r['finetune_epochs']} ep" if r["setting"] == "transfer"
                   else "full")
        md.append(f"| {setting} | {names[r['init']]} | {_pm(r['val'])} | "
                  f"{_pm(r['test'])} | {ch} |")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    longest = max(budgets)
    for r in rows:
        if r["setting"] == "transfer" and r["finetune_epochs"] == longest:
            ax.plot(range(1, len(r["finetune_curve"]) + 1), r["finetune_curve"],
                    label=names[r["init"]])
    ax.set_xlabel(f"fine-tune epoch (digits 5-9, {longest}-epoch budget)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("transfer 0-4 -> 5-9, DenseShift 3-bit")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _write(out, "init_ablation", payload, "\n".join(md) + "\n", fig)
    return payload


def speech(out, *, seeds: int = 5, jobs: int = 1, smoke: bool = False, command: str = "",
           cache_dir=None) -> dict:
    """Spoken commands: FP32 vs DenseShift 3-bit on the espeak-ng set (voice-held-out split)."""
    from .data import SMOKE_SPEECH, SpeechSpec, speech_commands

    seed_list = [0] if smoke else list(range(seeds))
    epochs = 1 if smoke else SPEECH["epochs"]
    start = time.perf_counter()
    data = speech_commands(spec=SMOKE_SPEECH if smoke else SpeechSpec(), cache_dir=cache_dir,
                           progress=True)       # build the cache once, before the workers
    rows_def = [("fp32", "FP32", "fp", 3), ("ds3", "DenseShift 3-bit", "denseshift", 3)]
    specs = [{"method": m, "wbits": b, "seed": s, "lr": SPEECH["lr"], "epochs": epochs,
              "width": SPEECH["width"], "smoke": smoke, "cache_dir": cache_dir, "row": k}
             for k, _, m, b in rows_def for s in seed_list]
    results = _map(run_speech, specs, jobs, "speech")
    rows = []
    for key, label, method, wbits in rows_def:
        rs = [r for r in results if r["spec"]["row"] == key]
        rows.append({"key": key, "label": label, "method": method, "wbits": wbits,
                     "val": _stats(r["val_acc"] for r in rs),
                     "test": _stats(r["test_acc"] for r in rs),
                     "curve": [statistics.fmean(r["epochs"][i]["val_acc"] for r in rs)
                               for i in range(len(rs[0]["epochs"]))]})
    elapsed = time.perf_counter() - start
    spec = SMOKE_SPEECH if smoke else SpeechSpec()
    payload = {"experiment": "speech", "smoke": smoke, "seeds": seed_list, "rows": rows,
               "settings": {**SPEECH, "epochs": epochs}, "sizes": data.sizes(),
               "data": {k: getattr(spec, k) for k in spec.__dataclass_fields__},
               "seconds": elapsed, "environment": _environment(jobs, command)}
    md = [f"# Spoken commands (espeak-ng, {len(spec.words)} words): test accuracy (%), "
          f"{len(seed_list)} seeds\n",
          f"Data: {data.sizes()} utterances (train / val / test); validation voice "
          f"{', '.join(spec.val_voices)}, test voice {', '.join(spec.test_voices)}, never heard "
          f"in training. 1-D conv ResNet (width {SPEECH['width']}), {epochs} epochs.\n",
          "| model | val acc | test acc |", "|---|---|---|"]
    for r in rows:
        md.append(f"| {r['label']} | {_pm(r['val'])} | {_pm(r['test'])} |")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for r in rows:
        ax.plot(range(1, len(r["curve"]) + 1), r["curve"], label=r["label"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("spoken commands (held-out voice)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _write(out, "speech", payload, "\n".join(md) + "\n", fig)
    return payload


EXPERIMENTS = {"table": table, "freezing": freezing, "init": init_ablation, "speech": speech}


def run_all(out, *, seeds: int = 5, jobs: int = 1, smoke: bool = False, command: str = "",
            cache_dir=None) -> dict:
    """Every experiment in turn; returns ``{name: payload}``."""
    results = {}
    for name, fn in EXPERIMENTS.items():
        kw = {"cache_dir": cache_dir} if name == "speech" else {}
        results[name] = fn(out, seeds=seeds, jobs=jobs, smoke=smoke, command=command, **kw)
    return results
