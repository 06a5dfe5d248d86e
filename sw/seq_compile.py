"""Lowering of a recurrent sequence model (:class:`sw.seq_models.SpeechLSTM`) to a *sequence
program* for one array configuration, and its file format.

What runs where (``docs/training.md``, "Sequence models", has the arithmetic):

* every gate matrix (``ih``: input, ``hh``: recurrent) is a chain of cores, each an ``(M, K)``
  matrix of shift codes (a dense matrix is a chain of one core; an MPS map has one core per
  leg, :func:`sw.mps.mps_contract` fixes the order); every contraction is one **array** GEMM
  (no bias, no ReLU), its output rounded once to ``out_fmt`` by the array;
* the input projections of the whole sequence go through each ``ih`` core as **one** GEMM
  (``N = samples * T * rows``); the recurrent projection runs per time step (``N = samples *
  rows``), step 0 has none (``h_0 = 0``);
* on the **host**: the input's rounding to ``in_fmt``, frame stacking (no arithmetic), the
  gates' sum with the bias, the nonlinearities, the cell update, the mean over time and the
  floating-point classifier.

The program is a directory: ``program.json`` (header: ``format`` ``densehw-seq-program``,
``version`` 1, the ``ArrayConfig``, the model config, the maps with their cores' ``m, k, e0``,
the per-step and per-sequence cycles of the cycle model, the host ops' rounding, SHA-256 of the
blobs and of the header), ``blobs.npz`` (packed codes, biases, the head) and ``source.pt`` (the
model file, for the PyTorch reference).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from contract import encode_weights, pack_codes, unpack_codes
from contract.array import ArrayConfig

from .data import save_atomic
from .mps import MPSLinear, mps_contract
from .program import ProgramError, header_digest, write_program_directory
from .quant import _Quantizer
from .recurrent import ShiftGRU, ShiftLSTM, map_matrix

__all__ = ["SEQ_FORMAT", "SEQ_VERSION", "MODEL_FORMAT", "SeqProgram", "compile_seq_model",
           "save_seq_model", "load_seq_model", "save", "load", "map_cycles", "ROUNDING"]

SEQ_FORMAT = "densehw-seq-program"
SEQ_VERSION = 1
MODEL_FORMAT = "densehw-seq-model"
HEADER, BLOBS, SOURCE = "program.json", "blobs.npz", "source.pt"

#: The host ops and their rounding (copied into every report).
ROUNDING = {
    "input": "float32 -> in_fmt, nearest even (sw.runtime.round_to_format)",
    "stack": "frames t*stack .. t*stack+stack-1 concatenated; no arithmetic",
    "gemm": "each core one array GEMM: exact accumulation, one rounding to out_fmt; out_fmt -> "
            "in_fmt rounding (nearest even) between cores only when the formats differ",
    "lstm_cell": "float64: a = (gx + gh) + b; i, f, o = 1 / (1 + exp(-a)), g = tanh(a) (C "
                 "library exp/tanh through torch float64); c = f*c + i*g rounded to fp32 (the "
                 "cell state is kept as fp32); h = o * tanh(c) rounded once to in_fmt",
    "gru_cell": "float64: r = s(gx_r + b_ir + gh_r + b_hr), z = s(gx_z + b_iz + gh_z + b_hz), "
                "n = tanh(gx_n + b_in + r*(gh_n + b_hn)), h = (1 - z)*n + z*h rounded once to "
                "in_fmt (s(a) = 1 / (1 + exp(-a)))",
    "mean": "sum of h_t over t in ascending order in float64 (exact for fp16), / T, rounded "
            "to in_fmt",
    "head": "acc = 0; for k: acc = acc + x[k]*w[k] (float64, fp32 weights), + bias, rounded "
            "to fp32 (the logits)",
}


class SeqCompileError(ProgramError):
    """A sequence model the compiler cannot lower (names the core and the reason)."""


# -- model files --------------------------------------------------------------------------------

def save_seq_model(model, path, *, meta=None) -> None:
    """Write ``model`` (a :class:`~sw.seq_models.SpeechLSTM`) with its config, state and
    ``meta`` to ``path`` (atomically)."""
    blob = {"format": MODEL_FORMAT, "version": 1, "config": model.config(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "e0": {n: int(q.e0) for n, q in model.named_modules()
                   if isinstance(q, _Quantizer) and hasattr(q, "e0")},
            "meta": meta or {}}
    save_atomic(blob, path)


def load_seq_model(source):
    """``(model in eval mode, meta, raw bytes)`` of a model file (path or bytes); raises
    ``ValueError`` naming the file for anything else."""
    from .seq_models import build_seq_model

    name = "model" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        raw = source
    else:
        if not Path(source).is_file():
            raise ValueError(f"{name}: model file does not exist")
        raw = Path(source).read_bytes()
    try:
        blob = torch.load(io.BytesIO(raw), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad archive
        raise ValueError(f"{name}: not a densehw sequence model file "
                         f"({str(exc).strip().splitlines()[0] if str(exc) else exc!r})") from None
    if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
        raise ValueError(f"{name}: not a densehw sequence model file (format "
                         f"{blob.get('format') if isinstance(blob, dict) else None!r})")
    try:
        model = build_seq_model(blob["config"])
        model.load_state_dict(blob["state_dict"])
        for n, e0 in blob["e0"].items():          # e0 is no tensor: not in the state dict
            model.get_submodule(n).e0 = int(e0)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise ValueError(f"{name}: cannot rebuild the model: "
                         f"{str(exc).splitlines()[0]}") from None
    return model.eval(), blob.get("meta", {}), raw


# -- program ------------------------------------------------------------------------------------

@dataclass
class SeqProgram:
    config: ArrayConfig
    header: dict
    blobs: dict
    source_bytes: bytes | None = None
    meta: dict = field(default_factory=dict)

    def codes(self, core: dict) -> np.ndarray:
        return unpack_codes(self.blobs[core["weights"]], core["k"], self.config.wbits)


def map_cycles(config: ArrayConfig, spec: dict, rows: int) -> list:
    """``[(n, k, m, cycles)]`` of each core GEMM of one map applied to ``rows`` input rows."""
    from .runtime import cycle_model

    fn, _ = cycle_model(config)
    out = []
    for n, k, m in _map_sizes(spec, rows):
        out.append((n, k, m, int(fn(n, k, m))))
    return out


def _map_sizes(spec, rows):
    if spec["kind"] == "dense":
        core = spec["cores"][0]
        return [(rows, core["k"], core["m"])]
    _, sizes = mps_contract(torch.zeros(rows, spec["in"]), spec["in_factors"],
                            spec["out_factors"], spec["ranks"],
                            lambda k, z: z.new_zeros(z.shape[0], spec["cores"][k]["m"]))
    return sizes


def _lower_map(name, module, cfg: ArrayConfig, blobs):
    """The cores of one gate map as codes at the array's width."""
    if isinstance(module, MPSLinear):
        quantizers = list(module.cores)
        weights = module.quantized_cores()
        spec = {"kind": "mps", "in": module.in_features, "out": module.out_features,
                "in_factors": list(module.in_factors), "out_factors": list(module.out_factors),
                "ranks": list(module.ranks)}
    elif hasattr(module, "quantizer"):
        quantizers = [module.quantizer]
        weights = [map_matrix(module)]
        spec = {"kind": "dense", "in": module.in_features, "out": module.out_features}
    else:
        raise SeqCompileError(f"{name}: {type(module).__name__} maps are not lowered (dense and "
                              f"MPS maps are)")
    cores = []
    for i, (q, w) in enumerate(zip(quantizers, weights, strict=True)):
        label = f"{name} core {i}"
        w = w.detach().double().numpy()
        if w.shape[1] > cfg.depth:
            raise SeqCompileError(f"{label}: K={w.shape[1]} exceeds the array depth "
                                  f"{cfg.depth} (config {cfg.name})")
        e0 = getattr(q, "e0", None)
        try:
            codes, e0 = encode_weights(w, cfg.wbits, e0=e0)
        except ValueError as exc:
            raise SeqCompileError(f"{label}: the weights are not shift weights for the array's "
                                  f"{cfg.wbits}-bit codes: {exc}") from None
        e0 = int(e0)
        if not cfg.e0_min <= e0 <= cfg.e0_max:
            raise SeqCompileError(f"{label}: e0={e0} is outside the array's range "
                                  f"[{cfg.e0_min}, {cfg.e0_max}] (config {cfg.name})")
        key = f"{name}.core{i}.codes"
        blobs[key] = pack_codes(codes, cfg.wbits).astype("<u4")
        cores.append({"m": int(w.shape[0]), "k": int(w.shape[1]), "e0": e0, "weights": key})
    spec["cores"] = cores
    return spec


def compile_seq_model(source, config: ArrayConfig) -> SeqProgram:
    """Lower a sequence model (a model file path, its bytes, or a model) for ``config``."""
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")
    raw, meta = None, {}
    if isinstance(source, torch.nn.Module):
        model = source.eval()
    else:
        model, meta, raw = load_seq_model(source)
    rnn = model.rnn
    if getattr(model, "norm", None) is not None:
        raise SeqCompileError(f"norm={model.norm!r} (per-utterance CMVN) is not lowered")
    if not isinstance(rnn, (ShiftLSTM, ShiftGRU)) or rnn.num_layers != 1:
        raise SeqCompileError("only one-layer ShiftLSTM / ShiftGRU sequence models are lowered")
    cfg = config
    blobs = {}
    cell = rnn.cells[0]
    maps = {w: _lower_map(w, getattr(cell, w), cfg, blobs) for w in ("ih", "hh")}
    gates = rnn.gates
    hsz = rnn.hidden_size
    zero = np.zeros(gates * hsz)
    biases = [b.detach().double().numpy() for b in cell.biases]
    blobs["bias_ih"] = (biases[0] if biases else zero).astype("<f8")
    blobs["bias_hh"] = (biases[1] if len(biases) > 1 else zero).astype("<f8")
    blobs["head.weight"] = model.head.weight.detach().numpy().astype("<f4")
    blobs["head.bias"] = model.head.bias.detach().numpy().astype("<f4")
    steps = model.steps
    ih = map_cycles(cfg, maps["ih"], steps)
    hh = map_cycles(cfg, maps["hh"], 1)
    per_step = sum(c for *_, c in hh)
    proj = sum(c for *_, c in ih)
    macs_step = sum(n * k * m for n, k, m, _ in hh)
    macs_proj = sum(n * k * m for n, k, m, _ in ih)
    from .runtime import cycle_model

    cycles = {"source": cycle_model(cfg)[1],
              "input_projection_per_sequence": proj,
              "input_projection_gemms": [list(c) for c in ih],
              "per_time_step": per_step,
              "recurrent_gemms_per_step": [list(c) for c in hh],
              "time_steps": steps,
              "recurrent_steps": steps - 1,
              "per_sequence": proj + (steps - 1) * per_step,
              "macs_per_time_step": macs_step + macs_proj // steps,
              "macs_per_sequence": macs_proj + (steps - 1) * macs_step}
    params = rnn.num_parameters
    header = {"format": SEQ_FORMAT, "version": SEQ_VERSION, "config": cfg.to_dict(),
              "config_name": cfg.name, "model": model.config(),
              "dataset": (meta or {}).get("data", "speech"),
              "input_shape": [model.n_mels, model.frames], "cell": rnn.kind, "gates": gates,
              "hidden": hsz, "stack": model.stack, "steps": steps, "maps": maps,
              "params": params, "dense_params": rnn.dense_parameters,
              "compression": rnn.dense_parameters / params, "cycles": cycles,
              "rounding": {k: v for k, v in ROUNDING.items()
                           if k != ("gru_cell" if rnn.kind == "lstm" else "lstm_cell")},
              "source": {} if raw is None else {"file": SOURCE,
                                                "sha256": hashlib.sha256(raw).hexdigest()}}
    return SeqProgram(config=cfg, header=header, blobs=blobs, source_bytes=raw, meta=meta)


def save(program: SeqProgram, directory) -> Path:
    """Write ``program`` to ``directory`` atomically (replacing a program directory there)."""
    buf = io.BytesIO()
    np.savez(buf, **program.blobs)
    return write_program_directory(directory, program.header, buf.getvalue(),
                                   program.source_bytes, blobs_name=BLOBS, source_name=SOURCE)


def load(directory) -> SeqProgram:
    """Read and check a sequence program directory (``ProgramError`` naming the problem)."""
    directory = Path(directory)
    where = str(directory)
    head = directory / HEADER
    if not head.is_file():
        raise ProgramError(f"{where}: no {HEADER}; not a densehw sequence program directory")
    try:
        header = json.loads(head.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProgramError(f"{where}/{HEADER}: not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != SEQ_FORMAT:
        raise ProgramError(f"{where}: not a densehw sequence program (format "
                           f"{header.get('format') if isinstance(header, dict) else None!r}, "
                           f"expected {SEQ_FORMAT!r})")
    if header.get("version") != SEQ_VERSION:
        raise ProgramError(f"{where}: sequence program version {header.get('version')!r} is not "
                           f"supported (expected {SEQ_VERSION}); recompile it")
    if header_digest(header) != header.get("program_sha256"):
        raise ProgramError(f"{where}/{HEADER}: SHA-256 mismatch: the header was changed after "
                           f"compilation; recompile the model")
    blob_path = directory / BLOBS
    data = blob_path.read_bytes() if blob_path.is_file() else b""
    if hashlib.sha256(data).hexdigest() != header.get("blobs_sha256"):
        raise ProgramError(f"{where}/{BLOBS}: missing, truncated or modified (SHA-256 mismatch)")
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        blobs = {k: z[k] for k in z.files}
    try:
        config = ArrayConfig.from_dict(header["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProgramError(f"{where}: bad array configuration: {exc}") from None
    source = header.get("source") or {}
    raw = None
    if source.get("file") and (directory / SOURCE).is_file():
        raw = (directory / SOURCE).read_bytes()
        if hashlib.sha256(raw).hexdigest() != source.get("sha256"):
            raise ProgramError(f"{where}/{SOURCE}: SHA-256 mismatch with the header")
    for name, spec in header["maps"].items():
        for i, core in enumerate(spec["cores"]):
            if core["weights"] not in blobs or not 1 <= core["k"] <= config.depth or not (
                    config.e0_min <= core["e0"] <= config.e0_max):
                raise ProgramError(f"{where}: {name} core {i} does not fit configuration "
                                   f"{config.name} or has no weight blob")
    return SeqProgram(config=config, header=header, blobs=blobs, source_bytes=raw)
