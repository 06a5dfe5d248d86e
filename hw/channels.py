"""The channel parameters of the PE array: each output channel's bias and ``e0``, per weight
bank and column, and those of the channel at the drain chain's head.

The weight loader writes a channel's two header words into the registers of its bank and
column (:data:`hw.loader.HeaderWriteSignature`). The finalizer reads the bias and ``e0`` of
the channel whose entry leaves the drain chain: the head's column runs ``0 .. cols - 1`` round
each row of the chain, and the bank is the drained tile's. With the ``"compact"`` floorplan
(:attr:`~contract.array.ArrayConfig.ram_delays`) the parameters are two small block RAMs
indexed by bank and column, read through their synchronous port at the head's next position
(no flip-flop per parameter, and the head's entry meets a register, not a multiplexer); with
``"spread"`` they are registers per bank and column, and a ring of ``cols`` registers, loaded
from the tile's bank at the capture and rotated every clock with the chain, gives the head's,
so that no wide multiplexer follows the head's position (:data:`HeadSignature` gives the
capture's next value, from the drain control).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from contract.array import ArrayConfig

from .layer import LayerSignature
from .loader import HeaderWriteSignature
from .stages import replicas

__all__ = ["ChannelParams", "HeadSignature"]


def HeadSignature(config):
    """Where the drain chain's head is, from the drain control: ``bank`` and ``col`` of the
    entry it holds in the next clock (``"compact"``), or the drained tile's bank at the capture
    (``tile_bank``) and the next value of the capture (``load``) (``"spread"``; the chain moves
    every clock)."""
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
        if cfg.spread:
            bias_sel, e0_sel = self._ring(m)
        else:
            bias_sel, e0_sel = self._tables(m)
        held = self.layer.held
        m.d.comb += [self.bias.eq(bias_sel), self.e0.eq(Mux(held.pc, e0_sel, held.e0))]
        return m

    def _tables(self, m):
        """Bias and ``e0`` in a block RAM each, at ``bank * 2**col_bits + col``; the read
        address is the head's next position, so the data is the head's entry's."""
        cfg = self._config
        en, word, head = self.header.en, self.header.word, self.head
        col_bits = len(head.col)
        cells = [(b, c) for b in range(2) for c in range(cfg.cols)]
        # the written cell's address, from the one-hot enables (at most one is high)
        hit = {cell: en[cell[0]][cell[1]][0] | en[cell[0]][cell[1]][1] for cell in cells}
        w_addr = Cat(*[Cat(*[hit[b, c] for b, c in cells if (c >> k) & 1]).any()
                       for k in range(col_bits)],
                     Cat(*[hit[1, c] for c in range(cfg.cols)]).any())
        out = []
        for kind, shape in enumerate((unsigned(cfg.out_fmt.width), signed(cfg.e0_bits))):
            table = memory.Memory(shape=shape, depth=2 << col_bits, init=[],
                                  attrs={"ram_style": "block"})
            m.submodules[("bias_table", "e0_table")[kind]] = table
            write, read = table.write_port(), table.read_port(domain="sync")
            m.d.comb += [write.addr.eq(w_addr), write.data.eq(word[:len(write.data)]),
                         write.en.eq(Cat(*[en[b][c][kind] for b, c in cells]).any()),
                         read.addr.eq(Cat(head.col, head.bank))]
            out.append(read.data)
        return out

    def _ring(self, m):
        """The parameters in registers per bank and column, and the ring of the head's."""
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
        return bias_ring[0], e0_ring[0]
