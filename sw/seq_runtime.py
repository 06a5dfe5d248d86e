"""Executor of sequence programs (:mod:`sw.seq_compile`) on an array backend.

Array GEMMs go to ``gemm`` (a backend callable with the signature of
:func:`sw.golden.gemm_golden`, e.g. ``sw.backends.get_backend(name)(config)``); host ops
follow :data:`sw.seq_compile.ROUNDING`: float64 operations in a fixed order, each result rounded
once to its format with :func:`sw.runtime.round_to_format`. With ``compare`` every GEMM is also
computed by :func:`sw.golden.gemm_golden` on the same inputs and differing output patterns are
counted (the run continues with the backend's outputs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .golden import gemm_golden
from .mps import mps_contract
from .runtime import check_inputs, decode, round_to_format
from .seq_compile import SeqProgram

__all__ = ["SeqRun", "run_seq_program"]


@dataclass
class SeqRun:
    predictions: torch.Tensor
    logits: torch.Tensor
    gemm_calls: int = 0
    compared: int = 0
    mismatches: int = 0
    first_mismatch: dict | None = None
    backend_cycles: int = 0
    backend_stats: list = field(default_factory=list)
    seconds: float = 0.0


def _sigmoid(a):
    return 1.0 / (1.0 + torch.exp(-a))


class _Executor:
    def __init__(self, program: SeqProgram, gemm, compare: bool, rec: SeqRun):
        self.p, self.gemm, self.compare, self.rec = program, gemm, compare, rec
        cfg = program.config
        self.cfg = cfg
        self.codes = {name: [program.codes(c) for c in spec["cores"]]
                      for name, spec in program.header["maps"].items()}

    def core_gemm(self, name, index, z):
        cfg = self.cfg
        core = self.p.header["maps"][name]["cores"][index]
        codes = self.codes[name][index]
        kw = {"in_fmt": cfg.in_fmt, "wbits": cfg.wbits, "out_fmt": cfg.out_fmt,
              "bias_bits": None, "relu": False, "config": cfg.dot_config}
        out = self.gemm(z, codes, core["e0"], **kw)
        stats = None
        if isinstance(out, tuple):
            out, stats = out
        y = out.to(torch.int64) if isinstance(out, torch.Tensor) else torch.from_numpy(
            np.asarray(out).astype(np.int64))
        self.rec.gemm_calls += 1
        if stats:
            self.rec.backend_cycles += int(stats.get("cycles", 0) or 0)
            self.rec.backend_stats.append({"map": name, "core": index, "n": int(z.shape[0]),
                                           **{k: v for k, v in stats.items()
                                              if isinstance(v, (int, float, str))}})
        if self.compare:
            want = gemm_golden(z, codes, core["e0"], **kw)
            bad = y != want
            self.rec.compared += y.numel()
            count = int(bad.sum())
            if count and self.rec.first_mismatch is None:
                r, c = (int(i) for i in torch.nonzero(bad)[0])
                self.rec.first_mismatch = {"map": name, "core": index, "row": r, "column": c,
                                           "got": f"{int(y[r, c]):#x}",
                                           "want": f"{int(want[r, c]):#x}"}
            self.rec.mismatches += count
        if cfg.out_fmt != cfg.in_fmt and index + 1 < len(self.codes[name]):
            y = round_to_format(decode(y, cfg.out_fmt), cfg.in_fmt)
        return y

    def apply_map(self, name, z):
        """Rows ``z`` (in_fmt bits) through every core of map ``name`` -> out_fmt bits."""
        spec = self.p.header["maps"][name]
        if spec["kind"] == "dense":
            return self.core_gemm(name, 0, z)
        y, _ = mps_contract(z, spec["in_factors"], spec["out_factors"], spec["ranks"],
                            lambda k, zz: self.core_gemm(name, k, zz.contiguous()))
        return y

    def run(self, x: torch.Tensor) -> torch.Tensor:
        p, cfg = self.p, self.cfg
        h_fmt, out_fmt = cfg.in_fmt, cfg.out_fmt
        hd = p.header
        s = x.shape[0]
        steps, stack, hsz = hd["steps"], hd["stack"], hd["hidden"]
        xb = round_to_format(x.to(torch.float64), h_fmt)
        xb = xb[:, :, :steps * stack].transpose(1, 2).reshape(s * steps, stack * x.shape[1])
        gx = decode(self.apply_map("ih", xb.contiguous()), out_fmt).reshape(s, steps, -1)
        b_ih = torch.from_numpy(p.blobs["bias_ih"]).to(torch.float64)
        b_hh = torch.from_numpy(p.blobs["bias_hh"]).to(torch.float64)
        h_bits = torch.zeros((s, hsz), dtype=torch.int64)
        h = torch.zeros((s, hsz), dtype=torch.float64)
        c = torch.zeros((s, hsz), dtype=torch.float64)
        total = torch.zeros((s, hsz), dtype=torch.float64)
        for t in range(steps):
            if t == 0:
                gh = torch.zeros((s, hd["gates"] * hsz), dtype=torch.float64)
            else:
                gh = decode(self.apply_map("hh", h_bits), out_fmt)
            if hd["cell"] == "lstm":
                a = (gx[:, t] + gh) + b_ih
                i, f, g, o = a.split(hsz, dim=1)
                c = decode(round_to_format(_sigmoid(f) * c + _sigmoid(i) * torch.tanh(g),
                                           "fp32"), "fp32")
                h_bits = round_to_format(_sigmoid(o) * torch.tanh(c), h_fmt)
            else:
                xr, xz, xn = (gx[:, t] + b_ih).split(hsz, dim=1)
                hr, hz, hn = (gh + b_hh).split(hsz, dim=1)
                r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
                n = torch.tanh(xn + r * hn)
                h_bits = round_to_format((1.0 - z) * n + z * h, h_fmt)
            h = decode(h_bits, h_fmt)
            total = total + h
        mean = decode(round_to_format(total / float(steps), h_fmt), h_fmt)
        w = torch.from_numpy(p.blobs["head.weight"]).to(torch.float64)
        acc = torch.zeros((s, w.shape[0]), dtype=torch.float64)
        for k in range(w.shape[1]):
            acc = acc + mean[:, k:k + 1] * w[:, k]
        acc = acc + torch.from_numpy(p.blobs["head.bias"]).to(torch.float64)
        return decode(round_to_format(acc, "fp32"), "fp32")


def run_seq_program(program: SeqProgram, x: torch.Tensor, gemm, *, compare: bool = False,
                    batch_size: int = 256) -> SeqRun:
    """Run ``program`` on float32 inputs ``(S, n_mels, frames)``; ``gemm`` is the array backend
    callable. Returns predictions (argmax; NaN ranks lowest, ties to the lowest index), fp32
    logits and the GEMM statistics."""
    check_inputs(x, tuple(program.header["input_shape"]), batch_size)
    rec = SeqRun(predictions=torch.empty(0), logits=torch.empty(0))
    ex = _Executor(program, gemm, compare, rec)
    start = time.perf_counter()
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        logits = torch.cat([ex.run(x[i:i + batch_size])
                            for i in range(0, x.shape[0], batch_size)])
    finally:
        torch.set_num_threads(saved)
    ranked = torch.where(torch.isnan(logits), torch.tensor(float("-inf"), dtype=logits.dtype),
                         logits)
    rec.predictions = torch.argmax(ranked, dim=1)
    rec.logits = logits
    rec.seconds = time.perf_counter() - start
    return rec
