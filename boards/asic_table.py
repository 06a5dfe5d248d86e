"""The ASIC table: every design mapped to standard cells and timed, at the array sizes asked.

Usage: ``python -m boards.asic_table [--sizes 8x8,16x16] [--designs shift,fma16,...]
[--scheduler tcp://HOST:PORT | --jobs N] [--cached-only] [--docs]``.

Each (design, size) is a cached job of :mod:`boards.sweep` on the ``asic`` board with the liberty
flow on (:mod:`boards.liberty`: OSU 0.18 um typical corner, OpenSTA, pre-layout), so a rerun
only builds what changed. The record of a point: standard-cell ``area_um2`` (memories excluded:
their bits in ``memory_bits``), ``std_cells``, ``ffs``, ``critical_path_ns``, ``fmax_mhz``,
``gmacs`` (PEs x Fmax) and ``gmacs_per_mm2``, and ``ratio_vs_best_fp16`` (GMAC/s per mm^2 over
the better fp16 FMA array's of the same size). Writes ``<out>/asic.json`` and ``asic.md``;
``--docs`` also writes ``docs/results/asic.json`` and the table between the markers of
``docs/synthesis.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import subprocess
import sys
import time

from boards.report import write_atomic
from boards.sweep import job_key, make_job, run_jobs

__all__ = ["DESIGNS", "design_spec", "asic_job", "record", "add_ratios", "table", "main"]

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: The designs of the table: label (the specs are :func:`design_spec`).
DESIGNS = {
    "shift": "shift array, exact fp16, B=3",
    "fma16": "fp16 FMA, fp16 acc",
    "fma16-32": "fp16 FMA, fp32 acc",
    "bf16": "bf16 FMA, fp32 acc",
    "int8": "int8 MAC (Yosys multiplier)",
    "int8-lut": "int8 MAC (LUT-style multiplier)",
    "naive": "shift + naive one-clock fp16 adder",
}
#: The competent fp16 designs the ratio is taken against (the better one per size).
FP16_DESIGNS = ("fma16", "fma16-32")


def design_spec(design: str, rows: int, cols: int, *, depth: int = 512) -> dict:
    """The :mod:`boards.specs` spec of ``design`` at ``rows x cols``."""
    if design == "shift":
        return {"kind": "array", "config": {"in_fmt": "fp16", "wbits": 3, "rows": rows,
                                            "cols": cols, "depth": depth}}
    fma = {"fma16": ("fp16", "fp16"), "fma16-32": ("fp16", "fp32"), "bf16": ("bf16", "fp32")}
    if design in fma:
        i, a = fma[design]
        return {"kind": "fma-array", "in_fmt": i, "acc_fmt": a, "rows": rows, "cols": cols}
    if design in ("int8", "int8-lut"):
        return {"kind": "int8-array", "mult": "lut" if design == "int8-lut" else "dsp",
                "rows": rows, "cols": cols}
    if design == "naive":
        return {"kind": "shift-fpadd", "fmt": "fp16", "wbits": 3, "rows": rows, "cols": cols}
    raise ValueError(f"unknown design {design!r}; expected one of {', '.join(DESIGNS)}")


def asic_job(design: str, rows: int, cols: int, *, root) -> dict:
    """The cached job of one point: generic-gate synthesis, then the liberty flow."""
    job = make_job(design_spec(design, rows, cols), "asic", "generic", seeds=(), explore=True,
                   root=root)
    job["pnr"] = True                     # on the ASIC board: the liberty flow
    job["workdir"] = str(pathlib.Path(root) / job_key(job))
    return job
