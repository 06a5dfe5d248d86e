"""``icarus`` and ``verilator`` backends of ``densehw gemm``: the GEMM on the simulated array.

:data:`BACKENDS` maps each name to ``fn(job, args) -> (N, M) raw output bits`` with the
signature of :data:`densehw.cmd_gemm.BACKENDS` (``job`` a ``GemmJob``). The backend builds the
array RTL for an :class:`~contract.array.ArrayConfig` (``--array-config`` TOML or JSON file, or
:func:`sim.array_driver.default_config` for the job: 4x4 PEs, the smallest power-of-two depth
that holds ``K``), runs the GEMM through the AXI ports in a cocotb simulation
(:func:`sim.array_driver.gemm_rtl`) and prints the cycles and MAC utilization read from the
array's performance counters. Options (:func:`add_arguments`): ``--array-config``, ``--stall``.

Importing this module is cheap (NumPy, Amaranth and cocotb load when a backend runs).
"""

from __future__ import annotations

import sys
from pathlib import Path

from contract.array import load_array_config

__all__ = ["BACKENDS", "add_arguments", "load_array_config", "array_config_for", "run_backend"]


def add_arguments(p) -> None:
    """Options of the simulation backends (add them to the ``densehw gemm`` parser)."""
    p.add_argument("--array-config", type=Path, metavar="CFG.toml|CFG.json",
                   help="array configuration for --backend icarus/verilator (ArrayConfig "
                        "fields; default: 4x4 PEs, depth = next power of two >= K)")
    p.add_argument("--stall", type=float, default=0.0, metavar="P",
                   help="simulation backends: hold each stream's valid/ready low with "
                        "probability P per clock (default 0)")


def array_config_for(job, args):
    """The configuration to simulate ``job`` on: ``args.array_config`` (checked against the
    job's formats and ``B``) or the default for the job."""
    from sim.array_driver import default_config

    path = getattr(args, "array_config", None)
    k = int(job.x_bits.shape[1])
    if path is None:
        return default_config(in_fmt=job.in_fmt, out_fmt=job.out_fmt, wbits=job.wbits, k=k,
                              e0=job.e0)
    cfg = load_array_config(path)
    for what, have, want in (("in_fmt", cfg.in_fmt, job.in_fmt),
                             ("out_fmt", cfg.out_fmt, job.out_fmt)):
        if have != want:
            raise ValueError(f"array config {str(path)!r} has {what} {have.name} but the GEMM "
                             f"needs {want.name}")
    if cfg.wbits != job.wbits:
        raise ValueError(f"array config {str(path)!r} has wbits {cfg.wbits} but the GEMM uses "
                         f"--wbits {job.wbits}")
    return cfg


def run_backend(sim: str, job, args):
    """Run ``job`` on the simulated array; prints one line of cycles and utilization."""
    from sim.array_driver import gemm_rtl

    cfg = array_config_for(job, args)
    stall = float(getattr(args, "stall", 0.0) or 0.0)
    y, st = gemm_rtl(job.x_bits, job.codes, job.e0, config=cfg, bias_bits=job.bias_bits,
                     relu=job.relu, sim=sim, stall=stall)
    n, k = job.x_bits.shape
    m = job.codes.shape[0]
    print(f"gemm: {sim} densehw_array {cfg.rows}x{cfg.cols} depth {cfg.depth} "
          f"({cfg.name}): ({n}, {k}, {m}) = {st['macs']} MACs in {st['cycles_busy']} cycles "
          f"busy, MAC utilization {st['mac_utilization']:.1%}, stalls act/wgt/res/drain "
          f"{st['stall_act']}/{st['stall_wgt']}/{st['stall_res']}/{st['stall_drain']}, "
          f"simulated {st['macs'] / max(st['layer_s'], 1e-9):.3g} MAC/s "
          f"({st['cycles_busy'] / max(st['layer_s'], 1e-9):.3g} clocks/s; build "
          f"{st['build_s']:.1f} s, simulator {st['sim_s']:.1f} s)", file=sys.stdout)
    return y


def _backend(sim: str):
    def fn(job, args):
        return run_backend(sim, job, args)
    fn.__name__ = f"{sim}_backend"
    fn.__doc__ = f"GEMM on the densehw_array RTL simulated by {sim}."
    return fn


BACKENDS = {"icarus": _backend("icarus"), "verilator": _backend("verilator")}
