"""Import of an ONNX model into the compiler's graph (:mod:`sw.graph`); needs the ``onnx``
package (``make setup-models``).

Every ``Conv``, ``Gemm`` and ``MatMul`` with a constant weight becomes a layer for the array:
its weight initialiser must hold shift weights, exactly ``±2**e`` in float (the compiler names
the initialiser otherwise), unless the layer is kept on the host (``densehw compile --host``).
Supported operators: ``Conv`` (1-D, 2-D, any group count; explicit symmetric pads), ``Gemm``
(``alpha = beta = 1``, ``transA = 0``), ``MatMul`` with one constant operand,
``BatchNormalization``, ``Relu``, ``Clip``, ``Add`` (two computed tensors, or a constant bias
right after a layer without one), ``Concat``, ``MaxPool``, ``AveragePool``,
``GlobalAveragePool``, ``Flatten`` (axis 1), ``Reshape``, ``Squeeze``, ``Unsqueeze``,
``Transpose``, ``Dropout``, ``Identity``, ``Softmax``; ``Constant``, ``Identity`` and ``Cast`` of
constants are evaluated. Any other operator is an error naming the node and the op. The first
axis of the input is the batch axis; the others must be fixed (or given as ``input_shape``).
"""

from __future__ import annotations

import numpy as np
import torch

from .export import ExportError
from .graph import Graph, GraphError, Node, evaluate_node

__all__ = ["import_onnx_bytes", "import_onnx"]


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ExportError("reading ONNX files needs the onnx package: run `make setup-models` "
                          "(installs requirements-models.txt)") from None
    return onnx, numpy_helper


class _Importer:
    def __init__(self, model, input_shape, name):
        onnx, numpy_helper = _onnx()
        self.onnx, self.np_helper = onnx, numpy_helper
        self.model, self.name = model, name
        g = model.graph
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.names = {}              # ONNX value name -> graph node name
        self.nodes, self.used = [], set()
        self.values = {}             # graph node name -> zeros of its shape (batch 1)
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise GraphError(f"{name}: the model has {len(inputs)} inputs; expected one")
        dims = inputs[0].type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") else None for d in dims][1:]
        if input_shape is not None:
            shape = [int(v) for v in input_shape]
        if not shape or any(d is None or d < 1 for d in shape):
            raise GraphError(f"{name}: input {inputs[0].name!r} has per-sample shape {shape}; "
                             f"give it with --input-shape")
        self.input_shape = shape
        self.put(Node(name="input", op="input", inputs=[], source="ONNX input"),
                 inputs[0].name)

    # -- helpers --------------------------------------------------------------------------------
    def put(self, node: Node, onnx_name: str) -> Node:
        base = node.name
        while node.name in self.used:
            node.name = f"{base}_"
        self.used.add(node.name)
        if node.op == "input":
            value = torch.zeros((1, *self.input_shape))
        else:
            try:
                value = evaluate_node(node, [self.values[i] for i in node.inputs], torch.float32)
            except (RuntimeError, ValueError, IndexError, TypeError) as exc:
                if isinstance(exc, GraphError):
                    raise
                raise GraphError(f"{node.describe()}: cannot be applied to its input "
                                 f"({str(exc).splitlines()[0]})") from None
        self.values[node.name] = value
        node.shape = [int(d) for d in value.shape[1:]]
        self.nodes.append(node)
        self.names[onnx_name] = node.name
        return node

    def tensor(self, node, name):
        if name not in self.names:
            self.fail(node, f"input {name!r} is not a tensor computed from the model input")
        return self.names[name]

    def const(self, node, name, what):
        if name not in self.consts:
            self.fail(node, f"the {what} ({name!r}) must be a constant initialiser")
        return np.asarray(self.consts[name])

    def fail(self, node, why):
        raise GraphError(f"node {node.name!r} op {node.op_type}: {why}")

    def rank(self, onnx_name) -> int:
        return len(self.values[self.names[onnx_name]].shape)

    def attrs(self, node) -> dict:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def axis(self, node, axis, rank) -> int:
        axis = int(axis) % rank
        if axis == 0:
            self.fail(node, "works on the batch axis (axis 0)")
        return axis - 1

    # -- ops ------------------------------------------------------------------------------------
    def run(self):
        for i, node in enumerate(self.model.graph.node):
            if not node.name:
                node.name = f"{node.op_type}_{i}"
            if all(x in self.consts or x == "" for x in node.input) and node.op_type in (
                    "Constant", "Identity", "Cast"):
                self.fold(node)
                continue
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None:
                self.fail(node, "is not supported (supported: Conv, Gemm, MatMul with a "
                                "constant weight, BatchNormalization, Relu, Clip, Add, Concat, "
                                "MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, "
                                "Squeeze, Unsqueeze, Transpose, Dropout, Identity, Softmax)")
            handler(node, self.attrs(node))
        outputs = self.model.graph.output
        if len(outputs) != 1:
            raise GraphError(f"{self.name}: the model has {len(outputs)} outputs; expected one")
        out = outputs[0].name
        if out not in self.names:
            raise GraphError(f"{self.name}: the output {out!r} is not computed from the input")
        return Graph(nodes=self.nodes, output=self.names[out], input_shape=self.input_shape,
                     source_format="onnx")

    def fold(self, node):
        a = self.attrs(node)
        if node.op_type == "Constant":
            if "value" not in a:
                self.fail(node, f"Constant with {sorted(a)}; only 'value' is supported")
            value = self.np_helper.to_array(a["value"])
        elif node.op_type == "Identity":
            value = self.consts[node.input[0]]
        else:
            dtype = self.onnx.helper.tensor_dtype_to_np_dtype(a["to"])
            value = self.consts[node.input[0]].astype(dtype)
        self.consts[node.output[0]] = np.asarray(value)

    def layer(self, node, op, x, weight, bias, attrs, weight_name):
        attrs = dict(attrs, weight=weight.astype(np.float64), weight_name=weight_name,
                     bias=None if bias is None else bias.astype(np.float64))
        self.put(Node(name=node.name, op=op, inputs=[self.tensor(node, x)], attrs=attrs,
                      source=f"onnx {node.op_type}", module=node.name), node.output[0])

    def op_Conv(self, node, a):
        w = self.const(node, node.input[1], "weight")
        dims = w.ndim - 2
        if dims not in (1, 2):
            self.fail(node, f"{dims}-D convolution is not supported")
        kernel = list(w.shape[2:])
        dil = list(a.get("dilations", [1] * dims))
        pads = list(a.get("pads", [0] * 2 * dims))
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            stride = list(a.get("strides", [1] * dims))
            if any(s != 1 for s in stride) or any(d * (k - 1) % 2 for d, k in zip(
                    dil, kernel, strict=True)):
                self.fail(node, f"auto_pad {auto} needs asymmetric padding")
            pads = [d * (k - 1) // 2 for d, k in zip(dil, kernel, strict=True)] * 2
        elif auto == "VALID":
            pads = [0] * 2 * dims
        if pads[:dims] != pads[dims:]:
            self.fail(node, f"asymmetric pads {pads} are not supported")
        bias = self.const(node, node.input[2], "bias") if len(node.input) > 2 and node.input[
            2] else None
        attrs = {"dims": dims, "stride": list(a.get("strides", [1] * dims)),
                 "padding": pads[:dims], "dilation": dil, "groups": int(a.get("group", 1))}
        self.layer(node, "conv", node.input[0], w, bias, attrs, node.input[1])

    def op_Gemm(self, node, a):
        if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
            self.fail(node, "only alpha = beta = 1 and transA = 0 are supported")
        w = self.const(node, node.input[1], "weight")
        w = w if a.get("transB", 0) else w.T
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self.const(node, node.input[2], "bias").reshape(-1)
            if bias.shape != (w.shape[0],):
                self.fail(node, f"bias of shape {bias.shape}; expected ({w.shape[0]},)")
        self.layer(node, "linear", node.input[0], w, bias, {}, node.input[1])

    def op_MatMul(self, node, a):
        x, w = node.input
        if w in self.consts and x not in self.consts:
            wv = self.const(node, w, "weight")
            if wv.ndim != 2:
                self.fail(node, f"MatMul with a constant of shape {wv.shape}; expected 2-D")
            self.layer(node, "linear", x, wv.T, None, {"matmul": "x @ W"}, w)
            return
        if x in self.consts and w not in self.consts:
            wv = self.const(node, x, "weight")
            rank = self.rank(w)
            if wv.ndim != 2 or rank < 3:
                self.fail(node, "W @ x needs a 2-D W and a per-sample matrix x")
            perm = list(range(rank - 1))
            perm[-1], perm[-2] = perm[-2], perm[-1]
            t = self.put(Node(name=f"{node.name}.transpose_in", op="permute",
                              inputs=[self.tensor(node, w)], attrs={"perm": perm},
                              source="onnx MatMul"), f"{node.output[0]}#t")
            lin = self.put(Node(name=f"{node.name}.linear", op="linear", inputs=[t.name],
                                attrs={"weight": wv.astype(np.float64), "bias": None,
                                       "weight_name": x, "matmul": "W @ x"},
                                source="onnx MatMul", module=node.name), f"{node.output[0]}#l")
            self.put(Node(name=node.name, op="permute", inputs=[lin.name], attrs={"perm": perm},
                          source="onnx MatMul"), node.output[0])
            return
        self.fail(node, "multiplies two computed tensors; only a MatMul with one constant "
                        "(shift-weight) operand can be lowered")

    def op_BatchNormalization(self, node, a):
        if a.get("training_mode", 0):
            self.fail(node, "BatchNormalization in training mode")
        gamma, beta, mean, var = (self.const(node, n, what) for n, what in zip(
            node.input[1:5], ("scale", "bias", "mean", "variance"), strict=True))
        attrs = {"gamma": gamma.astype(np.float64), "beta": beta.astype(np.float64),
                 "mean": mean.astype(np.float64), "var": var.astype(np.float64),
                 "eps": float(a.get("epsilon", 1e-5))}
        self.simple(node, "batchnorm", attrs)

    def simple(self, node, op, attrs=None, inputs=None):
        ins = [self.tensor(node, i) for i in (inputs or node.input[:1])]
        self.put(Node(name=node.name, op=op, inputs=ins, attrs=attrs or {},
                      source=f"onnx {node.op_type}", module=node.name), node.output[0])

    def op_Relu(self, node, a):
        self.simple(node, "relu")

    def op_Clip(self, node, a):
        lo, hi = a.get("min"), a.get("max")
        if len(node.input) > 1 and node.input[1]:
            lo = float(self.const(node, node.input[1], "min"))
        if len(node.input) > 2 and node.input[2]:
            hi = float(self.const(node, node.input[2], "max"))
        self.simple(node, "clamp", {"lo": None if lo is None else float(lo),
                                    "hi": None if hi is None else float(hi)})

    def op_Add(self, node, a):
        x, y = node.input
        if x in self.consts or y in self.consts:
            c, t = (x, y) if x in self.consts else (y, x)
            src = self.names.get(t)
            prev = self.nodes[-1] if self.nodes else None
            bias = np.asarray(self.consts[c], dtype=np.float64)
            if (prev is not None and prev.name == src and prev.op in ("linear", "conv")
                    and prev.attrs.get("bias") is None):
                m = prev.attrs["weight"].shape[0]
                want = (m,) if prev.op == "linear" else (m,) + (1,) * prev.attrs["dims"]
                if bias.reshape(-1).shape == (m,) and bias.shape[-len(want):] == want[
                        -bias.ndim:]:
                    prev.attrs["bias"] = bias.reshape(-1)
                    self.values[prev.name] = evaluate_node(
                        prev, [self.values[prev.inputs[0]]], torch.float32)
                    self.names[node.output[0]] = prev.name
                    return
            self.fail(node, "adds a constant; only a residual add of two computed tensors, or "
                            "a bias right after a Conv/Gemm/MatMul without one, is supported")
        if self.values[self.tensor(node, x)].shape != self.values[self.tensor(node, y)].shape:
            self.fail(node, "broadcasting add is not supported")
        self.simple(node, "add", inputs=[x, y])

    def op_Concat(self, node, a):
        self.simple(node, "concat", {"axis": self.axis(node, a["axis"], self.rank(
            node.input[0]))}, inputs=list(node.input))

    def _pool_attrs(self, node, a, dims):
        kernel = list(a["kernel_shape"])
        pads = list(a.get("pads", [0] * 2 * dims))
        if pads[:dims] != pads[dims:]:
            self.fail(node, f"asymmetric pads {pads} are not supported")
        auto = a.get("auto_pad", b"NOTSET")
        if (auto.decode() if isinstance(auto, bytes) else auto) != "NOTSET":
            self.fail(node, "auto_pad is not supported for pooling; give explicit pads")
        return {"dims": dims, "kernel": kernel, "stride": list(a.get("strides", [1] * dims)),
                "padding": pads[:dims], "ceil_mode": bool(a.get("ceil_mode", 0))}

    def op_MaxPool(self, node, a):
        if len(node.output) > 1 and node.output[1]:
            self.fail(node, "MaxPool with an indices output is not supported")
        dims = self.rank(node.input[0]) - 2
        attrs = self._pool_attrs(node, a, dims)
        attrs["dilation"] = list(a.get("dilations", [1] * dims))
        self.simple(node, "maxpool", attrs)

    def op_AveragePool(self, node, a):
        dims = self.rank(node.input[0]) - 2
        attrs = self._pool_attrs(node, a, dims)
        attrs["count_include_pad"] = bool(a.get("count_include_pad", 0))
        self.simple(node, "avgpool", attrs)

    def op_GlobalAveragePool(self, node, a):
        dims = self.rank(node.input[0]) - 2
        self.simple(node, "adaptive_avgpool", {"dims": dims, "output_size": [1] * dims})

    def _reshape_to(self, node, shape):
        self.simple(node, "reshape", {"shape": [int(d) for d in shape]})

    def op_Flatten(self, node, a):
        if int(a.get("axis", 1)) != 1:
            self.fail(node, f"Flatten with axis {a.get('axis')}; only axis 1 is supported")
        shape = self.values[self.tensor(node, node.input[0])].shape
        self._reshape_to(node, [int(np.prod(shape[1:]))])

    def op_Reshape(self, node, a):
        target = [int(d) for d in self.const(node, node.input[1], "shape")]
        shape = list(self.values[self.tensor(node, node.input[0])].shape)
        if not target or target[0] not in (0, -1, 1) or (target[0] == -1 and -1 in target[1:]):
            self.fail(node, f"Reshape to {target} does not keep the batch axis first")
        rest = [shape[i + 1] if d == 0 and not a.get("allowzero", 0) else d
                for i, d in enumerate(target[1:])]
        if -1 in rest:
            known = int(np.prod([d for d in rest if d != -1]))
            rest[rest.index(-1)] = int(np.prod(shape[1:])) // max(known, 1)
        if int(np.prod(rest)) != int(np.prod(shape[1:])):
            self.fail(node, f"Reshape of per-sample shape {shape[1:]} to {rest}")
        self._reshape_to(node, rest)

    def _axes(self, node, a):
        if "axes" in a:
            return [int(v) for v in a["axes"]]
        if len(node.input) > 1 and node.input[1]:
            return [int(v) for v in self.const(node, node.input[1], "axes")]
        return None

    def op_Squeeze(self, node, a):
        shape = list(self.values[self.tensor(node, node.input[0])].shape)
        axes = self._axes(node, a)
        axes = [i for i, d in enumerate(shape) if d == 1 and i] if axes is None else [
            self.axis(node, x, len(shape)) + 1 for x in axes]
        self._reshape_to(node, [d for i, d in enumerate(shape) if i not in axes][1:])

    def op_Unsqueeze(self, node, a):
        shape = list(self.values[self.tensor(node, node.input[0])].shape)
        axes = self._axes(node, a)
        rank = len(shape) + len(axes)
        out = shape[:]
        for ax in sorted(int(x) % rank for x in axes):
            if ax == 0:
                self.fail(node, "unsqueezes before the batch axis")
            out.insert(ax, 1)
        self._reshape_to(node, out[1:])

    def op_Transpose(self, node, a):
        rank = self.rank(node.input[0])
        perm = list(a.get("perm", list(range(rank))[::-1]))
        if perm[0] != 0:
            self.fail(node, f"Transpose {perm} moves the batch axis")
        self.simple(node, "permute", {"perm": [p - 1 for p in perm[1:]]})

    def op_Dropout(self, node, a):
        if len(node.input) > 2 and node.input[2] and bool(self.consts.get(node.input[2], False)):
            self.fail(node, "Dropout in training mode")
        self.names[node.output[0]] = self.tensor(node, node.input[0])

    def op_Identity(self, node, a):
        self.names[node.output[0]] = self.tensor(node, node.input[0])

    def op_Softmax(self, node, a):
        rank = self.rank(node.input[0])
        opset = max((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")),
                    default=13)
        axis = int(a.get("axis", -1 if opset >= 13 else 1)) % rank
        if opset < 13 and axis != rank - 1:
            self.fail(node, "Softmax before opset 13 over several axes is not supported")
        self.simple(node, "softmax", {"axis": self.axis(node, axis, rank)})


def import_onnx_bytes(raw: bytes, *, input_shape=None, name="model.onnx") -> Graph:
    """:class:`~sw.graph.Graph` of the ONNX model in ``raw``."""
    onnx, _ = _onnx()
    try:
        model = onnx.load_from_string(raw)
    except Exception as exc:            # protobuf raises its own DecodeError
        raise ExportError(f"{name}: not a readable ONNX file ({exc})") from None
    if not model.graph.node:
        raise ExportError(f"{name}: the ONNX file holds no graph")
    return _Importer(model, input_shape, name).run()


def import_onnx(path, *, input_shape=None) -> Graph:
    """:func:`import_onnx_bytes` of a file."""
    from pathlib import Path

    path = Path(path)
    return import_onnx_bytes(path.read_bytes(), input_shape=input_shape, name=str(path))
