"""``densehw train``: train DenseShift networks, run the paper-reproduction experiments, export.

Subcommands::

    densehw train digits  [--method M] [--wbits B] [--seed S] [--epochs E] [--lr LR]
                          [--width W] [--init lowvar|he] [--exact-grad] [--export FILE]
    densehw train table|freezing|init|speech|all  [--out DIR] [--seeds N] [--jobs J] [--smoke]
    densehw train branches [--out DIR] [--seeds N] [--jobs J] [--smoke]   (multi-branch table)
    densehw train smoke   [--out DIR]           (every experiment, tiny, in seconds)
    densehw train speech-data [--smoke] [--rebuild]
    densehw train inspect FILE                  (summary of an export file)

``digits`` under ``torchrun --nproc_per_node N -m densehw train digits ...`` trains with
DistributedDataParallel (gloo); only rank 0 prints and exports.
"""

from __future__ import annotations

import argparse
import sys

HELP = "train DenseShift networks, run the reproduction experiments, export for the hardware"

METHOD_CHOICES = ["denseshift", "s3", "deepshift_q", "deepshift_ps", "ternary", "fp"]


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def _lr(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="train_command", metavar="WHAT", required=True)

    p = sub.add_parser("digits", help="train one model on the sklearn digits")
    p.add_argument("--method", choices=METHOD_CHOICES, default="denseshift")
    p.add_argument("--wbits", type=int, default=3, help="weight bits B (2..5; default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=_positive, default=None, help="default: the table's")
    p.add_argument("--lr", type=_lr, default=None, help="default: the table's default")
    p.add_argument("--width", type=_positive, default=None, help="default: the table's")
    p.add_argument("--batch-size", type=_positive, default=64)
    p.add_argument("--init", choices=["lowvar", "he"], default="lowvar",
                   help="DenseShift/S3 latent init")
    p.add_argument("--exact-grad", action="store_true",
                   help="DenseShift: exact gradient instead of the sqrt(S+1) surrogate")
    p.add_argument("--export", metavar="FILE", help="write the export file (DenseShift)")
    p.add_argument("--json", metavar="FILE", help="write the run's history as JSON")
    p.add_argument("--no-progress", action="store_true")

    for name, text in [("table", "digits results table (5 seeds)"),
                       ("freezing", "weight-freezing curves"),
                       ("init", "low-variance vs He init, incl. transfer 0-4 -> 5-9"),
                       ("speech", "spoken commands, FP32 vs DenseShift 3-bit"),
                       ("branches", "multi-branch {-1,+1} networks on digits and speech"),
                       ("all", "every experiment"),
                       ("smoke", "every experiment, tiny (seconds; numbers mean nothing)")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("--out", default=None,
                       help="output folder (default build/results, smoke: build/results-smoke)")
        if name != "smoke":
            p.add_argument("--seeds", type=_positive, default=5)
            p.add_argument("--smoke", action="store_true", help="tiny version")
        p.add_argument("--jobs", type=_positive, default=1, help="parallel worker processes")

    p = sub.add_parser("speech-data", help="synthesise and cache the spoken-command set")
    p.add_argument("--smoke", action="store_true", help="the tiny set used by the smoke run")
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("inspect", help="print a summary of an export file")
    p.add_argument("file")


def _command_line():
    return "densehw train " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "densehw train"


def run(args) -> int:
    import torch

    from densehw.cli import UserError

    torch.set_num_threads(1)
    what = args.train_command
    if what == "digits":
        return _digits(args, UserError)
    if what == "inspect":
        return _inspect(args)
    if what == "speech-data":
        from sw.data import SMOKE_SPEECH, SpeechSpec, speech_commands

        data = speech_commands(spec=SMOKE_SPEECH if args.smoke else SpeechSpec(), seed=args.seed,
                               rebuild=args.rebuild, progress=True)
        print(f"speech commands: {data.sizes()} utterances, features "
              f"{tuple(data.x_train.shape[1:])}")
        return 0
    from sw import experiments

    smoke = what == "smoke" or getattr(args, "smoke", False)
    out = args.out or ("build/results-smoke" if smoke else "build/results")
    seeds = getattr(args, "seeds", 1)
    kw = {"seeds": seeds, "jobs": args.jobs, "smoke": smoke, "command": _command_line()}
    if what == "branches":
        from sw.branch_experiments import branches

        payload = branches(out, **kw)
        print(f"branches: {payload['seconds']:.0f} s -> {out}/branches.{{json,md,png}}")
        for row in payload["rows"]:
            print(f"  {row['label']:45s} digits {row['digits']['test']['mean']:6.2f}, "
                  f"speech {row['speech']['test']['mean']:6.2f}")
        return 0
    if what in ("all", "smoke"):
        results = experiments.run_all(out, **kw)
    else:
        results = {what: experiments.EXPERIMENTS[what](out, **kw)}
    files = {"table": "digits_table", "init": "init_ablation"}
    for name, payload in results.items():
        print(f"{name}: {payload['seconds']:.0f} s -> {out}/{files.get(name, name)}"
              ".{json,md,png}")
    table = results.get("table")
    if table:
        for row in table["rows"]:
            print(f"  {row['label']:45s} {row['test']['mean']:6.2f} ± {row['test']['std']:.2f}")
    return 0


def _digits(args, UserError) -> int:
    import json

    from sw.deploy import train_digits
    from sw.export import export_model
    from sw.train import init_distributed

    if not 2 <= args.wbits <= 5:
        raise UserError(f"--wbits must be in 2..5, not {args.wbits}")
    if args.method == "ternary" and args.wbits != 2:
        raise UserError(f"--method ternary needs --wbits 2, not {args.wbits}")
    if args.export and args.method not in ("denseshift", "deepshift_q"):
        raise UserError(f"--export needs zero-free weights (denseshift), not --method "
                        f"{args.method}")
    rank, size = init_distributed()
    model, hist, test, cfg = train_digits(
        method=args.method, wbits=args.wbits, seed=args.seed, epochs=args.epochs, lr=args.lr,
        width=args.width, batch_size=args.batch_size, init=args.init,
        surrogate=not args.exact_grad, progress=not args.no_progress)
    if rank == 0:
        name = "fp32" if args.method == "fp" else f"{args.method} {args.wbits}-bit"
        print(f"{name} seed {args.seed}: val {hist['val_acc']:.2f} %, "
              f"test {test:.2f} %, {hist['seconds']:.1f} s ({size} process(es))")
        if args.export:
            exp = export_model(model, args.export, meta={
                "val_acc": hist["val_acc"], "test_acc": test, "seed": args.seed,
                "train": cfg.to_dict()})
            print(f"exported {len(exp.layers)} shift layers, {len(exp.tensors)} FP tensors "
                  f"-> {args.export}")
        if args.json:
            from pathlib import Path

            from sw.experiments import _atomic_write

            _atomic_write(Path(args.json), json.dumps({**hist, "test_acc": test},
                                                      indent=1).encode())
    return 0


def _inspect(args) -> int:
    from sw.export import load

    exp = load(args.file)
    print(f"{args.file}: model {exp.model}")
    for name, rec in exp.layers.items():
        codes = rec.codes()
        print(f"  {name:20s} {rec.kind:7s} {tuple(rec.weight_shape)} B={rec.wbits} e0={rec.e0} "
              f"words={rec.words.shape} codes used={len(set(codes.ravel().tolist()))}")
    print(f"  {len(exp.tensors)} full-precision tensors; meta keys {sorted(exp.meta)}")
    return 0
