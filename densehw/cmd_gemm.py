"""``densehw gemm``: bit-exact ``Y = round(X @ W.T + bias)`` on ``.npy`` files.

File conventions
----------------
``--x X.npy`` (N, K) and ``--bias B.npy`` (M,)
    float16/float32/float64 arrays hold values, each of which must be exactly representable in
    the format (``--fmt`` for X, the output format for the bias); unsigned integer arrays whose
    width equals the format's (uint8 for fp8_e5m2, uint16 for fp16/bf16, uint32 for fp32) hold
    raw bit patterns. Anything else is an error.
``--w W.npy`` (M, K)
    Float (or signed integer) weights, each exactly ``±2**e``, spanning at most ``2**(B-1)``
    consecutive exponents per tensor (or per row with ``--per-channel-e0``); ``e0`` is the
    smallest exponent present.
``--out Y.npy`` (N, M)
    Raw bit patterns of the output format as an unsigned integer array of its width, written
    atomically (nothing is left behind on error).
``--scales S.npy`` (N, ceil(K / 32))
    OCP MX block scales of X: uint8 E8M0 patterns (value ``2**(s - 127)``, 0xFF NaN), one per
    row and block of 32 columns; X then holds MX elements (``--fmt`` fp8_e4m3fn, fp8_e5m2,
    fp6_e3m2, fp6_e2m3 or fp4_e2m1; fp6/fp4 as uint8 raw patterns in the low bits). The golden
    backend applies any scale; an array (``--array-config`` with ``mx_block = 32``, or the
    simulators' default array with block scales) accepts its window ``[scale_min,
    scale_max]`` and reads blocks outside it as NaN (docs/arithmetic.md).

Backends
--------
``--backend NAME`` picks a backend of the registry :mod:`sw.backends` (``golden``, the reference
model; ``icarus``/``verilator``, the simulated array; ``board``, a board image over a serial
port), which offer their own options (``--stall``, ``--port`` ...). ``--array-config`` names the
array: the simulators build it, a board must hold it; without it a simulator builds one that
fits the GEMM and a board uses its own. A backend that cannot run here (simulator not installed,
board not answering) exits with code 3.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .cli import UserError, add_backend_arguments, backend_factory

HELP = ("bit-exact DenseShift (or, with --arith branches, multi-branch) GEMM on .npy files "
        "(golden model or simulated hardware)")


@dataclass(frozen=True)
class GemmJob:
    """One GEMM, validated: ``x_bits`` (N, K) int64 raw ``in_fmt`` patterns, ``codes`` (M, K)
    uint8 weight codes, ``e0`` an int or (M,) int64, ``bias_bits`` (M,) int64 raw ``out_fmt``
    patterns or None."""

    x_bits: object
    scales: object
    codes: object
    e0: object
    bias_bits: object
    in_fmt: object
    out_fmt: object
    wbits: int
    relu: bool


def add_arguments(p, *, backend: bool = True) -> None:
    """The options of ``densehw gemm`` (``backend=False``: without ``--backend`` and the
    backends' options, for ``densehw board gemm``)."""
    p.add_argument("--arith", default="shift", choices=("shift", "branches"),
                   help="shift: DenseShift codes, float activations (default); branches: "
                        "multi-branch {-1,+1} codes (densehw/gemm_branches.py)")
    p.add_argument("--fmt", metavar="FMT",
                   help="activation format: fp16, bf16, fp32, fp8_e5m2, fp8_e4m3fn; MX "
                        "elements fp6_e3m2, fp6_e2m3, fp4_e2m1 (required for shift)")
    p.add_argument("--wbits", required=True, metavar="B",
                   help="weight code width B, 2..5 (branches: weight branches, 1..8)")
    p.add_argument("--abits", metavar="K", help="branches: activation branches, 1..8")
    p.add_argument("--scale-x", metavar="S",
                   help="branches: scale of X (float path; with --scale-w)")
    p.add_argument("--scale-w", metavar="S|SW.npy",
                   help="branches: scale of W, one value or (M,) per channel (float path)")
    p.add_argument("--scale-fmt", metavar="FMT",
                   help="branches: format the scales must be exact in (default fp32)")
    p.add_argument("--x", required=True, type=Path, metavar="X.npy",
                   help="activations (N, K): float values or raw unsigned bit patterns")
    p.add_argument("--w", required=True, type=Path, metavar="W.npy",
                   help="weights (M, K): float values, each exactly ±2**e")
    p.add_argument("--bias", type=Path, metavar="B.npy",
                   help="bias (M,) in the output format: float values or raw bit patterns")
    p.add_argument("--scales", type=Path, metavar="S.npy",
                   help="MX block scales of X (N, ceil(K/32)): uint8 E8M0 patterns")
    p.add_argument("--relu", action="store_true", help="apply ReLU to the outputs")
    p.add_argument("--out-fmt", metavar="FMT",
                   help="output and bias format (default: --fmt; branches: fp32)")
    p.add_argument("--per-channel-e0", action="store_true",
                   help="one weight offset e0 per output row instead of per tensor")
    p.add_argument("--out", required=True, type=Path, metavar="Y.npy",
                   help="output (N, M): raw bit patterns, unsigned integers of the output width")
    p.add_argument("--array-config", type=Path, metavar="CFG.toml|CFG.json",
                   help="the array (ArrayConfig fields): simulators build it, a board must "
                        "hold it (default: simulators build 4x4 PEs with depth = next power of "
                        "two >= K; a board uses its own)")
    if backend:
        from sw.backends import registered_backends

        add_backend_arguments(p)
        p.add_argument("--backend", default="golden", metavar="NAME",
                       help=f"what computes Y (default golden; registered: "
                            f"{', '.join(registered_backends())})")


# -- loading and conversion ---------------------------------------------------------------------

def _load(path: Path, what: str):
    from contract.files import NpyError, load_npy

    try:
        return load_npy(path, what)
    except NpyError as exc:
        raise UserError(str(exc)) from None


def _raw_dtype(fmt):
    import numpy as np

    return {4: np.uint8, 6: np.uint8, 8: np.uint8, 16: np.uint16, 32: np.uint32,
            64: np.uint64}.get(fmt.width)


def _bits(arr, fmt, what: str, path: Path):
    """Values or raw patterns -> int64 raw patterns of ``fmt``."""
    import numpy as np

    from sw.fpbits import to_bits

    if arr.dtype.kind == "f" and arr.dtype.itemsize in (2, 4, 8):
        try:
            return to_bits(arr, fmt)
        except ValueError as exc:
            raise UserError(f"{what} {str(path)!r}: {exc}") from None
    raw = _raw_dtype(fmt)
    if raw is not None and arr.dtype == raw:
        if arr.size and int(arr.max()) >> fmt.width:
            raise UserError(f"{what} {str(path)!r} holds {int(arr.max()):#x}, not a "
                            f"{fmt.width}-bit {fmt.name} pattern")
        return arr.astype(np.int64)
    raw_name = f"{np.dtype(raw).name} raw {fmt.name} bit patterns" if raw else "no raw form"
    raise UserError(f"{what} {str(path)!r} has dtype {arr.dtype}; expected float16/float32/"
                    f"float64 values or {raw_name}")


def _shape(arr, ndim: int, what: str, path: Path, expect: str):
    if arr.ndim != ndim:
        raise UserError(f"{what} {str(path)!r} has shape {arr.shape}; expected {expect}")


def prepare(args) -> GemmJob:
    """Read and validate the inputs named by ``args``."""
    import numpy as np

    from contract import check_wbits, encode_weights, get_format

    in_fmt = get_format(args.fmt)
    out_fmt = in_fmt if args.out_fmt is None else get_format(args.out_fmt)
    try:
        wbits = check_wbits(int(args.wbits))
    except ValueError:
        raise UserError(f"--wbits must be an integer in [2, 5], not {args.wbits!r}") from None
    x = _load(args.x, "X")
    w = _load(args.w, "W")
    _shape(x, 2, "X", args.x, "(N, K)")
    _shape(w, 2, "W", args.w, "(M, K)")
    if w.shape[1] != x.shape[1]:
        raise UserError(f"W {str(args.w)!r} has shape {w.shape} but X {str(args.x)!r} has shape "
                        f"{x.shape}: expected W of shape (M, {x.shape[1]})")
    if x.shape[1] == 0 or w.shape[0] == 0:
        raise UserError(f"empty GEMM: X has shape {x.shape}, W has shape {w.shape}")
    x_bits = _bits(x, in_fmt, "X", args.x)
    if w.dtype.kind not in "fi":
        raise UserError(f"W {str(args.w)!r} has dtype {w.dtype}; expected float (or signed "
                        f"integer) weight values ±2**e")
    try:
        codes, e0 = encode_weights(w, wbits, per_channel=args.per_channel_e0)
    except ValueError as exc:
        raise UserError(f"W {str(args.w)!r}: {exc}") from None
    bias_bits = None
    if args.bias is not None:
        b = _load(args.bias, "bias")
        _shape(b, 1, "bias", args.bias, f"({w.shape[0]},)")
        if b.shape[0] != w.shape[0]:
            raise UserError(f"bias {str(args.bias)!r} has shape {b.shape}; expected "
                            f"({w.shape[0]},), one per row of W")
        bias_bits = _bits(b, out_fmt, "bias", args.bias)
    e0 = np.asarray(e0, dtype=np.int64) if args.per_channel_e0 else int(e0)
    return GemmJob(x_bits, _scales(args, in_fmt, x.shape), codes, e0, bias_bits, in_fmt,
                   out_fmt, wbits, bool(args.relu))


def _scales(args, in_fmt, shape):
    """``--scales`` as int64 E8M0 patterns (None without it)."""
    import numpy as np

    from contract.mx import MX_BLOCK, MX_ELEMENT_FORMATS

    if getattr(args, "scales", None) is None:
        return None
    if in_fmt.name not in MX_ELEMENT_FORMATS:
        raise UserError(f"--scales needs an MX element format (--fmt "
                        f"{', '.join(MX_ELEMENT_FORMATS)}), not {in_fmt.name}")
    s = _load(args.scales, "scales")
    want = (shape[0], -(-shape[1] // MX_BLOCK))
    if s.dtype != np.uint8 or s.shape != want:
        raise UserError(f"scales {str(args.scales)!r} are {s.dtype} {s.shape}; expected uint8 "
                        f"E8M0 patterns of shape {want} (one per row and block of {MX_BLOCK})")
    return s.astype(np.int64)


def save_atomic(path: Path, arr) -> None:
    """``np.save`` to a temporary file next to ``path``, then rename over it."""
    import numpy as np

    path = Path(path)
    if path.suffix != ".npy":
        raise UserError(f"output {str(path)!r} must end in .npy")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UserError(f"output directory {str(directory)!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def array_config_for(job: GemmJob, path):
    """The ``--array-config`` file's ArrayConfig, checked against the job's formats and ``B``
    (``None`` without a file)."""
    if path is None:
        return None
    from contract.array import load_array_config

    cfg = load_array_config(path)
    for what, have, want in (("in_fmt", cfg.in_fmt, job.in_fmt),
                             ("out_fmt", cfg.out_fmt, job.out_fmt)):
        if have != want:
            raise UserError(f"array config {str(path)!r} has {what} {have.name} but the GEMM "
                            f"needs {want.name}")
    if cfg.wbits != job.wbits:
        raise UserError(f"array config {str(path)!r} has wbits {cfg.wbits} but the GEMM uses "
                        f"--wbits {job.wbits}")
    return cfg


def stats_line(name: str, shape, stats: dict) -> str | None:
    """One line of what a backend measured (``None`` when it reports no cycles)."""
    if not isinstance(stats, dict) or "cycles_busy" not in stats:
        return None
    n, k, m = shape
    line = (f"gemm: {name} {stats.get('array', '')}: ({n}, {k}, {m}) = {n * k * m} MACs in "
            f"{stats['cycles_busy']} cycles busy, MAC utilization "
            f"{stats.get('mac_utilization', 0.0):.1%}")
    if "stall_act" in stats:
        line += (f", stalls act/wgt/res/drain {stats['stall_act']}/{stats['stall_wgt']}/"
                 f"{stats['stall_res']}/{stats['stall_drain']}")
    if stats.get("detail"):
        line += f", {stats['detail']}"
    return line


def run(args) -> int:
    import numpy as np

    if args.arith == "branches":
        from .gemm_branches import run as run_branches

        if getattr(args, "scales", None) is not None:
            raise UserError("--scales (MX block scales) needs --arith shift")

        return run_branches(args)
    for option in ("abits", "scale_x", "scale_w", "scale_fmt"):
        if getattr(args, option) is not None:
            raise UserError(f"--{option.replace('_', '-')} needs --arith branches")
    if args.fmt is None:
        raise UserError("--fmt is required (the activation format) unless --arith branches")
    from sw.backends import options_from

    factory = backend_factory(args.backend)
    job = prepare(args)
    cfg = array_config_for(job, getattr(args, "array_config", None))
    if cfg is not None and bool(cfg.mx_block) != (job.scales is not None):
        raise UserError(f"array config {str(args.array_config)!r} has mx_block {cfg.mx_block} "
                        f"but the GEMM {'has' if job.scales is not None else 'has no'} --scales")
    gemm = factory(cfg, **options_from(args.backend, args))
    start = time.perf_counter()
    x_bits, in_fmt, extra = job.x_bits, job.in_fmt, {}
    if job.scales is not None:
        if args.backend == "golden":
            from sw.mx import fold_scales

            lo, hi = (cfg.scale_min, cfg.scale_max) if cfg is not None else (-127, 127)
            x_bits, in_fmt = fold_scales(x_bits, job.scales, in_fmt, scale_min=lo,
                                         scale_max=hi)
        elif args.backend in ("icarus", "verilator"):
            extra = {"scales": job.scales}
        else:
            raise UserError(f"--scales runs on the golden, icarus and verilator backends, not "
                            f"{args.backend!r}")
    out = gemm(x_bits, job.codes, job.e0, in_fmt=in_fmt, wbits=job.wbits,
               out_fmt=job.out_fmt, bias_bits=job.bias_bits, relu=job.relu,
               config=None if cfg is None else cfg.dot_config, **extra)
    seconds = time.perf_counter() - start
    y, stats = out if isinstance(out, tuple) else (out, None)
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    n, k = job.x_bits.shape
    m = job.codes.shape[0]
    if y.shape != (n, m):
        raise UserError(f"backend {args.backend!r} returned shape {y.shape}, expected {(n, m)}")
    line = stats_line(args.backend, (n, k, m), stats)
    if line:
        print(line, file=sys.stdout)
    save_atomic(args.out, y.astype(_raw_dtype(job.out_fmt)))
    print(f"gemm: ({n}, {k}) x ({m}, {k}) -> {args.out} ({n}, {m}) {job.out_fmt.name} raw bits, "
          f"backend {args.backend}, {seconds:.3f} s", file=sys.stdout)
    return 0
