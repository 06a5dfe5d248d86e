"""The reference networks of ``sw.zoo`` through the user's path: the digits ResNet trained
briefly, torchvision's ResNet-18 and MobileNetV2 (``weights=None``, DenseShift, calibrated BN)
exported, compiled at 32x32 and run on the golden model against PyTorch. ``make models`` runs
the full-size measurements (``docs/deployment.md``)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from contract.array import ArrayConfig
from sw.compile import compile_model
from sw.export import export_model
from sw.reference import reference_of
from sw.runtime import run_program

torch.set_num_threads(1)


def test_digits_resnet_trains_and_compiles(tmp_path):
    from sw.data import digits
    from sw.train import TrainConfig, set_seed, train
    from sw.zoo import digits_resnet

    d = digits()
    set_seed(0)
    model = digits_resnet(width=4)
    train(model, d, TrainConfig(epochs=2, lr=5e-3, seed=0, progress=False))
    export_model(model.eval(), tmp_path / "r.dshw", example_input=d.x_test[:2])
    prog = compile_model(tmp_path / "r.dshw", ArrayConfig())
    kinds = [(s["op"], s.get("stride"), s.get("kernel")) for s in prog.array_steps()]
    assert ("conv2d", [2, 2], [3, 3]) in kinds and ("conv2d", [2, 2], [1, 1]) in kinds
    assert [s["op"] for s in prog.steps].count("add") == 2
    res = run_program(prog, d.x_test)
    with torch.no_grad():
        ref = model(d.x_test)
    assert float((res.predictions == ref.argmax(1)).float().mean()) >= 0.99


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_torchvision_architectures_compile_and_track_pytorch(name, tmp_path):
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("make setup-models installs torchvision")
    from sw.zoo import torchvision_model

    model = torchvision_model(name, image_size=32, calib_batches=2, calib_batch_size=8,
                              quantize_classifier=name == "mobilenet_v2")
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    export_model(model, tmp_path / "m.dshw", example_input=x[:2])
    prog = compile_model(tmp_path / "m.dshw", ArrayConfig(depth=8192))
    arr = prog.array_steps()
    if name == "resnet18":
        assert len(arr) == 19 and max(s["k"] for s in arr) == 4608
        assert [s["op"] for s in prog.steps].count("add") == 8
    else:
        dw = [s for s in arr if s.get("groups", 1) > 1]
        assert len(dw) == 17 and all(s["k"] == 9 for s in dw)
        assert arr[-1]["op"] == "linear"
    res = run_program(prog, x)
    ref = reference_of(prog).outputs(x).double()
    with torch.no_grad():
        assert torch.allclose(ref, model(x).double())
    rel = float((res.logits - ref).norm() / ref.norm())
    assert rel < 0.1, rel
