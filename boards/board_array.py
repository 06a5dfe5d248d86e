# amaranth: UnusedElaboratable=no
"""The PE array of a board image, driven from the host over the UART bridge.

A board image (``make bitstream``) is ``LinkTop(ArrayTop(config))``: every valid/ready channel of
``densehw_array`` (the AXI4-Stream ports ``s_axis_act``, ``s_axis_wgt``, ``m_axis_res`` and the
AXI4-Lite channels ``aw``, ``w``, ``b``, ``ar``, ``r``) is a channel of the bridge, numbered as
:func:`boards.boards.channels` numbers them. :class:`BoardArray` reads and writes the registers
through the AXI4-Lite channels, learns the array's configuration from its identification
registers (``ID``, ``VERSION``, ``GEOMETRY``, ``DEPTH``, ``FORMATS``, ``E0_RANGE``) and runs GEMMs
with the streams framed as ``docs/array.md`` specifies (:func:`contract.array.weight_stream`,
:func:`~contract.array.activation_stream`, :func:`~contract.array.result_order`).

Order of a layer (the bridge runs one command at a time, so the host must never wait for a beat
that needs another of its own beats first): write ``N``, ``K``, ``M``, ``E0``, ``CTRL`` (START);
then for each M tile its weight channels, and for each N tile its ``K`` activation beats followed
by all of the tile's result beats; then ``STATUS`` (``DONE``), ``ERROR`` (must be 0) and the
performance counters. Every result beat is checked: ``tlast`` exactly on the last beat of each
tile, no bits above the output width.
"""

from __future__ import annotations

import time

import numpy as np

from contract import FORMATS, FloatFormat
from contract.array import (
    ARRAY_VERSION,
    CTRL,
    ERROR,
    ID_MAGIC,
    REGISTER_BY_NAME,
    REGISTERS,
    STATUS,
    ArrayConfig,
    activation_stream,
    channel_words,
    result_order,
    weight_stream,
)
from contract.formats import SPECIALS
from contract.weights import PACK_VERSION

from .uart_link import BadAnswer, UartLink

__all__ = ["BoardArray", "config_from_registers", "IDENT_REGISTERS", "COUNTERS"]

IDENT_REGISTERS = ("ID", "VERSION", "GEOMETRY", "DEPTH", "FORMATS", "E0_RANGE")
COUNTERS = tuple(r.name for r in REGISTERS if r.access == "rc")
_AXIL = ("s_axil.aw", "s_axil.w", "s_axil.b", "s_axil.ar", "s_axil.r")


def _field(reg: str, name: str, value: int) -> int:
    f = REGISTER_BY_NAME[reg].field(name)
    v = (value >> f.lsb) & ((1 << f.width) - 1)
    return v - (1 << f.width) if f.signed and v >> (f.width - 1) else v


def _format(exp_bits: int, frac_bits: int, specials: int = 0) -> FloatFormat:
    kind = SPECIALS[specials] if specials < len(SPECIALS) else None
    if kind is None:
        raise ValueError(f"FORMATS names specials {specials}; expected 0..{len(SPECIALS) - 1}")
    for fmt in FORMATS.values():
        if (fmt.exp_bits, fmt.frac_bits, fmt.specials) == (exp_bits, frac_bits, kind):
            return fmt
    return FloatFormat(f"e{exp_bits}m{frac_bits}", exp_bits, frac_bits, specials=kind)


def _config_from_fields(g: int, f: int, e: int, depth: int) -> ArrayConfig:
    """The :class:`ArrayConfig` the GEOMETRY, FORMATS and E0_RANGE fields name."""
    mx = _field("GEOMETRY", "MX_BLOCK", g)
    window = ({"scale_min": _field("E0_RANGE", "SCALE_MIN", e),
               "scale_max": _field("E0_RANGE", "SCALE_MAX", e)} if mx else {})
    return ArrayConfig(in_fmt=_format(_field("FORMATS", "IN_EXP", f),
                                      _field("FORMATS", "IN_FRAC", f),
                                      _field("FORMATS", "IN_SPECIALS", f)),
                       out_fmt=_format(_field("FORMATS", "OUT_EXP", f),
                                       _field("FORMATS", "OUT_FRAC", f),
                                       _field("FORMATS", "OUT_SPECIALS", f)),
                       wbits=_field("GEOMETRY", "WBITS", g), rows=_field("GEOMETRY", "ROWS", g),
                       cols=_field("GEOMETRY", "COLS", g), depth=depth,
                       e0_min=_field("E0_RANGE", "MIN", e), e0_max=_field("E0_RANGE", "MAX", e),
                       pipeline=_field("GEOMETRY", "PIPELINE", g), mx_block=mx, **window)


def config_from_registers(values: dict) -> ArrayConfig:
    """The :class:`ArrayConfig` whose identification registers read ``values`` (every name of
    :data:`IDENT_REGISTERS`); ``ValueError`` when they describe no valid array."""
    g, f, e = values["GEOMETRY"], values["FORMATS"], values["E0_RANGE"]
    try:
        cfg = _config_from_fields(g, f, e, values["DEPTH"])
    except ValueError as exc:
        raise ValueError(f"identification registers {values} describe no array: {exc}") from None
    resets = cfg.register_resets()
    if any(resets[k] != values[k] for k in IDENT_REGISTERS):
        raise ValueError(f"identification registers {values} describe no array exactly")
    return cfg


def _channel_table(config: ArrayConfig):
    """``({name: (index, bytes)} of inputs, same of outputs)`` of ``LinkTop(ArrayTop(config))``."""
    from hw.array_top import ArrayTop

    from .boards import channels

    ins, outs = channels(ArrayTop(config=config))
    return ({n: (j, -(-w // 8)) for j, (n, *_, w) in enumerate(ins)},
            {n: (j, -(-w // 8)) for j, (n, *_, w) in enumerate(outs)})


class BoardArray:
    """``densehw_array`` on a board image reached through ``link`` (a :class:`UartLink`; opened
    here if it is not). :meth:`connect` resets the array and reads its configuration into
    :attr:`config`. ``progress(done, total)`` (optional) is called while a GEMM streams, with
    beats sent and received so far."""

    def __init__(self, link: UartLink):
        if not isinstance(link, UartLink):
            raise TypeError(f"link must be a UartLink, not {link!r}")
        self.link = link
        self.config: ArrayConfig | None = None
        self._ins, self._outs = _channel_table(ArrayConfig())   # AXI4-Lite: any config

    @property
    def port(self) -> str:
        return self.link.port

    # -- registers -----------------------------------------------------------------------------
    def read(self, name: str) -> int:
        """Read register ``name`` (AXI4-Lite ``ar``, then ``r``: data and an OKAY response)."""
        reg = REGISTER_BY_NAME[name]
        ar, r = self._ins["s_axil.ar"], self._outs["s_axil.r"]
        self.link.push(ar[0], reg.offset, ar[1], what=f"read address of {name}")
        beat = self.link.get(r[0], r[1], what=f"read data of {name}")
        if beat >> 32:
            raise BadAnswer(f"the board on {self.port} answered the read of register {name} "
                            f"with response {beat >> 32} (expected 0, OKAY)")
        return beat & 0xFFFFFFFF

    def write(self, name: str, value: int) -> None:
        """Write register ``name`` (``aw`` and ``w`` held together, answered on ``b``)."""
        reg = REGISTER_BY_NAME[name]
        aw, w, b = self._ins["s_axil.aw"], self._ins["s_axil.w"], self._outs["s_axil.b"]
        self.link.push(aw[0], reg.offset, aw[1], what=f"write address of {name}")
        self.link.push(w[0], (int(value) & 0xFFFFFFFF) | (0xF << 32), w[1],
                       what=f"write data of {name}")
        resp = self.link.get(b[0], b[1], what=f"write response of {name}")
        if resp:
            raise BadAnswer(f"the board on {self.port} answered the write of register {name} "
                            f"with response {resp} (expected 0, OKAY)")

    # -- identification ------------------------------------------------------------------------
    def connect(self) -> ArrayConfig:
        """Open and synchronise the link, reset the array (bridge ``'R'``), read its
        identification registers; returns (and keeps) its configuration."""
        if not self.link.is_open:
            self.link.connect()
        self.link.reset_design()
        values = {}
        for name in IDENT_REGISTERS:
            values[name] = self.read(name)
            if name == "ID" and values[name] != ID_MAGIC:
                raise BadAnswer(f"register ID of the board on {self.port} reads "
                                f"{values[name]:#010x}, expected {ID_MAGIC:#010x} ('DSHA'): the "
                                f"image is not the densehw array")
            if name == "VERSION" and values[name] != ARRAY_VERSION | (PACK_VERSION << 16):
                raise BadAnswer(f"the array on {self.port} has register map / packing version "
                                f"{values[name]:#010x}; this densehw needs "
                                f"{ARRAY_VERSION | (PACK_VERSION << 16):#010x}: rebuild and "
                                f"flash the image (make bitstream)")
        try:
            cfg = config_from_registers(values)
        except (TypeError, ValueError) as exc:
            raise BadAnswer(f"the array on {self.port} reports no valid configuration: "
                            f"{exc}") from None
        ins, outs = _channel_table(cfg)
        if any(ins.get(n, outs.get(n)) != self._ins.get(n, self._outs.get(n)) for n in _AXIL):
            raise RuntimeError("the AXI4-Lite channels of the bridge depend on the array "
                               "configuration; BoardArray reads registers before it knows it")
        self._ins, self._outs, self.config = ins, outs, cfg
        return cfg

    # -- GEMM ----------------------------------------------------------------------------------
    def check_gemm(self, x_bits, codes, e0, bias_bits) -> None:
        """``ValueError`` unless the GEMM fits the board's array (shapes, ``K <= depth``,
        patterns, codes and offsets in range)."""
        cfg = self._cfg()
        x, c = np.asarray(x_bits), np.asarray(codes)
        if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1]:
            raise ValueError(f"X must be (N, K) and codes (M, K), not {x.shape} and {c.shape}")
        n, k = x.shape
        m = c.shape[0]
        if k > cfg.depth:
            raise ValueError(f"K={k} exceeds the depth {cfg.depth} of the array on {self.port}: "
                             f"the contract rounds each dot product once, so K cannot be split")
        cfg.check_layer(n, k, m)
        if x.dtype.kind not in "iu" or c.dtype.kind not in "iu":
            raise ValueError(f"X and codes must be integer arrays, not {x.dtype} and {c.dtype}")
        if x.size and (int(x.min()) < 0 or int(x.max()) >> cfg.in_fmt.width):
            raise ValueError(f"X holds a value outside the raw {cfg.in_fmt.name} patterns")
        if c.size and (int(c.min()) < 0 or int(c.max()) >> cfg.wbits):
            raise ValueError(f"codes hold a value outside [0, {(1 << cfg.wbits) - 1}]")
        e = np.atleast_1d(np.asarray(e0))
        if np.ndim(e0) not in (0, 1) or (np.ndim(e0) == 1 and e.shape != (m,)):
            raise ValueError(f"e0 must be an int or ({m},) ints, not shape {np.shape(e0)}")
        if e.size and (int(e.min()) < cfg.e0_min or int(e.max()) > cfg.e0_max):
            raise ValueError(f"e0 {int(e.min())}..{int(e.max())} is outside the range "
                             f"[{cfg.e0_min}, {cfg.e0_max}] of the array on {self.port}")
        if bias_bits is not None:
            b = np.asarray(bias_bits)
            if b.shape != (m,) or b.dtype.kind not in "iu":
                raise ValueError(f"bias must be ({m},) integers, not {b.shape} {b.dtype}")
            if b.size and (int(b.min()) < 0 or int(b.max()) >> cfg.out_fmt.width):
                raise ValueError(f"bias holds a value outside the raw {cfg.out_fmt.name} "
                                 f"patterns")

    def gemm(self, x_bits, codes, e0, *, bias_bits=None, relu: bool = False, progress=None):
        """``Y = round_out(X @ W.T + bias)`` on the board: ``(y (N, M) int64 raw out_fmt
        patterns, stats)``; ``stats`` holds the array's counters (``cycles`` = ``cycles_busy``,
        stalls; ``cycles`` ``None`` on an image without counters), ``macs``,
        ``mac_utilization`` and the link's traffic and seconds. Raises
        ``ValueError`` for a GEMM that does not fit, :class:`~boards.uart_link.LinkError` when
        the board answers wrongly or not at all."""
        cfg = self._cfg()
        x = np.asarray(x_bits, dtype=np.int64)
        c = np.asarray(codes, dtype=np.int64)
        per_channel = np.ndim(e0) == 1
        e0v = np.asarray(e0, dtype=np.int64) if per_channel else int(e0)
        bias = None if bias_bits is None else np.asarray(bias_bits, dtype=np.int64)
        self.check_gemm(x, c, e0v, bias)
        n, k = x.shape
        m = c.shape[0]
        link = self.link
        t0, bytes0 = time.perf_counter(), link.bytes_in + link.bytes_out
        self._start(n, k, m, e0v, per_channel, bias is not None, relu)
        wgt = weight_stream(cfg, c, e0v, bias)
        act = activation_stream(cfg, x, m)
        order = result_order(cfg, n, k, m)
        y = np.zeros((n, m), dtype=np.int64)
        a_ch, a_nb = self._ins["s_axis_act.t"]
        w_ch, w_nb = self._ins["s_axis_wgt.t"]
        r_ch, r_nb = self._outs["m_axis_res.t"]
        a_last, w_last = cfg.act_tdata_width, cfg.wgt_tdata_width
        r_last, out_w = cfg.res_tdata_width, cfg.out_fmt.width
        total, done = len(wgt) + len(act) + len(order), 0
        wi = ai = ri = 0
        current_m0 = None
        for tile, (_, rows, m0, cols) in enumerate(cfg.tiles(n, k, m)):
            if m0 != current_m0:                    # a new M tile: its weight channels
                current_m0 = m0
                words = cols * channel_words(k, cfg.wbits)
                for word, last in wgt[wi:wi + words]:
                    link.push(w_ch, word | (last << w_last), w_nb, what="weights")
                wi += words
                done += words
            for word, last in act[ai:ai + k]:
                link.push(a_ch, word | (last << a_last), a_nb, what="activations")
            ai += k
            done += k
            for j in range(rows * cols):
                beat = link.get(r_ch, r_nb, what=f"result {ri} of {n * m}")
                row, col, last = order[ri]
                if (beat >> r_last) != last:
                    raise BadAnswer(f"the array on {self.port} sent result {ri} of {n * m} "
                                    f"(tile {tile}, beat {j}) with tlast={beat >> r_last}, "
                                    f"expected {last}")
                data = beat & ((1 << r_last) - 1)
                if data >> out_w:
                    raise BadAnswer(f"the array on {self.port} sent result {ri} with bits set "
                                    f"above the {out_w}-bit output: {data:#x}")
                y[row, col] = data
                ri += 1
            done += rows * cols
            if progress is not None:
                progress(done, total)
        stats = self._finish(n, k, m)
        seconds = time.perf_counter() - t0
        traffic = link.bytes_in + link.bytes_out - bytes0
        stats.update(array=f"densehw_array {cfg.rows}x{cfg.cols} depth {cfg.depth} "
                           f"({cfg.name})", board=self.port, link_bytes=traffic,
                     link_s=round(seconds, 3),
                     detail=f"{traffic} bytes over {self.port} in {seconds:.2f} s")
        return y, stats

    def _cfg(self) -> ArrayConfig:
        if self.config is None:
            raise RuntimeError("BoardArray.connect() first")
        return self.config

    def _start(self, n, k, m, e0, per_channel, bias, relu) -> None:
        status = self.read("STATUS")
        if status & STATUS["BUSY"]:             # left running by an interrupted host
            self.link.reset_design()
        if self.read("ERROR"):
            self.write("ERROR", 0xFFFFFFFF)
        for name, value in (("N", n), ("K", k), ("M", m), ("E0", 0 if per_channel else e0)):
            self.write(name, value)
        ctrl = CTRL["START"] | (CTRL["RELU"] if relu else 0) | (CTRL["BIAS_EN"] if bias else 0)
        ctrl |= CTRL["E0_PER_CHANNEL"] if per_channel else 0
        self.write("CTRL", ctrl)
        error = self.read("ERROR")
        if error:
            names = [k for k, v in ERROR.items() if error & v]
            raise BadAnswer(f"the array on {self.port} refused the layer ({n}, {k}, {m}): "
                            f"ERROR={error:#x} ({', '.join(names)})")

    def _finish(self, n, k, m) -> dict:
        status, error = self.read("STATUS"), self.read("ERROR")
        if error or not status & STATUS["DONE"] or status & STATUS["BUSY"]:
            names = [k for k, v in ERROR.items() if error & v]
            raise BadAnswer(f"the array on {self.port} ended the layer ({n}, {k}, {m}) with "
                            f"STATUS={status:#x} ERROR={error:#x}"
                            + (f" ({', '.join(names)})" if names else "")
                            + "; expected DONE, not BUSY, no error")
        counters = {name: self.read(name) for name in COUNTERS}
        cfg = self._cfg()
        busy = counters["CYCLES_BUSY"]
        macs = n * k * m
        if not busy:                # a finished layer was busy: an image without counters
            return {"cycles": None, "macs": macs}   # (ArrayConfig.counters false)
        return {"cycles": busy, "cycles_busy": busy,
                "cycles_active": counters["CYCLES_ACTIVE"],
                "stall_act": counters["STALL_ACT"], "stall_wgt": counters["STALL_WGT"],
                "stall_res": counters["STALL_RES"], "stall_drain": counters["STALL_DRAIN"],
                "macs": macs, "mac_utilization": macs / (busy * cfg.rows * cfg.cols)
                if busy else 0.0}
