"""``verilator`` and ``icarus`` runtime backends: program array steps on the simulated PE array.

Importing this module registers both names with :func:`sw.runtime.register_backend` (when the
simulator's executable is on ``PATH``; otherwise the name stays unregistered and
``densehw run --backend NAME`` reports it unavailable). ``densehw run`` imports it through
``densehw.cmd_run.PROVIDERS``.

A factory call ``factory(array_config)`` builds the ``densehw_array`` RTL of the program's
:class:`~contract.array.ArrayConfig` once (cached under ``build/sim_array/<config>/<sim>/build``
and reused by later runs while the RTL and the tool are unchanged) and returns
``gemm(x_bits, codes, e0, *, in_fmt, wbits, out_fmt, bias_bits, relu, config)`` with the
signature of :func:`sw.golden.gemm_golden`. Each call runs the whole GEMM (every sample of the
runtime's batch: ``N = samples * output positions``) in one simulator process through
:func:`sim.array_driver.gemm_rtl` and returns ``(bits, stats)``; ``stats`` holds the array's
counters (``cycles`` = ``cycles_busy``, stalls, ``mac_utilization``) and the seconds spent.
Since one simulator launch costs seconds, run programs with a large ``batch_size`` (the
runtime's default 256 puts up to 256 samples into each launch).
"""

from __future__ import annotations

import os
import shutil
import sys

from contract.array import ArrayConfig

__all__ = ["SIMULATORS", "make_factory", "simulator_present", "register"]

SIMULATORS = {"verilator": "verilator", "icarus": "iverilog"}


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


def make_factory(sim: str, *, stall: float = 0.0):
    """``factory(array_config) -> gemm`` running every GEMM on ``sim``'s RTL of that config.
    ``stall``: probability per clock that the bench holds a stream's valid/ready low."""
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}; expected one of {', '.join(SIMULATORS)}")
    if not 0 <= stall <= 0.9:
        raise ValueError(f"stall must be in [0, 0.9], not {stall!r}")

    def factory(array_config: ArrayConfig):
        from sim.array_driver import build_array, gemm_rtl

        if not isinstance(array_config, ArrayConfig):
            raise TypeError(f"the {sim} backend needs an ArrayConfig, not {array_config!r}")
        build_array(array_config, sim)          # once per RTL content; cached on disk
        calls = [0]

        def gemm(x_bits, codes, e0, *, in_fmt, wbits, out_fmt, bias_bits, relu, config):
            for what, have, want in (("in_fmt", in_fmt, array_config.in_fmt),
                                     ("out_fmt", out_fmt, array_config.out_fmt),
                                     ("wbits", wbits, array_config.wbits),
                                     ("config", config, array_config.dot_config)):
                if have != want:
                    raise ValueError(f"{sim} backend built for {array_config.name}: GEMM has "
                                     f"{what}={have!r}, the array has {want!r}")
            calls[0] += 1
            y, stats = gemm_rtl(_np(x_bits), _np(codes), _np(e0) if _is_array(e0) else int(e0),
                                config=array_config,
                                bias_bits=None if bias_bits is None else _np(bias_bits),
                                relu=bool(relu), sim=sim, stall=stall,
                                tag=f"runtime-{os.getpid()}-{calls[0]}")
            keep = ("cycles", "cycles_busy", "cycles_active", "stall_act", "stall_wgt",
                    "stall_res", "stall_drain", "bench_cycles", "macs", "mac_utilization",
                    "sim", "config", "build_s", "sim_s", "layer_s", "wall_s")
            out = {k: stats[k] for k in keep if k in stats}
            for k in ("build_s", "sim_s", "layer_s", "wall_s"):
                if k in out:
                    out[k] = round(float(out[k]), 3)
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


def register() -> list[str]:
    """Register the backends whose simulator is present; returns their names."""
    from sw.runtime import available_backends, register_backend

    done = []
    for sim in SIMULATORS:
        if simulator_present(sim):
            if sim not in available_backends():
                register_backend(sim, make_factory(sim),
                                 description=f"densehw_array RTL simulated by {sim} (cocotb)")
            done.append(sim)
    return done


register()
