"""Golden-model throughput: multiply-accumulates per second on fixed GEMMs.

Usage: ``python benchmarks/bench_golden.py [--repeat R] [--threads T]``. Prints one line per case
and writes ``build/bench/golden.json``. The golden model runs torch single-threaded whatever
``--threads`` says (it sets one intra-op thread for its own duration); ``--threads`` only sets
what the rest of the process uses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from contract import get_format  # noqa: E402
from sw.fpbits import to_bits  # noqa: E402
from sw.golden import gemm_golden  # noqa: E402

# (name, in_fmt, out_fmt, wbits, N, K, M, bias, per-channel e0)
CASES = [
    ("fp16_b3_256x1024x256", "fp16", "fp16", 3, 256, 1024, 256, True, False),
    ("fp16_b3_256x1024x256_perchannel", "fp16", "fp16", 3, 256, 1024, 256, True, True),
    ("bf16_b4_256x1024x256", "bf16", "bf16", 4, 256, 1024, 256, True, False),
    ("fp32_b5_128x1024x128", "fp32", "fp32", 5, 128, 1024, 128, True, False),
]


def _case(name, in_name, out_name, wbits, n, k, m, bias, per_channel, repeat, rng):
    in_fmt, out_fmt = get_format(in_name), get_format(out_name)
    xs = rng.standard_normal((n, k))
    xs = torch.from_numpy(xs).to(torch.bfloat16 if in_name == "bf16" else torch.float16
                                 if in_name == "fp16" else torch.float32)
    x = to_bits(xs, in_fmt)
    codes = torch.from_numpy(rng.integers(0, 1 << wbits, size=(m, k)))
    e0 = torch.from_numpy(rng.integers(-8, 0, size=m)) if per_channel else -4
    b = to_bits(torch.from_numpy(rng.standard_normal(m)).to(xs.dtype), out_fmt) if bias else None
    gemm_golden(x, codes, e0, in_fmt=in_fmt, wbits=wbits, out_fmt=out_fmt, bias_bits=b)  # warm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        gemm_golden(x, codes, e0, in_fmt=in_fmt, wbits=wbits, out_fmt=out_fmt, bias_bits=b)
        times.append(time.perf_counter() - t)
    best, median = min(times), float(np.median(times))
    macs = n * k * m
    return {"name": name, "in_fmt": in_name, "out_fmt": out_name, "wbits": wbits,
            "N": n, "K": k, "M": m, "bias": bias, "per_channel_e0": per_channel,
            "macs": macs, "best_s": best, "median_s": median,
            "mac_per_s_best": macs / best, "mac_per_s_median": macs / median}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "golden.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    results = []
    for case in CASES:
        r = _case(*case, args.repeat, rng)
        results.append(r)
        print(f"{r['name']:34s} best {r['best_s'] * 1e3:8.1f} ms  median "
              f"{r['median_s'] * 1e3:8.1f} ms  {r['mac_per_s_median']:.3g} MAC/s (median)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "torch": torch.__version__,
            "machine": platform.machine(), "processor": platform.processor(),
            "repeat": args.repeat, "loadavg_1min_at_end": os.getloadavg()[0],
            "cpus": os.cpu_count()}
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
