"""Tensor-train linear maps ``y = W x (+ b)``: matrix product states (MPS) and matrix product
operators (MPO, the tensor-train matrix), with cores in floating point or as shift weights.

:class:`MPSLinear` -- the input index ``i = (i_0, ..., i_{n-1})`` and the output index
``o = (o_0, ..., o_{m-1})`` are the legs of one chain: ``n`` *input cores* contract the input
legs one after the other down to the central bond ``r_{n-1}``, then ``m`` *output cores* open the
output legs. Every core is a matrix ``(M, K)`` and every contraction is one GEMM with that
matrix as the weight operand (so each runs on the PE array unchanged)::

    input core k:   K = r_{k-1} * i_k,  M = r_k          (r_{-1} = 1)
    output core j:  K = s_{j-1},        M = o_j * s_j    (s_{-1} = r_{n-1}, s_{m-1} = 1)

``ranks = (r_0, ..., r_{n-1}, s_0, ..., s_{m-2})`` are the bond dimensions. The map has rank at
most ``min(r)``; its parameters are ``sum(M * K)`` against ``in * out`` for the dense matrix.

:class:`MPOLinear` -- the tensor-train matrix: core ``k`` of shape ``(r_{k-1}, i_k, o_k, r_k)``
carries one input and one output leg (``n = m``, ``ranks = (r_0, ..., r_{n-2})``).

Cores come from :func:`sw.quant.make_quantizer` (``method`` ``fp``, ``denseshift``, ``s3``,
``deepshift_ps`` ...; ``wbits``). Float cores start normal with standard deviation
``1/sqrt(K)`` (each contraction keeps the variance); quantized cores start from such a float
core: ``e0`` puts its largest value on the top exponent code, then the nearest codes
(:meth:`sw.quant.DenseShiftQuantizer.set_from_weight`; other methods start from their own
initialisation with that ``e0``).

:func:`mps_contract` is the contraction order itself, shared by the PyTorch forward pass and the
compiler (:mod:`sw.seq_compile`), which runs each ``gemm`` on the array.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .quant import make_quantizer

__all__ = ["MPSLinear", "MPOLinear", "mps_core_shapes", "mps_contract", "factorize"]


def _ints(value, what, *, length=None):
    if (not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"{what} must be a non-empty list of positive integers, not {value!r}")
    if length is not None and len(value) != length:
        raise ValueError(f"{what} must have {length} entries, not {len(value)} ({value!r})")
    return tuple(value)


def factorize(n: int, parts: int) -> tuple:
    """``parts`` factors of ``n`` as equal as possible (largest first), e.g. ``(16, 16)`` for
    256 in two parts, ``(12, 10)`` for 120."""
    if not isinstance(n, int) or n < 1 or not isinstance(parts, int) or parts < 1:
        raise ValueError(f"cannot factorize {n!r} into {parts!r} parts")
    if parts == 1:
        return (n,)
    best = None
    for d in range(1, n + 1):
        if n % d:
            continue
        rest = factorize(n // d, parts - 1)
        cand = tuple(sorted((d, *rest), reverse=True))
        if best is None or cand[0] - cand[-1] < best[0] - best[-1]:
            best = cand
    return best


def mps_core_shapes(in_factors, out_factors, ranks) -> list:
    """``[(M, K)]`` of every core, input cores first."""
    n, m = len(in_factors), len(out_factors)
    r = list(ranks[:n])
    s = list(ranks[n:]) + [1]
    shapes, prev = [], 1
    for k in range(n):
        shapes.append((r[k], prev * in_factors[k]))
        prev = r[k]
    for j in range(m):
        shapes.append((out_factors[j] * s[j], prev))
        prev = s[j]
    return shapes


def mps_contract(x: torch.Tensor, in_factors, out_factors, ranks,
                 gemm: Callable[[int, torch.Tensor], torch.Tensor]) -> tuple:
    """Apply an MPS map to the rows of ``x`` (``(N, in)``) with ``gemm(core index, z (rows, K))
    -> (rows, M)``; returns ``(y (N, out), [(rows, K, M) of every GEMM])``.

    Index order: an input core's ``K`` is ``(r_{k-1}, i_k)`` row-major, an output core's ``M``
    is ``(o_j, s_j)`` row-major; ``x``'s columns are ``(i_0, ..., i_{n-1})`` and ``y``'s
    ``(o_0, ..., o_{m-1})`` row-major."""
    n = len(in_factors)
    shapes = mps_core_shapes(in_factors, out_factors, ranks)
    rows = x.shape[0]
    z = x.reshape(rows, *in_factors, 1)               # (N, i_0 .. i_{n-1}, r_{-1} = 1)
    sizes = []
    for k in range(n):
        z = z.movedim(1, -1)                          # (N, i_{k+1} .., r_{k-1}, i_k)
        lead = z.shape[:-2]
        z2 = z.reshape(-1, shapes[k][1])
        sizes.append((z2.shape[0], shapes[k][1], shapes[k][0]))
        z = gemm(k, z2).reshape(*lead, shapes[k][0])
    opened = []
    for j, o in enumerate(out_factors):
        m_j, k_j = shapes[n + j]
        z2 = z.reshape(-1, k_j)                       # (N * o_0 .. o_{j-1}, s_{j-1})
        sizes.append((z2.shape[0], k_j, m_j))
        opened.append(o)
        z = gemm(n + j, z2).reshape(rows, *opened, m_j // o)
    return z.reshape(rows, -1), sizes


def _init_core(quantizer, std: float, generator=None) -> None:
    """Float cores ~ N(0, std^2); shift cores from such a float core (see the module doc)."""
    with torch.no_grad():
        w = torch.empty(quantizer.shape).normal_(0.0, std, generator=generator)
        if quantizer.method == "fp":
            quantizer.weight.copy_(w)
            return
        if hasattr(quantizer, "e0"):
            pmax = (1 << (quantizer.wbits - 1)) - 1
            quantizer.e0 = int(math.floor(math.log2(float(w.abs().max())) + 0.5) - pmax)
            if hasattr(quantizer, "set_from_weight"):
                quantizer.set_from_weight(w)


class _TensorTrain(nn.Module):
    """Cores as quantizers; ``quantized_cores()`` are the tensors the forward pass uses."""

    def _make_cores(self, shapes, fan_ins, method, wbits, qkwargs, generator):
        self.method, self.wbits = method, wbits
        self.cores = nn.ModuleList()
        for shape, fan_in in zip(shapes, fan_ins, strict=True):
            q = make_quantizer(method, shape, wbits=wbits, **qkwargs)
            _init_core(q, 1.0 / math.sqrt(fan_in), generator)
            self.cores.append(q)

    def quantized_cores(self) -> list:
        return [q() for q in self.cores]

    @property
    def num_parameters(self) -> int:
        """Weights of the cores (one per core entry; the bias is not counted)."""
        return sum(math.prod(q.shape) for q in self.cores)

    @property
    def compression(self) -> float:
        """Dense ``in * out`` weights over the cores' weights."""
        return self.in_features * self.out_features / self.num_parameters

    def _bias(self, bias):
        if bias:
            bound = 1.0 / math.sqrt(self.in_features)
            self.bias = nn.Parameter(torch.empty(self.out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)


class MPSLinear(_TensorTrain):
    """``y = W x + b`` with ``W`` an MPS of ``in_factors`` then ``out_factors`` legs and bond
    dimensions ``ranks`` (``len(in_factors) + len(out_factors) - 1`` of them); see the module
    documentation. ``method``/``wbits``/``qkwargs``: the cores' quantizer."""

    def __init__(self, in_features: int, out_features: int, *, in_factors: Sequence[int],
                 out_factors: Sequence[int], ranks: Sequence[int], bias: bool = True,
                 method: str = "fp", wbits: int = 3, generator=None, **qkwargs):
        super().__init__()
        self.in_factors = _ints(list(in_factors), "in_factors")
        self.out_factors = _ints(list(out_factors), "out_factors")
        self.ranks = _ints(list(ranks), "ranks",
                           length=len(self.in_factors) + len(self.out_factors) - 1)
        if math.prod(self.in_factors) != in_features:
            raise ValueError(f"in_factors {self.in_factors} multiply to "
                             f"{math.prod(self.in_factors)}, not in_features={in_features}")
        if math.prod(self.out_factors) != out_features:
            raise ValueError(f"out_factors {self.out_factors} multiply to "
                             f"{math.prod(self.out_factors)}, not out_features={out_features}")
        self.in_features, self.out_features = in_features, out_features
        shapes = mps_core_shapes(self.in_factors, self.out_factors, self.ranks)
        self._make_cores(shapes, [k for _, k in shapes], method, wbits, qkwargs, generator)
        self._bias(bias)

    def core_shapes(self) -> list:
        return mps_core_shapes(self.in_factors, self.out_factors, self.ranks)

    def contract(self, x: torch.Tensor) -> torch.Tensor:
        """The map by contractions (one GEMM per core), without the bias; ``x`` ``(..., in)``."""
        cores = self.quantized_cores()
        y, _ = mps_contract(x.reshape(-1, self.in_features), self.in_factors,
                            self.out_factors, self.ranks, lambda k, z: z @ cores[k].t())
        return y.reshape(*x.shape[:-1], self.out_features)

    def matrix(self) -> torch.Tensor:
        """The dense ``(out, in)`` matrix the cores represent."""
        eye = torch.eye(self.in_features, dtype=self.cores[0]().dtype)
        return self.contract(eye).t()

    def macs(self, rows: int = 1) -> int:
        """Multiply-accumulates of one application to ``rows`` input rows."""
        _, sizes = mps_contract(torch.zeros(rows, self.in_features), self.in_factors,
                                self.out_factors, self.ranks,
                                lambda k, z: z.new_zeros(z.shape[0],
                                                         self.core_shapes()[k][0]))
        return sum(a * b * c for a, b, c in sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.contract(x)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, in_factors={self.in_factors}, "
                f"out_factors={self.out_factors}, ranks={self.ranks}, method={self.method}, "
                f"params={self.num_parameters}")


class MPOLinear(_TensorTrain):
    """``y = W x + b`` with ``W`` a tensor-train matrix (MPO): core ``k`` holds ``(r_{k-1}, i_k,
    o_k, r_k)`` (stored as a matrix ``(o_k * r_k, r_{k-1} * i_k)``), ``ranks`` the ``n - 1``
    inner bond dimensions."""

    def __init__(self, in_features: int, out_features: int, *, in_factors: Sequence[int],
                 out_factors: Sequence[int], ranks: Sequence[int], bias: bool = True,
                 method: str = "fp", wbits: int = 3, generator=None, **qkwargs):
        super().__init__()
        self.in_factors = _ints(list(in_factors), "in_factors")
        self.out_factors = _ints(list(out_factors), "out_factors", length=len(self.in_factors))
        n = len(self.in_factors)
        self.ranks = _ints(list(ranks), "ranks", length=n - 1) if n > 1 else ()
        if math.prod(self.in_factors) != in_features or math.prod(
                self.out_factors) != out_features:
            raise ValueError(f"factors {self.in_factors} x {self.out_factors} do not give "
                             f"({in_features}, {out_features})")
        self.in_features, self.out_features = in_features, out_features
        r = (1, *self.ranks, 1)
        shapes = [(self.out_factors[k] * r[k + 1], r[k] * self.in_factors[k]) for k in range(n)]
        # each core contracts r_{k-1} * i_k; the chain's variance is kept per core
        self._make_cores(shapes, [k for _, k in shapes], method, wbits, qkwargs, generator)
        self._bias(bias)

    def matrix(self) -> torch.Tensor:
        """The dense ``(out, in)`` matrix (cores contracted left to right)."""
        r = (1, *self.ranks, 1)
        full = torch.ones(1, 1, 1)                    # (O_so_far, I_so_far, r)
        for k, core in enumerate(self.quantized_cores()):
            c = core.reshape(self.out_factors[k], r[k + 1], r[k], self.in_factors[k])
            full = torch.einsum("abr,osri->aobis", full, c)
            a, o, b, i, s = full.shape
            full = full.reshape(a * o, b * i, s)
        return full.reshape(self.out_features, self.in_features)

    def macs(self, rows: int = 1) -> int:
        """Multiply-accumulates of one application to ``rows`` input rows, cores contracted
        left to right (core ``k``: ``rows * prod(o_<k) * prod(i_>k)`` GEMM rows of its
        ``(M, K)`` matrix)."""
        total = 0
        for k, q in enumerate(self.cores):
            m, kk = q.shape
            total += (rows * math.prod(self.out_factors[:k]) * math.prod(
                self.in_factors[k + 1:]) * m * kk)
        return total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.matrix().t()
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, in_factors={self.in_factors}, "
                f"out_factors={self.out_factors}, ranks={self.ranks}, method={self.method}, "
                f"params={self.num_parameters}")
