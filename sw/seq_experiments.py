"""Sequence-task experiments (``docs/training.md``, "Spoken intents" and "Sequence models").

``python -m sw.seq_experiments TABLE --out DIR --seeds N [--epochs E] [--data intents|speech]
[--only NAME]`` runs one table and writes one JSON per run (``DIR/seq/<table>/<name>_s<seed>
.json``: test and validation accuracy, parameters, seconds, ...) and ``DIR/seq_<table>.md``
(mean +- std over the seeds, the command and the commit). Runs already present are read, not
repeated, so a table can be filled by several processes (``--only``) and re-rendered.

* ``methods``: a 1-D conv ResNet (:class:`sw.models.SpeechResNet`) and a dense LSTM
  (:class:`sw.seq_models.SpeechLSTM`), FP32 against DenseShift 2/3/4/5 bits, S3 3-bit and
  DeepShift-PS 3-bit (and B=5 with exponent decay), every method trained from scratch with
  the same recipe.
* ``wbits5``: DenseShift B=5 against B=4 on the digits CNN (``sw.experiments.DIGITS``
  recipe), with the learning-rate, gradient and exponent-decay (``reg`` weight of
  :meth:`sw.quant.DenseShiftQuantizer.regularizer`) variants for B=5, and each trained
  model's exponent spread: the fraction of every shift layer's weights within ``2**7`` of the
  layer's largest weight (all of them at B <= 4).
* ``cycles``: the compiled LSTM of the data set's shapes (dense, MPS r4, r8, r16; untrained:
  the cycles depend on the shapes only) on the default array: cycles of the cycle model per
  time step and per sequence at batch 1 (``densehw seq compile`` prints the same).
* ``tt``: MPS tensor-train LSTMs: bond dimension vs parameters, compression, MACs per time step
  and accuracy, float and shift cores, against the dense LSTM and an MPO of about the same
  parameter count (float runs also report their cores converted to 2/3/4-bit DenseShift codes).
* ``lstmreg``: the dense float LSTM of ``tt`` (same recipe) with cheap regularisers against
  the gap between training and held-out voices (:class:`sw.seq_models.SpeechLSTM` ``norm``,
  ``specaug``, ``fshift``, ``dropout``), alone and combined; the training set's accuracy is
  measured in eval mode (no augmentation).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import torch

__all__ = ["TABLES", "METHOD_ROWS", "TT_RUNS", "LSTMREG_ROWS", "CONVERT_BITS", "run_one",
           "main"]

#: The method rows of the ``methods`` table: label -> quantizer arguments.
METHOD_ROWS = {
    "FP32": {"method": "fp"},
    **{f"DenseShift {b}-bit": {"method": "denseshift", "wbits": b} for b in (2, 3, 4, 5)},
    "DenseShift 5-bit, exponent decay 0.001": {"method": "denseshift", "wbits": 5,
                                                "reg": 1e-3},
    "S3 3-bit": {"method": "s3", "wbits": 3, "reg": 0.01},
    "DeepShift-PS 3-bit": {"method": "deepshift_ps", "wbits": 3},
}
#: The models of the ``methods`` table: label -> (kind, arguments, epochs, lr).
METHOD_MODELS = {
    "ResNet": ("resnet", {"width": 24}, 30, 5e-3),
    "LSTM": ("lstm", {"hidden": 64, "stack": 5, "rank": None}, 30, 1e-2),
}
# name -> SpeechLSTM arguments (MPO r5 has the gate weights of MPS r8 on the intents, r6 on the
# keyword set). Float runs also report their cores converted to DenseShift
# codes of 2, 3 and 4 bits (sw.seq_models.shift_from_float; no further training).
TT_RUNS = {
    "dense fp32": {"rank": None, "method": "fp"},
    **{f"MPS r{r} fp32": {"rank": r, "method": "fp"} for r in (4, 8, 16)},
    "MPO r6 fp32": {"rank": 6, "tt": "mpo", "method": "fp"},
    "MPO r5 fp32": {"rank": 5, "tt": "mpo", "method": "fp"},
    "dense DenseShift 3b": {"rank": None, "method": "denseshift", "wbits": 3},
    **{f"MPS r8 DenseShift {b}b": {"rank": 8, "method": "denseshift", "wbits": b}
       for b in (2, 3, 4)},
    "MPO r6 DenseShift 3b": {"rank": 6, "tt": "mpo", "method": "denseshift", "wbits": 3},
    "MPO r5 DenseShift 3b": {"rank": 5, "tt": "mpo", "method": "denseshift", "wbits": 3},
    "MPS r8 S3 3b": {"rank": 8, "method": "s3", "wbits": 3},
    "MPS r8 DeepShift-PS 3b": {"rank": 8, "method": "deepshift_ps", "wbits": 3},
}
CONVERT_BITS = (2, 3, 4)
_SPECAUG = {"freq": 8, "time": 12, "masks": 2}
#: The rows of the ``lstmreg`` table: label -> SpeechLSTM regularisation arguments.
LSTMREG_ROWS = {
    "none": {},
    "per-utterance CMVN": {"norm": "utterance"},
    "SpecAugment 2 x (8 bands, 12 frames)": {"specaug": _SPECAUG},
    "mel shift +-2 bands": {"fshift": 2},
    "dropout 0.2": {"dropout": 0.2},
    "CMVN + mel shift +-2": {"norm": "utterance", "fshift": 2},
    "CMVN + SpecAugment + dropout 0.2": {"norm": "utterance", "specaug": _SPECAUG,
                                         "dropout": 0.2},
}
#: The rows of the ``wbits5`` table: label -> DigitsCNN / training arguments.
WBITS5_ROWS = {
    "B=4, lr 0.005": {"wbits": 4, "lr": 5e-3},
    "B=5, lr 0.005": {"wbits": 5, "lr": 5e-3},
    "B=5, lr 0.002": {"wbits": 5, "lr": 2e-3},
    "B=5, lr 0.005, exact gradient": {"wbits": 5, "lr": 5e-3, "surrogate": False},
    "B=5, lr 0.005, exponent decay 0.001": {"wbits": 5, "lr": 5e-3, "reg": 1e-3},
    "B=4, lr 0.005, exponent decay 0.001": {"wbits": 4, "lr": 5e-3, "reg": 1e-3},
}
TT_EPOCHS, TT_LR = 50, 5e-3
#: Frames per LSTM time step by data set (keyword set: 63 frames -> 21 steps; intents: 121
#: frames -> 24 steps).
STACK = {"speech": 3, "intents": 5}
TABLES = ("methods", "tt", "wbits5", "cycles", "lstmreg")


def _lstm_macs(rnn) -> int:
    return sum(m.macs(1) if hasattr(m, "macs") else m.in_features * m.out_features
               for _, _, m in rnn.gate_maps())


def run_one(table: str, name: str, data, *, seed: int, epochs: int | None = None,
            stack: int = 5) -> dict:
    """Train and evaluate one run of ``table`` (``name``: ``"<model> / <row>"`` for methods,
    a :data:`TT_RUNS` key for tt)."""
    from .models import SpeechResNet
    from .seq_models import SpeechLSTM, shift_from_float
    from .train import TrainConfig, evaluate, set_seed, train

    if table == "wbits5":
        return _run_wbits5(name, seed=seed, epochs=epochs)
    n_mels, frames = data.x_train.shape[1], data.x_train.shape[2]
    set_seed(seed)
    if table == "methods":
        model_name, row = name.split(" / ")
        kind, kw, ep, lr = METHOD_MODELS[model_name]
        q = dict(METHOD_ROWS[row])
        reg = q.pop("reg", 0.0)
        if kind == "resnet":
            model = SpeechResNet(n_mels=n_mels, num_classes=data.num_classes,
                                 **kw, **{"wbits": 3, **q})
        else:
            model = SpeechLSTM(n_mels=n_mels, frames=frames, num_classes=data.num_classes,
                               **kw, **{"wbits": 3, **q})
    else:
        kw = TT_RUNS[name] if table == "tt" else {"rank": None, "method": "fp",
                                                   **LSTMREG_ROWS[name]}
        ep, lr, reg = TT_EPOCHS, TT_LR, 0.0
        model = SpeechLSTM(n_mels=n_mels, frames=frames, num_classes=data.num_classes,
                           stack=stack, **kw)
    ep = epochs or ep
    start = time.perf_counter()
    h = train(model, data, TrainConfig(epochs=ep, lr=lr, reg=reg, seed=seed, progress=False))
    out = {"name": name, "seed": seed, "epochs": ep, "lr": lr, "val_acc": h["val_acc"],
           "test_acc": evaluate(model, data.x_test, data.y_test),
           "train_acc": h["epochs"][-1].get("train_acc"),
           "params": sum(p.numel() for p in model.parameters()),
           "seconds": round(time.perf_counter() - start, 1)}
    if isinstance(model, SpeechLSTM):
        rnn = model.rnn
        out.update(gate_weights=rnn.num_parameters, dense_gate_weights=rnn.dense_parameters,
                   compression=rnn.dense_parameters / rnn.num_parameters,
                   macs_per_step=_lstm_macs(rnn))
    if table == "lstmreg":
        out["train_acc_eval"] = evaluate(model, data.x_train, data.y_train)
    if table == "tt" and kw.get("method") == "fp":
        out["converted"] = {}
        for bits in CONVERT_BITS:
            qm = shift_from_float(model, wbits=bits)
            out["converted"][str(bits)] = {"val_acc": evaluate(qm, data.x_val, data.y_val),
                                           "test_acc": evaluate(qm, data.x_test, data.y_test)}
    return out


def _run_wbits5(name: str, *, seed: int, epochs: int | None) -> dict:
    from .data import digits
    from .experiments import DIGITS
    from .models import DigitsCNN
    from .quant import DenseShiftQuantizer
    from .train import TrainConfig, evaluate, set_seed, train

    row = dict(WBITS5_ROWS[name])
    lr, reg = row.pop("lr"), row.pop("reg", 0.0)
    data = digits()
    set_seed(seed)
    model = DigitsCNN(method="denseshift", width=DIGITS["width"], **row)
    ep = epochs or DIGITS["epochs"]
    start = time.perf_counter()
    h = train(model, data, TrainConfig(epochs=ep, lr=lr, reg=reg, seed=seed, progress=False))
    within, top = [], []
    for q in model.modules():
        if isinstance(q, DenseShiftQuantizer):
            s = q.exponent().detach().flatten()
            within.append(float((s >= s.max() - 7).float().mean()))
            top.append(int(s.max()))
    return {"name": name, "seed": seed, "epochs": ep, "lr": lr, "val_acc": h["val_acc"],
            "test_acc": evaluate(model, data.x_test, data.y_test),
            "train_acc": h["epochs"][-1].get("train_acc"), "within_2p7": within,
            "max_exponent": top, "seconds": round(time.perf_counter() - start, 1)}


def _names(table: str) -> list:
    if table == "wbits5":
        return list(WBITS5_ROWS)
    if table == "methods":
        return [f"{m} / {r}" for m in METHOD_MODELS for r in METHOD_ROWS]
    return list(LSTMREG_ROWS if table == "lstmreg" else TT_RUNS)


def _fmt(values):
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render(table: str, results: dict, *, command: str, sizes: dict) -> str:
    """The markdown of ``table`` from ``results`` (name -> list of run dicts)."""
    seeds = sorted({r["seed"] for rs in results.values() for r in rs})
    secs = sum(r["seconds"] for rs in results.values() for r in rs)
    commits = ", ".join(sorted({r.get("commit", "?") for rs in results.values() for r in rs}))
    head = [f"`{command}` (commit {commits}; {len(seeds)} seeds {seeds}, mean ± std; "
            f"{sizes['train']} / {sizes['val']} / {sizes['test']} train / val / test "
            f"samples; {secs / 60:.1f} min of training on one CPU thread)", ""]
    if table == "methods":
        lines = ["| model | method | epochs | lr | trainable parameters (latents included) | "
                 "train acc % | val acc % "
                 "(held-out voice) | test acc % (other held-out voice) | seeds |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for name, rs in results.items():
            model, row = name.split(" / ")
            lines.append(f"| {model} | {row} | {rs[0]['epochs']} | {rs[0]['lr']} | "
                         f"{rs[0]['params']} | {_fmt([r['train_acc'] for r in rs])} | "
                         f"{_fmt([r['val_acc'] for r in rs])} | "
                         f"{_fmt([r['test_acc'] for r in rs])} | {len(rs)} |")
        return "\n".join(head + lines) + "\n"
    if table == "wbits5":
        lines = ["| digits CNN, DenseShift | epochs | train acc % | val acc % | test acc % | "
                 "weights within 2^7 of the layer's largest (mean over layers) | "
                 "largest exponent code | seeds |", "|---|---|---|---|---|---|---|---|"]
        for name, rs in results.items():
            within = [statistics.mean(r["within_2p7"]) for r in rs]
            tops = sorted({t for r in rs for t in r["max_exponent"]})
            lines.append(f"| {name} | {rs[0]['epochs']} | {_fmt([r['train_acc'] for r in rs])}"
                         f" | {_fmt([r['val_acc'] for r in rs])} | "
                         f"{_fmt([r['test_acc'] for r in rs])} | {_fmt(within)} | "
                         f"{tops[0]}..{tops[-1]} | {len(rs)} |")
        return "\n".join(head + lines) + "\n"
    if table == "lstmreg":
        lines = ["| dense FP32 LSTM, regularisation | epochs | lr | train acc % (eval mode) | "
                 "val acc % (held-out voice) | test acc % (other held-out voice) | seeds |",
                 "|---|---|---|---|---|---|---|"]
        for name, rs in results.items():
            lines.append(f"| {name} | {rs[0]['epochs']} | {rs[0]['lr']} | "
                         f"{_fmt([r['train_acc_eval'] for r in rs])} | "
                         f"{_fmt([r['val_acc'] for r in rs])} | "
                         f"{_fmt([r['test_acc'] for r in rs])} | {len(rs)} |")
        return "\n".join(head + lines) + "\n"
    lines = ["| model | gate weights | compression | MACs / step | test acc % | val acc % | "
             "seeds |", "|---|---|---|---|---|---|---|"]
    for name, rs in results.items():
        r0 = rs[0]
        cols = f"{r0['gate_weights']} | {r0['compression']:.1f}x | {r0['macs_per_step']}"
        lines.append(f"| {name} | {cols} | {_fmt([r['test_acc'] for r in rs])} | "
                     f"{_fmt([r['val_acc'] for r in rs])} | {len(rs)} |")
        for bits in r0.get("converted", {}):
            lines.append(f"| {name} -> DenseShift {bits}b (converted) | {cols} | "
                         f"{_fmt([r['converted'][bits]['test_acc'] for r in rs])} | "
                         f"{_fmt([r['converted'][bits]['val_acc'] for r in rs])} | {len(rs)} |")
    return "\n".join(head + lines) + "\n"


def cycles_table(data_name: str, n_mels: int, frames: int, num_classes: int) -> str:
    """The ``cycles`` table (markdown) for the data set's input shape."""
    from contract.array import ArrayConfig

    from .seq_compile import compile_seq_model
    from .seq_models import SpeechLSTM

    cfg = ArrayConfig()
    lines = [f"`python -m sw.seq_experiments cycles --data {data_name}` (commit {_commit()}; "
             f"array {cfg.name}, batch 1)", "",
             "| gate matrices | gate weights | compression | recurrent GEMMs per step "
             "(N x K x M) | cycles / time step | input projection / sequence | "
             "cycles / sequence | MACs / sequence |", "|---|---|---|---|---|---|---|---|"]
    for rank in (None, 4, 8, 16):
        torch.manual_seed(0)
        model = SpeechLSTM(n_mels=n_mels, frames=frames, num_classes=num_classes,
                           stack=STACK[data_name], rank=rank).eval()
        hd = compile_seq_model(model, cfg).header
        c = hd["cycles"]
        gemms = ", ".join(f"{n}x{k}x{m}" for n, k, m, _ in c["recurrent_gemms_per_step"])
        lines.append(f"| {'dense' if rank is None else f'MPS r{rank}'} | {hd['params']} | "
                     f"{hd['compression']:.1f}x | {gemms} | {c['per_time_step']} | "
                     f"{c['input_projection_per_sequence']} | {c['per_sequence']} | "
                     f"{c['macs_per_sequence']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import sys

    p = argparse.ArgumentParser(prog="python -m sw.seq_experiments", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", choices=TABLES)
    p.add_argument("--out", type=Path, default=Path("build/results"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, help="override every run's epochs")
    p.add_argument("--data", choices=["intents", "speech"], default="intents")
    p.add_argument("--only", action="append", help="run names to run (default all); the "
                   "table is rendered from every run present")
    p.add_argument("--model", choices=list(METHOD_MODELS),
                   help="methods table: run this model's rows only")
    p.add_argument("--render", action="store_true", help="only render the runs present")
    args = p.parse_args(argv)
    from .data import SEQ_DATASETS

    if args.only:
        unknown = sorted(set(args.only) - set(_names(args.table)))
        if unknown:
            print(f"--only {unknown[0]!r}: expected one of {', '.join(_names(args.table))}",
                  file=sys.stderr)
            return 2
    torch.set_num_threads(1)
    if args.table == "wbits5":
        from .data import digits

        data = digits()
    elif args.table == "cycles":
        data = SEQ_DATASETS[args.data]()
        args.out.mkdir(parents=True, exist_ok=True)
        md = cycles_table(args.data, data.x_train.shape[1], data.x_train.shape[2],
                          data.num_classes)
        (args.out / f"seq_{args.data}_cycles.md").write_text(md)
        print(md)
        return 0
    else:
        data = SEQ_DATASETS[args.data]()
    folder = args.out / "seq" / ("wbits5" if args.table == "wbits5"
                                 else f"{args.data}_{args.table}")
    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    for seed in range(args.seeds):              # seed-major: a partial table has every row
        for name in _names(args.table):
            path = folder / f"{name.replace(' / ', '__').replace(' ', '_')}_s{seed}.json"
            if path.is_file() or args.render or (args.only and name not in args.only) or (
                    args.model and not name.startswith(args.model + " / ")):
                continue
            r = run_one(args.table, name, data, seed=seed, epochs=args.epochs,
                        stack=STACK[args.data])
            r["commit"] = _commit()
            path.write_text(json.dumps(r, indent=1) + "\n")
            print(f"{name:32s} seed {seed}: test {r['test_acc']:.2f} % val "
                  f"{r['val_acc']:.2f} % train {r['train_acc']:.2f} % ({r['seconds']} s)",
                  flush=True)
    for name in _names(args.table):
        for seed in range(args.seeds):
            path = folder / f"{name.replace(' / ', '__').replace(' ', '_')}_s{seed}.json"
            if path.is_file():
                results.setdefault(name, []).append(json.loads(path.read_text()))
    data_arg = "" if args.table == "wbits5" else f" --data {args.data}"
    command = (f"python -m sw.seq_experiments {args.table}{data_arg} --seeds {args.seeds}"
               + (f" --epochs {args.epochs}" if args.epochs else ""))
    md = render(args.table, results, command=command, sizes=data.sizes())
    stem = "seq_wbits5" if args.table == "wbits5" else f"seq_{args.data}_{args.table}"
    (args.out / f"{stem}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
