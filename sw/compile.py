"""Lowering of a model to a program (:mod:`sw.program`) for one array configuration.

Sources (:func:`load_graph`): a densehw export (``sw.export``; version 2 holds the graph
recorded with ``torch.export``, version 1 is rebuilt from its model config), a ``torch.export``
``.pt2`` file, or an ONNX file (:mod:`sw.onnx_import`). Each becomes a :class:`sw.graph.Graph`.

Rules (``docs/deployment.md`` has the arithmetic):

* a ``conv`` (1-D, 2-D; any stride, padding, dilation, groups) or ``linear`` (matmuls with a
  constant operand included) whose weights are shift weights -> one **array** step (im2col;
  one GEMM per group), with the BatchNorm and the ReLU that follow it fused: for BN
  ``z = s*y + t`` and layer bias ``b``, ``c = s*b + t``; the codes of channels with ``s < 0``
  get their sign bit flipped, the array adds ``c / |s|`` (rounded once to ``out_fmt``) and
  applies the ReLU, and a host ``affine`` step multiplies by ``|s|`` (rounded to fp32), because
  ``relu(s*y + c) = |s| * relu(sign(s)*y + c/|s|)``. A channel with ``s = 0`` gets scale 0 and
  the constant ``relu(c)`` as host shift. Powers of two move between ``e0`` and the host scale
  (exactly) when the layer's largest weight exceeds ``2**WEIGHT_EXP_LIMIT`` or ``e0`` lies
  outside the array's range. ReLU6 / clamp after the layer: the ReLU on the array, the upper
  bound a host ``clamp`` step.
* Shift weights: the packed codes of a densehw export; in ``.pt2`` files the weights of densehw
  shift layers; in ONNX files every convolution / Gemm / MatMul weight, which must then be
  exactly ``±2**e`` (else an error naming the initialiser). Layers kept in floating point (plain
  ``nn`` layers of a PyTorch model, or named by ``host=`` patterns) -> host ``fp_*`` steps with
  BN and ReLU fused.
* BatchNorm alone -> host ``affine``; ReLU, clamp, residual add, concat, max / average /
  adaptive-average pooling, reshape / flatten, permute, softmax -> host steps; dropout and
  identity vanish. Anything else was refused by the importer, naming the node and the op.
* activations between steps are ``config.in_fmt`` patterns; array outputs are ``out_fmt``; the
  model's output, when a host step makes it, is fp32.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from contract import encode_weights, make_code, max_exponent_code, pack_codes, split_code
from contract.array import ArrayConfig

from .export import MAGIC as EXPORT_MAGIC
from .export import ExportedModel, ExportError
from .graph import Graph, GraphError, layer_macs
from .program import SOURCE_KINDS, Program, ProgramError
from .runtime import round_to_format

#: Largest weight exponent ``e0 + p`` a compiled array layer keeps when a BatchNorm (or a host
#: scale step) can absorb the excess: weights up to 2**7 keep the outputs of formats with five
#: exponent bits (fp16, fp8_e5m2) clear of overflow for unit-scale activations.
WEIGHT_EXP_LIMIT = 7

__all__ = ["CompileError", "compile_model", "load_graph", "load_graph_bytes", "default_input",
           "LOGITS_FMT",
           "WEIGHT_EXP_LIMIT", "SOURCE_KINDS"]

LOGITS_FMT = "fp32"


class CompileError(ProgramError):
    """A model the compiler cannot lower (names the layer and the reason)."""


def default_input(model_config):
    """``(dataset, per-sample input shape)`` of the built-in models (:mod:`sw.models`)."""
    from .models import default_input as _default

    return _default(model_config)


# -- sources ------------------------------------------------------------------------------------

def source_kind(path: Path, raw: bytes) -> str:
    """``dshw``, ``pt2`` or ``onnx`` from the file's magic bytes and suffix."""
    if raw[:len(EXPORT_MAGIC)] == EXPORT_MAGIC:
        return "dshw"
    if raw[:2] == b"PK":
        return "pt2"
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if path.suffix.lower() in (".dshw", ".pt2"):
        raise ExportError(f"{path}: not a {path.suffix} file (bad magic bytes)")
    raise ExportError(f"{path}: unknown model file; expected a densehw export (.dshw), a "
                      f"torch.export file (.pt2) or an ONNX file (.onnx)")


def _legacy_program(exported: ExportedModel, shape=None):
    """``torch.export`` program of an export rebuilt from its model config (version 1, or
    another input ``shape``)."""
    import io

    from .export import frozen_model, record_graph
    from .models import build_model

    if not exported.model:
        raise CompileError("the export has no model config and no recorded graph; export it "
                           "again with sw.export_model(model, path, example_input=x)")
    try:
        model = build_model(exported.model)
    except (TypeError, ValueError) as exc:
        raise CompileError(f"cannot rebuild the model from the export's config: {exc}") from None
    exported.load_into(model)
    shape = shape or default_input(exported.model)[1]
    data = record_graph(frozen_model(model.eval(), exported.layers), torch.zeros((2, *shape)))
    return torch.export.load(io.BytesIO(data))


def load_graph(source, *, input_shape=None):
    """``(graph, info)`` of a model file or an :class:`~sw.export.ExportedModel`; ``info``
    holds ``kind``, ``raw`` (the file's bytes or None), ``exported`` (densehw exports) and
    ``dataset``. Raises :class:`~sw.export.ExportError` for unreadable files and
    :class:`CompileError` for graphs that cannot be imported."""
    if isinstance(source, ExportedModel):
        return _graph_of_export(source, input_shape, {"kind": "dshw", "raw": None})
    path = Path(source)
    if not path.is_file():
        raise ExportError(f"{path}: model file does not exist")
    raw = path.read_bytes()
    return load_graph_bytes(raw, source_kind(path, raw), input_shape=input_shape, name=path)


def load_graph_bytes(raw: bytes, kind: str, *, input_shape=None, name="model"):
    """:func:`load_graph` of a file's bytes of a known ``kind`` (``dshw``, ``pt2``, ``onnx``)."""
    import io

    from .export import loads
    from .torch_import import import_exported_program

    info = {"kind": kind, "raw": raw, "exported": None, "dataset": None}
    try:
        if kind == "onnx":
            from .onnx_import import import_onnx_bytes

            return import_onnx_bytes(raw, input_shape=input_shape, name=name), info
        if kind == "pt2":
            quiet = logging.getLogger("torch.export")
            level = quiet.level
            quiet.setLevel(logging.CRITICAL)       # torch logs a traceback before raising
            try:
                ep = torch.export.load(io.BytesIO(raw))
            except Exception as exc:         # torch raises many kinds for a bad archive
                raise ExportError(f"{name}: not a readable torch.export file "
                                  f"({str(exc).strip().splitlines()[0]})") from None
            finally:
                quiet.setLevel(level)
            return import_exported_program(ep), info
    except GraphError as exc:
        raise CompileError(str(exc)) from None
    return _graph_of_export(loads(raw, name), input_shape, info)


def _graph_of_export(exported: ExportedModel, input_shape, info):
    from .torch_import import import_exported_program

    info["exported"] = exported
    info["dataset"] = default_input(exported.model)[0]
    shape = None
    if input_shape is not None and exported.model and (
            exported.graph is None or list(input_shape) != exported.input_shape):
        shape = list(input_shape)          # built-in model: record it again at this shape
    try:
        ep = (exported.exported_program() if exported.graph is not None and shape is None
              else _legacy_program(exported, shape))
        graph = import_exported_program(ep, shift_layers=exported.layers)
    except GraphError as exc:
        raise CompileError(str(exc)) from None
    return graph, info


# -- lowering -----------------------------------------------------------------------------------

def _bn_affine(a: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(s, t)`` in float64 with ``bn(y) = s*y + t`` (eval mode, running statistics)."""
    mean = np.asarray(a["mean"], dtype=np.float64)
    var = np.asarray(a["var"], dtype=np.float64)
    gamma = np.ones_like(mean) if a.get("gamma") is None else np.asarray(a["gamma"], np.float64)
    beta = np.zeros_like(mean) if a.get("beta") is None else np.asarray(a["beta"], np.float64)
    s = gamma / np.sqrt(var + float(a["eps"]))
    return s, beta - mean * s


class _Lowering:
    def __init__(self, graph: Graph, config: ArrayConfig, host_patterns):
        self.g, self.cfg = graph, config
        self.users = graph.users()
        self.host_patterns = tuple(host_patterns or ())
        self.steps, self.values, self.blobs = [], {}, {}
        self.value_of = {}
        self.consumed = set()
        self.act = config.in_fmt.name
        self.matched_patterns = set()

    # -- helpers --------------------------------------------------------------------------------
    def new_value(self, shape, fmt) -> str:
        name = f"v{len(self.values)}"
        self.values[name] = {"shape": list(shape), "fmt": fmt}
        return name

    def blob(self, name, arr) -> str:
        key, i = name, 1
        while key in self.blobs:
            key = f"{name}#{i}"
            i += 1
        self.blobs[key] = arr
        return key

    def emit(self, op, where, inputs, shape, fmt, torch_names, **fields) -> str:
        out = self.new_value(shape, fmt)
        self.steps.append({"id": len(self.steps), "op": op, "where": where,
                           "inputs": list(inputs), "output": out, "torch": list(torch_names),
                           **fields})
        return out

    def is_output(self, node) -> bool:
        return node.name == self.g.output

    def out_fmt_host(self, node) -> str:
        return LOGITS_FMT if self.is_output(node) else self.act

    def value(self, name) -> str:
        return self.value_of[name]

    def act_value(self, name, label) -> str:
        v = self.value_of[name]
        if self.values[v]["fmt"] != self.act:
            v = self.emit("convert", "host", [v], self.values[v]["shape"], self.act, [],
                          name=f"{label}.convert")
        return v

    def sole_user(self, node, ops):
        users = self.users[node.name]
        if len(users) == 1 and users[0].op in ops and not self.is_output(node):
            return users[0]
        return None

    def fuse(self, node, *, fold_bn=True):
        """The BatchNorm, ReLU and clamp that follow ``node`` (each the sole user of the one
        before): ``(bn node, relu, clamp node, last fused node, names)``."""
        names, bn, last, relu, clamp = [], None, node, False, None
        if fold_bn:
            user = self.sole_user(last, ("batchnorm",))
            if user is not None and (node.op != "linear" or len(node.shape) == 1):
                bn, last = user, user
                names.append(user.name)
                self.consumed.add(user.name)
        user = self.sole_user(last, ("relu", "clamp"))
        if user is not None and user.op == "relu":
            last, relu = user, True
            names.append(user.name)
            self.consumed.add(user.name)
        elif user is not None and user.attrs.get("lo") == 0.0:
            last, relu, clamp = user, True, user
            names.append(user.name)
            self.consumed.add(user.name)
        return bn, relu, clamp, last, names

    def kept_fp(self, node) -> bool:
        for p in self.host_patterns:
            if fnmatch.fnmatchcase(node.name, p) or (
                    node.attrs.get("weight_name") and fnmatch.fnmatchcase(
                        node.attrs["weight_name"], p)):
                self.matched_patterns.add(p)
                return True
        return bool(node.attrs.get("keep_fp"))

    def geometry(self, node) -> dict:
        a = node.attrs
        if node.op == "linear":
            return {}
        return {"kernel": list(a["weight"].shape[2:]), "stride": list(a["stride"]),
                "padding": list(a["padding"]), "dilation": list(a["dilation"]),
                "groups": int(a["groups"])}

    def kind(self, node) -> str:
        return "linear" if node.op == "linear" else f"conv{node.attrs['dims']}d"

    # -- layers ---------------------------------------------------------------------------------
    def codes_of(self, node):
        """``(codes (M, K) uint8 at the array's width, e0)`` of a shift layer."""
        cfg = self.cfg
        a = node.attrs
        w = a["weight"]
        m = w.shape[0]
        label = f"layer {node.name}"
        if a.get("weight_name") and a["weight_name"] != node.name:
            label += f" (weight {a['weight_name']})"
        if "codes" in a:
            rec = a["codes"]
            codes, wbits, e0 = rec["codes"], rec["wbits"], int(rec["e0"])
            sign, p = split_code(codes, wbits)
            if int(p.max()) > max_exponent_code(cfg.wbits):
                raise CompileError(f"{label}: exponent code p={int(p.max())} does not fit the "
                                   f"array's {cfg.wbits}-bit codes (config {cfg.name})")
            return make_code(sign, p, cfg.wbits), e0
        try:
            codes, e0 = encode_weights(w, cfg.wbits)      # errors give the index in w's shape
            codes = codes.reshape(m, -1)
        except ValueError as exc:
            raise CompileError(f"{label}: the weights are not shift weights for the array's "
                               f"{cfg.wbits}-bit codes: {exc}; keep the layer in floating point "
                               f"on the host with host=[{node.name!r}] (densehw compile --host "
                               f"{node.name})") from None
        return codes, int(e0)

    def shift_layer(self, node):
        cfg = self.cfg
        name = node.name
        kind = self.kind(node)
        geo = self.geometry(node)
        codes, e0 = self.codes_of(node)
        m, k = codes.shape
        if k > cfg.depth:
            raise CompileError(f"layer {name}: K={k} exceeds the array depth {cfg.depth} "
                               f"(config {cfg.name}); a longer dot product cannot be split "
                               f"without a second rounding: use a configuration with depth "
                               f">= {k}")
        sign, p = split_code(codes, cfg.wbits)
        bn, relu, clamp, last, names = self.fuse(node)
        # Powers of two move between e0 and the host scale (exact): when the largest weight
        # exceeds 2**WEIGHT_EXP_LIMIT (fp16 outputs would overflow with 5-bit codes at e0 = 0)
        # or when e0 lies outside the array's range.
        e0_shift = max(0, min(e0 + int(p.max()) - WEIGHT_EXP_LIMIT, e0 - cfg.e0_min))
        if e0 - e0_shift < cfg.e0_min:
            e0_shift = e0 - cfg.e0_min
        elif e0 - e0_shift > cfg.e0_max:
            e0_shift = e0 - cfg.e0_max
        if bn is None and e0_shift > 0 and cfg.e0_min <= e0 <= cfg.e0_max:
            e0_shift = 0                 # no host scale to absorb a shift that is not needed
        e0 -= e0_shift
        bias = node.attrs.get("bias")
        bias = None if bias is None else np.asarray(bias, dtype=np.float64)
        scale = shift = None
        if bn is not None:
            s, t = _bn_affine(bn.attrs)
            c = t if bias is None else s * bias + t
            sign = sign ^ (s < 0)[:, None].astype(np.uint8)
            mag = np.abs(s)
            zero = mag == 0
            bias = np.where(zero, 0.0, c / np.where(zero, 1.0, mag)) * 2.0 ** -e0_shift
            scale = mag.astype(np.float32).astype(np.float64) * 2.0 ** e0_shift   # RNE to fp32
            if zero.any():
                shift = np.where(zero, np.maximum(c, 0.0) if relu else c, 0.0)
        elif e0_shift:
            bias = None if bias is None else bias * 2.0 ** -e0_shift
            scale = np.full(m, 2.0 ** e0_shift)
        codes = make_code(sign, p, cfg.wbits)
        bias_bits = None
        if bias is not None:
            bias_bits = round_to_format(torch.from_numpy(bias), cfg.out_fmt).numpy()
        out_shape = list(last.shape)
        n = (int(np.prod(out_shape[1:])) if kind != "linear"
             else int(np.prod(out_shape[:-1] or [1])))
        x = self.act_value(node.inputs[0], name)
        fields = {"name": name, "n": n, "k": int(k), "m": int(m), "wbits": cfg.wbits,
                  "e0": int(e0),
                  "weights": self.blob(f"{name}.codes", pack_codes(codes, cfg.wbits)),
                  "bias": None if bias_bits is None else self.blob(
                      f"{name}.bias", bias_bits.astype("<u4")),
                  "relu": relu, "macs": layer_macs(node), **geo}
        if bn is not None or e0_shift:
            fields["bn_fold"] = {"negated_channels": int((s < 0).sum()) if bn else 0,
                                 "zero_scale_channels": int((s == 0).sum()) if bn else 0,
                                 "e0_shift": e0_shift}
        plain = scale is None and clamp is None      # the array's output is ``last``'s value
        v = self.emit(kind, "array", [x], out_shape, cfg.out_fmt.name,
                      [name] + names, torch_node=last.name if plain else None, **fields)
        if scale is not None:
            label = bn.name if bn is not None else f"{name}.e0_shift"
            v = self.emit("affine", "host", [v], out_shape,
                          self.out_fmt_host(last) if clamp is None else self.act,
                          [label], name=f"{label}.scale",
                          torch_node=None if clamp is not None else last.name,
                          scale=self.blob(f"{label}.scale", scale.astype("<f8")),
                          shift=None if shift is None else self.blob(
                              f"{label}.shift", shift.astype("<f8")), relu=False)
        if clamp is not None:
            v = self.emit("clamp", "host", [v], out_shape, self.out_fmt_host(last),
                          [clamp.name], name=clamp.name, torch_node=clamp.name,
                          lo=None, hi=clamp.attrs.get("hi"))
        self.value_of[last.name] = v

    def fp_layer(self, node):
        name = node.name
        kind = self.kind(node)
        geo = self.geometry(node)
        bn, relu, clamp, last, names = self.fuse(node)
        w = np.asarray(node.attrs["weight"], dtype=np.float32)
        scale = shift = None
        if bn is not None:
            s, t = _bn_affine(bn.attrs)
            scale = self.blob(f"{bn.name}.scale", s.astype("<f8"))
            shift = self.blob(f"{bn.name}.shift", t.astype("<f8"))
        bias = node.attrs.get("bias")
        out_fmt = self.out_fmt_host(last) if clamp is None else self.act
        v = self.emit(
            f"fp_{kind}", "host", [self.value(node.inputs[0])], list(last.shape), out_fmt,
            [name] + names, name=name,
            weights=self.blob(f"{name}.weight", w.reshape(w.shape[0], -1).astype("<f4")),
            bias=None if bias is None else self.blob(
                f"{name}.bias", np.asarray(bias, dtype=np.float32).astype("<f4")),
            scale=scale, shift=shift, relu=relu,
            torch_node=last.name if clamp is None else None, macs=layer_macs(node), **geo)
        if clamp is not None:
            v = self.emit("clamp", "host", [v], list(last.shape), self.out_fmt_host(last),
                          [clamp.name], name=clamp.name, torch_node=clamp.name, lo=None,
                          hi=clamp.attrs.get("hi"))
        self.value_of[last.name] = v

    def batchnorm(self, node):
        s, t = _bn_affine(node.attrs)
        relu_node = self.sole_user(node, ("relu",))
        last = relu_node or node
        if relu_node is not None:
            self.consumed.add(relu_node.name)
        self.value_of[last.name] = self.emit(
            "affine", "host", [self.value(node.inputs[0])], list(last.shape),
            self.out_fmt_host(last), [node.name] + ([relu_node.name] if relu_node else []),
            name=node.name, scale=self.blob(f"{node.name}.scale", s.astype("<f8")),
            shift=self.blob(f"{node.name}.shift", t.astype("<f8")),
            relu=relu_node is not None, torch_node=last.name)

    def simple(self, node, op, **fields):
        self.value_of[node.name] = self.emit(
            op, "host", [self.value(i) for i in node.inputs], list(node.shape),
            self.out_fmt_host(node), [node.name], name=node.name, torch_node=node.name,
            **fields)

    def add(self, node):
        relu_node = self.sole_user(node, ("relu",))
        last = relu_node or node
        if relu_node is not None:
            self.consumed.add(relu_node.name)
        self.value_of[last.name] = self.emit(
            "add", "host", [self.value(i) for i in node.inputs], list(last.shape),
            self.out_fmt_host(last), [node.name] + ([relu_node.name] if relu_node else []),
            name=node.name, relu=relu_node is not None, torch_node=last.name)

    def node(self, node):
        a = node.attrs
        op = node.op
        if op in ("conv", "linear"):
            return self.fp_layer(node) if self.kept_fp(node) else self.shift_layer(node)
        if op == "batchnorm":
            return self.batchnorm(node)
        if op == "relu":
            return self.simple(node, "relu")
        if op == "clamp":
            return self.simple(node, "clamp", lo=a.get("lo"), hi=a.get("hi"))
        if op == "add":
            return self.add(node)
        if op == "concat":
            return self.simple(node, "concat", axis=int(a["axis"]))
        if op == "maxpool":
            return self.simple(node, f"maxpool{a['dims']}d", kernel=list(a["kernel"]),
                               stride=list(a["stride"]), padding=list(a["padding"]),
                               dilation=list(a["dilation"]), ceil_mode=bool(a["ceil_mode"]))
        if op == "avgpool":
            return self.simple(node, f"avgpool{a['dims']}d", kernel=list(a["kernel"]),
                               stride=list(a["stride"]), padding=list(a["padding"]),
                               ceil_mode=bool(a["ceil_mode"]),
                               count_include_pad=bool(a["count_include_pad"]))
        if op == "adaptive_avgpool":
            if list(a["output_size"]) == [1] * a["dims"]:
                return self.simple(node, "avgpool")
            return self.simple(node, "adaptive_avgpool", output_size=list(a["output_size"]))
        if op == "reshape":
            return self.simple(node, "flatten" if len(node.shape) == 1 else "reshape")
        if op == "permute":
            return self.simple(node, "permute", perm=list(a["perm"]))
        if op == "softmax":
            return self.simple(node, "softmax", axis=int(a["axis"]))
        if op == "identity":
            self.value_of[node.name] = self.value(node.inputs[0])
            return None
        raise CompileError(f"{node.describe()}: cannot be lowered")

    def run(self):
        for node in self.g.nodes:
            if node.name in self.consumed:
                continue
            if node.op == "input":
                self.value_of[node.name] = self.emit(
                    "input", "host", [], list(node.shape), self.act, ["input"], name="input",
                    torch_node=node.name)
                continue
            self.node(node)
        unused = set(self.host_patterns) - self.matched_patterns
        if unused:
            raise CompileError(f"host pattern {sorted(unused)[0]!r} matches no convolution or "
                               f"linear layer")
        return self.value_of[self.g.output]


def compile_model(source, config: ArrayConfig, *, input_shape=None, host=()) -> Program:
    """Lower a model file (densehw export, ``.pt2``, ``.onnx``) or an
    :class:`~sw.export.ExportedModel` for ``config``. ``host``: ``fnmatch`` patterns of layer
    (or ONNX initialiser) names to keep in floating point on the host.

    Raises :class:`CompileError` (a ``ValueError``) for a model that cannot be lowered or does
    not fit ``config``, and :class:`~sw.export.ExportError` for a bad model file."""
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")
    if isinstance(host, str):
        raise TypeError("host must be an iterable of name patterns, not a single string")
    graph, info = load_graph(source, input_shape=input_shape)
    shape = list(graph.input_shape)
    if input_shape is not None and list(input_shape) != shape:
        if info["kind"] != "onnx":
            raise CompileError(f"the model was recorded for inputs of shape {shape}, not "
                               f"{list(input_shape)}; export it again with an example input "
                               f"of that shape")
    lowering = _Lowering(graph, config, host)
    output = lowering.run()
    raw = info["raw"]
    source_info = {}
    if raw is not None:
        kind = info["kind"]
        source_info = {"file": SOURCE_KINDS[kind], "kind": kind,
                       "sha256": hashlib.sha256(raw).hexdigest()}
        if kind == "dshw":
            source_info["export_version"] = info["exported"].version
    exported = info["exported"]
    meta = {"export_meta": exported.meta if exported is not None else {},
            "graph": graph_table(graph, lowering.steps)}
    program = Program(config=config, steps=lowering.steps, values=lowering.values,
                      blobs=lowering.blobs,
                      input={"value": lowering.steps[0]["output"], "shape": shape,
                             "dtype": "float32"},
                      output=output, model=exported.model if exported is not None else None,
                      dataset=info["dataset"], source=source_info, source_bytes=raw,
                      meta=meta)
    from .program import validate

    validate(program)
    return program


def graph_table(graph: Graph, steps: list) -> list:
    """Every graph node: ``{"node", "op", "source", "where", "step", "steps", "macs"}``;
    ``where`` is ``array``, ``host``, ``array+host`` (a node split between an array step and a
    host step: a folded BatchNorm's scale, ReLU6's upper clamp), or ``fused`` / ``none`` for
    nodes with no step of their own; ``step`` is the first step, ``steps`` all of them."""
    steps_of = {}
    for s in steps:
        for name in s.get("torch", []):
            steps_of.setdefault(name, []).append(s)
    out = []
    for n in graph.nodes:
        ss = steps_of.get(n.name, [])
        if ss:
            where = "+".join(w for w in ("array", "host") if any(s["where"] == w for s in ss))
        else:
            where = "none" if n.op == "identity" else "fused"
        out.append({"node": n.name, "op": n.op, "source": n.source, "where": where,
                    "step": ss[0]["id"] if ss else None, "steps": [s["id"] for s in ss],
                    "macs": layer_macs(n)})
    return out
