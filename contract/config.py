"""The dot-product unit configuration: the single source of truth for RTL, golden model and reports.

The arithmetic itself does not depend on the configuration (every sum is exact and rounded once),
but the hardware is built for a bounded domain, and the golden model checks that domain with the
same object:

* ``max_k`` terms at most per dot product;
* weight offsets ``e0`` in ``[e0_min, e0_max]`` (the bias, given in the output format, is aligned
  against ``2**e0`` inside the accumulator).

Within that domain the two's-complement fixed-point accumulator described by :attr:`acc_lsb_exp`
and :attr:`acc_width` holds every partial sum exactly, whatever the order of summation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .formats import FP16, FloatFormat, format_to_dict, get_format
from .weights import check_wbits, max_exponent_code

__all__ = ["DotConfig"]


def _check_int(name, value, lo=None, hi=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}], not {value}")


@dataclass(frozen=True)
class DotConfig:
    """Parameters of a shift-add dot-product unit.

    Parameters
    ----------
    in_fmt : FloatFormat or str
        Activation format (default fp16).
    out_fmt : FloatFormat or str, optional
        Output (and bias) format; defaults to ``in_fmt``.
    wbits : int
        Weight code width ``B``, 2..5.
    lanes : int
        Products per cycle (vector width), 1..64.
    pipeline : int
        Datapath register stages, 1..4. Changes latency and clock rate, never results.
    max_k : int
        Most terms in one dot product, 1..2**20.
    e0_min, e0_max : int
        Range of weight offsets the unit accepts, within [-64, 64].
    """

    in_fmt: FloatFormat = FP16
    out_fmt: FloatFormat | None = None
    wbits: int = 3
    lanes: int = 4
    pipeline: int = 2
    max_k: int = 4096
    e0_min: int = -8
    e0_max: int = 7

    def __post_init__(self):
        object.__setattr__(self, "in_fmt", get_format(self.in_fmt))
        object.__setattr__(self, "out_fmt",
                           self.in_fmt if self.out_fmt is None else get_format(self.out_fmt))
        for key in ("in_fmt", "out_fmt"):
            fmt = getattr(self, key)
            if not fmt.is_ieee:
                raise ValueError(f"{key} {fmt.name} has no infinities; the datapath works on "
                                 f"IEEE formats: use its carrier "
                                 f"(contract.formats.carrier_format)")
        check_wbits(self.wbits)
        _check_int("lanes", self.lanes, 1, 64)
        _check_int("pipeline", self.pipeline, 1, 4)
        _check_int("max_k", self.max_k, 1, 1 << 20)
        _check_int("e0_min", self.e0_min, -64, 64)
        _check_int("e0_max", self.e0_max, -64, 64)
        if self.e0_min > self.e0_max:
            raise ValueError(f"e0_min ({self.e0_min}) must not exceed e0_max ({self.e0_max})")

    # -- accumulator geometry (all exponents relative to 2**e0) ------------------------------
    @property
    def pmax(self) -> int:
        """Largest exponent code ``p``."""
        return max_exponent_code(self.wbits)

    @property
    def acc_lsb_exp(self) -> int:
        """The accumulator's LSB weighs ``2**(e0 + acc_lsb_exp)``: low enough for the smallest
        activation subnormal and for the bias LSB at the largest ``e0``."""
        return min(self.in_fmt.lsb_exp, self.out_fmt.lsb_exp - self.e0_max)

    @property
    def product_shift_base(self) -> int:
        """A product's significand LSB sits at accumulator bit
        ``max(exp_field, 1) - 1 + p + product_shift_base``."""
        return self.in_fmt.lsb_exp - self.acc_lsb_exp

    @property
    def bias_shift_base(self) -> int:
        """The bias significand LSB sits at accumulator bit
        ``max(exp_field, 1) - 1 - e0 + bias_shift_base``."""
        return self.out_fmt.lsb_exp - self.acc_lsb_exp

    @property
    def e0_bits(self) -> int:
        """Width of the signed (two's complement) ``e0`` field that holds ``[e0_min, e0_max]``."""
        def magnitude_bits(v):
            return (-v - 1).bit_length() if v < 0 else v.bit_length()
        return max(magnitude_bits(self.e0_min), magnitude_bits(self.e0_max)) + 1

    @property
    def acc_width(self) -> int:
        """Two's-complement accumulator width that holds any partial sum exactly."""
        lsb = self.acc_lsb_exp
        products = self.max_k << (self.in_fmt.msb_exp + self.pmax - lsb)
        bias = 1 << (self.out_fmt.msb_exp - self.e0_min - lsb)
        return (products + bias).bit_length() + 1

    # -- domain checks shared by the golden model and the drivers --------------------------
    def check_e0(self, e0) -> None:
        """Raise ``ValueError`` unless every offset is in ``[e0_min, e0_max]``."""
        import numpy as np

        arr = np.atleast_1d(np.asarray(e0))
        bad = (arr < self.e0_min) | (arr > self.e0_max)
        if bad.any():
            value = int(arr[np.argwhere(bad)[0][0]])
            raise ValueError(f"e0={value} is outside the configured range "
                             f"[{self.e0_min}, {self.e0_max}]")

    def check_k(self, k: int) -> None:
        if not 1 <= k <= self.max_k:
            raise ValueError(f"K={k} is outside the configured range [1, {self.max_k}]")

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "in_fmt": format_to_dict(self.in_fmt), "out_fmt": format_to_dict(self.out_fmt),
            "wbits": self.wbits, "lanes": self.lanes, "pipeline": self.pipeline,
            "max_k": self.max_k, "e0_min": self.e0_min, "e0_max": self.e0_max,
            "acc_width": self.acc_width, "acc_lsb_exp": self.acc_lsb_exp,
        }

    @classmethod
    def from_dict(cls, d: dict) -> DotConfig:
        def fmt(v):
            return get_format(v)

        known = {"in_fmt", "out_fmt", "wbits", "lanes", "pipeline", "max_k", "e0_min", "e0_max"}
        derived = {"acc_width", "acc_lsb_exp"}
        unknown = set(d) - known - derived
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        args = {k: v for k, v in d.items() if k in known}
        for key in ("in_fmt", "out_fmt"):
            if args.get(key) is not None:
                args[key] = fmt(args[key])
        return cls(**args)

    @property
    def name(self) -> str:
        """A short, filesystem-safe name that identifies the configuration."""
        out = "" if self.out_fmt == self.in_fmt else f"_{self.out_fmt.name}"
        digest = hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
        return f"{self.in_fmt.name}{out}_b{self.wbits}_l{self.lanes}_{digest[:8]}"
