"""The multi-branch (xnor-popcount) PE array: its configuration, register map and framing.

:class:`BranchArrayConfig` is the single source of truth for the array RTL
(``hw.branches.top``), the metadata JSON and C header (``densehw.emit_branches``), the drivers
(``sim.branch_driver``) and the golden model's settings. Register map and framing are data
here, as for the shift array (``contract.array``), whose register and field types they reuse.

Dataflow in one paragraph (details in ``docs/branches.md``): an output-stationary ``rows x
cols`` grid of PEs; row ``r`` works on activation row ``n``, column ``c`` on output channel
``m``; each clock one *chunk* of ``lanes`` consecutive ``k`` is processed: every row takes the
chunk's ``abits``-bit activation codes, every column reads the chunk's ``wbits``-bit weight codes
from its store, and each PE adds ``sum_ij 2**(i+j) * popcount(xnor(W_i, A_j))`` over the chunk
into an exact unsigned accumulator. Lanes past ``K`` in a tile's last chunk are forced to code
0 in both operands (``xnor = 1`` in every pair: ``Q = (2**wbits - 1) * (2**abits - 1)`` each),
so the finalizer's ``Y = 2 * acc - (2 * chunks * lanes - K) * Q`` is the exact dot product; with
``CTRL.SCALE`` it is multiplied by the activation scale (register ``SCALE_X``) and the channel's
weight scale (channel header) and rounded once to ``out_fmt``.

Pure Python (no Amaranth, no NumPy at import time).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .array import (
    IRQ_EN,
    MAX_NM,
    REGISTER_BY_NAME,
    STATUS,
    Field,
    Register,
    _bytes,
    _check_int,
)
from .branches import BRANCH_PACK_VERSION, check_kbits, check_scale_fmt, max_value
from .formats import SPECIALS, FloatFormat, format_to_dict, get_format
from .weights import WORD_BITS

__all__ = [
    "BranchArrayConfig", "BRANCH_REGISTERS", "BRANCH_REGISTER_BY_NAME", "BRANCH_ID_MAGIC",
    "BRANCH_ARRAY_VERSION", "BRANCH_CTRL", "BRANCH_STATUS", "BRANCH_ERROR", "BRANCH_IRQ_EN",
    "BRANCH_STREAMS",
    "branch_weight_stream", "branch_activation_stream",
    "branch_channel_words", "is_branch_config", "load_branch_array_config",
]

BRANCH_ID_MAGIC = 0x44534842          # "DSHB" (densehw branch array)
BRANCH_ARRAY_VERSION = 1              # bump when the register map or the framing changes

BRANCH_CTRL = {"START": 1 << 0, "SCALE": 1 << 1, "RELU": 1 << 2}
BRANCH_STATUS = dict(STATUS)
BRANCH_IRQ_EN = dict(IRQ_EN)
#: The registers that mean the same as the shift array's (``contract.array``): STATUS, IRQ_EN,
#: the shape and most counters.
_SHARED = REGISTER_BY_NAME
BRANCH_ERROR = {"K_RANGE": 1 << 0, "SHAPE": 1 << 1, "SCALE_MODE": 1 << 2, "ACT_FRAMING": 1 << 3,
                "WGT_FRAMING": 1 << 4, "START_BUSY": 1 << 5}

BRANCH_REGISTERS: tuple[Register, ...] = (
    Register("ID", 0x00, "ro", f"magic {BRANCH_ID_MAGIC:#010x} ('DSHB')"),
    Register("VERSION", 0x04, "ro", "register map / framing version (low 16 bits) and branch "
             "packing version (high 16 bits)",
             (Field("ARRAY", 0, 16, "BRANCH_ARRAY_VERSION"),
              Field("PACK", 16, 16, "BRANCH_PACK_VERSION"))),
    Register("GEOMETRY", 0x08, "ro", "array shape and code widths",
             (Field("ROWS", 0, 8, "PE rows (activation rows per tile)"),
              Field("COLS", 8, 8, "PE columns (output channels per tile)"),
              Field("LANES", 16, 8, "k per chunk (one chunk per clock)"),
              Field("WBITS", 24, 4, "weight branches k_w"),
              Field("ABITS", 28, 4, "activation branches k_a"))),
    Register("DEPTH", 0x0C, "ro", "the largest K"),
    Register("FORMATS", 0x10, "ro", "output and scale formats of the float path (0: none)",
             (Field("OUT_EXP", 0, 4, "out_fmt exponent bits"),
              Field("OUT_FRAC", 4, 6, "out_fmt fraction bits"),
              Field("OUT_SPECIALS", 10, 2, "out_fmt specials: 0 ieee, 1 fn (fp8_e4m3fn)"),
              Field("SCALE_EXP", 16, 4, "scale_fmt exponent bits"),
              Field("SCALE_FRAC", 20, 6, "scale_fmt fraction bits"))),
    Register("CTRL", 0x20, "rw", "layer options; START is a pulse (reads 0). Options are "
             "sampled when START is written (write options and START together or before)",
             (Field("START", 0, 1, "write 1: check the shape registers and start a layer"),
              Field("SCALE", 1, 1, "float path: results rounded to out_fmt after the scales"),
              Field("RELU", 2, 1, "apply ReLU to the results (negative -> 0, or +0)"))),
    _SHARED["STATUS"],
    Register("ERROR", 0x28, "rw1c", "sticky error bits; write 1 to clear",
             (Field("K_RANGE", 0, 1, "START with K = 0 or K > DEPTH (layer not started)"),
              Field("SHAPE", 1, 1, "START with N or M outside 1..2**24-1 (layer not started)"),
              Field("SCALE_MODE", 2, 1, "START with SCALE on an array without a float path "
                                        "(layer not started)"),
              Field("ACT_FRAMING", 3, 1, "activation tlast not on the last chunk of a tile"),
              Field("WGT_FRAMING", 4, 1, "weight tlast not on the last word of a channel"),
              Field("START_BUSY", 5, 1, "START written while BUSY (ignored)"))),
    _SHARED["IRQ_EN"],
    *(_SHARED[name] for name in ("N", "K", "M")),
    Register("SCALE_X", 0x3C, "rw", "raw scale_fmt bits of the activation scale (float path; a "
             "finite positive value)"),
    _SHARED["CYCLES_BUSY"],
    Register("CYCLES_ACTIVE", 0x44, "rc", "cycles in which the array consumed an activation "
             "chunk (each is rows*cols*lanes MACs)"),
    *(_SHARED[name] for name in ("STALL_ACT", "STALL_WGT", "STALL_RES")),
    Register("STALL_DRAIN", 0x54, "rc", "busy cycles the array waited for the drain chain "
             "(tile shorter than rows*cols chunks or results backpressured)"),
)
BRANCH_REGISTER_BY_NAME = {r.name: r for r in BRANCH_REGISTERS}

BRANCH_STREAMS = {
    "s_axis_act": "activation chunks in (tdata, tvalid, tready, tlast)",
    "s_axis_wgt": "weight scales and packed branch codes in (tdata, tvalid, tready, tlast)",
    "m_axis_res": "results out: exact integers or out_fmt bits (tdata, tvalid, tready, tlast)",
}


def _pow2(name, value, lo, hi):
    _check_int(name, value, lo, hi)
    if value & (value - 1):
        raise ValueError(f"{name} must be a power of two in [{lo}, {hi}], not {value}")


def is_branch_config(d) -> bool:
    """A configuration table names the branch array (``arith = "branches"``)."""
    return isinstance(d, dict) and d.get("arith") == "branches"


@dataclass(frozen=True)
class BranchArrayConfig:
    """Parameters of the multi-branch PE array.

    Parameters
    ----------
    wbits, abits : int
        Weight and activation branches ``k_w``, ``k_a``, 1..8 each.
    rows, cols : int
        PE grid: activation rows and output channels per tile, 1..64 each, at most 1024 PEs.
    lanes : int
        ``k`` per chunk (one chunk per PE per clock): a power of two in [1, 64], with
        ``lanes * max(wbits, abits) <= 256``.
    depth : int
        The largest ``K``: a power of two in [16, 65536], at least ``lanes``.
    out_fmt, scale_fmt : FloatFormat or str, optional
        Output and scale formats of the float path (defaults fp32, fp32); ``out_fmt=None``
        builds an array without the float path (exact integers only). Output formats at most
        32 bits wide, scale formats with at most 23 fraction bits.
    pipeline : int
        PE pipeline depth, 1..2 (2 registers each chunk's weighted popcount before the
        accumulator). Changes latency and clock rate, never results.
    arith : str
        ``"branches"`` (names the array kind in configuration files).
    """

    wbits: int = 2
    abits: int = 2
    rows: int = 4
    cols: int = 4
    lanes: int = 8
    depth: int = 512
    out_fmt: FloatFormat | None = "fp32"
    scale_fmt: FloatFormat | None = "fp32"
    pipeline: int = 2
    arith: str = "branches"

    def __post_init__(self):
        check_kbits(self.wbits, "wbits")
        check_kbits(self.abits, "abits")
        _check_int("rows", self.rows, 1, 64)
        _check_int("cols", self.cols, 1, 64)
        if self.rows * self.cols > 1024:
            raise ValueError(f"rows * cols must be at most 1024, not {self.rows * self.cols}")
        _pow2("lanes", self.lanes, 1, 64)
        if self.lanes * max(self.wbits, self.abits) > 256:
            raise ValueError(f"lanes * max(wbits, abits) must be at most 256, not "
                             f"{self.lanes * max(self.wbits, self.abits)}")
        _pow2("depth", self.depth, 16, 1 << 16)
        if self.depth < self.lanes:
            raise ValueError(f"depth ({self.depth}) must be at least lanes ({self.lanes})")
        _check_int("pipeline", self.pipeline, 1, 2)
        if self.arith != "branches":
            raise ValueError(f"arith must be 'branches', not {self.arith!r}")
        for key in ("out_fmt", "scale_fmt"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, (str, FloatFormat)):
                raise TypeError(f"{key} must be a FloatFormat, a format name or None, not "
                                f"{value!r}")
        if (self.out_fmt is None) != (self.scale_fmt is None):
            raise ValueError("out_fmt and scale_fmt are both given (float path) or both None "
                             "(integers only)")
        if self.out_fmt is not None:
            out = get_format(self.out_fmt)
            if out.width > 32:
                raise ValueError(f"out_fmt {out.name} is {out.width} bits wide; the array "
                                 f"supports formats of at most 32 bits")
            scale = check_scale_fmt(self.scale_fmt)
            if scale.frac_bits > 23:
                raise ValueError(f"scale_fmt {scale.name} has {scale.frac_bits} fraction bits; "
                                 f"the array takes at most 23")
            object.__setattr__(self, "out_fmt", out)
            object.__setattr__(self, "scale_fmt", scale)

    # -- arithmetic ---------------------------------------------------------------------------
    @property
    def float_path(self) -> bool:
        return self.out_fmt is not None

    @property
    def q(self) -> int:
        """``(2**wbits - 1) * (2**abits - 1)``: a lane's weighted popcount when every pair
        agrees, and the largest product magnitude."""
        return max_value(self.wbits) * max_value(self.abits)

    @property
    def chunks_max(self) -> int:
        """Chunks of the longest ``K`` (store entries per bank)."""
        return self.depth // self.lanes

    @property
    def entry_bits(self) -> int:
        """Bits of one weight-store entry: a chunk of ``lanes`` codes."""
        return self.lanes * self.wbits

    @property
    def acc_width(self) -> int:
        """Unsigned PE accumulator width: holds ``depth * Q``."""
        return (self.depth * self.q).bit_length()

    @property
    def result_width(self) -> int:
        """Two's complement width of an exact result ``|Y| <= depth * Q``."""
        return (self.depth * self.q).bit_length() + 1

    # -- timing ----------------------------------------------------------------------------------
    @property
    def capture_latency(self) -> int:
        """Clocks from a tile's last accepted chunk to the capture of the accumulators: the
        weight store's two-clock read (the activation waits beside it), the PE input
        registers, the popcount register of ``pipeline == 2`` and the accumulator."""
        return 3 + self.pipeline

    # -- ports ---------------------------------------------------------------------------------
    @property
    def act_tdata_width(self) -> int:
        """Activation beat: ``rows`` groups of ``lanes`` codes of ``abits`` bits; code ``l`` of
        row ``r`` at bits ``[(r*lanes + l) * abits, ...)``, padded to bytes."""
        return _bytes(self.rows * self.lanes * self.abits)

    @property
    def wgt_tdata_width(self) -> int:
        return WORD_BITS

    @property
    def res_tdata_width(self) -> int:
        """Result beat: an exact result (two's complement, sign-extended) or, with
        ``CTRL.SCALE``, ``out_fmt`` bits (zero-extended), padded to bytes."""
        out = self.out_fmt.width if self.float_path else 0
        return _bytes(max(self.result_width, out))

    @property
    def channel_header_words(self) -> int:
        """Words before a channel's codes: its weight scale (float path only)."""
        return int(self.float_path)

    # -- framing ------------------------------------------------------------------------------
    def check_layer(self, n: int, k: int, m: int) -> None:
        """Raise ``ValueError`` unless ``(N, K, M)`` can run on the array."""
        for name, v, hi in (("N", n, MAX_NM), ("K", k, self.depth), ("M", m, MAX_NM)):
            _check_int(name, v, 1, hi)

    def chunks(self, k: int) -> int:
        return -(-k // self.lanes)

    def tiles(self, n: int, k: int, m: int) -> list[tuple[int, int, int, int]]:
        """Tiles in stream order ``(n0, rows_valid, m0, cols_valid)``: M tiles outer."""
        self.check_layer(n, k, m)
        return [(n0, min(self.rows, n - n0), m0, min(self.cols, m - m0))
                for m0 in range(0, m, self.cols) for n0 in range(0, n, self.rows)]

    def framing(self, n: int, k: int, m: int) -> dict:
        """Beat counts of each stream for a layer (tlast counts included)."""
        self.check_layer(n, k, m)
        mt, nt = -(-m // self.cols), -(-n // self.rows)
        return {"m_tiles": mt, "n_tiles": nt, "chunks": self.chunks(k),
                "act_beats": mt * nt * self.chunks(k), "act_tlasts": mt * nt,
                "wgt_words": m * branch_channel_words(self, k), "wgt_tlasts": m,
                "res_beats": n * m, "res_tlasts": mt * nt}

    def ideal_cycles(self, n: int, k: int, m: int) -> int:
        """Compute-bound clocks: one chunk per clock, every tile at least ``rows * cols``
        clocks (the drain of its results)."""
        f = self.framing(n, k, m)
        return f["m_tiles"] * f["n_tiles"] * max(f["chunks"], self.rows * self.cols)

    # -- serialisation ------------------------------------------------------------------------
    _KEYS = ("arith", "wbits", "abits", "rows", "cols", "lanes", "depth", "out_fmt",
             "scale_fmt", "pipeline")
    _DERIVED = ("acc_width", "result_width", "entry_bits", "act_tdata_width",
                "wgt_tdata_width", "res_tdata_width", "channel_header_words", "version")

    def to_dict(self) -> dict:
        def fmt(f):
            return None if f is None else format_to_dict(f)

        return {"arith": self.arith, "wbits": self.wbits, "abits": self.abits,
                "rows": self.rows, "cols": self.cols, "lanes": self.lanes, "depth": self.depth,
                "out_fmt": fmt(self.out_fmt), "scale_fmt": fmt(self.scale_fmt),
                "pipeline": self.pipeline, "acc_width": self.acc_width,
                "result_width": self.result_width, "entry_bits": self.entry_bits,
                "act_tdata_width": self.act_tdata_width,
                "wgt_tdata_width": self.wgt_tdata_width,
                "res_tdata_width": self.res_tdata_width,
                "channel_header_words": self.channel_header_words,
                "version": BRANCH_ARRAY_VERSION}

    @classmethod
    def from_dict(cls, d: dict) -> BranchArrayConfig:
        """Inverse of :meth:`to_dict`; derived keys are accepted and ignored, unknown keys raise
        ``ValueError``. Formats may be names, ``{name, exp_bits, frac_bits[, exp_bias, specials]}``
        (:func:`~contract.formats.format_to_dict`) or ``None`` (TOML
        has no null: a missing ``out_fmt`` and ``scale_fmt`` take the defaults, the string
        ``"none"`` removes the float path)."""
        if not isinstance(d, dict):
            raise TypeError(f"configuration must be a dict, not {d!r}")
        unknown = set(d) - set(cls._KEYS) - set(cls._DERIVED)
        if unknown:
            raise ValueError(f"unknown branch array configuration keys: "
                             f"{', '.join(sorted(unknown))}")
        args = {k: d[k] for k in cls._KEYS if k in d}
        for key in ("out_fmt", "scale_fmt"):
            v = args.get(key)
            if isinstance(v, dict):
                missing = [k for k in ("name", "exp_bits", "frac_bits") if k not in v]
                if missing:
                    raise ValueError(f"{key} needs name, exp_bits and frac_bits; missing "
                                     f"{missing[0]}")
                args[key] = get_format(v)
            elif v == "none":
                args[key] = None
        return cls(**args)

    @property
    def name(self) -> str:
        """Short filesystem-safe identifier."""
        digest = hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
        out = f"_{self.out_fmt.name}" if self.float_path else "_int"
        return (f"br_w{self.wbits}a{self.abits}_{self.rows}x{self.cols}l{self.lanes}"
                f"_d{self.depth}{out}_{digest[:8]}")

    # -- register values -----------------------------------------------------------------------
    def register_resets(self) -> dict[str, int]:
        """Values of the read-only identification registers."""
        formats = 0
        if self.float_path:
            formats = (self.out_fmt.exp_bits | (self.out_fmt.frac_bits << 4)
                       | (SPECIALS.index(self.out_fmt.specials) << 10)
                       | (self.scale_fmt.exp_bits << 16) | (self.scale_fmt.frac_bits << 20))
        return {
            "ID": BRANCH_ID_MAGIC,
            "VERSION": BRANCH_ARRAY_VERSION | (BRANCH_PACK_VERSION << 16),
            "GEOMETRY": (self.rows | (self.cols << 8) | (self.lanes << 16) | (self.wbits << 24)
                         | (self.abits << 28)),
            "DEPTH": self.depth,
            "FORMATS": formats,
        }

    def metadata(self) -> dict:
        """Configuration, derived widths, register map and stream framing as one dict."""
        resets = self.register_resets()
        return {
            "config": self.to_dict(),
            "name": self.name,
            "top": "densehw_branch_array",
            "registers": [
                {"name": r.name, "offset": r.offset, "access": r.access, "doc": r.doc,
                 "reset": resets.get(r.name, 0),
                 "fields": [{"name": f.name, "lsb": f.lsb, "width": f.width, "doc": f.doc,
                             "signed": f.signed} for f in r.fields]}
                for r in BRANCH_REGISTERS],
            "streams": {
                "s_axis_act": {"tdata_width": self.act_tdata_width, "rows": self.rows,
                               "lanes": self.lanes, "code_width": self.abits},
                "s_axis_wgt": {"tdata_width": self.wgt_tdata_width,
                               "channel_header_words": self.channel_header_words,
                               "pack_version": BRANCH_PACK_VERSION},
                "m_axis_res": {"tdata_width": self.res_tdata_width,
                               "result_width": self.result_width,
                               "out_width": self.out_fmt.width if self.float_path else None},
            },
        }


# -- stream builders (host side; NumPy imported lazily) ------------------------------------------

def branch_channel_words(config: BranchArrayConfig, k: int) -> int:
    """Words of one output channel on the weight stream: the header, then the packed codes."""
    return config.channel_header_words + -(-k * config.wbits // WORD_BITS)


def branch_weight_stream(config: BranchArrayConfig, w_codes, scale_w_bits=None):
    """The weight stream of a layer as ``(word, tlast)`` pairs: per M tile, per channel, the
    channel's raw ``scale_fmt`` weight scale (float-path arrays; 0 when ``scale_w_bits`` is
    ``None``) and its codes packed by branch packing version 1."""
    import numpy as np

    from .branches import pack_branches

    codes = np.asarray(w_codes)
    m_total, k = codes.shape
    scales = np.broadcast_to(np.asarray(0 if scale_w_bits is None else scale_w_bits,
                                        dtype=np.int64), (m_total,))
    packed = pack_branches(codes, config.wbits)
    out = []
    for _, _, m0, cols in config.tiles(1, k, m_total):
        for m in range(m0, m0 + cols):
            words = [int(scales[m]) & 0xFFFFFFFF] if config.float_path else []
            words += [int(w) for w in packed[m]]
            out += [(w, int(i == len(words) - 1)) for i, w in enumerate(words)]
    return out


def branch_activation_stream(config: BranchArrayConfig, x_codes, m_total: int):
    """The activation stream of a layer as ``(tdata, tlast)`` pairs: per tile, one beat per
    chunk; code ``l`` of row ``r`` at bits ``[(r*lanes + l) * abits, ...)``; lanes past ``K``
    and rows past ``N`` are 0."""
    import numpy as np

    x = np.asarray(x_codes, dtype=np.int64)
    n_total, k = x.shape
    lanes, ab = config.lanes, config.abits
    chunks = config.chunks(k)
    padded = np.zeros((n_total, chunks * lanes), dtype=np.int64)
    padded[:, :k] = x
    out = []
    for n0, rows, _, _ in config.tiles(n_total, k, m_total):
        block = padded[n0:n0 + rows]
        for ch in range(chunks):
            word = 0
            for r in range(rows):
                for lane in range(lanes):
                    word |= int(block[r, ch * lanes + lane]) << ((r * lanes + lane) * ab)
            out.append((word, int(ch == chunks - 1)))
    return out


def load_branch_array_config(path, *, fmt: str | None = None) -> BranchArrayConfig:
    """:class:`BranchArrayConfig` from a TOML or JSON file (``contract.array.read_config_file``):
    the fields at the top level with ``arith = "branches"``, or a metadata JSON with a
    ``config`` object. Every problem raises ``ValueError`` naming the file."""
    from pathlib import Path

    from .array import read_config_file

    where = f"config file {str(Path(path))!r}"
    data = read_config_file(path, fmt=fmt)
    if isinstance(data.get("config"), dict):
        data = data["config"]
    if not is_branch_config(data):
        raise ValueError(f"{where}: not a branch array configuration (needs arith = "
                         f"\"branches\")")
    try:
        return BranchArrayConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
