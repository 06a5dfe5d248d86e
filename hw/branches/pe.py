"""The processing element of the multi-branch array: the ``k_w * k_a`` xnor-popcounts of a chunk,
combined with shifts into an exact unsigned accumulator.

For a chunk of ``lanes`` weight codes ``w`` and activation codes ``a`` (code ``l`` at bits
``[l*k, (l+1)*k)``, bit ``i`` of a code is branch ``i``, set for ``+1``), the PE adds::

    S = sum_i sum_j 2**(i+j) * popcount(xnor(W_i, A_j))

where ``W_i`` is bit ``i`` of every weight code and ``A_j`` bit ``j`` of every activation code.
Since ``xnor`` of two branches is ``(1 + b_w * b_a) / 2``, a lane adds
``(Q + q_w * q_a) / 2`` with ``Q = (2**k_w - 1) * (2**k_a - 1)``, so after ``K`` lanes
``2 * acc - K * Q`` is the exact dot product (the finalizer subtracts ``K * Q``). The bits of
equal weight ``2**(i+j)`` are counted together, and the counts are summed by balanced adder
trees (no multiplier).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BranchPE", "popcount", "weighted_popcount", "chunk_max"]


def _tree(m, terms, name):
    """Sum of ``terms`` (unsigned values) by a balanced tree of named adders."""
    level = 0
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms) - 1, 2):
            a, b = terms[i], terms[i + 1]
            s = Signal(max(len(a), len(b)) + 1, name=f"{name}_t{level}_{i // 2}")
            m.d.comb += s.eq(a + b)
            nxt.append(s)
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms, level = nxt, level + 1
    return terms[0]


def popcount(m, bits, name):
    """Number of set bits of ``bits`` (a balanced adder tree)."""
    return _tree(m, [bits[i] for i in range(len(bits))], name)


def chunk_max(lanes, wbits, abits):
    """Largest weighted popcount of a chunk: ``lanes * Q``."""
    return lanes * ((1 << wbits) - 1) * ((1 << abits) - 1)


def weighted_popcount(m, a, w, *, lanes, wbits, abits, name):
    """``S = sum_ij 2**(i+j) * popcount(xnor(W_i, A_j))`` of a chunk (combinational)."""
    by_weight = {}
    for i in range(wbits):
        for j in range(abits):
            for lane in range(lanes):
                bit = ~(w[lane * wbits + i] ^ a[lane * abits + j])
                by_weight.setdefault(i + j, []).append(bit)
    terms = []
    for d, bits in sorted(by_weight.items()):
        column = Signal(len(bits), name=f"{name}_x{d}")
        for n, bit in enumerate(bits):
            m.d.comb += column[n].eq(bit)
        count = popcount(m, column, f"{name}_p{d}")
        terms.append(count << d)
    total = _tree(m, terms, f"{name}_s")
    out = Signal(chunk_max(lanes, wbits, abits).bit_length(), name=name)
    m.d.comb += out.eq(total)
    return out


class BranchPE(wiring.Component):
    """One PE.

    Members
    -------
    a : In(lanes * abits)
        The chunk's activation codes (the row's).
    w : In(lanes * wbits)
        The chunk's weight codes (the column's).
    valid : In(1)
        ``a`` and ``w`` hold a chunk to add.
    first : In(1)
        With ``valid``: the chunk starts a tile (the accumulator restarts from it).
    acc : Out(acc_width)
        The sum of the chunks since the last ``first``, ``pipeline`` clocks after the last
        chunk was presented (modulo ``2**acc_width``).

    ``pipeline`` = 1: the accumulator takes ``S`` directly; 2: ``S`` is registered first.
    """

    def __init__(self, *, lanes, wbits, abits, acc_width, pipeline=2):
        for name, v in (("lanes", lanes), ("wbits", wbits), ("abits", abits),
                        ("acc_width", acc_width)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if pipeline not in (1, 2):
            raise ValueError(f"pipeline must be 1 or 2, not {pipeline!r}")
        self._lanes, self._wbits, self._abits = lanes, wbits, abits
        self._acc_width, self._pipeline = acc_width, pipeline
        super().__init__({
            "a": In(lanes * abits), "w": In(lanes * wbits), "valid": In(1), "first": In(1),
            "acc": Out(unsigned(acc_width)),
        })

    def _chunk(self, m):
        """The chunk's weighted popcount ``S`` (combinational)."""
        return weighted_popcount(m, self.a, self.w, lanes=self._lanes, wbits=self._wbits,
                                 abits=self._abits, name="chunk")

    def elaborate(self, platform):
        m = Module()
        s = self._chunk(m)
        valid, first = self.valid, self.first
        if self._pipeline == 2:
            s_reg = Signal(len(s), reset_less=True)
            valid, first = Signal(), Signal()
            m.d.sync += [s_reg.eq(s), valid.eq(self.valid), first.eq(self.first)]
            s = s_reg
        acc = Signal(self._acc_width, reset_less=True)
        with m.If(valid):
            m.d.sync += acc.eq((acc & ~first.replicate(self._acc_width)) + s)
        m.d.comb += self.acc.eq(acc)
        return m
