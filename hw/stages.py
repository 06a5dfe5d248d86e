"""Register-stage helpers shared by the array's sequencing and its finalizer.

Each takes the ``Module`` to add its registers to and names them after ``name``, so that the
generated Verilog and the place-and-route reports say where a register belongs.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Signal

__all__ = ["registered", "delayed", "pipelined_add", "sext"]


def registered(m, value, name, *, reset_less=False):
    """``value`` one clock later, in a register named ``name``."""
    reg = Signal(len(value), name=name, reset_less=reset_less)
    m.d.sync += reg.eq(value)
    return reg


def delayed(m, value, clocks, name):
    """``value`` (any shape: taken as raw bits) ``clocks`` register stages later."""
    for i in range(clocks):
        reg = Signal(len(value), name=f"{name}_d{i}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


def sext(value, width):
    """The two's complement bits ``value`` sign-extended (or cut) to ``width`` bits."""
    if len(value) < width:
        value = Cat(value, value[-1].replicate(width - len(value)))
    return value[:width]


def pipelined_add(m, a, b, cin, *, stages, name, invert=None):
    """``a + b + cin`` (raw bits of equal width, the carry out dropped), registered: the sum of
    operands presented in clock ``t`` is out after the edge ending clock ``t + stages - 1``.
    With ``invert`` (one bit, presented with the operands) the sum's bits are complemented
    where it is 1, each piece before its register.

    The carry chain is cut into ``stages`` pieces, low piece first: piece ``j`` is added in
    stage ``j`` with the carry registered by the piece below it. The operand bits still to be
    added and the sum bits already found travel along in registers (a skewed pipeline)."""
    width = len(a)
    if len(b) != width or stages < 1:
        raise ValueError(f"pipelined_add needs operands of equal width and stages >= 1, "
                         f"not widths {width}, {len(b)} and stages {stages}")
    size = -(-width // stages)
    done = []                                  # sum pieces found, aligned to the current stage
    carry = cin
    for j in range(stages):
        lo, hi = j * size, min(width, (j + 1) * size)
        piece = Signal(max(1, hi - lo), name=f"{name}_p{j}")
        carry_out = Signal(name=f"{name}_c{j}")
        if hi > lo:
            total = a[lo:hi] + b[lo:hi] + carry
            flip = Const(0, 1) if invert is None else invert
            m.d.sync += [piece.eq(total[:hi - lo] ^ flip.replicate(hi - lo)),
                         carry_out.eq(total[hi - lo])]
        if invert is not None and j + 1 < stages:
            invert = delayed(m, invert, 1, f"{name}_inv{j}")
        done = [delayed(m, d, 1, f"{name}_s{j}_{i}") for i, d in enumerate(done)]
        if hi > lo:
            done.append(piece)
        if j + 1 < stages:
            a = Cat(Const(0, hi), delayed(m, a[hi:], 1, f"{name}_a{j}"))
            b = Cat(Const(0, hi), delayed(m, b[hi:], 1, f"{name}_b{j}"))
            carry = carry_out
    return Cat(*done)
