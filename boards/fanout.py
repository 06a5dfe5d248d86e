"""Register copies of a broadcast operand, so that no register drives a whole row or column of
PEs spread over the device (the baselines' counterpart of :func:`hw.stages.replicas`)."""

from __future__ import annotations

from amaranth.hdl import Signal

from hw.stages import KEEP

__all__ = ["SHARE", "copies", "copy_of"]

#: PEs fed by one copy of a row's or a column's operand register.
SHARE = 4


def copies(m, value, count, name, *, en=None, reset_less=False):
    """``count`` registers of ``value``'s shape that take ``value`` every clock (or when ``en``
    is 1), without a reset if ``reset_less``. They carry Yosys's ``keep`` (``boards.flow``
    passes it on to the flip-flops), so synthesis does not merge them back into one."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, not {count!r}")
    shape = value.shape() if hasattr(value, "shape") else 1
    regs = [Signal(shape, name=f"{name}_rep{i}", attrs=KEEP, reset_less=reset_less)
            for i in range(count)]
    if en is None:
        m.d.sync += [reg.eq(value) for reg in regs]
    else:
        with m.If(en):
            m.d.sync += [reg.eq(value) for reg in regs]
    return regs


def copy_of(regs, index):
    """The copy that feeds the PE at position ``index`` along the row or column."""
    return regs[index // SHARE]
