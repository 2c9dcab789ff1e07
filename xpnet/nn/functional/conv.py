"""Convolutions (``conv1d``, ``conv2d``, ``conv_transpose1d/2d``) and ``unfold``/``fold``.

One portable im2col implementation for 1-D and 2-D: the patch tensor is built
from one strided slice of the (padded) input per kernel offset, stacked, and
multiplied by the weight in one matrix product.  Its adjoint, col2im
(:class:`Fold`), adds the slices back into zeros (:func:`xpnet.backend.add_slices`:
in place where the library allows it).  ``Unfold`` and ``Fold`` are each
other's backward, so the convolution's gradients are themselves
differentiable (double backprop).
"""

from __future__ import annotations

import math

from ... import backend as B
from ...autograd.functions import matmul, permute, reshape, sum, transpose
from ...autograd.tensor import Function, Tensor, _raw

from ...autograd.autocast_state import to_low  # noqa: E402

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "unfold",
           "fold"]


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
    if len(t) == 1 and n > 1:  # a 1-tuple stands for every axis, as in PyTorch
        t = t * n
    if len(t) != n or not all(isinstance(a, int) and not isinstance(a, bool) for a in t):
        raise ValueError(f"{name}: {what} must be an int or a tuple of {n} ints, got {v!r}")
    return t


class Geometry:
    """Where the windows of a sliding kernel lie along ``n`` spatial axes.

    ``size``: input extent ``S``; ``kernel``, ``stride``, ``dilation``;
    ``lo``: padding before; ``out``: number of windows ``O``.  The input is
    padded after by ``hi``, just enough for the last window.  Geometries are
    shared (see :meth:`of`): nothing changes them after ``__init__``.
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
        # indices into an (A, B, *padded S, ...) array: each kernel element's places, the input's places
        head = (slice(None), slice(None))
        self.windows = tuple(head + tuple(slice(p, p + s * (o - 1) + 1, s) for p, s, o in zip(
            off, self.stride, self.out)) + (...,) for off in offsets)
        self.padded = tuple(a + n + b for a, n, b in zip(self.lo, self.size, self.hi))
        self.inside = head + tuple(slice(a, a + n) for a, n in zip(self.lo, self.size)) + (...,)

    @classmethod
    def of(cls, size, kernel, stride, dilation, lo, out):
        """``Geometry(...)``, made once per distinct set of arguments."""
        key = tuple(tuple(a) for a in (size, kernel, stride, dilation, lo, out))
        geo = _GEOMETRIES.get(key)
        if geo is None:
            if len(_GEOMETRIES) >= 1024:
                _GEOMETRIES.clear()
            geo = _GEOMETRIES[key] = cls(*key)
        return geo

    @classmethod
    def sliding(cls, size, kernel, stride, dilation, lo, hi, name, ceil_mode=False):
        """The windows of a convolution or pooling over an input padded by ``lo``/``hi``;
        raises a ValueError (prefixed by ``name``) when the kernel does not fit."""
        key = (tuple(size), tuple(kernel), tuple(stride), tuple(dilation), tuple(lo), tuple(hi), ceil_mode)
        geo = _GEOMETRIES.get(key)
        if geo is not None:
            return geo
        out = []
        for n, k, s, d, a, b in zip(size, kernel, stride, dilation, lo, hi):
            span = d * (k - 1) + 1
            # PyTorch's pooling_output_shape: floor division (towards -inf), then with ceil_mode the
            # last window must start inside the input or the left padding; at least one window
            o = (n + a + b - span + (s - 1 if ceil_mode else 0)) // s + 1
            if ceil_mode and (o - 1) * s >= n + a:
                o -= 1
            if o < 1:
                raise ValueError(
                    f"{name}: the kernel {tuple(kernel)} (dilation {tuple(dilation)}) is larger than the "
                    f"padded input: input size {tuple(size)}, padding {tuple(lo)}/{tuple(hi)}: "
                    f"expected padded size >= {d} * ({k} - 1) + 1 = {span} on every axis"
                    + (" (or, with ceil_mode, an output size of at least 1)" if ceil_mode else ""))
            out.append(o)
        geo = _GEOMETRIES[key] = cls.of(size, kernel, stride, dilation, lo, out)
        return geo


_GEOMETRIES: dict = {}  # Geometry.of and Geometry.sliding: arguments -> Geometry


def _pad(xp, x, geo: Geometry, value=0.0):
    """``x`` of shape (A, B, *S, ...) padded to (A, B, *geo.padded, ...) with ``value``.

    Zeros: ``x`` written into zeros (:func:`xpnet.backend.add_slices`).  Other
    values: small arrays by concatenation (a few microseconds), large ones by
    the backend's ``pad`` (the library's own, one pass instead of one per axis).
    """
    if value == 0:
        return B.add_slices(tuple(x.shape[:2]) + geo.padded + tuple(x.shape[2 + geo.n:]), [(geo.inside, x)])
    widths = list(zip(geo.lo, geo.hi))
    if math.prod(x.shape) >= 1 << 16:
        return B.pad(x, [(0, 0)] * 2 + widths + [(0, 0)] * (x.ndim - 2 - geo.n), value)
    for i, (a, b) in enumerate(widths):
        parts = [x]
        for n, where in ((a, 0), (b, 1)):
            if n:
                shape = tuple(x.shape[:2 + i]) + (n,) + tuple(x.shape[3 + i:])
                block = xp.full(shape, value, dtype=x.dtype, device=B.array_api_compat.device(x))
                parts.insert(len(parts) * where, block)
        if len(parts) > 1:
            x = xp.concat(parts, axis=2 + i)
    return x


def _unfold(xp, x, geo: Geometry, axis: int, value=0.0):
    """im2col: ``x`` of shape (A, B, *S, ...) (spatial axes 2, 3, ...; any axes after them
    ride along) -> one slice per kernel offset, stacked at ``axis``: 1 gives (A, K, B, *O, ...),
    2 gives (A, B, K, *O, ...), ``2 + n`` gives (A, B, *O, K, ...).  Padding uses ``value``."""
    if geo.padded != geo.size:
        x = _pad(xp, x, geo, value)
    return xp.stack([x[w] for w in geo.windows], axis=axis)


def _fold(xp, cols, geo: Geometry, axis: int):
    """col2im, the adjoint of :func:`_unfold`: the slices of ``cols`` (K at ``axis``) added
    back into (A, B, *S, ...) by :func:`xpnet.backend.add_slices`."""
    shape = list(cols.shape)
    del shape[axis]
    shape[2:2 + geo.n] = geo.padded
    at = (slice(None),) * axis
    z = B.add_slices(tuple(shape), [(w, cols[at + (t, ...)]) for t, w in enumerate(geo.windows)])
    return z if geo.padded == geo.size else z[geo.inside]


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
#
# Inside a convolution the channels lead: (N, C, *S) is viewed as (C, N, *S)
# (a view when the memory is laid out so, as the convolution's own output
# is).  The patches (C, K, N, *O) form a (C*K, N*L) matrix per group whose
# product with the weight is one GEMM, and the output (Cout, N*L) is
# permuted back to (N, Cout, *O) without a copy.

def _ops(x):
    """``(reshape, permute)`` for ``x``: the differentiable ones for a Tensor, the namespace's
    own for a raw array (no Function call: they run several times per convolution)."""
    if isinstance(x, Tensor):
        return reshape, permute
    xp = B.namespace_of(x)
    return xp.reshape, xp.permute_dims


def _swap01(nd: int):
    return (1, 0) + tuple(range(2, nd + 2))


def _matrix(y, G: int, rows: int):
    """``y`` as (rows, cols) for one group, (G, rows, cols) for several."""
    cols = math.prod(y.shape) // (G * rows)
    return _ops(y)[0](y, (rows, cols) if G == 1 else (G, rows, cols))


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

    def _cols(self, x):
        """The patch matrix of ``x``: (C*K, N*L), or (G, C/G*K, N*L)."""
        geo, G = self.geo, self.groups
        u = Unfold(geo, 1)(_ops(x)[1](x, _swap01(geo.n)))  # (C, K, N, *O)
        return _matrix(u, G, x.shape[1] // G * geo.K)

    def forward(self, xp, x, w, b=None):
        G, cout = self.groups, w.shape[0]
        self.cols = cols = self._cols(x)
        y = _matrix(w, G, cout // G) @ cols
        if b is not None:
            y = y + xp.reshape(b, (cout, 1) if G == 1 else (G, cout // G, 1))
        return xp.permute_dims(xp.reshape(y, (cout, x.shape[0], *self.geo.out)), _swap01(self.geo.n))

    def backward(self, g, y, x, w, b=None):
        geo, nd, G = self.geo, self.geo.n, self.groups
        N, C = x.shape[0], x.shape[1]
        cout, cg, ks = w.shape[0], w.shape[1], tuple(w.shape[2:])
        rs, pm = _ops(g)
        gx = gw = gb = None
        if self.needs[1] or (b is not None and self.needs[2]) or (self.needs[0] and self.transposed is None):
            gt = _matrix(pm(g, _swap01(nd)), G, cout // G)  # (Cout, N*L) or (G, Cout/G, N*L)
        if self.needs[0] and self.transposed is not None:
            # w as the kernel of the transposed convolution: (C, Cout/G, *k), flipped
            wt = transpose(w, 0, 1) if G == 1 else reshape(
                permute(reshape(w, (G, cout // G, cg, *ks)), (0, 2, 1) + tuple(range(3, nd + 3))), (C, cout // G, *ks))
            wt = Flip(range(2, nd + 2))(wt)
            gx = Conv(self.transposed, G)(g, wt)
        elif self.needs[0]:
            gcols = rs(_matrix(w, G, cout // G).mT @ gt, (C, geo.K, N, *geo.out))
            gx = pm(Fold(geo, 1)(gcols), _swap01(nd))
        if self.needs[1]:
            cols = self.cols
            if isinstance(x, Tensor) and x.requires_grad:  # double backprop: cols as a function of x
                cols = self._cols(x)
            gw = rs(gt @ cols.mT, tuple(w.shape))
        if b is not None and self.needs[2]:
            gb = rs(sum(gt, -1), (cout,))
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


def _kernel_args(name, weight, stride, dilation, groups, nd, axes):
    """Checked ``(weight shape, stride, dilation)``; ``axes`` names the weight's first two axes
    (``("out_channels", "in_channels")`` for a convolution, the reverse for a transposed one)."""
    ws = tuple(weight.shape)
    if len(ws) != nd + 2:
        raise ValueError(f"{name}: weight must have {nd + 2} dimensions ({axes[0]}, {axes[1]}/groups, "
                         f"*kernel), got shape {ws}")
    stride = _ntuple(stride, nd, "stride", name)
    dilation = _ntuple(dilation, nd, "dilation", name)
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise ValueError(f"{name}: stride and dilation must be >= 1, got {stride} and {dilation}")
    if not isinstance(groups, int) or groups < 1 or ws[0] % groups:
        raise ValueError(f"{name}: groups={groups!r} must be a positive int dividing {axes[0]}={ws[0]}")
    return ws, stride, dilation


def _conv(input, weight, bias, stride, padding, dilation, groups, nd, name):
    input, weight, bias = to_low(input, weight, bias)  # under xpnet.autocast
    x, unbatched = _batched(input, nd, name)
    ws, stride, dilation = _kernel_args(name, weight, stride, dilation, groups, nd, ("out_channels", "in_channels"))
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


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """3-D convolution of (N, C_in, D, H, W) with weight (C_out, C_in/groups, kD, kH, kW), as
    ``torch.nn.functional.conv3d`` (the same N-d code as conv1d and conv2d)."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 3, "conv3d")


# ------------------------------------------------------------ transposed conv

def _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, nd, name,
                    output_size=None):
    input, weight, bias = to_low(input, weight, bias)  # under xpnet.autocast
    x, unbatched = _batched(input, nd, name)
    ws, stride, dilation = _kernel_args(name, weight, stride, dilation, groups, nd, ("in_channels", "out_channels"))
    pad = _ntuple(padding, nd, "padding", name)
    outpad = _ntuple(output_padding, nd, "output_padding", name)
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
    geo = Geometry.of(size, ws[2:], stride, dilation, pad, sin)
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


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1):
    """Transposed 3-D convolution; weight (C_in, C_out/groups, kD, kH, kW)."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 3,
                           "conv_transpose3d")


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
