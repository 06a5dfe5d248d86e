"""The channel parameters of the PE array: each output channel's bias and ``e0``, per weight
bank and column, and those of the channel at the drain chain's head.

The weight loader writes a channel's two header words into the registers of its bank and
column (:data:`hw.loader.HeaderWriteSignature`). The finalizer reads the bias and ``e0`` of
the channel whose entry leaves the drain chain: the head's column runs ``0 .. cols - 1`` round
each row of the chain, and the bank is the drained tile's. With the ``"compact"`` floorplan
that is a ``cols``-way multiplexer on the head's column; with ``"spread"`` a ring of ``cols``
registers, loaded from the tile's bank at the capture and rotated every clock with the chain,
so that no wide multiplexer follows the head's position (:data:`HeadSignature` gives the
capture's next value, from the drain control).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from contract.array import ArrayConfig

from .layer import LayerSignature
from .loader import HeaderWriteSignature
from .stages import pick, replicas

__all__ = ["ChannelParams", "HeadSignature"]


def HeadSignature(config):
    """Where the drain chain's head is, from the drain control: ``bank`` and ``col`` of its
    entry (``"compact"``), or the drained tile's bank at the capture (``tile_bank``) and the
    next value of the capture (``load``) (``"spread"``; the chain moves every clock)."""
    return wiring.Signature({"bank": Out(1), "col": Out(range(max(2, config.cols))),
                             "tile_bank": Out(1), "load": Out(1)})


class ChannelParams(wiring.Component):
    """Bias and ``e0`` registers of both banks' channels; those of the head's channel.

    Members
    -------
    header : In(HeaderWriteSignature(config))
    head : In(HeadSignature(config))
    layer : In(LayerSignature(config))
        Its ``held.pc`` and ``held.e0``: without ``e0`` per channel every channel's ``e0`` is
        the layer's.
    bias : Out(out_fmt.width); e0 : Out(signed(e0_bits))
        Those of the channel of the chain's head.
    """

    def __init__(self, *, config):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        self._config = config
        super().__init__({
            "header": In(HeaderWriteSignature(config)),
            "head": In(HeadSignature(config)),
            "layer": In(LayerSignature(config)),
            "bias": Out(config.out_fmt.width),
            "e0": Out(signed(config.e0_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        C, e0_bits = cfg.cols, cfg.e0_bits
        bias_r = [[Signal(cfg.out_fmt.width, name=f"bias_b{b}_c{c}") for c in range(C)]
                  for b in range(2)]
        e0_r = [[Signal(signed(e0_bits), name=f"e0_b{b}_c{c}") for c in range(C)]
                for b in range(2)]
        en, word = self.header.en, self.header.word
        for b in range(2):
            for c in range(C):
                with m.If(en[b][c][0]):
                    m.d.sync += bias_r[b][c].eq(word)
                with m.If(en[b][c][1]):
                    m.d.sync += e0_r[b][c].eq(word)

        head = self.head
        if cfg.spread:
            bias_ring = [Signal(cfg.out_fmt.width, name=f"bias_ring{c}", reset_less=True)
                         for c in range(C)]
            e0_ring = [Signal(signed(e0_bits), name=f"e0_ring{c}", reset_less=True)
                       for c in range(C)]
            # the ring's load enables have their own registers (the ring is C * ~22
            # flip-flops: a LUT shared with the chain's control would be pulled into its midst)
            ring_load = replicas(m, head.load, 2, "ring_load")
            for c in range(C):
                load = ring_load[c * 2 // C]
                m.d.sync += [
                    bias_ring[c].eq(Mux(load, Mux(head.tile_bank, bias_r[1][c], bias_r[0][c]),
                                        bias_ring[(c + 1) % C])),
                    e0_ring[c].eq(Mux(load, Mux(head.tile_bank, e0_r[1][c], e0_r[0][c]),
                                      e0_ring[(c + 1) % C]))]
            bias_sel, e0_sel = bias_ring[0], e0_ring[0]
        else:
            bias_sel = Mux(head.bank, pick(bias_r[1], head.col), pick(bias_r[0], head.col))
            e0_sel = Mux(head.bank, pick(e0_r[1], head.col), pick(e0_r[0], head.col))
        held = self.layer.held
        m.d.comb += [self.bias.eq(bias_sel), self.e0.eq(Mux(held.pc, e0_sel, held.e0))]
        return m
