"""Study: how often a grid of block-RAM lanes (``binlane``) stalls for carries, measured.

Usage: ``python -m studies.bin_accumulator.study_bin_carries [--k 512,4096] [--trials 4]
[--seed 1]``.

A lane's 16-bit bin gives up a carry when its sum leaves ``[-2^15, 2^15)``, and the whole grid
then stalls one clock while the lane adds it 15 bins up (``binlane.BinLane``). How often
depends on the data: this script runs the lanes' arithmetic (the same rule, in NumPy) over a
4x6 grid for K terms and counts the clocks in which some lane carried, for activations of
several distributions against random weight codes (both signs, shifts 0-3). Writes
``build/bench/bin_carries.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
ROWS, COLS, BINS, BIN_BITS = 4, 6, 64, 16


def _decode(x16):
    """fp16 values -> (bin exponent, signed significand); inf/NaN are not drawn here."""
    bits = x16.view(np.uint16).astype(np.int64)
    field, frac = (bits >> 10) & 31, bits & 1023
    mag = np.where(field == 0, frac, frac | 1024)
    return np.maximum(field, 1), np.where(bits >> 15 == 1, -mag, mag)


def stalled_clocks(x16, codes):
    """Clocks (of ``K``) in which a lane of the grid carried: ``x16`` (K, rows) finite fp16
    activations, ``codes`` (K, cols) 3-bit weight codes (sign in bit 2)."""
    exp, sig = _decode(x16)
    shift, neg = codes & 3, codes >> 2
    rows, cols = x16.shape[1], codes.shape[1]
    bins = np.zeros((rows, cols, BINS), dtype=np.int64)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    unit = 1 << (BIN_BITS - 1)
    stalls = 0
    for k in range(len(x16)):
        b = exp[k][:, None] + shift[k][None, :]
        add = np.where(neg[k][None, :] == 1, -sig[k][:, None], sig[k][:, None])
        total = bins[r, c, b] + add
        carry = (total >= unit).astype(np.int64) - (total < -unit)
        bins[r, c, b] = total - carry * unit
        bins[r, c, b + BIN_BITS - 1] += carry          # the carry's own add (no chain here)
        stalls += bool(carry.any())
    return stalls


def cases(rng, k):
    """name -> (K, ROWS) fp16 activations."""
    normal = rng.standard_normal((k, ROWS))
    return {
        "N(0,1)": normal,
        "|N(0,1)| (after ReLU)": np.abs(normal),
        "uniform [0, 16) (digits pixels)": rng.integers(0, 17, (k, ROWS)).astype(float),
        "all 2047 * 2^-10 (worst: one bin, no cancellation)": np.full((k, ROWS), 2047 / 1024),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", default="512,4096", type=lambda s: [int(v) for v in s.split(",")])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows = []
    for k in args.k:
        for _ in range(args.trials):
            codes = rng.integers(0, 8, (k, COLS))
            worst_codes = codes & 3                      # positive weights for the worst case
            for name, x in cases(rng, k).items():
                wc = worst_codes if name.startswith("all") else codes
                rows.append({"k": k, "case": name,
                             "stalls": stalled_clocks(x.astype(np.float16), wc)})
    summary = {}
    for row in rows:
        summary.setdefault((row["case"], row["k"]), []).append(row["stalls"])
    lines = [f"# Carry stalls of a {ROWS}x{COLS} grid of bin lanes (seed {args.seed}, "
             f"{args.trials} trials)", "",
             "| activations | K | stalled clocks per trial | stalled fraction |",
             "|---|---|---|---|"]
    for (case, k), stalls in summary.items():
        lines.append(f"| {case} | {k} | {', '.join(map(str, stalls))} | "
                     f"{sum(stalls) / (k * len(stalls)):.2%} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bin_carries.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.out / "bin_carries.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
