"""cocotb test of an INT8 MAC PE (``boards.intmac.IntMacPE``, top ``densehw_int8pe``) against
a Python model of its contract: after ``acc <- (first ? 0 : acc) + a * b`` for the operands of
enabled advance ``k``, ``acc`` holds the sum two enabled advances later, wrapping modulo
``2**32``.

Parameters in the environment: ``DENSEHW_SEED``, ``DENSEHW_MACS`` (enabled advances),
``DENSEHW_RESULT`` (JSON file: checks, mismatches, the first mismatch). Operands are random
(the extremes -128 and 127 often), ``first`` starts a sum now and then, ``en`` is 0 on about
a fifth of the clocks; the bench writes just after the rising edge and samples at the falling
edge.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge


def _operand(rng):
    return rng.choice([-128, 127, -1, 0, rng.randrange(-128, 128), rng.randrange(-128, 128)])


@cocotb.test()
async def test_random_macs(dut):
    seed, macs = int(os.environ.get("DENSEHW_SEED", 1)), int(os.environ["DENSEHW_MACS"])
    rng = random.Random(seed)
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.en.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    sums, acc, checks, bad, first_bad = [], 0, 0, 0, None
    while len(sums) < macs:
        en = rng.random() > 0.2
        a, b, first = _operand(rng), _operand(rng), int(not sums or rng.random() < 0.1)
        dut.en.value, dut.a.value, dut.b.value, dut.first.value = int(en), a, b, first
        await RisingEdge(dut.clk)
        if en:
            acc = (0 if first else acc) + a * b
            acc = (acc + 2**31) % 2**32 - 2**31
            sums.append(acc)
        await FallingEdge(dut.clk)
        if en and len(sums) >= 3:
            got, want = dut.acc.value.to_signed(), sums[-3]
            checks += 1
            if got != want:
                bad += 1
                first_bad = first_bad or {"advance": len(sums) - 3, "got": got, "want": want}
    report = {"checks": checks, "mismatches": bad, "first": first_bad, "seed": seed}
    if os.environ.get("DENSEHW_RESULT"):
        with open(os.environ["DENSEHW_RESULT"], "w") as f:
            json.dump(report, f)
    assert checks > 0 and not bad, f"seed {seed}: {report}"
