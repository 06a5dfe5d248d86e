"""MAC utilization and simulated throughput of the PE array RTL on a few GEMM shapes.

Usage: ``python benchmarks/bench_array_sim.py [--sim verilator|icarus] [--stall P]
[--rows R --cols C --depth D] [--quick]``. Runs the shapes back to back in one simulation of
``densehw_array`` (fp16, B=3 by default, 4x4 PEs, depth 512), checks every result against the
golden model, and reports per shape:

* ``mac_utilization = N*K*M / (rows * cols * CYCLES_BUSY)`` from the array's counter;
* ``model_cycles``: the cycle model of ``sw/perfmodel.py``, and its ratio to the measured
  ``CYCLES_BUSY`` (1 without stalls);
* ``sim_mac_per_s``: useful MACs per second of simulator wall time (cocotb + cocotbext-axi +
  the simulator; the bench's Python dominates), and simulated clocks per second.

Writes ``build/bench/array_sim.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from contract.array import ArrayConfig  # noqa: E402
from sim.array_driver import Layer, perf_summary, run_layers  # noqa: E402
from sim.payload import mixed_patterns  # noqa: E402
from sw.golden import gemm_golden  # noqa: E402

SHAPES = [(64, 512, 64), (128, 64, 64), (64, 16, 64), (16, 512, 16), (33, 100, 17),
          (256, 256, 8)]
QUICK = [(16, 64, 16), (33, 100, 17)]


def model_cycles(cfg: ArrayConfig, n: int, k: int, m: int) -> int:
    """The clock-exact cycle model of ``sw/perfmodel.py`` (no stalls)."""
    from sw.perfmodel import gemm_cycles

    return gemm_cycles(cfg, n, k, m)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    ap.add_argument("--stall", type=float, default=0.0)
    ap.add_argument("--fmt", default="fp16")
    ap.add_argument("--wbits", type=int, default=3)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--depth", type=int, default=512)
    ap.add_argument("--quick", action="store_true", help="two small shapes only")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "array_sim.json")
    args = ap.parse_args(argv)
    cfg = ArrayConfig(in_fmt=args.fmt, wbits=args.wbits, rows=args.rows, cols=args.cols,
                      depth=args.depth)
    rng = np.random.default_rng(2026)
    shapes = QUICK if args.quick else SHAPES
    layers = []
    for n, k, m in shapes:
        x = mixed_patterns(rng, cfg.in_fmt, (n, k)).astype(np.uint64)
        codes = rng.integers(0, 1 << cfg.wbits, (m, k)).astype(np.uint8)
        bias = mixed_patterns(rng, cfg.out_fmt, (m,)).astype(np.uint64)
        layers.append(Layer(x, codes, 0, bias, False))
    t0 = time.perf_counter()
    out = run_layers(cfg, layers, sim=args.sim, stall=args.stall, tag="bench",
                     raise_on_problem=True)
    rows = []
    for layer, res in zip(layers, out.results, strict=True):
        n, k, m = layer.shape
        want = gemm_golden(layer.x_bits, layer.codes, 0, in_fmt=cfg.in_fmt, wbits=cfg.wbits,
                           bias_bits=layer.bias_bits, config=cfg.dot_config).numpy()
        bad = int((res.y != want).sum())
        st = perf_summary(cfg, res)
        model = model_cycles(cfg, n, k, m)
        row = {"n": n, "k": k, "m": m, **st, "mismatches": bad,
               "model_cycles": model, "model_over_measured": model / max(1, st["cycles_busy"]),
               "sim_wall_s": res.wall_s,
               "sim_mac_per_s": st["macs"] / res.wall_s if res.wall_s else None,
               "sim_cycles_per_s": st["cycles_busy"] / res.wall_s if res.wall_s else None}
        rows.append(row)
        print(f"{n:4d}x{k:4d}x{m:4d}: {st['cycles_busy']:7d} cycles busy "
              f"(model {model}, {row['model_over_measured']:.3f}x), MAC utilization "
              f"{st['mac_utilization']:6.1%}, simulated {row['sim_mac_per_s']:.3g} MAC/s, "
              f"{row['sim_cycles_per_s']:.3g} cycles/s, mismatches {bad}")
    report = {
        "config": cfg.to_dict(), "name": cfg.name, "sim": args.sim, "stall": args.stall,
        "build_s": out.build_s, "total_wall_s": time.perf_counter() - t0,
        "python": platform.python_version(), "machine": platform.machine(), "shapes": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 1 if any(r["mismatches"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
