"""The shift-add PE array core: its components joined together.

Streams use ``lib.stream`` here; :mod:`hw.array_top` maps them to AXI4-Stream names and adds
the register block. Framing, tiling and the meaning of every control input are specified in
``docs/array.md`` and ``contract/array.py``. The components, one concept each::

    start, n, k, m, e0 -> LayerControl (hw.layer): START checks, the layer's registers
    wgt -> WeightLoader (hw.loader) -> weight stores; channel headers -> ChannelParams
    act -> TileSequencer (hw.sequencer) -> beats -> PEGrid (hw.grid): stores, row aligners, PEs
    PE states -> DrainChain (hw.drain), shifted by DrainControl (hw.drain), with the head's
        bias and e0 (hw.channels) -> Finalizer (hw.finalizer) (| fifo_cut) -> output FIFO -> res

The weight loader fills bank ``t % 2`` with M tile ``t`` while the compute side runs M tile
``t - 1`` from the other bank over all N tiles; the drain releases a bank once the last N
tile of its M tile has left the chain. The latencies are those of
``contract.array.ArrayConfig`` (``capture_latency``, ``final_latency``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from contract.array import ArrayConfig

from .channels import ChannelParams
from .drain import LOAD_SHARE, DrainChain, DrainControl, out_fifo_depth
from .finalizer import Finalizer
from .grid import PEGrid
from .layer import LayerControl
from .loader import WeightLoader, wgt_layout
from .outfifo import OutputFIFO
from .pe import pe_state_layout
from .sequencer import TileSequencer, act_layout
from .stages import registered
from .wstore import FAMILIES

__all__ = ["PEArray", "act_layout", "wgt_layout", "res_layout"]


def res_layout(config):
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")
    return data.StructLayout({"bits": unsigned(config.out_fmt.width), "last": unsigned(1)})


class PEArray(wiring.Component):
    """The array core.

    Members
    -------
    act : In(stream.Signature(act_layout(config)))
        Activation beats (``rows`` lanes, ``last`` on beat ``K-1`` of every tile).
    wgt : In(stream.Signature(wgt_layout()))
        Weight-stream words (bias, e0, packed codes per channel; ``last`` ends a channel).
    res : Out(stream.Signature(res_layout(config)))
        Results, row-major per tile, ``last`` ends a tile.
    start : In(1)
        Pulse: start a layer of ``n``, ``k``, ``m``, ``e0`` (which must hold still from the
        pulse until two clocks after it: the register block applies its next write four clocks
        after the pulse at the earliest) with the options ``relu``, ``bias_en``, ``e0_pc``
        (sampled at the pulse). A pulse while a layer runs or is starting is refused with the
        START_BUSY error (``busy`` is read one clock after the pulse with the ``"spread"``
        floorplan, two clocks after it with ``"compact"``).
    n, k, m : In(unsigned(32)); e0 : In(signed(32)); relu, bias_en, e0_pc : In(1)
    busy, done : Out(1)
        A layer runs; the last result beat of the last layer was accepted (until ``start``).
    err : Out(6)
        One-cycle error pulses, bit order of ``contract.array.ERROR``.
    ev : Out(6)
        One-cycle counter events: busy, active, stall_act, stall_wgt, stall_res, stall_drain
        (the order of the ``rc`` registers).
    started : Out(1)
        Pulse: a layer starts (a START accepted; the register block restarts its counters).

    ``family``: ``"ecp5"`` builds the weight stores from ECP5 block RAM primitives
    (:class:`hw.wstore.WeightStore`); ``None`` (default) infers them. The behaviour is the same.
    """

    def __init__(self, *, config, family=None):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
        self._config = config
        self._family = family
        super().__init__({
            "act": In(stream.Signature(act_layout(config))),
            "wgt": In(stream.Signature(wgt_layout())),
            "res": Out(stream.Signature(res_layout(config))),
            "start": In(1),
            "n": In(unsigned(32)),
            "k": In(unsigned(32)),
            "m": In(unsigned(32)),
            "e0": In(signed(32)),
            "relu": In(1),
            "bias_en": In(1),
            "e0_pc": In(1),
            "busy": Out(1),
            "done": Out(1),
            "err": Out(6),
            "ev": Out(6),
            "started": Out(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.layer = layer = LayerControl(config=cfg)
        m.submodules.loader = loader = WeightLoader(config=cfg)
        m.submodules.sequencer = seq = TileSequencer(config=cfg)
        m.submodules.grid = grid = PEGrid(config=cfg, family=self._family)
        m.submodules.drain = chain = DrainChain(
            rows=cfg.rows, cols=cfg.cols, entry=pe_state_layout(cfg),
            load_share=LOAD_SHARE if cfg.spread else None)
        m.submodules.drain_ctl = drain = DrainControl(config=cfg)
        m.submodules.channels = channels = ChannelParams(config=cfg)
        m.submodules.finalizer = fin = Finalizer(config=cfg)
        # with fifo_cut (large devices) a block RAM read through its own output register
        fifo_kind = OutputFIFO if cfg.fifo_cut else fifo.SyncFIFOBuffered
        extra = {"family": self._family} if cfg.fifo_cut else {}
        m.submodules.out_fifo = out_fifo = fifo_kind(
            width=cfg.out_fmt.width + 2, depth=out_fifo_depth(cfg), **extra)

        # the control
        m.d.comb += [layer.start.eq(self.start), layer.n.eq(self.n), layer.k.eq(self.k),
                     layer.m.eq(self.m), layer.e0.eq(self.e0), layer.relu.eq(self.relu),
                     layer.bias_en.eq(self.bias_en), layer.e0_pc.eq(self.e0_pc),
                     self.busy.eq(layer.busy), self.done.eq(layer.done),
                     self.started.eq(layer.layer.go)]
        wiring.connect(m, layer=layer.layer, loader=loader.layer, sequencer=seq.layer,
                       channels=channels.layer)
        wiring.connect(m, loader=loader.banks, sequencer=seq.banks, drain=drain.banks)
        wiring.connect(m, wiring.flipped(self.wgt), loader.wgt)
        wiring.connect(m, wiring.flipped(self.act), seq.act)
        # the data path: beats into the grid, its states into the chain, the head's entry
        # with its channel's parameters into the finalizer
        wiring.connect(m, sequencer=seq.beat, grid=grid.beat)
        wiring.connect(m, loader=loader.store, grid=grid.store)
        wiring.connect(m, loader=loader.header, channels=channels.header)
        wiring.connect(m, grid=grid.capture, drain=drain.capture)
        wiring.connect(m, sequencer=seq.tile, drain=drain.tile)
        wiring.connect(m, drain=drain.head, channels=channels.head)
        m.d.comb += [seq.drain_idle.eq(drain.idle), chain.entries.eq(grid.entries),
                     chain.load.eq(drain.load), chain.move.eq(-1)]
        entry = fin.i.payload
        m.d.comb += [
            fin.i.valid.eq(drain.entry.valid), entry.meta.eq(drain.entry.meta),
            entry.acc.eq(chain.head.acc), entry.carries.eq(chain.head.carries),
            entry.flags.eq(chain.head.flags),
            entry.bias.eq(channels.bias), entry.e0.eq(channels.e0),
            fin.bias_en.eq(layer.layer.held.bias), fin.relu.eq(layer.layer.held.relu),
        ]

        # the output FIFO (with fifo_cut behind a register: it sits by the result port, far
        # from the finalizer)
        w_valid = fin.o.valid
        w_data = Cat(fin.o.payload.bits, fin.o.payload.meta.last, fin.o.payload.meta.last_layer)
        if cfg.fifo_cut:
            w_valid = registered(m, w_valid, "fifo_w_valid")
            w_data = registered(m, w_data, "fifo_w_data", reset_less=True)
        width = cfg.out_fmt.width
        res_take = self.res.valid & self.res.ready
        m.d.comb += [out_fifo.w_en.eq(w_valid), out_fifo.w_data.eq(w_data),
                     drain.returned.eq(res_take)]
        r_valid, r_data = out_fifo.r_rdy, out_fifo.r_data
        m.d.comb += out_fifo.r_en.eq(self.res.ready)
        m.d.comb += [
            self.res.valid.eq(r_valid),
            self.res.payload.bits.eq(r_data[:width]),
            self.res.payload.last.eq(r_data[width]),
        ]
        # the layer's last result beat taken ends the layer (with done_cut through a register
        # by the FIFO: the control sits far from the result port)
        last_taken = res_take & r_data[width + 1]
        if cfg.done_cut:
            last_taken = registered(m, last_taken, "last_taken")
        m.d.comb += layer.finish.eq(last_taken)

        # errors (registered: the pulses leave from flip-flops, one clock after their cause)
        # and counter events
        err = layer.err
        err_e0 = Signal()
        m.d.comb += err_e0.eq(err.e0 | loader.err_e0)
        m.d.sync += self.err.eq(Cat(err.k, err.nm, err_e0, seq.err_act, loader.err_wgt,
                                    err.busy))
        m.d.comb += self.ev.eq(Cat(layer.busy, seq.active, seq.stall_act, seq.stall_wgt,
                                   self.res.valid & ~self.res.ready, seq.stall_drain))
        return m
