"""Convolutions (``conv1d``, ``conv2d``, ``conv_transpose1d/2d``) and ``unfold``/``fold``.

One portable im2col implementation for 1-D and 2-D: the patch tensor is built
from one strided slice of the (padded) input per kernel offset, stacked, and
multiplied by the weight in one matrix product.  Its adjoint, col2im
(:class:`Fold`), adds the slices back; it interleaves stride phases by
stacking instead of writing into arrays.  ``Unfold`` and ``Fold`` are each
other's backward, so the convolution's gradients are themselves
differentiable (double backprop).
"""

from __future__ import annotations

import math

from ... import backend as B
from ...autograd.functions import matmul, permute, reshape, sum, transpose
from ...autograd.tensor import Function, Tensor, _raw

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "unfold", "fold"]


# ------------------------------------------------------------------ geometry

class LayerName:
    """A module's ``Name(extra_repr)`` for error messages, formatted only when an error is raised."""

    __slots__ = ("module",)

    def __init__(self, module):
        self.module = module

    def __str__(self):
        return f"{type(self.module).__name__}({self.module.extra_repr()})"

    __format__ = lambda self, spec: format(str(self), spec)  # noqa: E731


def _ntuple(v, n: int, what: str, name: str):
    t = tuple(v) if isinstance(v, (tuple, list)) else (v,) * n
    if len(t) != n or not all(isinstance(a, int) and not isinstance(a, bool) for a in t):
        raise ValueError(f"{name}: {what} must be an int or a tuple of {n} ints, got {v!r}")
    return t


class Geometry:
    """Where the windows of a sliding kernel lie along ``n`` spatial axes.

    ``size``: input extent ``S``; ``kernel``, ``stride``, ``dilation``;
    ``lo``: padding before; ``out``: number of windows ``O``.  The input is
    padded after by ``hi``, just enough for the last window.
    """

    def __init__(self, size, kernel, stride, dilation, lo, out):
        self.size, self.kernel, self.stride = tuple(size), tuple(kernel), tuple(stride)
        self.dilation, self.lo, self.out = tuple(dilation), tuple(lo), tuple(out)
        self.hi = tuple(max(0, (o - 1) * s + d * (k - 1) + 1 - lo_ - n) for o, s, d, k, lo_, n
                        in zip(self.out, self.stride, self.dilation, self.kernel, self.lo, self.size))
        self.n = len(self.size)
        self.K = math.prod(self.kernel)
        self.L = math.prod(self.out)
        offsets = [()]
        for k, d in zip(self.kernel, self.dilation):
            offsets = [o + (i * d,) for o in offsets for i in range(k)]
        self.offsets = offsets  # start of each kernel element's slice in the padded input

    @classmethod
    def sliding(cls, size, kernel, stride, dilation, lo, hi, name, ceil_mode=False):
        """The windows of a convolution or pooling over an input padded by ``lo``/``hi``;
        raises a ValueError (prefixed by ``name``) when the kernel does not fit."""
        out = []
        for n, k, s, d, a, b in zip(size, kernel, stride, dilation, lo, hi):
            span = d * (k - 1) + 1
            if n + a + b < span:
                raise ValueError(
                    f"{name}: the kernel {tuple(kernel)} (dilation {tuple(dilation)}) is larger than the "
                    f"padded input: input size {tuple(size)}, padding {tuple(lo)}/{tuple(hi)}: "
                    f"expected padded size >= {d} * ({k} - 1) + 1 = {span} on every axis")
            o = (n + a + b - span + (s - 1 if ceil_mode else 0)) // s + 1
            if ceil_mode and (o - 1) * s >= n + a:  # the last window must start inside the input or left padding
                o -= 1
            out.append(o)
        return cls(size, kernel, stride, dilation, lo, out)


def _pad(xp, x, widths, value=0.0, blocks=None):
    """Constant padding of the trailing axes (``widths`` per trailing axis).

    Small arrays are padded by concatenation (a few microseconds; ``blocks``, a
    dict, lets calls share their constant blocks); large ones by the backend's
    ``pad`` (the library's own, one pass instead of one per axis).
    """
    first = x.ndim - len(widths)
    if math.prod(x.shape) >= 1 << 16:
        return B.pad(x, [(0, 0)] * first + [tuple(w) for w in widths], value)
    blocks = {} if blocks is None else blocks
    for i, (a, b) in enumerate(widths):
        if a == 0 and b == 0:
            continue
        parts = [x]
        for n, where in ((a, 0), (b, 1)):
            if n:
                shape = tuple(x.shape[:first + i]) + (n,) + tuple(x.shape[first + i + 1:])
                block = blocks.get(shape)
                if block is None:
                    block = blocks[shape] = xp.full(shape, value, dtype=x.dtype, device=B.array_api_compat.device(x))
                parts.insert(len(parts) * where, block)
        x = xp.concat(parts, axis=first + i)
    return x


def _unfold(xp, x, geo: Geometry, axis: int, value=0.0):
    """im2col: ``x`` of shape (A, B, *S) -> one slice per kernel offset, stacked at ``axis``
    (1: (A, K, B, *O); 2: (A, B, K, *O)); padding uses ``value``."""
    hi = tuple(max(0, h) for h in geo.hi)
    if any(geo.lo) or any(hi):
        x = _pad(xp, x, list(zip(geo.lo, hi)), value)
    head = (slice(None), slice(None))
    slices = [x[head + tuple(slice(p, p + s * (o - 1) + 1, s) for p, s, o in zip(off, geo.stride, geo.out))]
              for off in geo.offsets]
    return xp.stack(slices, axis=axis)


def _fold(xp, cols, geo: Geometry, axis: int):
    """col2im, the adjoint of :func:`_unfold`: the slices of ``cols`` added back into (A, B, *S).

    Along an axis with stride ``s`` a slice starting at ``p = s*q + r`` fills every
    ``s``-th place of phase ``r``: slices are zero-padded by ``q`` and summed per
    phase, and the phases are interleaved by stacking and reshaping.
    """
    n = geo.n
    A, Bn = cols.shape[0], cols.shape[2 if axis == 1 else 1]
    dev = B.array_api_compat.device(cols)
    Q = [max(-(-(lo + S) // s), (k - 1) * d // s + o) for lo, S, s, k, d, o
         in zip(geo.lo, geo.size, geo.stride, geo.kernel, geo.dilation, geo.out)]
    phases, blocks = {}, {}
    for t, off in enumerate(geo.offsets):
        piece = cols[:, t, ...] if axis == 1 else cols[:, :, t, ...]
        qr = [divmod(p, s) for p, s in zip(off, geo.stride)]
        piece = _pad(xp, piece, [(q, Qa - q - o) for (q, _), Qa, o in zip(qr, Q, geo.out)], 0.0, blocks)
        r = tuple(r for _, r in qr)
        phases[r] = phases[r] + piece if r in phases else piece

    def interleave(prefix, a):
        if a == n:
            got = phases.get(prefix)
            return got if got is not None else xp.zeros((A, Bn, *Q), dtype=cols.dtype, device=dev)
        if geo.stride[a] == 1:
            return interleave(prefix + (0,), a + 1)
        return xp.stack([interleave(prefix + (r,), a + 1) for r in range(geo.stride[a])], axis=3 + a)

    z = interleave((), 0)
    z = xp.reshape(z, (A, Bn, *(q * s for q, s in zip(Q, geo.stride))))
    if all(lo == 0 and q * s == S for lo, q, s, S in zip(geo.lo, Q, geo.stride, geo.size)):
        return z
    return z[(slice(None), slice(None)) + tuple(slice(lo, lo + S) for lo, S in zip(geo.lo, geo.size))]


class Unfold(Function):
    """im2col as a differentiable operation; its backward is :class:`Fold`."""

    def __init__(self, geo: Geometry, axis: int, value=0.0):
        self.geo, self.axis, self.value = geo, axis, value

    def forward(self, xp, x):
        return _unfold(xp, x, self.geo, self.axis, self.value)

    def backward(self, g, y, x):
        return Fold(self.geo, self.axis)(g),


class Fold(Function):
    """col2im as a differentiable operation; its backward is :class:`Unfold`."""

    def __init__(self, geo: Geometry, axis: int):
        self.geo, self.axis = geo, axis

    def forward(self, xp, cols):
        return _fold(xp, cols, self.geo, self.axis)

    def backward(self, g, y, cols):
        return Unfold(self.geo, self.axis)(g),


# ---------------------------------------------------------------- convolution

def _swap01(nd: int):
    return (1, 0) + tuple(range(2, nd + 2))


class Flip(Function):
    """Reverse the order along ``axes``."""

    def __init__(self, axes):
        self.axes = tuple(axes)

    def forward(self, xp, x):
        return xp.flip(x, axis=self.axes)

    def backward(self, g, y, x):
        return Flip(self.axes)(g),


class Conv(Function):
    """N-d convolution (cross-correlation) with groups, as im2col + one matrix product.

    x: (N, C, *S), w: (Cout, C/groups, *k), b: (Cout,) -> (N, Cout, *O).
    The patch matrix is laid out (C*K, N*L) so that the product is a single
    GEMM per group; it is kept for the weight gradient.  The input gradient
    is col2im of w^T g, or, for stride 1, the convolution of the padded g with
    the flipped kernel (the sum over kernel offsets then happens in the GEMM).
    """

    def __init__(self, geo: Geometry, groups: int, hi=None):
        self.geo, self.groups = geo, groups
        self.transposed = None  # the geometry of the input gradient as a convolution, where one exists
        if hi is not None and all(s == 1 for s in geo.stride):
            span = [d * (k - 1) for k, d in zip(geo.kernel, geo.dilation)]
            lo2, hi2 = [a - b for a, b in zip(span, geo.lo)], [a - b for a, b in zip(span, hi)]
            if min(lo2 + hi2) >= 0:
                self.transposed = Geometry.sliding(geo.out, geo.kernel, geo.stride, geo.dilation, lo2, hi2, "conv")

    def _wshape(self, w):
        G, cout = self.groups, w.shape[0]
        return (cout, math.prod(w.shape[1:])) if G == 1 else (G, cout // G, math.prod(w.shape[1:]))

    def _cshape(self, C, N):
        G, geo = self.groups, self.geo
        return (C * geo.K, N * geo.L) if G == 1 else (G, C // G * geo.K, N * geo.L)

    def forward(self, xp, x, w, b=None):
        geo, nd = self.geo, self.geo.n
        N, C = x.shape[0], x.shape[1]
        cout = w.shape[0]
        cols = _unfold(xp, xp.permute_dims(x, _swap01(nd)), geo, 1)  # (C, K, N, *O)
        cols = xp.reshape(cols, self._cshape(C, N))
        self.cols = cols
        y = xp.reshape(xp.matmul(xp.reshape(w, self._wshape(w)), cols), (cout, N * geo.L))
        if b is not None:
            y = y + b[:, None]
        return xp.permute_dims(xp.reshape(y, (cout, N, *geo.out)), _swap01(nd))

    def backward(self, g, y, x, w, b=None):
        geo, nd, G = self.geo, self.geo.n, self.groups
        N, C = x.shape[0], x.shape[1]
        cout, cg, ks = w.shape[0], w.shape[1], tuple(w.shape[2:])
        gx = gw = gb = None
        gt = None
        if self.needs[1] or (self.needs[0] and self.transposed is None):
            gt = reshape(permute(g, _swap01(nd)), (cout, N * geo.L) if G == 1 else (G, cout // G, N * geo.L))
        if self.needs[0] and self.transposed is not None:
            # w as the kernel of the transposed convolution: (C, Cout/G, *k), flipped
            wt = transpose(w, 0, 1) if G == 1 else reshape(
                permute(reshape(w, (G, cout // G, cg, *ks)), (0, 2, 1) + tuple(range(3, nd + 3))), (C, cout // G, *ks))
            wt = Flip(range(2, nd + 2))(wt)
            gx = Conv(self.transposed, G)(g, wt)
        elif self.needs[0]:
            gcols = reshape(matmul(transpose(reshape(w, self._wshape(w)), -1, -2), gt), (C, geo.K, N, *geo.out))
            gx = permute(Fold(geo, 1)(gcols), _swap01(nd))
        if self.needs[1]:
            cols = self.cols
            if isinstance(x, Tensor) and x.requires_grad:  # double backprop: cols as a function of x
                cols = reshape(Unfold(geo, 1)(permute(x, _swap01(nd))), self._cshape(C, N))
            gw = reshape(matmul(gt, transpose(cols, -1, -2)), tuple(w.shape))
        if b is not None and self.needs[2]:
            gb = sum(g, (0,) + tuple(range(2, nd + 2)))
        return gx, gw, gb


_DIMS = {1: "L", 2: "H, W", 3: "D, H, W"}


def _batched(x, nd: int, name: str, what: str = "input"):
    """(N, C, *S) as is, or an unbatched (C, *S) with a batch axis added; else a clear error."""
    shape = tuple(x.shape)
    if len(shape) == nd + 2:
        return x, False
    if len(shape) == nd + 1:
        return reshape(x, (1, *shape)), True
    raise ValueError(f"{name}: {what} must have {nd + 2} dimensions (N, C, {_DIMS[nd]}) "
                     f"or {nd + 1} (unbatched), got shape {shape}")


def _check_dtypes(name, x, *others):
    dt = _raw(x).dtype
    for o in others:
        if o is not None and _raw(o).dtype != dt:
            raise TypeError(f"{name}: input is {B.dtype_name(dt)} but a parameter is "
                            f"{B.dtype_name(_raw(o).dtype)}: convert one of them "
                            f"(e.g. module.to('{B.dtype_name(dt)}'))")


def _padding(padding, nd, kernel, dilation, stride, name):
    """``padding`` (int, tuple, 'same', 'valid') as per-axis (lo, hi) tuples."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * nd, (0,) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{name}: padding='same' needs stride 1, got stride {stride}")
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)
        raise ValueError(f"{name}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    p = _ntuple(padding, nd, "padding", name)
    if any(a < 0 for a in p):
        raise ValueError(f"{name}: padding must be >= 0, got {padding!r}")
    return p, p


def _conv(input, weight, bias, stride, padding, dilation, groups, nd, name):
    x, unbatched = _batched(input, nd, name)
    ws = tuple(weight.shape)
    if len(ws) != nd + 2:
        raise ValueError(f"{name}: weight must have {nd + 2} dimensions (out_channels, in_channels/groups, "
                         f"*kernel), got shape {ws}")
    stride = _ntuple(stride, nd, "stride", name)
    dilation = _ntuple(dilation, nd, "dilation", name)
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise ValueError(f"{name}: stride and dilation must be >= 1, got {stride} and {dilation}")
    if not isinstance(groups, int) or groups < 1 or ws[0] % groups:
        raise ValueError(f"{name}: groups={groups!r} must be a positive int dividing out_channels={ws[0]}")
    C = x.shape[1]
    if C != ws[1] * groups:
        read = f", read as unbatched (C, {_DIMS[nd]})" if unbatched else ""
        raise ValueError(f"{name}: input has {C} channels (shape {tuple(input.shape)}{read}), expected "
                         f"{ws[1] * groups} (weight shape {ws}, groups={groups})")
    if bias is not None and tuple(bias.shape) != (ws[0],):
        raise ValueError(f"{name}: bias has shape {tuple(bias.shape)}, expected ({ws[0]},)")
    _check_dtypes(name, x, weight, bias)
    lo, hi = _padding(padding, nd, ws[2:], dilation, stride, name)
    geo = Geometry.sliding(tuple(x.shape[2:]), ws[2:], stride, dilation, lo, hi, name)
    fn = Conv(geo, groups, hi)
    y = fn(x, weight) if bias is None else fn(x, weight, bias)
    return reshape(y, tuple(y.shape[1:])) if unbatched else y


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """1-D convolution of (N, C_in, L) with weight (C_out, C_in/groups, k), as ``torch.nn.functional.conv1d``.

    ``padding``: int, 1-tuple, ``'same'`` (stride 1) or ``'valid'``.
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """2-D convolution of (N, C_in, H, W) with weight (C_out, C_in/groups, kH, kW), as
    ``torch.nn.functional.conv2d``."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


# ------------------------------------------------------------ transposed conv

def _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, nd, name,
                    output_size=None):
    x, unbatched = _batched(input, nd, name)
    ws = tuple(weight.shape)
    if len(ws) != nd + 2:
        raise ValueError(f"{name}: weight must have {nd + 2} dimensions (in_channels, out_channels/groups, "
                         f"*kernel), got shape {ws}")
    stride = _ntuple(stride, nd, "stride", name)
    dilation = _ntuple(dilation, nd, "dilation", name)
    pad = _ntuple(padding, nd, "padding", name)
    outpad = _ntuple(output_padding, nd, "output_padding", name)
    if not isinstance(groups, int) or groups < 1 or ws[0] % groups:
        raise ValueError(f"{name}: groups={groups!r} must be a positive int dividing in_channels={ws[0]}")
    N, C = x.shape[0], x.shape[1]
    if C != ws[0]:
        raise ValueError(f"{name}: input has {C} channels (shape {tuple(input.shape)}), expected {ws[0]} "
                         f"(weight shape {ws})")
    cout = ws[1] * groups
    if bias is not None and tuple(bias.shape) != (cout,):
        raise ValueError(f"{name}: bias has shape {tuple(bias.shape)}, expected ({cout},)")
    for op, s, d in zip(outpad, stride, dilation):
        if not 0 <= op < max(s, d):
            raise ValueError(f"{name}: output_padding {outpad} must be smaller than stride {stride} "
                             f"or dilation {dilation}")
    _check_dtypes(name, x, weight, bias)
    sin = tuple(x.shape[2:])
    size = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1
                 for n, s, p, d, k, op in zip(sin, stride, pad, dilation, ws[2:], outpad))
    if any(n < 1 for n in size):
        raise ValueError(f"{name}: input size {sin} with padding {pad} gives an empty output {size}")
    geo = Geometry(size, ws[2:], stride, dilation, pad, sin)
    K, L = geo.K, geo.L
    xt = reshape(permute(x, _swap01(nd)), (C, N * L) if groups == 1 else (groups, C // groups, N * L))
    w2 = reshape(weight, (C, cout * K) if groups == 1 else (groups, C // groups, ws[1] * K))
    cols = reshape(matmul(transpose(w2, -1, -2), xt), (cout, K, N, *sin))
    y = permute(Fold(geo, 1)(cols), _swap01(nd))
    if bias is not None:
        y = y + reshape(bias, (1, cout) + (1,) * nd)
    return reshape(y, tuple(y.shape[1:])) if unbatched else y


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1):
    """Transposed 1-D convolution (the gradient of conv1d w.r.t. its input); weight (C_in, C_out/groups, k)."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 1,
                           "conv_transpose1d")


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1):
    """Transposed 2-D convolution; weight (C_in, C_out/groups, kH, kW), as ``torch.nn.functional.conv_transpose2d``."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 2,
                           "conv_transpose2d")


# ----------------------------------------------------------- unfold and fold

def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding 2-D patches: (N, C, H, W) -> (N, C*kH*kW, L), as ``torch.nn.functional.unfold``."""
    name = "unfold"
    if len(tuple(input.shape)) != 4:
        raise ValueError(f"{name}: input must have 4 dimensions (N, C, H, W), got shape {tuple(input.shape)}")
    k = _ntuple(kernel_size, 2, "kernel_size", name)
    p = _ntuple(padding, 2, "padding", name)
    geo = Geometry.sliding(tuple(input.shape[2:]), k, _ntuple(stride, 2, "stride", name),
                           _ntuple(dilation, 2, "dilation", name), p, p, name)
    N, C = input.shape[0], input.shape[1]
    return reshape(Unfold(geo, 2)(input), (N, C * geo.K, geo.L))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Patches summed back into an image: (N, C*kH*kW, L) -> (N, C, H, W), as ``torch.nn.functional.fold``."""
    name = "fold"
    size = _ntuple(output_size, 2, "output_size", name)
    k = _ntuple(kernel_size, 2, "kernel_size", name)
    p = _ntuple(padding, 2, "padding", name)
    geo = Geometry.sliding(size, k, _ntuple(stride, 2, "stride", name), _ntuple(dilation, 2, "dilation", name),
                           p, p, name)
    shape = tuple(input.shape)
    if len(shape) != 3 or shape[1] % geo.K or shape[2] != geo.L:
        raise ValueError(f"{name}: input has shape {shape}, expected (N, C*{geo.K}, {geo.L}) for kernel {k} "
                         f"over output size {size}")
    return Fold(geo, 2)(reshape(input, (shape[0], shape[1] // geo.K, geo.K, *geo.out)))
