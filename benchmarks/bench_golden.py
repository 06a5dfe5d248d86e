"""Golden-model speed against a float32 matmul of the same shape, in the same process.

Usage: ``python benchmarks/bench_golden.py [--repeat R] [--threads 1,2] [--resnet18]
[--out build/bench/golden.json]``.

For every case and every thread count (torch intra-op threads, given to the golden model's
``threads=`` and set for the float32 product) it prints the golden model's time
(:func:`sw.golden.gemm_golden`), the time of ``torch.mm`` on float32 matrices of the same
shape, their ratio (best of ``R`` runs each, the two alternating so that both see the same
machine; medians in the JSON) and, once per case, the multi-limb reference
(:func:`sw.golden.gemm_reference`, one thread) it replaces. ``--resnet18`` adds the array
layers of ResNet-18 at 224x224 (conv1 to fc, fp16, B=3, post-ReLU-like activations) through
:func:`sw.golden.conv_golden`: seconds per image and the float32 ``torch.nn.functional``
layers of the same shapes. Writes ``build/bench/golden.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from contract import get_format  # noqa: E402
from sw.fpbits import to_bits  # noqa: E402
from sw.golden import conv_golden, gemm_golden, gemm_reference  # noqa: E402

# (name, in_fmt, wbits, N, K, M, per-channel e0); every case has a bias
CASES = [
    ("fp16_b3_256x1024x256", "fp16", 3, 256, 1024, 256, False),
    ("fp16_b3_256x1024x256_perchannel", "fp16", 3, 256, 1024, 256, True),
    ("bf16_b4_256x1024x256", "bf16", 4, 256, 1024, 256, False),
    ("fp32_b5_256x1024x256", "fp32", 5, 256, 1024, 256, False),
]
TORCH_DTYPE = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}

# ResNet-18 at 224x224: (name, C, M, kernel, stride, padding, input H=W, repeats)
RESNET18 = [
    ("conv1", 3, 64, 7, 2, 3, 224, 1),
    ("layer1", 64, 64, 3, 1, 1, 56, 4),
    ("layer2.0.conv1", 64, 128, 3, 2, 1, 56, 1),
    ("layer2.conv", 128, 128, 3, 1, 1, 28, 3),
    ("layer2.0.downsample", 64, 128, 1, 2, 0, 56, 1),
    ("layer3.0.conv1", 128, 256, 3, 2, 1, 28, 1),
    ("layer3.conv", 256, 256, 3, 1, 1, 14, 3),
    ("layer3.0.downsample", 128, 256, 1, 2, 0, 28, 1),
    ("layer4.0.conv1", 256, 512, 3, 2, 1, 14, 1),
    ("layer4.conv", 512, 512, 3, 1, 1, 7, 3),
    ("layer4.0.downsample", 256, 512, 1, 2, 0, 14, 1),
    ("fc", 512, 1000, 1, 1, 0, 1, 1),
]


def _timed(fn, repeat):
    fn()                                                   # warm up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), float(np.median(times))


def _timed_pair(fa, fb, repeat):
    """Best and median of ``fa`` and ``fb``, run alternately so that both see the same
    machine."""
    fa()
    fb()
    ta, tb = [], []
    for _ in range(repeat):
        for fn, times in ((fa, ta), (fb, tb)):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return (min(ta), float(np.median(ta))), (min(tb), float(np.median(tb)))


def _activations(rng, shape, fmt_name, relu=False):
    v = rng.standard_normal(shape)
    if relu:
        v = np.maximum(v, 0.0)
    return to_bits(torch.from_numpy(v).to(TORCH_DTYPE[fmt_name]), get_format(fmt_name))


def _gemm_case(name, fmt_name, wbits, n, k, m, per_channel, threads, repeat, rng):
    fmt = get_format(fmt_name)
    x = _activations(rng, (n, k), fmt_name)
    codes = torch.from_numpy(rng.integers(0, 1 << wbits, size=(m, k)))
    e0 = torch.from_numpy(rng.integers(-8, 0, size=m)) if per_channel else -4
    b = _activations(rng, (m,), fmt_name)
    a32, b32 = torch.randn(n, k), torch.randn(k, m)
    rows = []
    ref = None
    for t in threads:
        torch.set_num_threads(t)
        (g_best, g_med), (f_best, f_med) = _timed_pair(
            lambda: gemm_golden(x, codes, e0, in_fmt=fmt, wbits=wbits, bias_bits=b),
            lambda: torch.mm(a32, b32), repeat)
        if ref is None:
            want = gemm_reference(x, codes, e0, in_fmt=fmt, wbits=wbits, bias_bits=b)
            assert torch.equal(want, gemm_golden(x, codes, e0, in_fmt=fmt, wbits=wbits,
                                                 bias_bits=b)), name
            ref = _timed(lambda: gemm_reference(x, codes, e0, in_fmt=fmt, wbits=wbits,
                                                bias_bits=b, threads=1), max(1, repeat // 3))
        rows.append({"name": name, "in_fmt": fmt_name, "wbits": wbits, "N": n, "K": k, "M": m,
                     "bias": True, "per_channel_e0": per_channel, "threads": t,
                     "macs": n * k * m, "golden_best_s": g_best, "golden_median_s": g_med,
                     "f32_mm_best_s": f_best, "f32_mm_median_s": f_med,
                     "ratio_best": g_best / f_best, "ratio_median": g_med / f_med,
                     "golden_mac_per_s": n * k * m / g_best,
                     "reference_1thread_best_s": ref[0]})
    return rows


def _resnet18(threads, repeat, rng):
    """ResNet-18 224x224 array layers through conv_golden, one image."""
    fmt = get_format("fp16")
    layers = []
    for name, c, m, kk, stride, pad, hw, times in RESNET18:
        x = _activations(rng, (1, c, hw, hw), "fp16", relu=name != "conv1")
        codes = torch.from_numpy(rng.integers(0, 8, size=(m, c, kk, kk)))
        e0 = torch.from_numpy(rng.integers(-6, -1, size=m))
        b = _activations(rng, (m,), "fp16")
        x32 = torch.randn(1, c, hw, hw)
        w32 = torch.randn(m, c, kk, kk)
        layers.append((name, times, x, codes, e0, b, kk, stride, pad, x32, w32))
    out = []
    for t in threads:
        torch.set_num_threads(t)
        total_g = total_f = 0.0
        macs = 0
        per_layer = []
        for name, times, x, codes, e0, b, kk, stride, pad, x32, w32 in layers:
            (g, _), (f, _) = _timed_pair(
                partial(conv_golden, x, codes, e0, in_fmt=fmt, wbits=3, kernel=kk,
                        stride=stride, padding=pad, bias_bits=b, relu=True),
                partial(F.conv2d, x32, w32, stride=stride, padding=pad), repeat)
            y = F.conv2d(x32, w32, stride=stride, padding=pad)
            mac = y.numel() * x32.shape[1] * kk * kk
            total_g += times * g
            total_f += times * f
            macs += times * mac
            per_layer.append({"layer": name, "repeats": times, "golden_s": g, "f32_conv_s": f,
                              "macs": mac})
        out.append({"threads": t, "golden_s_per_image": total_g,
                    "f32_conv_s_per_image": total_f, "ratio": total_g / total_f,
                    "macs_per_image": macs, "layers": per_layer})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                   help="comma-separated torch thread counts (default: 1 and torch's default)")
    p.add_argument("--resnet18", action="store_true", help="add the ResNet-18 224x224 layers")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "golden.json")
    args = p.parse_args(argv)
    try:
        threads = sorted({int(t) for t in args.threads.split(",")})
        if min(threads) < 1:
            raise ValueError
    except ValueError:
        print(f"bench_golden: --threads {args.threads!r}: expected positive integers, "
              f"comma-separated", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    results = []
    print(f"{'case':34s} {'thr':>3s} {'golden':>9s} {'f32 mm':>9s} {'ratio':>6s} "
          f"{'reference(1 thr)':>17s}")
    for case in CASES:
        for r in _gemm_case(*case, threads, args.repeat, rng):
            results.append(r)
            print(f"{r['name']:34s} {r['threads']:3d} {r['golden_best_s'] * 1e3:7.2f}ms "
                  f"{r['f32_mm_best_s'] * 1e3:7.2f}ms {r['ratio_best']:6.2f} "
                  f"{r['reference_1thread_best_s'] * 1e3:15.2f}ms")
    resnet = None
    if args.resnet18:
        resnet = _resnet18(threads, max(1, args.repeat // 3), rng)
        for r in resnet:
            print(f"resnet18_224 fp16 B=3 (conv_golden) threads={r['threads']}: "
                  f"{r['golden_s_per_image']:.3f} s/image, float32 layers "
                  f"{r['f32_conv_s_per_image']:.3f} s/image, ratio {r['ratio']:.2f}, "
                  f"{r['macs_per_image'] / 1e9:.2f} GMAC/image")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "torch": torch.__version__,
            "machine": platform.machine(), "processor": platform.processor(),
            "repeat": args.repeat, "threads": threads, "cpus": os.cpu_count(),
            "loadavg_1min_at_end": os.getloadavg()[0]}
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "results": results, "resnet18": resnet},
                              indent=2) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
