"""Floating-point formats of activations and outputs.

A :class:`FloatFormat` is an IEEE-754-style binary format: one sign bit, ``exp_bits`` exponent
bits with bias ``2**(exp_bits-1) - 1``, ``frac_bits`` fraction bits, gradual underflow
(subnormals), signed zeros, infinities and NaNs. Exponent field all ones with a zero fraction is
an infinity, with a non-zero fraction a NaN. The canonical NaN that densehw produces has sign 0
and only the top fraction bit set (``0x7E00`` for fp16).

Pure Python: imported by the golden model (``sw``), the gateware (``hw``) and the tools alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "FloatFormat",
    "FP16",
    "BF16",
    "FP32",
    "FP8_E5M2",
    "FORMATS",
    "get_format",
]


@dataclass(frozen=True)
class FloatFormat:
    """An IEEE-754-style binary floating-point format.

    Parameters
    ----------
    name : str
        Short name used on the command line and in reports.
    exp_bits : int
        Exponent field width, 2..11.
    frac_bits : int
        Fraction (trailing significand) field width, 1..52.
    """

    name: str
    exp_bits: int
    frac_bits: int

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Format name must be a non-empty string, not {self.name!r}")
        for field, lo, hi in (("exp_bits", 2, 11), ("frac_bits", 1, 52)):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{field} must be an integer, not {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"{field} must be in [{lo}, {hi}], not {value}")

    # -- geometry -------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Total bits: sign + exponent + fraction."""
        return 1 + self.exp_bits + self.frac_bits

    @property
    def bias(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def exp_max_field(self) -> int:
        """The all-ones exponent field (infinities and NaNs)."""
        return (1 << self.exp_bits) - 1

    @property
    def emax(self) -> int:
        """Unbiased exponent of the largest finite binade."""
        return self.exp_max_field - 1 - self.bias

    @property
    def emin(self) -> int:
        """Unbiased exponent of the smallest normal binade."""
        return 1 - self.bias

    @property
    def lsb_exp(self) -> int:
        """Exponent of the weight of the least significant bit of a subnormal: the format's
        smallest positive value is ``2**lsb_exp``; every finite value is a multiple of it."""
        return self.emin - self.frac_bits

    @property
    def msb_exp(self) -> int:
        """Every finite magnitude is below ``2**msb_exp``."""
        return self.emax + 1

    # -- bit patterns ---------------------------------------------------------------------------
    @property
    def sign_mask(self) -> int:
        return 1 << (self.width - 1)

    @property
    def frac_mask(self) -> int:
        return (1 << self.frac_bits) - 1

    @property
    def pos_inf(self) -> int:
        return self.exp_max_field << self.frac_bits

    @property
    def neg_inf(self) -> int:
        return self.sign_mask | self.pos_inf

    @property
    def canonical_nan(self) -> int:
        """Sign 0, exponent all ones, top fraction bit 1, rest 0."""
        return self.pos_inf | (1 << (self.frac_bits - 1))

    @property
    def max_finite(self) -> int:
        return ((self.exp_max_field - 1) << self.frac_bits) | self.frac_mask

    def fields(self, bits: int) -> tuple[int, int, int]:
        """Split a bit pattern into ``(sign, exponent field, fraction field)``."""
        self.check_bits(bits)
        return (bits >> (self.width - 1),
                (bits >> self.frac_bits) & self.exp_max_field,
                bits & self.frac_mask)

    def check_bits(self, bits: int) -> None:
        if not isinstance(bits, int) or not 0 <= bits < (1 << self.width):
            raise ValueError(f"{bits!r} is not a {self.width}-bit pattern of {self.name}")

    def is_nan(self, bits: int) -> bool:
        _, e, f = self.fields(bits)
        return e == self.exp_max_field and f != 0

    def is_inf(self, bits: int) -> bool:
        _, e, f = self.fields(bits)
        return e == self.exp_max_field and f == 0

    # -- exact scalar conversions (reference quality, not fast) ----------------------------------
    def to_fraction(self, bits: int) -> Fraction:
        """Exact value of a finite pattern (``-0`` gives ``0``); raises on inf/NaN."""
        s, e, f = self.fields(bits)
        if e == self.exp_max_field:
            raise ValueError(f"{bits:#x} is not finite in {self.name}")
        mant = f | ((1 << self.frac_bits) if e else 0)
        value = Fraction(mant) * Fraction(2) ** (max(e, 1) - self.bias - self.frac_bits)
        return -value if s else value

    def from_fraction(self, value: Fraction, *, negative_zero: bool = False) -> int:
        """Round an exact rational to this format, round-to-nearest-even; overflow gives ±inf.
        A nonzero value that rounds to zero keeps its sign; an exact zero is ``-0`` only if
        ``negative_zero``."""
        value = Fraction(value)
        if value == 0:
            return self.sign_mask if negative_zero else 0
        sign = self.sign_mask if value < 0 else 0
        mag = abs(value)
        # scale to integer units of the subnormal LSB, then find the exponent
        exp = mag.numerator.bit_length() - mag.denominator.bit_length()
        if Fraction(2) ** exp > mag:
            exp -= 1
        exp = max(exp, self.emin)                      # binade of the result (subnormal: emin)
        ulp = Fraction(2) ** (exp - self.frac_bits)
        q, r = divmod(mag, ulp)
        q = int(q)
        half = ulp / 2
        if r > half or (r == half and q & 1):
            q += 1
        # q is the significand in units of ulp; it may have carried into the next binade
        if q >> (self.frac_bits + 1):
            q >>= 1
            exp += 1
        if exp > self.emax:
            return sign | self.pos_inf
        if q >> self.frac_bits:                        # normal
            return sign | ((exp + self.bias) << self.frac_bits) | (q & self.frac_mask)
        return sign | q                                # subnormal or zero

    def __str__(self) -> str:
        return self.name


FP16 = FloatFormat("fp16", 5, 10)
BF16 = FloatFormat("bf16", 8, 7)
FP32 = FloatFormat("fp32", 8, 23)
FP8_E5M2 = FloatFormat("fp8_e5m2", 5, 2)

FORMATS: dict[str, FloatFormat] = {f.name: f for f in (FP16, BF16, FP32, FP8_E5M2)}


def get_format(fmt: str | FloatFormat) -> FloatFormat:
    """Look a format up by name (``fp16``, ``bf16``, ``fp32``, ``fp8_e5m2``) or pass one through."""
    if isinstance(fmt, FloatFormat):
        return fmt
    if isinstance(fmt, str) and fmt in FORMATS:
        return FORMATS[fmt]
    raise ValueError(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
