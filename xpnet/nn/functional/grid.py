"""``affine_grid`` and ``grid_sample`` (spatial transformer networks, Jaderberg et al., 2015),
with PyTorch's normalized coordinates (-1 and 1 are the edges, or the corner pixels' centres
with ``align_corners``).

``grid_sample`` follows ATen's GridSampler.h: a grid coordinate is unnormalized to a pixel
coordinate, then (padding 'border') clipped to [0, n - 1] or (padding 'reflection') reflected
about the edges and clipped; the gradient of those maps is ATen's (0 at and beyond the clipped
edges, -1 on reflected stretches).  'bilinear' (trilinear in 3-D) and 'nearest' read the input
at the resulting coordinate; 'bicubic' (4-D only) reads 4 x 4 taps around the unpadded
coordinate, each tap's integer place padded on its own, with Keys' cubic convolution (A = -0.75).
"""

from __future__ import annotations

import itertools
import math

from ... import backend as B
from ...autograd.functions import matmul, reshape, stack, sum as tsum, take, transpose, where
from ...autograd.tensor import _raw

__all__ = ["affine_grid", "grid_sample"]


def _coords(n: int, align_corners: bool):
    if n == 1:
        return [0.0]
    if align_corners:
        return [-1.0 + 2.0 * i / (n - 1) for i in range(n)]
    return [(2.0 * i + 1.0) / n - 1.0 for i in range(n)]


def affine_grid(theta, size, align_corners=None):
    """The sampling grid of an affine map (PyTorch's ``F.affine_grid``): theta (N, 2, 3) and size
    (N, C, H, W) give (N, H, W, 2) of (x, y); theta (N, 3, 4) and size (N, C, D, H, W) give
    (N, D, H, W, 3) of (x, y, z).  Differentiable in ``theta``; ValueError on other shapes."""
    size = tuple(size)
    ts = tuple(_raw(theta).shape)
    nd = len(size) - 2
    if nd not in (2, 3) or ts != (size[0], nd, nd + 1):
        raise ValueError(f"affine_grid: expected theta (N, 2, 3) with size (N, C, H, W) or theta (N, 3, 4) with "
                         f"size (N, C, D, H, W), got theta {ts} and size {size}")
    ac = bool(align_corners)
    axes = [_coords(n, ac) for n in size[2:][::-1]]  # W, H(, D): x varies along the last axis
    rows = [[axes[k][idx[nd - 1 - k]] for k in range(nd)] + [1.0]
            for idx in itertools.product(*[range(n) for n in size[2:]])]  # D, H, W order
    r = _raw(theta)
    base = B.as_array(rows, B.dtype_name(r.dtype), B.backend_of(r))  # (P, nd + 1)
    grid = matmul(base, transpose(theta, 1, 2))  # (N, P, nd)
    return reshape(grid, (size[0],) + size[2:] + (nd,))


def _unnormalize(c, n: int, align_corners: bool):
    """ATen's grid_sampler_unnormalize: -1..1 to pixel coordinates."""
    return (c + 1.0) * ((n - 1) / 2.0) if align_corners else ((c + 1.0) * n - 1.0) * 0.5


def _padded(xp, c, n: int, padding_mode: str, align_corners: bool):
    """ATen's compute_coordinates with its gradient (``*_set_grad``): raw coordinates ``c`` ->
    (coordinates, d coordinates / d c), for padding 'border' or 'reflection'."""
    one = xp.ones_like(c)
    slope = one
    if padding_mode == "reflection":
        lo2, hi2 = (0, 2 * (n - 1)) if align_corners else (-1, 2 * n - 1)
        if lo2 == hi2:
            return xp.zeros_like(c), xp.zeros_like(c)
        low, span = lo2 / 2.0, (hi2 - lo2) / 2.0
        d = c - low
        sign = xp.where(d < 0, -one, one)
        d = xp.abs(d)
        extra = xp.remainder(d, span)  # fmod: d >= 0
        odd = xp.remainder(xp.floor(d / span), 2.0) == 1.0
        c = xp.where(odd, span - extra + low, extra + low)
        slope = xp.where(odd, -sign, sign)
    inside = (c > 0) & (c < n - 1)  # the clipped edges count as outside for the gradient
    return B.clip(c, 0.0, float(n - 1)), xp.where(inside, slope, xp.zeros_like(c))


def _source(c, n: int, padding_mode: str, align_corners: bool):
    """Differentiable pixel coordinate of grid coordinate ``c`` (ATen's
    grid_sampler_compute_source_index): the padded value, ATen's gradient."""
    u = _unnormalize(c, n, align_corners)
    if padding_mode == "zeros":
        return u
    xp = B.namespace_of(_raw(u))
    value, slope = _padded(xp, _raw(u), n, padding_mode, align_corners)
    return (u - _raw(u)) * slope + value  # forward exactly ``value``; gradient ``slope``


def _cubic(t):
    """Keys' cubic convolution weights (A = -0.75, as PyTorch) of the 4 taps at -1, 0, 1, 2 from
    the floor, ``t`` the fraction: a list of 4 tensors."""
    A = -0.75

    def near(x):  # |x| <= 1
        return ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0

    def far(x):  # 1 < |x| < 2
        return ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A

    return [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]


def _read(input, places, sizes):
    """``input`` (N, C, *sizes) at integer ``places`` (one raw int array (N, T, P) per spatial axis):
    (N, C, T, P), 0 where a place is outside."""
    x = _raw(input)
    xp = B.namespace_of(x)
    N, C = x.shape[0], x.shape[1]
    plane = math.prod(sizes)
    inside, k = None, None
    for i, n in zip(places, sizes):
        ok = (i >= 0) & (i < n)
        inside = ok if inside is None else inside & ok
        i = B.clip(i, 0, n - 1)
        k = i if k is None else k * n + i
    T, P = k.shape[1], k.shape[2]
    rows = xp.reshape(xp.arange(N * C, dtype=k.dtype, device=B.array_api_compat.device(k)), (N, C, 1, 1)) * plane
    flat = xp.reshape(rows + xp.reshape(k, (N, 1, T, P)), (-1,))
    v = reshape(take(reshape(input, (-1,)), flat, 0), (N, C, T, P))
    return where(xp.reshape(inside, (N, 1, T, P)), v, 0.0)


def _combine(input, places, weights, sizes, out_shape):
    """The sum over taps of ``input`` at ``places`` times ``weights`` (N, T, P) -> (N, C, *out)."""
    v = _read(input, places, sizes)
    if weights is not None:
        v = tsum(v * reshape(weights, (weights.shape[0], 1) + tuple(weights.shape[1:])), 2)
    else:
        v = reshape(v, tuple(v.shape[:2]) + tuple(v.shape[3:]))
    return reshape(v, tuple(v.shape[:2]) + out_shape)


def grid_sample(input, grid, mode: str = "bilinear", padding_mode: str = "zeros", align_corners=None):
    """Samples ``input`` at the points of ``grid`` (PyTorch's ``F.grid_sample``).

    4-D: input (N, C, H, W), grid (N, Ho, Wo, 2) of (x, y) -> (N, C, Ho, Wo).
    5-D: input (N, C, D, H, W), grid (N, Do, Ho, Wo, 3) of (x, y, z) -> (N, C, Do, Ho, Wo).
    ``mode``: 'bilinear' (trilinear in 5-D), 'nearest' (half to even, as PyTorch's nearbyint) or
    'bicubic' (4-D only).  ``padding_mode``: 'zeros' (outside points read 0), 'border' (clamped to
    the edge) or 'reflection' (reflected about the edges).  ``align_corners`` as PyTorch (None is
    False).  Differentiable in the input and, except 'nearest', in the grid; the formulas and
    gradient conventions are ATen's (GridSampler.h), see the module docstring.  ValueError for
    another mode, padding mode or shape.
    """
    name = "grid_sample"
    if mode not in ("bilinear", "nearest", "bicubic"):
        raise ValueError(f"{name}: mode={mode!r} is not supported: expected 'bilinear', 'nearest' or 'bicubic'")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(f"{name}: padding_mode={padding_mode!r}: expected 'zeros', 'border' or 'reflection'")
    x, g = _raw(input), _raw(grid)
    nd = x.ndim - 2
    if nd not in (2, 3) or g.ndim != x.ndim or g.shape[-1] != nd or g.shape[0] != x.shape[0]:
        raise ValueError(f"{name}: expected input (N, C, H, W) with grid (N, Ho, Wo, 2), or input (N, C, D, H, W) "
                         f"with grid (N, Do, Ho, Wo, 3), got {tuple(x.shape)} and {tuple(g.shape)}")
    if mode == "bicubic" and nd != 2:
        raise ValueError(f"{name}: mode 'bicubic' needs a 4-D input (as PyTorch), got {tuple(x.shape)}")
    ac = bool(align_corners)
    N, sizes, out_shape = x.shape[0], tuple(x.shape[2:]), tuple(g.shape[1:-1])
    P = math.prod(out_shape)
    xp = B.namespace_of(x)
    flat = reshape(grid, (N, P, nd))
    comp = [flat[:, :, nd - 1 - a] for a in range(nd)]  # spatial axis a (D, H, W) reads grid[..., nd-1-a]

    def as_taps(arrays):  # a list of T raw arrays (N, P) -> (N, T, P)
        return xp.stack(arrays, axis=1)

    if mode == "bicubic":
        us = [_unnormalize(c, n, ac) for c, n in zip(comp, sizes)]  # unpadded: the taps are padded one by one
        floors = [xp.floor(_raw(u)) for u in us]
        ws = [_cubic(u - f) for u, f in zip(us, floors)]
        places, weights = [[], []], []
        for i, j in itertools.product(range(4), range(4)):  # (y, x) taps, row-major
            for a, t in enumerate((i, j)):
                pos = floors[a] + (t - 1.0)
                if padding_mode != "zeros":
                    pos = _padded(xp, pos, sizes[a], padding_mode, ac)[0]
                places[a].append(xp.astype(pos, xp.int64))
            weights.append(ws[0][i] * ws[1][j])
        return _combine(input, [as_taps(p) for p in places], stack(weights, 1), sizes, out_shape)
    src = [_source(c, n, padding_mode, ac) for c, n in zip(comp, sizes)]
    if mode == "nearest":
        places = [xp.astype(xp.round(_raw(s)), xp.int64)[:, None, :] for s in src]
        return _combine(input, places, None, sizes, out_shape)
    floors = [xp.floor(_raw(s)) for s in src]
    highs = [s - f for s, f in zip(src, floors)]  # weight of the upper neighbour, differentiable in the grid
    lows = [1.0 - h for h in highs]
    places, weights = [[] for _ in range(nd)], []
    for corner in itertools.product((0, 1), repeat=nd):
        w = None
        for a, b in enumerate(corner):
            places[a].append(xp.astype(floors[a], xp.int64) + b)
            f = highs[a] if b else lows[a]
            w = f if w is None else w * f
        weights.append(w)
    return _combine(input, [as_taps(p) for p in places], stack(weights, 1), sizes, out_shape)
