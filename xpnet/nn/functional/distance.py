"""Distances and similarities: ``cosine_similarity``, ``pairwise_distance``, ``pdist``,
``normalize``, and ``one_hot`` (PyTorch's names, arguments and conventions)."""

from __future__ import annotations

import math

from ... import backend as B
from ...autograd.functions import _shape, abs, broadcast_to, getitem, max, maximum, sqrt, sum, take
from ...autograd.tensor import Tensor, _raw

__all__ = ["cosine_similarity", "pairwise_distance", "pdist", "normalize", "one_hot"]


def _norm(x, p: float, dim, keepdims: bool = False):
    """The p-norm along ``dim``: sqrt(sum x^2) for p = 2, max |x| for p = inf,
    the count of non-zeros for p = 0, else sum(|x|^p)^(1/p)."""
    if p == 2:
        return sqrt(sum(x * x, dim, keepdims))
    if p == math.inf:
        return max(abs(x), dim, keepdims)
    if p == 0:
        r = _raw(x)
        return Tensor(B.namespace_of(r).sum(B.namespace_of(r).astype(r != 0, r.dtype), axis=dim, keepdims=keepdims))
    if p == 1:
        return sum(abs(x), dim, keepdims)
    return sum(abs(x) ** float(p), dim, keepdims) ** (1.0 / p)


def broadcast_shape(a, b, who: str):
    """The broadcast of shapes ``a`` and ``b`` (NumPy's rules); ValueError naming ``who`` if none."""
    n = len(a) if len(a) > len(b) else len(b)
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for p, q in zip(a, b):
        if p != q and p != 1 and q != 1:
            raise ValueError(f"{who}: shapes {a} and {b} do not broadcast")
        out.append(q if p == 1 else p)
    return tuple(out)


def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12):
    """x / max(||x||_p, eps) along ``dim``."""
    return input / maximum(_norm(input, p, dim, keepdims=True), eps)


def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8):
    """sum(x1 x2) / (max(||x1||, eps) max(||x2||, eps)) along ``dim``; x1 and x2 broadcast.
    Each vector is divided by its clamped norm before the product, as PyTorch does."""
    shape = broadcast_shape(_shape(_raw(x1)), _shape(_raw(x2)), "cosine_similarity")
    x1, x2 = broadcast_to(x1, shape), broadcast_to(x2, shape)
    n1 = maximum(_norm(x1, 2, dim, keepdims=True), eps)
    n2 = maximum(_norm(x2, 2, dim, keepdims=True), eps)
    return sum((x1 / n1) * (x2 / n2), dim)


def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    """||x1 - x2 + eps||_p along the last axis (x1 and x2 broadcast)."""
    return _norm(x1 - x2 + eps, p, -1, keepdim)


def pdist(input, p: float = 2.0):
    """The p-norm distances between the rows of ``input`` (N, M): the upper triangle of the
    distance matrix, row by row, shape (N (N - 1) / 2,)."""
    shape = _shape(_raw(input))
    if len(shape) != 2:
        raise ValueError(f"pdist: input must be 2-D (N, M), got shape {shape}")
    n = shape[0]
    i = [a for a in range(n) for _ in range(a + 1, n)]
    j = [b for a in range(n) for b in range(a + 1, n)]
    if not i:  # fewer than two rows: no pairs (an empty slice keeps the graph)
        return _norm(getitem(input, (slice(0, 0), ...)), p, -1)
    return _norm(take(input, i, 0) - take(input, j, 0), p, -1)


def one_hot(tensor, num_classes: int = -1):
    """int64 one-hot codes of integer labels: shape ``(*tensor.shape, num_classes)``;
    ``num_classes=-1`` takes max + 1 (one read from the device).  Labels outside
    ``[0, num_classes)`` raise ValueError."""
    x = _raw(tensor)
    xp = B.namespace_of(x)
    if not xp.isdtype(x.dtype, "integral"):
        raise TypeError(f"one_hot: labels must be integers, got {B.dtype_name(x.dtype)}")
    size = math.prod(x.shape)
    lo, hi = (int(xp.min(x)), int(xp.max(x))) if size else (0, -1)
    if num_classes == -1:
        num_classes = hi + 1
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"one_hot: labels must be in [0, {num_classes}), got values from {lo} to {hi}")
    classes = xp.arange(num_classes, dtype=x.dtype, device=B.array_api_compat.device(x))
    return Tensor(xp.astype(x[..., None] == classes, xp.int64))
