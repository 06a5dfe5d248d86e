"""Distributed training: 2 CPU processes (gloo) agree with each other after training, and a
BatchNorm-free model matches single-process training on the same global batches."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from sw.data import Split, digits
from sw.layers import DenseShiftLinear
from sw.models import DigitsCNN
from sw.train import TrainConfig, set_seed, train

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def _small_digits():
    d = digits()
    return Split(d.x_train[:256], d.y_train[:256], d.x_val[:64], d.y_val[:64], d.x_test[:64],
                 d.y_test[:64], 10)


def _linear_model():
    set_seed(0)
    return nn.Sequential(nn.Flatten(), DenseShiftLinear(64, 10, e0=-3, surrogate=False))


def _cfg():
    return TrainConfig(epochs=2, batch_size=32, lr=1e-3, progress=False)


def _worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        data = _small_digits()
        set_seed(0)
        cnn = DigitsCNN(method="denseshift", wbits=3, width=4)
        hist = train(cnn, data, _cfg())
        assert hist["world_size"] == world
        torch.save(cnn.state_dict(), Path(out_dir) / f"cnn{rank}.pt")
        lin = _linear_model()
        cfg = _cfg()
        cfg.batch_size = 16                 # per process: 2 x 16 = the reference's 32
        train(lin, data, cfg)
        torch.save(lin.state_dict(), Path(out_dir) / f"lin{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_agree(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    set_seed(0)
    init = DigitsCNN(method="denseshift", wbits=3, width=4).state_dict()
    a, b = (torch.load(tmp_path / f"cnn{r}.pt") for r in (0, 1))
    for k in a:
        assert torch.equal(a[k], b[k]), f"rank 0 and rank 1 differ in {k}"
    moved = [k for k in a if "latent" in k and not torch.equal(a[k], init[k])]
    assert moved, "training did not change the latents"
    # BN-free model: DDP on 2 x 16 equals one process on the same 32-sample batches
    ref = _linear_model()
    train(ref, _small_digits(), _cfg())
    lin0, lin1 = (torch.load(tmp_path / f"lin{r}.pt") for r in (0, 1))
    for k, v in ref.state_dict().items():
        assert torch.equal(lin0[k], lin1[k]), k
        assert torch.allclose(lin0[k], v, atol=1e-5), (k, (lin0[k] - v).abs().max())
    w_ref = ref[1].quantized_weight()
    ddp = _linear_model()
    ddp.load_state_dict(lin0)
    assert torch.equal(ddp[1].quantized_weight(), w_ref)


def test_torchrun_cli(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "densehw",
         "train", "digits", "--epochs", "1", "--no-progress", "--export",
         str(tmp_path / "m.dshw")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)      # torchrun and its workers
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-2000:]
    assert "(2 process(es))" in out and (tmp_path / "m.dshw").exists(), out
