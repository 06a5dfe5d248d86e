"""Formal harness of the multi-branch PE against the integer definition of its dot product.

:class:`BranchPEProof` (sequential, proved by k-induction with :func:`hw.formal.run_sby`): free
inputs ``a``, ``w``, ``valid``, ``first``; the harness decodes every lane's codes to their odd
integers ``q = 2*c - (2**k - 1)``, multiplies them (a multiplier exists only in the harness) and
keeps a shadow accumulator of ``(lanes * Q + sum_l q_a[l] * q_w[l]) / 2`` per valid chunk,
restarted by ``first`` and delayed like the PE; asserted: the PE's accumulator equals the
shadow (modulo ``2**acc_width``). Hence ``2 * acc - K * Q`` is ``sum_k q_a[k] * q_w[k]``: the
PE computes the exact dot product from xnor-popcounts, for every input sequence.

``fault="lane0"`` flips the LSB of the PE's accumulator input when lane 0 holds the largest
codes of both operands (one point among all inputs), for the test that the proof can fail.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from .pe import BranchPE, chunk_max

__all__ = ["BranchPEProof", "PE_FAULTS"]

PE_FAULTS = ("lane0",)


class _FaultyPE(BranchPE):
    """:class:`BranchPE` with ``S`` corrupted at one input point (see the module docstring)."""

    def _chunk(self, m):
        s = super()._chunk(m)
        ab, wb = self._abits, self._wbits
        hit = (self.a[:ab] == (1 << ab) - 1) & (self.w[:wb] == (1 << wb) - 1)
        bad = Signal.like(s, name="chunk_bad")
        m.d.comb += bad.eq(s ^ hit)
        return bad


class BranchPEProof(wiring.Component):
    """Harness: :class:`hw.branches.pe.BranchPE` against the integer definition (see the module
    docstring)."""

    def __init__(self, *, lanes, wbits, abits, pipeline=2, fault=None):
        if fault is not None and fault not in PE_FAULTS:
            raise ValueError(f"fault must be None or one of {', '.join(PE_FAULTS)}, not "
                             f"{fault!r}")
        self._lanes, self._wbits, self._abits = lanes, wbits, abits
        self._pipeline, self._fault = pipeline, fault
        super().__init__({"a": In(lanes * abits), "w": In(lanes * wbits), "valid": In(1),
                          "first": In(1)})

    def elaborate(self, platform):
        m = Module()
        lanes, wb, ab = self._lanes, self._wbits, self._abits
        q = ((1 << wb) - 1) * ((1 << ab) - 1)
        width = chunk_max(lanes, wb, ab).bit_length() + 2
        cls = _FaultyPE if self._fault else BranchPE
        m.submodules.pe = pe = cls(lanes=lanes, wbits=wb, abits=ab, acc_width=width,
                                   pipeline=self._pipeline)
        m.d.comb += [pe.a.eq(self.a), pe.w.eq(self.w), pe.valid.eq(self.valid),
                     pe.first.eq(self.first)]
        # the integer definition: decoded odd values, their products, summed over the lanes
        prod_w = wb + ab + 2
        total = Signal(signed(prod_w + lanes.bit_length() + 1))
        terms = []
        for lane in range(lanes):
            qa = Signal(signed(ab + 2), name=f"qa{lane}")
            qw = Signal(signed(wb + 2), name=f"qw{lane}")
            m.d.comb += [qa.eq(2 * self.a[lane * ab:(lane + 1) * ab] - ((1 << ab) - 1)),
                         qw.eq(2 * self.w[lane * wb:(lane + 1) * wb] - ((1 << wb) - 1))]
            terms.append(qa * qw)
        m.d.comb += total.eq(sum(terms))
        s_ref = Signal(signed(len(total) + 1))
        m.d.comb += s_ref.eq((total + lanes * q) >> 1)
        valid, first, ref = self.valid, self.first, s_ref
        if self._pipeline == 2:
            ref = Signal.like(s_ref, reset_less=True)
            valid, first = Signal(), Signal()
            m.d.sync += [ref.eq(s_ref), valid.eq(self.valid), first.eq(self.first)]
        shadow = Signal(width, reset_less=True)
        with m.If(valid):
            m.d.sync += shadow.eq(Mux(first, 0, shadow) + ref)
        m.d.comb += Assert(pe.acc == shadow,
                           "PE accumulator differs from the integer dot product")
        return m
