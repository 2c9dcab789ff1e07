"""``interpolate`` (PyTorch's modes nearest, nearest-exact, linear, bilinear, bicubic, trilinear,
area, with ``align_corners`` and ``scale_factor``).

Every mode is separable: resampling one spatial axis from n to m places is a product with a
constant (m, n) matrix, built on the host from PyTorch's source-index formulas
(``area_pixel_compute_source_index``, the cubic convolution with A = -0.75, edge indices
clamped) and applied axis by axis, so the gradient is the transposed product.
"""

from __future__ import annotations

import functools
import math

from ... import backend as B
from ...autograd.functions import _matmul, reshape
from ...autograd.tensor import _raw
from .pooling import _along, _averaging_host

__all__ = ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear"]

_MODES = {"nearest": None, "nearest-exact": None, "area": None, "linear": 1, "bilinear": 2, "bicubic": 2,
          "trilinear": 3}


def _source(dst, scale, align_corners, n_in, n_out, cubic=False):
    if align_corners:
        return dst * ((n_in - 1) / (n_out - 1)) if n_out > 1 else 0.0
    src = (dst + 0.5) * scale - 0.5
    return src if cubic or src > 0 else 0.0


def _cubic(t, A=-0.75):
    """Weights of the four neighbours x-1, x, x+1, x+2 at fraction t (Keys' cubic convolution)."""
    def near(x):  # |x| <= 1
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
    return far(t + 1), near(t), near(1 - t), far(2 - t)


@functools.lru_cache(maxsize=256)
def _matrix_host(mode, n_in, n_out, scale, align_corners):
    """The (n_out, n_in) resampling matrix of one axis, as nested lists."""
    if mode == "area":
        return _averaging_host(n_in, n_out)
    rows = []
    for j in range(n_out):
        row = [0.0] * n_in
        if mode in ("nearest", "nearest-exact"):
            shift = 0.5 if mode == "nearest-exact" else 0.0
            row[min(int(math.floor((j + shift) * scale)), n_in - 1)] = 1.0
        elif mode == "bicubic":
            x = _source(j, scale, align_corners, n_in, n_out, cubic=True)
            i = math.floor(x)
            for k, w in zip(range(i - 1, i + 3), _cubic(x - i)):
                row[min(max(k, 0), n_in - 1)] += w
        else:  # linear
            x = _source(j, scale, align_corners, n_in, n_out)
            i0 = min(int(math.floor(x)), n_in - 1)
            i1 = min(i0 + 1, n_in - 1)
            lam = x - i0
            row[i0] += 1.0 - lam
            row[i1] += lam
        rows.append(row)
    return rows


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False):
    """Resample the spatial axes of (N, C, *spatial) to ``size`` or by ``scale_factor``.

    ``mode``: 'nearest', 'nearest-exact', 'area' (any 1-3 spatial axes), 'linear' (3-D input),
    'bilinear' or 'bicubic' (4-D), 'trilinear' (5-D).  ``align_corners`` (linear modes only)
    maps the corner pixels' centres onto each other.  With ``scale_factor`` the output size is
    floor(n * scale_factor) and the source positions use 1/scale_factor, unless
    ``recompute_scale_factor`` (then n / out), as PyTorch.  ``antialias`` is not supported.
    """
    name = "interpolate"
    if mode not in _MODES:
        raise ValueError(f"{name}: mode={mode!r} is not supported: expected one of {', '.join(map(repr, _MODES))}")
    if antialias:
        raise NotImplementedError(f"{name}: antialias=True is not supported")
    x = _raw(input)
    shape = tuple(x.shape)
    nd = len(shape) - 2
    if nd < 1 or nd > 3 or (_MODES[mode] is not None and _MODES[mode] != nd):
        want = f"{_MODES[mode] + 2}-D" if _MODES[mode] else "3-D, 4-D or 5-D"
        raise ValueError(f"{name}: mode {mode!r} needs a {want} input (N, C, *spatial), got shape {shape}")
    if align_corners is not None and mode not in ("linear", "bilinear", "bicubic", "trilinear"):
        raise ValueError(f"{name}: align_corners is only for the linear modes and bicubic, not {mode!r}")
    align_corners = bool(align_corners)
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{name}: give exactly one of size and scale_factor")
    sizes = shape[2:]
    if size is not None:
        out = tuple(size) if isinstance(size, (tuple, list)) else (size,) * nd
        scales = [n / o for n, o in zip(sizes, out)] if len(out) == nd else []
    else:
        sf = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * nd
        if len(sf) != nd:
            raise ValueError(f"{name}: scale_factor must be a number or {nd} numbers, got {scale_factor!r}")
        out = tuple(int(math.floor(n * f)) for n, f in zip(sizes, sf))
        scales = [n / o if recompute_scale_factor else 1.0 / f for n, o, f in zip(sizes, out, sf)]
    if len(out) != nd or any(not isinstance(o, int) or o < 1 for o in out):
        raise ValueError(f"{name}: the output size must be {nd} positive ints, got {out}")
    y = input
    for d in range(nd):
        if out[d] == sizes[d] and (scales[d] == 1.0 or align_corners):  # the identity
            continue
        rows = _matrix_host(mode, sizes[d], out[d], scales[d], align_corners)
        m = B.as_array([list(c) for c in zip(*rows)], B.dtype_name(x.dtype), B.backend_of(x))  # (n_in, n_out)
        y = _along(y, 2 + d, lambda t: _matmul(t, m))  # not autocast (as PyTorch's upsampling)
    return y


def upsample(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None):
    """Deprecated in PyTorch in favour of :func:`interpolate`, which it calls."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """:func:`interpolate` in mode 'nearest'."""
    return interpolate(input, size, scale_factor, "nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """:func:`interpolate` in mode 'bilinear' with ``align_corners=True``."""
    return interpolate(input, size, scale_factor, "bilinear", align_corners=True)
