"""Floating-point formats of activations and outputs.

A :class:`FloatFormat` is a binary format: one sign bit, ``exp_bits`` exponent bits with bias
``2**(exp_bits-1) - 1`` (or ``exp_bias``), ``frac_bits`` fraction bits, gradual underflow
(subnormals) and signed zeros. Its ``specials`` say what the all-ones exponent field means:

* ``"ieee"`` (fp16, bf16, fp32, fp8_e5m2): IEEE 754. Fraction zero is an infinity, any other
  fraction a NaN. The canonical NaN that densehw produces has sign 0 and only the top fraction
  bit set (``0x7E00`` for fp16). Overflow on rounding gives ``±inf``.
* ``"fn"`` (OCP FP8 ``fp8_e4m3fn``): no infinities; the all-ones exponent is a normal binade
  except the all-ones magnitude ``S.1111.111``, the only NaN (both signs; canonical ``0x7F``).
  Largest finite ``S.1111.110`` = ±448. Rounding saturates: a finite value whose round to
  nearest even lies beyond the largest finite gives ±448; an infinity or a NaN gives the NaN.
* ``"finite"`` (OCP MX FP6/FP4 elements ``fp6_e3m2``, ``fp6_e2m3``, ``fp4_e2m1``): every
  pattern is a finite number; rounding saturates to the largest finite; infinities and NaNs have
  no encoding.

Only ``"ieee"`` formats flow through the datapath: the others enter the array through their
*carrier* (:func:`carrier_format`), an ``"ieee"`` format with the same fraction width and the
same grid that holds every value exactly (see ``docs/arithmetic.md``).

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
    "FP8_E4M3FN",
    "FP6_E3M2",
    "FP6_E2M3",
    "FP4_E2M1",
    "FORMATS",
    "SPECIALS",
    "get_format",
    "format_to_dict",
    "carrier_format",
]

#: What the all-ones exponent field means (module docstring).
SPECIALS = ("ieee", "fn", "finite")


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
    exp_bias : int, optional
        Exponent bias; ``None`` (default) is ``2**(exp_bits-1) - 1``.
    specials : str
        ``"ieee"`` (default), ``"fn"`` or ``"finite"`` (module docstring).
    """

    name: str
    exp_bits: int
    frac_bits: int
    exp_bias: int | None = None
    specials: str = "ieee"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Format name must be a non-empty string, not {self.name!r}")
        for field, lo, hi in (("exp_bits", 2, 11), ("frac_bits", 1, 52)):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{field} must be an integer, not {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"{field} must be in [{lo}, {hi}], not {value}")
        if self.exp_bias is not None and (not isinstance(self.exp_bias, int)
                                          or isinstance(self.exp_bias, bool)):
            raise TypeError(f"exp_bias must be an integer or None, not {self.exp_bias!r}")
        if self.exp_bias is not None and not -1100 <= self.exp_bias <= 1100:
            raise ValueError(f"exp_bias must be in [-1100, 1100], not {self.exp_bias}")
        if self.exp_bias == (1 << (self.exp_bits - 1)) - 1:
            object.__setattr__(self, "exp_bias", None)     # one spelling of the IEEE bias
        if self.specials not in SPECIALS:
            raise ValueError(f"specials must be one of {', '.join(SPECIALS)}, not "
                             f"{self.specials!r}")
        if self.specials == "fn" and self.frac_bits < 1:
            raise ValueError("an 'fn' format needs a fraction field")

    # -- geometry -------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Total bits: sign + exponent + fraction."""
        return 1 + self.exp_bits + self.frac_bits

    @property
    def bias(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1 if self.exp_bias is None else self.exp_bias

    @property
    def is_ieee(self) -> bool:
        """True for IEEE-style specials (the formats the datapath works in)."""
        return self.specials == "ieee"

    @property
    def has_inf(self) -> bool:
        return self.specials == "ieee"

    @property
    def has_nan(self) -> bool:
        return self.specials != "finite"

    @property
    def exp_max_field(self) -> int:
        """The all-ones exponent field (infinities and NaNs of ``"ieee"`` formats)."""
        return (1 << self.exp_bits) - 1

    @property
    def emax(self) -> int:
        """Unbiased exponent of the largest finite binade."""
        top = self.exp_max_field - (1 if self.is_ieee else 0)
        return top - self.bias

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

    def _need(self, what: str, ok: bool) -> None:
        if not ok:
            raise ValueError(f"{self.name} has no {what} (specials {self.specials!r})")

    @property
    def pos_inf(self) -> int:
        self._need("infinity", self.has_inf)
        return self.exp_max_field << self.frac_bits

    @property
    def neg_inf(self) -> int:
        return self.sign_mask | self.pos_inf

    @property
    def canonical_nan(self) -> int:
        """``"ieee"``: sign 0, exponent all ones, top fraction bit 1, rest 0. ``"fn"``: the
        all-ones magnitude with sign 0."""
        self._need("NaN", self.has_nan)
        if self.specials == "fn":
            return self.sign_mask - 1
        return (self.exp_max_field << self.frac_bits) | (1 << (self.frac_bits - 1))

    @property
    def max_finite(self) -> int:
        """Pattern of the largest finite magnitude."""
        if self.specials == "fn":
            return self.sign_mask - 2
        if self.specials == "finite":
            return self.sign_mask - 1
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
        if self.specials == "fn":
            return e == self.exp_max_field and f == self.frac_mask
        return self.is_ieee and e == self.exp_max_field and f != 0

    def is_inf(self, bits: int) -> bool:
        _, e, f = self.fields(bits)
        return self.is_ieee and e == self.exp_max_field and f == 0

    # -- exact scalar conversions (reference quality, not fast) ----------------------------------
    def to_fraction(self, bits: int) -> Fraction:
        """Exact value of a finite pattern (``-0`` gives ``0``); raises on inf/NaN."""
        s, e, f = self.fields(bits)
        if self.is_nan(bits) or self.is_inf(bits):
            raise ValueError(f"{bits:#x} is not finite in {self.name}")
        mant = f | ((1 << self.frac_bits) if e else 0)
        value = Fraction(mant) * Fraction(2) ** (max(e, 1) - self.bias - self.frac_bits)
        return -value if s else value

    def from_fraction(self, value: Fraction, *, negative_zero: bool = False) -> int:
        """Round an exact rational to this format, round-to-nearest-even; overflow gives ±inf
        (``"ieee"``) or saturates to ± the largest finite (``"fn"``, ``"finite"``). A nonzero
        value that rounds to zero keeps its sign; an exact zero is ``-0`` only if
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
        if exp > self.emax or (not self.is_ieee
                               and (((exp + self.bias) << self.frac_bits) | (q & self.frac_mask))
                               > self.max_finite):
            return sign | (self.pos_inf if self.is_ieee else self.max_finite)
        if q >> self.frac_bits:                        # normal
            return sign | ((exp + self.bias) << self.frac_bits) | (q & self.frac_mask)
        return sign | q                                # subnormal or zero

    def __str__(self) -> str:
        return self.name


FP16 = FloatFormat("fp16", 5, 10)
BF16 = FloatFormat("bf16", 8, 7)
FP32 = FloatFormat("fp32", 8, 23)
FP8_E5M2 = FloatFormat("fp8_e5m2", 5, 2)
#: OCP 8-bit floating point E4M3 (the ``fn`` variant: finite, one NaN magnitude), max 448.
FP8_E4M3FN = FloatFormat("fp8_e4m3fn", 4, 3, specials="fn")
#: OCP Microscaling element formats without special values (max 28, 7.5, 6).
FP6_E3M2 = FloatFormat("fp6_e3m2", 3, 2, specials="finite")
FP6_E2M3 = FloatFormat("fp6_e2m3", 2, 3, specials="finite")
FP4_E2M1 = FloatFormat("fp4_e2m1", 2, 1, specials="finite")

FORMATS: dict[str, FloatFormat] = {f.name: f for f in (FP16, BF16, FP32, FP8_E5M2, FP8_E4M3FN,
                                                       FP6_E3M2, FP6_E2M3, FP4_E2M1)}


def get_format(fmt: str | FloatFormat | dict) -> FloatFormat:
    """Look a format up by name (``fp16``, ``bf16``, ``fp32``, ``fp8_e5m2``, ``fp8_e4m3fn``,
    ``fp6_e3m2``, ``fp6_e2m3``, ``fp4_e2m1``), build one from :func:`format_to_dict`'s dict,
    or pass one through."""
    if isinstance(fmt, FloatFormat):
        return fmt
    if isinstance(fmt, str) and fmt in FORMATS:
        return FORMATS[fmt]
    if isinstance(fmt, dict):
        extra = sorted(set(fmt) - {"name", "exp_bits", "frac_bits", "exp_bias", "specials"})
        if extra:
            raise ValueError(f"unknown format key {extra[0]!r} (allowed: name, exp_bits, "
                             f"frac_bits, exp_bias, specials)")
        try:
            return FloatFormat(fmt["name"], fmt["exp_bits"], fmt["frac_bits"],
                               fmt.get("exp_bias"), fmt.get("specials", "ieee"))
        except KeyError as exc:
            raise ValueError(f"a format needs name, exp_bits and frac_bits; missing "
                             f"{exc.args[0]}") from None
    raise ValueError(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def format_to_dict(fmt: FloatFormat) -> dict:
    """JSON-ready description; ``exp_bias`` and ``specials`` appear only when not the IEEE
    defaults (so the descriptions, and the names hashed from them, of IEEE formats stay)."""
    d = {"name": fmt.name, "exp_bits": fmt.exp_bits, "frac_bits": fmt.frac_bits}
    if fmt.exp_bias is not None and fmt.exp_bias != (1 << (fmt.exp_bits - 1)) - 1:
        d["exp_bias"] = fmt.exp_bias
    if fmt.specials != "ieee":
        d["specials"] = fmt.specials
    return d


def carrier_format(fmt: FloatFormat | str, scale_min: int = 0, scale_max: int = 0) -> FloatFormat:
    """The ``"ieee"`` format that carries every value ``x * 2**s`` exactly, for ``x`` a finite
    value of ``fmt`` and ``s`` in ``[scale_min, scale_max]`` (the MX block-scale window; 0 and 0
    without scales): the same fraction width, the LSB of ``fmt``'s subnormals at the smallest
    scale (``lsb_exp = fmt.lsb_exp + scale_min``) and the fewest exponent bits whose largest
    finite binade reaches ``fmt.emax + scale_max``. An ``"ieee"`` format without scales is its
    own carrier. NaNs map to the carrier's canonical NaN, infinities to its infinities."""
    fmt = get_format(fmt)
    if scale_min > scale_max:
        raise ValueError(f"scale_min ({scale_min}) must not exceed scale_max ({scale_max})")
    if fmt.is_ieee and scale_min == 0 and scale_max == 0:
        return fmt
    lsb = fmt.lsb_exp + scale_min
    bias = 1 - fmt.frac_bits - lsb
    top = fmt.emax + scale_max
    exp_bits = 2
    while (1 << exp_bits) - 2 - bias < top:
        exp_bits += 1
    window = f"_s{scale_min}_{scale_max}".replace("-", "m")
    name = fmt.name if scale_min == scale_max == 0 else fmt.name + window
    return FloatFormat(f"{name}_carrier", exp_bits, fmt.frac_bits, bias)
