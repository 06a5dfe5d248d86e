"""Training loop: Adam with a cosine learning-rate schedule, cross-entropy plus the shift
methods' regularizers, optional weight-freezing tracking, tqdm progress bars.

Distributed: when ``torch.distributed`` is initialised with several processes (e.g. launched by
``torchrun --nproc_per_node N``; :func:`init_distributed` sets it up from the environment, gloo on
CPU), :func:`train` wraps the model in ``DistributedDataParallel`` and gives each rank an equal,
disjoint slice of every global batch (``batch_size`` is per process). Every rank draws the same
permutation from the seed, so runs are reproducible; BatchNorm buffers are broadcast from rank 0
at the end so all ranks hold the same model.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .data import Split
from .layers import regularization, snapshot_weights, weight_changes

__all__ = ["TrainConfig", "train", "evaluate", "set_seed", "init_distributed", "world"]


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (``batch_size`` per process)."""

    epochs: int = 40
    batch_size: int = 64
    lr: float = 5e-3
    weight_decay: float = 0.0
    reg: float = 0.0
    augment: bool = False
    seed: int = 0
    track_freezing: bool = False
    progress: bool = True
    desc: str = "train"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, not {self.lr!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("progress")
        return d


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def world() -> tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` when not distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> tuple[int, int]:
    """Initialise the default process group (gloo) from the ``torchrun`` environment when
    ``WORLD_SIZE`` > 1; returns :func:`world`."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return world()


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch: int = 1024) -> float:
    """Top-1 accuracy in percent (eval mode; restores the previous mode)."""
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(y), batch):
        correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    model.train(was)
    return 100.0 * correct / max(1, len(y))


def _shift_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random translation of each image by -1..1 pixels in both axes (zero fill)."""
    n, _, h, w = x.shape
    xp = F.pad(x, (1, 1, 1, 1))
    dy = torch.randint(0, 3, (n,), generator=gen)
    dx = torch.randint(0, 3, (n,), generator=gen)
    out = torch.empty_like(x)
    for a in range(3):
        for b in range(3):
            sel = (dy == a) & (dx == b)
            if sel.any():
                out[sel] = xp[sel, :, a:a + h, b:b + w]
    return out


def _batches(n, batch, epoch_seed, rank, size):
    g = torch.Generator().manual_seed(epoch_seed)
    perm = torch.randperm(n, generator=g)
    if size == 1:
        return [perm[i:i + batch] for i in range(0, n, batch)]
    steps = math.ceil(n / (batch * size))
    total = steps * batch * size
    perm = perm.repeat(math.ceil(total / n))[:total]
    return [perm[s * batch * size:(s + 1) * batch * size][rank::size] for s in range(steps)]


def train(model: nn.Module, data: Split, cfg: TrainConfig) -> dict:
    """Train ``model`` on ``data.x_train`` in place; returns the history
    ``{"epochs": [...], "val_acc": float, "seconds": float, "config": {...}}`` where each epoch
    holds ``loss``, ``train_acc``, ``val_acc`` and (``track_freezing``) ``sign_changed`` /
    ``value_changed`` fractions of the shift weights relative to the start."""
    from tqdm import tqdm

    rank, size = world()
    net = model
    if size > 1:
        net = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches_per_epoch = len(_batches(len(data.y_train), cfg.batch_size, 0, rank, size))
    total_steps = cfg.epochs * batches_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) /
                                                   total_steps)))
    aug_gen = torch.Generator().manual_seed(cfg.seed * 7919 + 17 + rank)
    snapshot = snapshot_weights(model) if cfg.track_freezing else None
    history = {"epochs": [], "config": cfg.to_dict(), "world_size": size}
    if snapshot is not None:
        history["epochs"].append({"epoch": 0, "sign_changed": 0.0, "value_changed": 0.0})
    start = time.perf_counter()
    bar = tqdm(range(1, cfg.epochs + 1), desc=cfg.desc, leave=False,
               disable=not cfg.progress or rank != 0, dynamic_ncols=True)
    for epoch in bar:
        net.train()
        total, correct, count = 0.0, 0, 0
        for idx in _batches(len(data.y_train), cfg.batch_size, cfg.seed * 100003 + epoch,
                            rank, size):
            x, y = data.x_train[idx], data.y_train[idx]
            if cfg.augment:
                x = _shift_augment(x, aug_gen)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            if cfg.reg:
                loss = loss + cfg.reg * regularization(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            count += len(y)
        record = {"epoch": epoch, "loss": total / count, "train_acc": 100.0 * correct / count,
                  "val_acc": evaluate(model, data.x_val, data.y_val)}
        if snapshot is not None:
            ch = weight_changes(model, snapshot)
            record["sign_changed"], record["value_changed"] = ch["sign"], ch["value"]
        history["epochs"].append(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", val=f"{record['val_acc']:.1f}")
    bar.close()
    if size > 1:
        import torch.distributed as dist

        for buf in model.buffers():
            dist.broadcast(buf, 0)
    history["val_acc"] = evaluate(model, data.x_val, data.y_val)
    history["seconds"] = time.perf_counter() - start
    return history
