"""Golden model fast path: exact DenseShift GEMMs as float64 BLAS matrix products.

Same contract and the same bits as :func:`sw.golden.gemm_reference` (``docs/arithmetic.md``);
:func:`sw.golden.gemm_golden` calls :func:`gemm_blas` and falls back to the reference when it
returns ``None`` (formats or offsets outside float64's comfortable range, see
:func:`eligible`).

Why the products are exact
--------------------------
Every activation is a float64 value (every :class:`contract.FloatFormat` fits in float64), every
weight is ``±2**p`` with ``0 <= p <= pmax``, so every product ``x*w`` is exact in float64.

*Lemma.* Let ``u`` be an integer and ``t_1 .. t_K`` float64 numbers that are all integer
multiples of ``2**u`` with ``sum |t_k| <= 2**(53+u)``. Then every summation order, with or
without fused multiply-adds, returns the exact sum. *Proof:* every partial sum is an integer
multiple of ``2**u`` of magnitude at most ``2**(53+u)``, hence a float64 number (at most 53
significant bits; :func:`eligible` keeps ``u`` and the magnitudes far inside float64's normal
range, so flushing subnormals changes nothing either), so every rounded addition returns its
exact result; an FMA ``a*b + c`` with ``a*b`` a product term has an exact result of the same
kind. A BLAS ``dgemm`` computes each output as such a sum: blocked, vectorised or threaded
kernels only regroup the additions (no Strassen-like algorithm, which changes the operations,
is used by MKL or OpenBLAS).

A row ``x`` of X has a *unit* ``u``: every activation of the row is a multiple of ``2**u``
(``u = max(floor(log2 min|x_k|), emin) - frac_bits`` over its nonzero terms) and an L1 bound
``A >= sum_k |x_k|`` (the float64 sum times ``1 + 2**-20``, more than its rounding error for
``K <= 2**24``). Its products ``x_k * w_k`` are multiples of ``2**u`` with ``sum |x_k w_k| <=
2**pmax * A``. So:

* **One part** (``J = 1``) when ``2**pmax * A <= 2**(53+u)``: ``S = X @ W.T`` is exact.
  Without data: ``K * max_finite * 2**pmax <= 2**(53 + lsb_exp)`` holds for every row of every
  input; for fp16 with ``B = 3`` that is ``K <= 1024`` (at ``K = 1024`` the bound is
  ``2**53 - 2**42``, at ``K = 1025`` it fails).
* **Several parts** otherwise. With ``lb = 53 - pmax - ceil(log2 K)`` and boundaries
  ``s_j = u + j*lb`` (``j = 1 .. J-1``) the row is split exactly into ``x = sum_j x_j``:
  ``x_top = RN(x, 2**s_(J-1))`` (round to a multiple; ``(x + c) - c`` with ``c = 1.5 *
  2**(52+s)``, valid for ``|x| <= 2**(51+s)``), then each remainder is rounded to the next grid
  down; the last remainder is the bottom part. Remainders of a rounding to a grid are exact
  float64 numbers. Part ``j < J-1`` holds multiples of ``2**s_j`` of magnitude ``<=
  2**(s_j + lb - 1)``, so its products sum to at most ``K * 2**(pmax + s_j + lb - 1) <=
  2**(52 + s_j)``; the top part holds multiples of ``2**s`` with ``|x_top| <= |x| + 2**(s-1)``,
  so its products sum to at most ``2**pmax * (A + K * 2**(s-1))``, which is ``<= 2**(52+s)``
  by the choice of ``J`` (smallest ``J`` with ``q <= 2**s``, ``q = 2**pmax * A / (2**52 - K *
  2**(pmax-1))``). Each part is one BLAS matrix product, exact by the lemma, and ``S_j /
  2**s_j`` is an integer of at most 52 bits.

How the parts are rounded
-------------------------
Rows of a block that fit one part take one product; the others are split into the number of
parts the widest of them needs (rows needing fewer parts are split on the same rule, their
bounds only get looser).

* ``J = 1``: ``P = S * 2**e0`` is exact (a power-of-two scale). With a bias ``B``: both are
  multiples of ``2**g`` (``g``: the smaller of the rows' unit plus ``e0`` and the ulp of the
  smallest nonzero bias); when ``max|P| + max|B| <= 2**(52+g)`` the float64 sum ``t = P + B`` is
  exact; otherwise TwoSum gives ``t + err = P + B`` exactly and
  ``t`` is moved one ulp towards ``err`` when ``err != 0`` and its significand is even: that is
  ``P + B`` rounded to odd at 53 bits. Rounding that once more to nearest even at ``frac_bits +
  1 <= 51`` bits gives the correctly rounded sum (rounding to odd, then to nearest with at
  least two bits fewer, is one correct rounding; Boldo and Melquiond, IEEE TC 57(4), 2008).
* ``J = 2``: ``(s, e1) = TwoSum(P_1, P_0)``, ``(t, e2) = TwoSum(s, B)``, ``(w, f) =
  TwoSum(e2, e1)`` leave ``P_1 + P_0 + B = t + w + f`` exactly. Where ``f == 0``, ``(h, l) =
  TwoSum(t, w)`` gives the sum as ``h + l`` and it is rounded as for ``J = 1``; the outputs
  with ``f != 0`` (bias and products far apart) take the integer path below.
* ``J >= 3``: the integers ``S_j / 2**s_j`` are the limbs of a fixed-point number (limb width
  ``lb``) whose least significant bit weighs ``2**(u + e0)``; the bias is added at its position
  and the result rounded once, as the reference does (:mod:`sw.limbs`).

The final rounding of a float64 ``t`` to an output format with a torch dtype adds and
subtracts ``1.5 * 2**52`` output ulps of ``t``'s binade (float64 addition rounds to nearest
even on that grid; exact below ``2**51`` ulps), then converts the now representable value
exactly (or to ``±inf`` past the largest binade); other formats use integer operations on the
float64 bit pattern. A sum is exactly zero exactly when ``t == 0``.

Signed zeros, infinities and NaNs follow the contract with the same rules as the reference:
a sum that is exactly zero is ``-0`` only in a row whose activations are all zeros when every
product (and the bias) is ``-0``; rows with an infinity or a NaN are decided by counting.
"""

from __future__ import annotations

import torch

from contract import FloatFormat, max_exponent_code

from .fpbits import classify, significand
from .limbs import carry, limb, round_limbs

__all__ = ["gemm_blas", "prepare", "rows_from_bits", "rows_from_values", "eligible", "decode",
           "weight_values", "part_counts", "parts_needed", "split_parts", "round_float64",
           "static_one_part"]

_MAG = (1 << 63) - 1           # magnitude bits of a float64 pattern
LIMIT = 1000                    # |exponents| stay below this: far from float64's 1023 and -1074
_FLOAT32_SUB = {(8, 23), (8, 7)}  # formats whose subnormals are float32 subnormals
_VIEWS = {(5, 10): (torch.int16, torch.float16), (8, 7): (torch.int16, torch.bfloat16),
          (8, 23): (torch.int32, torch.float32), (5, 2): (torch.uint8, torch.float8_e5m2)}


def eligible(in_fmt: FloatFormat, out_fmt: FloatFormat, pmax: int, e0_lo: int,
             e0_hi: int) -> bool:
    """Whether every float64 quantity of the fast path (products, sums of up to ``2**24`` terms,
    ``2**e0`` scaled sums, the bias, part boundaries and rounding-to-odd with two spare bits)
    stays exact and finite."""
    return (out_fmt.frac_bits <= 50 and out_fmt.lsb_exp >= -LIMIT and out_fmt.msb_exp <= LIMIT
            and in_fmt.lsb_exp + min(e0_lo, 0) >= -LIMIT
            and in_fmt.msb_exp + pmax + 24 + max(e0_hi, 0) <= LIMIT)


def _geometry(fmt: FloatFormat):
    """``(exp_bits, frac_bits)`` of an IEEE format with the standard bias (the key of the torch
    dtypes), ``None`` for any other (carriers with their own bias)."""
    return (fmt.exp_bits, fmt.frac_bits) if fmt.is_ieee and fmt.exp_bias is None else None


def _denormals_flushed() -> bool:
    t = torch.tensor([1], dtype=torch.int32).view(torch.float32).to(torch.float64)
    return bool(t[0] == 0)


def decode(bits: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """int64 raw patterns -> exact float64 values (``±inf`` for infinities, NaN for NaNs)."""
    view = _VIEWS.get(_geometry(fmt))
    if view is not None and not ((fmt.exp_bits, fmt.frac_bits) in _FLOAT32_SUB
                                 and _denormals_flushed()):
        itype, ftype = view
        v = bits.to(itype).view(ftype)
        return (v if ftype == torch.float32 else v.to(torch.float32)).to(torch.float64)
    cls = classify(bits, fmt)
    sig, shift = significand(bits, fmt)
    mag = torch.ldexp(sig.to(torch.float64), (shift + fmt.lsb_exp).to(torch.float64))
    mag = torch.where(cls.inf, float("inf"), mag)
    mag = torch.where(cls.nan, float("nan"), mag)
    return torch.where(cls.sign, -mag, mag)


def weight_values(codes: torch.Tensor, wbits: int) -> torch.Tensor:
    """Weight codes -> float64 ``±2**p`` (no ``e0``)."""
    pmax = max_exponent_code(wbits)
    table = torch.tensor([(-1.0 if c >> (wbits - 1) else 1.0) * 2.0 ** (c & pmax)
                          for c in range(1 << wbits)], dtype=torch.float64)
    return table.index_select(0, codes.reshape(-1)).reshape(codes.shape)


def _ceil_log2(k: int) -> int:
    return (k - 1).bit_length()


def static_one_part(in_fmt: FloatFormat, k: int, pmax: int) -> bool:
    """``K * max_finite * 2**pmax <= 2**(53 + lsb_exp)``: one part for any input."""
    return k * ((1 << (in_fmt.frac_bits + 1)) - 1) << (in_fmt.emax - in_fmt.emin + pmax) \
        <= 1 << 53


def part_counts(x64: torch.Tensor, in_fmt: FloatFormat, pmax: int):
    """``(J, u)`` per row of ``x64`` (finite values, shape (N, K)): the parts each row needs
    and its unit exponent, both (N,) int64, as in the module docstring."""
    n, k = x64.shape
    ax = x64.abs()
    a = ax.sum(dim=1) * (1.0 + 2.0 ** -20)
    # smallest nonzero |x| per row (rows of zeros: -0.0, unused): the bit patterns of
    # nonnegative floats are ordered, and (pattern - 1) mod 2**63 sends +0 above all others
    mn = (ax.view(torch.int64) - 1).bitwise_and_(_MAG).amin(dim=1).add_(1).view(torch.float64)
    _, e = torch.frexp(mn)                                          # mn in [2**(e-1), 2**e)
    u = ((e.to(torch.int64) - 1).clamp(min=in_fmt.emin) - in_fmt.frac_bits)
    one = a <= torch.ldexp(torch.ones(n, dtype=torch.float64),
                           (53 + u - pmax).to(torch.float64))
    if bool(one.all()):
        return torch.ones(n, dtype=torch.int64), u
    lb = _limb_bits(pmax, k)
    q = a * (2.0 ** pmax / ((1 << 52) - k * (1 << (pmax - 1)))) * (1.0 + 2.0 ** -40)
    _, eq = torch.frexp(q)                                          # q < 2**eq
    j = (-((u - eq.to(torch.int64)) // lb)).clamp(min=1)            # ceil((eq - u) / lb)
    return torch.where(one, 1, j + 1), u


def parts_needed(x64: torch.Tensor, in_fmt: FloatFormat, pmax: int):
    """``(J, u)``: the parts the rows of ``x64`` need together (the most any row needs) and
    each row's unit exponent (N,)."""
    counts, u = part_counts(x64, in_fmt, pmax)
    return int(counts.max()) if counts.numel() else 1, u


def _limb_bits(pmax: int, k: int) -> int:
    return 53 - pmax - _ceil_log2(k)


def split_parts(x64: torch.Tensor, u: torch.Tensor, j_count: int, pmax: int, k: int):
    """Split the rows of ``x64`` exactly into ``j_count`` parts (module docstring): a list of
    ``(part (N, K), s (N,))``, bottom first, part ``j`` on the grid ``2**s``."""
    lb = _limb_bits(pmax, k)
    parts = []
    r = x64
    for j in range(j_count - 1, 0, -1):
        s = u + j * lb
        c = torch.ldexp(torch.full(s.shape, 1.5, dtype=torch.float64),
                        (52 + s).to(torch.float64))[:, None]
        p = (r + c) - c                               # RN(r, 2**s): |r| <= 2**(51+s)
        r = r - p                                     # exact
        parts.append((p, s))
    parts.append((r, u))
    parts.reverse()
    return parts


# -- rounding -------------------------------------------------------------------------------

_DTYPES = {(5, 10): (torch.float16, torch.int16), (8, 7): (torch.bfloat16, torch.int16),
           (8, 23): (torch.float32, torch.int32), (5, 2): (torch.float8_e5m2, torch.uint8)}


def round_float64(t: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """Round float64 ``t`` (the exact value, or its round-to-odd at 53 bits) to ``fmt``, nearest
    even, overflow to ``±inf``; returns signed int64 patterns (``±0`` for zeros). ``t`` is
    overwritten.

    Formats with a torch dtype: ``t`` is rounded to its grid ``2**(max(e, emin) - frac_bits)``
    by adding and subtracting ``1.5 * 2**52`` times the grid step (exact below ``2**51``
    steps; the float64 addition rounds to nearest even on that grid), then converted exactly
    (or to ``±inf`` past the largest binade). Other formats: integer operations on the bit
    patterns."""
    tb = t.view(torch.int64)
    dtypes = _DTYPES.get(_geometry(fmt))
    if dtypes is None or (dtypes[0] in (torch.float32, torch.bfloat16) and _denormals_flushed()):
        return _round_bits(tb, fmt)
    sign = (tb >> (64 - fmt.width)) & fmt.sign_mask
    c = (tb >> 52).bitwise_and_(0x7FF).clamp_(min=fmt.emin + 1023, max=fmt.emax + 1024)
    c = c.add_(52 - fmt.frac_bits).bitwise_left_shift_(52).bitwise_or_(1 << 51)
    c = c.view(torch.float64)
    t.add_(c).sub_(c)
    ftype, itype = dtypes
    y = t.to(ftype).view(itype).to(torch.int64)
    if itype != torch.uint8:
        y.bitwise_and_((1 << fmt.width) - 1)
    return y.bitwise_or_(sign)


def _round_bits(tb: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    neg = tb >> 63                                        # 0 or -1
    mag = tb & _MAG
    big_e = mag >> 52
    man = (mag & ((1 << 52) - 1)) | ((big_e != 0).to(torch.int64) << 52)
    binade = (big_e - 1023).clamp(min=fmt.emin)
    sh = (binade + (1075 - fmt.frac_bits) - big_e.clamp(min=1)).clamp(max=62)
    kept = man >> sh
    half = (man >> (sh - 1)) & 1
    sticky = (man & ((1 << (sh - 1)) - 1)) != 0
    kept += half & (sticky.to(torch.int64) | kept)
    body = (((binade - fmt.emin) << fmt.frac_bits) + kept).clamp(max=fmt.pos_inf)
    return body | (neg & fmt.sign_mask)


def _round_to_odd(t: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
    """``t + err`` exactly (TwoSum's output) -> its round-to-odd at 53 bits; ``t`` is
    overwritten and returned."""
    d = torch.sign(err).mul_(torch.sign(t)).to(torch.int64)    # +1: |exact| > |t|
    tb = t.view(torch.int64)
    tb.add_(d.mul_(1 - (tb & 1)))
    return t


def _one_part(s: torch.Tensor, prep, u_min: int):
    """J = 1: ``s`` exact sums (N, M), overwritten, of activations that are all multiples of
    ``2**u_min``. Returns (patterns, exact-zero mask)."""
    scale = prep.scale
    if not (isinstance(scale, float) and scale == 1.0):
        s.mul_(scale)
    if prep.bias64 is not None:
        # P = S * 2**e0 and B are multiples of 2**g: P + B is exact when it stays below
        # 2**(53+g) (the bound below keeps a factor 2 for the rounding of its own sum)
        g = min(u_min + prep.e0_min, prep.bias_lsb)
        lo, hi = torch.aminmax(s)
        if max(-float(lo), float(hi)) + prep.bias_max <= 2.0 ** (52 + g):
            s.add_(prep.bias64)
        else:
            t = s + prep.bias64
            bb = t - s
            err = s.sub_(t - bb).add_(bb.neg_().add_(prep.bias64))
            s = _round_to_odd(t, err)
    zero = s == 0
    out = round_float64(s, prep.out_fmt)
    if bool(zero.any()):
        out.masked_fill_(zero, 0)
    return out, zero


def _bias_parts(b, out_fmt):
    bcl = classify(b, out_fmt)
    bsig, bshift = significand(b, out_fmt)
    return bcl, bsig, bshift + out_fmt.lsb_exp


def _two_sum(a: torch.Tensor, b: torch.Tensor):
    """Knuth's TwoSum: ``s + e == a + b`` exactly, ``s = fl(a + b)`` (no overflow)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)).add_(b - bb)
    return s, e


def _multi_part(parts, prep):
    """J >= 2: ``parts`` list of (x part (N, K), s (N,)) bottom first. Returns (patterns,
    exact-zero mask).

    J = 2 in float64: with ``P_j = S_j * 2**e0``, ``(s, e1) = TwoSum(P_1, P_0)``, ``(t, e2) =
    TwoSum(s, B)``, ``(w, f) = TwoSum(e2, e1)`` leave ``V = t + w + f`` exactly; where ``f ==
    0``, ``(h, l) = TwoSum(t, w)`` gives ``V = h + l`` and the rounding-to-odd of :func:`_one_part`.
    Elsewhere (``f != 0``: the bias and the products far apart) and for J >= 3, the limbs
    ``S_j / 2**s_j`` are combined in integers (:func:`_limbs_round`)."""
    sums = [_product(xp, prep) for xp, _ in parts]
    u = parts[0][1]
    n, m = sums[0].shape
    if len(parts) == 2:
        scale = prep.scale
        p1, p0 = sums[1] * scale, sums[0] * scale
        t, err = _two_sum(p1, p0)
        bad = None
        if prep.bias64 is not None:
            t, e2 = _two_sum(t, prep.bias64.expand(n, m))
            w, f = _two_sum(e2, err)
            bad = f != 0
            t, err = _two_sum(t, w)
        zero = t == 0
        out = round_float64(_round_to_odd(t, err), prep.out_fmt)
        if bool(zero.any()):
            out.masked_fill_(zero, 0)
        if bad is None or not bool(bad.any()):
            return out, zero
        idx = torch.nonzero(bad.view(-1)).flatten()
        rows, cols = idx // m, idx % m
        limbs = [(sj.view(-1)[idx] * torch.ldexp(torch.ones(idx.shape, dtype=torch.float64),
                                                 (-s[rows]).to(torch.float64))).to(torch.int64)
                 for sj, (_, s) in zip(sums, parts, strict=True)]
        y, z = _limbs_round(limbs, u[rows] + prep.e0t[cols], _limb_bits(prep.pmax, prep.k),
                            prep, cols)
        out.view(-1)[idx] = y
        zero.view(-1)[idx] = z
        return out, zero
    limbs = []
    for sj, (_, s) in zip(sums, parts, strict=True):
        sc = torch.ldexp(torch.ones(s.shape, dtype=torch.float64), (-s).to(torch.float64))
        limbs.append((sj * sc[:, None]).to(torch.int64))
    return _limbs_round(limbs, u[:, None] + prep.e0t[None, :], _limb_bits(prep.pmax, prep.k),
                        prep, None)


def _limbs_round(parts, a, lb, prep, cols):
    """Exact ``sum_j parts[j] * 2**(a + j*lb) + bias`` rounded to the output format, as the
    reference does it: int64 limbs of ``lb`` bits, the bias added at its position (or, far
    above or below the products, decided without adding it). ``parts`` int64 tensors of the
    shape of ``a``; the bias of output column ``cols`` (a tensor of the shape of ``a``) or,
    with ``cols`` None, broadcast along the last axis. Returns (patterns, exact-zero mask)."""
    out_fmt = prep.out_fmt
    fo = out_fmt.frac_bits + 1
    ptop = (len(parts) - 1) * lb + 53                 # |products| < 2**(a + ptop)
    low_room = lb * -(-(2 * fo + 2) // lb)            # room below the products for the bias
    nl = -(-(low_room + ptop + 2 * fo + 4) // lb)
    limbs = torch.zeros((nl, *a.shape), dtype=torch.int64)
    off = low_room // lb
    for j, part in enumerate(parts):
        limbs[off + j] = part
    limbs = carry(limbs, lb)
    base = a - low_room
    high = low = torch.zeros(a.shape, dtype=torch.bool)
    b = prep.b
    if b is not None:
        bcl, bsig, bexp = prep.bias_info
        bnz, bneg = bcl.finite_nonzero, bcl.sign
        if cols is None:
            b, bsig, bexp, bnz, bneg = (v[None, :] for v in (b, bsig, bexp, bnz, bneg))
        else:
            b, bsig, bexp, bnz, bneg = (v[cols] for v in (b, bsig, bexp, bnz, bneg))
        prod_zero = (limbs == 0).all(dim=0)
        high = bnz & (bexp >= a + ptop + fo + 2)     # products < bias ulp / 4: the bias
        low = bnz & (bexp + fo <= a - fo - 3)        # the bias acts as a sign below
        gsig = torch.where(low, 1, torch.where(bnz & ~high, bsig, 0))
        gexp = torch.where(low, a - fo - 4, bexp)
        bsh = (gexp - base).clamp(min=0)
        for j in range(nl):
            bl = limb(gsig, bsh, j, lb)
            limbs[j] += torch.where(bneg, -bl, bl)
        limbs = carry(limbs, lb)
    neg = limbs[-1] < 0
    mag = carry(torch.where(neg, -limbs, limbs), lb)
    zero = (mag == 0).all(dim=0)
    y = round_limbs(mag, base, lb, out_fmt) | (neg.to(torch.int64) << (out_fmt.width - 1))
    y = torch.where(zero, 0, y)
    if b is not None:
        y = torch.where(high | (low & prod_zero), b, y)
    return y, zero & ~high


# -- signed zeros and special values --------------------------------------------------------

def _signed_zeros(out, zero, x64, codes, wbits, bias_negzero, out_fmt):
    """Exact zero sums in rows of zeros: ``-0`` when every product (and the bias) is ``-0``."""
    cand = torch.nonzero(zero.any(dim=1)).flatten()
    if not cand.numel():
        return
    rows = cand[(x64[cand] == 0).all(dim=1)]
    if not rows.numel():
        return
    xs = torch.signbit(x64[rows]).to(torch.float64)
    ws = ((codes >> (wbits - 1)) & 1).to(torch.float64)
    negcount = xs @ (1 - ws).T + (1 - xs) @ ws.T          # products that are -0
    allneg = negcount == codes.shape[1]
    if bias_negzero is not None:
        allneg &= bias_negzero[None, :]
    sub = out[rows]
    out[rows] = torch.where(zero[rows], torch.where(allneg, out_fmt.sign_mask, 0), sub)


def _specials(out, xc, codes, wbits, bcl, out_fmt):
    """Infinities and NaNs of the activations (``xc``, or None when there are none) and of the
    bias (``bcl`` or None)."""
    n, m = out.shape
    nan = pinf = ninf = None
    if xc is not None:
        nan = xc.nan.any(dim=1, keepdim=True).expand(n, m)
        pinf = torch.zeros((n, m), dtype=torch.bool)
        ninf = torch.zeros((n, m), dtype=torch.bool)
        inf_rows = torch.nonzero(xc.inf.any(dim=1)).flatten()
        if inf_rows.numel():
            pos, neg = xc.inf & ~xc.sign, xc.inf & xc.sign
            ind = torch.cat([pos[inf_rows], neg[inf_rows]], dim=1).to(torch.float64)
            s1 = ((codes >> (wbits - 1)) & 1).to(torch.float64)
            ppos = ind @ torch.cat([1 - s1, s1], dim=1).T      # +inf products
            total = xc.inf[inf_rows].sum(dim=1, keepdim=True).to(torch.float64)
            pinf[inf_rows] = ppos > 0
            ninf[inf_rows] = (total - ppos) > 0
    if bcl is not None and bool((bcl.nan | bcl.inf).any()):
        bnan = bcl.nan[None, :].expand(n, m)
        bp = (bcl.inf & ~bcl.sign)[None, :].expand(n, m)
        bn = (bcl.inf & bcl.sign)[None, :].expand(n, m)
        nan = bnan if nan is None else nan | bnan
        pinf = bp if pinf is None else pinf | bp
        ninf = bn if ninf is None else ninf | bn
    if nan is None:
        return out
    nan = nan | (pinf & ninf)
    out = torch.where(pinf, out_fmt.pos_inf, out)
    out = torch.where(ninf, out_fmt.neg_inf, out)
    return torch.where(nan, out_fmt.canonical_nan, out)


# -- the GEMM ---------------------------------------------------------------------------------

class _Prepared:
    """Per-call state shared by the row blocks (weights, offsets, bias)."""

    def __init__(self, codes, e0t, b, in_fmt, out_fmt, wbits):
        self.codes, self.b, self.in_fmt, self.out_fmt, self.wbits = codes, b, in_fmt, out_fmt, \
            wbits
        self.k = codes.shape[1]
        self.pmax = max_exponent_code(wbits)
        self.w64 = weight_values(codes, wbits)
        self.e0t = e0t
        self.out_fmt = out_fmt
        lo, hi = int(e0t.min()), int(e0t.max())
        self.scale = 2.0 ** lo if lo == hi else torch.ldexp(
            torch.ones(e0t.shape, dtype=torch.float64), e0t.to(torch.float64))
        self.static_one = static_one_part(in_fmt, self.k, self.pmax)
        self.bcl = self.bias64 = self.bias_negzero = self._bias_info = None
        if b is not None:
            v = decode(b, out_fmt)
            finite = torch.isfinite(v)
            if not bool(finite.all()):                    # infinities or NaNs: classes
                self.bcl = classify(b, out_fmt)
                v = v.masked_fill(~finite, 0.0)
            self.bias64 = v
            self.bias_negzero = (v == 0) & torch.signbit(v)
            self.bias_max = float(v.abs().max())
            # every bias is a multiple of 2**bias_lsb: its smallest nonzero magnitude's ulp
            mn = (v.view(torch.int64) & _MAG).sub_(1).bitwise_and_(_MAG).min().add(1)
            _, e = torch.frexp(mn.view(torch.float64))
            self.bias_lsb = max(int(e) - 1, out_fmt.emin) - out_fmt.frac_bits
        self.e0_min = lo


    @property
    def bias_info(self):
        """(classes, significands, lsb exponents) of the bias, for the integer path."""
        if self._bias_info is None:
            self._bias_info = _bias_parts(self.b, self.out_fmt)
        return self._bias_info


def prepare(codes, e0t, b, in_fmt, out_fmt, wbits, threads: int = 1) -> _Prepared | None:
    """Weights, offsets and bias of a GEMM (validated int64 tensors), or ``None`` when
    :func:`eligible` refuses the formats and offsets. The matrix products run on ``threads``
    torch threads; call the rest with torch set to one thread (:func:`gemm_blas` does)."""
    pmax = max_exponent_code(wbits)
    if not eligible(in_fmt, out_fmt, pmax, int(e0t.min()), int(e0t.max())):
        return None
    prep = _Prepared(codes, e0t, b, in_fmt, out_fmt, wbits)
    prep.threads = threads
    return prep


def _product(x64: torch.Tensor, prep: _Prepared) -> torch.Tensor:
    """``x64 @ W.T`` (float64 BLAS) on ``prep.threads`` threads. Everything else runs on one:
    a few dozen elementwise passes, each a parallel region that waits for every thread, cost
    more than they gain when other processes share the cores."""
    if prep.threads == 1:
        return x64 @ prep.w64.T
    saved = torch.get_num_threads()
    torch.set_num_threads(prep.threads)
    try:
        return x64 @ prep.w64.T
    finally:
        torch.set_num_threads(saved)


def rows_from_bits(x: torch.Tensor, prep: _Prepared, relu: bool) -> torch.Tensor:
    """Output patterns (N, M) of the activation patterns ``x`` (N, K)."""
    x64 = decode(x, prep.in_fmt)
    xc = None
    if not bool(torch.isfinite(x64.sum())):
        xc = classify(x, prep.in_fmt)
        x64 = x64.masked_fill(xc.nan | xc.inf, 0.0)
    return rows_from_values(x64, xc, prep, relu)


def _several_parts(x64, counts, u, prep):
    parts = split_parts(x64, u, int(counts.max()), prep.pmax, prep.k)
    return _multi_part(parts, prep)


def rows_from_values(x64: torch.Tensor, xc, prep: _Prepared, relu: bool) -> torch.Tensor:
    """Output patterns (N, M) of finite activation values ``x64`` (N, K) float64 (``-0.0``
    kept); ``xc``: the classes of the original patterns when some were infinite or NaN (their
    values in ``x64`` are then 0), else None."""
    out_fmt = prep.out_fmt
    if prep.static_one:
        out, zero = _one_part(_product(x64, prep), prep, prep.in_fmt.lsb_exp)
    else:
        counts, u = part_counts(x64, prep.in_fmt, prep.pmax)
        ones = counts == 1
        n_one = int(ones.sum())
        if n_one == x64.shape[0]:
            out, zero = _one_part(_product(x64, prep), prep, int(u.min()))
        elif n_one == 0:
            out, zero = _several_parts(x64, counts, u, prep)
        else:                                         # one part where a row allows it
            out = torch.empty((x64.shape[0], prep.codes.shape[0]), dtype=torch.int64)
            zero = torch.empty(out.shape, dtype=torch.bool)
            rows = torch.nonzero(ones).flatten()
            out[rows], zero[rows] = _one_part(_product(x64[rows], prep), prep, int(u[rows].min()))
            rows = torch.nonzero(~ones).flatten()
            out[rows], zero[rows] = _several_parts(x64[rows], counts[rows], u[rows], prep)
    _signed_zeros(out, zero, x64, prep.codes, prep.wbits, prep.bias_negzero, out_fmt)
    out = _specials(out, xc, prep.codes, prep.wbits, prep.bcl, out_fmt)
    if relu:
        out = out.masked_fill((out & out_fmt.sign_mask) != 0, 0)
    return out


def gemm_blas(x, codes, e0t, b, in_fmt, out_fmt, wbits, relu, *, rows_per_block: int,
              threads: int = 1):
    """The fast path on validated arguments (int64 tensors: ``x`` (N, K) patterns, ``codes``
    (M, K), ``e0t`` (M,), ``b`` (M,) or None), matrix products on ``threads`` threads, to be
    called with torch set to one thread. Returns (N, M) int64 patterns, or ``None`` when
    :func:`eligible` refuses the formats and offsets."""
    n, m = x.shape[0], codes.shape[0]
    if m == 0 or n == 0:
        return torch.zeros((n, m), dtype=torch.int64)
    prep = prepare(codes, e0t, b, in_fmt, out_fmt, wbits, threads)
    if prep is None:
        return None
    if n <= rows_per_block:
        return rows_from_bits(x, prep, relu)
    return torch.cat([rows_from_bits(x[i:i + rows_per_block], prep, relu)
                      for i in range(0, n, rows_per_block)])
