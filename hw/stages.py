"""Register-stage and small-logic helpers shared by the array's components.

Each helper that makes registers takes the ``Module`` to add them to and names them after
``name``, so that the generated Verilog and the place-and-route reports say where a register
belongs.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Mux, Signal, unsigned
from amaranth.lib import memory

__all__ = ["registered", "delayed", "delayed_in_ram", "pipelined_add", "sext", "replicas",
           "KEEP", "RING_POINTER", "pick", "is_const", "equal_by_carries", "min_const",
           "times_const", "minus_floor0", "tile_size", "reduce_groups"]

#: Yosys's ``keep`` attribute (see :func:`replicas`).
KEEP = {"keep": 1}

#: The attribute of the pointer of a :func:`delayed_in_ram` ring: a free-running counter, the
#: one register that feeds back in a feed-forward pipeline (the delay is the same for every
#: pointer value, as the write and the read use the one pointer).
RING_POINTER = {"densehw_ring_pointer": 1}


def replicas(m, value, count, name, *, shape=1, reset_less=False):
    """``count`` registers of ``shape`` that all take ``value``: copies of one register, so that
    each drives a part of a large fan-out and can sit near it. They carry Yosys's ``keep``
    attribute; ``boards.flow`` passes it on to the flip-flops so that synthesis does not merge
    the copies back into one. Where ``value`` is itself also registered (a copy of an existing
    register), that register needs ``keep`` too (:data:`KEEP`): otherwise Yosys merges it into
    a copy, which then drives both fan-outs."""
    copies = [Signal(shape, name=f"{name}_rep{i}", attrs=KEEP, reset_less=reset_less)
              for i in range(count)]
    for copy in copies:
        m.d.sync += copy.eq(value)
    return copies


def pick(values, index):
    """``values[index]``, the list padded to ``2**len(index)`` entries (a fully covered case)."""
    values = list(values)
    size = 1 << len(index)
    return Array(values + [values[-1]] * (size - len(values)))[index]


def is_const(value, const):
    """``value == const``; for 0 as a reduction (lints clean where ``!x`` would not)."""
    return ~value.any() if const == 0 else value == const


def equal_by_carries(a, b):
    """``a == b`` as two magnitude comparisons (``a >= b`` and ``b >= a``): synthesis maps each
    to a carry chain, where a wide equality becomes several levels of LUTs."""
    return (a >= b) & (b >= a)


def min_const(value, const):
    """``min(value, const)``."""
    return Mux(value < const, value, const)


def times_const(value, const):
    """``value * const`` as a sum of shifted copies: the array has no multiplier anywhere (a
    ``*`` would be mapped to a DSP block)."""
    terms = [value << i for i in range(const.bit_length()) if const >> i & 1]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def minus_floor0(m, value, const, name, *, registered):
    """``max(value - const, 0)``, from the comparison ``value > const`` registered (one flip-flop,
    one carry chain per clock). ``registered``: the result is a register too (``value`` must
    hold still for two clocks before the result is used); else the subtraction is
    combinational (``value`` must hold still for one clock)."""
    more = Signal(name=f"{name}_more")
    if not registered:
        m.d.sync += more.eq(value > const)
        return Mux(more, value - const, 0)
    result = Signal(len(value), name=name)
    m.d.sync += [more.eq(value > const), result.eq(Mux(more, value - const, 0))]
    return result


def tile_size(m, rem, size, name, high=None):
    """``min(rem, size)``, ``rem <= size`` and the mask of the first ``min(rem, size)`` lanes,
    registered. ``rem`` is split at ``size.bit_length()`` bits: ``high`` (given, when a
    register already holds it) says its upper part is not zero, so that no wide comparison
    remains."""
    low = rem[:size.bit_length()]
    if high is None:
        high = rem[size.bit_length():].any()
    valid, last = Signal(range(size + 1), name=f"{name}_valid"), Signal(name=f"{name}_last")
    mask = Signal(size, name=f"{name}_mask")
    full = size == (1 << len(low)) - 1          # every value of ``low`` is <= size
    m.d.sync += [valid.eq(Mux(high, size, low if full else min_const(low, size))),
                 last.eq(~high if full else ~high & (low <= size)),
                 mask.eq(Cat(high | (low > i) for i in range(size)))]
    return valid, last, mask


def reduce_groups(m, bits, kind):
    """``bits`` reduced (``kind``: ``"any"`` or ``"all"``) in groups of four, registered: a
    short path now, and a narrow reduction of the result later."""
    out = Signal(max(1, -(-len(bits) // 4)), name=f"grp_{kind}")
    for i in range(0, len(bits), 4):
        part = bits[i:i + 4]
        m.d.sync += out[i // 4].eq(part.any() if kind == "any" else part.all())
    return out


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


def delayed_in_ram(m, value, clocks, name):
    """``value`` (raw bits) ``clocks`` clocks later, through a block RAM instead of
    ``len(value) * clocks`` flip-flops (for a device short of flip-flops and without shift-register
    LUTs, such as the iCE40): a ring of ``2**ceil(log2(clocks))`` entries, written every clock at
    a counter and read ``clocks - 1`` entries behind it through the RAM's synchronous read port.
    ``clocks`` must be at least 2 (the read never meets the write)."""
    if not isinstance(clocks, int) or isinstance(clocks, bool) or clocks < 2:
        raise ValueError(f"delayed_in_ram needs clocks >= 2, not {clocks!r}")
    depth = 1 << (clocks - 1).bit_length()
    ring = memory.Memory(shape=unsigned(len(value)), depth=depth, init=[],
                         attrs={"ram_style": "block"})
    m.submodules[name] = ring
    write, read = ring.write_port(), ring.read_port(domain="sync")
    at = Signal(range(depth), name=f"{name}_at", attrs=RING_POINTER)
    m.d.sync += at.eq(at + 1)
    m.d.comb += [write.addr.eq(at), write.data.eq(value), write.en.eq(1),
                 read.addr.eq(at + depth - (clocks - 1))]
    return read.data


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
