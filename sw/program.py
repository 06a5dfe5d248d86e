"""The densehw program: a compiled model, as a directory, versioned and validated.

Layout of ``PROGRAM_DIR``::

    program.json    header (UTF-8 JSON, below)
    blobs.bin       every constant array, back to back (8-byte aligned), little-endian
    source.dshw     a copy of the export file the program was compiled from (for the PyTorch
                    reference accuracy; its SHA-256 is in the header)

Header (``format`` ``"densehw-program"``, ``version`` 1)::

    pack_version    contract.weights packing version of every weight blob (1)
    config          the ArrayConfig (``ArrayConfig.to_dict()``) the program was built for
    config_name     ArrayConfig.name (configuration plus hash)
    model           the export's model config dict (rebuilds the PyTorch reference)
    dataset         "digits" | "speech" | null (what the input shape is for)
    input           {"value": name, "shape": per-sample shape, "dtype": "float32"}
    output          name of the logits value; predictions are its argmax
    values          {name: {"shape": per-sample shape, "fmt": format name}}
    steps           list of steps (below), executed in order
    blobs           {name: {"dtype", "shape", "offset", "nbytes"}}
    blobs_sha256    SHA-256 of blobs.bin
    source          {"file", "sha256", "export_version"}
    program_sha256  SHA-256 of every other header field (canonical JSON, :func:`header_digest`):
                    with blobs_sha256 it covers everything that decides a result, so a program
                    changed after compilation is refused

A step is a dict with ``id`` (its index), ``op``, ``where`` (``"array"`` or ``"host"``),
``inputs`` (value names), ``output`` (a value name), ``torch`` (the PyTorch modules/functions it
implements) and op-specific fields; :data:`OPS` lists the ops and their required fields and
``docs/deployment.md`` defines their arithmetic. Array steps (``linear``, ``conv1d``,
``conv2d``) hold ``n`` (GEMM rows per sample), ``k``, ``m``, ``wbits``, ``e0`` (int, or a list
of ``m`` ints), ``weights`` (blob of ``(m, words_per_row(k, wbits))`` uint32, packing v1),
``bias`` (blob of ``m`` raw ``out_fmt`` patterns, uint32, or null) and ``relu``.

:func:`load` checks everything it can without running the program and raises
:class:`ProgramError` (a ``ValueError``) naming the directory and the problem; :func:`check_config`
refuses a program built for another array configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract import FORMATS, PACK_VERSION, check_wbits, get_format, words_per_row
from contract.array import ArrayConfig

__all__ = ["PROGRAM_FORMAT", "PROGRAM_VERSION", "HEADER", "BLOBS", "SOURCE", "OPS",
           "ARRAY_OPS", "BLOB_DTYPES", "ProgramError", "Program", "save", "load",
           "check_config", "header_digest", "MAX_DIM", "SOURCE_KINDS", "DATASETS"]

PROGRAM_FORMAT = "densehw-program"
PROGRAM_VERSION = 1
HEADER = "program.json"
BLOBS = "blobs.bin"
SOURCE = "source.dshw"
BLOB_DTYPES = ("<u4", "<i8", "<f4", "<f8")
#: Kinds of model file a program can be compiled from, and the name of its copy in the program.
SOURCE_KINDS = {"dshw": "source.dshw", "pt2": "source.pt2", "onnx": "source.onnx"}
#: The datasets a program's input can be made for (``densehw run --data``), or None.
DATASETS = ("digits", "speech")
#: The largest size of one dimension (of a value, a blob, a kernel, stride, padding or dilation)
#: and of a whole value or blob (elements) that a program may declare.
MAX_DIM = 1 << 24
MAX_ELEMENTS = 1 << 31

# op -> (where, required fields beyond id/op/where/inputs/output, number of inputs; -1: one or
# more). Optional fields: ``groups`` (convolutions, default 1), ``macs``, ``dilation`` and
# ``ceil_mode`` (max pooling), ``torch_node``.
_CONV = ("kernel", "stride", "padding", "dilation")
_ARRAY = ("n", "k", "m", "wbits", "e0", "weights", "bias", "relu")
_FP = ("weights", "bias", "scale", "shift", "relu")
_AVG = ("kernel", "stride", "padding", "ceil_mode", "count_include_pad")
OPS: dict[str, tuple[str, tuple[str, ...], int]] = {
    "linear": ("array", _ARRAY, 1),
    "conv1d": ("array", _ARRAY + _CONV, 1),
    "conv2d": ("array", _ARRAY + _CONV, 1),
    "input": ("host", (), 0),
    "convert": ("host", (), 1),
    "fp_linear": ("host", _FP, 1),
    "fp_conv1d": ("host", _FP + _CONV, 1),
    "fp_conv2d": ("host", _FP + _CONV, 1),
    "affine": ("host", ("scale", "shift", "relu"), 1),
    "relu": ("host", (), 1),
    "clamp": ("host", ("lo", "hi"), 1),
    "add": ("host", ("relu",), 2),
    "concat": ("host", ("axis",), -1),
    "maxpool1d": ("host", ("kernel", "stride", "padding"), 1),
    "maxpool2d": ("host", ("kernel", "stride", "padding"), 1),
    "avgpool1d": ("host", _AVG, 1),
    "avgpool2d": ("host", _AVG, 1),
    "avgpool": ("host", (), 1),
    "adaptive_avgpool": ("host", ("output_size",), 1),
    "flatten": ("host", (), 1),
    "reshape": ("host", (), 1),
    "permute": ("host", ("perm",), 1),
    "softmax": ("host", ("axis",), 1),
}
ARRAY_OPS = tuple(op for op, spec in OPS.items() if spec[0] == "array")


class ProgramError(ValueError):
    """A malformed program, a program for another configuration, or an unusable export."""


@dataclass
class Program:
    """A compiled model (see the module documentation for the meaning of each member)."""

    config: ArrayConfig
    steps: list
    values: dict
    blobs: dict
    input: dict
    output: str
    model: dict | None = None
    dataset: str | None = None
    source: dict = field(default_factory=dict)
    source_bytes: bytes | None = None
    meta: dict = field(default_factory=dict)

    def blob(self, name):
        """The array of blob ``name`` (``None`` for ``None``)."""
        return None if name is None else self.blobs[name]

    def fmt(self, value: str):
        return get_format(self.values[value]["fmt"])

    def array_steps(self) -> list:
        return [s for s in self.steps if s["where"] == "array"]

    def header(self) -> dict:
        return {"format": PROGRAM_FORMAT, "version": PROGRAM_VERSION,
                "pack_version": PACK_VERSION, "config": self.config.to_dict(),
                "config_name": self.config.name, "model": self.model, "dataset": self.dataset,
                "input": self.input, "output": self.output, "values": self.values,
                "steps": self.steps, "source": self.source, "meta": self.meta}


# -- save ---------------------------------------------------------------------------------------

def _blob_bytes(blobs: dict) -> tuple[bytes, dict]:
    chunks, records, offset = [], {}, 0
    for name, arr in blobs.items():
        arr = np.asarray(arr)
        dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder not in "<|" else arr.dtype
        dtype = np.dtype(dtype)
        if dtype.str not in BLOB_DTYPES:
            raise ProgramError(f"blob {name!r} has dtype {arr.dtype}; expected one of "
                               f"{', '.join(BLOB_DTYPES)}")
        data = np.ascontiguousarray(arr, dtype=dtype).tobytes()
        records[name] = {"dtype": dtype.str, "shape": list(arr.shape), "offset": offset,
                         "nbytes": len(data)}
        chunks.append(data)
        offset += len(data)
        pad = (-offset) % 8
        chunks.append(b"\0" * pad)
        offset += pad
    return b"".join(chunks), records


def save(program: Program, directory) -> Path:
    """Write ``program`` to ``directory`` atomically: built in a temporary directory next to it,
    then renamed into place. An existing program directory there is replaced; any other existing
    path is an error."""
    validate(program, "program")
    data, records = _blob_bytes(program.blobs)
    header = program.header()
    header["blobs"] = records
    return write_program_directory(directory, header, data, program.source_bytes)


def write_program_directory(directory, header: dict, data: bytes, source_bytes, *,
                            blobs_name: str = BLOBS, source_name: str = SOURCE) -> Path:
    """Write a program directory atomically: ``data`` as ``blobs_name``, ``source_bytes`` (if
    not None) as ``source_name``, ``header`` with both digests added as ``program.json``.
    Built in a temporary directory next to ``directory``, then renamed into place; an existing
    program directory there is replaced, any other existing path is an error."""
    directory = Path(directory)
    parent = directory.parent if str(directory.parent) else Path(".")
    if not parent.is_dir():
        raise ProgramError(f"output directory {str(parent)!r} does not exist")
    if directory.exists() and not (directory.is_dir() and (directory / HEADER).is_file()):
        raise ProgramError(f"{str(directory)!r} exists and is not a densehw program directory; "
                           f"refusing to replace it")
    header = dict(header)
    header["blobs_sha256"] = hashlib.sha256(data).hexdigest()
    header["program_sha256"] = header_digest(header)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        (tmp / blobs_name).write_bytes(data)
        if source_bytes is not None:
            (tmp / source_name).write_bytes(source_bytes)
        (tmp / HEADER).write_text(json.dumps(header, indent=1, sort_keys=True) + "\n")
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        if directory.exists():
            old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{directory.name}.", suffix=".old"))
            os.replace(directory, old / "p")
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def header_digest(header: dict) -> str:
    """SHA-256 of ``header`` without its ``program_sha256`` field, as canonical JSON (sorted
    keys, no spaces)."""
    body = {k: v for k, v in header.items() if k != "program_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


# -- load and validation ------------------------------------------------------------------------

def _canonical(value) -> str:
    """JSON text of ``value`` (``true`` and ``1`` differ)."""
    return json.dumps(value, sort_keys=True)


def _need(d: dict, key: str, types, where: str):
    if not isinstance(d, dict) or key not in d:
        raise ProgramError(f"{where}: missing field {key!r}")
    value = d[key]
    if types is not None and not isinstance(value, types):
        raise ProgramError(f"{where}: field {key!r} is {value!r}; expected "
                           f"{getattr(types, '__name__', types)}")
    return value


def _int_list(value, length, what):
    if (not isinstance(value, list) or len(value) != length
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ProgramError(f"{what} is {value!r}; expected a list of {length} integers")
    return value


def _dims(value, what):
    """A shape: a list of integers in ``[0, MAX_DIM]``."""
    if not isinstance(value, list):
        raise ProgramError(f"{what} is {value!r}; expected a list of integers")
    _int_list(value, len(value), what)
    if any(not 0 <= v <= MAX_DIM for v in value):
        raise ProgramError(f"{what} is {value!r}; expected sizes in [0, {MAX_DIM}]")
    return value


def _count(shape, what):
    count = 1
    for d in shape:
        count *= d
    if count > MAX_ELEMENTS:
        raise ProgramError(f"{what}: shape {shape} holds {count} elements, more than "
                           f"{MAX_ELEMENTS}")
    return count


def load(directory) -> Program:
    """Read and validate a program directory; raises :class:`ProgramError` naming the
    directory and the problem."""
    directory = Path(directory)
    where = str(directory)
    if not directory.is_dir():
        raise ProgramError(f"{where}: not a directory (expected a densehw program directory)")
    head = directory / HEADER
    if not head.is_file():
        raise ProgramError(f"{where}: no {HEADER}; not a densehw program directory")
    try:
        header = json.loads(head.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProgramError(f"{where}/{HEADER}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ProgramError(f"{where}/{HEADER}: not valid JSON (nested too deeply)") from None
    if not isinstance(header, dict) or header.get("format") != PROGRAM_FORMAT:
        raise ProgramError(f"{where}/{HEADER}: not a densehw program (format "
                           f"{header.get('format') if isinstance(header, dict) else None!r}, "
                           f"expected {PROGRAM_FORMAT!r})")
    version = header.get("version")
    if type(version) is not int or version != PROGRAM_VERSION:
        raise ProgramError(f"{where}: program format version {version!r} is not supported "
                           f"(this densehw reads version {PROGRAM_VERSION}); recompile it")
    if type(header.get("pack_version")) is not int or header["pack_version"] != PACK_VERSION:
        raise ProgramError(f"{where}: weight packing version {header.get('pack_version')!r} is "
                           f"not supported (expected {PACK_VERSION})")
    digest = header.get("program_sha256")
    if not isinstance(digest, str):
        raise ProgramError(f"{where}/{HEADER}: no program_sha256 (written by an older densehw); "
                           f"recompile the model")
    if header_digest(header) != digest:
        raise ProgramError(f"{where}/{HEADER}: SHA-256 mismatch: the header was changed after "
                           f"compilation; recompile the model")
    try:
        config = ArrayConfig.from_dict(_need(header, "config", dict, where))
    except (TypeError, ValueError) as exc:
        raise ProgramError(f"{where}: bad array configuration: {exc}") from None
    dataset = header.get("dataset")
    if dataset is not None and (not isinstance(dataset, str) or dataset not in DATASETS):
        raise ProgramError(f"{where}: dataset {dataset!r}; expected one of "
                           f"{', '.join(DATASETS)} or null")
    if header.get("config_name") != config.name:
        raise ProgramError(f"{where}: config_name {header.get('config_name')!r} does not match "
                           f"its configuration ({config.name}): written by another densehw "
                           f"version or edited; recompile the model")
    derived = config.to_dict()
    for key, value in header["config"].items():
        if _canonical(value) != _canonical(derived.get(key)):
            raise ProgramError(f"{where}: config field {key!r} is {value!r}; the configuration "
                               f"gives {derived.get(key)!r}: written by another densehw "
                               f"version or edited; recompile the model")
    blob_path = directory / BLOBS
    if not blob_path.is_file():
        raise ProgramError(f"{where}: {BLOBS} is missing")
    data = blob_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != header.get("blobs_sha256"):
        raise ProgramError(f"{where}/{BLOBS}: SHA-256 mismatch (truncated or modified)")
    blobs = {}
    for name, rec in _need(header, "blobs", dict, where).items():
        what = f"{where}: blob {name!r}"
        dtype = _need(rec, "dtype", str, what)
        if dtype not in BLOB_DTYPES:
            raise ProgramError(f"{what}: dtype {dtype!r}; expected one of "
                               f"{', '.join(BLOB_DTYPES)}")
        shape = _dims(_need(rec, "shape", list, what), f"{what} shape")
        offset = _need(rec, "offset", int, what)
        nbytes = _need(rec, "nbytes", int, what)
        count = _count(shape, what)
        if nbytes != count * np.dtype(dtype).itemsize or offset < 0 or offset + nbytes > len(
                data) or offset % np.dtype(dtype).itemsize:
            raise ProgramError(f"{what}: {nbytes} bytes at offset {offset} do not hold shape "
                               f"{shape} of {dtype} inside {BLOBS} ({len(data)} bytes)")
        blobs[name] = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(
            shape).copy()
    source_bytes = None
    source = header.get("source") or {}
    if not isinstance(source, dict):
        raise ProgramError(f"{where}: field 'source' is {source!r}; expected an object")
    if source.get("kind") is not None and (not isinstance(source["kind"], str)
                                           or source["kind"] not in SOURCE_KINDS):
        raise ProgramError(f"{where}: source kind {source['kind']!r}; expected one of "
                           f"{', '.join(SOURCE_KINDS)}")
    if source.get("file"):
        name = source["file"]
        if not isinstance(name, str) or Path(name).name != name or name in (".", ".."):
            raise ProgramError(f"{where}: source file {name!r} is not a file name")
        src = directory / name
        if src.is_file():
            source_bytes = src.read_bytes()
            if hashlib.sha256(source_bytes).hexdigest() != source.get("sha256"):
                raise ProgramError(f"{where}/{source['file']}: SHA-256 mismatch with the header")
    try:
        program = Program(config=config, steps=_need(header, "steps", list, where),
                          values=_need(header, "values", dict, where), blobs=blobs,
                          input=_need(header, "input", dict, where),
                          output=_need(header, "output", str, where), model=header.get("model"),
                          dataset=header.get("dataset"), source=source,
                          source_bytes=source_bytes, meta=header.get("meta") or {})
    except ProgramError:
        raise
    validate(program, where)
    return program


def validate(program: Program, where: str = "program") -> None:
    """Check the structure of ``program``: every step names a known op with its fields, reads
    values defined before it, references existing blobs of the right shape, and every array step
    fits the program's configuration."""
    cfg = program.config
    values = program.values
    for name, v in values.items():
        what = f"{where}: value {name!r}"
        _count(_dims(_need(v, "shape", list, what), f"{what} shape"), what)
        if _need(v, "fmt", str, what) not in FORMATS:
            raise ProgramError(f"{what}: unknown format {v['fmt']!r}; expected one of "
                               f"{', '.join(FORMATS)}")
    inp = program.input
    if _need(inp, "value", str, f"{where}: input") not in values:
        raise ProgramError(f"{where}: input value {inp['value']!r} is not declared")
    _dims(_need(inp, "shape", list, f"{where}: input"), f"{where}: input shape")
    if inp.get("dtype") != "float32":
        raise ProgramError(f"{where}: input dtype {inp.get('dtype')!r}; expected 'float32'")
    if program.output not in values:
        raise ProgramError(f"{where}: output value {program.output!r} is not declared")
    if not program.steps:
        raise ProgramError(f"{where}: the program has no steps")
    defined = set()
    for i, step in enumerate(program.steps):
        if not isinstance(step, dict):
            raise ProgramError(f"{where}: step {i} is not an object")
        what = f"{where}: step {i}"
        op = _need(step, "op", str, what)
        if op not in OPS:
            raise ProgramError(f"{what}: unknown op {op!r}; expected one of {', '.join(OPS)}")
        what = f"{where}: step {i} ({op} {step.get('name', '')})".replace(" )", ")")
        place, required, n_in = OPS[op]
        if type(step.get("id")) is not int or step["id"] != i:
            raise ProgramError(f"{what}: id {step.get('id')!r}, expected {i}")
        if step.get("where") != place:
            raise ProgramError(f"{what}: where={step.get('where')!r}, expected {place!r}")
        for key in required:
            _need(step, key, None, what)
        inputs = _need(step, "inputs", list, what)
        if not all(isinstance(name, str) for name in inputs):
            raise ProgramError(f"{what}: inputs {inputs!r}; expected value names")
        if len(inputs) != n_in and not (n_in == -1 and inputs):
            raise ProgramError(f"{what}: {len(inputs)} inputs, expected "
                               f"{n_in if n_in >= 0 else 'one or more'}")
        for name in inputs:
            if name not in defined:
                raise ProgramError(f"{what}: reads value {name!r} before any step writes it")
        out = _need(step, "output", str, what)
        if out not in values:
            raise ProgramError(f"{what}: output value {out!r} is not declared")
        if out in defined:
            raise ProgramError(f"{what}: value {out!r} is written twice")
        defined.add(out)
        for key in ("weights", "bias", "scale", "shift"):
            ref = step.get(key)
            if ref is not None and (not isinstance(ref, str) or ref not in program.blobs):
                raise ProgramError(f"{what}: {key} blob {ref!r} does not exist")
        for key in ("kernel", "stride", "padding", "dilation"):
            if key in required or (key in step and op.startswith("maxpool")):
                dims = 1 if op.endswith("1d") else 2
                _int_list(step[key], dims, f"{what} {key}")
                lo = 0 if key == "padding" else 1
                if any(not lo <= v <= MAX_DIM for v in step[key]):
                    raise ProgramError(f"{what}: {key} {step[key]!r} must be in [{lo}, "
                                       f"{MAX_DIM}]")
        for key in ("relu", "ceil_mode", "count_include_pad"):
            if key in step and not isinstance(step[key], bool):
                raise ProgramError(f"{what}: {key} is {step[key]!r}; expected true or false")
        macs = step.get("macs", 0)
        if not isinstance(macs, int) or isinstance(macs, bool) or macs < 0:
            raise ProgramError(f"{what}: macs is {macs!r}; expected a count")
        groups = step.get("groups", 1)
        if not isinstance(groups, int) or isinstance(groups, bool) or not 1 <= groups <= MAX_DIM:
            raise ProgramError(f"{what}: groups is {groups!r}; expected a positive integer")
        if place == "array":
            _check_array_step(program, step, what)
        elif op.startswith("fp_"):
            _check_fp_step(program, step, what)
        elif op == "affine":
            channels = values[out]["shape"][0] if values[out]["shape"] else 1
            for key in ("scale", "shift"):
                if step[key] is not None and program.blobs[step[key]].shape != (channels,):
                    raise ProgramError(f"{what}: {key} blob {step[key]!r} must have shape "
                                       f"({channels},)")
    if program.output not in defined:
        raise ProgramError(f"{where}: no step writes the output value {program.output!r}")
    if program.steps[0]["op"] != "input" or program.steps[0]["output"] != inp["value"]:
        raise ProgramError(f"{where}: the first step must be the input step writing "
                           f"{inp['value']!r}")
    del cfg


def _window_count(size, kernel, stride, padding, dilation) -> int:
    """Output positions of a convolution along one axis (PyTorch's formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _check_array_step(program: Program, step: dict, what: str) -> None:
    cfg = program.config
    n, k, m = (_need(step, key, int, what) for key in ("n", "k", "m"))
    if not (1 <= n <= MAX_DIM and 1 <= m <= MAX_DIM):
        raise ProgramError(f"{what}: n={n}, m={m}; expected positive sizes")
    if not 1 <= k <= cfg.depth:
        raise ProgramError(f"{what}: K={k} is outside the array's range [1, {cfg.depth}] "
                           f"(config {cfg.name})")
    try:
        wbits = check_wbits(step["wbits"])
    except (TypeError, ValueError) as exc:
        raise ProgramError(f"{what}: {exc}") from None
    if wbits != cfg.wbits:
        raise ProgramError(f"{what}: {wbits}-bit weight codes, but the array takes "
                           f"{cfg.wbits}-bit codes (config {cfg.name})")
    e0 = step["e0"]
    e0s = _int_list(e0, m, f"{what} e0") if isinstance(e0, list) else [e0]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in e0s):
        raise ProgramError(f"{what}: e0 is {e0!r}; expected an integer or a list of {m}")
    bad = [v for v in e0s if not cfg.e0_min <= v <= cfg.e0_max]
    if bad:
        raise ProgramError(f"{what}: e0={bad[0]} is outside the array's range "
                           f"[{cfg.e0_min}, {cfg.e0_max}] (config {cfg.name})")
    words = program.blobs[step["weights"]]
    want = (m, words_per_row(k, wbits))
    if words.dtype != np.dtype("<u4") or words.shape != want:
        raise ProgramError(f"{what}: weight blob {step['weights']!r} is {words.dtype} "
                           f"{words.shape}; expected uint32 {want} (packing v1)")
    src_shape = program.values[step["inputs"][0]]["shape"]
    dst_shape = program.values[step["output"]]["shape"]
    groups = step.get("groups", 1)
    if step["op"] == "linear":
        geometry_ok = (bool(src_shape) and src_shape[-1] == k
                       and dst_shape == src_shape[:-1] + [m]
                       and n == int(np.prod(src_shape[:-1] or [1])))
    else:
        geometry_ok = (len(src_shape) == len(step["kernel"]) + 1
                       and src_shape[0] % groups == 0 and m % groups == 0
                       and src_shape[0] // groups * int(np.prod(step["kernel"])) == k
                       and dst_shape[0] == m and int(np.prod(dst_shape[1:])) == n)
    if geometry_ok and step["op"] != "linear":
        want = [_window_count(size, *(step[key][d] for key in ("kernel", "stride", "padding",
                                                                 "dilation")))
                for d, size in enumerate(src_shape[1:])]
        geometry_ok = dst_shape[1:] == want
    if not geometry_ok:
        raise ProgramError(f"{what}: n={n}, k={k}, m={m} do not match its input shape "
                           f"{src_shape} and output shape {dst_shape} (groups={groups})")
    if step["bias"] is not None:
        bias = program.blobs[step["bias"]]
        if (bias.dtype != np.dtype("<u4") or bias.shape != (m,)
                or int(bias.max()) >> cfg.out_fmt.width):
            raise ProgramError(f"{what}: bias blob {step['bias']!r} must hold {m} raw "
                               f"{cfg.out_fmt.name} patterns")
    if not isinstance(step["relu"], bool):
        raise ProgramError(f"{what}: relu is {step['relu']!r}; expected true or false")
    src = program.values[step["inputs"][0]]
    dst = program.values[step["output"]]
    if src["fmt"] != cfg.in_fmt.name or dst["fmt"] != cfg.out_fmt.name:
        raise ProgramError(f"{what}: reads {src['fmt']} and writes {dst['fmt']}, but the array "
                           f"takes {cfg.in_fmt.name} and gives {cfg.out_fmt.name}")


def _check_fp_step(program: Program, step: dict, what: str) -> None:
    w = program.blobs[step["weights"]]
    src = program.values[step["inputs"][0]]["shape"]
    dst = program.values[step["output"]]["shape"]
    groups = step.get("groups", 1)
    k = src[-1] if step["op"] == "fp_linear" else src[0] // groups * int(
        np.prod(step["kernel"]))
    if w.ndim != 2 or w.shape != (dst[0], k):
        raise ProgramError(f"{what}: weight blob {step['weights']!r} has shape {w.shape}; "
                           f"expected {(dst[0], k)} for input {src} and output {dst}")
    for key in ("bias", "scale", "shift"):
        if step[key] is not None and program.blobs[step[key]].shape != (dst[0],):
            raise ProgramError(f"{what}: {key} blob {step[key]!r} must have shape "
                               f"({dst[0]},)")


def check_config(program: Program, config: ArrayConfig) -> None:
    """Raise :class:`ProgramError` unless ``program`` was compiled for ``config``."""
    if program.config == config:
        return
    a, b = program.config.to_dict(), config.to_dict()
    keys = ArrayConfig._KEYS
    diff = [f"{key}: program {a.get(key)!r} vs {b.get(key)!r}" for key in keys
            if a.get(key) != b.get(key)]
    raise ProgramError(f"the program was compiled for array configuration "
                       f"{program.config.name}, not {config.name} ({'; '.join(diff[:4])}); "
                       f"recompile it with this configuration")
