"""``densehw seq train|compile|run``: recurrent sequence models (LSTM / GRU with DenseShift
dense or MPS tensor-train gate matrices) on the spoken-intent task (or the keyword set),
compiled for the PE array.

* ``densehw seq train --out M.pt [--rank R | --dense] [--hidden H] [--method M] [--wbits B]
  [--epochs E] [--seed S] [--float-epochs F] [--shift-lr LR] [--data intents|speech]
  [--stack S]``: trains a :class:`sw.seq_models.SpeechLSTM` on the data set
  (``--float-epochs F``: first ``F`` epochs of the float model, then the shift cores nearest to
  its weights (:func:`sw.seq_models.shift_from_float`) and ``--epochs`` more at
  ``--shift-lr``) and writes the model file (the data set's name in its metadata).
* ``densehw seq compile M.pt -o PROGRAM_DIR [--config CFG]``: lowers it
  (:mod:`sw.seq_compile`) and prints the GEMMs and the cycles per time step and per sequence.
* ``densehw seq run PROGRAM_DIR [--data intents|speech] [--backend NAME] [--limit N]
  [--report R.json]``: runs the test split of the model's data set (:mod:`sw.seq_runtime`) and
  reports accuracy, the PyTorch model's accuracy and agreement, bit mismatches of every GEMM
  against the golden model (backends other than golden), cycles, parameters and compression.
  Exit code 1 on mismatches, 3 when the backend cannot run here.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from .cli import UserError, add_backend_arguments, backend_factory, load_config

HELP = "sequence models (DenseShift / MPS LSTM): train, compile, run on the array"
__all__ = ["HELP", "add_arguments", "run"]


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="seq_command", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train a speech LSTM and write the model file")
    t.add_argument("--out", type=Path, required=True, metavar="M.pt")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--rank", type=int, default=8, help="MPS bond dimension (default 8)")
    g.add_argument("--dense", action="store_true", help="dense gate matrices (no MPS)")
    t.add_argument("--hidden", type=int, default=64)
    t.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    t.add_argument("--method", default="denseshift")
    t.add_argument("--wbits", type=int, default=3)
    t.add_argument("--epochs", type=int, default=25)
    t.add_argument("--float-epochs", type=int, default=0, metavar="F",
                   help="train the float model F epochs first, then start the shift cores "
                        "from it (default 0: shift cores from the start)")
    t.add_argument("--lr", type=float, default=5e-3)
    t.add_argument("--shift-lr", type=float, metavar="LR",
                   help="learning rate of the shift training after --float-epochs (default "
                        "--lr); --epochs 0 keeps the converted codes as they are")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data", choices=["intents", "speech"], default="intents",
                   help="training set: the spoken intents (default) or the keyword set")
    t.add_argument("--stack", type=int, default=None, metavar="S",
                   help="frames per time step (default 5 on intents, 3 on speech)")
    c = sub.add_parser("compile", help="lower a model file for an array configuration")
    c.add_argument("model", type=Path, metavar="M.pt")
    c.add_argument("-o", "--out", type=Path, required=True, metavar="PROGRAM_DIR")
    c.add_argument("--config", default="default", metavar="CFG")
    r = sub.add_parser("run", help="run a sequence program on the speech test split")
    r.add_argument("program", type=Path, metavar="PROGRAM_DIR")
    r.add_argument("--data", choices=["intents", "speech"],
                   help="test split to run (default: the data set the model was trained on)")
    r.add_argument("--backend", default="golden", metavar="NAME")
    add_backend_arguments(r)
    r.add_argument("--limit", type=int, metavar="N", help="first N test sequences only")
    r.add_argument("--batch-size", type=int, metavar="B", help="sequences per batch (default: "
                   "all of them; results do not depend on it)")
    r.add_argument("--report", type=Path, metavar="R.json")
    r.add_argument("--no-compare", action="store_true",
                   help="do not check the backend's GEMMs against the golden model")


def run(args) -> int:
    return {"train": _train, "compile": _compile, "run": _run}[args.seq_command](args)


def _train(args) -> int:
    import time

    import torch

    from sw.data import SEQ_DATASETS
    from sw.quant import METHODS
    from sw.seq_compile import save_seq_model
    from sw.seq_models import SpeechLSTM, shift_from_float
    from sw.train import TrainConfig, evaluate, set_seed, train

    if args.method not in METHODS:
        raise UserError(f"--method {args.method!r}: expected one of {', '.join(METHODS)}")
    if args.hidden < 1 or args.float_epochs < 0 or args.epochs < (0 if args.float_epochs else 1):
        raise UserError(f"--hidden {args.hidden}, --epochs {args.epochs}, --float-epochs "
                        f"{args.float_epochs}: expected a positive size and epochs (--epochs 0 "
                        f"only after --float-epochs)")
    if not args.dense and args.rank < 1:
        raise UserError(f"--rank {args.rank}: expected a positive integer")
    if not args.out.parent.is_dir():
        raise UserError(f"--out {args.out}: folder {str(args.out.parent)!r} does not exist")
    stack = args.stack or (5 if args.data == "intents" else 3)
    torch.set_num_threads(1)
    data = SEQ_DATASETS[args.data](progress=sys.stderr.isatty())
    if not 1 <= stack <= data.x_train.shape[2]:
        raise UserError(f"--stack {stack}: expected 1..{data.x_train.shape[2]} frames")
    set_seed(args.seed)
    kw = {"n_mels": data.x_train.shape[1], "frames": data.x_train.shape[2], "stack": stack,
          "num_classes": data.num_classes, "hidden": args.hidden, "wbits": args.wbits,
          "rank": None if args.dense else args.rank, "cell": args.cell}
    start = time.perf_counter()
    history = {}
    if args.float_epochs:
        fmodel = SpeechLSTM(method="fp", **kw)
        history["float"] = train(fmodel, data, TrainConfig(epochs=args.float_epochs,
                                                           lr=args.lr, seed=args.seed,
                                                           progress=False))
        model = shift_from_float(fmodel, method=args.method, wbits=args.wbits)
    else:
        model = SpeechLSTM(method=args.method, **kw)
    if args.epochs:
        h = train(model, data, TrainConfig(epochs=args.epochs, lr=args.shift_lr or args.lr,
                                           seed=args.seed, progress=False))
    else:
        h = {"val_acc": evaluate(model, data.x_val, data.y_val)}
    test = evaluate(model, data.x_test, data.y_test)
    meta = {"data": args.data, "seed": args.seed, "epochs": args.epochs,
            "float_epochs": args.float_epochs,
            "lr": args.lr, "shift_lr": args.shift_lr, "val_acc": h["val_acc"], "test_acc": test,
            "seconds": round(time.perf_counter() - start, 1)}
    save_seq_model(model, args.out, meta=meta)
    print(f"{args.out}: {args.cell} {'dense' if args.dense else f'MPS rank {args.rank}'}, "
          f"{args.method} {args.wbits}-bit, {model.rnn.num_parameters} gate weights "
          f"({model.rnn.dense_parameters / model.rnn.num_parameters:.1f}x fewer than dense); "
          f"val {h['val_acc']:.2f} %, test {test:.2f} %, {meta['seconds']} s")
    return 0


def _compile(args) -> int:
    from sw.seq_compile import compile_seq_model, save

    cfg = load_config(args.config)
    program = compile_seq_model(args.model, cfg)
    save(program, args.out)
    hd = program.header
    cyc = hd["cycles"]
    print(f"{args.out}: {hd['cell']} H={hd['hidden']}, T={hd['steps']} steps of "
          f"{hd['stack']} frames, {hd['params']} gate weights (dense {hd['dense_params']}, "
          f"compression {hd['compression']:.1f}x), config {cfg.name}")
    for name, spec in hd["maps"].items():
        kind = (f"MPS in {spec['in_factors']} out {spec['out_factors']} ranks {spec['ranks']}"
                if spec["kind"] == "mps" else "dense")
        print(f"  {name}: {kind}; cores (M x K, e0): " + ", ".join(
            f"{c['m']}x{c['k']} e0={c['e0']}" for c in spec["cores"]))
    print("  array GEMMs, input projection of the sequence (N x K x M, cycles): " + ", ".join(
        f"{n}x{k}x{m} {cy}" for n, k, m, cy in cyc["input_projection_gemms"]))
    print("  array GEMMs per time step (recurrent): " + ", ".join(
        f"{n}x{k}x{m} {cy}" for n, k, m, cy in cyc["recurrent_gemms_per_step"]))
    print(f"  cycles: {cyc['per_time_step']} per time step (recurrent), "
          f"{cyc['input_projection_per_sequence']} input projection, "
          f"{cyc['per_sequence']} per sequence ({cyc['recurrent_steps']} recurrent steps); "
          f"{cyc['macs_per_sequence']} MACs per sequence; host: gates, cell, mean, head")
    return 0


def _write_json(path: Path, obj) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _run(args) -> int:
    import torch

    from sw.backends import options_from
    from sw.data import SEQ_DATASETS
    from sw.seq_compile import load, load_seq_model
    from sw.seq_runtime import run_seq_program

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: expected a positive integer")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: expected a positive integer")
    if args.report is not None and not (args.report.parent if str(args.report.parent)
                                        else Path(".")).is_dir():
        raise UserError(f"--report {args.report}: folder does not exist")
    program = load(args.program)
    factory = backend_factory(args.backend)
    gemm = factory(program.config, **options_from(args.backend, args))
    name = args.data or program.header.get("dataset", "speech")
    data = SEQ_DATASETS[name]()
    x, y = data.x_test, data.y_test
    if args.limit is not None:
        x, y = x[:args.limit], y[:args.limit]
    if tuple(x.shape[1:]) != tuple(program.header["input_shape"]):
        raise UserError(f"the {name} features have shape {list(x.shape[1:])}, the program "
                        f"expects {program.header['input_shape']}")
    compare = args.backend != "golden" and not args.no_compare
    res = run_seq_program(program, x.contiguous(), gemm, compare=compare,
                          batch_size=args.batch_size or max(1, x.shape[0]))
    hd = program.header
    cfg = program.config
    samples = int(x.shape[0])
    acc = 100.0 * float((res.predictions == y).float().mean())
    report = {"program": str(args.program), "backend": args.backend, "data": name,
              "samples": samples, "accuracy": round(acc, 4), "torch_accuracy": None,
              "model": hd["model"], "params": hd["params"], "dense_params": hd["dense_params"],
              "compression": round(hd["compression"], 3), "config": cfg.name,
              "mismatches": res.mismatches, "compared_with_golden": compare,
              "compared_outputs": res.compared, "first_mismatch": res.first_mismatch,
              "gemm_calls": res.gemm_calls, "seconds": round(res.seconds, 3)}
    if program.source_bytes is not None:
        model, meta, _ = load_seq_model(program.source_bytes)
        with torch.no_grad():
            ref = model(x)
        tpred = ref.argmax(1)
        diff = (res.logits - ref.double()).abs()
        report.update(
            torch_accuracy=round(100.0 * float((tpred == y).float().mean()), 4),
            agreement_with_torch=round(float((tpred == res.predictions).float().mean()), 6),
            disagreements_with_torch=int((tpred != res.predictions).sum()),
            logits_vs_torch={"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
                             "rel_l2": float(torch.linalg.norm(res.logits - ref.double())
                                             / torch.linalg.norm(ref.double()))},
            train_meta=meta)
    cyc = dict(hd["cycles"])
    cyc["total_per_sample"] = cyc["per_sequence"]
    if res.backend_cycles:
        cyc["measured_total_per_sample"] = res.backend_cycles / samples
        cyc["measured_note"] = ("CYCLES_BUSY summed over every GEMM call of the run (each call "
                                "holds every sequence of the batch), divided by the sequences")
    report["cycles"] = cyc
    report["mac_utilization"] = round(
        cyc["macs_per_sequence"] / (cyc["per_sequence"] * cfg.rows * cfg.cols), 4)
    report["rounding"] = hd["rounding"]
    report["predictions"] = res.predictions.tolist()
    report["labels"] = y.tolist()
    if res.backend_stats:
        report["backend_stats"] = res.backend_stats
    if args.report is not None:
        _write_json(args.report, report)
    torch_txt = ("" if report["torch_accuracy"] is None else
                 f" (PyTorch {report['torch_accuracy']:.2f} %, agreement "
                 f"{100 * report['agreement_with_torch']:.2f} %)")
    mm = (f"; {res.mismatches} mismatches over {res.compared} GEMM outputs vs golden"
          if compare else "")
    print(f"{args.backend}: {samples} sequences, accuracy {acc:.2f} %{torch_txt}{mm}; "
          f"{res.gemm_calls} array GEMMs, {cyc['per_time_step']} cycles per time step, "
          f"{cyc['per_sequence']} per sequence (model)"
          + (f", {cyc['measured_total_per_sample']:.0f} measured"
             if res.backend_cycles else "") + f"; {res.seconds:.1f} s")
    return 1 if res.mismatches else 0
