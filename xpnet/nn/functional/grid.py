"""``affine_grid`` and ``grid_sample`` (spatial transformer networks, Jaderberg et al., 2015),
with PyTorch's normalized coordinates (-1 and 1 are the edges, or the corner pixels' centres
with ``align_corners``)."""

from __future__ import annotations

from ... import backend as B
from ...autograd.functions import clip, matmul, reshape, take_along_axis, transpose, where
from ...autograd.tensor import _raw

__all__ = ["affine_grid", "grid_sample"]


def _coords(n: int, align_corners: bool):
    if n == 1:
        return [0.0]
    if align_corners:
        return [-1.0 + 2.0 * i / (n - 1) for i in range(n)]
    return [(2.0 * i + 1.0) / n - 1.0 for i in range(n)]


def affine_grid(theta, size, align_corners=None):
    """The sampling grid of an affine map: theta (N, 2, 3) and size (N, C, H, W) give (N, H, W, 2)
    (x, y); theta (N, 3, 4) and size (N, C, D, H, W) give (N, D, H, W, 3) (x, y, z)."""
    size = tuple(size)
    ts = tuple(_raw(theta).shape)
    nd = len(size) - 2
    if nd not in (2, 3) or ts != (size[0], nd, nd + 1):
        raise ValueError(f"affine_grid: expected theta (N, 2, 3) with size (N, C, H, W) or theta (N, 3, 4) with "
                         f"size (N, C, D, H, W), got theta {ts} and size {size}")
    ac = bool(align_corners)
    spatial = size[2:][::-1]  # W, H(, D): x varies along the last axis
    axes = [_coords(n, ac) for n in spatial]
    rows = []
    import itertools
    for idx in itertools.product(*[range(n) for n in size[2:]]):  # D, H, W order
        rows.append([axes[k][idx[nd - 1 - k]] for k in range(nd)] + [1.0])
    r = _raw(theta)
    base = B.as_array(rows, B.dtype_name(r.dtype), B.backend_of(r))  # (P, nd + 1)
    grid = matmul(base, transpose(theta, 1, 2))  # (N, P, nd)
    return reshape(grid, (size[0],) + size[2:] + (nd,))


def _unnormalize(c, n: int, align_corners: bool):
    return (c + 1.0) * ((n - 1) / 2.0) if align_corners else ((c + 1.0) * n - 1.0) * 0.5


def grid_sample(input, grid, mode: str = "bilinear", padding_mode: str = "zeros", align_corners=None):
    """Samples (N, C, H, W) at the (x, y) points of ``grid`` (N, Ho, Wo, 2) -> (N, C, Ho, Wo).

    ``mode`` 'bilinear' or 'nearest'; ``padding_mode`` 'zeros' (outside points read 0) or
    'border' (coordinates clamped to the edge).  Differentiable in the input and (bilinear) in
    the grid.  5-D inputs, 'bicubic' and 'reflection' are not supported (NotImplementedError).
    """
    name = "grid_sample"
    if mode not in ("bilinear", "nearest", "bicubic"):
        raise ValueError(f"{name}: mode={mode!r} is not supported: expected 'bilinear' or 'nearest'")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(f"{name}: padding_mode={padding_mode!r}: expected 'zeros' or 'border'")
    if mode == "bicubic" or padding_mode == "reflection":
        raise NotImplementedError(f"{name}: mode 'bicubic' and padding_mode 'reflection' are not supported")
    x, g = _raw(input), _raw(grid)
    if x.ndim == 5:
        raise NotImplementedError(f"{name}: 5-D (volumetric) inputs are not supported")
    if x.ndim != 4 or g.ndim != 4 or g.shape[-1] != 2 or g.shape[0] != x.shape[0]:
        raise ValueError(f"{name}: expected input (N, C, H, W) and grid (N, Ho, Wo, 2), got {tuple(x.shape)} "
                         f"and {tuple(g.shape)}")
    ac = bool(align_corners)
    N, C, H, W = x.shape
    Ho, Wo = g.shape[1], g.shape[2]
    xp = B.namespace_of(x)
    ix = _unnormalize(grid[..., 0], W, ac)  # (N, Ho, Wo)
    iy = _unnormalize(grid[..., 1], H, ac)
    if padding_mode == "border":
        ix, iy = clip(ix, 0.0, W - 1.0), clip(iy, 0.0, H - 1.0)
    flat = reshape(input, (N, C, H * W))

    def read(yi, xi):  # values at integer places (raw int arrays (N, Ho, Wo)), 0 outside
        inside = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
        k = B.clip(yi, 0, H - 1) * W + B.clip(xi, 0, W - 1)
        k = xp.broadcast_to(xp.reshape(k, (N, 1, Ho * Wo)), (N, C, Ho * Wo))
        v = reshape(take_along_axis(flat, k, 2), (N, C, Ho, Wo))
        return where(inside[:, None, ...], v, 0.0)

    if mode == "nearest":
        rx, ry = xp.round(_raw(ix)), xp.round(_raw(iy))  # half to even, as PyTorch's nearbyint
        return read(xp.astype(ry, xp.int64), xp.astype(rx, xp.int64))
    x0f, y0f = xp.floor(_raw(ix)), xp.floor(_raw(iy))
    x0, y0 = xp.astype(x0f, xp.int64), xp.astype(y0f, xp.int64)
    wx1, wy1 = ix - x0f, iy - y0f  # differentiable in the grid
    wx0, wy0 = 1.0 - wx1, 1.0 - wy1
    out = read(y0, x0) * reshape(wy0 * wx0, (N, 1, Ho, Wo)) + read(y0, x0 + 1) * reshape(wy0 * wx1, (N, 1, Ho, Wo))
    return out + read(y0 + 1, x0) * reshape(wy1 * wx0, (N, 1, Ho, Wo)) + \
        read(y0 + 1, x0 + 1) * reshape(wy1 * wx1, (N, 1, Ho, Wo))
