"""Harness: the weight loader (:class:`hw.loader.WeightLoader`) never writes a bank in use.

The loader is driven by the real layer control (:class:`hw.layer.LayerControl`, from a free
``START`` with free ``N``, ``K``, ``M``, options and ``e0``; one layer per trace) and by a free
weight stream (any words, any ``tlast``, any ``tvalid``). The drain's release of a bank is free
too, under the one rule the drain keeps: it releases only a full bank (one whose loader and
drain flags differ). A bank is in use from the clock its fill is visible to the compute side
(``banks.fill_c``) until its release. The harness asserts:

* no weight-store write and no channel-header write goes to a bank in use (with the
  ``"spread"`` floorplan the store's write port is registered: a tile's last code lands in the
  clock its fill becomes visible, which the compute side reads two clocks later at the
  earliest, so there the rule is checked one clock later);
* the loader's and the compute side's copies of its flags agree (``fill == fill_c``), and a
  bank is filled only when it is free (the flag toggles only from equal flags).

Proved by SAT bounded model checking from reset (:func:`hw.formal.run_sat` ``seq``): at depth
40 a 2-column array loads three M tiles of up to three codes per channel, the third one waiting
for a release.

``fault`` (:data:`LOADER_FAULTS`) breaks the loader at its boundary, for the tests that check
that the proof can fail: ``ignore_free`` (the loader sees the drain's flags equal to its own:
every bank free, released or not), ``bank`` (the write address's bank bit flipped).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from contract.array import ArrayConfig

from ..layer import LayerControl, addr_bits
from ..loader import WeightLoader

__all__ = ["WeightLoaderProof", "LOADER_FAULTS"]

LOADER_FAULTS = ("ignore_free", "bank")


class WeightLoaderProof(wiring.Component):
    """Harness of the weight loader of ``config`` (module docstring); ``max_k`` bounds ``K``
    and ``max_m`` bounds ``M`` (to keep the bounded check short)."""

    def __init__(self, *, config, max_k=3, max_m=None, fault=None):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        if fault is not None and fault not in LOADER_FAULTS:
            raise ValueError(f"fault must be None or one of {', '.join(LOADER_FAULTS)}, "
                             f"not {fault!r}")
        self._config, self._fault = config, fault
        self._max_k, self._max_m = max_k, max_m or 3 * config.cols
        super().__init__({
            "start": In(1), "n": In(4), "k": In(6), "m": In(4), "opts": In(3),
            "wgt_valid": In(1), "wgt_word": In(32), "wgt_last": In(1), "release": In(2),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fault = self._config, self._fault
        m.submodules.layer = layer = LayerControl(config=cfg)
        m.submodules.loader = loader = WeightLoader(config=cfg)
        # -- the layer control, from a free START (one layer) ----------------------------------
        started = Signal()
        with m.If(self.start):
            m.d.sync += started.eq(1)
        m.d.comb += [
            Assume(~self.start | ~started),
            Assume(self.k <= self._max_k), Assume(self.m <= self._max_m),
            layer.start.eq(self.start), layer.n.eq(self.n), layer.k.eq(self.k),
            layer.m.eq(self.m), layer.e0.eq(0), layer.relu.eq(self.opts[0]),
            layer.bias_en.eq(self.opts[1]), layer.e0_pc.eq(self.opts[2]), layer.finish.eq(0),
        ]
        n_q, k_q, m_q = Signal(4), Signal(6), Signal(4)
        m.d.sync += [n_q.eq(self.n), k_q.eq(self.k), m_q.eq(self.m)]
        with m.If(started):                       # the sizes hold still after the pulse
            m.d.comb += [Assume(self.n == n_q), Assume(self.k == k_q), Assume(self.m == m_q)]
        wiring.connect(m, layer=layer.layer, loader=loader.layer)
        # -- a free weight stream ------------------------------------------------------------
        m.d.comb += [loader.wgt.valid.eq(self.wgt_valid),
                     loader.wgt.payload.word.eq(self.wgt_word),
                     loader.wgt.payload.last.eq(self.wgt_last)]
        # -- the drain's flags: a release toggles a full bank's flag --------------------------
        free = Signal(2)
        fill, fill_c = loader.banks.fill, loader.banks.fill_c
        full = fill ^ free
        for b in range(2):
            m.d.comb += Assume(~self.release[b] | full[b])
        m.d.sync += free.eq(free ^ self.release)
        m.d.comb += loader.banks.free.eq(fill if fault == "ignore_free" else free)
        # -- properties ------------------------------------------------------------------------
        in_use = fill_c ^ free
        bank = loader.store.addr[addr_bits(cfg)] ^ (fault == "bank")
        writes = loader.store.en.any()
        if cfg.spread:                            # the registered write port: a clock later
            w_q, bank_q = Signal(), Signal()
            m.d.sync += [w_q.eq(writes), bank_q.eq(bank)]
            in_use_q = Signal(2)
            m.d.sync += in_use_q.eq(in_use)
            m.d.comb += Assert(~writes | ~in_use_q.bit_select(bank, 1),
                               "a weight-store write to a bank in use")
        else:
            m.d.comb += Assert(~writes | ~in_use.bit_select(bank, 1),
                               "a weight-store write to a bank in use")
        for b in range(2):
            m.d.comb += Assert(~loader.header.en[b].as_value().any() | ~in_use[b],
                               "a channel-header write to a bank in use")
        fill_q, free_q = Signal(2), Signal(2)
        m.d.sync += [fill_q.eq(fill), free_q.eq(free)]
        m.d.comb += Assert(fill == fill_c, "the compute side's copy of the flags differs")
        for b in range(2):
            with m.If(fill[b] != fill_q[b]):
                m.d.comb += Assert(fill_q[b] == free_q[b], "a full bank filled again")
        return m
