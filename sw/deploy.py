"""The deployment path as Python calls: train a DenseShift digits model and export it
(``densehw train digits --export``), then compile it for an array configuration and run it on
the digits test split (``densehw compile``, ``densehw run --backend golden``).

``densehw train digits`` and the design-space sweep's accuracy axis (``boards.sweep``) both
train through :func:`train_digits`; the sweep scores a configuration with
:func:`digits_accuracy`.
"""

from __future__ import annotations

import time

__all__ = ["train_digits", "export_digits", "digits_accuracy"]


def train_digits(*, method="denseshift", wbits=3, seed=0, epochs=None, lr=None, width=None,
                 batch_size=64, init="lowvar", surrogate=True, progress=False):
    """Train the digits CNN (``sw.models.DigitsCNN``) with the reproduction table's width,
    schedule and learning rate unless given. ``init`` and ``surrogate`` apply to the methods
    that have them (DenseShift, S3). Returns ``(model, history, test_accuracy, train_config)``;
    ``history`` is :func:`sw.train.train`'s."""
    from .data import digits
    from .experiments import DIGITS
    from .models import DigitsCNN
    from .train import TrainConfig, evaluate, set_seed, train

    data = digits()
    set_seed(seed)
    qkw = {}
    if method in ("denseshift", "s3"):
        qkw["init"] = init
    if method == "denseshift":
        qkw["surrogate"] = surrogate
    model = DigitsCNN(method=method, wbits=wbits, width=width or DIGITS["width"], **qkw)
    cfg = TrainConfig(epochs=epochs or DIGITS["epochs"], batch_size=batch_size,
                      lr=lr or DIGITS["default_lr"], seed=seed,
                      reg=DIGITS["s3_reg"] if method == "s3" else 0.0,
                      progress=progress, desc=f"{method} {wbits}-bit")
    hist = train(model, data, cfg)
    return model, hist, evaluate(model, data.x_test, data.y_test), cfg


def export_digits(path, *, wbits, epochs, seed, meta=None) -> dict:
    """Train a DenseShift digits model on one thread (low-variance init, surrogate gradient,
    batch 64) and export it to ``path`` with ``meta`` added to the export's own (validation
    and test accuracy, seed, training settings and seconds). Returns ``{"val_acc",
    "test_acc", "seconds"}``."""
    import pathlib

    import torch

    from .export import export_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, hist, test, cfg = train_digits(wbits=wbits, epochs=epochs, seed=seed)
        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        export_model(model, path, meta={"val_acc": hist["val_acc"], "test_acc": test,
                                        "seed": seed, "train": cfg.to_dict(),
                                        "train_seconds": hist["seconds"], **(meta or {})})
    finally:
        torch.set_num_threads(threads)
    return {"val_acc": hist["val_acc"], "test_acc": test, "seconds": hist["seconds"]}


def digits_accuracy(path, config) -> dict:
    """Compile the export at ``path`` for ``config`` (an ``ArrayConfig``) and run it on the
    digits test split through the array's golden model, beside the float PyTorch model rebuilt
    from the export. Returns ``samples``, ``golden_accuracy`` and
    ``torch_accuracy`` (percent), ``agreement`` (fraction of equal predictions),
    ``nonfinite_array_outputs`` (inf/NaN patterns of the array steps: overflow of the format)
    and ``seconds``."""
    import torch

    from .compile import compile_model
    from .data import digits
    from .export import load
    from .models import build_model
    from .runtime import run_program
    from .train import evaluate

    start = time.perf_counter()
    exp = load(path)
    data = digits()
    x, y = data.x_test.float().contiguous(), data.y_test
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        program = compile_model(path, config)
        result = run_program(program, x, backend="golden", batch_size=256)
        model = build_model(exp.model)
        exp.load_into(model)
        with torch.no_grad():
            torch_pred = model.eval()(x).argmax(1)
        torch_acc = evaluate(model, x, y)
    finally:
        torch.set_num_threads(threads)
    n = len(y)
    return {"samples": n,
            "golden_accuracy": round(100.0 * float((result.predictions == y).sum()) / n, 4),
            "torch_accuracy": round(torch_acc, 4),
            "agreement": round(float((result.predictions == torch_pred).float().mean()), 6),
            "nonfinite_array_outputs": sum(st.nonfinite for st in result.steps
                                           if st.where == "array"),
            "seconds": round(time.perf_counter() - start, 2)}
