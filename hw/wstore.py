"""Weight store of one array column: the two banks of weight codes, written by the loader and
read by the compute side.

The read latency is two clocks: ``r_data`` shows the code stored at the ``r_addr`` of two clocks
earlier (the address is registered, then the data). Generic targets get an inferred memory with
a synchronous read port followed by a register. On ECP5 (``family="ecp5"``) the store is one
DP16KD block RAM whose own output register (``REGMODE="OUTREG"``) holds the data, because
Yosys does not absorb a register after the RAM into it, and the RAM's clock-to-output without
it (5.8 ns in nextpnr's model) alone limits the array to about 130 MHz.

A read of the address written in the same clock gives an unspecified value; the array never
does that (a bank is read only once the loader has filled it).
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["WeightStore", "FAMILIES", "ecp5_bram_mode"]

#: Device families with a vendor-specific weight store (``None`` is the generic one).
FAMILIES = (None, "ecp5")

#: ECP5 DP16KD data widths and their depths (one 18 Kbit block).
_DP16KD_MODES = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024))


def ecp5_bram_mode(width, depth):
    """The DP16KD data width that holds ``depth`` codes of ``width`` bits in one block, or
    ``None`` when none does (the store then falls back to the generic memory)."""
    for mode, mode_depth in _DP16KD_MODES:
        if mode >= width and mode_depth >= depth:
            return mode
    return None


class WeightStore(wiring.Component):
    """``depth`` entries of ``width`` bits, one write and one read port.

    Members
    -------
    w_addr : In(range(depth)); w_data : In(width); w_en : In(1)
        Write ``w_data`` at ``w_addr`` at the end of the clock when ``w_en``.
    r_addr : In(range(depth))
    r_data : Out(width)
        The entry at ``r_addr`` two clocks earlier.
    """

    def __init__(self, *, width, depth, family=None):
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise TypeError(f"width must be a positive integer, not {width!r}")
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 2:
            raise TypeError(f"depth must be an integer of at least 2, not {depth!r}")
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
        self._width, self._depth, self._family = width, depth, family
        super().__init__({
            "w_addr": In(range(depth)), "w_data": In(width), "w_en": In(1),
            "r_addr": In(range(depth)), "r_data": Out(width),
        })

    @property
    def uses_vendor_ram(self):
        """The store is a vendor primitive (else an inferred memory)."""
        return self._family == "ecp5" and ecp5_bram_mode(self._width, self._depth) is not None

    def elaborate(self, platform):
        m = Module()
        if self.uses_vendor_ram:
            m.submodules.bram = self._dp16kd()
            return m
        mem = memory.Memory(shape=unsigned(self._width), depth=self._depth, init=[])
        m.submodules.mem = mem
        wp = mem.write_port()
        rp = mem.read_port()
        # (no reset: the block RAM's output goes straight into a flip-flop)
        data = Signal(self._width, reset_less=True)
        m.d.comb += [wp.addr.eq(self.w_addr), wp.data.eq(self.w_data), wp.en.eq(self.w_en),
                     rp.addr.eq(self.r_addr)]
        m.d.sync += data.eq(rp.data)
        m.d.comb += self.r_data.eq(data)
        return m

    def _dp16kd(self):
        """Port A writes, port B reads through its output register. In a mode of ``w`` data
        bits the address sits in the top ``log2(depth_of_mode)`` of the 14 address pins; in the
        18-bit mode port A's two lowest pins are the byte write enables."""
        mode = ecp5_bram_mode(self._width, self._depth)
        low = {1: 0, 2: 1, 4: 2, 9: 3, 18: 4}[mode]
        pins = {}
        for port, addr in (("A", self.w_addr), ("B", self.r_addr)):
            for i in range(14):
                j = i - low
                if 0 <= j < len(addr):
                    bit = addr[j]
                else:                        # unused address bits; byte enables on in x18
                    bit = Const(int(mode == 18 and port == "A" and i < 2), 1)
                pins[f"i_AD{port}{i}"] = bit
            pins[f"i_CLK{port}"] = ClockSignal()
            pins[f"i_CE{port}"] = Const(1, 1)
            pins[f"i_OCE{port}"] = Const(1, 1)
            pins[f"i_RST{port}"] = Const(0, 1)
            for i in range(3):
                pins[f"i_CS{port}{i}"] = Const(0, 1)
        for i in range(18):
            pins[f"i_DIA{i}"] = self.w_data[i] if i < self._width else Const(0, 1)
            pins[f"i_DIB{i}"] = Const(0, 1)
        for i in range(self._width):
            pins[f"o_DOB{i}"] = self.r_data[i]
        return Instance(
            "DP16KD",
            p_DATA_WIDTH_A=mode, p_DATA_WIDTH_B=mode,
            p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
            p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
            p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
            p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="AUTO",
            i_WEA=self.w_en, i_WEB=Const(0, 1),
            **pins,
        )
