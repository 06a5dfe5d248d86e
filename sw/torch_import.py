"""Import of a ``torch.export`` program (a densehw export's graph or a user's ``.pt2`` file) into
the compiler's graph (:mod:`sw.graph`).

Every node whose inputs are all constants (parameters, buffers, lifted constants) is evaluated
once here ("constant folding"): the weights a shift layer computes from its latents become the
constant ``±2**e`` tensor the convolution reads. The remaining nodes map one to one onto graph
ops (:data:`HANDLERS`); any other operator is a :class:`~sw.graph.GraphError` naming the node
and the operator. Module paths come from the node's ``nn_module_stack`` so that a layer keeps
its PyTorch name (``layer1.0.conv1``); the innermost module's class tells a densehw shift layer
(``sw.layers.*``: its weights go to the array) from a layer kept in floating point.
"""

from __future__ import annotations

import operator

import numpy as np
import torch

from .graph import Graph, GraphError, Node, infer_shapes

__all__ = ["import_exported_program", "SHIFT_CLASSES", "module_of"]

#: Classes of densehw shift layers as ``nn_module_stack`` records them.
SHIFT_CLASSES = ("sw.layers.ShiftConv1d", "sw.layers.ShiftConv2d", "sw.layers.ShiftLinear",
                 "sw.layers.DenseShiftConv1d", "sw.layers.DenseShiftConv2d",
                 "sw.layers.DenseShiftLinear")

_aten = torch.ops.aten


def module_of(node) -> tuple[str | None, str | None]:
    """``(path, class)`` of the innermost module a node of an exported program ran in."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return None, None
    path, cls = list(stack.values())[-1]
    if not isinstance(cls, str):
        cls = f"{cls.__module__}.{cls.__qualname__}"
    return path or None, cls


def _ints(v, dims):
    if isinstance(v, (list, tuple)):
        v = [int(x) for x in v]
        return v * dims if len(v) == 1 else v
    return [int(v)] * dims


class _Importer:
    def __init__(self, ep, *, shift_names=None):
        self.ep = ep
        self.consts = {}           # fx node -> torch value (constant folded)
        self.names = {}            # fx node -> graph node name
        self.nodes = []
        self.used_names = set()
        self.shift_names = shift_names
        self.input_node = None

    # -- naming -------------------------------------------------------------------------------
    def name_for(self, fx, leaf: bool) -> str:
        path, cls = module_of(fx)
        leaf = leaf or (cls or "").startswith("torch.nn.modules.flatten")
        leaf = leaf and ((cls or "").startswith("torch.nn.modules.")
                         and not (cls or "").startswith("torch.nn.modules.container")
                         or cls in SHIFT_CLASSES)
        name = path if (leaf and path and path not in self.used_names) else fx.name
        while name in self.used_names:
            name = f"{name}_"
        self.used_names.add(name)
        return name

    def add(self, fx, op, inputs, attrs=None, *, leaf=True):
        path, cls = module_of(fx)
        node = Node(name=self.name_for(fx, leaf), op=op, inputs=[self.names[i] for i in inputs],
                    attrs=attrs or {}, source=str(fx.target), module=path)
        node.attrs.setdefault("module_class", cls)
        self.nodes.append(node)
        self.names[fx] = node.name
        return node

    def alias(self, fx, src):
        self.names[fx] = self.names[src]

    # -- helpers ------------------------------------------------------------------------------
    def const(self, v):
        if isinstance(v, torch.fx.Node):
            return self.consts.get(v)
        return v

    def is_const(self, v) -> bool:
        if isinstance(v, torch.fx.Node):
            return v in self.consts
        if isinstance(v, (list, tuple)):
            return all(self.is_const(x) for x in v)
        return True

    def tensor_arg(self, fx, i):
        a = fx.args[i]
        if not isinstance(a, torch.fx.Node) or a not in self.names:
            raise GraphError(f"node {fx.name!r} op {fx.target}: argument {i} is not a tensor "
                             f"computed from the input")
        return a

    def weight(self, fx, v, what="weight"):
        if v is None:
            return None
        if not isinstance(v, torch.fx.Node) or v not in self.consts:
            raise GraphError(f"node {fx.name!r} op {fx.target}: the {what} is computed from "
                             f"the input; only constant weights can be lowered")
        return self.consts[v].detach().to(torch.float64).numpy().copy()

    def fail(self, fx, why):
        path, _ = module_of(fx)
        where = f" in module {path!r}" if path else ""
        raise GraphError(f"node {fx.name!r}{where}: {why}")

    def axis(self, fx, dim) -> int:
        rank = len(fx.args[0].meta["val"].shape)
        dim = int(dim) % rank
        if dim == 0:
            self.fail(fx, f"op {fx.target} works on the batch axis (dim 0); only per-sample "
                          f"axes can be lowered")
        return dim - 1

    # -- main ---------------------------------------------------------------------------------
    def run(self):
        ep = self.ep
        sig = ep.graph_signature
        kinds = {s.arg.name: s for s in sig.input_specs if hasattr(s.arg, "name")}
        state = ep.state_dict
        for fx in ep.graph.nodes:
            if fx.op == "placeholder":
                spec = kinds.get(fx.name)
                kind = spec.kind.name if spec is not None else "USER_INPUT"
                if kind in ("PARAMETER", "BUFFER"):
                    value = state.get(spec.target)
                    if value is None:
                        value = ep.constants[spec.target]
                    self.consts[fx] = value.detach()
                elif kind == "CONSTANT_TENSOR":
                    self.consts[fx] = ep.constants[spec.target].detach()
                elif kind == "USER_INPUT":
                    if self.input_node is not None:
                        self.fail(fx, "the model takes more than one input tensor")
                    self.input_node = fx
                    shape = list(fx.meta["val"].shape[1:])
                    if not all(isinstance(d, int) for d in shape):
                        self.fail(fx, f"the input has dynamic per-sample dimensions {shape}")
                    node = Node(name="input", op="input", inputs=[], shape=shape,
                                source="placeholder")
                    self.used_names.add("input")
                    self.nodes.append(node)
                    self.names[fx] = "input"
                else:
                    self.fail(fx, f"input kind {kind} is not supported")
            elif fx.op == "call_function":
                val = fx.meta.get("val")
                if isinstance(val, (torch.SymInt, torch.SymFloat, torch.SymBool, int, float,
                                    bool)):
                    continue          # symbolic sizes: shapes come from the tensors' metadata
                args_const = self.is_const(list(fx.args)) and self.is_const(
                    list(fx.kwargs.values()))
                if args_const:
                    self.fold(fx)
                    continue
                handler = HANDLERS.get(fx.target)
                if handler is None:
                    self.fail(fx, f"op {fx.target} is not supported (supported: convolutions, "
                                  f"linear, matmul with a constant weight, BatchNorm, ReLU, "
                                  f"ReLU6/clamp, add, cat, max/avg/adaptive-avg pooling, "
                                  f"flatten/reshape/permute, dropout, softmax)")
                handler(self, fx)
            elif fx.op == "output":
                outs = fx.args[0]
                if isinstance(outs, (list, tuple)):
                    if len(outs) != 1:
                        self.fail(fx, f"the model returns {len(outs)} values; it must return "
                                      f"one tensor")
                    outs = outs[0]
                if not isinstance(outs, torch.fx.Node) or outs not in self.names:
                    self.fail(fx, "the model output is not a tensor computed from the input")
                output = self.names[outs]
            else:
                self.fail(fx, f"graph node kind {fx.op} is not supported")
        if self.input_node is None:
            raise GraphError("the exported program has no user input")
        return Graph(nodes=self.nodes, output=output,
                     input_shape=list(self.input_node.meta["val"].shape[1:]),
                     source_format="torch.export")

    def fold(self, fx):
        def val(v):
            if isinstance(v, torch.fx.Node):
                return self.consts[v]
            if isinstance(v, (list, tuple)):
                return type(v)(val(x) for x in v)
            return v
        with torch.no_grad():
            out = fx.target(*val(list(fx.args)), **{k: val(v) for k, v in fx.kwargs.items()})
        if out is not None:
            self.consts[fx] = out


# -- handlers -------------------------------------------------------------------------------------

def _conv(self, fx):
    a = list(fx.args)
    if fx.target == _aten.convolution.default:
        _, w, b, stride, padding, dilation, transposed, _, groups = a[:9]
        if transposed:
            self.fail(fx, "transposed convolution is not supported")
    else:
        w = a[1]
        b = a[2] if len(a) > 2 else fx.kwargs.get("bias")
        stride = a[3] if len(a) > 3 else fx.kwargs.get("stride", 1)
        padding = a[4] if len(a) > 4 else fx.kwargs.get("padding", 0)
        dilation = a[5] if len(a) > 5 else fx.kwargs.get("dilation", 1)
        groups = a[6] if len(a) > 6 else fx.kwargs.get("groups", 1)
    weight = self.weight(fx, w)
    dims = weight.ndim - 2
    if dims not in (1, 2):
        self.fail(fx, f"{dims}-D convolution is not supported (1-D and 2-D are)")
    kernel = list(weight.shape[2:])
    dilation = _ints(dilation, dims)
    if isinstance(padding, str):
        if padding == "valid":
            padding = [0] * dims
        else:
            total = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
            if any(t % 2 for t in total):
                self.fail(fx, f"padding='same' with kernel {kernel} needs asymmetric padding")
            padding = [t // 2 for t in total]
    attrs = {"dims": dims, "weight": weight, "bias": self.weight(fx, b, "bias"),
             "stride": _ints(stride, dims), "padding": _ints(padding, dims),
             "dilation": dilation, "groups": int(groups)}
    self.add(fx, "conv", [self.tensor_arg(fx, 0)], attrs)


def _linear(self, fx):
    a = list(fx.args)
    attrs = {"weight": self.weight(fx, a[1]),
             "bias": self.weight(fx, a[2] if len(a) > 2 else None, "bias")}
    self.add(fx, "linear", [self.tensor_arg(fx, 0)], attrs)


def _matmul(self, fx):
    a, b = fx.args[0], fx.args[1]
    if self.is_const(b) and not self.is_const(a):
        w = self.weight(fx, b)
        if w.ndim != 2:
            self.fail(fx, f"matmul with a constant of shape {list(w.shape)}; expected 2-D")
        self.add(fx, "linear", [self.tensor_arg(fx, 0)], {"weight": w.T.copy(), "bias": None,
                                                          "matmul": "x @ W"})
        return
    if self.is_const(a) and not self.is_const(b):
        w = self.weight(fx, a)
        rank = len(b.meta["val"].shape)
        if w.ndim != 2 or rank < 3:
            self.fail(fx, f"W @ x with W of shape {list(w.shape)} and x of rank {rank}; "
                          f"expected a 2-D W and a per-sample matrix x")
        perm = list(range(rank - 1))
        perm[-1], perm[-2] = perm[-2], perm[-1]
        name = fx.name
        t_in = Node(name=f"{name}.transpose_in", op="permute", inputs=[self.names[b]],
                    attrs={"perm": perm}, source=str(fx.target))
        lin = Node(name=f"{name}.linear", op="linear", inputs=[t_in.name],
                   attrs={"weight": w, "bias": None, "matmul": "W @ x"}, source=str(fx.target),
                   module=module_of(fx)[0])
        t_out = Node(name=name, op="permute", inputs=[lin.name], attrs={"perm": perm},
                     source=str(fx.target))
        for n in (t_in, lin, t_out):
            self.used_names.add(n.name)
            self.nodes.append(n)
        self.names[fx] = name
        return
    self.fail(fx, f"op {fx.target} multiplies two computed tensors; only a matmul with one "
                  f"constant (shift-weight) operand can be lowered")


def _addmm(self, fx):
    bias, x, w = fx.args[:3]
    if fx.kwargs.get("beta", 1) != 1 or fx.kwargs.get("alpha", 1) != 1:
        self.fail(fx, "addmm with alpha or beta other than 1")
    attrs = {"weight": self.weight(fx, w).T.copy(), "bias": self.weight(fx, bias, "bias")}
    self.add(fx, "linear", [self.tensor_arg(fx, 1)], attrs)


def _batchnorm(self, fx):
    a = list(fx.args)
    if fx.target == _aten.batch_norm.default:
        x, gamma, beta, mean, var, training, _, eps = a[:8]
        if training:
            self.fail(fx, "BatchNorm in training mode; call model.eval() before exporting")
    else:    # _native_batch_norm_legit_no_training(input, weight, bias, mean, var, mom, eps)
        x, gamma, beta, mean, var, _, eps = a[:7]
    if mean is None or var is None:
        self.fail(fx, "BatchNorm without running statistics cannot be folded")
    attrs = {"mean": self.weight(fx, mean, "running mean"),
             "var": self.weight(fx, var, "running variance"),
             "gamma": self.weight(fx, gamma, "weight"), "beta": self.weight(fx, beta, "bias"),
             "eps": float(eps)}
    self.add(fx, "batchnorm", [self.tensor_arg(fx, 0)], attrs)


def _getitem(self, fx):
    src, idx = fx.args
    if src not in self.names or idx != 0:
        self.fail(fx, f"getitem {idx} of {src}: only the first output of an op is supported")
    self.alias(fx, src)


def _relu(self, fx):
    self.add(fx, "relu", [self.tensor_arg(fx, 0)])


def _hardtanh(self, fx):
    lo = fx.args[1] if len(fx.args) > 1 else fx.kwargs.get("min_val", -1.0)
    hi = fx.args[2] if len(fx.args) > 2 else fx.kwargs.get("max_val", 1.0)
    self.add(fx, "clamp", [self.tensor_arg(fx, 0)], {"lo": float(lo), "hi": float(hi)})


def _clamp(self, fx):
    lo = fx.args[1] if len(fx.args) > 1 else fx.kwargs.get("min")
    hi = fx.args[2] if len(fx.args) > 2 else fx.kwargs.get("max")
    for v in (lo, hi):
        if isinstance(v, torch.fx.Node):
            self.fail(fx, "clamp with tensor bounds; only number bounds are supported")
    self.add(fx, "clamp", [self.tensor_arg(fx, 0)],
             {"lo": None if lo is None else float(lo), "hi": None if hi is None else float(hi)})


def _add(self, fx):
    a, b = fx.args[0], fx.args[1]
    alpha = fx.kwargs.get("alpha", 1)
    if alpha != 1:
        self.fail(fx, f"add with alpha={alpha}")
    for v in (a, b):
        if not isinstance(v, torch.fx.Node) or v not in self.names:
            self.fail(fx, "add of a constant; only the sum of two computed tensors (a residual "
                          "add) is supported")
    if list(a.meta["val"].shape) != list(b.meta["val"].shape):
        self.fail(fx, f"add of shapes {list(a.meta['val'].shape)} and "
                      f"{list(b.meta['val'].shape)} (broadcasting is not supported)")
    self.add(fx, "add", [a, b], leaf=False)


def _cat(self, fx):
    tensors = fx.args[0]
    dim = fx.args[1] if len(fx.args) > 1 else fx.kwargs.get("dim", 0)
    for t in tensors:
        if not isinstance(t, torch.fx.Node) or t not in self.names:
            self.fail(fx, "cat of a constant tensor is not supported")
    rank = len(tensors[0].meta["val"].shape)
    self.add(fx, "concat", list(tensors), {"axis": _axis_of(self, fx, dim, rank)}, leaf=False)


def _axis_of(self, fx, dim, rank):
    dim = int(dim) % rank
    if dim == 0:
        self.fail(fx, f"op {fx.target} works on the batch axis (dim 0)")
    return dim - 1


def _pool(self, fx, kind):
    a = list(fx.args)
    dims = 1 if "1d" in str(fx.target) else 2
    kernel = _ints(a[1], dims)
    stride = a[2] if len(a) > 2 and a[2] not in (None, []) else kernel
    attrs = {"dims": dims, "kernel": kernel, "stride": _ints(stride, dims),
             "padding": _ints(a[3] if len(a) > 3 else 0, dims)}
    if kind == "max":
        attrs["dilation"] = _ints(a[4] if len(a) > 4 else 1, dims)
        attrs["ceil_mode"] = bool(a[5] if len(a) > 5 else False)
    else:
        attrs["ceil_mode"] = bool(a[4] if len(a) > 4 else False)
        attrs["count_include_pad"] = bool(a[5] if len(a) > 5 else True)
        if len(a) > 6 and a[6] is not None:
            self.fail(fx, "avg_pool with divisor_override is not supported")
    self.add(fx, f"{kind}pool", [self.tensor_arg(fx, 0)], attrs)


def _adaptive(self, fx):
    dims = 1 if "1d" in str(fx.target) else 2
    self.add(fx, "adaptive_avgpool", [self.tensor_arg(fx, 0)],
             {"dims": dims, "output_size": _ints(fx.args[1], dims)})


def _mean(self, fx):
    x = self.tensor_arg(fx, 0)
    rank = len(x.meta["val"].shape)
    dims = sorted(int(d) % rank for d in fx.args[1])
    keep = fx.args[2] if len(fx.args) > 2 else fx.kwargs.get("keepdim", False)
    if rank not in (3, 4) or dims != list(range(2, rank)):
        self.fail(fx, f"mean over dims {dims} of a rank-{rank} tensor; only the global average "
                      f"over the spatial axes is supported")
    node = self.add(fx, "adaptive_avgpool", [x], {"dims": rank - 2,
                                                  "output_size": [1] * (rank - 2)})
    if not keep:
        out = [int(d) for d in fx.meta["val"].shape[1:]]
        r = Node(name=f"{node.name}.squeeze", op="reshape", inputs=[node.name],
                 attrs={"shape": out}, source=str(fx.target))
        self.used_names.add(r.name)
        self.nodes.append(r)
        self.names[fx] = r.name


def _reshape(self, fx):
    x = self.tensor_arg(fx, 0)
    before, after = x.meta["val"].shape, fx.meta["val"].shape
    if len(after) == 0 or after[0] != before[0]:
        self.fail(fx, f"op {fx.target} changes the batch axis ({list(before)} -> "
                      f"{list(after)})")
    shape = [int(d) for d in after[1:]]
    self.add(fx, "reshape", [x], {"shape": shape}, leaf=False)


def _permute(self, fx):
    x = self.tensor_arg(fx, 0)
    rank = len(x.meta["val"].shape)
    if fx.target in (_aten.permute.default,):
        perm = [int(p) % rank for p in fx.args[1]]
    elif fx.target == _aten.t.default:
        perm = [1, 0]
    else:
        d0, d1 = (int(d) % rank for d in fx.args[1:3])
        perm = list(range(rank))
        perm[d0], perm[d1] = perm[d1], perm[d0]
    if perm[0] != 0:
        self.fail(fx, f"op {fx.target} moves the batch axis (permutation {perm})")
    self.add(fx, "permute", [x], {"perm": [p - 1 for p in perm[1:]]}, leaf=False)


def _identity(self, fx):
    if fx.target in (_aten.dropout.default, _aten.dropout_.default):
        train = fx.args[2] if len(fx.args) > 2 else fx.kwargs.get("train", False)
        if train:
            self.fail(fx, "dropout in training mode; call model.eval() before exporting")
    self.alias(fx, self.tensor_arg(fx, 0))


def _softmax(self, fx):
    x = self.tensor_arg(fx, 0)
    rank = len(x.meta["val"].shape)
    self.add(fx, "softmax", [x], {"axis": _axis_of(self, fx, fx.args[1], rank)})


def _assert(self, fx):
    return None


HANDLERS = {
    _aten.conv1d.default: _conv, _aten.conv2d.default: _conv,
    _aten.conv1d.padding: _conv, _aten.conv2d.padding: _conv,
    _aten.convolution.default: _conv,
    _aten.linear.default: _linear, _aten.matmul.default: _matmul, _aten.mm.default: _matmul,
    _aten.addmm.default: _addmm,
    _aten.batch_norm.default: _batchnorm,
    _aten._native_batch_norm_legit_no_training.default: _batchnorm,
    operator.getitem: _getitem,
    _aten.relu.default: _relu, _aten.relu_.default: _relu,
    _aten.hardtanh.default: _hardtanh, _aten.hardtanh_.default: _hardtanh,
    _aten.relu6.default: lambda self, fx: self.add(fx, "clamp", [self.tensor_arg(fx, 0)],
                                                   {"lo": 0.0, "hi": 6.0}),
    _aten.clamp.default: _clamp, _aten.clamp_.default: _clamp,
    _aten.add.Tensor: _add, _aten.add_.Tensor: _add,
    _aten.cat.default: _cat, _aten.concat.default: _cat,
    _aten.max_pool1d.default: lambda s, fx: _pool(s, fx, "max"),
    _aten.max_pool2d.default: lambda s, fx: _pool(s, fx, "max"),
    _aten.max_pool2d_with_indices.default: lambda s, fx: _pool(s, fx, "max"),
    _aten.avg_pool1d.default: lambda s, fx: _pool(s, fx, "avg"),
    _aten.avg_pool2d.default: lambda s, fx: _pool(s, fx, "avg"),
    _aten.adaptive_avg_pool1d.default: _adaptive, _aten.adaptive_avg_pool2d.default: _adaptive,
    _aten._adaptive_avg_pool2d.default: _adaptive,
    _aten.mean.dim: _mean,
    _aten.flatten.using_ints: _reshape, _aten.view.default: _reshape,
    _aten.reshape.default: _reshape, _aten._unsafe_view.default: _reshape,
    _aten.squeeze.dim: _reshape, _aten.squeeze.dims: _reshape, _aten.unsqueeze.default: _reshape,
    _aten.permute.default: _permute, _aten.transpose.int: _permute, _aten.t.default: _permute,
    _aten.dropout.default: _identity, _aten.dropout_.default: _identity,
    _aten.feature_dropout.default: _identity, _aten.alpha_dropout.default: _identity,
    _aten.contiguous.default: _identity, _aten.clone.default: _identity,
    _aten.alias.default: _identity, _aten.detach.default: _identity,
    _aten.lift_fresh_copy.default: _identity,
    _aten._softmax.default: _softmax, _aten.softmax.int: _softmax,
    _aten._assert_tensor_metadata.default: _assert,
    _aten._assert_scalar.default: _assert,
    _aten.sym_constrain_range_for_size.default: _assert,
}


def import_exported_program(ep, *, shift_layers: dict | None = None,
                            keep_fp_classes: bool = True) -> Graph:
    """:class:`~sw.graph.Graph` of ``ep`` (a ``torch.export.ExportedProgram``).

    ``shift_layers``: ``{module path: ShiftLayerExport}`` of a densehw export; their codes are
    attached to the matching layers (and must equal the graph's weights). Without it, layers of
    a densehw shift class (:data:`SHIFT_CLASSES`) go to the array and, with
    ``keep_fp_classes``, every other ``nn`` convolution or linear layer stays in floating point
    (``keep_fp``). A bare matmul with a constant operand always goes to the array."""
    graph = _Importer(ep).run()
    matched = set()
    for node in graph.nodes:
        if node.op not in ("conv", "linear"):
            continue
        cls = node.attrs.get("module_class") or ""
        if shift_layers is not None:
            rec = shift_layers.get(node.module) if "matmul" not in node.attrs else None
            if rec is not None:
                matched.add(node.module)
                w = rec.weight().reshape(node.attrs["weight"].shape)
                if not np.array_equal(w, node.attrs["weight"]):
                    raise GraphError(f"layer {node.name}: the graph's weights differ from the "
                                     f"packed codes of the export (corrupt export)")
                node.attrs["codes"] = {"codes": rec.codes(), "wbits": rec.wbits, "e0": rec.e0}
            elif "matmul" not in node.attrs:
                node.attrs["keep_fp"] = True
        elif cls in SHIFT_CLASSES:
            node.attrs["shift_class"] = cls
        elif keep_fp_classes and "matmul" not in node.attrs:
            node.attrs["keep_fp"] = True
    unmatched = sorted(map(str, set(shift_layers or {}) - matched))
    if unmatched:
        # a shift layer of the export that no module of the graph uses would silently run in
        # floating point instead
        raise GraphError(f"shift layer {unmatched[0]!r} of the export matches no layer of its "
                         f"graph (corrupt export)")
    infer_shapes(graph)
    return graph
