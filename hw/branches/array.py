"""The multi-branch PE array core: layer control, weight loader, chunk sequencer, PE grid, drain
chain, finalizer and output FIFO (streams in ``lib.stream``; :mod:`hw.branches.top` adds the AXI
names and the register block).

Structure (``|`` is a register)::

    act beat | x1 | x2 (lanes past K zeroed) ------------------------------ | row regs -.
    chunk address -> weight store (2-clock read) --------------------------- | code regs -+->
        BranchPE (| weighted popcount, pipeline 2) | acc
    acc --(capture)--> hw.drain.DrainChain (row-major) -> head -> BranchFinalizer -> FIFO -> res

Sequencing: the loader fills bank ``t % 2`` with M tile ``t`` while the compute side runs M tile
``t - 1`` from the other bank over all N tiles, one chunk (``lanes`` consecutive ``k``) per
clock. A tile's last chunk is accepted only when the drain chain is empty and no capture is
pending, so the capture ``config.capture_latency`` clocks later never overwrites undrained
results. The chain shifts one entry per clock while the output FIFO has room for every entry
in flight (credits), so the finalizer never stalls. A bank is released when the last N tile
of its M tile has left the chain (the finalizer took its channels' scales along).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from contract.array import MAX_NM
from contract.branch_array import BranchArrayConfig

from ..drain import DrainChain
from ..stages import delayed, is_const, pick, times_const
from ..wstore import FAMILIES, WeightStore
from .finalizer import BranchFinalizer, corr_width, result_layout
from .loader import NM_BITS, WeightLoader, wgt_layout
from .pe import BranchPE

__all__ = ["BranchArray", "act_layout", "res_layout"]


def _check(config):
    if not isinstance(config, BranchArrayConfig):
        raise TypeError(f"config must be a BranchArrayConfig, not {config!r}")


def act_layout(config):
    _check(config)
    return data.StructLayout({"x": unsigned(config.rows * config.lanes * config.abits),
                              "last": unsigned(1)})


def res_layout(config):
    _check(config)
    return data.StructLayout({"bits": unsigned(config.res_tdata_width), "last": unsigned(1)})


class BranchArray(wiring.Component):
    """The array core.

    Members
    -------
    act : In(stream.Signature(act_layout(config)))
        Activation chunks (``rows`` groups of ``lanes`` codes; ``last`` on a tile's last chunk).
    wgt : In(stream.Signature(wgt_layout()))
        Weight-stream words (scale header, packed codes per channel; ``last`` ends a channel).
    res : Out(stream.Signature(res_layout(config)))
        Results, row-major per tile, ``last`` ends a tile.
    start : In(1)
        Pulse: start a layer of ``n``, ``k``, ``m`` with ``scale``, ``relu`` and ``scale_x``,
        sampled at the pulse. Refused (``err``) with K outside 1..depth, N or M outside
        1..2**24-1, ``scale`` on an array without the float path, or while a layer runs.
    busy, done : Out(1)
    err : Out(6)
        One-clock error pulses, bit order of ``contract.branch_array.BRANCH_ERROR``.
    ev : Out(6)
        Counter events: busy, active, stall_act, stall_wgt, stall_res, stall_drain.
    """

    def __init__(self, *, config, family=None):
        _check(config)
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
        self._config, self._family = config, family
        super().__init__({
            "act": In(stream.Signature(act_layout(config))),
            "wgt": In(stream.Signature(wgt_layout())),
            "res": Out(stream.Signature(res_layout(config))),
            "start": In(1), "n": In(32), "k": In(32), "m": In(32), "scale_x": In(32),
            "scale": In(1), "relu": In(1),
            "busy": Out(1), "done": Out(1), "err": Out(6), "ev": Out(6),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        lay = self._layer(m)
        m.submodules.loader = loader = WeightLoader(config=self._config)
        m.d.comb += [loader.go.eq(lay["go"]), loader.m.eq(lay["m"]),
                     loader.chunks.eq(lay["chunks"]), loader.words.eq(lay["words"]),
                     loader.lane_mask.eq(lay["lane_mask"])]
        wiring.connect(m, wiring.flipped(self.wgt), loader.wgt)
        stores = self._stores(m, loader)
        comp = self._compute(m, lay, loader, stores)
        self._drain(m, lay, loader, comp)
        m.d.comb += self.err.eq(Cat(lay["err_k"], lay["err_shape"], lay["err_scale"],
                                    comp["err_act"], loader.err, lay["err_busy"]))
        return m

    # -- layer control --------------------------------------------------------------------------
    def _layer(self, m):
        """START: latch the arguments, check them a clock later, derive the layer constants
        over two more clocks, then ``go`` (the loader and the sequencer start)."""
        cfg = self._config
        lg = (cfg.lanes - 1).bit_length()
        busy, done = Signal(), Signal()
        n32, k32, m32 = Signal(32), Signal(32), Signal(32)
        scale, relu = Signal(), Signal()
        sx = Signal(32)
        check = Signal()
        errs = {name: Signal(name=f"err_{name}") for name in ("k", "shape", "scale", "busy")}
        with m.If(self.start & ~busy):
            m.d.sync += [n32.eq(self.n), k32.eq(self.k), m32.eq(self.m), sx.eq(self.scale_x),
                         scale.eq(self.scale), relu.eq(self.relu)]
        m.d.sync += [check.eq(self.start & ~busy), errs["busy"].eq(self.start & busy)]
        k_ok = k32.any() & (k32 <= cfg.depth)
        shape_ok = n32.any() & (n32 <= MAX_NM) & m32.any() & (m32 <= MAX_NM)
        scale_ok = ~scale if not cfg.float_path else 1
        ok = k_ok & shape_ok & scale_ok
        m.d.sync += [errs["k"].eq(check & ~k_ok), errs["shape"].eq(check & ~shape_ok),
                     errs["scale"].eq(check & ~scale_ok)]
        start_ok = check & ok
        with m.If(start_ok):
            m.d.sync += [busy.eq(1), done.eq(0)]
        # layer constants: chunks, code words per channel, the last chunk's lanes, correction
        k = k32[:cfg.depth.bit_length()]
        chunks = Signal(range(cfg.chunks_max + 1))
        words = Signal(range(cfg.chunks_max * cfg.entry_bits // 32 + 2))
        lane_mask = Signal(cfg.lanes)
        rem = k[:lg] if lg else 0
        m.d.sync += [chunks.eq((k + cfg.lanes - 1) >> lg),
                     words.eq((times_const(k, cfg.wbits) + 31) >> 5),
                     lane_mask.eq(Cat(is_const(rem, 0) | (rem > lane) if lane < cfg.lanes - 1
                                      else is_const(rem, 0) for lane in range(cfg.lanes))
                                  if lg else 1)]
        corr = Signal(corr_width(cfg))
        span = Signal(cfg.depth.bit_length() + 2)          # 2 * chunks * lanes - K
        m.d.sync += [span.eq((chunks << (lg + 1)) - k),
                     corr.eq(times_const(span, cfg.q))]
        go = delayed(m, start_ok, 3, "layer_go")
        m.d.comb += [self.busy.eq(busy), self.done.eq(done)]
        return {"busy": busy, "done": done, "go": go, "n": n32[:NM_BITS], "m": m32[:NM_BITS],
                "chunks": chunks, "words": words, "lane_mask": lane_mask, "corr": corr,
                "scale": scale, "relu": relu, "sx": sx, "err_k": errs["k"],
                "err_shape": errs["shape"], "err_scale": errs["scale"],
                "err_busy": errs["busy"]}

    def _stores(self, m, loader):
        cfg = self._config
        stores = []
        for c in range(cfg.cols):
            store = WeightStore(width=cfg.entry_bits, depth=2 * cfg.chunks_max,
                                family=self._family)
            m.submodules[f"store{c}"] = store
            m.d.comb += [store.w_addr.eq(loader.w_addr), store.w_data.eq(loader.w_data),
                         store.w_en.eq(loader.w_en[c])]
            stores.append(store)
        return stores

    # -- chunk sequencer and PE grid ------------------------------------------------------------
    def _compute(self, m, lay, loader, stores):
        cfg = self._config
        R, C, L, ab = cfg.rows, cfg.cols, cfg.lanes, cfg.abits
        active = Signal()                          # M tiles left to compute
        m_left, n_left = Signal(NM_BITS), Signal(NM_BITS)
        bank = Signal()
        chunk = Signal(range(max(2, cfg.chunks_max)))
        cap_pending = Signal()
        chain_empty = Signal()                     # set by the drain side
        tile = data.StructLayout({"rows": range(R + 1), "cols": range(C + 1), "bank": 1,
                                  "last_n": 1, "last_layer": 1})
        t_pend = Signal(tile)
        last_chunk = chunk == lay["chunks"] - 1
        last_n, last_m = n_left <= R, m_left <= C
        bank_full = Mux(bank, loader.full[1], loader.full[0])
        chain_free = ~cap_pending & chain_empty
        ready = active & bank_full & (~last_chunk | chain_free)
        accept = ready & self.act.valid
        m.d.comb += self.act.ready.eq(ready)
        err_act = Signal()
        m.d.comb += err_act.eq(accept & (self.act.payload.last != last_chunk))
        with m.If(lay["go"]):
            m.d.sync += [active.eq(1), m_left.eq(lay["m"]), n_left.eq(lay["n"]), bank.eq(0),
                         chunk.eq(0)]
        with m.Elif(accept):
            m.d.sync += chunk.eq(chunk + 1)
            with m.If(last_chunk):
                m.d.sync += [chunk.eq(0), cap_pending.eq(1),
                             t_pend.rows.eq(Mux(last_n, n_left, R)),
                             t_pend.cols.eq(Mux(last_m, m_left, C)), t_pend.bank.eq(bank),
                             t_pend.last_n.eq(last_n), t_pend.last_layer.eq(last_n & last_m)]
                with m.If(last_n):
                    m.d.sync += [bank.eq(~bank), m_left.eq(m_left - C), n_left.eq(lay["n"]),
                                 active.eq(~last_m)]
                with m.Else():
                    m.d.sync += n_left.eq(n_left - R)

        # accept (t): store address now, data at t + 2; the beat waits two registers beside it
        for store in stores:
            m.d.comb += store.r_addr.eq(Cat(chunk, bank))
        x1 = Signal.like(self.act.payload.x, reset_less=True)
        x2 = Signal.like(self.act.payload.x, reset_less=True)
        v1, first1, last1 = Signal(), Signal(), Signal()
        m.d.sync += [x1.eq(self.act.payload.x), v1.eq(accept), first1.eq(is_const(chunk, 0)),
                     last1.eq(last_chunk)]
        keep = Cat(lay["lane_mask"][lane] | ~last1 for row in range(R) for lane in range(L)
                   for bit in range(ab))
        m.d.sync += x2.eq(x1 & keep)
        v2, first2 = delayed(m, v1, 1, "v2"), delayed(m, first1, 1, "first2")
        row_reg = [Signal(L * ab, name=f"row{r}", reset_less=True) for r in range(R)]
        code_reg = [Signal(cfg.entry_bits, name=f"code{c}", reset_less=True) for c in range(C)]
        for r in range(R):
            m.d.sync += row_reg[r].eq(x2[r * L * ab:(r + 1) * L * ab])
        for c in range(C):
            m.d.sync += code_reg[c].eq(stores[c].r_data)
        v3, first3 = delayed(m, v2, 1, "v3"), delayed(m, first2, 1, "first3")
        pes = [[None] * C for _ in range(R)]
        for r in range(R):
            for c in range(C):
                pe = BranchPE(lanes=L, wbits=cfg.wbits, abits=ab, acc_width=cfg.acc_width,
                              pipeline=cfg.pipeline)
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [pe.a.eq(row_reg[r]), pe.w.eq(code_reg[c]), pe.valid.eq(v3),
                             pe.first.eq(first3)]
                pes[r][c] = pe
        capture = delayed(m, accept & last_chunk, cfg.capture_latency, "capture")
        with m.If(capture):
            m.d.sync += cap_pending.eq(0)
        stall_wgt = active & ~bank_full
        stall_drain = active & bank_full & last_chunk & ~chain_free
        return {"accept": accept, "ready": ready, "err_act": err_act, "pes": pes,
                "capture": capture, "t_pend": t_pend, "chain_empty": chain_empty,
                "stall_wgt": stall_wgt, "stall_drain": stall_drain, "tile": tile}

    # -- drain, finalizer, output FIFO -----------------------------------------------------------
    def _drain(self, m, lay, loader, comp):
        cfg = self._config
        R, C = cfg.rows, cfg.cols
        entry = data.StructLayout({"acc": unsigned(cfg.acc_width)})
        m.submodules.drain = drain = DrainChain(rows=R, cols=C, entry=entry)
        for r in range(R):
            for c in range(C):
                m.d.comb += drain.entries[r * C + c].eq(comp["pes"][r][c].acc)
        capture = comp["capture"]
        count = Signal(range(R * C + 1))
        ch_r, ch_c = Signal(range(max(2, R))), Signal(range(max(2, C)))
        t_drain = Signal(comp["tile"])
        m.submodules.finalizer = fin = BranchFinalizer(config=cfg)
        fifo_depth = fin.stages + 4      # an entry is in flight for stages + 3 clocks
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFOBuffered(
            width=result_layout(cfg).size, depth=fifo_depth)
        inflight = Signal(range(fifo_depth + 1))
        shift = count.any() & (inflight < fifo_depth)
        m.d.comb += [drain.load.eq(capture.replicate(R)),
                     drain.move.eq((capture | shift).replicate(R)),
                     comp["chain_empty"].eq(~count.any())]
        in_tile = (ch_r < t_drain.rows) & (ch_c < t_drain.cols)
        is_last = (ch_r == t_drain.rows - 1) & (ch_c == t_drain.cols - 1)
        entering = shift & in_tile
        res_take = self.res.valid & self.res.ready
        m.d.sync += inflight.eq(inflight + entering - res_take)
        release = Signal(2)
        m.d.comb += loader.release.eq(release)
        m.d.sync += release.eq(0)
        with m.If(capture):
            m.d.sync += [count.eq(R * C), t_drain.eq(comp["t_pend"]), ch_r.eq(0), ch_c.eq(0)]
        with m.Elif(shift):
            m.d.sync += count.eq(count - 1)
            with m.If(ch_c == C - 1):
                m.d.sync += [ch_c.eq(0), ch_r.eq(ch_r + 1)]
            with m.Else():
                m.d.sync += ch_c.eq(ch_c + 1)
            with m.If((count == 1) & t_drain.last_n):
                m.d.sync += release.eq(Mux(t_drain.bank, 0b10, 0b01))
        m.d.comb += [fin.i.valid.eq(entering), fin.i.payload.acc.eq(drain.head.acc),
                     fin.i.payload.last.eq(is_last),
                     fin.i.payload.last_layer.eq(is_last & t_drain.last_layer),
                     fin.corr.eq(lay["corr"]), fin.scaled.eq(lay["scale"]),
                     fin.relu.eq(lay["relu"])]
        if cfg.float_path:
            scales = [[loader.scales[b * C + c] for c in range(C)] for b in range(2)]
            m.d.comb += [fin.i.payload.scale.eq(Mux(t_drain.bank, pick(scales[1], ch_c),
                                                    pick(scales[0], ch_c))),
                         fin.scale_x.eq(lay["sx"][:cfg.scale_fmt.width])]
        w = cfg.res_tdata_width
        m.d.comb += [out_fifo.w_en.eq(fin.o.valid), out_fifo.w_data.eq(fin.o.payload),
                     self.res.valid.eq(out_fifo.r_rdy), out_fifo.r_en.eq(self.res.ready),
                     self.res.payload.bits.eq(out_fifo.r_data[:w]),
                     self.res.payload.last.eq(out_fifo.r_data[w])]
        with m.If(res_take & out_fifo.r_data[w + 1]):
            m.d.sync += [lay["busy"].eq(0), lay["done"].eq(1)]
        m.d.comb += self.ev.eq(Cat(lay["busy"], comp["accept"],
                                   comp["ready"] & ~self.act.valid, comp["stall_wgt"],
                                   self.res.valid & ~self.res.ready, comp["stall_drain"]))
