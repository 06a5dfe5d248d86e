"""Exact multi-limb fixed-point integers held in int64 tensors, for the golden model.

A number is a stack of limbs (axis 0, least significant first) of ``lb`` bits each:
``value = sum_j limbs[j] * 2**(j*lb)``. :func:`carry` normalises a stack, :func:`limb` cuts a
shifted significand into limbs, :func:`round_limbs` rounds a nonnegative stack to a
:class:`contract.FloatFormat` (nearest even) with the same rules as the rest of the model.
"""

from __future__ import annotations

import torch

from contract import FloatFormat

__all__ = ["limb", "carry", "round_limbs"]


def limb(sig: torch.Tensor, sh: torch.Tensor, j: int, lb: int) -> torch.Tensor:
    """Bits ``[j*lb, (j+1)*lb)`` of ``sig * 2**sh`` (``0 <= sig < 2**62``, ``sh >= 0``)."""
    t = j * lb - sh                                   # bit of sig that lands on the limb's LSB
    right = (sig >> t.clamp(0, 63)) & ((1 << lb) - 1)
    u = (-t).clamp(0, lb)
    left = (sig & ((1 << (lb - u)) - 1)) << u
    return torch.where(t >= 0, right, left)


def carry(limbs: torch.Tensor, lb: int) -> torch.Tensor:
    """Normalise limbs (axis 0, least significant first): all but the top in ``[0, 2**lb)``,
    the top one signed. The value is unchanged."""
    out = torch.empty_like(limbs)
    c = torch.zeros_like(limbs[0])
    mask = (1 << lb) - 1
    for j in range(limbs.shape[0] - 1):
        v = limbs[j] + c
        out[j] = v & mask
        c = v >> lb
    out[-1] = limbs[-1] + c
    return out


def round_limbs(mag: torch.Tensor, lsb, lb: int, fmt: FloatFormat) -> torch.Tensor:
    """Round the nonnegative multi-limb integers ``mag * 2**lsb`` (``mag``: normalised limbs,
    axis 0; ``lsb`` an int or a tensor broadcastable to one limb) to ``fmt``, nearest even,
    overflow to ``+inf``; returns unsigned patterns (zero for zero)."""
    jstar = torch.zeros(mag.shape[1:], dtype=torch.int64)
    lead = torch.zeros(mag.shape[1:], dtype=torch.int64)
    for j in range(mag.shape[0]):
        nz = mag[j] != 0
        jstar = torch.where(nz, j, jstar)
        lead = torch.where(nz, mag[j], lead)
    _, e = torch.frexp(lead.to(torch.float64))        # lead < 2**53: exact
    top = jstar * lb + e.to(torch.int64) - 1          # leading one's bit index
    exp = top + lsb                                   # its weight 2**exp
    binade = exp.clamp(min=fmt.emin)
    sh = binade - fmt.frac_bits - 1 - lsb             # guard bit's index
    window = torch.zeros_like(top)                    # floor(mag / 2**sh): kept bits + guard
    sticky = torch.zeros(top.shape, dtype=torch.bool)
    for j in range(mag.shape[0]):
        part = mag[j]
        t = j * lb - sh
        up = part << t.clamp(0, 62)
        down = part >> (-t).clamp(0, 63)
        window += torch.where(t >= 0, up, down)
        low = (1 << (-t).clamp(0, lb)) - 1
        sticky |= (t < 0) & ((part & low) != 0)
    kept = window >> 1
    kept += (window & 1) & ((kept & 1) | sticky.to(torch.int64))
    body = ((binade - fmt.emin).clamp(max=fmt.emax - fmt.emin) << fmt.frac_bits) + kept
    return torch.where((binade > fmt.emax) | (body >= fmt.pos_inf), fmt.pos_inf, body)
