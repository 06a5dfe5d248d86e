"""What the formal harnesses share: parameter checks and the exact reference terms (by case
split over the exponent field, no shifter)."""

from __future__ import annotations

from amaranth.hdl import Cat, Signal, unsigned

from contract import DotConfig

__all__ = ["check_dot_config", "check_fault", "exact_term", "classes"]


def check_dot_config(config):
    if not isinstance(config, DotConfig):
        raise TypeError(f"config must be a DotConfig, not {config!r}")


def check_fault(fault, allowed):
    if fault is not None and fault not in allowed:
        raise ValueError(f"fault must be None or one of {', '.join(allowed)}, not {fault!r}")


def exact_term(m, name, sign, exp, frac, fmt, extra_cases, shift_of, width):
    """Reference magnitude ``significand << shift_of(E, extra)`` by explicit case split over
    the exponent field ``E`` (finite values only) and ``extra`` (a small unsigned field given
    as ``(signal, values)``); 0 for non-finite ``E``. Returns an unsigned ``width``-bit
    signal."""
    mag = Signal(unsigned(width), name=f"{name}_ref_mag")
    extra, extra_values = extra_cases
    with m.Switch(Cat(extra, exp)):
        for e in range(fmt.exp_max_field):
            hidden = (1 << fmt.frac_bits) if e else 0
            for v in extra_values:
                shift = shift_of(e, v)
                assert shift >= 0, (e, v, shift)
                key = (e << len(extra)) | (v & ((1 << len(extra)) - 1))
                with m.Case(key):
                    m.d.comb += mag.eq((frac + hidden) << shift)
    return mag


def classes(fmt, bits):
    """``(finite, nan, inf, zero)`` of raw bits by comparison of the magnitude bits with the
    format's constants (independent of the unit's field decoder)."""
    mag_bits = bits[:fmt.width - 1]
    return (mag_bits < fmt.pos_inf, mag_bits > fmt.pos_inf, mag_bits == fmt.pos_inf,
            mag_bits == 0)
