"""Sequence-model experiments on the spoken-command task (``docs/training.md``, "Sequence
models"): the bond-dimension table (MPS against the dense LSTM and an MPO of about the same
parameter count, float and 3-bit DenseShift cores) and the method table (FP32, DenseShift 2/3/4
bits, S3, DeepShift-PS on one MPS-LSTM).

``python -m sw.seq_experiments --out DIR --seeds N --epochs E [--only NAME]`` writes one JSON
per run (``DIR/seq/<name>_s<seed>.json``: test and validation accuracy, parameters,
compression, MACs per time step, seconds, and for float runs the accuracy of their cores
converted to 2/3/4-bit DenseShift codes) and ``DIR/seq.md`` (mean +- std over the seeds).
Runs already present are read, not repeated.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

__all__ = ["RUNS", "CONVERT_BITS", "run_one", "main"]

# name -> SpeechLSTM arguments. Float runs also report their cores converted to DenseShift
# codes of 2, 3 and 4 bits (sw.seq_models.shift_from_float; no further training).
RUNS = {
    "dense fp32": {"rank": None, "method": "fp"},
    **{f"MPS r{r} fp32": {"rank": r, "method": "fp"} for r in (4, 8, 16)},
    "MPO r6 fp32": {"rank": 6, "tt": "mpo", "method": "fp"},
    "dense DenseShift 3b": {"rank": None, "method": "denseshift", "wbits": 3},
    **{f"MPS r8 DenseShift {b}b": {"rank": 8, "method": "denseshift", "wbits": b}
       for b in (2, 3, 4)},
    "MPO r6 DenseShift 3b": {"rank": 6, "tt": "mpo", "method": "denseshift", "wbits": 3},
    "MPS r8 S3 3b": {"rank": 8, "method": "s3", "wbits": 3},
    "MPS r8 DeepShift-PS 3b": {"rank": 8, "method": "deepshift_ps", "wbits": 3},
}
CONVERT_BITS = (2, 3, 4)


def run_one(kwargs: dict, data, *, seed: int, epochs: int, lr: float = 5e-3) -> dict:
    from .seq_models import SpeechLSTM, shift_from_float
    from .train import TrainConfig, evaluate, set_seed, train

    set_seed(seed)
    model = SpeechLSTM(n_mels=data.x_train.shape[1], frames=data.x_train.shape[2],
                       num_classes=data.num_classes, **kwargs)
    start = time.perf_counter()
    h = train(model, data, TrainConfig(epochs=epochs, lr=lr, seed=seed, progress=False))
    converted = {}
    if kwargs.get("method") == "fp":
        for bits in CONVERT_BITS:
            q = shift_from_float(model, wbits=bits)
            converted[str(bits)] = {"val_acc": evaluate(q, data.x_val, data.y_val),
                                    "test_acc": evaluate(q, data.x_test, data.y_test)}
    rnn = model.rnn
    macs = sum(m.macs(1) if hasattr(m, "macs") else m.in_features * m.out_features
               for _, _, m in rnn.gate_maps())
    return {"config": model.config(), "seed": seed, "epochs": epochs, "lr": lr,
            "val_acc": h["val_acc"], "test_acc": evaluate(model, data.x_test, data.y_test),
            "params": rnn.num_parameters, "dense_params": rnn.dense_parameters,
            "compression": rnn.dense_parameters / rnn.num_parameters,
            "macs_per_step": macs, "seconds": round(time.perf_counter() - start, 1),
            "converted": converted}


def _fmt(values):
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sw.seq_experiments", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("build/results"))
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--only", action="append", help="run names to run (default all)")
    args = p.parse_args(argv)
    from .data import speech_commands

    torch.set_num_threads(1)
    data = speech_commands()
    runs = RUNS
    folder = args.out / "seq"
    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, kwargs in runs.items():
        if args.only and name not in args.only:
            continue
        for seed in range(args.seeds):
            path = folder / f"{name.replace(' ', '_')}_s{seed}.json"
            if path.is_file():
                r = json.loads(path.read_text())
            else:
                r = run_one(kwargs, data, seed=seed, epochs=args.epochs)
                r["name"] = name
                path.write_text(json.dumps(r, indent=1) + "\n")
            print(f"{name:24s} seed {seed}: test {r['test_acc']:.2f} % val {r['val_acc']:.2f} % "
                  f"({r['seconds']} s)", flush=True)
            results.setdefault(name, []).append(r)
    lines = ["| model | gate weights | compression | MACs / step | test accuracy % | "
             "val accuracy % | seeds |", "|---|---|---|---|---|---|---|"]
    for name, rs in results.items():
        r0 = rs[0]
        head = (f"{r0['params']} | {r0['compression']:.1f}x | {r0['macs_per_step']}")
        lines.append(f"| {name} | {head} | {_fmt([r['test_acc'] for r in rs])} | "
                     f"{_fmt([r['val_acc'] for r in rs])} | {len(rs)} |")
        for bits in r0["converted"]:
            lines.append(f"| {name} -> DenseShift {bits}b (converted) | {head} | "
                         f"{_fmt([r['converted'][bits]['test_acc'] for r in rs])} | "
                         f"{_fmt([r['converted'][bits]['val_acc'] for r in rs])} | {len(rs)} |")
    (args.out / "seq.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
