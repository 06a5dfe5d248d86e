"""The SoC top of the PE array, ``densehw_array``: AXI4-Stream data ports and an AXI4-Lite
register block around :class:`hw.array.PEArray` (ports in ``docs/array.md``).

:func:`generate_array_verilog` is deterministic: the same configuration gives byte-identical
text (no source locations).
"""

from __future__ import annotations

import pathlib

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from contract.array import ArrayConfig
from contract.files import write_atomic

from .array import PEArray
from .axis import AXIStreamSignature, connect_axis_in, connect_axis_out
from .csr import AXI4LiteSignature, CSRBlock
from .emit import to_verilog
from .wstore import FAMILIES

__all__ = ["ArrayTop", "generate_array_verilog", "write_array_verilog", "TOP_NAME"]

TOP_NAME = "densehw_array"


def _check(config):
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")


class ArrayTop(wiring.Component):
    """AXI wrapper of the array.

    Members
    -------
    s_axis_act : In(AXIStreamSignature(act_tdata_width))
    s_axis_wgt : In(AXIStreamSignature(32))
    m_axis_res : Out(AXIStreamSignature(res_tdata_width))
    s_axil : In(AXI4LiteSignature())
    irq : Out(1)
        Level interrupt: high while a ``STATUS`` condition enabled in ``IRQ_EN`` holds.

    ``family``: device family of vendor primitives (:data:`hw.wstore.FAMILIES`); ``None`` (the
    default) gives portable Verilog.
    """

    def __init__(self, *, config, family=None):
        _check(config)
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
        self._config = config
        self._family = family
        super().__init__({
            "s_axis_act": In(AXIStreamSignature(config.act_tdata_width)),
            "s_axis_wgt": In(AXIStreamSignature(config.wgt_tdata_width)),
            "m_axis_res": Out(AXIStreamSignature(config.res_tdata_width)),
            "s_axil": In(AXI4LiteSignature()),
            "irq": Out(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.core = core = PEArray(config=cfg, family=self._family)
        m.submodules.csr = csr = CSRBlock(config=cfg, counters=cfg.counters)
        wiring.connect(m, wiring.flipped(self.s_axil), csr.bus)
        connect_axis_in(m, self.s_axis_act, core.act, "x")
        connect_axis_in(m, self.s_axis_wgt, core.wgt, "word")
        connect_axis_out(m, core.res, self.m_axis_res, "bits")
        m.d.comb += [
            core.start.eq(csr.start),
            core.n.eq(csr.n), core.k.eq(csr.k), core.m.eq(csr.m), core.e0.eq(csr.e0),
            core.relu.eq(csr.ctrl[1]), core.bias_en.eq(csr.ctrl[2]), core.e0_pc.eq(csr.ctrl[3]),
            csr.busy.eq(core.busy), csr.done.eq(core.done),
            csr.err.eq(core.err), csr.ev.eq(core.ev), csr.started.eq(core.started),
            self.irq.eq(csr.irq),
        ]
        return m


def generate_array_verilog(config, *, name=TOP_NAME, family=None) -> str:
    """Verilog text of :class:`ArrayTop` for ``config``, top module ``name``; ``family``
    selects vendor primitives (``"ecp5"``: the text instantiates ``DP16KD`` block RAMs)."""
    _check(config)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"Verilog module name must be an identifier, not {name!r}")
    return to_verilog(ArrayTop(config=config, family=family), name=name)


def write_array_verilog(config, path, *, name=TOP_NAME) -> pathlib.Path:
    """Write :func:`generate_array_verilog` to ``path`` atomically (temporary file + rename)."""
    text = generate_array_verilog(config, name=name)
    return write_atomic(path, text)
