"""ONNX models (``sw.onnx_import``): a network written with ``onnx.helper`` (as another framework
would write it) with shift weights as float initialisers compiles and runs, and agrees with the
same graph run by PyTorch; an initialiser that is not exactly ``±2**e`` and an unsupported
operator are errors naming them; ``--host`` keeps a layer in floating point."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contract.array import ArrayConfig
from densehw.cli import main
from sw.compile import CompileError, compile_model
from sw.graph import reference
from sw.onnx_import import import_onnx
from sw.runtime import run_program

onnx = pytest.importorskip("onnx", reason="make setup-models installs onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SEED = 5


def _pot(rng, shape, lo=-5, hi=-2):
    e = rng.integers(lo, hi + 1, size=shape)
    return (rng.choice([-1.0, 1.0], size=shape) * 2.0 ** e).astype(np.float32)


def _model(path, *, conv_w=None, extra_op=None):
    """x (N,2,6,6) -> Conv 3x3 (PoT) -> BatchNormalization -> Relu -> MaxPool 2 -> Flatten ->
    Gemm (PoT, transB) -> Relu -> MatMul (FP weight) -> Softmax."""
    rng = np.random.default_rng(SEED)
    w = _pot(rng, (4, 2, 3, 3)) if conv_w is None else conv_w
    inits = [numpy_helper.from_array(w, "conv.weight"),
             numpy_helper.from_array(rng.uniform(-0.1, 0.1, 4).astype(np.float32), "conv.bias"),
             numpy_helper.from_array(rng.uniform(0.5, 1.5, 4).astype(np.float32), "bn.scale"),
             numpy_helper.from_array(rng.uniform(-0.2, 0.2, 4).astype(np.float32), "bn.bias"),
             numpy_helper.from_array(rng.uniform(-0.1, 0.1, 4).astype(np.float32), "bn.mean"),
             numpy_helper.from_array(rng.uniform(0.5, 2.0, 4).astype(np.float32), "bn.var"),
             numpy_helper.from_array(_pot(rng, (8, 36)), "fc.weight"),
             numpy_helper.from_array(rng.uniform(-0.1, 0.1, 8).astype(np.float32), "fc.bias"),
             numpy_helper.from_array(rng.normal(0, 0.3, (8, 3)).astype(np.float32), "out.w")]
    nodes = [helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], name="conv",
                              pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean",
                                                     "bn.var"], ["b"], name="bn"),
             helper.make_node("Relu", ["b"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["g"], name="fc",
                              transB=1),
             helper.make_node("Relu", ["g"], ["gr"], name="relu2"),
             helper.make_node("MatMul", ["gr", "out.w"], ["o"], name="out"),
             helper.make_node("Softmax", ["o"], ["y"], name="softmax", axis=-1)]
    if extra_op is not None:
        nodes.insert(3, helper.make_node(extra_op, ["r"], ["r2"], name="odd"))
        nodes[4].input[0] = "r2"
    graph = helper.make_graph(
        nodes, "user", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_onnx_model_compiles_and_tracks_its_reference(tmp_path):
    path = _model(tmp_path / "m.onnx")
    prog = compile_model(path, ArrayConfig(), host=["out*"])
    ops = [(s["op"], s["where"]) for s in prog.steps]
    assert ops == [("input", "host"), ("conv2d", "array"), ("affine", "host"),
                   ("maxpool2d", "host"), ("flatten", "host"), ("linear", "array"),
                   ("fp_linear", "host"), ("softmax", "host")]
    x = torch.rand(10, 2, 6, 6, generator=torch.Generator().manual_seed(SEED))
    res = run_program(prog, x)
    ref = reference(import_onnx(path), x, dtype=torch.float64)
    assert float((res.logits - ref).abs().max()) < 2e-3
    assert torch.equal(res.predictions, ref.argmax(1))
    assert main(["compile", str(path), "-o", str(tmp_path / "p"), "--config", "default",
                 "--host", "out*", "-q"]) == 0


def test_non_power_of_two_initialiser_is_named(tmp_path, capsys):
    w = _pot(np.random.default_rng(1), (4, 2, 3, 3))
    w[1, 0, 2, 1] = 0.3
    path = _model(tmp_path / "m.onnx", conv_w=w)
    with pytest.raises(CompileError, match=r"layer conv \(weight conv\.weight\).*index "
                                           r"\(1, 0, 2, 1\).*0\.3.*not a power of two"):
        compile_model(path, ArrayConfig(), host=["out*"])
    # the FP MatMul without --host is refused the same way
    with pytest.raises(CompileError, match=r"weight out\.w"):
        compile_model(_model(tmp_path / "m2.onnx"), ArrayConfig())
    rc = main(["compile", str(path), "-o", str(tmp_path / "p"), "--config", "default"])
    err = capsys.readouterr().err
    assert rc == 2 and "conv.weight" in err and err.count("\n") == 1


def test_unsupported_onnx_op_is_named(tmp_path):
    path = _model(tmp_path / "m.onnx", extra_op="Sigmoid")
    with pytest.raises(CompileError, match=r"node 'odd' op Sigmoid: is not supported"):
        compile_model(path, ArrayConfig(), host=["out*"])
