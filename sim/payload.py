"""Input beats of ``densehw_dot`` and the test vectors that fill them.

Layout
------
``i__payload`` packs these fields, the first at the least significant bit (``IN_LAYOUT`` of
``hw.dot``)::

    x[lanes]  (in_fmt.width each, lane 0 lowest) | w[lanes] (wbits each) | keep (lanes) |
    last (1) | has_bias (1) | relu (1) | e0 (e0_bits, two's complement) | bias (out_fmt.width)

:func:`in_fields` computes the offsets from a :class:`~contract.DotConfig` alone; a test checks
that they agree with the gateware's own layout.

Vectors
-------
A :class:`Vectors` batch holds dot products with their terms stored flat (``x``, ``w``), one
``k`` per dot product, and the last-beat fields (``e0``, ``has_bias``, ``bias``, ``relu``).
Generators build batches group by group as small GEMMs (``N`` activation rows times ``M`` weight
rows sharing one ``K``), the shape the golden model takes, so the expected results of a whole
batch come from a few calls of ``sw.golden.gemm_golden``. :func:`build_beats` spreads each dot
product over one or more beats (dense or scattered over lanes with ``keep`` holes) and fills
every field that the unit must ignore (lanes with ``keep=0``, the last-beat fields of other
beats, ``bias`` without ``has_bias``) with random bits, NaN patterns included.

Pure NumPy; the golden model is imported only by :func:`expect`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from contract import DotConfig, FloatFormat

__all__ = [
    "FIELD_ORDER", "in_fields", "in_width", "pack_fields", "unpack_beat", "Vectors",
    "build_beats", "expect", "exhaustive_products", "random_dots", "backpressure_dots",
    "special_patterns", "mixed_patterns", "random_floats", "random_group", "FLAVORS",
]

FIELD_ORDER = ("x", "w", "keep", "last", "has_bias", "relu", "e0", "bias")


def in_fields(config: DotConfig) -> dict[str, tuple[int, int]]:
    """``{field: (offset, width)}`` of ``i__payload`` for ``config`` (``x``/``w`` span all
    lanes)."""
    if not isinstance(config, DotConfig):
        raise TypeError(f"config must be a DotConfig, not {config!r}")
    widths = {
        "x": config.lanes * config.in_fmt.width,
        "w": config.lanes * config.wbits,
        "keep": config.lanes,
        "last": 1, "has_bias": 1, "relu": 1,
        "e0": config.e0_bits,
        "bias": config.out_fmt.width,
    }
    out, offset = {}, 0
    for name in FIELD_ORDER:
        out[name] = (offset, widths[name])
        offset += widths[name]
    return out


def in_width(config: DotConfig) -> int:
    """Width of ``i__payload`` in bits."""
    offset, width = in_fields(config)["bias"]
    return offset + width


def pack_fields(total_width: int, fields) -> list[int]:
    """Pack ``[(offset, width, values)]`` (``values``: unsigned arrays of one length, each
    value below ``2**width``, ``width <= 64``) into one Python ``int`` per row."""
    fields = list(fields)
    n = len(fields[0][2])
    nwords = -(-total_width // 64)
    words = np.zeros((n, nwords + 1), dtype=np.uint64)
    for offset, width, values in fields:
        if not 0 < width <= 64:
            raise ValueError(f"field width {width} is not in [1, 64]")
        vals = np.asarray(values).astype(np.uint64)
        if len(vals) != n:
            raise ValueError(f"field at offset {offset} has {len(vals)} rows, expected {n}")
        if width < 64 and (vals >> np.uint64(width)).any():
            raise ValueError(f"a value of the field at offset {offset} exceeds {width} bits")
        wi, sh = divmod(offset, 64)
        words[:, wi] |= vals << np.uint64(sh)
        if sh and sh + width > 64:
            words[:, wi + 1] |= vals >> np.uint64(64 - sh)
    raw = words[:, :nwords].astype("<u8").tobytes()
    step = nwords * 8
    return [int.from_bytes(raw[i:i + step], "little") for i in range(0, len(raw), step)]


def unpack_beat(config: DotConfig, beat: int) -> dict:
    """Split one ``i__payload`` value into its fields (``x``, ``w`` as lists, ``e0`` signed)."""
    f = in_fields(config)

    def get(name):
        offset, width = f[name]
        return (beat >> offset) & ((1 << width) - 1)

    xw, ww = config.in_fmt.width, config.wbits
    x, w = get("x"), get("w")
    e0 = get("e0")
    if e0 >> (config.e0_bits - 1):
        e0 -= 1 << config.e0_bits
    return {
        "x": [(x >> (j * xw)) & ((1 << xw) - 1) for j in range(config.lanes)],
        "w": [(w >> (j * ww)) & ((1 << ww) - 1) for j in range(config.lanes)],
        "keep": get("keep"), "last": get("last"), "has_bias": get("has_bias"),
        "relu": get("relu"), "e0": e0, "bias": get("bias"),
    }


# -- vectors ------------------------------------------------------------------------------------
@dataclass
class Vectors:
    """A batch of dot products; terms of vector ``i`` are ``x[s:e]``, ``w[s:e]`` with
    ``s, e = starts[i], starts[i + 1]``. ``expected`` holds the golden raw output bits."""

    k: np.ndarray                    # (n,) int64, terms per dot product
    x: np.ndarray                    # (T,) uint64 raw input bits
    w: np.ndarray                    # (T,) uint8 weight codes
    e0: np.ndarray                   # (n,) int64
    has_bias: np.ndarray             # (n,) bool
    bias: np.ndarray                 # (n,) uint64 raw output-format bits (0 when no bias)
    relu: np.ndarray                 # (n,) bool
    expected: np.ndarray | None = None   # (n,) int64
    tags: list = field(default_factory=list)   # (n,) str: how the vector was made

    def __len__(self):
        return len(self.k)

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.k)]).astype(np.int64)

    @classmethod
    def concat(cls, parts) -> Vectors:
        parts = [p for p in parts if len(p)]
        exp = None
        if all(p.expected is not None for p in parts):
            exp = np.concatenate([p.expected for p in parts])
        return cls(
            k=np.concatenate([p.k for p in parts]), x=np.concatenate([p.x for p in parts]),
            w=np.concatenate([p.w for p in parts]), e0=np.concatenate([p.e0 for p in parts]),
            has_bias=np.concatenate([p.has_bias for p in parts]),
            bias=np.concatenate([p.bias for p in parts]),
            relu=np.concatenate([p.relu for p in parts]), expected=exp,
            tags=[t for p in parts for t in p.tags])

    def describe(self, config: DotConfig, i: int, *, max_terms: int = 64) -> str:
        """The inputs of vector ``i`` in hex (for failure messages)."""
        s, e = self.starts[i], self.starts[i + 1]
        xd = (config.in_fmt.width + 3) // 4
        od = (config.out_fmt.width + 3) // 4
        xs = [f"{int(v):0{xd}x}" for v in self.x[s:e][:max_terms]]
        ws = [f"{int(v):x}" for v in self.w[s:e][:max_terms]]
        more = f" ... ({e - s} terms)" if e - s > max_terms else ""
        bias = f"0x{int(self.bias[i]):0{od}x}" if self.has_bias[i] else "none"
        tag = self.tags[i] if self.tags else "?"
        return (f"K={e - s} e0={int(self.e0[i])} bias={bias} relu={int(self.relu[i])} "
                f"[{tag}] x=[{' '.join(xs)}{more}] codes=[{' '.join(ws)}{more}]")

    def to_json(self, config: DotConfig, i: int) -> dict:
        s, e = self.starts[i], self.starts[i + 1]
        return {
            "k": int(self.k[i]), "x": [int(v) for v in self.x[s:e]],
            "codes": [int(v) for v in self.w[s:e]], "e0": int(self.e0[i]),
            "bias": int(self.bias[i]) if self.has_bias[i] else None,
            "relu": bool(self.relu[i]), "tag": self.tags[i] if self.tags else None,
            "expected": None if self.expected is None else int(self.expected[i]),
        }


def _group(x, codes, e0_rows, bias_rows, relu, tag) -> Vectors:
    """Vectors of the GEMM ``x (N, K)`` by ``codes (M, K)``, in (n, m) row-major order."""
    n, k = x.shape
    m = codes.shape[0]
    nv = n * m
    has_bias = bias_rows is not None
    return Vectors(
        k=np.full(nv, k, dtype=np.int64),
        x=np.repeat(x.astype(np.uint64), m, axis=0).reshape(-1),
        w=np.tile(codes.astype(np.uint8), (n, 1)).reshape(-1),
        e0=np.tile(np.asarray(e0_rows, dtype=np.int64), n),
        has_bias=np.full(nv, has_bias),
        bias=(np.tile(np.asarray(bias_rows, dtype=np.uint64), n) if has_bias
              else np.zeros(nv, dtype=np.uint64)),
        relu=np.full(nv, bool(relu)),
        tags=[tag] * nv,
    )


# Each group is also kept as its GEMM so that :func:`expect` calls the golden model once per group.
@dataclass
class _Gemm:
    x: np.ndarray
    codes: np.ndarray
    e0: np.ndarray
    bias: np.ndarray | None
    relu: bool


def expect(config: DotConfig, groups: list[_Gemm]) -> np.ndarray:
    """Golden raw output bits of every vector of ``groups`` (one golden call per group)."""
    import torch

    from sw.golden import gemm_golden

    out = []
    for g in groups:
        e0 = g.e0
        e0_arg = int(e0[0]) if (e0 == e0[0]).all() else torch.as_tensor(e0, dtype=torch.int64)
        res = gemm_golden(
            torch.as_tensor(g.x.astype(np.int64)), torch.as_tensor(g.codes.astype(np.int64)),
            e0_arg, in_fmt=config.in_fmt, wbits=config.wbits, out_fmt=config.out_fmt,
            bias_bits=None if g.bias is None else torch.as_tensor(g.bias.astype(np.int64)),
            relu=g.relu, config=config)
        out.append(np.asarray(res, dtype=np.int64).reshape(-1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _make(groups, specs) -> tuple[Vectors, list[_Gemm]]:
    vecs = Vectors.concat([_group(g.x, g.codes, g.e0, g.bias, g.relu, tag)
                           for g, tag in zip(groups, specs, strict=True)])
    return vecs, groups


# -- value generators ---------------------------------------------------------------------------
def special_patterns(fmt: FloatFormat) -> dict[str, int]:
    """Named raw patterns: zeros, subnormal and normal extremes, infinities, NaNs."""
    sub_max = fmt.frac_mask
    min_norm = 1 << fmt.frac_bits
    one = fmt.bias << fmt.frac_bits
    pats = {
        "+0": 0, "min_sub": 1, "max_sub": sub_max, "min_norm": min_norm, "one": one,
        "max": fmt.max_finite, "+inf": fmt.pos_inf, "qnan": fmt.canonical_nan,
        "nan_payload": fmt.pos_inf | 1,
    }
    for name in ("+0", "min_sub", "max_sub", "min_norm", "one", "max", "+inf", "qnan"):
        neg = "-" + name.lstrip("+")
        pats[neg] = pats[name] | fmt.sign_mask
    return pats


def random_floats(rng, fmt: FloatFormat, shape, p_special: float) -> np.ndarray:
    """``shape`` int64 raw patterns of ``fmt`` from ``rng``: uniform over the finite patterns
    (every binade, subnormals included), with ``±0``, ``±inf``, the canonical and a payload
    NaN, ``±`` smallest and largest subnormal, ``±max`` and the smallest normal mixed in at
    rate ``p_special``. Draws sign, exponent, fraction, the mask, then the picks."""
    sign = rng.integers(0, 2, shape)
    exp = rng.integers(0, fmt.exp_max_field, shape)
    frac = rng.integers(0, 1 << fmt.frac_bits, shape)
    bits = (sign << (fmt.width - 1)) | (exp << fmt.frac_bits) | frac
    sp = np.array([0, fmt.sign_mask, fmt.pos_inf, fmt.neg_inf, fmt.canonical_nan,
                   fmt.pos_inf | 1, 1, fmt.sign_mask | 1, fmt.frac_mask,
                   fmt.sign_mask | fmt.frac_mask, fmt.max_finite,
                   fmt.sign_mask | fmt.max_finite, 1 << fmt.frac_bits], dtype=np.int64)
    pick = rng.random(shape) < p_special
    return np.where(pick, sp[rng.integers(0, len(sp), shape)], bits).astype(np.int64)


def _finite_uniform(rng, fmt, shape):
    """Uniform over all finite patterns (exponent field below all ones)."""
    sign = rng.integers(0, 2, shape, dtype=np.uint64)
    exp = rng.integers(0, fmt.exp_max_field, shape, dtype=np.uint64)
    frac = rng.integers(0, 1 << fmt.frac_bits, shape, dtype=np.uint64)
    return ((sign << np.uint64(fmt.width - 1)) | (exp << np.uint64(fmt.frac_bits)) | frac)


def _narrow(rng, fmt, shape, center, spread=3):
    """Finite values with exponent fields within ``center ± spread`` (sums that round)."""
    lo = max(0, center - spread)
    hi = min(fmt.exp_max_field - 1, center + spread)
    sign = rng.integers(0, 2, shape, dtype=np.uint64)
    exp = rng.integers(lo, hi + 1, shape, dtype=np.uint64)
    frac = rng.integers(0, 1 << fmt.frac_bits, shape, dtype=np.uint64)
    return ((sign << np.uint64(fmt.width - 1)) | (exp << np.uint64(fmt.frac_bits)) | frac)


def _subnormal(rng, fmt, shape):
    sign = rng.integers(0, 2, shape, dtype=np.uint64)
    frac = rng.integers(1, 1 << fmt.frac_bits, shape, dtype=np.uint64)
    return (sign << np.uint64(fmt.width - 1)) | frac


def _sprinkle(rng, arr, fmt, names, rate):
    """Replace about ``rate`` of the entries by the named special patterns."""
    pats = special_patterns(fmt)
    mask = rng.random(arr.shape) < rate
    choice = np.array([pats[nm] for nm in names], dtype=np.uint64)
    arr[mask] = choice[rng.integers(0, len(choice), int(mask.sum()))]
    return arr


def mixed_patterns(rng, fmt, shape):
    """``shape`` uint64 raw patterns of ``fmt`` drawn from ``rng``: mostly finite values of all
    magnitudes (spread over the finite range, or clustered around a random exponent), with
    subnormals and extremes (``±0``, smallest and largest subnormal, smallest normal, ``±max``,
    ``±1``) mixed in."""
    arr = _finite_uniform(rng, fmt, shape)
    center = int(rng.integers(1, fmt.exp_max_field - 1))
    sel = rng.random(shape)
    narrow = _narrow(rng, fmt, shape, center)
    arr = np.where(sel < 0.4, narrow, arr)
    sub = _subnormal(rng, fmt, shape)
    arr = np.where((sel >= 0.4) & (sel < 0.5), sub, arr)
    return _sprinkle(rng, arr, fmt, ["+0", "-0", "min_sub", "-min_sub", "max_sub", "min_norm",
                                     "max", "-max", "one", "-one"], 0.08)


def _codes(rng, config, shape, *, sign=None, p=None):
    pmax = config.pmax
    s = rng.integers(0, 2, shape) if sign is None else np.broadcast_to(sign, shape)
    pp = rng.integers(0, pmax + 1, shape) if p is None else np.broadcast_to(p, shape)
    return ((np.asarray(s, dtype=np.uint8) << (config.wbits - 1))
            | np.asarray(pp, dtype=np.uint8)).astype(np.uint8)


def _e0_rows(rng, config, m):
    e0 = rng.integers(config.e0_min, config.e0_max + 1, m)
    ext = rng.random(m) < 0.3
    e0[ext] = np.where(rng.random(int(ext.sum())) < 0.5, config.e0_min, config.e0_max)
    return e0.astype(np.int64)


def _bias_rows(rng, config, m):
    fmt = config.out_fmt
    kind = rng.random()
    if kind < 0.5:
        b = _finite_uniform(rng, fmt, (m,))
    elif kind < 0.8:
        b = _narrow(rng, fmt, (m,), int(rng.integers(1, fmt.exp_max_field - 1)))
    else:
        b = _subnormal(rng, fmt, (m,))
    return _sprinkle(rng, b, fmt, ["+0", "-0", "max", "-max", "min_sub", "-min_sub"], 0.15)


def _draw_k(rng, config, kmax):
    kmax = max(1, min(kmax, config.max_k))
    r = rng.random()
    if r < 0.35:
        hi = min(kmax, 2 * config.lanes + 1)
        return int(rng.integers(1, hi + 1))
    if r < 0.7:
        return int(rng.integers(1, min(kmax, 64) + 1))
    lo = min(65, kmax)
    return int(np.exp(rng.uniform(np.log(lo), np.log(kmax + 1)))) if kmax > lo else kmax


FLAVORS = ("mixed", "narrow", "special", "cancel", "near_cancel", "zeros", "overflow",
           "underflow", "inf_nan")


def random_group(rng, config, k, n, m, flavor) -> _Gemm:
    """One random GEMM group of ``flavor`` (one of :data:`FLAVORS`) for ``config`` (a
    ``DotConfig``): ``x`` (n, k) uint64 raw ``in_fmt`` patterns, ``codes`` (m, k) uint8, ``e0``
    (m,) int64 in ``[e0_min, e0_max]``, ``bias`` (m,) raw ``out_fmt`` patterns or None, ``relu``.
    Flavors stress specials, exact cancellation, overflow, underflow and ``-0`` sums."""
    fin, fout = config.in_fmt, config.out_fmt
    codes = _codes(rng, config, (m, k))
    e0 = _e0_rows(rng, config, m)
    bias = _bias_rows(rng, config, m) if rng.random() < 0.5 else None
    relu = bool(rng.random() < 0.3)
    if flavor == "mixed":
        x = mixed_patterns(rng, fin, (n, k))
    elif flavor == "narrow":
        x = _narrow(rng, fin, (n, k), int(rng.integers(1, fin.exp_max_field - 1)),
                    spread=int(rng.integers(0, 4)))
    elif flavor == "special":
        x = mixed_patterns(rng, fin, (n, k))
        x = _sprinkle(rng, x, fin, ["+inf", "-inf", "qnan", "-qnan", "nan_payload"],
                      min(0.5, 1.5 / k))
        if bias is not None:
            bias = _sprinkle(rng, bias, fout, ["+inf", "-inf", "qnan", "nan_payload"], 0.3)
    elif flavor == "inf_nan":
        x = mixed_patterns(rng, fin, (n, k))
        pats = special_patterns(fin)
        for row in range(n):
            cnt = int(rng.integers(1, 4))
            pos = rng.integers(0, k, cnt)
            x[row, pos] = [pats[rng.choice(["+inf", "-inf", "+inf", "qnan"])] for _ in pos]
    elif flavor in ("cancel", "near_cancel"):
        # pairs of columns whose products cancel exactly for every (n, m)
        half = k // 2
        x = mixed_patterns(rng, fin, (n, k))
        x = _sprinkle(rng, x, fin, ["max", "-max"], 0.2)
        x[:, half:2 * half] = x[:, :half]
        codes[:, half:2 * half] = codes[:, :half] ^ np.uint8(1 << (config.wbits - 1))
        if k % 2 and flavor == "cancel":
            x[:, -1] = special_patterns(fin)[str(rng.choice(["+0", "-0"]))]
        if flavor == "near_cancel":
            col = int(rng.integers(0, k))
            x[:, col] = _subnormal(rng, fin, (n,))
        if bias is not None and rng.random() < 0.5:
            bias[:] = special_patterns(fout)[str(rng.choice(["+0", "-0"]))]
    elif flavor == "zeros":
        x = np.where(rng.random((n, k)) < 0.5, 0, fin.sign_mask).astype(np.uint64)
        # row m = 0 makes every product -0 with x row 0: code sign = not x sign
        sx = (x[0] >> np.uint64(fin.width - 1)).astype(np.uint8)
        codes[0] = _codes(rng, config, (k,), sign=1 - sx)
        if rng.random() < 0.3 and k > 1:
            x[-1, int(rng.integers(0, k))] = _subnormal(rng, fin, (1,))[0]
        if bias is not None:
            bias[:] = special_patterns(fout)[str(rng.choice(["+0", "-0", "-0"]))]
    elif flavor == "overflow":
        x = _narrow(rng, fin, (n, k), fin.exp_max_field - 2, spread=1)
        x &= np.uint64(fin.sign_mask - 1)                       # positive
        x = _sprinkle(rng, x, fin, ["max"], 0.5)
        codes = _codes(rng, config, (m, k), sign=rng.integers(0, 2, (m, 1)), p=config.pmax)
        e0[:] = config.e0_max
    elif flavor == "underflow":
        x = _subnormal(rng, fin, (n, k))
        x = _sprinkle(rng, x, fin, ["min_sub", "-min_sub", "+0", "-0"], 0.3)
        codes = _codes(rng, config, (m, k), p=rng.integers(0, 2, (m, k)))
        e0[:] = config.e0_min
        if bias is not None and rng.random() < 0.7:
            bias = _sprinkle(rng, bias, fout, ["+0", "-0", "min_sub", "-min_sub"], 1.0)
    else:
        raise ValueError(f"unknown flavor {flavor!r}; expected one of {', '.join(FLAVORS)}")
    return _Gemm(x=x.astype(np.uint64), codes=codes.astype(np.uint8), e0=e0, bias=bias,
                 relu=relu)


def random_dots(config: DotConfig, rng: np.random.Generator, count: int, *, kmax: int = 1024,
                nm_max: int = 3) -> tuple[Vectors, list[_Gemm]]:
    """About ``count`` random dot products, ``K`` in ``1..kmax``, every flavor in turn."""
    groups, tags = [], []
    total = 0
    i = 0
    while total < count:
        flavor = FLAVORS[i % len(FLAVORS)] if i < 2 * len(FLAVORS) else str(
            rng.choice(FLAVORS, p=[0.3, 0.15, 0.1, 0.1, 0.08, 0.07, 0.07, 0.07, 0.06]))
        i += 1
        k = _draw_k(rng, config, kmax)
        if flavor in ("cancel", "near_cancel") and k == 1:
            k = min(2, config.max_k)
        n = int(rng.integers(1, nm_max + 1))
        m = int(rng.integers(1 if flavor != "zeros" else 2, nm_max + 1))
        n = min(n, count - total) if count - total >= 1 else 1
        g = random_group(rng, config, k, max(n, 1), m, flavor)
        groups.append(g)
        tags.append(flavor)
        total += g.x.shape[0] * g.codes.shape[0]
    return _make(groups, tags)


def backpressure_dots(config: DotConfig, rng: np.random.Generator, count: int):
    """Short dot products (mostly one or two beats) so that many results are in flight."""
    return random_dots(config, rng, count, kmax=2 * config.lanes + 1, nm_max=4)


def exhaustive_products(config: DotConfig, e0: int, *, x_stride: int = 1,
                        x_offset: int = 0) -> tuple[Vectors, list[_Gemm]]:
    """Every input pattern (every ``x_stride``-th from ``x_offset``) times every weight code,
    as one-term dot products without bias or ReLU, offset ``e0``."""
    config.check_e0(e0)
    x = np.arange(x_offset, 1 << config.in_fmt.width, x_stride, dtype=np.uint64).reshape(-1, 1)
    codes = np.arange(1 << config.wbits, dtype=np.uint8).reshape(-1, 1)
    g = _Gemm(x=x, codes=codes, e0=np.full(codes.shape[0], e0, dtype=np.int64), bias=None,
              relu=False)
    return _make([g], [f"exhaustive e0={e0}"])


# -- beats --------------------------------------------------------------------------------------
def build_beats(config: DotConfig, vecs: Vectors, rng: np.random.Generator, *,
                scatter: float = 0.3, max_extra: int = 2) -> tuple[list[int], np.ndarray]:
    """Spread ``vecs`` over input beats; returns the packed beats and, per vector, the index
    of its last beat.

    With probability ``scatter`` a dot product is spread over ``ceil(K/lanes) + extra`` beats
    (``extra`` up to ``max_extra``) with its terms on random lanes (holes and whole empty
    beats included); otherwise its terms fill lanes in order and only the last beat is partial.
    One-term dot products put their term on a random lane."""
    lanes = config.lanes
    k = vecs.k.astype(np.int64)
    n = len(k)
    if n == 0:
        return [], np.zeros(0, dtype=np.int64)
    if (k < 1).any() or (k > config.max_k).any():
        bad = int(k[(k < 1) | (k > config.max_k)][0])
        config.check_k(bad)
    config.check_e0(vecs.e0)
    nb = -(-k // lanes)
    scat = (rng.random(n) < scatter) & (k > 1)
    extra = np.where(scat, rng.integers(0, max_extra + 1, n), 0)
    nb = nb + extra
    beat_start = np.concatenate([[0], np.cumsum(nb)])
    total = int(beat_start[-1])
    tstart = vecs.starts
    local = np.arange(len(vecs.x), dtype=np.int64) - np.repeat(tstart[:-1], k)
    ones = np.flatnonzero(k == 1)
    local[tstart[ones]] = rng.integers(0, lanes, len(ones))
    for i in np.flatnonzero(scat):
        local[tstart[i]:tstart[i + 1]] = np.sort(
            rng.choice(int(nb[i]) * lanes, int(k[i]), replace=False))
    slot = np.repeat(beat_start[:-1], k) * lanes + local

    fin, fout = config.in_fmt, config.out_fmt
    x = rng.integers(0, 1 << fin.width, total * lanes, dtype=np.uint64)
    w = rng.integers(0, 1 << config.wbits, total * lanes, dtype=np.uint64)
    keep = np.zeros(total * lanes, dtype=np.uint64)
    x[slot] = vecs.x
    w[slot] = vecs.w
    keep[slot] = 1
    x, w, keep = (a.reshape(total, lanes) for a in (x, w, keep))
    last_idx = beat_start[1:] - 1
    last = np.zeros(total, dtype=np.uint64)
    last[last_idx] = 1
    e0_mask = (1 << config.e0_bits) - 1
    has_bias = rng.integers(0, 2, total, dtype=np.uint64)
    relu = rng.integers(0, 2, total, dtype=np.uint64)
    e0 = rng.integers(0, 1 << config.e0_bits, total, dtype=np.uint64)
    bias = rng.integers(0, 1 << fout.width, total, dtype=np.uint64)
    has_bias[last_idx] = vecs.has_bias
    relu[last_idx] = vecs.relu
    e0[last_idx] = (vecs.e0.astype(np.int64) & e0_mask).astype(np.uint64)
    garbage_bias = rng.integers(0, 1 << fout.width, n, dtype=np.uint64)
    bias[last_idx] = np.where(vecs.has_bias, vecs.bias, garbage_bias)
    f = in_fields(config)
    fields = []
    for j in range(lanes):
        fields.append((f["x"][0] + j * fin.width, fin.width, x[:, j]))
        fields.append((f["w"][0] + j * config.wbits, config.wbits, w[:, j]))
    keep_bits = (keep << np.arange(lanes, dtype=np.uint64)).sum(axis=1).astype(np.uint64)
    fields += [(f["keep"][0], lanes, keep_bits), (f["last"][0], 1, last),
               (f["has_bias"][0], 1, has_bias), (f["relu"][0], 1, relu),
               (f["e0"][0], config.e0_bits, e0), (f["bias"][0], fout.width, bias)]
    return pack_fields(in_width(config), fields), last_idx.astype(np.int64)
