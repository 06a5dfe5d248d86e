"""``icarus`` and ``verilator`` backends: array GEMMs on the simulated PE array RTL.

Importing this module registers both names in :mod:`sw.backends` (``densehw gemm``, ``densehw
run`` and :func:`sw.runtime.run_program` use them). A backend whose simulator executable is
neither on ``PATH`` nor beside the running Python (the venv's ``bin``) stays registered but
unavailable: ``--backend NAME`` then exits with code 3 and one line saying so.

The factory ``factory(array_config, *, stall=0.0)`` returns ``gemm(x_bits, codes, e0, *,
in_fmt, wbits, out_fmt, bias_bits, relu, config)`` with the signature of
:func:`sw.golden.gemm_golden`. With an :class:`~contract.array.ArrayConfig` (a program's, or
``densehw gemm --array-config``) it builds that array's ``densehw_array`` RTL once (cached under
``build/sim_array/<config>/<sim>/build`` and reused while the RTL and the tool are unchanged)
and refuses GEMMs of other formats, code widths or ``DotConfig``; with ``None`` each GEMM runs on
:func:`sim.array_driver.default_config` for it (4x4 PEs, the smallest power-of-two depth that
holds ``K``). Each call runs the whole GEMM (for the runtime, every sample of its batch: ``N =
samples * output positions``) in one simulator process through
:func:`sim.array_driver.gemm_rtl` and returns ``(bits, stats)``: the array's counters
(``cycles`` = ``cycles_busy``, stalls, ``mac_utilization``), ``array`` and ``detail`` (what ran,
simulation speed) and the seconds spent. One simulator launch costs seconds, so run programs
with a large ``batch_size``. ``--stall P`` holds each stream's valid/ready low with probability
``P`` per clock.
"""

from __future__ import annotations

import os
import shutil
import sys

from contract.array import ArrayConfig
from contract.mx import MX_BLOCK
from sw.backends import Option, register_backend

__all__ = ["SIMULATORS", "OPTIONS", "make_factory", "simulator_present", "register"]

SIMULATORS = {"verilator": "verilator", "icarus": "iverilog"}
OPTIONS = (Option("--stall", "hold each stream's valid/ready low with probability P per clock "
                  "(default 0)", type=float, default=0.0, metavar="P"),)
_KEEP = ("cycles", "cycles_busy", "cycles_active", "stall_act", "stall_wgt", "stall_res",
         "stall_drain", "bench_cycles", "macs", "mac_utilization", "sim", "config", "build_s",
         "sim_s", "layer_s", "wall_s")


def simulator_present(sim: str) -> bool:
    """True when the executable of ``sim`` (``verilator`` or ``icarus``) is on ``PATH`` or
    beside the running Python (a virtual environment's ``bin``, then put first on ``PATH``)."""
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}; expected one of {', '.join(SIMULATORS)}")
    if shutil.which(SIMULATORS[sim]) is not None:
        return True
    venv_bin = os.path.dirname(sys.executable)
    if shutil.which(SIMULATORS[sim], path=venv_bin) is None:
        return False
    os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    return True


def make_factory(sim: str):
    """``factory(array_config, *, stall=0.0) -> gemm`` running every GEMM on ``sim``'s RTL (see
    the module docstring)."""
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}; expected one of {', '.join(SIMULATORS)}")

    def factory(array_config: ArrayConfig | None, *, stall: float = 0.0):
        from sim.array_driver import build_array

        if array_config is not None and not isinstance(array_config, ArrayConfig):
            raise TypeError(f"the {sim} backend needs an ArrayConfig, not {array_config!r}")
        stall = float(stall or 0.0)
        if not 0 <= stall <= 0.9:
            raise ValueError(f"--stall must be in [0, 0.9], not {stall!r}")
        if array_config is not None:
            build_array(array_config, sim)          # once per RTL content; cached on disk
        calls = [0]

        def gemm(x_bits, codes, e0, *, in_fmt, wbits, out_fmt, bias_bits, relu, config,
                 scales=None):
            from sim.array_driver import default_config, gemm_rtl

            e0 = _np(e0) if _is_array(e0) else int(e0)
            cfg = array_config
            if cfg is None:
                cfg = default_config(in_fmt=in_fmt, out_fmt=out_fmt, wbits=wbits,
                                     k=int(_np(x_bits).shape[1]), e0=e0,
                                     mx_block=0 if scales is None else MX_BLOCK)
            for what, have, want in (("in_fmt", in_fmt, cfg.in_fmt),
                                     ("out_fmt", out_fmt, cfg.out_fmt),
                                     ("wbits", wbits, cfg.wbits)):
                if have != want:
                    raise ValueError(f"{sim} backend built for {cfg.name}: GEMM has "
                                     f"{what}={have!r}, the array has {want!r}")
            if config is not None and config != cfg.dot_config:
                raise ValueError(f"{sim} backend built for {cfg.name}: GEMM has "
                                 f"config={config!r}, the array has {cfg.dot_config!r}")
            calls[0] += 1
            y, stats = gemm_rtl(_np(x_bits), _np(codes), e0, config=cfg,
                                bias_bits=None if bias_bits is None else _np(bias_bits),
                                relu=bool(relu), sim=sim, stall=stall,
                                tag=f"runtime-{os.getpid()}-{calls[0]}",
                                scales=None if scales is None else _np(scales))
            out = {k: stats[k] for k in _KEEP if k in stats}
            for k in ("build_s", "sim_s", "layer_s", "wall_s"):
                if k in out:
                    out[k] = round(float(out[k]), 3)
            layer_s = max(float(stats.get("layer_s", 0.0)), 1e-9)
            out["array"] = f"densehw_array {cfg.rows}x{cfg.cols} depth {cfg.depth} ({cfg.name})"
            out["detail"] = (f"simulated {stats['macs'] / layer_s:.3g} MAC/s "
                             f"({stats['cycles_busy'] / layer_s:.3g} clocks/s; build "
                             f"{stats['build_s']:.1f} s, simulator {stats['sim_s']:.1f} s)")
            return y, out

        gemm.__name__ = f"{sim}_gemm"
        return gemm

    factory.__name__ = f"{sim}_factory"
    return factory


def _is_array(v) -> bool:
    import numpy as np
    return np.ndim(v) > 0


def _np(v):
    import numpy as np
    if hasattr(v, "detach"):                    # torch tensor
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.int64)


def _missing(sim: str):
    def missing():
        if simulator_present(sim):
            return None
        return (f"{SIMULATORS[sim]} is not installed (make setup installs it); use "
                f"--backend golden")
    return missing


def register() -> list[str]:
    """Register both backends (again, if they were removed); returns the names of those whose
    simulator is present."""
    for sim in SIMULATORS:
        register_backend(sim, make_factory(sim), replace=True, options=OPTIONS,
                         missing=_missing(sim),
                         description=f"densehw_array RTL simulated by {sim} (cocotb)")
    return [sim for sim in SIMULATORS if simulator_present(sim)]


register()
