"""``densehw sweep``: weight bits x format x array shape x device; Pareto plot.

Every point is synthesised (and placed and routed, exploration mode) by the same job function
the other flows use (``boards.flow.run_job``), in parallel over ``--jobs`` local processes, or on
the workers of a Dask distributed scheduler with ``--scheduler tcp://HOST:PORT``
(``boards.executor``; docs/synthesis.md, "Running on a cluster"); points are cached by
configuration hash under ``--out`` (``build/sweep``), on this machine. Writes ``sweep.json``,
``sweep.md`` and ``pareto.png``: throughput per area against an accuracy axis, ``--accuracy``:

* ``digits`` (default): test accuracy on scikit-learn's digits (360 images) of a DenseShift CNN
  with the point's weight bits, trained for ``--accuracy-epochs`` (default 40, as ``make e2e``;
  a few seconds per weight width), compiled for ``ArrayConfig(in_fmt=format, wbits=B)`` and run
  through the array's golden model (``boards.sweep.digits_accuracy``; the ``make e2e`` path).
  Cached under ``<out>/accuracy/``; one training per weight width, shared by the formats.
  The baselines (``--baselines``) have no trained model on their arithmetic: no task accuracy,
  drawn as horizontal lines (efficiency only) and kept off the Pareto front.
* ``gemm-error``: relative RMS error against float64 of a random GEMM, every point, baselines
  included (``boards.sweep.gemm_error``); also listed in ``sweep.md`` in the ``digits`` mode.
"""

from __future__ import annotations

import os
import pathlib
import sys

from .cli import UserError

HELP = "design-space sweep (weight bits x format x shape x device) with a Pareto plot"


def add_arguments(p):
    p.add_argument("--wbits", default="3", help="weight code widths, e.g. 2,3,4")
    p.add_argument("--formats", default="fp16", help="activation formats, e.g. fp16,bf16")
    p.add_argument("--shapes", default="2x2,4x4", help="array shapes RxC, e.g. 2x2,4x4,8x8")
    p.add_argument("--devices", default="ice40:up5k",
                   help="board:device list, e.g. ice40:up5k,ecp5:25f,asic")
    p.add_argument("--depth", type=int, default=512, help="weight store depth (largest K)")
    p.add_argument("--seeds", default="1", help="nextpnr seeds per point")
    p.add_argument("--pnr-timeout", type=float, metavar="SECONDS",
                   help="stop a place-and-route seed after this long (default 3600 s); the "
                        "point keeps the seeds that finished")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="parallel local processes (default: all cores)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run the synthesis jobs on the workers of this Dask distributed "
                        "scheduler instead of local processes (--jobs is then unused)")
    p.add_argument("--baselines", action="store_true",
                   help="also build the fp-multiplier and int8 MAC baselines of each shape")
    p.add_argument("--accuracy", default="digits", metavar="{digits,gemm-error}",
                   help="Pareto x axis: digits = test accuracy of a DenseShift CNN trained on "
                        "sklearn digits, run through the array's golden model (default; "
                        "shift arrays only); gemm-error = relative RMS error of a random GEMM "
                        "vs float64 (every point)")
    p.add_argument("--accuracy-epochs", default=None, metavar="N",
                   help="training epochs of the digits model (default 40, as make e2e; about "
                        "3 s per weight width)")
    p.add_argument("--accuracy-seed", default="0", metavar="S",
                   help="training seed of the digits model (default 0)")
    p.add_argument("--force", action="store_true", help="rebuild cached points")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("build/sweep"))


def _ints(text, what):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--{what} must be comma-separated integers, not {text!r}") from None
    if not vals:
        raise UserError(f"--{what} is empty")
    return vals


def _shapes(text):
    out = []
    for part in text.split(","):
        try:
            r, c = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise UserError(f"--shapes wants RxC,RxC..., not {text!r}") from None
        out.append((r, c))
    return out


def _devices(text):
    from boards.devices import DEFAULT_DEVICE, DEVICES

    out = []
    for part in text.split(","):
        board, _, device = part.partition(":")
        if board not in DEVICES:
            raise UserError(f"unknown board {board!r} in --devices; expected "
                            f"{', '.join(DEVICES)}")
        device = device or DEFAULT_DEVICE[board]
        if device not in DEVICES[board]:
            raise UserError(f"unknown {board} device {device!r}; expected "
                            f"{', '.join(DEVICES[board])}")
        out.append((board, device))
    return out


def _accuracy_options(args):
    """``(axis, epochs, seed)`` from the options; one-line errors."""
    from boards.sweep import ACCURACY_AXES, DEFAULT_ACCURACY_EPOCHS

    if args.accuracy not in ACCURACY_AXES:
        raise UserError(f"--accuracy must be one of {', '.join(ACCURACY_AXES)}, not "
                        f"{args.accuracy!r}")
    epochs = DEFAULT_ACCURACY_EPOCHS
    if args.accuracy_epochs is not None:
        try:
            epochs = int(args.accuracy_epochs)
        except ValueError:
            epochs = 0
        if epochs < 1:
            raise UserError(f"--accuracy-epochs must be a positive integer, not "
                            f"{args.accuracy_epochs!r}")
    try:
        seed = int(args.accuracy_seed)
    except ValueError:
        raise UserError(f"--accuracy-seed must be an integer, not {args.accuracy_seed!r}") \
            from None
    return args.accuracy, epochs, seed


def run(args) -> int:
    from contract import check_wbits, get_format

    wbits = _ints(args.wbits, "wbits")
    for b in wbits:
        check_wbits(b)
    formats = [f for f in args.formats.split(",") if f]
    for f in formats:
        get_format(f)
    shapes, devices = _shapes(args.shapes), _devices(args.devices)
    seeds = _ints(args.seeds, "seeds")
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {args.jobs}")
    from .cmd_synth import check_pnr_timeout

    check_pnr_timeout(args.pnr_timeout)
    axis, epochs, acc_seed = _accuracy_options(args)

    from boards.executor import SchedulerError, open_executor
    from boards.sweep import sweep_jobs

    jobs = sweep_jobs(wbits=wbits, formats=formats, shapes=shapes, devices=devices,
                      depth=args.depth, seeds=seeds, root=args.out / "points",
                      baselines=args.baselines, pnr_timeout=args.pnr_timeout)
    try:
        executor = open_executor(scheduler=args.scheduler, workers=args.jobs)
    except SchedulerError as exc:
        raise UserError(f"--scheduler: {exc}") from None
    with executor:
        return _sweep(args, executor, jobs, formats, wbits, axis, epochs, acc_seed)


def _sweep(args, executor, jobs, formats, wbits, axis, epochs, acc_seed) -> int:
    from boards.sweep import attach_accuracy, digits_accuracy, run_jobs, write_sweep

    print(f"densehw sweep: {len(jobs)} points on {executor.describe()}, cache {args.out}",
          file=sys.stderr)
    if axis == "digits":
        # before synthesis, so that a problem shows in seconds; attach_accuracy reads the cache
        for fmt in formats:
            for b in wbits:
                try:
                    rec = digits_accuracy(fmt, b, epochs=epochs, seed=acc_seed, root=args.out)
                except (ValueError, RuntimeError, OSError) as exc:
                    print(f"densehw sweep: digits accuracy {fmt} B={b} failed: {exc}",
                          file=sys.stderr)
                    continue
                how = "cached" if rec["cached"] else (
                    f"trained in {rec['train_seconds']:.1f} s" if rec["trained"] else
                    "export reused")
                print(f"densehw sweep: digits accuracy {fmt} B={b}: golden "
                      f"{rec['golden_accuracy']:.2f} % (PyTorch {rec['torch_accuracy']:.2f} %), "
                      f"{rec['samples']} test images, {epochs} epochs, seed {acc_seed}, {how}",
                      file=sys.stderr)
    results = run_jobs(jobs, executor=executor, force=args.force)
    records = attach_accuracy(results, axis=axis, epochs=epochs, seed=acc_seed, root=args.out)
    paths = write_sweep(results, args.out, accuracy=records)
    failed = sum(1 for r in results if r.get("error"))
    print(f"densehw sweep: {len(results) - failed} built, {failed} failed; "
          f"{paths['md']}, {paths['png']}", file=sys.stderr)
    return 0
