"""Lowering of an exported DenseShift model (:mod:`sw.export`) to a program (:mod:`sw.program`).

The export's ``model`` config rebuilds the PyTorch module (:func:`sw.models.build_model`), whose
``torch.fx`` graph gives the structure; shift layers are leaves and take their codes and ``e0``
from the export file, every other parameter comes from the file's full-precision tensors.

Lowering rules (``docs/deployment.md`` has the arithmetic):

* shift ``Linear``/``Conv1d``/``Conv2d`` -> one **array** step (im2col for convolutions:
  stride, padding, dilation; ``groups`` must be 1), with the layer's BatchNorm and ReLU fused:
  for BN ``z = s*y + t`` (``s = gamma / sqrt(var + eps)``, ``t = beta - mean*s``, float64) and
  layer bias ``b``, ``c = s*b + t``; the weight codes of channels with ``s < 0`` get their sign
  bit flipped, the array adds the bias ``c / |s|`` (rounded once to ``out_fmt``), applies the
  ReLU, and a host ``affine`` step multiplies by ``|s|`` (rounded to fp32), because
  ``relu(s*y + c) = |s| * relu(sign(s)*y + c/|s|)``. A channel with ``s = 0`` gets scale 0 and
  the constant ``relu(c)`` as a host shift. When the layer's largest weight ``2**(e0 + p)``
  exceeds ``2**WEIGHT_EXP_LIMIT``, ``k`` powers of two move from the weights into the host
  scale (``e0 - k``, bias ``c / (|s| 2**k)``, scale ``|s| 2**k``; exact), so that wide codes
  (B = 5) do not overflow fp16 outputs.
* full-precision ``Linear``/``Conv`` (first and last layers) -> host ``fp_*`` step with BN and
  ReLU fused; BatchNorm alone -> host ``affine``; ``MaxPool``, ``AdaptiveAvgPool(1)``,
  residual ``+``, ``ReLU``, ``Flatten`` -> host steps.
* activations between steps are ``config.in_fmt`` patterns; array outputs are ``out_fmt``;
  the logits of a host head are fp32.
"""

from __future__ import annotations

import hashlib
import operator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from contract import make_code, max_exponent_code, pack_codes, split_code
from contract.array import ArrayConfig

from .export import FORMAT_VERSION as EXPORT_VERSION
from .export import ExportedModel, ExportError
from .export import load as load_export
from .layers import is_shift_layer
from .program import Program, ProgramError
from .runtime import round_to_format

#: Largest weight exponent ``e0 + p`` a compiled array layer keeps when its BatchNorm can absorb
#: the excess (see :meth:`_Lowering.shift_layer`): weights up to 2**7 keep the outputs of
#: formats with five exponent bits (fp16, fp8_e5m2) clear of overflow for unit-scale activations.
WEIGHT_EXP_LIMIT = 7

__all__ = ["CompileError", "compile_model", "default_input", "LOGITS_FMT"]

LOGITS_FMT = "fp32"


class CompileError(ProgramError):
    """A model the compiler cannot lower (names the layer and the reason)."""


def default_input(model_config: dict) -> tuple[str | None, list]:
    """``(dataset, per-sample input shape)`` for the models of :mod:`sw.models`."""
    kind = (model_config or {}).get("model")
    if kind == "digits_cnn":
        return "digits", [1, 8, 8]
    if kind == "speech_resnet":
        from .data import SpeechSpec

        spec = SpeechSpec()
        frames = int(spec.sample_rate * spec.seconds) // spec.hop + 1
        return "speech", [int(model_config.get("n_mels", spec.n_mels)), frames]
    return None, []


def _tuple(v, dims):
    return list(v) if isinstance(v, (tuple, list)) else [int(v)] * dims


def _is_relu(node, modules) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], nn.ReLU)
    if node.op == "call_function":
        return node.target in (F.relu, torch.relu)
    return node.op == "call_method" and node.target == "relu"


def _is_bn(node, modules) -> bool:
    return node.op == "call_module" and isinstance(modules[node.target], _BatchNorm)


def _sole_user(node, pred):
    users = list(node.users)
    if len(users) == 1 and pred(users[0]):
        return users[0]
    return None


def _bn_affine(bn: _BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    """``(s, t)`` in float64 with ``bn(y) = s*y + t`` (eval mode, running statistics)."""
    if bn.running_mean is None or bn.running_var is None:
        raise CompileError(f"BatchNorm {bn} has no running statistics; cannot fold it")
    mean = bn.running_mean.detach().double().numpy()
    var = bn.running_var.detach().double().numpy()
    gamma = (bn.weight.detach().double().numpy() if bn.weight is not None
             else np.ones_like(mean))
    beta = bn.bias.detach().double().numpy() if bn.bias is not None else np.zeros_like(mean)
    s = gamma / np.sqrt(var + float(bn.eps))
    return s, beta - mean * s


class _Lowering:
    def __init__(self, exported: ExportedModel, config: ArrayConfig, gm, modules):
        self.exp, self.cfg, self.gm, self.modules = exported, config, gm, modules
        self.steps, self.values, self.blobs = [], {}, {}
        self.value_of = {}
        self.consumed = set()
        self.act = config.in_fmt.name

    # -- helpers --------------------------------------------------------------------------------
    def shape(self, node) -> list:
        meta = node.meta.get("tensor_meta")
        if meta is None:
            raise CompileError(f"no shape for node {node.name}")
        return [int(d) for d in meta.shape[1:]]

    def new_value(self, shape, fmt) -> str:
        name = f"v{len(self.values)}"
        self.values[name] = {"shape": list(shape), "fmt": fmt}
        return name

    def blob(self, name, arr) -> str:
        key = name
        i = 1
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

    def out_fmt_host(self, last) -> str:
        return LOGITS_FMT if any(u.op == "output" for u in last.users) else self.act

    def array_input(self, node, name) -> str:
        v = self.value_of[node]
        if self.values[v]["fmt"] != self.act:
            v = self.emit("convert", "host", [v], self.values[v]["shape"], self.act, [],
                          name=f"{name}.convert")
        return v

    def arg(self, node, i=0):
        a = node.args[i]
        if not isinstance(a, torch.fx.Node) or a not in self.value_of:
            raise CompileError(f"{node.name}: argument {i} ({a!r}) is not a lowered tensor")
        return a

    def fuse(self, node):
        """Following BatchNorm and ReLU (each the sole user): ``(bn module, last node, relu,
        torch names)``."""
        names, bn, last, relu = [], None, node, False
        user = _sole_user(last, lambda u: _is_bn(u, self.modules))
        if user is not None:
            bn, last = self.modules[user.target], user
            names.append(str(user.target))
            self.consumed.add(user)
        user = _sole_user(last, lambda u: _is_relu(u, self.modules))
        if user is not None:
            last, relu = user, True
            names.append(str(user.target) if user.op == "call_module" else "relu")
            self.consumed.add(user)
        return bn, last, relu, names

    # -- layers ---------------------------------------------------------------------------------
    def conv_geometry(self, mod, kind, name):
        if kind == "linear":
            return {}
        dims = 2 if kind == "conv2d" else 1
        if mod.groups != 1:
            raise CompileError(f"layer {name}: groups={mod.groups}; the compiler lowers only "
                               f"groups=1 convolutions")
        if mod.padding_mode != "zeros" or isinstance(mod.padding, str):
            raise CompileError(f"layer {name}: padding {mod.padding!r} mode "
                               f"{mod.padding_mode!r}; expected explicit zero padding")
        return {"kernel": _tuple(mod.kernel_size, dims), "stride": _tuple(mod.stride, dims),
                "padding": _tuple(mod.padding, dims), "dilation": _tuple(mod.dilation, dims)}

    def shift_layer(self, node, mod):
        name = str(node.target)
        rec = self.exp.layers.get(name)
        if rec is None:
            raise CompileError(f"shift layer {name} is not in the export file")
        kind = rec.kind
        geo = self.conv_geometry(mod, kind, name)
        codes = rec.codes()
        m, k = codes.shape
        cfg = self.cfg
        sign, p = split_code(codes, rec.wbits)
        if int(p.max()) > max_exponent_code(cfg.wbits):
            raise CompileError(f"layer {name}: exponent code p={int(p.max())} does not fit the "
                               f"array's {cfg.wbits}-bit codes (config {cfg.name})")
        if k > cfg.depth:
            raise CompileError(f"layer {name}: K={k} exceeds the array depth {cfg.depth} "
                               f"(config {cfg.name}); a longer dot product cannot be split "
                               f"without a second rounding")
        bn, last, relu, names = self.fuse(node)
        # With a BatchNorm to fold, a power of two of its scale can move into e0 for free
        # (exact: weights and bias times 2**-k, host scale times 2**k). Done when the layer's
        # largest weight exceeds 2**WEIGHT_EXP_LIMIT, which would push the array's outputs
        # towards the top of narrow formats (fp16 overflows with 5-bit codes at e0 = 0).
        e0 = int(rec.e0)
        e0_shift = 0
        if bn is not None:
            e0_shift = max(0, min(e0 + int(p.max()) - WEIGHT_EXP_LIMIT, e0 - cfg.e0_min))
            e0 -= e0_shift
        if not cfg.e0_min <= e0 <= cfg.e0_max:
            raise CompileError(f"layer {name}: e0={e0} is outside the array's range "
                               f"[{cfg.e0_min}, {cfg.e0_max}] (config {cfg.name})")
        bias = None if mod.bias is None else mod.bias.detach().double().numpy()
        scale = shift = None
        if bn is not None:
            s, t = _bn_affine(bn)
            c = t if bias is None else s * bias + t
            neg = s < 0
            sign = sign ^ neg[:, None].astype(np.uint8)
            mag = np.abs(s)
            zero = mag == 0
            bias = np.where(zero, 0.0, c / np.where(zero, 1.0, mag)) * 2.0 ** -e0_shift
            scale = mag.astype(np.float32).astype(np.float64) * 2.0 ** e0_shift   # RNE to fp32
            if zero.any():
                shift = np.where(zero, np.maximum(c, 0.0) if relu else c, 0.0)
        codes = make_code(sign, p, cfg.wbits)
        bias_bits = None
        if bias is not None:
            bias_bits = round_to_format(torch.from_numpy(bias), cfg.out_fmt).numpy()
        out_shape = self.shape(last)
        n = int(np.prod(out_shape[1:])) if kind != "linear" else 1
        x = self.array_input(self.arg(node), name)
        fields = {"name": name, "n": n, "k": int(k), "m": int(m), "wbits": cfg.wbits,
                  "e0": e0,
                  "weights": self.blob(f"{name}.codes", pack_codes(codes, cfg.wbits)),
                  "bias": None if bias_bits is None else self.blob(
                      f"{name}.bias", bias_bits.astype("<u4")),
                  "relu": relu, **geo}
        if bn is not None:
            fields["bn_fold"] = {"negated_channels": int((s < 0).sum()),
                                 "zero_scale_channels": int((s == 0).sum()),
                                 "e0_shift": e0_shift}
        v = self.emit(kind, "array", [x], out_shape, cfg.out_fmt.name, [name] + names, **fields)
        if bn is None:
            self.steps[-1]["torch_node"] = last.name
        else:
            v = self.emit("affine", "host", [v], out_shape, self.out_fmt_host(last),
                          [names[0]], name=f"{names[0]}.scale", torch_node=last.name,
                          scale=self.blob(f"{names[0]}.scale", scale.astype("<f8")),
                          shift=None if shift is None else self.blob(
                              f"{names[0]}.shift", shift.astype("<f8")),
                          relu=False)
        self.value_of[last] = v

    def fp_layer(self, node, mod):
        name = str(node.target)
        kind = ("linear" if isinstance(mod, nn.Linear) else
                "conv2d" if isinstance(mod, nn.Conv2d) else "conv1d")
        geo = self.conv_geometry(mod, kind, name)
        bn, last, relu, names = self.fuse(node)
        w = mod.weight.detach().float().numpy()
        scale = shift = None
        if bn is not None:
            s, t = _bn_affine(bn)
            scale, shift = self.blob(f"{names[0]}.scale", s.astype("<f8")), self.blob(
                f"{names[0]}.shift", t.astype("<f8"))
        v = self.emit(
            f"fp_{kind}", "host", [self.value_of[self.arg(node)]], self.shape(last),
            self.out_fmt_host(last), [name] + names, name=name,
            weights=self.blob(f"{name}.weight", w.reshape(w.shape[0], -1).astype("<f4")),
            bias=None if mod.bias is None else self.blob(
                f"{name}.bias", mod.bias.detach().float().numpy().astype("<f4")),
            scale=scale, shift=shift, relu=relu, torch_node=last.name, **geo)
        self.value_of[last] = v

    def batchnorm(self, node, mod):
        name = str(node.target)
        s, t = _bn_affine(mod)
        relu_node = _sole_user(node, lambda u: _is_relu(u, self.modules))
        last = relu_node or node
        if relu_node is not None:
            self.consumed.add(relu_node)
        self.value_of[last] = self.emit(
            "affine", "host", [self.value_of[self.arg(node)]], self.shape(last),
            self.out_fmt_host(last), [name] + (["relu"] if relu_node is not None else []),
            name=name, scale=self.blob(f"{name}.scale", s.astype("<f8")),
            shift=self.blob(f"{name}.shift", t.astype("<f8")), relu=relu_node is not None,
            torch_node=last.name)

    def simple(self, node, op, name, **fields):
        self.value_of[node] = self.emit(op, "host", [self.value_of[self.arg(node)]],
                                        self.shape(node), self.out_fmt_host(node), [name],
                                        name=name, torch_node=node.name, **fields)

    def pool(self, node, mod, name):
        dims = 2 if isinstance(mod, nn.MaxPool2d) else 1
        if mod.ceil_mode or mod.return_indices or _tuple(mod.dilation, dims) != [1] * dims:
            raise CompileError(f"{name}: max pooling with ceil_mode, return_indices or "
                               f"dilation is not supported")
        stride = mod.stride if mod.stride is not None else mod.kernel_size
        self.simple(node, f"maxpool{dims}d", name, kernel=_tuple(mod.kernel_size, dims),
                    stride=_tuple(stride, dims), padding=_tuple(mod.padding, dims))

    def module(self, node):
        mod = self.modules[node.target]
        name = str(node.target)
        if is_shift_layer(mod):
            return self.shift_layer(node, mod)
        if type(mod) in (nn.Linear, nn.Conv1d, nn.Conv2d):
            return self.fp_layer(node, mod)
        if isinstance(mod, _BatchNorm):
            return self.batchnorm(node, mod)
        if isinstance(mod, nn.ReLU):
            return self.simple(node, "relu", name)
        if isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d)):
            return self.pool(node, mod, name)
        if isinstance(mod, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
            size = mod.output_size
            if _tuple(size, 1 if isinstance(mod, nn.AdaptiveAvgPool1d) else 2) not in ([1],
                                                                                       [1, 1]):
                raise CompileError(f"{name}: adaptive average pooling to {size!r}; only global "
                                   f"pooling (output size 1) is supported")
            return self.simple(node, "avgpool", name)
        if isinstance(mod, nn.Flatten):
            if mod.start_dim != 1 or mod.end_dim != -1:
                raise CompileError(f"{name}: Flatten({mod.start_dim}, {mod.end_dim}); only "
                                   f"Flatten(1, -1) is supported")
            return self.simple(node, "flatten", name)
        if isinstance(mod, (nn.Identity, nn.Dropout)):
            self.value_of[node] = self.value_of[self.arg(node)]
            return None
        raise CompileError(f"cannot lower module {name} of type {type(mod).__name__}")

    def function(self, node):
        target = node.target
        if node.op == "call_function" and target in (operator.add, torch.add):
            a, b = self.arg(node, 0), self.arg(node, 1)
            relu_node = _sole_user(node, lambda u: _is_relu(u, self.modules))
            last = relu_node or node
            if relu_node is not None:
                self.consumed.add(relu_node)
            if self.shape(a) != self.shape(b):
                raise CompileError(f"{node.name}: add of shapes {self.shape(a)} and "
                                   f"{self.shape(b)} (broadcasting is not supported)")
            self.value_of[last] = self.emit(
                "add", "host", [self.value_of[a], self.value_of[b]], self.shape(last),
                self.out_fmt_host(last), ["+"] + (["relu"] if relu_node is not None else []),
                name=node.name, relu=relu_node is not None, torch_node=last.name)
            return
        if _is_relu(node, self.modules):
            return self.simple(node, "relu", node.name)
        if (node.op == "call_function" and target is torch.flatten) or (
                node.op == "call_method" and target == "flatten"):
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            if start != 1 or end != -1:
                raise CompileError(f"{node.name}: flatten({start}, {end}); only flatten(1, -1) "
                                   f"is supported")
            return self.simple(node, "flatten", node.name)
        raise CompileError(f"cannot lower {node.op} {getattr(target, '__name__', target)!r} "
                           f"({node.name})")

    def run(self, input_shape):
        output = None
        for node in self.gm.graph.nodes:
            if node in self.consumed:
                continue
            if node.op == "placeholder":
                v = self.emit("input", "host", [], input_shape, self.act, ["input"],
                              name="input", torch_node=node.name)
                self.value_of[node] = v
            elif node.op == "call_module":
                self.module(node)
            elif node.op in ("call_function", "call_method"):
                self.function(node)
            elif node.op == "output":
                out = node.args[0]
                if not isinstance(out, torch.fx.Node):
                    raise CompileError("the model must return one tensor (the logits)")
                output = self.value_of[out]
            else:
                raise CompileError(f"cannot lower graph node {node.op} {node.name}")
        return output


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m, name):
        return is_shift_layer(m) or super().is_leaf_module(m, name)


def torch_node_outputs(model: nn.Module, x: torch.Tensor) -> dict:
    """Output of every ``torch.fx`` node of ``model`` on ``x`` (in the model's own dtype), by
    node name as in a step's ``torch_node``."""
    gm = torch.fx.GraphModule(model, _Tracer().trace(model))
    outputs = {}

    class _Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if isinstance(out, torch.Tensor):
                outputs[n.name] = out.detach()
            return out

    with torch.no_grad():
        _Recorder(gm).run(x)
    return outputs


def compile_model(source, config: ArrayConfig, *, input_shape=None) -> Program:
    """Lower an export (a path, or an :class:`~sw.export.ExportedModel`) for ``config``.

    Raises :class:`CompileError` (a ``ValueError``) for a model that cannot be lowered or does
    not fit ``config``, and :class:`~sw.export.ExportError` for a bad export file."""
    from torch.fx.passes.shape_prop import ShapeProp

    from .models import build_model

    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")
    raw = None
    if isinstance(source, ExportedModel):
        exported = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ExportError(f"{path}: export file does not exist")
        raw = path.read_bytes()
        exported = load_export(path)
    if not exported.model:
        raise CompileError("the export has no model config; cannot rebuild the network to "
                           "lower it")
    try:
        model = build_model(exported.model)
    except (TypeError, ValueError) as exc:
        raise CompileError(f"cannot rebuild the model from the export's config: {exc}") from None
    exported.load_into(model)
    model.eval()
    dataset, default_shape = default_input(exported.model)
    shape = list(input_shape) if input_shape is not None else default_shape
    if not shape:
        raise CompileError(f"model {exported.model.get('model')!r}: give the input shape")
    gm = torch.fx.GraphModule(model, _Tracer().trace(model))
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros((1, *shape)))
    lowering = _Lowering(exported, config, gm, dict(gm.named_modules()))
    output = lowering.run(shape)
    source_info = {}
    if raw is not None:
        source_info = {"file": "source.dshw", "sha256": hashlib.sha256(raw).hexdigest(),
                       "export_version": EXPORT_VERSION}
    program = Program(config=config, steps=lowering.steps, values=lowering.values,
                      blobs=lowering.blobs,
                      input={"value": lowering.steps[0]["output"], "shape": shape,
                             "dtype": "float32"},
                      output=output, model=exported.model, dataset=dataset,
                      source=source_info, source_bytes=raw,
                      meta={"export_meta": exported.meta})
    from .program import validate

    validate(program)
    return program
