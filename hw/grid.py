"""The PE grid of the array: the weight stores, the row aligners and the ``rows x cols`` PEs.

Structure (``|`` is a register)::

    beat (| input_cut) | x_reg -> RowDecoder | dec_reg -> RowShifter (| aligner_cut) | row copies
    | address -> weight store (2-clock read) ------------------------------ | code copies
        -> ShiftPE (| addend, pipeline 2) | acc

A beat's side data (:func:`hw.sequencer.beat_layout`) travels beside it through the same
registers. The data registers of the product path have no reset (a reset's fan-out would
reach every one of them): bubbles reach the PEs as zero activations, and a layer start
restarts the accumulators. The PE inputs are register copies (``hw.stages.replicas``): the
aligned activation once per :data:`ROW_SHARE` PEs of a row, the weight code once per
:data:`CODE_SHARE` PEs of a column, so that no register drives a whole row or column of PEs
spread over the device.

At a tile's end the PEs' states go to the drain chain: :data:`CaptureSignature` says when
(``now``, at the accumulator stage) and a clock ahead (``next``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract.array import ArrayConfig

from .layer import addr_bits
from .loader import StoreWriteSignature
from .pe import RowDecoder, RowShifter, ShiftPE, pe_state_layout, row_decode_layout, row_layout
from .sequencer import BeatSignature
from .stages import KEEP, replicas
from .wstore import FAMILIES, WeightStore

__all__ = ["PEGrid", "CaptureSignature", "ROW_SHARE", "CODE_SHARE"]

#: PEs of a row fed by one copy of the row's aligned-activation register, and PEs of a
#: column fed by one copy of the column's weight-code register.
ROW_SHARE = 4
CODE_SHARE = 2

#: A tile's end at the accumulator stage: ``now`` the PEs show the finished tile, ``next`` in
#: the next clock they will (a register's next value), ``ahead`` two clocks from now.
CaptureSignature = wiring.Signature({"now": Out(1), "next": Out(1), "ahead": Out(1)})


class PEGrid(wiring.Component):
    """The product path of the array (see the module docstring).

    Members
    -------
    beat : In(BeatSignature(config))
    store : In(StoreWriteSignature(config))
        Writes into every column's weight store.
    entries : Out(ArrayLayout(pe_state_layout(config), rows * cols))
        The PEs' states, row-major.
    capture : Out(CaptureSignature)

    ``family``: the weight stores' device family (:data:`hw.wstore.FAMILIES`).
    """

    def __init__(self, *, config, family=None):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"config must be an ArrayConfig, not {config!r}")
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
        self._config, self._family = config, family
        super().__init__({
            "beat": In(BeatSignature(config)),
            "store": In(StoreWriteSignature(config)),
            "entries": Out(data.ArrayLayout(pe_state_layout(config), config.rows * config.cols)),
            "capture": Out(CaptureSignature),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        R, C, B = cfg.rows, cfg.cols, cfg.wbits
        meta = self.beat.meta

        x_in, live_in, r_addr, flags = self._input(m, meta)
        # stage 0 -> 1: activations and the weight-store address. x_reg takes every beat's
        # payload (no enable: the accept fans out to few registers); ``live`` says which rows
        # hold a real term, and the decoded activations of the others are zeroed one stage
        # later (bubbles and padding rows reach the PEs as 0)
        x_reg = [Signal(cfg.lane_width, name=f"x_reg{r}", reset_less=True) for r in range(R)]
        v1, last1, clr1 = Signal(), Signal(), Signal()
        live = Signal(R)
        for r in range(R):
            m.d.sync += x_reg[r].eq(x_in[r])
        m.d.sync += [live.eq(live_in), v1.eq(flags[-1][0]), last1.eq(flags[-1][1]),
                     clr1.eq(flags[-1][2])]
        # (with the aligner's middle register the read starts a clock later, in step)
        if cfg.aligner_cut:
            r_addr_q = Signal(addr_bits(cfg) + 1, reset_less=True)
            m.d.sync += r_addr_q.eq(r_addr)
            r_addr = r_addr_q
        stores = []
        for c in range(C):
            store = WeightStore(width=B, depth=2 * cfg.depth, family=self._family)
            m.submodules[f"wmem{c}"] = store
            m.d.comb += [store.r_addr.eq(r_addr), store.w_addr.eq(self.store.addr),
                         store.w_data.eq(self.store.data), store.w_en.eq(self.store.en[c])]
            stores.append(store)

        # stage 1 -> 1b: activations decoded (per row); weight-store read
        dec_reg = [Signal(row_decode_layout(cfg), name=f"dec_reg{r}", reset_less=True)
                   for r in range(R)]
        for r in range(R):
            decoder = RowDecoder(config=cfg)
            m.submodules[f"decode{r}"] = decoder
            m.d.comb += decoder.x.eq(x_reg[r])
            m.d.sync += dec_reg[r].eq(Mux(live[r], decoder.o.as_value(), 0))
        v1b, last1b, clr1b = Signal(), Signal(), Signal()
        m.d.sync += [v1b.eq(v1), last1b.eq(last1), clr1b.eq(clr1)]

        # stage 1b -> 2: alignment (per row; with aligner_cut in two halves, with a register
        # inside the shifter); the codes leave the store's two-clock read (per column)
        row_reg, code_reg = [None] * R, [None] * C
        levels = row_decode_layout(cfg)["amount"].shape.width
        for r in range(R):
            shifter = RowShifter(config=cfg, cut=(levels + 1) // 2 if cfg.aligner_cut else None)
            m.submodules[f"align{r}"] = shifter
            m.d.comb += shifter.i.eq(dec_reg[r])
            row_reg[r] = replicas(m, shifter.o, -(-C // ROW_SHARE), f"row{r}",
                                  shape=row_layout(cfg), reset_less=True)
        for c in range(C):
            code_reg[c] = replicas(m, stores[c].r_data, -(-R // CODE_SHARE), f"code{c}",
                                   shape=B, reset_less=True)
        v1c, last1c, clr1c = v1b, last1b, clr1b
        if cfg.aligner_cut:       # (v1c keeps its own register beside its copies below)
            v1c, last1c, clr1c = Signal(attrs=KEEP if cfg.spread else {}), Signal(), Signal()
            m.d.sync += [v1c.eq(v1b), last1c.eq(last1b), clr1c.eq(clr1b)]
        v2, last2 = Signal(), Signal()
        # restart: the bubble after a tile's last term (or the layer start) at the PE input;
        # the tile ending there is captured at the accumulator stage (a clear only zeroes)
        restart2 = Signal()
        m.d.sync += [v2.eq(v1c), last2.eq(last1c), restart2.eq(clr1c | (v2 & last2))]
        capture2 = Signal()
        m.d.sync += capture2.eq(v2 & last2)
        # the PEs' valid and restart: with "spread" (where aligner_cut is 1) per row (see
        # _row_flags), then through one copy per ROW_SHARE PEs of the row
        groups = -(-C // ROW_SHARE)
        valid_reg = [[v2] * groups] * R
        restart_reg = [[restart2] * groups] * R
        if cfg.spread:
            rows_valid, rows_restart = self._row_flags(m, flags)
            valid_reg = [replicas(m, rows_valid[r], groups, f"valid{r}") for r in range(R)]
            restart_reg = [replicas(m, rows_restart[r], groups, f"restart{r}")
                           for r in range(R)]

        for r in range(R):
            for c in range(C):
                pe = ShiftPE(config=cfg, carry_copy=bool(cfg.spread))
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [pe.row.eq(row_reg[r][c // ROW_SHARE]),
                             pe.code.eq(code_reg[c][r // CODE_SHARE]),
                             pe.valid.eq(valid_reg[r][c // ROW_SHARE]),
                             pe.restart.eq(restart_reg[r][c // ROW_SHARE]),
                             self.entries[r * C + c].eq(Cat(pe.acc, pe.carries, pe.flags))]
        # capture at the accumulator stage (pipeline 2: a copy, kept apart from the chain's
        # copies of it)
        capture = capture2
        if cfg.pipeline == 2:
            capture = replicas(m, capture2, 1, "capture")[0]
        m.d.comb += [self.capture.now.eq(capture),
                     self.capture.next.eq(capture2 if cfg.pipeline == 2 else v2 & last2),
                     self.capture.ahead.eq(v2 & last2 if cfg.pipeline == 2 else v1c & last1c)]
        return m

    def _input(self, m, meta):
        """The beat as stage 0 reads it: activations, live rows, weight-store address, and the
        flags (valid, last, clear) once per group of :data:`ROW_SHARE` rows and once more
        (the last) for the grid's own tile control. With ``input_cut`` ("spread", 2) each
        goes through two registers: the flags through one register, whose fan-out (the groups'
        copies, spread over the device) draws it to their middle, then a copy per group near
        its rows. So no path runs from the array's input (the sequencer's accept) straight to
        a far row. Else the beat itself."""
        cfg = self._config
        R = cfg.rows
        groups = -(-R // ROW_SHARE)
        beat_flags = (meta.valid, meta.last, meta.clear)
        if not cfg.input_cut:
            return [self.beat.x[r] for r in range(R)], meta.live, meta.addr, \
                [beat_flags] * (groups + 1)
        x_in, live_in, addr_in = [self.beat.x[r] for r in range(R)], meta.live, meta.addr
        for stage in range(cfg.input_cut):
            x_q = [Signal(cfg.lane_width, name=f"x_in{r}_{stage}", reset_less=True)
                   for r in range(R)]
            live_q = Signal(R, name=f"live_in_{stage}")
            addr_q = Signal(addr_bits(cfg) + 1, name=f"addr_in_{stage}", reset_less=True)
            m.d.sync += [q.eq(d) for q, d in zip(x_q, x_in, strict=True)]
            m.d.sync += [live_q.eq(live_in), addr_q.eq(addr_in)]
            x_in, live_in, addr_in = x_q, live_q, addr_q
        for stage in range(cfg.input_cut - 1):
            beat_flags = tuple(replicas(m, value, 1, f"{name}_in{stage}")[0]
                               for name, value in zip(("v", "last", "clr"), beat_flags,
                                                      strict=True))
        copies = [replicas(m, value, groups + 1, name)
                  for name, value in zip(("v0", "last0", "clr0"), beat_flags, strict=True)]
        return x_in, live_in, addr_in, list(zip(*copies, strict=True))

    def _row_flags(self, m, flags):
        """Per row, registers that take the values ``v1b`` and ``restart2``'s next value
        (``clr1b | (v1c & last1c)``) take, from the row's own copies of the beat's valid, last
        and clear (from its group's copies ``flags``), which travel beside the row's
        activations (stages 1, 1b, 1c; "spread", so aligner_cut is 1): no register drives
        every row, which on a large device sit far apart, and each hop is one stage of the
        row's own path."""
        R = self._config.rows
        valid, restart = [], []
        for r in range(R):
            group = flags[r // ROW_SHARE]
            v1, last1, clr1 = (replicas(m, value, 1, f"{name}_row{r}")[0]
                               for name, value in zip(("v1", "last1", "clr1"), group,
                                                      strict=True))
            v1b, last1b, clr1b = (replicas(m, value, 1, f"{name}_row{r}")[0]
                                  for name, value in (("v1b", v1), ("last1b", last1),
                                                      ("clr1b", clr1)))
            v1c, last1c = (replicas(m, value, 1, f"{name}_row{r}")[0]
                           for name, value in (("v1c", v1b), ("last1c", last1b)))
            valid.append(replicas(m, v1b, 1, f"valid_row{r}")[0])
            restart.append(replicas(m, clr1b | (v1c & last1c), 1, f"restart_row{r}")[0])
        return valid, restart
