"""``densehw gemm --arith branches``: multi-branch ``{-1, +1}`` GEMMs on ``.npy`` files.

File conventions
----------------
``--x X.npy`` (N, K) and ``--w W.npy`` (M, K)
    int8 or int16 arrays of odd integers, X in ``[-(2**abits - 1), 2**abits - 1]`` and W in
    ``[-(2**wbits - 1), 2**wbits - 1]`` (``contract.branches``); any other dtype or value is an
    error naming the first bad index.
``--scale-x S`` and ``--scale-w S|SW.npy`` (together, or neither)
    Positive finite scales, exactly representable in ``--scale-fmt`` (default fp32): one value
    for X, one value or an ``(M,)`` float array (per output channel) for W.
``--out Y.npy`` (N, M)
    Without scales the exact integer results as int64; with scales the raw bit patterns of
    ``round_out(sx * sw[m] * (X @ W.T)[n, m])`` in ``--out-fmt`` (default fp32) as an unsigned
    integer array of its width. Written atomically.

``--relu`` sets negative results to 0 (integers) or ``+0`` (float path).

Backends
--------
:data:`BACKENDS` maps a name to ``callable(job: BranchJob, args) -> (N, M) array`` (int64
results, or raw output patterns when ``job.scaled``): ``golden`` (:mod:`sw.branches`), and
``icarus`` / ``verilator``, the generated ``densehw_branch_array`` simulated through its AXI
ports (:func:`sim.branch_driver.branch_gemm_rtl`) on the ``--array-config`` file (``arith =
"branches"``) or a default array for the job (4x4 PEs, 8 lanes, depth the next power of two
``>= K``), with ``--stall P``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .cli import UserError

__all__ = ["BranchJob", "BACKENDS", "register_backend", "prepare", "run"]


@dataclass(frozen=True)
class BranchJob:
    """One validated branch GEMM: ``x_codes`` (N, K) and ``w_codes`` (M, K) uint8 codes; with
    scales (``scaled``) raw ``scale_fmt`` patterns ``scale_x`` (int) and ``scale_w`` (int or
    (M,) int64), and the output format ``out_fmt``."""

    x_codes: object
    w_codes: object
    wbits: int
    abits: int
    scale_x: object = None
    scale_w: object = None
    scale_fmt: object = None
    out_fmt: object = None
    relu: bool = False

    @property
    def scaled(self) -> bool:
        return self.scale_x is not None


def _golden(job: BranchJob, args):
    from sw.branches import branch_gemm, branch_gemm_scaled

    if job.scaled:
        return branch_gemm_scaled(job.x_codes, job.w_codes, wbits=job.wbits, abits=job.abits,
                                  scale_x=job.scale_x, scale_w=job.scale_w,
                                  scale_fmt=job.scale_fmt, out_fmt=job.out_fmt,
                                  relu=job.relu).numpy()
    return branch_gemm(job.x_codes, job.w_codes, wbits=job.wbits, abits=job.abits,
                       relu=job.relu).numpy()


def array_config_for(job: BranchJob, args):
    """The branch array to simulate ``job`` on: ``--array-config`` (a file with ``arith =
    "branches"``, checked against the job) or :func:`sim.branch_driver.default_branch_config`."""
    from contract.branch_array import load_branch_array_config
    from sim.branch_driver import default_branch_config

    k = int(job.x_codes.shape[1])
    path = getattr(args, "array_config", None)
    if path is None:
        return default_branch_config(wbits=job.wbits, abits=job.abits, k=k,
                                     out_fmt=job.out_fmt, scale_fmt=job.scale_fmt)
    cfg = load_branch_array_config(path)
    where = f"array config {str(path)!r}"
    for what, have, want in (("wbits", cfg.wbits, job.wbits), ("abits", cfg.abits, job.abits)):
        if have != want:
            raise UserError(f"{where} has {what} {have} but the GEMM uses --{what} {want}")
    if job.scaled:
        if not cfg.float_path:
            raise UserError(f"{where} has no float path (out_fmt none) but the GEMM has scales")
        for what, have, want in (("out_fmt", cfg.out_fmt, job.out_fmt),
                                 ("scale_fmt", cfg.scale_fmt, job.scale_fmt)):
            if have != want:
                raise UserError(f"{where} has {what} {have.name} but the GEMM needs "
                                f"{want.name}")
    return cfg


def _rtl(sim: str):
    def fn(job: BranchJob, args):
        from sim.branch_driver import branch_gemm_rtl

        cfg = array_config_for(job, args)
        y, st = branch_gemm_rtl(job.x_codes, job.w_codes, config=cfg, scale_x=job.scale_x,
                                scale_w=job.scale_w, relu=job.relu, sim=sim,
                                stall=float(getattr(args, "stall", 0.0) or 0.0))
        print(f"gemm: {sim} densehw_branch_array {cfg.rows}x{cfg.cols}x{cfg.lanes} lanes depth "
              f"{cfg.depth} ({cfg.name}): {st['macs']} MACs in {st['cycles_busy']} cycles busy, "
              f"MAC utilization {st['mac_utilization']:.1%} (build {st['build_s']:.1f} s, "
              f"simulator {st['sim_s']:.1f} s)", file=sys.stdout)
        return y
    fn.__name__ = f"{sim}_branch_backend"
    return fn


BACKENDS: dict[str, Callable[[BranchJob, object], object]] = {
    "golden": _golden, "icarus": _rtl("icarus"), "verilator": _rtl("verilator")}


def register_backend(name: str, fn: Callable[[BranchJob, object], object]) -> None:
    """Make ``--arith branches --backend name`` run ``fn(job, args)``."""
    BACKENDS[name] = fn


def _kbits(text, option):
    from contract.branches import KBITS_RANGE

    lo, hi = KBITS_RANGE
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = None
    if value is None or not lo <= value <= hi:
        raise UserError(f"{option} must be an integer in [{lo}, {hi}] for --arith branches, "
                        f"not {text!r}")
    return value


def _codes(arr, kbits, what, path):
    import numpy as np

    from contract.branches import encode_branches

    if arr.dtype not in (np.int8, np.int16):
        raise UserError(f"{what} {str(path)!r} has dtype {arr.dtype}; expected int8 or int16 odd "
                        f"integers")
    try:
        return encode_branches(arr, kbits, what="value")
    except ValueError as exc:
        raise UserError(f"{what} {str(path)!r}: {exc}") from None


def _scale_bits(text, fmt, what, m):
    """``--scale-x``/``--scale-w``: a number, or (``--scale-w``) an ``.npy`` file of (M,)
    floats -> raw patterns (int, or (M,) int64)."""
    import numpy as np

    from sw.fpbits import classify, to_bits

    from .cmd_gemm import _load

    if what == "--scale-w" and text.endswith(".npy"):
        arr = _load(Path(text), "--scale-w")
        if arr.dtype.kind != "f":
            raise UserError(f"--scale-w {text!r} has dtype {arr.dtype}; expected float scales")
        if arr.shape != (m,):
            raise UserError(f"--scale-w {text!r} has shape {arr.shape}; expected ({m},), one "
                            f"scale per row of W")
        values = arr.astype(np.float64)
    else:
        try:
            values = np.array(float(text))
        except ValueError:
            raise UserError(f"{what} must be a number{' or an .npy file' if m else ''}, not "
                            f"{text!r}") from None
    try:
        bits = to_bits(values, fmt)
    except ValueError as exc:
        if values.ndim:
            raise UserError(f"{what} {text!r}: {exc}") from None
        raise UserError(f"{what} is {float(values)!r}, which {fmt.name} cannot represent "
                        f"exactly") from None
    import torch

    cls = classify(torch.as_tensor(np.atleast_1d(bits)), fmt)
    bad = (cls.sign | ~cls.finite_nonzero).numpy()
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        where = f" at index {i}" if values.ndim else ""
        raise UserError(f"{what}{where} is {float(np.atleast_1d(values)[i])!r}; expected a "
                        f"finite positive scale")
    return bits if values.ndim else int(bits)


def prepare(args) -> BranchJob:
    """Read and validate the inputs named by ``args`` (``--arith branches``)."""
    from contract import get_format
    from contract.branches import DEFAULT_OUT_FMT, DEFAULT_SCALE_FMT, check_scale_fmt

    from .cmd_gemm import _load, _shape

    for option in ("bias", "per_channel_e0", "fmt"):
        if getattr(args, option, None):
            raise UserError(f"--{option.replace('_', '-')} is not used with --arith branches")
    wbits = _kbits(args.wbits, "--wbits")
    abits = _kbits(args.abits, "--abits")
    if (args.scale_x is None) != (args.scale_w is None):
        raise UserError("--scale-x and --scale-w go together (the float path) or not at all "
                        "(exact integers)")
    x = _load(args.x, "X")
    w = _load(args.w, "W")
    _shape(x, 2, "X", args.x, "(N, K)")
    _shape(w, 2, "W", args.w, "(M, K)")
    if w.shape[1] != x.shape[1]:
        raise UserError(f"W {str(args.w)!r} has shape {w.shape} but X {str(args.x)!r} has shape "
                        f"{x.shape}: expected W of shape (M, {x.shape[1]})")
    if x.shape[0] == 0 or x.shape[1] == 0 or w.shape[0] == 0:
        raise UserError(f"empty GEMM: X has shape {x.shape}, W has shape {w.shape}")
    x_codes = _codes(x, abits, "X", args.x)
    w_codes = _codes(w, wbits, "W", args.w)
    if args.scale_x is None:
        for option in ("out_fmt", "scale_fmt"):
            if getattr(args, option, None):
                raise UserError(f"--{option.replace('_', '-')} needs the float path "
                                f"(--scale-x, --scale-w)")
        return BranchJob(x_codes, w_codes, wbits, abits, relu=bool(args.relu))
    try:
        scale_fmt = check_scale_fmt(args.scale_fmt or DEFAULT_SCALE_FMT, "--scale-fmt")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    out_fmt = get_format(args.out_fmt or DEFAULT_OUT_FMT)
    sx = _scale_bits(args.scale_x, scale_fmt, "--scale-x", 0)
    sw = _scale_bits(args.scale_w, scale_fmt, "--scale-w", w.shape[0])
    return BranchJob(x_codes, w_codes, wbits, abits, sx, sw, scale_fmt, out_fmt,
                     bool(args.relu))


def run(args) -> int:
    import numpy as np

    from .cmd_gemm import _raw_dtype, save_atomic

    backend = BACKENDS.get(args.backend)
    if backend is None:
        raise UserError(f"unknown backend {args.backend!r} for --arith branches; expected one "
                        f"of {', '.join(BACKENDS)}")
    job = prepare(args)
    start = time.perf_counter()
    y = np.asarray(backend(job, args))
    seconds = time.perf_counter() - start
    (n, k), m = job.x_codes.shape, job.w_codes.shape[0]
    if y.shape != (n, m):
        raise UserError(f"backend {args.backend!r} returned shape {y.shape}, expected {(n, m)}")
    if job.scaled:
        save_atomic(args.out, y.astype(_raw_dtype(job.out_fmt)))
        what = f"{job.out_fmt.name} raw bits"
    else:
        save_atomic(args.out, y.astype(np.int64))
        what = "int64"
    print(f"gemm: branches w{job.wbits}a{job.abits} ({n}, {k}) x ({m}, {k}) -> {args.out} "
          f"({n}, {m}) {what}, backend {args.backend}, {seconds:.3f} s", file=sys.stdout)
    return 0
