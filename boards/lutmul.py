"""Multipliers built from LUTs and carry chains, for when a device's multiplier blocks are used
up: partial products summed by a balanced tree of adders (Yosys infers no multiplier block
from it, whatever the synthesis options)."""

from __future__ import annotations

from amaranth.hdl import Mux

__all__ = ["lut_multiply"]


def lut_multiply(m, a, b, *, name="mul", signed=False):
    """``a * b`` (unsigned, or two's complement when ``signed``) of ``len(a) + len(b)`` bits,
    as a sum of ``len(b)`` partial products (the last one subtracted when ``signed``)."""
    del m, name                                  # combinational: nothing to register
    k = len(b)
    av = a.as_signed() if signed else a
    rows = []
    for i in range(k):
        row = Mux(b[i], av, 0) << i
        rows.append(-row if (signed and i == k - 1) else row)
    while len(rows) > 1:
        rows = [rows[j] + rows[j + 1] if j + 1 < len(rows) else rows[j]
                for j in range(0, len(rows), 2)]
    return rows[0][:len(a) + k]
