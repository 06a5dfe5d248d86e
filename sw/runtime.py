"""Host runtime and executor of densehw programs (:mod:`sw.program`).

Array steps (``linear``, ``conv1d``, ``conv2d``: im2col, then one GEMM with the bias and the
ReLU fused) go to a *backend*: a callable with the signature of :func:`sw.golden.gemm_golden`::

    fn(x_bits, codes, e0, *, in_fmt, wbits, out_fmt, bias_bits, relu, config) -> (N, M) bits

returning raw ``out_fmt`` patterns (torch or NumPy integers), or ``(bits, stats)`` with a dict
of measurements (``{"cycles": int, ...}``). Backends are registered by name in
:mod:`sw.backends` as *factories* ``factory(array_config) -> fn``, so that a simulation backend
builds its RTL for the program's :class:`~contract.array.ArrayConfig` once; ``config`` passed to
``fn`` is ``array_config.dot_config``. ``golden`` is built in.

Host steps compute on exact values with IEEE binary64 (float64) operations in a fixed order and
round once to the step's output format with :func:`round_to_format` (nearest even, overflow to
infinity, subnormals kept, NaN -> canonical NaN). The order and the operations are defined in
``docs/deployment.md``; every host op is a deterministic function of its input bits, so golden and
any backend see the same host arithmetic and differ only where an array step differs.

With ``compare=True`` (default for every backend except golden) each array step is also run on
the golden model with the same inputs and the output bits are compared (the run continues with
the backend's outputs).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from contract import FloatFormat, get_format, unpack_codes
from contract.array import ArrayConfig

from . import golden_blas
from .backends import get_backend
from .conv import im2col_tensor as im2col
from .golden import gemm_golden
from .program import Program, ProgramError

__all__ = ["round_to_format", "decode", "relu_bits", "im2col", "run_program", "RunResult",
           "StepRecord", "cycle_model", "sample_array_step"]


# -- exact host arithmetic ----------------------------------------------------------------------

def check_inputs(x, shape: tuple, batch_size) -> None:
    """``TypeError``/``ValueError`` unless ``x`` is a float32 tensor of samples of ``shape``
    and ``batch_size`` a positive integer."""
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32:
        raise TypeError(f"inputs must be a float32 tensor, not {getattr(x, 'dtype', type(x))}")
    if tuple(x.shape[1:]) != shape:
        raise ValueError(f"inputs have per-sample shape {tuple(x.shape[1:])}; the program "
                         f"expects {shape}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")


def round_to_format(v: torch.Tensor, fmt) -> torch.Tensor:
    """Round float64 values to raw ``fmt`` patterns (int64): nearest even, once; overflow to
    ``±inf``; subnormal results kept; a nonzero value that rounds to zero keeps its sign; NaN
    gives the canonical NaN. Formats inside float64's range go through
    :func:`sw.golden_blas.round_float64` (rounding on the value's grid by one float64 add and
    subtract), the others through :func:`round_to_format_reference`: the same bits."""
    fmt = get_format(fmt)
    if not golden_blas.eligible(fmt, fmt, 0, 0, 0):
        return round_to_format_reference(v, fmt)
    v = v.to(torch.float64)
    out = golden_blas.round_float64(v.clone(), fmt)
    return torch.where(torch.isnan(v), fmt.canonical_nan, out)


def round_to_format_reference(v: torch.Tensor, fmt) -> torch.Tensor:
    """:func:`round_to_format` by frexp, scaling and ``torch.round`` on the significand."""
    fmt = get_format(fmt)
    v = v.to(torch.float64)
    sign = torch.signbit(v).to(torch.int64) << (fmt.width - 1)
    a = v.abs()
    finite = torch.isfinite(a) & (a != 0)
    safe = torch.where(finite, a, torch.ones_like(a))
    _, e = torch.frexp(safe)                         # safe in [2**(e-1), 2**e)
    lead = e.to(torch.int64) - 1
    tiny = lead < fmt.lsb_exp - 2                    # below a quarter of the smallest subnormal
    binade = lead.clamp(min=fmt.emin)
    shift = (fmt.frac_bits - binade).clamp(-1000, 1000)
    scaled = safe * torch.pow(torch.tensor(2.0, dtype=torch.float64), shift.to(torch.float64))
    q = torch.round(scaled).to(torch.int64)          # half to even; exact power-of-2 scaling
    body = ((binade - fmt.emin) << fmt.frac_bits) + q
    body = torch.where((binade > fmt.emax) | (body >= fmt.pos_inf), fmt.pos_inf, body)
    body = torch.where(tiny | ~finite, 0, body)
    body = torch.where(torch.isinf(a), fmt.pos_inf, body)
    out = sign | body
    return torch.where(torch.isnan(v), fmt.canonical_nan, out)


def decode(bits: torch.Tensor, fmt) -> torch.Tensor:
    """Raw patterns -> exact float64 values (every format of at most 32 bits fits; NaN for
    every NaN pattern)."""
    return golden_blas.decode(bits.to(torch.int64), get_format(fmt))


def relu_bits(bits: torch.Tensor, fmt) -> torch.Tensor:
    """ReLU on raw patterns: sign bit set -> ``+0`` (``-0`` and ``-inf`` included); NaN -> the
    canonical NaN."""
    fmt = get_format(fmt)
    nan = ((bits >> fmt.frac_bits) & fmt.exp_max_field) == fmt.exp_max_field
    nan &= (bits & fmt.frac_mask) != 0
    out = torch.where((bits & fmt.sign_mask) != 0, 0, bits)
    return torch.where(nan, fmt.canonical_nan, out)


def _order_key(bits: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """Monotone integer key of non-NaN patterns (``-0 < +0``)."""
    mag = bits & ~fmt.sign_mask
    return torch.where((bits & fmt.sign_mask) != 0, -mag - 1, mag)


def _from_key(key: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    return torch.where(key < 0, fmt.sign_mask | (-key - 1), key)


def _is_nan(bits, fmt):
    return (((bits >> fmt.frac_bits) & fmt.exp_max_field) == fmt.exp_max_field) & (
        (bits & fmt.frac_mask) != 0)


def _to_channels_first(y: torch.Tensor, s: int, spatial: tuple) -> torch.Tensor:
    """``(S * L, M)`` -> ``(S, M, *spatial)``."""
    m = y.shape[1]
    return y.reshape(s, -1, m).transpose(1, 2).reshape(s, m, *spatial)


def _channel(vec: torch.Tensor, ndim: int) -> torch.Tensor:
    return vec.reshape((1, -1) + (1,) * (ndim - 2))


#: Rows per block of :func:`_seq_dot` (a block's float64 accumulator stays in cache).
SEQ_DOT_ROWS = 4096


def _seq_dot(cols: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``acc[n, m] = (((0 + c[n,0] w[m,0]) + c[n,1] w[m,1]) + ...)`` in float64, one IEEE
    multiply (exact here: at most 24 x 24 significand bits) and one IEEE add per term, in
    ascending ``k``. Rows go in blocks of :data:`SEQ_DOT_ROWS`; every element sees the same
    operation sequence whatever the blocking, so it never changes a bit."""
    n, m = cols.shape[0], w.shape[0]
    acc = torch.zeros((n, m), dtype=torch.float64)
    wt = w.t().contiguous()                                        # (K, M)
    prod = torch.empty((min(n, SEQ_DOT_ROWS), m), dtype=torch.float64)
    for r0 in range(0, n, SEQ_DOT_ROWS):
        a = acc[r0:r0 + SEQ_DOT_ROWS]
        c = cols[r0:r0 + SEQ_DOT_ROWS].t().contiguous()            # (K, rows)
        t = prod[:a.shape[0]]
        for k in range(cols.shape[1]):
            torch.mul(c[k][:, None], wt[k], out=t)                 # one IEEE multiply
            a.add_(t)                                              # one IEEE add
    return acc


# -- host ops -----------------------------------------------------------------------------------

def _host_input(program, step, x):
    fmt = program.fmt(step["output"])
    return round_to_format(x.to(torch.float64), fmt)


def _host_convert(program, step, a):
    src = program.fmt(step["inputs"][0])
    return round_to_format(decode(a, src), program.fmt(step["output"]))


def _affine_relu(program, step, y: torch.Tensor) -> torch.Tensor:
    """``y * scale + shift`` per channel (axis 1), ReLU, round to the output format."""
    if step.get("scale") is not None:
        y = y * _channel(torch.from_numpy(program.blob(step["scale"])).to(torch.float64), y.ndim)
    if step.get("shift") is not None:
        y = y + _channel(torch.from_numpy(program.blob(step["shift"])).to(torch.float64), y.ndim)
    out = round_to_format(y, program.fmt(step["output"]))
    return relu_bits(out, program.fmt(step["output"])) if step["relu"] else out


def _host_fp_layer(program, step, a):
    src = program.fmt(step["inputs"][0])
    x = decode(a, src)
    w = torch.from_numpy(program.blob(step["weights"])).to(torch.float64)
    w = w.reshape(w.shape[0], -1)
    s = x.shape[0]
    bias = step["bias"]
    bias = None if bias is None else torch.from_numpy(program.blob(bias)).to(torch.float64)
    if step["op"] == "fp_linear":
        acc = _seq_dot(x.reshape(-1, x.shape[-1]), w).reshape(*x.shape[:-1], w.shape[0])
        if bias is not None:
            acc = acc + bias
    else:
        groups = step.get("groups", 1)
        cg, mg = x.shape[1] // groups, w.shape[0] // groups
        acc = torch.cat([_seq_dot(im2col(x[:, g * cg:(g + 1) * cg], step["kernel"],
                                         step["stride"], step["padding"], step["dilation"]),
                                  w[g * mg:(g + 1) * mg]) for g in range(groups)], dim=1)
        spatial = tuple(program.values[step["output"]]["shape"][1:])
        acc = _to_channels_first(acc, s, spatial)
        if bias is not None:
            acc = acc + _channel(bias, acc.ndim)
    return _affine_relu(program, step, acc)


def _host_affine(program, step, a):
    return _affine_relu(program, step, decode(a, program.fmt(step["inputs"][0])))


def _host_relu(program, step, a):
    fmt = program.fmt(step["inputs"][0])
    out = program.fmt(step["output"])
    if fmt != out:
        a = round_to_format(decode(a, fmt), out)
    return relu_bits(a, out)


def _host_add(program, step, a, b):
    y = decode(a, program.fmt(step["inputs"][0])) + decode(b, program.fmt(step["inputs"][1]))
    out = round_to_format(y, program.fmt(step["output"]))
    return relu_bits(out, program.fmt(step["output"])) if step["relu"] else out


def _host_maxpool(program, step, a):
    fmt = program.fmt(step["inputs"][0])
    out_fmt = program.fmt(step["output"])
    pool = F.max_pool1d if step["op"] == "maxpool1d" else F.max_pool2d
    dims = 1 if step["op"] == "maxpool1d" else 2
    kw = {"kernel_size": tuple(step["kernel"]), "stride": tuple(step["stride"]),
          "padding": tuple(step["padding"]),
          "dilation": tuple(step.get("dilation", [1] * dims)),
          "ceil_mode": bool(step.get("ceil_mode", False))}
    key = pool(_order_key(a, fmt).to(torch.float64), **kw).to(torch.int64)
    nan = pool(_is_nan(a, fmt).to(torch.float64), **kw) > 0
    y = torch.where(nan, fmt.canonical_nan, _from_key(key, fmt))
    if out_fmt != fmt:
        y = round_to_format(decode(y, fmt), out_fmt)
    return y


def _sum_last(t: torch.Tensor) -> torch.Tensor:
    """``((0 + t[..., 0]) + t[..., 1]) + ...`` in float64 (ascending index)."""
    acc = torch.zeros(t.shape[:-1], dtype=torch.float64)
    for i in range(t.shape[-1]):
        acc = acc + t[..., i]
    return acc


def _host_avgpool(program, step, a):
    """Global average: the sum in ascending position (exact for formats of at most 16 bits),
    divided by the count in float64, rounded to the output format."""
    x = decode(a, program.fmt(step["inputs"][0]))
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    acc = _sum_last(flat) / float(flat.shape[2])
    y = acc.reshape((x.shape[0], *program.values[step["output"]]["shape"]))
    return round_to_format(y, program.fmt(step["output"]))


def _pool_windows(size, kernel, stride, pad, ceil_mode):
    """``[(start, end)]`` of each output window along one axis, in padded coordinates (as
    PyTorch's pooling: with ``ceil_mode`` a last window must start inside the input or the
    left padding)."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return [(i * stride - pad, i * stride - pad + kernel) for i in range(out)]


def _host_avgpool_nd(program, step, a):
    """Window average: the exact sum of the window's inputs (ascending position), divided in
    float64 by the count (the padded window size clipped to the padded input, or the inputs
    alone without ``count_include_pad``), rounded to the output format."""
    x = decode(a, program.fmt(step["inputs"][0]))
    dims = 1 if step["op"] == "avgpool1d" else 2
    spatial = x.shape[2:]
    windows = [_pool_windows(spatial[d], step["kernel"][d], step["stride"][d],
                             step["padding"][d], step["ceil_mode"]) for d in range(dims)]
    out = torch.zeros((*x.shape[:2], *[len(w) for w in windows]), dtype=torch.float64)
    for idx in np.ndindex(*[len(w) for w in windows]):
        sl, count = [], 1
        for d, i in enumerate(idx):
            lo, hi = windows[d][i]
            sl.append(slice(max(lo, 0), min(hi, spatial[d])))
            if step["count_include_pad"]:
                count *= min(hi, spatial[d] + step["padding"][d]) - lo
            else:
                count *= min(hi, spatial[d]) - max(lo, 0)
        win = x[(slice(None), slice(None), *sl)].reshape(x.shape[0], x.shape[1], -1)
        out[(slice(None), slice(None), *idx)] = _sum_last(win) / float(count)
    return round_to_format(out, program.fmt(step["output"]))


def _host_adaptive_avgpool(program, step, a):
    """PyTorch's adaptive windows (``floor(i*L/O)`` to ``ceil((i+1)*L/O)``), each averaged as
    in :func:`_host_avgpool_nd` (exact sum, one float64 division, rounded)."""
    x = decode(a, program.fmt(step["inputs"][0]))
    sizes = step["output_size"]
    spatial = x.shape[2:]
    windows = [[(i * spatial[d] // o, -(-(i + 1) * spatial[d] // o)) for i in range(o)]
               for d, o in enumerate(sizes)]
    out = torch.zeros((*x.shape[:2], *sizes), dtype=torch.float64)
    for idx in np.ndindex(*sizes):
        sl = [slice(*windows[d][i]) for d, i in enumerate(idx)]
        count = int(np.prod([windows[d][i][1] - windows[d][i][0] for d, i in enumerate(idx)]))
        win = x[(slice(None), slice(None), *sl)].reshape(x.shape[0], x.shape[1], -1)
        out[(slice(None), slice(None), *idx)] = _sum_last(win) / float(count)
    return round_to_format(out, program.fmt(step["output"]))


def _host_flatten(program, step, a):
    fmt, out = program.fmt(step["inputs"][0]), program.fmt(step["output"])
    a = a.reshape(a.shape[0], *program.values[step["output"]]["shape"])
    return a if fmt == out else round_to_format(decode(a, fmt), out)


def _host_permute(program, step, a):
    fmt, out = program.fmt(step["inputs"][0]), program.fmt(step["output"])
    a = a.permute(0, *[p + 1 for p in step["perm"]]).contiguous()
    return a if fmt == out else round_to_format(decode(a, fmt), out)


def _host_concat(program, step, *parts):
    vals = [decode(p, program.fmt(v)) for p, v in zip(parts, step["inputs"], strict=True)]
    return round_to_format(torch.cat(vals, dim=step["axis"] + 1), program.fmt(step["output"]))


def _host_clamp(program, step, a):
    """``x < lo -> lo``, ``x > hi -> hi`` on exact values (NaN stays NaN, ``-0`` stays
    ``-0``), rounded to the output format."""
    x = decode(a, program.fmt(step["inputs"][0]))
    if step["lo"] is not None:
        x = torch.where(x < step["lo"], torch.tensor(float(step["lo"]), dtype=x.dtype), x)
    if step["hi"] is not None:
        x = torch.where(x > step["hi"], torch.tensor(float(step["hi"]), dtype=x.dtype), x)
    return round_to_format(x, program.fmt(step["output"]))


def _host_softmax(program, step, a):
    """``e = exp(x - max)`` (float64 ``exp``), ``e / sum(e)`` with the sum in ascending index,
    rounded to the output format."""
    x = decode(a, program.fmt(step["inputs"][0]))
    axis = step["axis"] + 1
    x = x.movedim(axis, -1)
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))
    y = (e / _sum_last(e).unsqueeze(-1)).movedim(-1, axis)
    return round_to_format(y, program.fmt(step["output"]))


_HOST = {"input": _host_input, "convert": _host_convert, "fp_linear": _host_fp_layer,
         "fp_conv1d": _host_fp_layer, "fp_conv2d": _host_fp_layer, "affine": _host_affine,
         "relu": _host_relu, "clamp": _host_clamp, "add": _host_add, "concat": _host_concat,
         "maxpool1d": _host_maxpool, "maxpool2d": _host_maxpool, "avgpool": _host_avgpool,
         "avgpool1d": _host_avgpool_nd, "avgpool2d": _host_avgpool_nd,
         "adaptive_avgpool": _host_adaptive_avgpool, "flatten": _host_flatten,
         "reshape": _host_flatten, "permute": _host_permute, "softmax": _host_softmax}


def argmax_logits(bits: torch.Tensor, fmt) -> torch.Tensor:
    """Index of the largest logit per row; NaN ranks below every number, ties go to the lowest
    index."""
    v = decode(bits, fmt)
    v = v.reshape(v.shape[0], -1)
    v = torch.where(torch.isnan(v), torch.tensor(float("-inf"), dtype=torch.float64), v)
    return torch.argmax(v, dim=1)


# -- array steps --------------------------------------------------------------------------------

def array_operands(program: Program, step: dict, a: torch.Tensor, group: int = 0):
    """``(x_bits (N, K), codes (M, K), e0, bias_bits)`` of group ``group`` of an array step on
    input bits ``a`` (convolutions with ``groups`` > 1 are one GEMM per group: input channels
    ``[g*C/G, (g+1)*C/G)``, output channels ``[g*M/G, (g+1)*M/G)``)."""
    groups = step.get("groups", 1)
    m = step["m"]
    mg = m // groups
    rows = slice(group * mg, (group + 1) * mg)
    if step["op"] == "linear":
        x = a.reshape(-1, a.shape[-1])
    else:
        cg = a.shape[1] // groups
        x = im2col(a[:, group * cg:(group + 1) * cg], step["kernel"], step["stride"],
                   step["padding"], step["dilation"])
    codes = unpack_codes(program.blob(step["weights"]), step["k"], step["wbits"])[rows]
    e0 = step["e0"] if isinstance(step["e0"], int) else np.asarray(step["e0"],
                                                                    dtype=np.int64)[rows]
    bias = program.blob(step["bias"])
    if bias is not None:
        bias = bias.astype(np.int64)[rows]
    return x, codes, e0, bias


def _call_backend(fn, program, step, x, codes, e0, bias):
    cfg = program.config
    out = fn(x, codes, e0, in_fmt=cfg.in_fmt, wbits=cfg.wbits, out_fmt=cfg.out_fmt,
             bias_bits=bias, relu=bool(step["relu"]), config=cfg.dot_config)
    stats = None
    if isinstance(out, tuple):
        out, stats = out
    if isinstance(out, torch.Tensor):
        out = out.to(torch.int64)
    else:
        arr = np.asarray(out)
        if arr.dtype.kind not in "iu":
            raise ProgramError(f"step {step['id']} ({step.get('name')}): backend returned "
                               f"{arr.dtype} values; expected integer bit patterns")
        out = torch.from_numpy(arr.astype(np.int64))
    if out.shape != (x.shape[0], codes.shape[0]):
        raise ProgramError(f"step {step['id']} ({step.get('name')}): backend returned shape "
                           f"{tuple(out.shape)}, expected {(x.shape[0], codes.shape[0])}")
    return out, stats


# -- cycle model --------------------------------------------------------------------------------

def cycle_model(config: ArrayConfig):
    """``(fn(n, k, m) -> cycles, source)``: ``sw.perfmodel.gemm_cycles(config, n, k, m)`` when
    that module exists, else the compute-bound lower bound ``ArrayConfig.ideal_cycles``."""
    try:
        from . import perfmodel  # type: ignore[attr-defined]
    except ImportError:
        perfmodel = None
    fn = getattr(perfmodel, "gemm_cycles", None) if perfmodel is not None else None
    if fn is not None:
        def model(n, k, m):
            c = fn(config, n, k, m)
            return int(c["cycles"] if isinstance(c, dict) else c)
        return model, "sw.perfmodel.gemm_cycles"
    return (lambda n, k, m: config.ideal_cycles(n, k, m),
            "contract.array.ArrayConfig.ideal_cycles: compute-bound lower bound "
            "(ceil(M/cols) * ceil(N/rows) * max(K, rows*cols)); no weight-load, fill or drain "
            "cycles (no sw.perfmodel.gemm_cycles available)")


# -- executor -----------------------------------------------------------------------------------

@dataclass
class StepRecord:
    """What one step did over the whole run."""

    id: int
    name: str
    op: str
    where: str
    torch: list
    seconds: float = 0.0
    gemm: dict | None = None
    compared: int = 0
    mismatches: int = 0
    first_mismatch: dict | None = None
    nonfinite: int = 0
    backend_stats: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {"id": self.id, "name": self.name, "op": self.op, "where": self.where,
             "torch": self.torch, "seconds": round(self.seconds, 4),
             "nonfinite_outputs": self.nonfinite}
        if self.where == "array":
            d.update(gemm=self.gemm, compared_outputs=self.compared,
                     mismatches=self.mismatches, first_mismatch=self.first_mismatch)
            if self.backend_stats:
                d["backend_stats"] = self.backend_stats
        return d


@dataclass
class RunResult:
    predictions: torch.Tensor
    logits_bits: torch.Tensor
    logits: torch.Tensor
    steps: list
    backend: str
    compared: bool
    seconds: float
    values: dict | None = None

    @property
    def mismatches(self) -> int:
        return sum(r.mismatches for r in self.steps)


def _hexrow(t, width):
    digits = -(-width // 4)
    return [f"{int(v):0{digits}x}" for v in t.tolist()]


def _nonfinite(bits, fmt):
    return int(((((bits >> fmt.frac_bits) & fmt.exp_max_field) == fmt.exp_max_field)).sum())


@contextlib.contextmanager
def _threads(n):
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _host_step(program, step, args):
    """A host step; a step whose parameters do not fit its input (e.g. a window larger than the
    padded input) is a malformed program, reported as :class:`ProgramError` naming it."""
    try:
        return _HOST[step["op"]](program, step, *args)
    except (RuntimeError, ValueError, IndexError, OverflowError) as exc:
        if isinstance(exc, ProgramError):
            raise
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ProgramError(f"step {step['id']} ({step['op']} {step.get('name')}) cannot run on "
                           f"its input of per-sample shape {list(args[0].shape[1:])}: "
                           f"{text}") from None


def run_program(program: Program, x: torch.Tensor, *, backend: str = "golden",
                compare: bool | None = None, batch_size: int = 256, keep_values: bool = False,
                progress: Callable[[int, int], None] | None = None,
                backend_fn: Callable | None = None) -> RunResult:
    """Run ``program`` on float32 inputs ``x`` of shape ``(S, *input shape)``.

    ``backend`` names a registered backend (or pass ``backend_fn``, a ready gemm callable);
    ``compare`` (default: ``backend != "golden"``) also runs every array step on the golden
    model and counts differing output patterns. Samples are processed in batches of
    ``batch_size`` (results do not depend on it). ``keep_values`` keeps every value's bits."""
    check_inputs(x, tuple(program.input["shape"]), batch_size)
    fn = backend_fn if backend_fn is not None else get_backend(backend)(program.config)
    compare = (backend != "golden") if compare is None else bool(compare)
    records = [StepRecord(s["id"], s.get("name", ""), s["op"], s["where"], s.get("torch", []))
               for s in program.steps]
    for rec, s in zip(records, program.steps, strict=True):
        if s["where"] == "array":
            rec.gemm = {"n_per_sample": s["n"], "k": s["k"], "m": s["m"], "relu": s["relu"],
                        "bias": s["bias"] is not None,
                        "e0": s["e0"] if isinstance(s["e0"], int) else "per-channel"}
    preds, logits_bits, kept = [], [], {}
    start = time.perf_counter()
    total = x.shape[0]
    last_use = {}
    for i, s in enumerate(program.steps):
        for v in s["inputs"]:
            last_use[v] = i
    with _threads(1):
        for b0 in range(0, total, batch_size):
            xb = x[b0:b0 + batch_size]
            values = {}
            for step, rec in zip(program.steps, records, strict=True):
                t0 = time.perf_counter()
                if step["op"] == "input":
                    out = _host_input(program, step, xb)
                elif step["where"] == "host":
                    out = _host_step(program, step, [values[v] for v in step["inputs"]])
                else:
                    out = _run_array(program, step, rec, values[step["inputs"][0]], fn, compare,
                                     b0)
                declared = program.values[step["output"]]["shape"]
                if list(out.shape[1:]) != list(declared):
                    raise ProgramError(f"step {step['id']} ({step['op']} {step.get('name')}): "
                                       f"gives per-sample shape {list(out.shape[1:])}, the "
                                       f"program declares {declared}")
                rec.seconds += time.perf_counter() - t0
                rec.nonfinite += _nonfinite(out, program.fmt(step["output"]))
                values[step["output"]] = out
                if keep_values:
                    kept.setdefault(step["output"], []).append(out)
                for v in step["inputs"]:       # free what no later step reads
                    if last_use.get(v) == step["id"] and v != program.output:
                        values.pop(v, None)
            out_bits = values[program.output]
            logits_bits.append(out_bits)
            preds.append(argmax_logits(out_bits, program.fmt(program.output)))
            if progress is not None:
                progress(min(b0 + batch_size, total), total)
    lb = torch.cat(logits_bits)
    return RunResult(predictions=torch.cat(preds), logits_bits=lb,
                     logits=decode(lb, program.fmt(program.output)), steps=records,
                     backend=backend, compared=compare,
                     seconds=time.perf_counter() - start,
                     values={k: torch.cat(v) for k, v in kept.items()} if keep_values else None)


def _run_array(program, step, rec, a, fn, compare, sample0):
    groups = step.get("groups", 1)
    mg = step["m"] // groups
    ys = []
    for g in range(groups):
        x, codes, e0, bias = array_operands(program, step, a, g)
        y, stats = _call_backend(fn, program, step, x, codes, e0, bias)
        if stats is not None:
            rec.backend_stats.append(stats)
        if compare:
            _compare(program, step, rec, x, codes, e0, bias, y, sample0, g * mg)
        ys.append(y)
    y = ys[0] if groups == 1 else torch.cat(ys, dim=1)
    out_shape = program.values[step["output"]]["shape"]
    if step["op"] == "linear":
        return y.reshape(a.shape[0], *out_shape)
    return _to_channels_first(y, a.shape[0], tuple(out_shape[1:]))


def _compare(program, step, rec, x, codes, e0, bias, y, sample0, channel0):
    cfg = program.config
    want = gemm_golden(x, codes, e0, in_fmt=cfg.in_fmt, wbits=cfg.wbits, out_fmt=cfg.out_fmt,
                       bias_bits=bias, relu=bool(step["relu"]), config=cfg.dot_config)
    bad = y != want
    rec.compared += y.numel()
    count = int(bad.sum())
    if count and rec.first_mismatch is None:
        r, c = (int(i) for i in torch.nonzero(bad)[0])
        per = step["n"]
        rec.first_mismatch = {
            "sample": sample0 + r // per, "row": r, "output_channel": channel0 + c,
            "got": f"{int(y[r, c]):#x}", "want": f"{int(want[r, c]):#x}",
            "x_bits": _hexrow(torch.as_tensor(x[r]), cfg.in_fmt.width),
            "codes": [int(v) for v in codes[c]],
            "e0": int(e0 if isinstance(e0, int) else e0[c]),
            "bias": None if bias is None else f"{int(bias[c]):#x}"}
    rec.mismatches += count


def sample_array_step(program: Program, step: dict, a: torch.Tensor, fn: Callable, *,
                      rows: int = 16, channels: int = 8, seed: int = 0) -> dict:
    """Run sampled output tiles of one array step on the backend ``fn`` and on the golden
    model, on the step's input bits ``a``: ``rows`` random GEMM rows (output positions) and
    ``channels`` random output channels (for grouped convolutions: the channels of
    ``channels`` random groups, each group one GEMM). Returns ``{"compared", "mismatches",
    "first_mismatch", "rows", "channels", "backend_stats"}``."""
    g = torch.Generator().manual_seed(seed)
    groups = step.get("groups", 1)
    mg = step["m"] // groups
    rec = StepRecord(step["id"], step.get("name", ""), step["op"], step["where"], [])
    if groups == 1:
        pick = [(0, torch.randperm(mg, generator=g)[:channels].sort().values)]
    else:
        pick = [(int(grp), torch.arange(mg))
                for grp in torch.randperm(groups, generator=g)[:channels].sort().values]
    chosen_rows = None
    for grp, chans in pick:
        x, codes, e0, bias = array_operands(program, step, a, grp)
        if chosen_rows is None:
            chosen_rows = torch.randperm(x.shape[0], generator=g)[:rows].sort().values
        x = torch.as_tensor(x)[chosen_rows]
        idx = chans.numpy()
        codes = codes[idx]
        e0s = e0 if isinstance(e0, int) else e0[idx]
        b = None if bias is None else bias[idx]
        y, stats = _call_backend(fn, program, step, x, codes, e0s, b)
        if stats is not None:
            rec.backend_stats.append(stats)
        _compare(program, step, rec, x, codes, e0s, b, y, 0, grp * mg)
    return {"compared": rec.compared, "mismatches": rec.mismatches,
            "first_mismatch": rec.first_mismatch, "rows": int(len(chosen_rows)),
            "channels": int(sum(len(c) for _, c in pick)), "groups": len(pick),
            "backend_stats": rec.backend_stats}
