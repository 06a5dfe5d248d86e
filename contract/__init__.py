"""The arithmetic contract of densehw: number formats, weight codes, unit configuration.

This package sits at the bottom: ``hw`` (gateware), ``sw`` (golden model, training) and the
``densehw`` command line import it; it imports none of them, nor Amaranth nor PyTorch.
"""

from .array import ArrayConfig
from .config import DotConfig
from .formats import (
    BF16,
    FORMATS,
    FP4_E2M1,
    FP6_E2M3,
    FP6_E3M2,
    FP8_E4M3FN,
    FP8_E5M2,
    FP16,
    FP32,
    FloatFormat,
    carrier_format,
    get_format,
)
from .weights import (
    PACK_VERSION,
    WORD_BITS,
    check_wbits,
    decode_weights,
    encode_weights,
    make_code,
    max_exponent_code,
    pack_codes,
    split_code,
    unpack_codes,
    words_per_row,
)

__all__ = [
    "ArrayConfig", "DotConfig", "FloatFormat", "FP16", "BF16", "FP32", "FP8_E5M2", "FORMATS",
    "FP8_E4M3FN", "FP6_E3M2", "FP6_E2M3", "FP4_E2M1", "carrier_format", "get_format",
    "PACK_VERSION", "WORD_BITS", "check_wbits", "decode_weights", "encode_weights", "make_code",
    "max_exponent_code", "pack_codes", "split_code", "unpack_codes", "words_per_row",
]
