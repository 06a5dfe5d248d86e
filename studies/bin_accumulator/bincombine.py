"""One lane's bins combined into one exact two's-complement number: a study for small FPGAs.

**Not used by the array.** It completes the :mod:`binlane` study: a lane's value is
``sum(bin[b] * 2**b)``, one signed bin per exponent ``b``, and rounding needs that value as one
number. :class:`BinCombiner` takes the bins one per clock, lowest exponent first, and gives the
exact sum as an integer and the exponent of its least significant bit.

Contract (keyword parameters ``bin_bits``, default 16, and ``max_bins``, default 64; every port
sampled at the clock):

* A *sequence* is ``n`` bins (``1 <= n <= max_bins``) of exponents ``start, start + 1, ...,
  start + n - 1``, one per clock in which ``valid`` is high. Clocks with ``valid`` low are gaps
  and change nothing. Its first bin comes with ``first`` high and ``start`` (an unsigned index
  below ``max_bins``), its last with ``last`` high; both are high on the bin of a sequence of
  one. ``value`` is the bin, ``signed(bin_bits)``, any value of that shape.
* One clock after the ``last`` bin is sampled, ``out_valid`` is high for one clock and::

      out_total * 2**out_lsb == sum(value_i * 2**(start + i) for i in range(n))

  exactly (nothing rounded, nothing dropped). ``out_total`` is ``signed(max_bins + bin_bits +
  1)`` (``max_bins + bin_bits`` bits always suffice: its top bit is a copy of the sign) and
  ``out_lsb`` is signed, ``start + n - max_bins``, in ``[1 - max_bins, max_bins - 1]``.
* ``out_total`` and ``out_lsb`` hold the result from the ``out_valid`` clock until the next
  ``valid`` bin (they are the combiner's working registers, not a copy). The next sequence's
  ``first`` bin may come in the ``out_valid`` clock itself: sequences may follow one another
  with no dead clock, each giving its result in turn.
* A sequence that does not begin with ``first``, or is longer than ``max_bins``, gives an
  undefined result; so do ``out_total`` and ``out_lsb`` before the first result after reset.

The cost is one ``bin_bits + 1``-bit adder, a ``bin_bits``-bit carry register, a ``max_bins``-
bit shift register and the ``out_lsb`` counter, no shifter: 51 LUT4s, 26 carries and 88
flip-flops for the defaults (Yosys ``synth_ice40``, this component alone).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BinCombiner"]


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


class BinCombiner(wiring.Component):
    """Bins ``value * 2^(start + i)``, one per valid clock, summed exactly into ``out_total *
    2^out_lsb``; the contract is the module's (:mod:`bincombine`).

    Ports: ``valid``, ``value``, ``first``, ``last``, ``start`` in; ``out_valid`` (one clock
    after the ``last`` bin), ``out_total``, ``out_lsb`` out."""

    def __init__(self, *, bin_bits=16, max_bins=64):
        for name, value in (("bin_bits", bin_bits), ("max_bins", max_bins)):
            _positive(name, value)
        self._bin_bits, self._max_bins = bin_bits, max_bins
        super().__init__({
            "valid": In(1), "value": In(signed(bin_bits)),
            "first": In(1), "last": In(1), "start": In(range(max_bins)),
            "out_valid": Out(1),
            "out_total": Out(signed(max_bins + bin_bits + 1)),
            "out_lsb": Out(range(1 - max_bins, max_bins)),
        })

    def elaborate(self, platform):
        m = Module()
        width, depth = self._bin_bits, self._max_bins

        # The sum is formed from its least significant bit up, like a serial adder whose
        # operands arrive one bin (one bit position) at a time. After the bins v_0 .. v_i of a
        # sequence starting at exponent s the combiner holds emitted bits e_0 .. e_i and a
        # signed carry c_i such that
        #
        #     sum(v_j * 2^(s+j), j <= i) == sum(e_j * 2^(s+j), j <= i) + c_i * 2^(s+i+1)
        #
        # with c_(-1) = 0. Each bin forms t_i = c_(i-1) + v_i (both weigh 2^(s+i)) and splits it
        # as t_i = 2 * c_i + e_i: e_i = t_i[0], c_i = floor(t_i / 2) = t_i[1:] read as signed
        # (the arithmetic shift, which is floor division also for negative t_i: two's
        # complement t_i = 2 * (t_i >> 1) + t_i[0] for every t_i), so the equality goes on
        # holding exactly.
        #
        # e_i is final: every later term (c_i and the later bins) is a multiple of 2^(s+i+1),
        # and adding a multiple of 2^k to a number leaves its low k bits (its value mod 2^k,
        # which is what two's complement's low bits are, whatever the sign) unchanged. The e's
        # are the low bits of the sum and c_(n-1) its high part, signed: no sign fix-up.
        #
        # Bound: with v_i and c_(i-1) both in [-2^(w-1), 2^(w-1) - 1] (w = bin_bits), t_i lies in
        # [-2^w, 2^w - 2], so a (w + 1)-bit adder never overflows, and c_i = floor(t_i / 2) lies
        # again in [-2^(w-1), 2^(w-1) - 1]: the carry needs only w bits (|c| <= 2^(w-1)), and
        # by induction from c = 0 that holds for every bin of every sequence.
        # the state registers need no reset: every sequence begins with ``first``, which sets
        # them. Without one, clearing ``low`` on ``first`` maps to the flip-flops' synchronous
        # reset (iCE40 SB_DFFESR, gated by the enable ``valid`` as here), not to 64 LUTs
        carry = Signal(signed(width), reset_less=True)
        # e_i goes into the top of ``low`` and the register shifts right, so after n bins its
        # top n bits are e_0 .. e_(n-1) (e_(n-1), of weight 2^(s+n-1), at the top) and the
        # bits below are the zeros it started from: low[0] weighs 2^(s+n-max_bins).
        low = Signal(depth, reset_less=True)
        lsb = Signal(self.out_lsb.shape(), reset_less=True)

        # ``first`` starts from carry 0 and an empty ``low`` (an AND in front of the adder,
        # not a multiplexer after it): the previous sequence's state needs no clock to clear
        total = Signal(signed(width + 1))
        m.d.comb += total.eq(Mux(self.first, 0, carry) + self.value)
        with m.If(self.valid):
            m.d.sync += [carry.eq(total[1:].as_signed()),
                         low.eq(Cat(Mux(self.first, 0, low)[1:], total[0])),
                         # the exponent of low[0] after this bin: start + (bins so far) - depth
                         lsb.eq(Mux(self.first, self.start + (1 - depth), lsb + 1))]
        m.d.sync += self.out_valid.eq(self.valid & self.last)

        # out_total = low + carry * 2^depth, in units of 2^(s+n-depth): the e's and the carry
        # above them. The top bit repeats the carry's sign (out_total has a spare bit).
        m.d.comb += [self.out_total.eq(Cat(low, carry).as_signed()), self.out_lsb.eq(lsb)]
        return m
