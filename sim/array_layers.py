"""Random layers for the PE array and their check against the golden model.

Shared by ``make sim`` (:mod:`sim.run`), the soak (:mod:`sim.soak`) and the tests: a
:class:`~sim.array_driver.Layer` of one value flavor of :mod:`sim.payload` (mixed magnitudes,
specials, exact cancellation, overflow, underflow, zeros ...), its golden result, and one
message line per differing output (seed, layer, position, operands, both patterns in hex).
"""

from __future__ import annotations

import numpy as np

from contract.array import ArrayConfig

from .array_driver import Layer
from .payload import FLAVORS, random_group

__all__ = ["random_layer", "golden", "mismatches", "layer_mix", "abort_point", "stall_probs",
           "estimated_clocks", "SPECIAL_FLAVORS"]

#: The flavors whose values exercise the contract's special cases.
SPECIAL_FLAVORS = ("special", "inf_nan", "cancel", "near_cancel", "zeros", "overflow",
                   "underflow")


def random_layer(cfg: ArrayConfig, rng, n, k, m, *, flavor=None, per_channel=None, bias=None,
                 relu=None, **kw) -> Layer:
    """A random ``(n, k, m)`` layer of ``flavor`` (default: drawn from
    :data:`sim.payload.FLAVORS`), per-tensor or per-channel ``e0`` (drawn unless given), with or
    without bias (``True`` forces one), ReLU as drawn unless given; ``kw`` goes to
    :class:`~sim.array_driver.Layer` (``abort_after``, ``stall``, ``merge_frames``)."""
    if cfg.pe_fmt != cfg.in_fmt or cfg.mx_block:
        return _narrow_layer(cfg, rng, n, k, m, flavor=flavor, per_channel=per_channel,
                             bias=bias, relu=relu, **kw)
    flavor = flavor or str(rng.choice(FLAVORS))
    g = random_group(rng, cfg.dot_config, k, n, m, flavor)
    per_channel = bool(rng.random() < 0.5) if per_channel is None else per_channel
    e0 = g.e0.astype(np.int64) if per_channel else int(g.e0[0])
    b = g.bias
    if bias is True and b is None:
        b = rng.integers(0, 1 << (cfg.out_fmt.width - 1), m).astype(np.uint64)
    elif bias is False:
        b = None
    return Layer(g.x.astype(np.uint64), g.codes, e0, b, g.relu if relu is None else relu, **kw)


#: Value flavors of narrow and MX layers (every element pattern is drawn, NaN included).
NARROW_FLAVORS = ("uniform", "large", "small", "zeros", "scales")


def _narrow_layer(cfg, rng, n, k, m, *, flavor, per_channel, bias, relu, **kw) -> Layer:
    """A random layer for an ``fp8_e4m3fn`` or MX array: element patterns drawn over the whole
    pattern space (``large``: the top binades, towards overflow; ``small``: subnormals and
    zeros; ``zeros``: signed zeros only; ``scales``: MX scales at and beyond the window's
    edges and NaN), MX scales drawn inside the window, a few at its edges."""
    fmt = cfg.in_fmt
    flavor = flavor if flavor in NARROW_FLAVORS else str(rng.choice(NARROW_FLAVORS))
    x = rng.integers(0, 1 << fmt.width, (n, k))
    sign = (rng.integers(0, 2, (n, k)) << (fmt.width - 1))
    if flavor == "large":
        x = sign | (fmt.max_finite - rng.integers(0, 1 << fmt.frac_bits, (n, k)))
    elif flavor == "small":
        x = sign | rng.integers(0, 1 << fmt.frac_bits, (n, k))
    elif flavor == "zeros":
        x = sign
    scales = None
    if cfg.mx_block:
        lo, hi = 127 + cfg.scale_min, 127 + cfg.scale_max
        scales = rng.integers(lo, hi + 1, (n, -(-k // cfg.mx_block)))
        edges = np.array([lo, hi, max(lo - 1, 0), min(hi + 1, 0xFF), 0xFF])
        share = 0.5 if flavor == "scales" else 0.05
        pick = rng.random(scales.shape) < share
        scales = np.where(pick, rng.choice(edges, scales.shape), scales)
    codes = rng.integers(0, 1 << cfg.wbits, (m, k))
    e0s = rng.integers(cfg.e0_min, cfg.e0_max + 1, m)
    per_channel = bool(rng.random() < 0.5) if per_channel is None else per_channel
    e0 = e0s.astype(np.int64) if per_channel else int(e0s[0])
    b = None
    if bias is True or (bias is None and rng.random() < 0.5):
        b = rng.integers(0, 1 << (cfg.out_fmt.width - 1), m).astype(np.uint64)
    relu = bool(rng.random() < 0.3) if relu is None else relu
    return Layer(x.astype(np.uint64), codes, e0, b, relu, scales=scales, **kw)


def golden(cfg: ArrayConfig, layer: Layer) -> np.ndarray:
    """``sw.golden.gemm_golden`` of ``layer``: (N, M) int64 raw ``out_fmt`` patterns (MX
    layers through :func:`sw.mx.fold_scales`)."""
    from sw.golden import gemm_golden

    if cfg.mx_block:
        from sw.mx import fold_scales

        x, fmt = fold_scales(np.asarray(layer.x_bits, dtype=np.int64), layer.scales,
                             cfg.in_fmt, scale_min=cfg.scale_min, scale_max=cfg.scale_max)
        return gemm_golden(x, layer.codes, layer.e0, in_fmt=fmt, wbits=cfg.wbits,
                           out_fmt=cfg.out_fmt, bias_bits=layer.bias_bits, relu=layer.relu,
                           config=cfg.dot_config).numpy()
    return gemm_golden(layer.x_bits, layer.codes, layer.e0, in_fmt=cfg.in_fmt, wbits=cfg.wbits,
                       out_fmt=cfg.out_fmt, bias_bits=layer.bias_bits, relu=layer.relu,
                       config=cfg.dot_config).numpy()


def mismatches(cfg: ArrayConfig, layer: Layer, got, want, *, seed, index, limit=5) -> list[str]:
    """One line per differing output (the first ``limit``, then a count): seed, layer, position,
    operands, both results (hex)."""
    if got is None:
        return [f"seed {seed} layer {index}: no result"]
    w = -(-cfg.out_fmt.width // 4)
    out = []
    for n, m in np.argwhere(got != want)[:limit]:
        x = " ".join(f"{int(v):0{-(-cfg.in_fmt.width // 4)}x}" for v in layer.x_bits[n][:16])
        c = " ".join(f"{int(v):x}" for v in layer.codes[m][:16])
        e0 = layer.e0[m] if layer.per_channel else layer.e0
        b = None if layer.bias_bits is None else f"{int(layer.bias_bits[m]):0{w}x}"
        out.append(f"mismatch: seed {seed} layer {index} shape {layer.shape} Y[{n},{m}]: expected "
                   f"{int(want[n, m]):0{w}x} got {int(got[n, m]):0{w}x}; x[{n}]={x} "
                   f"codes[{m}]={c} e0={e0} bias={b} relu={layer.relu}")
    total = int((got != want).sum())
    if total > limit:
        out.append(f"... {total} mismatches in all")
    return out


def estimated_clocks(cfg: ArrayConfig, n, k, m, stall=0.0) -> int:
    """A rough clock count of a layer: its compute-bound time plus the first weight load,
    stretched by the stalls."""
    f = cfg.framing(n, k, m)
    est = f["m_tiles"] * f["n_tiles"] * max(k, cfg.rows * cfg.cols) + cfg.cols * (k + 2 + k)
    return int(est / (1 - max(np.atleast_1d(stall))))


def abort_point(cfg, rng, n, k, m, stall=0.4, lo=0.3, hi=0.8):
    """A clock count in the middle of a layer (``lo``..``hi`` of its estimated duration)."""
    return max(1, int(estimated_clocks(cfg, n, k, m, stall) * rng.uniform(lo, hi)))


def stall_probs(rng, levels=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9)) -> tuple[float, float, float]:
    """Independent stall probabilities for the activation, weight and result streams."""
    return tuple(float(rng.choice(levels)) for _ in range(3))


def layer_mix(cfg, rng, count, *, nmax, kmax, mmax, abort_at=None, stall=None):
    """``count`` layers with random ragged shapes and settings; the layer ``abort_at`` is
    reset in the middle. ``stall``: a function ``rng -> probabilities`` per layer (default:
    the run's)."""
    layers = []
    for i in range(count):
        n = int(rng.integers(1, nmax + 1))
        k = int(rng.integers(1, kmax + 1))
        m = int(rng.integers(1, mmax + 1))
        layer = random_layer(cfg, rng, n, k, m)
        if stall is not None:
            layer.stall = stall(rng)
        if i == abort_at:
            layer.abort_after = abort_point(cfg, rng, n, k, m)
        layers.append(layer)
    return layers
