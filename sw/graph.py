"""The model graph the compiler lowers: a small, framework-neutral intermediate representation.

Importers (:mod:`sw.torch_import` for ``torch.export`` programs and densehw exports,
:mod:`sw.onnx_import` for ONNX) turn a model into a :class:`Graph`; :mod:`sw.compile` lowers it
to a program. Every tensor has a leading batch axis that no node may touch; ``shape`` and every
axis attribute are *per sample* (the batch axis removed). Constants (weights, BatchNorm
statistics) are NumPy arrays in the node's ``attrs``.

Ops and their attributes (``inputs`` are node names; the graph input is the node ``input``):

======================  ======================================================================
``input``               the model input (no inputs)
``conv``                ``dims`` (1, 2), ``weight`` ``(M, C/groups, *kernel)``, ``bias`` or None,
                        ``stride``, ``padding``, ``dilation`` (lists), ``groups``
``linear``              over the last axis: ``weight`` ``(M, K)``, ``bias`` or None
``batchnorm``           eval-mode BatchNorm over axis 0: ``mean``, ``var``, ``gamma``, ``beta``
                        (arrays or None), ``eps``
``relu``                ``max(x, 0)``
``clamp``               ``lo``, ``hi`` (floats or None): ReLU6 is ``clamp(0, 6)``
``add``                 two inputs of the same shape
``concat``              ``axis``
``maxpool``             ``dims``, ``kernel``, ``stride``, ``padding``, ``dilation``, ``ceil_mode``
``avgpool``             ``dims``, ``kernel``, ``stride``, ``padding``, ``ceil_mode``,
                        ``count_include_pad``
``adaptive_avgpool``    ``dims``, ``output_size`` (list)
``reshape``             to ``shape`` (flatten, view, squeeze ... : no arithmetic)
``permute``             ``perm`` (per-sample axes)
``identity``            dropout and identity in eval mode, contiguous, clone
``softmax``             ``axis``
======================  ======================================================================

A ``conv`` or ``linear`` may carry ``codes`` (``{"codes": (M, K) uint8, "wbits", "e0"}``: the
packed shift weights of a densehw export, the authority for the array) and ``keep_fp`` (a layer
the user kept in floating point: it runs on the host). ``module`` names the PyTorch module (or
ONNX node) a node came from, ``source`` its original op.

:func:`reference` runs a graph in floating point with PyTorch's own operators: it is the
"PyTorch" side of the comparisons for models that have no PyTorch module (ONNX files), and the
per-layer reference for every model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["Node", "Graph", "GraphError", "OPS", "evaluate_node", "reference", "infer_shapes",
           "layer_macs"]

OPS = ("input", "conv", "linear", "batchnorm", "relu", "clamp", "add", "concat", "maxpool",
       "avgpool", "adaptive_avgpool", "reshape", "permute", "identity", "softmax")


class GraphError(ValueError):
    """A model the importer or the compiler cannot handle; names the node and the op."""


@dataclass
class Node:
    name: str
    op: str
    inputs: list
    attrs: dict = field(default_factory=dict)
    shape: list | None = None
    source: str = ""
    module: str | None = None

    def describe(self) -> str:
        src = f" ({self.source})" if self.source and self.source != self.op else ""
        return f"node {self.name!r} op {self.op}{src}"


@dataclass
class Graph:
    """Nodes in execution order; ``output`` names the node whose value the model returns."""

    nodes: list
    output: str
    input_shape: list
    source_format: str = ""

    def __post_init__(self):
        self.by_name = {n.name: n for n in self.nodes}
        if len(self.by_name) != len(self.nodes):
            raise GraphError("duplicate node names in the graph")

    def users(self) -> dict:
        """``{node name: [nodes that read it]}`` (the output counts as a user)."""
        out = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out[i].append(n)
        return out


def _t(a, dtype=torch.float32):
    return None if a is None else torch.as_tensor(np.asarray(a), dtype=dtype)


def _pool_args(a):
    return {"kernel_size": tuple(a["kernel"]), "stride": tuple(a["stride"]),
            "padding": tuple(a["padding"]), "ceil_mode": bool(a.get("ceil_mode", False))}


def evaluate_node(node: Node, args, dtype):
    """One node in floating point (``dtype``) with PyTorch's operators; batch axis first."""
    a = node.attrs
    op = node.op
    if op == "conv":
        fn = F.conv1d if a["dims"] == 1 else F.conv2d
        return fn(args[0], _t(a["weight"], dtype), _t(a.get("bias"), dtype), a["stride"],
                  a["padding"], a["dilation"], a["groups"])
    if op == "linear":
        return F.linear(args[0], _t(a["weight"], dtype), _t(a.get("bias"), dtype))
    if op == "batchnorm":
        c = args[0].shape[1]
        ones, zeros = np.ones(c), np.zeros(c)
        return F.batch_norm(args[0], _t(a["mean"], dtype), _t(a["var"], dtype),
                            _t(a["gamma"] if a.get("gamma") is not None else ones, dtype),
                            _t(a["beta"] if a.get("beta") is not None else zeros, dtype),
                            False, 0.0, a["eps"])
    if op == "relu":
        return torch.relu(args[0])
    if op == "clamp":
        return torch.clamp(args[0], a.get("lo"), a.get("hi"))
    if op == "add":
        return args[0] + args[1]
    if op == "concat":
        return torch.cat(args, dim=a["axis"] + 1)
    if op == "maxpool":
        fn = F.max_pool1d if a["dims"] == 1 else F.max_pool2d
        return fn(args[0], dilation=tuple(a["dilation"]), **_pool_args(a))
    if op == "avgpool":
        fn = F.avg_pool1d if a["dims"] == 1 else F.avg_pool2d
        return fn(args[0], count_include_pad=bool(a["count_include_pad"]), **_pool_args(a))
    if op == "adaptive_avgpool":
        fn = F.adaptive_avg_pool1d if a["dims"] == 1 else F.adaptive_avg_pool2d
        return fn(args[0], tuple(a["output_size"]))
    if op == "reshape":
        return args[0].reshape(args[0].shape[0], *a["shape"])
    if op == "permute":
        return args[0].permute(0, *[p + 1 for p in a["perm"]])
    if op == "identity":
        return args[0]
    if op == "softmax":
        return torch.softmax(args[0], dim=a["axis"] + 1)
    raise GraphError(f"{node.describe()}: no reference for this op")


@torch.no_grad()
def reference(graph: Graph, x: torch.Tensor, *, record: bool = False, dtype=torch.float32):
    """Run ``graph`` on ``x`` (batch first) in ``dtype``; returns the output, or with
    ``record`` ``(output, {node name: value})``. Values no longer needed are dropped."""
    values = {}
    kept = {}
    last_use = {}
    for i, n in enumerate(graph.nodes):
        for name in n.inputs:
            last_use[name] = i
    for i, n in enumerate(graph.nodes):
        if n.op == "input":
            out = x.to(dtype)
        else:
            out = evaluate_node(n, [values[v] for v in n.inputs], dtype)
        values[n.name] = out
        if record:
            kept[n.name] = out
        for name in n.inputs:
            if last_use.get(name) == i and name != graph.output:
                values.pop(name, None)
    out = values[graph.output]
    return (out, kept) if record else out


def infer_shapes(graph: Graph) -> None:
    """Fill every node's per-sample ``shape`` by running the reference on zeros; a node that
    PyTorch refuses raises :class:`GraphError` naming it."""
    values = {}
    with torch.no_grad():
        for n in graph.nodes:
            if n.op == "input":
                out = torch.zeros((1, *graph.input_shape))
            else:
                try:
                    out = evaluate_node(n, [values[v] for v in n.inputs], torch.float32)
                except (RuntimeError, ValueError, IndexError, TypeError) as exc:
                    if isinstance(exc, GraphError):
                        raise
                    raise GraphError(f"{n.describe()}: cannot be applied to its input "
                                     f"({str(exc).splitlines()[0]})") from None
            values[n.name] = out
            n.shape = [int(d) for d in out.shape[1:]]


def layer_macs(node: Node) -> int:
    """Multiply-accumulates of a ``conv`` or ``linear`` node per sample (0 for other ops)."""
    if node.op == "conv":
        w = node.attrs["weight"]
        return int(np.prod(node.shape)) * int(np.prod(w.shape[1:]))
    if node.op == "linear":
        m, k = node.attrs["weight"].shape
        return int(np.prod(node.shape[:-1] or [1])) * int(m) * int(k)
    return 0
