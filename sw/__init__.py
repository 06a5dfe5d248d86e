"""Software side of densehw: the golden model (bit-exact definition of the hardware's results)
and the DenseShift training library. Imports no Amaranth.

Names are loaded lazily so that ``import sw`` stays cheap.
"""

import importlib

# public name -> submodule that defines it
_LAZY = {
    # golden model
    "gemm_golden": "sw.golden",
    "dot_golden": "sw.golden",
    "conv_golden": "sw.golden",
    "gemm_reference": "sw.golden",
    "to_bits": "sw.fpbits",
    "from_bits": "sw.fpbits",
    # training library
    "DenseShiftConv2d": "sw.layers",
    "DenseShiftLinear": "sw.layers",
    "quantize_model": "sw.layers",
    "DenseShiftConv1d": "sw.layers",
    "ShiftConv1d": "sw.layers",
    "ShiftConv2d": "sw.layers",
    "ShiftLinear": "sw.layers",
    "snapshot_weights": "sw.layers",
    "weight_changes": "sw.layers",
    "export_model": "sw.export",
    # recurrent layers and tensor trains
    "DenseShiftLSTM": "sw.recurrent",
    "DenseShiftGRU": "sw.recurrent",
    "ShiftLSTM": "sw.recurrent",
    "ShiftGRU": "sw.recurrent",
    "MPSLinear": "sw.mps",
    "MPOLinear": "sw.mps",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sw' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
