"""The SoC top of the multi-branch array, ``densehw_branch_array``: the AXI4-Stream data ports,
the AXI4-Lite register block (``contract.branch_array.BRANCH_REGISTERS``) and the level
interrupt around :class:`hw.branches.array.BranchArray`, with the same port names and
conventions as the shift array's ``densehw_array`` (``docs/branches.md``).

:func:`generate_branch_verilog` is deterministic: the same configuration gives the same text.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from contract.branch_array import BRANCH_CTRL, BRANCH_REGISTERS, BranchArrayConfig

from ..axis import AXIStreamSignature, connect_axis_in, connect_axis_out
from ..csr import AXI4LiteSignature, CSRBlock
from ..emit import to_verilog
from ..wstore import FAMILIES
from .array import BranchArray

__all__ = ["BranchArrayTop", "generate_branch_verilog", "BRANCH_TOP_NAME"]

BRANCH_TOP_NAME = "densehw_branch_array"


def _check(config):
    if not isinstance(config, BranchArrayConfig):
        raise TypeError(f"config must be a BranchArrayConfig, not {config!r}")


class BranchArrayTop(wiring.Component):
    """AXI wrapper of the branch array.

    Members
    -------
    s_axis_act : In(AXIStreamSignature(act_tdata_width))
    s_axis_wgt : In(AXIStreamSignature(32))
    m_axis_res : Out(AXIStreamSignature(res_tdata_width))
    s_axil : In(AXI4LiteSignature())
    irq : Out(1)
        Level interrupt: high while a ``STATUS`` condition enabled in ``IRQ_EN`` holds.
    """

    def __init__(self, *, config, family=None):
        _check(config)
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
        self._config, self._family = config, family
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
        m.submodules.core = core = BranchArray(config=self._config, family=self._family)
        m.submodules.csr = csr = CSRBlock(config=self._config, registers=BRANCH_REGISTERS)
        wiring.connect(m, wiring.flipped(self.s_axil), csr.bus)
        connect_axis_in(m, self.s_axis_act, core.act, "x")
        connect_axis_in(m, self.s_axis_wgt, core.wgt, "word")
        connect_axis_out(m, core.res, self.m_axis_res, "bits")
        bit = {name: value.bit_length() - 1 for name, value in BRANCH_CTRL.items()}
        m.d.comb += [
            core.start.eq(csr.start), core.n.eq(csr.n), core.k.eq(csr.k), core.m.eq(csr.m),
            core.scale_x.eq(csr.scale_x), core.scale.eq(csr.ctrl[bit["SCALE"]]),
            core.relu.eq(csr.ctrl[bit["RELU"]]),
            csr.busy.eq(core.busy), csr.done.eq(core.done), csr.err.eq(core.err),
            csr.ev.eq(core.ev), self.irq.eq(csr.irq),
            csr.started.eq(csr.start),          # (counters restart at every START)
        ]
        return m


def generate_branch_verilog(config, *, name=BRANCH_TOP_NAME, family=None) -> str:
    """Verilog text of :class:`BranchArrayTop` for ``config``, top module ``name``."""
    _check(config)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"Verilog module name must be an identifier, not {name!r}")
    return to_verilog(BranchArrayTop(config=config, family=family), name=name)
