"""Pooling: ``max_pool1d/2d/3d``, ``avg_pool1d/2d/3d``, ``adaptive_avg_pool1d/2d/3d``,
``adaptive_max_pool1d/2d/3d``, ``lp_pool1d/2d/3d``, as PyTorch (one N-d code for each kind).

Max and average pooling use the im2col patches of :mod:`.conv` (windows
stacked on a new axis 2); the max-pooling gradient goes to the first maximum
of each window, as in PyTorch.  Adaptive average pooling is a product with one
small averaging matrix per spatial axis.
"""

from __future__ import annotations

import builtins
import functools
import itertools
import math

from ... import backend as B
from ...autograd.functions import _matmul, permute, reshape, sum, take, take_along_axis, unsqueeze
from ...autograd.tensor import Function, Tensor, _raw
from .conv import Fold, Geometry, Unfold, _batched, _ntuple, _unfold

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
           "adaptive_max_pool2d", "adaptive_max_pool3d", "lp_pool1d", "lp_pool2d", "lp_pool3d", "max_unpool1d",
           "max_unpool2d", "max_unpool3d", "fractional_max_pool2d", "fractional_max_pool3d"]


def _geometry(x, kernel_size, stride, padding, dilation, ceil_mode, nd, name):
    k = _ntuple(kernel_size, nd, "kernel_size", name)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else \
        _ntuple(stride, nd, "stride", name)
    p = _ntuple(padding, nd, "padding", name)
    d = _ntuple(dilation, nd, "dilation", name)
    if any(a < 1 for a in k + s + d):
        raise ValueError(f"{name}: kernel_size, stride and dilation must be >= 1, got {k}, {s}, {d}")
    for pa, ka, da in zip(p, k, d):
        if not 0 <= pa <= (da * (ka - 1) + 1) // 2:
            raise ValueError(f"{name}: padding {p} must be >= 0 and at most half of the (dilated) kernel "
                             f"size {k}")
    return Geometry.sliding(tuple(x.shape[2:]), k, s, d, p, p, name, ceil_mode)


class MaxPool(Function):
    """Max over each window of (N, C, *S); the gradient goes to the first maximum."""

    def __init__(self, geo: Geometry):
        self.geo = geo

    def forward(self, xp, x):
        self.patches = _unfold(xp, x, self.geo, 2, -math.inf)  # (N, C, K, *O)
        return xp.max(self.patches, axis=2)

    def backward(self, g, y, x):
        xp, p = self.xp, self.patches
        k = xp.reshape(xp.arange(self.geo.K, device=B.array_api_compat.device(p)), (1, 1, -1) + (1,) * self.geo.n)
        onehot = xp.astype(xp.argmax(p, axis=2, keepdims=True) == k, _raw(g).dtype)
        return Fold(self.geo, 2)(unsqueeze(g, 2) * onehot),


def _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, nd, name):
    x, unbatched = _batched(input, nd, name)
    geo = _geometry(x, kernel_size, stride, padding, dilation, ceil_mode, nd, name)
    fn = MaxPool(geo)
    y = fn(x)
    if unbatched:
        y = reshape(y, tuple(y.shape[1:]))
    if not return_indices:
        return y
    return y, _max_indices(fn, geo, tuple(x.shape), unbatched)


def _max_indices(fn, geo, shape, unbatched):
    """PyTorch's ``return_indices``: the flat position (within each channel's plane) of every maximum."""
    xp = B.namespace_of(fn.patches)
    dev = B.array_api_compat.device(fn.patches)
    idx = xp.argmax(fn.patches, axis=2)  # (N, C, *O) in 0..K-1
    flat = None
    for a in range(geo.n):
        offs = xp.asarray([off[a] for off in geo.offsets], dtype=xp.int64, device=dev)
        start = xp.reshape(xp.arange(geo.out[a], dtype=xp.int64, device=dev) * geo.stride[a] - geo.lo[a],
                           (geo.out[a],) + (1,) * (geo.n - 1 - a))
        pos = xp.reshape(xp.take(offs, xp.reshape(idx, (-1,))), idx.shape) + start
        flat = pos if flat is None else flat * shape[2 + a] + pos
    flat = Tensor(flat)
    return reshape(flat, tuple(flat.shape[1:])) if unbatched else flat


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over sliding windows of (N, C, L); ``stride`` defaults to ``kernel_size``."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1, "max_pool1d")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over sliding windows of (N, C, H, W); ``stride`` defaults to ``kernel_size``."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2, "max_pool2d")


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over sliding windows of (N, C, D, H, W); ``stride`` defaults to ``kernel_size``."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 3, "max_pool3d")


def _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, nd, name):
    x, unbatched = _batched(input, nd, name)
    geo = _geometry(x, kernel_size, stride, padding, 1, ceil_mode, nd, name)
    total = sum(Unfold(geo, 2)(x), 2)
    if divisor_override is not None:
        y = total * (1.0 / divisor_override)
    else:
        divisor = _divisor(geo, count_include_pad, x)
        y = total * (1.0 / geo.K) if divisor is None else total / divisor
    return reshape(y, tuple(y.shape[1:])) if unbatched else y


def _divisor(geo, count_include_pad, x):
    """Each window's divisor as an (1, 1, *O) array, or None when it is ``K`` everywhere.

    A window counts its places inside the padded input (``count_include_pad``)
    or inside the input only; places added by ``ceil_mode`` never count.
    """
    flat = [1]
    for n, k, s, lo, o in zip(geo.size, geo.kernel, geo.stride, geo.lo, geo.out):
        first, last = (-lo, n + lo) if count_include_pad else (0, n)
        counts = [min(i * s - lo + k, last) - max(i * s - lo, first) for i in range(o)]
        flat = [a * c for a in flat for c in counts]
    if all(c == geo.K for c in flat):
        return None
    xr = _raw(x)
    arr = B.as_array(flat, B.dtype_name(xr.dtype), B.backend_of(xr))
    return B.namespace_of(arr).reshape(arr, (1, 1, *geo.out))


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
    """Mean over sliding windows of (N, C, L); ``stride`` defaults to ``kernel_size``."""
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1, "avg_pool1d")


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override=None):
    """Mean over sliding windows of (N, C, H, W); ``stride`` defaults to ``kernel_size``."""
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 2,
                     "avg_pool2d")


# ------------------------------------------------------------------ adaptive

@functools.lru_cache(maxsize=256)
def _averaging_host(size: int, out: int):
    """Rows i of a (out, size) matrix averaging input places floor(i*size/out) .. ceil((i+1)*size/out) - 1."""
    rows = []
    for i in range(out):
        a, b = (i * size) // out, -(-((i + 1) * size) // out)
        rows.append([1.0 / (b - a) if a <= j < b else 0.0 for j in range(size)])
    return rows


def _averaging(size, out, like, transposed=False):
    """The averaging matrix (out, size), or its transpose, as a constant array like ``like``."""
    rows = _averaging_host(size, out)
    if transposed:
        rows = [list(c) for c in zip(*rows)]
    r = _raw(like)
    return B.as_array(rows, B.dtype_name(r.dtype), B.backend_of(r))


def _adaptive_args(input, output_size, nd, name):
    """``(x, unbatched, input sizes, output sizes)`` for adaptive pooling: ``output_size`` an int or
    a tuple of ``nd`` positive ints or None (None keeps that axis's size), as PyTorch."""
    x, unbatched = _batched(input, nd, name)
    sizes = tuple(x.shape[2:])
    outs = (output_size,) * nd if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    if len(outs) != nd:
        raise ValueError(f"{name}: output_size must be an int or a tuple of {nd}, got {output_size!r}")
    outs = tuple(n if o is None else o for o, n in zip(outs, sizes))
    if any(not isinstance(o, int) or o < 1 for o in outs):
        raise ValueError(f"{name}: output_size must hold positive ints (or None), got {output_size!r}")
    return x, unbatched, sizes, outs


def _adaptive_avg(input, output_size, nd, name):
    x, unbatched, sizes, outs = _adaptive_args(input, output_size, nd, name)
    y = x
    for d in range(nd):  # separable: one small averaging matrix per spatial axis
        if outs[d] != sizes[d]:
            y = _along(y, 2 + d, lambda t: _matmul(t, _averaging(sizes[d], outs[d], x, True)))  # not autocast
    return reshape(y, tuple(y.shape[1:])) if unbatched else y


def _along(y, axis, fn):
    """``fn`` applied with ``axis`` moved last, then moved back."""
    n = len(y.shape)
    if axis == n - 1:
        return fn(y)
    order = tuple(i for i in range(n) if i != axis) + (axis,)
    back = [0] * n
    for i, a in enumerate(order):
        back[a] = i
    return permute(fn(permute(y, order)), tuple(back))


def adaptive_avg_pool1d(input, output_size):
    """Average pooling of (N, C, L) to ``output_size`` places (PyTorch's window formula)."""
    return _adaptive_avg(input, output_size, 1, "adaptive_avg_pool1d")


def adaptive_avg_pool2d(input, output_size):
    """Average pooling of (N, C, H, W) to ``output_size`` (an int, or (H, W) with None for "keep")."""
    return _adaptive_avg(input, output_size, 2, "adaptive_avg_pool2d")


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override=None):
    """Mean over sliding windows of (N, C, D, H, W); ``stride`` defaults to ``kernel_size``."""
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 3,
                     "avg_pool3d")


def adaptive_avg_pool3d(input, output_size):
    """Average pooling of (N, C, D, H, W) to ``output_size`` (an int or (D, H, W), None keeps a size)."""
    return _adaptive_avg(input, output_size, 3, "adaptive_avg_pool3d")


@functools.lru_cache(maxsize=64)
def _adaptive_windows(sizes: tuple, outs: tuple):
    """The flat input places (row-major within each channel's plane) of every adaptive window,
    one row per output place (row-major), each window's places in row-major order and padded to
    the longest window by repeating its first place (which keeps the first maximum first)."""
    axes = [[range((i * n) // o, -(-((i + 1) * n) // o)) for i in range(o)] for n, o in zip(sizes, outs)]
    strides = [math.prod(sizes[d + 1:]) for d in range(len(sizes))]
    rows = [[builtins.sum(a * s for a, s in zip(place, strides)) for place in itertools.product(*box)]
            for box in itertools.product(*axes)]
    K = max(len(r) for r in rows)
    return [r + [r[0]] * (K - len(r)) for r in rows]


def _adaptive_max(input, output_size, return_indices, nd, name):
    """The max over PyTorch's adaptive windows floor(i n / o) .. ceil((i + 1) n / o) - 1 of each
    axis: the windows' places are gathered (built on the host, once per shape), the first maximum
    of each (row-major, as PyTorch's kernel) is taken, and the gradient goes to it.  With
    ``return_indices`` also its flat place within the channel's plane (int64), as PyTorch."""
    x, unbatched, sizes, outs = _adaptive_args(input, output_size, nd, name)
    N, C, plane = x.shape[0], x.shape[1], math.prod(sizes)
    rows = _adaptive_windows(sizes, outs)
    P, K = len(rows), len(rows[0])
    r = _raw(x)
    places = B.as_array(rows, "int64", B.backend_of(r))  # (P, K)
    xp = B.namespace_of(places)
    g = reshape(take(reshape(x, (N * C, plane)), xp.reshape(places, (-1,)), 1), (N, C, P, K))
    best = xp.argmax(_raw(g), axis=3)  # (N, C, P): the first maximum
    y = reshape(take_along_axis(g, best[..., None], 3), (N, C) + outs)
    if unbatched:
        y = reshape(y, tuple(y.shape[1:]))
    if not return_indices:
        return y
    start = xp.reshape(xp.arange(P, dtype=xp.int64, device=B.array_api_compat.device(places)) * K, (1, 1, P))
    where = xp.reshape(xp.take(xp.reshape(places, (-1,)), xp.reshape(start + best, (-1,))), (N, C) + outs)
    return y, Tensor(where[0, ...] if unbatched else where)


def adaptive_max_pool1d(input, output_size, return_indices: bool = False):
    """Max pooling of (N, C, L) to ``output_size`` places. With ``return_indices`` also the int64 flat
    index of each maximum within its channel's plane (PyTorch's, usable by ``max_unpool1d``)."""
    return _adaptive_max(input, output_size, return_indices, 1, "adaptive_max_pool1d")


def adaptive_max_pool2d(input, output_size, return_indices: bool = False):
    """Max pooling of (N, C, H, W) to ``output_size``. With ``return_indices`` also the int64 flat
    index of each maximum within its channel's plane (PyTorch's, usable by ``max_unpool2d``)."""
    return _adaptive_max(input, output_size, return_indices, 2, "adaptive_max_pool2d")


def adaptive_max_pool3d(input, output_size, return_indices: bool = False):
    """Max pooling of (N, C, D, H, W) to ``output_size``. With ``return_indices`` also the int64 flat
    index of each maximum within its channel's plane (PyTorch's, usable by ``max_unpool3d``)."""
    return _adaptive_max(input, output_size, return_indices, 3, "adaptive_max_pool3d")


def _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, nd, name):
    """(sum over the window of x^p)^(1/p): average pooling of x^p times the window size, to the
    power 1/p, as PyTorch (a negative window sum with a fractional power gives NaN there too)."""
    k = _ntuple(kernel_size, nd, "kernel_size", name)
    s = _avg_pool(input ** float(norm_type), k, stride, 0, ceil_mode, True, None, nd, name) * float(math.prod(k))
    return s ** (1.0 / norm_type)


def lp_pool1d(input, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False):
    """Power-average pooling of (N, C, L): (sum x^p)^(1/p) over each window."""
    return _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, 1, "lp_pool1d")


def lp_pool2d(input, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False):
    """Power-average pooling of (N, C, H, W)."""
    return _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, 2, "lp_pool2d")


def lp_pool3d(input, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False):
    """Power-average pooling of (N, C, D, H, W)."""
    return _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, 3, "lp_pool3d")


class _Unpool(Function):
    """``v`` written at flat positions ``idx`` of zeros(size) (PyTorch's max_unpool writes, so a
    position named twice, by overlapping pooling windows, holds the value once: the sum is divided
    by the count); the backward reads the gradient at each position."""

    def __init__(self, idx, size):
        self.idx, self.size = idx, size

    def forward(self, xp, v):
        total = B.scatter_add(v, self.idx, self.size)
        count = B.scatter_add(xp.ones_like(v), self.idx, self.size)
        return total / xp.where(count > 0, count, xp.ones_like(count))

    def backward(self, g, y, v):
        from ...autograd.functions import take
        return take(g, self.idx, 0),


def _max_unpool(input, indices, kernel_size, stride, padding, output_size, nd, name):
    """The inverse of max pooling: each value written at its flat spatial index (``indices``
    from ``max_pool*d(..., return_indices=True)``) in zeros of the unpooled size; gradients are
    read back from the same places."""
    x, unbatched = _batched(input, nd, name)
    idx = _raw(indices)
    xp = B.namespace_of(_raw(x))
    if unbatched:
        idx = xp.reshape(idx, (1,) + tuple(idx.shape))
    if tuple(idx.shape) != tuple(x.shape) or not xp.isdtype(idx.dtype, "integral"):
        raise ValueError(f"{name}: indices must be integers of the input's shape {tuple(x.shape)}, got "
                         f"{B.dtype_name(idx.dtype)}{tuple(idx.shape)}")
    k = _ntuple(kernel_size, nd, "kernel_size", name)
    s = k if stride is None else _ntuple(stride, nd, "stride", name)
    p = _ntuple(padding, nd, "padding", name)
    if output_size is None:
        out = tuple((n - 1) * st - 2 * pd + kk for n, st, pd, kk in zip(x.shape[2:], s, p, k))
    else:
        out = tuple(output_size)[-nd:]
        if len(out) != nd:
            raise ValueError(f"{name}: output_size must give {nd} spatial sizes, got {output_size!r}")
    N, C, plane = x.shape[0], x.shape[1], math.prod(out)
    rows = xp.reshape(xp.arange(N * C, dtype=xp.int64, device=B.array_api_compat.device(idx)), (N, C) + (1,) * nd)
    flat = xp.reshape(xp.astype(idx, xp.int64) + rows * plane, (-1,))
    flat = B.check_indices(flat, N * C * plane, f"{name}: indices (each < {plane}, the unpooled plane size)")
    y = reshape(_Unpool(flat, N * C * plane)(reshape(x, (-1,))), (N, C) + out)
    return reshape(y, tuple(y.shape[1:])) if unbatched else y


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Inverse of max_pool1d: (N, C, L_in) values at ``indices`` in zeros of (N, C, L_out)."""
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 1, "max_unpool1d")


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Inverse of max_pool2d: values at ``indices`` (flat over H_out * W_out) in zeros."""
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 2, "max_unpool2d")


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Inverse of max_pool3d: values at ``indices`` (flat over D_out * H_out * W_out) in zeros."""
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 3, "max_unpool3d")


def _intervals(sample: float, n: int, out: int, k: int):
    """PyTorch's pseudo-random window starts (Graham, 2014): ``out`` starts in [0, n - k]."""
    if out == 1:
        return [n - k]
    alpha = (n - k) / (out - 1)
    return [int((i + sample) * alpha) - int(sample * alpha) for i in range(out - 1)] + [n - k]


def _fractional_max_pool(input, kernel_size, output_size, output_ratio, return_indices, _random_samples, nd, name,
                         generator=None):
    """Max over windows of ``kernel_size`` whose starts follow :func:`_intervals`, one sample u in
    [0, 1) per (batch, channel, axis): ``_random_samples`` (N, C, nd), else drawn from ``generator``
    (default: the default generator).  The window indices are built on the host."""
    x, unbatched = _batched(input, nd, name)
    N, C, sizes = x.shape[0], x.shape[1], tuple(x.shape[2:])
    k = _ntuple(kernel_size, nd, "kernel_size", name)
    if (output_size is None) == (output_ratio is None):
        raise ValueError(f"{name}: give exactly one of output_size and output_ratio")
    if output_size is not None:
        out = _ntuple(output_size, nd, "output_size", name)
    else:
        ratio = tuple(output_ratio) if isinstance(output_ratio, (tuple, list)) else (output_ratio,) * nd
        if len(ratio) != nd or not all(0 < r < 1 for r in ratio):
            raise ValueError(f"{name}: output_ratio must be {nd} numbers in (0, 1), got {output_ratio!r}")
        out = tuple(int(n * r) for n, r in zip(sizes, ratio))
    for n, o, kk in zip(sizes, out, k):
        if o < 1 or o + kk - 1 > n:
            raise ValueError(f"{name}: output size {out} with kernel {k} does not fit the input size {sizes}: "
                             "expected output + kernel - 1 <= input")
    if _random_samples is None:
        gen = generator if generator is not None else B.default_generator()
        samples = gen.host.uniform(size=(N, C, nd)).tolist()
    else:
        r = _raw(_random_samples)
        samples = B.to_numpy(r).reshape(-1, C, nd).tolist()
        if len(samples) < N:  # (extra rows are unused, as PyTorch)
            raise ValueError(f"{name}: _random_samples has shape {tuple(r.shape)}, expected ({N}, {C}, {nd})")
    order = (1, 0) if nd == 2 else tuple(range(nd))  # PyTorch's 2-D samples are (W, H)
    strides = [math.prod(sizes[d + 1:]) for d in range(nd)]
    offsets = [builtins.sum(o * s for o, s in zip(kk, strides)) for kk in itertools.product(*map(range, k))]
    rows = []
    for n in range(N):
        for c in range(C):
            seqs = [_intervals(samples[n][c][order[d]], sizes[d], out[d], k[d]) for d in range(nd)]
            starts = [builtins.sum(st * s for st, s in zip(p, strides)) for p in itertools.product(*seqs)]
            rows.append([a + b for a in starts for b in offsets])
    P, K = math.prod(out), len(offsets)
    idx = B.as_array(rows, "int64", B.backend_of(_raw(x)))
    xp = B.namespace_of(idx)
    idx = xp.reshape(idx, (N, C, P * K))
    g = reshape(take_along_axis(reshape(x, (N, C, math.prod(sizes))), idx, 2), (N, C, P, K))
    best = xp.argmax(_raw(g), axis=3)  # the first maximum (row-major), which gets the gradient, as PyTorch
    y = reshape(take_along_axis(g, best[..., None], 3), (N, C) + out)
    if unbatched:
        y = reshape(y, tuple(y.shape[1:]))
    if not return_indices:
        return y
    where = xp.reshape(xp.take_along_axis(xp.reshape(idx, (N, C, P, K)), best[..., None], axis=3), (N, C) + out)
    return y, Tensor(where[0, ...] if unbatched else where)


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None, return_indices: bool = False,
                          _random_samples=None):
    """Fractional max pooling of (N, C, H, W) (Graham, 2014)."""
    return _fractional_max_pool(input, kernel_size, output_size, output_ratio, return_indices, _random_samples, 2,
                                "fractional_max_pool2d")


def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None, return_indices: bool = False,
                          _random_samples=None):
    """Fractional max pooling of (N, C, T, H, W)."""
    return _fractional_max_pool(input, kernel_size, output_size, output_ratio, return_indices, _random_samples, 3,
                                "fractional_max_pool3d")
