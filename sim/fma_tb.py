"""cocotb test of a floating-point MAC baseline array (``boards.fpmac.FmaArray``, top
``densehw_baseline``) against the SoftFloat reference ``boards.fpref.dot``.

Parameters in the environment: ``DENSEHW_FMA`` (JSON: ``in_fmt``, ``acc_fmt``, ``rows``,
``cols``), ``DENSEHW_SEED``, ``DENSEHW_DOTS`` (dot products per array PE), ``DENSEHW_RESULT``
(JSON file: vectors, mismatches, the first mismatch). Random dot products of lengths 1 .. 64
with input gaps and output stalls; per clock the bench writes just after the rising edge and
samples at the falling edge.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from boards import fpref
from boards.fpmac import SLOTS
from contract import get_format


def _operand(rng, fmt):
    """Moderate exponents mostly; subnormals, zeros, specials and random bits too."""
    r, sign = rng.random(), rng.getrandbits(1) << (fmt.width - 1)
    F = fmt.frac_bits
    if r < 0.03:
        top = fmt.exp_max_field << F
        return sign | rng.choice([0, top, top | 1, top | (1 << (F - 1))])
    if r < 0.10:
        return sign | rng.getrandbits(F)
    if r < 0.20:
        return rng.getrandbits(fmt.width)
    frac = rng.choice([0, (1 << F) - 1, rng.getrandbits(F), rng.getrandbits(F)])
    return sign | ((fmt.bias + rng.randrange(-8, 8)) << F) | frac


@cocotb.test()
async def test_random_dot_products(dut):
    cfg = json.loads(os.environ["DENSEHW_FMA"])
    seed, dots = int(os.environ.get("DENSEHW_SEED", 1)), int(os.environ["DENSEHW_DOTS"])
    i = get_format(cfg["in_fmt"])
    rows, cols = cfg["rows"], cfg["cols"]
    rng = random.Random(seed)
    beats, want = [], []
    shift_w = i.width * rows
    shift_last = i.width * (rows + cols)
    for _ in range(dots):
        k = rng.choice([1, 2, SLOTS - 1, SLOTS, SLOTS + 1, rng.randrange(1, 65)])
        xs = [[_operand(rng, i) for _ in range(rows)] for _ in range(k)]
        ws = [[_operand(rng, i) for _ in range(cols)] for _ in range(k)]
        for t in range(k):
            word = sum(v << (i.width * r) for r, v in enumerate(xs[t]))
            word |= sum(v << (shift_w + i.width * c) for c, v in enumerate(ws[t]))
            beats.append(word | (int(t == k - 1) << shift_last))
        want += [fpref.dot([x[r] for x in xs], [w[c] for w in ws], slots=SLOTS,
                           in_fmt=cfg["in_fmt"], acc_fmt=cfg["acc_fmt"])
                 for r in range(rows) for c in range(cols)]

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    got, bi, valid, idle = [], 0, False, 0
    re, fe = RisingEdge(dut.clk), FallingEdge(dut.clk)
    fired = False
    while len(got) < len(want) and idle < 20000:
        if not valid or fired:
            if bi < len(beats) and rng.random() > 0.15:
                dut.i__payload.value = beats[bi]
                dut.i__valid.value = valid = 1
            else:
                dut.i__valid.value = valid = 0
        ready = rng.random() > 0.2
        dut.o__ready.value = int(ready)
        await fe
        fired = valid and dut.i__ready.value == 1
        if ready and dut.o__valid.value == 1:
            got.append(int(dut.o__payload.value))
        bi += fired
        idle = 0 if fired or ready and dut.o__valid.value == 1 else idle + 1
        await re
    bad = [j for j, (g, w) in enumerate(zip(got, want, strict=False)) if g != w]
    first = None
    if bad:
        j = bad[0]
        first = {"result": j, "got": hex(got[j]), "want": hex(want[j])}
    report = {"vectors": len(want), "received": len(got), "mismatches": len(bad),
              "first": first, "seed": seed}
    if os.environ.get("DENSEHW_RESULT"):
        with open(os.environ["DENSEHW_RESULT"], "w") as f:
            json.dump(report, f)
    assert len(got) == len(want) and not bad, f"seed {seed}: {report}"
