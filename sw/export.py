"""Export of a trained shift network for the hardware: packed weight codes, ``e0`` per layer and
the full-precision parameters, in one versioned file.

File format, version 2 (all integers little-endian; version 1 files are still read)::

    offset 0   8 bytes   magic b"DSHWEXP\\0"
    offset 8   uint32    format version (2)
    offset 12  uint32    header length H
    offset 16  H bytes   header, UTF-8 JSON (see below)
    then       P bytes   payload: the arrays, each at the offset its header record names
    last       uint32    CRC-32 (zlib) of the header and payload bytes

Header keys: ``format`` ("densehw-export"), ``version``, ``pack_version`` (the
:mod:`contract.weights` packing version of the codes), ``payload_bytes``, ``model`` (the model's
``config`` dict, or null), ``meta`` (free JSON), ``layers``, ``tensors``, and from version 2
``graph`` and ``input_shape``.

* ``graph`` (version 2): ``{"format": "torch.export", "offset", "nbytes"}``, the model's graph
  recorded with ``torch.export`` (dynamic batch axis) and saved with ``torch.export.save``, with
  every shift layer replaced by the plain ``nn`` layer of the same geometry whose weight is the
  decoded codes (exact ``±2**e`` in float32). ``torch.export.load`` gives it back without the
  model's Python class; :mod:`sw.torch_import` lowers it. ``input_shape``: the per-sample shape
  of the example input it was recorded with.

* ``layers``: one record per shift layer, in module order: ``name``, ``kind`` (``conv1d``,
  ``conv2d``, ``linear``), ``weight_shape``, ``wbits``, ``e0`` (int; weight value is
  ``(-1)**s * 2**(e0 + p)``), ``rows`` M, ``k`` K, ``words_offset``, ``words_per_row``, ``bias``
  (name of its bias tensor or null), and for convolutions ``stride``, ``padding``, ``dilation``,
  ``groups``. The weight ``(M, ...)`` is flattened to ``(M, K)`` in PyTorch's row-major order
  (``weight.reshape(M, -1)``: input channel, then kernel positions) and packed with
  :func:`contract.weights.pack_codes` into ``M x words_per_row`` uint32 words.
* ``tensors``: every other entry of the model's ``state_dict`` (first/last full-precision layers,
  BatchNorm parameters and running statistics, biases): ``name``, ``dtype`` (NumPy ``str``, e.g.
  ``<f4``), ``shape``, ``offset``, ``nbytes``.

Loading checks the magic, the version, the length and the checksum, and raises
:class:`ExportError` (a ``ValueError``) with a message naming the file and the problem.
"""

from __future__ import annotations

import copy
import io
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from contract.files import write_atomic
from contract.weights import (
    PACK_VERSION,
    decode_weights,
    encode_weights,
    pack_codes,
    unpack_codes,
    words_per_row,
)

from .layers import shift_layers

__all__ = ["FORMAT_VERSION", "READ_VERSIONS", "MAGIC", "ExportError", "ShiftLayerExport",
           "ExportedModel", "export_model", "frozen_model", "record_graph", "save", "load",
           "loads"]

MAGIC = b"DSHWEXP\0"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
_PREFIX = struct.Struct("<8sII")


class ExportError(ValueError):
    """A file that is not a valid densehw export, or a model that cannot be exported."""


@dataclass
class ShiftLayerExport:
    """One shift layer: codes packed as ``words`` (``(M, words_per_row)`` uint32) and ``e0``."""

    name: str
    kind: str
    weight_shape: tuple
    wbits: int
    e0: int
    words: np.ndarray
    bias: str | None = None
    attrs: dict = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.weight_shape[0]

    @property
    def k(self) -> int:
        return int(np.prod(self.weight_shape[1:])) if len(self.weight_shape) > 1 else 1

    def codes(self) -> np.ndarray:
        """``(M, K)`` uint8 weight codes."""
        return unpack_codes(self.words, self.k, self.wbits)

    def weight(self) -> np.ndarray:
        """Decoded weight values (float64) in the layer's weight shape."""
        return decode_weights(self.codes(), self.wbits, self.e0).reshape(self.weight_shape)


@dataclass
class ExportedModel:
    """Contents of an export file."""

    layers: dict
    tensors: dict
    model: dict | None = None
    meta: dict = field(default_factory=dict)
    graph: bytes | None = None
    input_shape: list | None = None
    version: int = FORMAT_VERSION

    def exported_program(self):
        """The recorded ``torch.export.ExportedProgram`` (version 2), or None."""
        if self.graph is None:
            return None
        try:
            return torch.export.load(io.BytesIO(self.graph))
        except Exception as exc:   # noqa: BLE001 (a damaged archive fails in many ways)
            raise ExportError(f"the recorded graph cannot be loaded ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None

    def float_state_dict(self) -> dict:
        """``state_dict``-style mapping with every shift layer's weight decoded to float32 under
        ``<layer>.weight`` (plain ``nn`` naming) next to the full-precision tensors."""
        out = {k: torch.from_numpy(np.array(v)) for k, v in self.tensors.items()}
        for name, rec in self.layers.items():
            out[f"{name}.weight"] = torch.from_numpy(rec.weight().astype(np.float32))
        return out

    @torch.no_grad()
    def load_into(self, model: nn.Module) -> nn.Module:
        """Load into a model of the same architecture: shift layers of method ``fp`` get the
        decoded weights, DenseShift layers get latents that reproduce the codes exactly (their
        ``e0`` must match); the other tensors are loaded strictly. Returns ``model``."""
        layers = dict(shift_layers(model))
        if set(layers) != set(self.layers):
            raise ExportError(f"model shift layers {sorted(layers)} differ from the file's "
                              f"{sorted(self.layers)}")
        for name, rec in self.layers.items():
            layer = layers[name]
            w = torch.from_numpy(rec.weight().astype(np.float32))
            if tuple(layer.quantizer.shape) != tuple(rec.weight_shape):
                raise ExportError(f"layer {name}: weight shape {layer.quantizer.shape} differs "
                                  f"from the file's {tuple(rec.weight_shape)}")
            if layer.method == "fp":
                layer.quantizer.weight.copy_(w)
            elif layer.method == "denseshift":
                if layer.e0 != rec.e0 or layer.wbits != rec.wbits:
                    raise ExportError(f"layer {name}: e0={layer.e0}, wbits={layer.wbits} differ "
                                      f"from the file's e0={rec.e0}, wbits={rec.wbits}")
                layer.quantizer.set_from_weight(w)
            else:
                raise ExportError(f"layer {name}: cannot load codes into method "
                                  f"{layer.method!r} (expected 'fp' or 'denseshift')")
        state = model.state_dict()
        keep = {k for k in state if not any(k.startswith(f"{n}.quantizer.") for n in layers)}
        if keep != set(self.tensors):
            raise ExportError(f"model tensors differ from the file's: missing "
                              f"{sorted(set(self.tensors) - keep)[:5]}, unexpected "
                              f"{sorted(keep - set(self.tensors))[:5]}")
        for k in keep:
            state[k].copy_(torch.from_numpy(np.array(self.tensors[k])))
        return model


def _kind(layer) -> str:
    if isinstance(layer, nn.Conv2d):
        return "conv2d"
    if isinstance(layer, nn.Conv1d):
        return "conv1d"
    return "linear"


def _plain_layer(layer, weight: np.ndarray) -> nn.Module:
    """The ``nn`` layer of ``layer``'s geometry with ``weight`` (float32) and its bias."""
    if isinstance(layer, nn.Linear):
        plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    else:
        cls = nn.Conv2d if isinstance(layer, nn.Conv2d) else nn.Conv1d
        plain = cls(layer.in_channels, layer.out_channels, layer.kernel_size,
                    stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                    groups=layer.groups, bias=layer.bias is not None,
                    padding_mode=layer.padding_mode)
    with torch.no_grad():
        plain.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        if layer.bias is not None:
            plain.bias.copy_(layer.bias.detach())
    return plain


def frozen_model(model: nn.Module, layers: dict) -> nn.Module:
    """A copy of ``model`` in eval mode whose shift layers are plain ``nn`` layers holding the
    decoded weights of ``layers`` (``{name: ShiftLayerExport}``)."""
    frozen = copy.deepcopy(model).cpu().eval()
    for name, rec in layers.items():
        parent_name, _, child = name.rpartition(".")
        parent = frozen.get_submodule(parent_name) if parent_name else frozen
        setattr(parent, child, _plain_layer(getattr(parent, child), rec.weight()))
    return frozen


def record_graph(model: nn.Module, example_input: torch.Tensor) -> bytes:
    """``torch.export`` of ``model`` (eval mode) on ``example_input`` with a dynamic batch
    axis where the model allows it, saved to bytes."""
    x = example_input.detach().float().cpu()
    if x.ndim < 1 or x.shape[0] < 1:
        raise ExportError(f"example_input must have a batch axis, not shape {tuple(x.shape)}")
    if x.shape[0] == 1:                 # a batch of one would specialise the batch axis
        x = torch.cat([x, x])
    try:
        ep = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    except Exception as exc:            # torch raises many kinds; report the first line
        raise ExportError(f"torch.export could not record the model's graph: "
                          f"{str(exc).strip().splitlines()[0]}") from None
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    return buf.getvalue()


@torch.no_grad()
def export_model(model: nn.Module, path=None, *, example_input: torch.Tensor | None = None,
                 meta: dict | None = None) -> ExportedModel:
    """Encode every shift layer of ``model`` into codes (DenseShift: ``p = S``, the layer's
    ``e0``; other zero-free power-of-two weights: the smallest exponent as ``e0``), collect the
    full-precision tensors and record the graph with ``torch.export`` on ``example_input`` (a
    batch of float32 inputs; by default zeros of the input shape of the built-in models); write
    them to ``path`` if given. Raises :class:`ExportError` for a layer whose weights are not all
    ``±2**e`` (zeros included: the codes have no zero) or a model ``torch.export`` cannot
    record."""
    layers = {}
    for name, layer in shift_layers(model):
        w = layer.quantized_weight().detach().cpu().double().numpy()
        m = w.shape[0]
        try:
            codes, e0 = encode_weights(w.reshape(m, -1), layer.wbits,
                                       e0=layer.e0 if layer.method == "denseshift" else None)
        except ValueError as exc:
            raise ExportError(f"layer {name} (method {layer.method}) cannot be exported: "
                              f"{exc}") from None
        attrs = {}
        if not isinstance(layer, nn.Linear):
            attrs = {"stride": list(layer.stride), "padding": list(layer.padding),
                     "dilation": list(layer.dilation), "groups": layer.groups}
        layers[name] = ShiftLayerExport(
            name=name, kind=_kind(layer), weight_shape=tuple(w.shape), wbits=layer.wbits,
            e0=int(e0), words=pack_codes(codes, layer.wbits),
            bias=f"{name}.bias" if layer.bias is not None else None, attrs=attrs)
    tensors = {}
    for key, value in model.state_dict().items():
        if any(key.startswith(f"{n}.quantizer.") for n in layers):
            continue
        tensors[key] = value.detach().cpu().numpy().copy()
    config = getattr(model, "config", None)
    if example_input is None:
        from .models import default_input_shape

        shape = default_input_shape(config)
        if shape is None:
            raise ExportError("give example_input= (a batch of inputs): the model's input "
                              "shape is needed to record its graph")
        example_input = torch.zeros((2, *shape))
    if not isinstance(example_input, torch.Tensor):
        raise ExportError(f"example_input must be a torch.Tensor, not {type(example_input)}")
    graph = record_graph(frozen_model(model, layers), example_input)
    exported = ExportedModel(layers=layers, tensors=tensors, model=config,
                             meta=dict(meta or {}), graph=graph,
                             input_shape=[int(d) for d in example_input.shape[1:]])
    if path is not None:
        save(exported, path)
    return exported


def save(exported: ExportedModel, path) -> None:
    """Write ``exported`` to ``path`` atomically (temporary file + rename)."""
    chunks, offset = [], 0

    def add(arr):
        nonlocal offset
        data = np.ascontiguousarray(arr).tobytes()
        start = offset
        chunks.append(data)
        offset += len(data)
        pad = (-offset) % 8
        if pad:
            chunks.append(b"\0" * pad)
            offset += pad
        return start, len(data)

    layer_recs = []
    for rec in exported.layers.values():
        start, _ = add(np.asarray(rec.words, dtype="<u4"))
        layer_recs.append({
            "name": rec.name, "kind": rec.kind, "weight_shape": list(rec.weight_shape),
            "wbits": rec.wbits, "e0": rec.e0, "rows": rec.rows, "k": rec.k,
            "words_offset": start, "words_per_row": words_per_row(rec.k, rec.wbits),
            "bias": rec.bias, **rec.attrs})
    tensor_recs = []
    for name, arr in exported.tensors.items():
        arr = np.asarray(arr)
        arr = arr.astype(arr.dtype.newbyteorder("<"))
        start, nbytes = add(arr)
        tensor_recs.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                            "offset": start, "nbytes": nbytes})
    fields = {}
    if exported.graph is not None:
        start, nbytes = add(np.frombuffer(exported.graph, dtype=np.uint8))
        fields = {"graph": {"format": "torch.export", "offset": start, "nbytes": nbytes},
                  "input_shape": list(exported.input_shape or [])}
    version = FORMAT_VERSION if exported.graph is not None else 1
    payload = b"".join(chunks)
    header = json.dumps({
        "format": "densehw-export", "version": version, "pack_version": PACK_VERSION,
        "payload_bytes": len(payload), "model": exported.model, "meta": exported.meta,
        "layers": layer_recs, "tensors": tensor_recs, **fields}, sort_keys=True).encode()
    body = header + payload
    blob = (_PREFIX.pack(MAGIC, version, len(header)) + body +
            struct.pack("<I", zlib.crc32(body)))
    write_atomic(path, blob)


#: Bounds of what a header may declare: sizes and offsets, weight offsets.
MAX_SIZE = 1 << 40
MAX_E0 = 1 << 10


def load(path) -> ExportedModel:
    """Read an export file; raises :class:`ExportError` naming the file and the problem."""
    path = Path(path)
    return loads(path.read_bytes(), path)


def loads(blob: bytes, path="export") -> ExportedModel:
    """:func:`load` of the file's bytes (``path`` names it in messages)."""
    def bad(msg):
        return ExportError(f"{path}: {msg}")

    if len(blob) < _PREFIX.size or blob[:8] != MAGIC:
        raise bad("not a densehw export file (bad magic)")
    _, version, hlen = _PREFIX.unpack_from(blob)
    if version not in READ_VERSIONS:
        raise bad(f"export format version {version} is not supported "
                  f"(this densehw reads versions {', '.join(map(str, READ_VERSIONS))})")
    if len(blob) < _PREFIX.size + hlen + 4:
        raise bad(f"truncated export file ({len(blob)} bytes, header alone needs "
                  f"{_PREFIX.size + hlen + 4})")
    body = blob[_PREFIX.size:-4]
    (crc,) = struct.unpack("<I", blob[-4:])
    if zlib.crc32(body) != crc:
        raise bad("corrupt export file (CRC-32 mismatch; truncated or modified)")
    try:
        header = json.loads(body[:hlen].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"corrupt header ({exc})") from None
    if header.get("format") != "densehw-export" or header.get("version") != version:
        raise bad(f"header does not describe a version-{version} densehw export")
    if header.get("pack_version") != PACK_VERSION:
        raise bad(f"weight packing version {header.get('pack_version')} is not supported "
                  f"(expected {PACK_VERSION})")
    payload = body[hlen:]
    if len(payload) != header.get("payload_bytes"):
        raise bad(f"payload is {len(payload)} bytes, header says {header.get('payload_bytes')}")

    def integer(value, what, lo=0, hi=MAX_SIZE):
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise bad(f"corrupt header ({what} is {value!r}; expected an integer in "
                      f"[{lo}, {hi}])")
        return value

    def dims(value, what):
        if not isinstance(value, list):
            raise bad(f"corrupt header ({what} is {value!r}; expected a list of sizes)")
        return tuple(integer(v, what) for v in value)

    def array(offset, nbytes, dtype, shape):
        integer(offset, "an array offset")
        integer(nbytes, "an array size")
        try:
            ok = (isinstance(dtype, str) and np.dtype(dtype).kind in "biuf"
                  and np.dtype(dtype).str[0] in "<|" and np.dtype(dtype).fields is None)
        except TypeError:
            ok = False
        if not ok:
            raise bad(f"corrupt header (dtype {dtype!r}; expected a little-endian numeric "
                      f"NumPy dtype such as '<f4')")
        if offset < 0 or offset + nbytes > len(payload):
            raise bad(f"array at offset {offset} ({nbytes} bytes) is outside the payload")
        arr = np.frombuffer(payload, dtype=np.dtype(dtype), count=nbytes // np.dtype(dtype)
                            .itemsize, offset=offset)
        if arr.size != int(np.prod(shape)):
            raise bad(f"array at offset {offset} holds {arr.size} values, shape {shape}")
        return arr.reshape(shape).copy()

    try:
        layers = {}
        if not isinstance(header.get("layers"), list) or not isinstance(
                header.get("tensors"), list):
            raise bad("corrupt header (layers and tensors must be lists)")
        for r in header["layers"]:
            name = r["name"]
            if not isinstance(name, str) or name in layers:
                raise bad(f"corrupt header (layer name {name!r})")
            if r["kind"] not in ("conv1d", "conv2d", "linear"):
                raise bad(f"corrupt header (layer {name}: kind {r['kind']!r})")
            shape = dims(r["weight_shape"], f"layer {name} weight_shape")
            m, wpr = integer(r["rows"], "rows"), integer(r["words_per_row"], "words_per_row")
            wbits, e0 = integer(r["wbits"], "wbits", 2, 5), integer(r["e0"], "e0", -MAX_E0, MAX_E0)
            if not shape or shape[0] != m:
                raise bad(f"corrupt header (layer {name}: weight_shape {list(shape)} and rows {m})")
            if r.get("bias") is not None and not isinstance(r["bias"], str):
                raise bad(f"corrupt header (layer {name}: bias {r['bias']!r})")
            words = array(r["words_offset"], m * wpr * 4, "<u4", (m, wpr)).astype(np.uint32)
            attrs = {k: r[k] for k in ("stride", "padding", "dilation", "groups") if k in r}
            layers[name] = ShiftLayerExport(
                name=name, kind=r["kind"], weight_shape=shape, wbits=wbits, e0=e0, words=words,
                bias=r.get("bias"), attrs=attrs)
            layers[name].codes()        # validates padding bits and sizes
        tensors = {}
        for t in header["tensors"]:
            if not isinstance(t["name"], str) or t["name"] in tensors:
                raise bad(f"corrupt header (tensor name {t['name']!r})")
            tensors[t["name"]] = array(t["offset"], t["nbytes"], t["dtype"],
                                       dims(t["shape"], f"tensor {t['name']} shape"))
        graph = input_shape = None
        if version >= 2:
            g = header["graph"]
            if g.get("format") != "torch.export":
                raise bad(f"graph format {g.get('format')!r} is not supported")
            graph = array(g["offset"], g["nbytes"], "<u1", (g["nbytes"],)).tobytes()
            input_shape = list(dims(header["input_shape"], "input_shape"))
    except (KeyError, TypeError, AttributeError) as exc:
        raise bad(f"corrupt header (missing or malformed field {exc})") from None
    except ValueError as exc:
        if isinstance(exc, ExportError):
            raise
        raise bad(f"corrupt layer data ({exc})") from None
    return ExportedModel(layers=layers, tensors=tensors, model=header.get("model"),
                         meta=header.get("meta") or {}, graph=graph, input_shape=input_shape,
                         version=version)
