"""The PE-array accelerator configuration, its register map and its stream framing, as data.

:class:`ArrayConfig` is the single source of truth for the array RTL (``hw.array_top``), the
golden model's settings (:attr:`ArrayConfig.dot_config`), the metadata JSON and the C header
(generated from :meth:`ArrayConfig.metadata`) and the drivers (``sim``). The register map
(:data:`REGISTERS`) and the stream framing (:func:`ArrayConfig.framing` and the helpers below)
are plain data so that documentation, header and gateware cannot drift.

Dataflow in one paragraph (details in ``docs/array.md``): an output-stationary ``rows x cols``
grid of processing elements; row ``r`` works on activation row ``n`` of ``X``, column ``c`` on
output channel ``m``; each clock one ``k`` is processed: every row decodes and aligns its
activation once, every column reads one weight code from its on-chip store, each PE selects
``x << p``, negates it and adds it into an exact fixed-point accumulator. At the end of a tile
the accumulators are copied into a shadow chain that drains, one value per clock, into a shared
finalizer (bias, specials, rounding, ReLU) while the next tile computes.

Pure Python (no Amaranth, no NumPy at import time).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .config import DotConfig
from .formats import FP16, SPECIALS, FloatFormat, carrier_format, format_to_dict, get_format
from .mx import MX_BLOCK, SCALE_BITS
from .weights import PACK_VERSION, WORD_BITS, check_wbits, max_exponent_code

__all__ = [
    "ArrayConfig", "Field", "Register", "REGISTERS", "REGISTER_BY_NAME", "CSR_ADDR_WIDTH",
    "CSR_DATA_WIDTH", "MAX_NM", "FLOORPLANS", "FINAL_CARRY_BITS", "PE_CARRY_BITS", "ID_MAGIC",
    "ARRAY_VERSION", "CTRL",
    "STATUS", "ERROR", "IRQ_EN", "STREAMS",
    "channel_words", "pack_activation_beat", "weight_stream", "activation_stream",
    "result_order", "read_config_file", "load_array_config",
]

ID_MAGIC = 0x44534841          # "DSHA" (densehw array)
ARRAY_VERSION = 2              # bump when the register map or the framing changes
CSR_ADDR_WIDTH = 8             # byte address bits of the AXI4-Lite register block
CSR_DATA_WIDTH = 32
#: Values of :attr:`ArrayConfig.floorplan`: ``"compact"`` for a small device, where every block
#: of the array sits close to the others; ``"spread"`` for a large one, where the rows, the
#: columns, the drain and the output port sit far apart (extra register stages and register
#: copies, see :attr:`ArrayConfig.spread`).
FLOORPLANS = ("compact", "spread")
MAX_NM = (1 << 24) - 1         # largest N and M of one layer (24-bit registers)
#: The longest carry chain the finalizer puts into one clock: its two wide additions (bias,
#: magnitude) are split into pieces of at most this many bits, one register stage each, so that
#: wide accumulators cost latency rather than clock rate.
FINAL_CARRY_BITS = 32
#: The longest carry chain of a PE accumulator: a wider accumulator is cut into pieces, each
#: adding the carry out of the piece below one clock later (a pending carry), so the PE's clock
#: rate does not fall with the accumulator width. The finalizer resolves the pending carries.
PE_CARRY_BITS = 32


# -- register map -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """A bit field of a register: ``[lsb, lsb + width)``."""

    name: str
    lsb: int
    width: int
    doc: str
    signed: bool = False

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    """One 32-bit register of the control/status block.

    ``access``: ``"ro"`` (read only), ``"rw"`` (read/write), ``"w1p"`` (write 1 to pulse, reads
    as 0 for pulse bits), ``"rw1c"`` (read; write 1 to clear), ``"rc"`` (read-only counter,
    restarted when a layer starts: a ``CTRL.START`` that is accepted).
    """

    name: str
    offset: int
    access: str
    doc: str
    fields: tuple[Field, ...] = ()

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}")


# Bit positions, also available as dicts for drivers (CTRL["START"] == 1 << 0 ...).
CTRL = {"START": 1 << 0, "RELU": 1 << 1, "BIAS_EN": 1 << 2, "E0_PER_CHANNEL": 1 << 3}
STATUS = {"BUSY": 1 << 0, "DONE": 1 << 1, "ERROR": 1 << 2, "IRQ": 1 << 3}
ERROR = {"K_RANGE": 1 << 0, "SHAPE": 1 << 1, "E0_RANGE": 1 << 2, "ACT_FRAMING": 1 << 3,
         "WGT_FRAMING": 1 << 4, "START_BUSY": 1 << 5}
IRQ_EN = {"DONE": 1 << 1, "ERROR": 1 << 2}      # the positions of the STATUS bits they enable

REGISTERS: tuple[Register, ...] = (
    Register("ID", 0x00, "ro", f"magic {ID_MAGIC:#010x} ('DSHA')"),
    Register("VERSION", 0x04, "ro", "register map / framing version (low 16 bits) and weight "
             "packing version (high 16 bits)",
             (Field("ARRAY", 0, 16, "ARRAY_VERSION"), Field("PACK", 16, 16, "PACK_VERSION"))),
    Register("GEOMETRY", 0x08, "ro", "array shape and weight width",
             (Field("ROWS", 0, 8, "PE rows (activation rows per tile)"),
              Field("COLS", 8, 8, "PE columns (output channels per tile)"),
              Field("WBITS", 16, 4, "weight code width B"),
              Field("PIPELINE", 20, 4, "PE pipeline depth"),
              Field("MX_BLOCK", 24, 8, "MX block size (0: activations without block scales)"))),
    Register("DEPTH", 0x0C, "ro", "weight store depth per column and bank: the largest K"),
    Register("FORMATS", 0x10, "ro", "activation and output formats",
             (Field("IN_EXP", 0, 4, "in_fmt exponent bits"),
              Field("IN_FRAC", 4, 6, "in_fmt fraction bits"),
              Field("IN_SPECIALS", 10, 2, "in_fmt specials: 0 ieee, 1 fn (fp8_e4m3fn), "
                    "2 finite (MX FP6/FP4)"),
              Field("OUT_EXP", 16, 4, "out_fmt exponent bits"),
              Field("OUT_FRAC", 20, 6, "out_fmt fraction bits"),
              Field("OUT_SPECIALS", 26, 2, "out_fmt specials: 0 ieee, 1 fn (fp8_e4m3fn)"))),
    Register("E0_RANGE", 0x14, "ro", "accepted weight offsets",
             (Field("MIN", 0, 8, "e0_min", signed=True),
              Field("MAX", 8, 8, "e0_max", signed=True),
              Field("SCALE_MIN", 16, 8, "MX: scale_min (0 without block scales)", signed=True),
              Field("SCALE_MAX", 24, 8, "MX: scale_max (0 without block scales)",
                    signed=True))),
    Register("CTRL", 0x20, "rw", "layer options; START is a pulse (reads 0). Options are "
             "sampled when START is written (write options and START together or before)",
             (Field("START", 0, 1, "write 1: check the shape registers and start a layer"),
              Field("RELU", 1, 1, "apply ReLU to the outputs"),
              Field("BIAS_EN", 2, 1, "add the per-channel bias carried by the weight stream"),
              Field("E0_PER_CHANNEL", 3, 1,
                    "use each channel's e0 from the weight stream instead of register E0"))),
    Register("STATUS", 0x24, "ro", "layer state",
             (Field("BUSY", 0, 1, "a layer is running"),
              Field("DONE", 1, 1, "the last result beat of the layer was accepted (cleared by "
                                  "START)"),
              Field("ERROR", 2, 1, "some ERROR bit is set"),
              Field("IRQ", 3, 1, "the irq output (a clock after its condition)"))),
    Register("ERROR", 0x28, "rw1c", "sticky error bits; write 1 to clear",
             (Field("K_RANGE", 0, 1, "START with K = 0 or K > DEPTH (layer not started)"),
              Field("SHAPE", 1, 1, "START with N or M outside 1..2**24-1 (layer not started)"),
              Field("E0_RANGE", 2, 1, "register E0 outside E0_RANGE at START without "
                                      "E0_PER_CHANNEL (layer not started), or a channel's e0 "
                                      "outside E0_RANGE (results of that layer undefined)"),
              Field("ACT_FRAMING", 3, 1, "activation tlast not on beat K-1 of a tile"),
              Field("WGT_FRAMING", 4, 1, "weight tlast not on the last word of a channel"),
              Field("START_BUSY", 5, 1, "START written while BUSY (ignored)"))),
    Register("IRQ_EN", 0x2C, "rw", "interrupt enables (reset 0): the level output irq is high "
             "while STATUS & IRQ_EN is not 0, from the clock after; clear the condition (START "
             "clears DONE, writing ERROR clears its bits) or its enable to lower it",
             (Field("DONE", 1, 1, "raise irq while STATUS.DONE is set"),
              Field("ERROR", 2, 1, "raise irq while STATUS.ERROR is set"))),
    Register("N", 0x30, "rw", "activation rows (GEMM N), 1..2**24-1"),
    Register("K", 0x34, "rw", "reduction length, 1..DEPTH"),
    Register("M", 0x38, "rw", "output channels (GEMM M), 1..2**24-1"),
    Register("E0", 0x3C, "rw", "per-tensor weight offset (two's complement), "
             "used unless CTRL.E0_PER_CHANNEL"),
    Register("CYCLES_BUSY", 0x40, "rc", "clock cycles with BUSY set"),
    Register("CYCLES_ACTIVE", 0x44, "rc", "cycles in which the array consumed an activation "
             "beat (each is rows*cols MAC slots)"),
    Register("STALL_ACT", 0x48, "rc", "busy cycles the array waited for an activation beat "
             "(weights ready, drain free)"),
    Register("STALL_WGT", 0x4C, "rc", "busy cycles the array waited for weights to load"),
    Register("STALL_RES", 0x50, "rc", "cycles a result beat waited for tready"),
    Register("STALL_DRAIN", 0x54, "rc", "busy cycles the array waited for the drain chain "
             "(tile shorter than rows*cols or results backpressured)"),
)
REGISTER_BY_NAME = {r.name: r for r in REGISTERS}

# AXI4-Stream ports of the top (`densehw_array`); Verilog names are `<port>__<signal>`.
STREAMS = {
    "s_axis_act": "activations in (tdata, tvalid, tready, tlast)",
    "s_axis_wgt": "weights, biases and channel offsets in (tdata, tvalid, tready, tlast)",
    "m_axis_res": "results out (tdata, tvalid, tready, tlast)",
}


def _check_int(name, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], not {value}")


def _bytes(bits: int) -> int:
    return -(-bits // 8) * 8


def channel_words(k: int, wbits: int) -> int:
    """Words of one output channel on the weight stream: bias, e0, then the packed codes."""
    return 2 + -(-k * check_wbits(wbits) // WORD_BITS)


def pack_activation_beat(lanes, in_width: int) -> int:
    """The ``tdata`` integer of one activation beat: lane ``r`` at bits
    ``[r*in_width, (r+1)*in_width)``."""
    word = 0
    for r, v in enumerate(lanes):
        word |= (int(v) & ((1 << in_width) - 1)) << (r * in_width)
    return word


@dataclass(frozen=True)
class ArrayConfig:
    """Parameters of the shift-add PE array.

    Parameters
    ----------
    in_fmt : FloatFormat or str
        Activation format (default fp16), at most 32 bits wide: any format of
        :mod:`contract.formats` (``fp8_e4m3fn`` and the MX element formats enter through their
        carrier, :attr:`pe_fmt`).
    out_fmt : FloatFormat or str, optional
        Output and bias format (default ``in_fmt``), at most 32 bits wide: an IEEE format or
        ``fp8_e4m3fn`` (rounded in its carrier :attr:`po_fmt`, then saturated).
    wbits : int
        Weight code width ``B``, 2..5.
    rows, cols : int
        PE grid: activation rows and output channels per tile, 1..64 each, at most 1024 PEs.
    depth : int
        Weight store depth per column and bank (two banks): the largest ``K``; a power of two
        in [16, 65536].
    e0_min, e0_max : int
        Weight offsets the array accepts, within [-64, 64].
    pipeline : int
        PE pipeline depth, 1..2 (2 registers the selected addend before the accumulator adder).
        Changes latency and clock rate, never results.
    accumulator : str
        ``"exact"`` (the only policy: every partial sum exact, rounded once).
    mx_block : int
        0 (default): plain activations. 32: OCP MX block-scaled activations, every block of 32
        consecutive ``k`` of a row shares an E8M0 scale that travels beside each element
        (:attr:`lane_width`) and is folded into its exponent on the way in.
    scale_min, scale_max : int
        MX only: the unbiased scale exponents the array accepts, within [-127, 127] (default
        [-8, 7]); a block whose scale is outside them, or NaN (0xFF), reads as NaN.
    floorplan : str
        ``"compact"`` (default: small devices such as the iCE40 UP5K, no register to spare) or
        ``"spread"`` (large devices such as the ECP5: register cuts on the paths that cross the
        device and register copies of the large fan-outs, for clock rate; more flip-flops and
        a few clocks of latency, see :attr:`spread`). Never changes results.
    counters : bool
        ``True`` (default): the performance counters ``CYCLES_BUSY`` ... ``STALL_DRAIN``.
        ``False``: those registers read 0 and cost no logic (the iCEBreaker image,
        ``configs/icebreaker.toml``, where the UP5K has no logic cells to spare). Not in the
        identification registers; never changes results.
    """

    in_fmt: FloatFormat = FP16
    out_fmt: FloatFormat | None = None
    wbits: int = 3
    rows: int = 4
    cols: int = 4
    depth: int = 512
    e0_min: int = -8
    e0_max: int = 7
    pipeline: int = 2
    accumulator: str = "exact"
    mx_block: int = 0
    scale_min: int = -8
    scale_max: int = 7
    floorplan: str = "compact"
    counters: bool = True

    def __post_init__(self):
        for key in ("in_fmt", "out_fmt"):
            value = getattr(self, key)
            if value is None and key == "out_fmt":
                continue
            if not isinstance(value, (str, FloatFormat)):
                raise TypeError(f"{key} must be a FloatFormat or a format name, not {value!r}")
        object.__setattr__(self, "in_fmt", get_format(self.in_fmt))
        object.__setattr__(self, "out_fmt",
                           self.in_fmt if self.out_fmt is None else get_format(self.out_fmt))
        for key in ("in_fmt", "out_fmt"):
            fmt = getattr(self, key)
            if fmt.width > 32:
                raise ValueError(f"{key} {fmt.name} is {fmt.width} bits wide; the array "
                                 f"supports formats of at most 32 bits")
        if not self.out_fmt.has_nan:
            raise ValueError(f"out_fmt {self.out_fmt.name} has no NaN; it is an input (element) "
                             f"format only")
        _check_int("mx_block", self.mx_block, 0, MX_BLOCK)
        if self.mx_block not in (0, MX_BLOCK):
            raise ValueError(f"mx_block must be 0 (no block scales) or {MX_BLOCK}, not "
                             f"{self.mx_block}")
        _check_int("scale_min", self.scale_min, -127, 127)
        _check_int("scale_max", self.scale_max, -127, 127)
        if self.scale_min > self.scale_max:
            raise ValueError(f"scale_min ({self.scale_min}) must not exceed scale_max "
                             f"({self.scale_max})")
        if self.lane_width > 32 or self.pe_fmt.width > 32:
            raise ValueError(f"in_fmt {self.in_fmt.name}: an activation lane of "
                             f"{self.lane_width} bits and a carrier of {self.pe_fmt.width} bits "
                             f"must fit in 32")
        check_wbits(self.wbits)
        _check_int("rows", self.rows, 1, 64)
        _check_int("cols", self.cols, 1, 64)
        if self.rows * self.cols > 1024:
            raise ValueError(f"rows * cols must be at most 1024, not {self.rows * self.cols}")
        _check_int("depth", self.depth, 16, 1 << 16)
        if self.depth & (self.depth - 1):
            raise ValueError(f"depth must be a power of two in [16, 65536], not {self.depth}")
        _check_int("e0_min", self.e0_min, -64, 64)
        _check_int("e0_max", self.e0_max, -64, 64)
        if self.e0_min > self.e0_max:
            raise ValueError(f"e0_min ({self.e0_min}) must not exceed e0_max ({self.e0_max})")
        _check_int("pipeline", self.pipeline, 1, 2)
        if not isinstance(self.accumulator, str):
            raise TypeError(f"accumulator must be a string, not {self.accumulator!r}")
        if self.accumulator != "exact":
            raise ValueError(f"accumulator must be 'exact', not {self.accumulator!r}")
        if not isinstance(self.floorplan, str):
            raise TypeError(f"floorplan must be a string, not {self.floorplan!r}")
        if self.floorplan not in FLOORPLANS:
            raise ValueError(f"floorplan must be one of {', '.join(map(repr, FLOORPLANS))}, "
                             f"not {self.floorplan!r}")
        if not isinstance(self.counters, bool):
            raise TypeError(f"counters must be a bool, not {self.counters!r}")

    # -- arithmetic domain --------------------------------------------------------------------
    @property
    def dot_config(self) -> DotConfig:
        """The arithmetic domain as a :class:`DotConfig` (``max_k = depth``): pass it to
        ``gemm_golden(config=...)``; its accumulator geometry is the finalizer's."""
        return DotConfig(in_fmt=self.pe_fmt, out_fmt=self.po_fmt, wbits=self.wbits, lanes=1,
                         pipeline=4, max_k=self.depth, e0_min=self.e0_min, e0_max=self.e0_max)

    @property
    def pmax(self) -> int:
        return max_exponent_code(self.wbits)

    @property
    def pe_fmt(self) -> FloatFormat:
        """The format the PEs work in: :func:`~contract.formats.carrier_format` of ``in_fmt``
        (over the scale window for MX); ``in_fmt`` itself for IEEE formats without scales."""
        if self.mx_block:
            return carrier_format(self.in_fmt, self.scale_min, self.scale_max)
        return carrier_format(self.in_fmt)

    @property
    def po_fmt(self) -> FloatFormat:
        """The format the finalizer rounds to: ``out_fmt``'s carrier (``out_fmt`` itself for
        IEEE formats); an ``fp8_e4m3fn`` result is saturated from it on the way out."""
        return carrier_format(self.out_fmt)

    @property
    def lane_width(self) -> int:
        """Bits of one activation lane: the ``in_fmt`` pattern, then (MX) its block's E8M0
        scale above it."""
        return self.in_fmt.width + (SCALE_BITS if self.mx_block else 0)

    @property
    def max_k(self) -> int:
        return self.depth

    @property
    def align_width(self) -> int:
        """Width of a row's aligned activation magnitude ``sig << (max(E, 1) - 1)``."""
        fmt = self.pe_fmt
        return fmt.frac_bits + 1 + fmt.exp_max_field - 2

    @property
    def pe_acc_width(self) -> int:
        """Two's complement width of a PE accumulator (products only, no bias). Its LSB weighs
        ``2**(e0 + in_fmt.lsb_exp)``, i.e. accumulator bit ``dot_config.product_shift_base``
        of the finalizer."""
        largest = ((1 << (self.pe_fmt.frac_bits + 1)) - 1) << (self.pe_fmt.exp_max_field - 2
                                                               + self.pmax)
        return (self.depth * largest).bit_length() + 1

    @property
    def acc_width(self) -> int:
        """Width of the finalizer's accumulator (products and bias)."""
        return self.dot_config.acc_width

    @property
    def e0_bits(self) -> int:
        return self.dot_config.e0_bits

    # -- timing (the register stages of ``hw/``'s array components; ``sw/perfmodel.py`` models
    # them) -------------------------------------------------------------------------------------
    @property
    def capture_latency(self) -> int:
        """Clocks from a tile's last accepted beat to the capture of the accumulators into the
        shadow chain: the grid's input registers when :attr:`input_cut`, activation register,
        decoded activation, the row aligner's middle register when :attr:`aligner_cut`, PE
        input register (aligned activation and weight code), and the addend register of
        ``pipeline == 2``."""
        return 3 + self.input_cut + self.aligner_cut + self.pipeline

    @property
    def spread(self) -> int:
        """1 for the ``"spread"`` floorplan, else 0. It adds, each costing flip-flops: the
        register cuts :attr:`input_cut`, :attr:`aligner_cut`, :attr:`final_cut`,
        :attr:`fifo_cut`, :attr:`done_cut` and :attr:`release_cut` (latency), and in the
        sequencing registered copies of the large fan-outs, a ring of registers for the drained
        channel's bias and ``e0``, and registered forms of the control's comparisons (no change
        of latency)."""
        return int(self.floorplan == "spread")

    @property
    def ram_delays(self) -> int:
        """1 (``"compact"``) when values that only wait, and tables read by position, sit in
        block RAM rather than flip-flops: the rounder's magnitude while its shift amount is
        found, and the channels' bias and ``e0`` (a small device is short of flip-flops, not
        of block RAM); else 0. No change of latency."""
        return 1 - self.spread

    @property
    def input_cut(self) -> int:
        """2 (``"spread"``) when the PE grid registers each beat twice more at its input, the
        beat's flags once and then into one copy per group of rows, so that no path runs from
        the array's input straight to the rows spread over the device: two clocks of latency;
        else 0."""
        return 2 * self.spread

    @property
    def aligner_cut(self) -> int:
        """1 (``"spread"``) when the row aligner's barrel shifter has a register after its first
        half, one clock of latency and about 25 flip-flops per row; else 0."""
        return self.spread

    @property
    def final_cut(self) -> int:
        """1 (``"spread"``) when the finalizer's rounder has a plain register stage after its
        shift amount (one clock of latency); else 0."""
        return self.spread

    @property
    def fifo_cut(self) -> int:
        """1 (``"spread"``) when the finalizer's results reach the output FIFO through a plain
        register stage (one clock of latency, one more FIFO entry), and the FIFO is a block RAM
        read through its own output register into a small queue (``hw.outfifo``: three
        more clocks); else 0."""
        return self.spread

    @property
    def done_cut(self) -> int:
        """1 (``"spread"``) when taking the layer's last result beat reaches ``BUSY`` and
        ``DONE`` through a register (one clock later); else 0."""
        return self.spread

    @property
    def release_cut(self) -> int:
        """1 (``"spread"``) when the weight loader sees a bank released by the drain through a
        register of its own (one clock later); else 0."""
        return self.spread

    @property
    def pe_pieces(self) -> int:
        """Carry-chain pieces of a PE accumulator (see :data:`PE_CARRY_BITS`)."""
        return -(-self.pe_acc_width // PE_CARRY_BITS)

    @property
    def pe_piece_bits(self) -> int:
        """Bits per piece (the top piece may be narrower)."""
        return -(-self.pe_acc_width // self.pe_pieces)

    @property
    def pe_carry_delay(self) -> int:
        """Clocks a carry out of one accumulator piece takes to enter the piece above: 1, or 2
        with the ``"spread"`` floorplan (a second register halfway, as the two pieces' carry
        chains may be placed far apart). A PE's exact sum is its accumulator plus, for each
        piece boundary ``j`` in ``0 .. pe_pieces - 2``, its ``pe_carry_delay`` pending carries
        times ``2**((j + 1) * pe_piece_bits)``, modulo ``2**pe_acc_width`` (two's
        complement)."""
        return 1 + self.spread

    @property
    def pe_pending_bits(self) -> int:
        """Pending-carry bits of a PE: ``(pe_pieces - 1) * pe_carry_delay``."""
        return (self.pe_pieces - 1) * self.pe_carry_delay

    @property
    def pe_resolve_stages(self) -> int:
        """Register stages the finalizer spends adding the pending carries (none for an
        accumulator of one piece)."""
        return 0 if self.pe_pieces == 1 else -(-self.pe_acc_width // FINAL_CARRY_BITS)

    @property
    def final_add_stages(self) -> int:
        """Register stages of each of the finalizer's two wide additions (bias, magnitude)."""
        return -(-self.acc_width // FINAL_CARRY_BITS)

    @property
    def bias_wait_stages(self) -> tuple[int, int]:
        """Registers that delay the accumulator after its carry resolution, and the bias after
        its alignment (two stages after the entry's), so that the two paths meet in the
        finalizer (the carry resolution and the bias alignment run side by side)."""
        return max(0, 2 - self.pe_resolve_stages), max(0, self.pe_resolve_stages - 2)

    @property
    def final_latency(self) -> int:
        """Clocks from an entry shifting out of the drain chain to the clock its result beat is
        accepted (``tready`` high): nine single register stages (entry, the aligned bias,
        two leading-zero stages, shift amount, two rounding window stages, rounding,
        specials), the register of :attr:`final_cut`, the longer of the pending-carry
        resolution and the bias's two alignment stages, the two pipelined additions (the exact
        total; its magnitude), and :attr:`out_latency`."""
        return (9 + self.final_cut + max(self.pe_resolve_stages, 2)
                + 2 * self.final_add_stages + self.out_latency)

    @property
    def out_latency(self) -> int:
        """Clocks from a result leaving the finalizer to its beat accepted (``tready`` high):
        the output FIFO's two, and with :attr:`fifo_cut` its input register and the block RAM
        FIFO's three more (``hw.outfifo.LATENCY``)."""
        return 2 + 4 * self.fifo_cut

    # -- ports ---------------------------------------------------------------------------------
    @property
    def act_tdata_width(self) -> int:
        """Activation beat: ``rows`` lanes of :attr:`lane_width` bits, lane 0 lowest, padded to
        bytes."""
        return _bytes(self.rows * self.lane_width)

    @property
    def wgt_tdata_width(self) -> int:
        return WORD_BITS

    @property
    def res_tdata_width(self) -> int:
        """Result beat: one ``out_fmt`` pattern in the low bits, padded to bytes."""
        return _bytes(self.out_fmt.width)

    @property
    def csr_addr_width(self) -> int:
        return CSR_ADDR_WIDTH

    # -- framing ------------------------------------------------------------------------------
    def check_layer(self, n: int, k: int, m: int) -> None:
        """Raise ``ValueError`` unless ``(N, K, M)`` can run on the array."""
        for name, v, hi in (("N", n, MAX_NM), ("K", k, self.depth), ("M", m, MAX_NM)):
            _check_int(name, v, 1, hi)

    def tiles(self, n: int, k: int, m: int) -> list[tuple[int, int, int, int]]:
        """Tiles in stream order: ``(n0, rows_valid, m0, cols_valid)``; the ``M`` tile is the
        outer loop (weights stay on chip while all ``N`` tiles pass)."""
        self.check_layer(n, k, m)
        return [(n0, min(self.rows, n - n0), m0, min(self.cols, m - m0))
                for m0 in range(0, m, self.cols) for n0 in range(0, n, self.rows)]

    def framing(self, n: int, k: int, m: int) -> dict:
        """Beat counts of each stream for a layer (tlast counts included)."""
        self.check_layer(n, k, m)
        mt, nt = -(-m // self.cols), -(-n // self.rows)
        return {
            "m_tiles": mt, "n_tiles": nt,
            "act_beats": mt * nt * k, "act_tlasts": mt * nt,
            "wgt_words": m * channel_words(k, self.wbits), "wgt_tlasts": m,
            "res_beats": n * m, "res_tlasts": mt * nt,
        }

    def ideal_cycles(self, n: int, k: int, m: int) -> int:
        """Compute-bound cycle count: one activation beat per clock, no stall (a lower bound;
        see docs/array.md for the full model)."""
        f = self.framing(n, k, m)
        return f["m_tiles"] * f["n_tiles"] * max(k, self.rows * self.cols)

    # -- serialisation ------------------------------------------------------------------------
    _KEYS = ("in_fmt", "out_fmt", "wbits", "rows", "cols", "depth", "e0_min", "e0_max",
             "pipeline", "accumulator", "mx_block", "scale_min", "scale_max",
             "floorplan", "counters")
    _DERIVED = ("pe_acc_width", "acc_width", "acc_lsb_exp", "e0_bits", "act_tdata_width",
                "wgt_tdata_width", "res_tdata_width", "csr_addr_width", "version")

    def to_dict(self) -> dict:
        fmt = format_to_dict
        # MX keys only when they say something (the descriptions of plain arrays stay)
        mx = ({"mx_block": self.mx_block, "scale_min": self.scale_min,
               "scale_max": self.scale_max}
              if self.mx_block or (self.scale_min, self.scale_max) != (-8, 7) else {})
        return {
            "in_fmt": fmt(self.in_fmt), "out_fmt": fmt(self.out_fmt), "wbits": self.wbits, **mx,
            "rows": self.rows, "cols": self.cols, "depth": self.depth, "e0_min": self.e0_min,
            "e0_max": self.e0_max, "pipeline": self.pipeline, "accumulator": self.accumulator,
            "floorplan": self.floorplan,
            # (only without counters: the names of the arrays that have them stay)
            **({} if self.counters else {"counters": False}),
            "pe_acc_width": self.pe_acc_width, "acc_width": self.acc_width,
            "acc_lsb_exp": self.dot_config.acc_lsb_exp, "e0_bits": self.e0_bits,
            "act_tdata_width": self.act_tdata_width, "wgt_tdata_width": self.wgt_tdata_width,
            "res_tdata_width": self.res_tdata_width, "csr_addr_width": self.csr_addr_width,
            "version": ARRAY_VERSION,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ArrayConfig:
        """Inverse of :meth:`to_dict`; derived keys are accepted and ignored, unknown keys
        raise ``ValueError``. Formats may be names or ``{name, exp_bits, frac_bits}``."""
        if not isinstance(d, dict):
            raise TypeError(f"configuration must be a dict, not {d!r}")
        unknown = set(d) - set(cls._KEYS) - set(cls._DERIVED)
        if unknown:
            raise ValueError(f"unknown array configuration keys: {', '.join(sorted(unknown))}")
        args = {k: d[k] for k in cls._KEYS if k in d}
        for key in ("in_fmt", "out_fmt"):
            v = args.get(key)
            if isinstance(v, dict):
                missing = [f for f in ("name", "exp_bits", "frac_bits") if f not in v]
                if missing:
                    raise ValueError(f"{key} needs name, exp_bits and frac_bits; missing "
                                     f"{missing[0]}")
                try:
                    args[key] = get_format(v)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return cls(**args)

    @property
    def name(self) -> str:
        """Short filesystem-safe identifier."""
        out = "" if self.out_fmt == self.in_fmt else f"_{self.out_fmt.name}"
        out += f"_mx{self.mx_block}" if self.mx_block else ""
        digest = hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
        return (f"{self.in_fmt.name}{out}_b{self.wbits}_{self.rows}x{self.cols}"
                f"_d{self.depth}_{digest[:8]}")

    # -- register values -----------------------------------------------------------------------
    def register_resets(self) -> dict[str, int]:
        """Values of the read-only identification registers (and resets of the others)."""
        def s8(v):
            return v & 0xFF
        return {
            "ID": ID_MAGIC,
            "VERSION": ARRAY_VERSION | (PACK_VERSION << 16),
            "GEOMETRY": self.rows | (self.cols << 8) | (self.wbits << 16)
            | (self.pipeline << 20) | (self.mx_block << 24),
            "DEPTH": self.depth,
            "FORMATS": (self.in_fmt.exp_bits | (self.in_fmt.frac_bits << 4)
                        | (SPECIALS.index(self.in_fmt.specials) << 10)
                        | (self.out_fmt.exp_bits << 16) | (self.out_fmt.frac_bits << 20)
                        | (SPECIALS.index(self.out_fmt.specials) << 26)),
            "E0_RANGE": s8(self.e0_min) | (s8(self.e0_max) << 8)
            | ((s8(self.scale_min) << 16) | (s8(self.scale_max) << 24) if self.mx_block else 0),
        }

    def metadata(self) -> dict:
        """Everything a header, a driver or a document needs: configuration, derived widths,
        register map, stream framing rules."""
        resets = self.register_resets()
        return {
            "config": self.to_dict(),
            "name": self.name,
            "top": "densehw_array",
            "registers": [
                {"name": r.name, "offset": r.offset, "access": r.access, "doc": r.doc,
                 "reset": resets.get(r.name, 0),
                 "fields": [{"name": f.name, "lsb": f.lsb, "width": f.width, "doc": f.doc,
                             "signed": f.signed} for f in r.fields]}
                for r in REGISTERS],
            "streams": {
                "s_axis_act": {"tdata_width": self.act_tdata_width, "lanes": self.rows,
                               "lane_width": self.lane_width},
                "s_axis_wgt": {"tdata_width": self.wgt_tdata_width,
                               "channel_header_words": 2, "pack_version": PACK_VERSION},
                "m_axis_res": {"tdata_width": self.res_tdata_width,
                               "width": self.out_fmt.width},
            },
        }


# -- stream builders (host side; NumPy imported lazily) ------------------------------------------

def weight_stream(config: ArrayConfig, codes, e0, bias_bits=None) -> list[tuple[int, int]]:
    """The weight stream of a layer as ``(word, tlast)`` pairs.

    ``codes``: ``(M, K)`` weight codes; ``e0``: int (written to every channel header) or
    ``(M,)`` ints; ``bias_bits``: ``(M,)`` raw ``out_fmt`` patterns or ``None`` (0 is sent)."""
    import numpy as np

    from .weights import pack_codes

    codes = np.asarray(codes)
    m_total, k = codes.shape
    e0s = np.broadcast_to(np.asarray(e0, dtype=np.int64), (m_total,))
    bias = (np.zeros(m_total, dtype=np.int64) if bias_bits is None
            else np.asarray(bias_bits, dtype=np.int64))
    packed = pack_codes(codes, config.wbits)
    out = []
    for _, _, m0, cols in config.tiles(1, k, m_total):
        for m in range(m0, m0 + cols):
            words = [int(bias[m]) & 0xFFFFFFFF, int(e0s[m]) & 0xFFFFFFFF]
            words += [int(w) for w in packed[m]]
            out += [(w, int(i == len(words) - 1)) for i, w in enumerate(words)]
    return out


def activation_lanes(config: ArrayConfig, x_bits, scales=None):
    """``(N, K)`` lane values: the ``in_fmt`` patterns, with (MX) the E8M0 scale of each
    element's block above them. ``scales``: ``(N, ceil(K / mx_block))`` E8M0 patterns (MX
    arrays only)."""
    import numpy as np

    x = np.asarray(x_bits, dtype=np.int64)
    if not config.mx_block:
        if scales is not None:
            raise ValueError("scales are given but the array has no block scales (mx_block 0)")
        return x
    n_total, k = x.shape
    blocks = -(-k // config.mx_block)
    if scales is None:
        raise ValueError(f"an MX array needs the block scales: ({n_total}, {blocks}) E8M0 "
                         f"patterns")
    s = np.asarray(scales)
    if s.shape != (n_total, blocks):
        raise ValueError(f"scales have shape {s.shape}; expected ({n_total}, {blocks}): one "
                         f"E8M0 scale per row and block of {config.mx_block}")
    if s.dtype.kind not in "iu" or (s.size and (int(s.min()) < 0 or int(s.max()) > 0xFF)):
        raise ValueError("scales must be integers 0..255 (E8M0 patterns)")
    per_k = np.repeat(s.astype(np.int64), config.mx_block, axis=1)[:, :k]
    return x | (per_k << config.in_fmt.width)


def activation_stream(config: ArrayConfig, x_bits, m_total: int,
                      scales=None) -> list[tuple[int, int]]:
    """The activation stream of a layer as ``(tdata, tlast)`` pairs (lanes past ``N`` are 0);
    ``scales`` as in :func:`activation_lanes`."""
    x = activation_lanes(config, x_bits, scales)
    n_total, k = x.shape
    out = []
    for n0, rows, _, _ in config.tiles(n_total, k, m_total):
        block = x[n0:n0 + rows]
        for kk in range(k):
            word = pack_activation_beat(block[:, kk], config.lane_width)
            out.append((word, int(kk == k - 1)))
    return out


def result_order(config: ArrayConfig, n_total: int, k: int, m_total: int):
    """``(n, m, tlast)`` of every result beat, in stream order."""
    out = []
    for n0, rows, m0, cols in config.tiles(n_total, k, m_total):
        for r in range(rows):
            for c in range(cols):
                out.append((n0 + r, m0 + c, int(r == rows - 1 and c == cols - 1)))
    return out


def read_config_file(path, *, fmt: str | None = None) -> dict:
    """The table of a configuration file: TOML or JSON, chosen by ``fmt`` (``"toml"`` or
    ``"json"``) or by the suffix (``.toml``, ``.json``). Every densehw command reads its
    ``--config`` through this function (array configurations through
    :func:`load_array_config`). Every problem raises ``ValueError`` naming the file."""
    import tomllib
    from pathlib import Path

    path = Path(path)
    where = f"config file {str(path)!r}"
    if fmt is None:
        fmt = path.suffix[1:]
        if fmt not in ("toml", "json"):
            raise ValueError(f"{where} must end in .toml or .json")
    elif fmt not in ("toml", "json"):
        raise ValueError(f"fmt must be 'toml', 'json' or None, not {fmt!r}")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{where} does not exist") from None
    except OSError as exc:
        raise ValueError(f"cannot read {where}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode()) if fmt == "toml" else json.loads(raw)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: invalid {fmt.upper()}: {exc}") from None
    except RecursionError:
        raise ValueError(f"{where}: invalid {fmt.upper()}: nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a {'table' if fmt == 'toml' else 'JSON object'}, "
                         f"not {type(data).__name__}")
    return data


def load_array_config(path, *, fmt: str | None = None) -> ArrayConfig:
    """:class:`ArrayConfig` from a file (:func:`read_config_file`): TOML or JSON, the fields at
    the top level (as ``configs/*.toml`` and :meth:`ArrayConfig.to_dict`), or a metadata JSON
    with a ``config`` object. JSON may also hold the derived keys of ``to_dict()`` (ignored). A
    format given as a table holds ``name``, ``exp_bits`` and ``frac_bits``. Every problem raises
    ``ValueError`` naming the file."""
    from pathlib import Path

    where = f"config file {str(Path(path))!r}"
    data = read_config_file(path, fmt=fmt)
    json_like = (fmt or Path(path).suffix[1:]) == "json"
    if json_like and isinstance(data.get("config"), dict):
        data = data["config"]
    allowed = ArrayConfig._KEYS + (ArrayConfig._DERIVED if json_like else ())
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (allowed: "
                         f"{', '.join(ArrayConfig._KEYS)})")
    for key in ("in_fmt", "out_fmt"):
        if isinstance(data.get(key), dict):
            extra = sorted(set(data[key]) - {"name", "exp_bits", "frac_bits", "exp_bias",
                                             "specials"})
            if extra:
                raise ValueError(f"{where}: {key}: unknown key {extra[0]!r} (allowed: name, "
                                 f"exp_bits, frac_bits, exp_bias, specials)")
    try:
        return ArrayConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
