"""Differentiable operations.

Each public function takes tensors (or raw arrays, giving raw arrays back, as
the backward rules need) and Python scalars.  The backward rules below use
only operators and these same functions, so each rule serves first-order
gradients (on raw arrays) and higher-order ones (on tensors) alike.

In a rule, put the gradient (or another tensor-like value) on the left of an
operator and raw constants (masks) on the right: ``g * mask``, not
``mask * g``.  An array-api-strict array on the left raises instead of
deferring to the Tensor on the right.
"""

from __future__ import annotations

import builtins
import math

from .. import backend as B
from .autocast_state import to_low
from .names import axis_names
from .tensor import Function, Tensor, _raw

__all__ = [
    "add", "sub", "mul", "div", "pow", "neg", "square", "abs", "exp", "log", "log1p", "expm1",
    "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "leaky_relu", "clip", "clamp", "where",
    "maximum", "minimum", "sum", "mean", "max", "min", "logsumexp", "var", "std", "matmul",
    "reshape", "flatten", "permute", "transpose", "unsqueeze", "expand_dims", "squeeze",
    "broadcast_to", "sum_to", "concat", "cat", "stack", "pad", "getitem", "take",
    "take_along_axis", "gather", "less", "less_equal", "greater", "greater_equal", "equal",
    "not_equal", "argmax", "argmin", "astype", "clone", "norm", "chunk", "split",
]

# ------------------------------------------------------------------ helpers


def _shape(x):
    return tuple(x.shape) if hasattr(x, "shape") else ()


def _xp(*xs):
    for x in xs:
        d = _raw(x)
        if hasattr(d, "shape"):
            return B.namespace_of(d)
    raise TypeError("expected at least one tensor or array")


def _norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):  # a 0-d tensor takes 0 and -1, as PyTorch
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        if ndim:
            out.append(a % ndim)
    return tuple(sorted(out))


def _axis(x, axis):
    """``axis`` checked; None for a 0-d ``x`` (a reduction over its one element is itself)."""
    if axis is not None and not _shape(_raw(x)):
        _norm_axes(axis, 0)
        return None
    return axis


_HALF: dict = {}  # dtype -> whether it is float16 or bfloat16


def _is_half(x) -> bool:
    """Whether ``x`` (tensor or array) is float16 or bfloat16: its reductions accumulate in float32."""
    dt = getattr(_raw(x), "dtype", None)
    if dt is None:
        return False
    key = (type(dt), dt)  # the type first: dtypes of two libraries are never compared
    half = _HALF.get(key)
    if half is None:
        half = _HALF[key] = B.dtype_name(dt) in ("float16", "bfloat16")
    return half


def _in_float32(fn, x, *args, **kwargs):
    """``fn(x, ...)`` computed in float32 and cast back to ``x``'s half dtype, as PyTorch's
    reductions on float16/bfloat16 accumulate (gradients flow back through both casts)."""
    return astype(fn(astype(x, "float32"), *args, **kwargs), _raw(x).dtype)


def _as_operand(xp, x, like):
    """A Python scalar as a 0-d array of ``like``'s dtype (arrays pass through)."""
    if hasattr(x, "shape"):
        return x
    return xp.asarray(x, dtype=like.dtype, device=B.array_api_compat.device(like))


def _mask(xp, cond, like):
    """Boolean ``cond`` as a constant array of ``like``'s dtype."""
    return xp.astype(_raw(cond), _raw(like).dtype)


# ------------------------------------------------------- broadcasting support

class SumTo(Function):
    """Sum ``x`` down to ``shape`` (the reverse of broadcasting)."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, xp, x):
        shape = self.shape
        if tuple(x.shape) == shape:
            return x
        lead = x.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            i + lead for i, n in enumerate(shape) if n == 1 and x.shape[i + lead] != 1)
        y = xp.sum(x, axis=axes, keepdims=True) if axes else x
        return xp.reshape(y, shape)

    def backward(self, g, y, x):
        return broadcast_to(g, _shape(x)),


class BroadcastTo(Function):
    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, xp, x):
        return xp.broadcast_to(x, self.shape)

    def backward(self, g, y, x):
        return sum_to(g, _shape(x)),


def sum_to(x, shape):
    """``x`` summed over broadcast axes so that it has ``shape``."""
    if _shape(x) == tuple(shape):
        return x
    return SumTo(shape)(x)


def broadcast_to(x, shape):
    """``x`` broadcast to ``shape``; a size of -1 keeps ``x``'s size there (PyTorch's ``expand``)."""
    shape = tuple(shape)
    if -1 in shape:
        xs = _shape(x)
        lead = len(shape) - len(xs)
        if lead < 0 or -1 in shape[:lead]:
            raise ValueError(f"expand: -1 in shape {shape} has no size of the tensor (shape {xs}) to keep: "
                             "it is allowed only on the tensor's existing axes")
        shape = tuple(xs[i - lead] if n == -1 else n for i, n in enumerate(shape))
    if _shape(x) == shape:
        return x
    return BroadcastTo(shape)(x)


def _reduce_grad(g, shape):
    """A gradient of a broadcast result, reduced to an operand's ``shape``."""
    return g if _shape(g) == shape else sum_to(g, shape)


# ---------------------------------------------------------------- arithmetic

class Add(Function):
    def forward(self, xp, a, b):
        return a + b

    def backward(self, g, y, a, b):
        return (_reduce_grad(g, _shape(a)) if self.needs[0] else None,
                _reduce_grad(g, _shape(b)) if self.needs[1] else None)


class Sub(Function):
    def forward(self, xp, a, b):
        return a - b

    def backward(self, g, y, a, b):
        return (_reduce_grad(g, _shape(a)) if self.needs[0] else None,
                _reduce_grad(-g, _shape(b)) if self.needs[1] else None)


class Mul(Function):
    def forward(self, xp, a, b):
        return a * b

    def backward(self, g, y, a, b):
        return (_reduce_grad(g * b, _shape(a)) if self.needs[0] else None,
                _reduce_grad(g * a, _shape(b)) if self.needs[1] else None)


class Div(Function):
    def forward(self, xp, a, b):
        return a / b

    def backward(self, g, y, a, b):
        return (_reduce_grad(g / b, _shape(a)) if self.needs[0] else None,
                _reduce_grad(-g * y / b, _shape(b)) if self.needs[1] else None)


class Pow(Function):
    def forward(self, xp, a, b):
        if not hasattr(a, "shape"):
            a = _as_operand(xp, a, b)
        return a ** b

    def backward(self, g, y, a, b):
        ga = gb = None
        if self.needs[0]:
            ga = _reduce_grad(g * b * a ** (b - 1), _shape(a))
        if self.needs[1]:
            gb = _reduce_grad(g * y * (log(a) if hasattr(_raw(a), "shape") else math.log(a)), _shape(b))
        return ga, gb


class Neg(Function):
    def forward(self, xp, x):
        return -x

    def backward(self, g, y, x):
        return -g,


def add(input, other, *, alpha=1):
    """``input + alpha * other`` (PyTorch's ``add``; ``alpha`` scales ``other``)."""
    return Add()(input, other if alpha == 1 else other * alpha)


def sub(input, other, *, alpha=1):
    """``input - alpha * other`` (PyTorch's ``sub``)."""
    return Sub()(input, other if alpha == 1 else other * alpha)


def mul(a, b): return Mul()(a, b)
def neg(x): return Neg()(x)


class RoundedDiv(Function):
    """``a / b`` rounded toward zero (``"trunc"``) or down (``"floor"``; integers stay integers,
    as ``floor_divide``).  Piecewise constant: the gradient is zero, as PyTorch's."""

    def __init__(self, mode):
        self.mode = mode

    def forward(self, xp, a, b):
        like = a if hasattr(a, "shape") else b
        a, b = _as_operand(xp, a, like), _as_operand(xp, b, like)
        if xp.isdtype(like.dtype, "integral"):
            q = xp.floor_divide(a, b)
            if self.mode == "trunc":  # floor_divide rounds down: step up where the signs differ and a remainder is left
                q = q + xp.astype(((a < 0) != (b < 0)) & (q * b != a), q.dtype)
            return q
        q = a / b
        return xp.floor(q) if self.mode == "floor" else xp.trunc(q)

    def backward(self, g, y, a, b):
        return (_reduce_grad(g * 0.0, _shape(a)) if self.needs[0] else None,
                _reduce_grad(g * 0.0, _shape(b)) if self.needs[1] else None)


def div(input, other, *, rounding_mode=None):
    """``input / other``; PyTorch's ``rounding_mode``: None (true division), ``"trunc"``
    (rounded toward zero) or ``"floor"`` (rounded down; integers stay integers, as
    ``floor_divide``).  A rounded quotient has a zero gradient, as in PyTorch.  Raises
    ValueError for another mode."""
    if rounding_mode is None:
        return Div()(input, other)
    if rounding_mode not in ("trunc", "floor"):
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    return RoundedDiv(rounding_mode)(input, other)


def pow(a, b):
    """``a ** b``; either may be a scalar."""
    return Pow()(a, b)


def square(x):
    return Mul()(x, x)


# --------------------------------------------------------------- elementwise

class Abs(Function):
    def forward(self, xp, x):
        return xp.abs(x)

    def backward(self, g, y, x):
        return g * B.sign(_raw(x)),


class Exp(Function):
    def forward(self, xp, x):
        return xp.exp(x)

    def backward(self, g, y, x):
        return g * y,


class Log(Function):
    def forward(self, xp, x):
        return xp.log(x)

    def backward(self, g, y, x):
        return g / x,


class Log1p(Function):
    def forward(self, xp, x):
        return xp.log1p(x)

    def backward(self, g, y, x):
        return g / (x + 1.0),


class Expm1(Function):
    def forward(self, xp, x):
        return xp.expm1(x)

    def backward(self, g, y, x):
        return g * (y + 1.0),


class Sqrt(Function):
    def forward(self, xp, x):
        return xp.sqrt(x)

    def backward(self, g, y, x):
        return g / (y * 2.0),


class Sin(Function):
    def forward(self, xp, x):
        return xp.sin(x)

    def backward(self, g, y, x):
        return g * cos(x),


class Cos(Function):
    def forward(self, xp, x):
        return xp.cos(x)

    def backward(self, g, y, x):
        return -(g * sin(x)),


class Tanh(Function):
    def forward(self, xp, x):
        return xp.tanh(x)

    def backward(self, g, y, x):
        return g * (1.0 - y * y),


class Sigmoid(Function):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""

    def forward(self, xp, x):
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def backward(self, g, y, x):
        return g * y * (1.0 - y),


class Relu(Function):
    def forward(self, xp, x):
        return xp.maximum(x, 0.0)

    def backward(self, g, y, x):
        return g * _mask(self.xp, _raw(x) > 0, g),


class LeakyRelu(Function):
    def __init__(self, slope):
        self.slope = slope

    def forward(self, xp, x):
        return xp.where(x > 0, x, x * self.slope)

    def backward(self, g, y, x):
        xp = self.xp
        m = _mask(xp, _raw(x) > 0, g)
        return g * (m + (1.0 - m) * self.slope),


class Clip(Function):
    """``minimum(maximum(x, lo), hi)`` (PyTorch's ``clamp``); ``lo``/``hi`` are None, numbers, or
    tensors/arrays of any shape that broadcasts with ``x`` (the result has the broadcast shape).
    Where ``lo > hi`` the result is ``hi``.  Gradients as PyTorch: ``x`` where ``lo <= x <= hi``,
    ``lo`` where ``x < lo < hi``, ``hi`` where ``x > hi`` or ``hi < lo``."""

    def forward(self, xp, x, lo, hi):
        arrays = hasattr(lo, "shape") or hasattr(hi, "shape")
        if not arrays and (lo is None or hi is None or lo <= hi):
            return B.clip(x, lo, hi)  # numbers in order: the library's clip
        if lo is not None:
            x = xp.maximum(x, _as_operand(xp, lo, x))
        return x if hi is None else xp.minimum(x, _as_operand(xp, hi, x))

    def backward(self, g, y, x, lo, hi):
        xr, lr, hr = _raw(x), _raw(lo), _raw(hi)
        if lr is None:
            inside = xr <= hr
        elif hr is None:
            inside = xr >= lr
        else:
            inside = (xr >= lr) & (xr <= hr)
        gx = _reduce_grad(where(inside, g, 0.0), _shape(x)) if self.needs[0] else None
        glo = ghi = None
        if self.needs[1]:
            below = xr < lr if hr is None else (xr < lr) & (lr < hr)
            glo = _reduce_grad(where(below, g, 0.0), _shape(lo))
        if self.needs[2]:
            above = xr > hr if lr is None else (xr > hr) | (hr < lr)
            ghi = _reduce_grad(where(above, g, 0.0), _shape(hi))
        return gx, glo, ghi


def abs(x): return Abs()(x)
def exp(x): return Exp()(x)
def log(x): return Log()(x)
def log1p(x): return Log1p()(x)
def expm1(x): return Expm1()(x)
def sqrt(x): return Sqrt()(x)
def sin(x): return Sin()(x)
def cos(x): return Cos()(x)
def tanh(x): return Tanh()(x)
def sigmoid(x): return Sigmoid()(x)
def relu(x): return Relu()(x)


def leaky_relu(x, negative_slope: float = 0.01):
    return LeakyRelu(negative_slope)(x)


def clip(x, min=None, max=None):
    """``x`` limited to ``[min, max]`` (PyTorch's ``clamp``): each bound None, a number, or a
    tensor/array broadcasting with ``x`` (0-d included); where ``min > max`` the result is
    ``max``.  The gradient passes to ``x`` where ``min <= x <= max`` and to a tensor bound
    where it is the result."""
    if min is None and max is None:
        raise ValueError("clip() needs min, max or both")
    return Clip()(x, min, max)


clamp = clip


# ------------------------------------------------------- binary with selection

class Where(Function):
    def forward(self, xp, cond, a, b):
        like = a if hasattr(a, "shape") else b
        return xp.where(cond, _as_operand(xp, a, like), _as_operand(xp, b, like))

    def backward(self, g, y, cond, a, b):
        xp = self.xp
        m = _mask(xp, cond, g)
        return (None,
                _reduce_grad(g * m, _shape(a)) if self.needs[1] else None,
                _reduce_grad(g * (1.0 - m), _shape(b)) if self.needs[2] else None)


class Maximum(Function):
    """Elementwise max; at ties each side gets half the gradient (as PyTorch)."""

    op, sign = "maximum", 1.0

    def forward(self, xp, a, b):
        like = a if hasattr(a, "shape") else b
        return getattr(xp, self.op)(_as_operand(xp, a, like), _as_operand(xp, b, like))

    def backward(self, g, y, a, b):
        xp = self.xp
        ra, rb = _raw(a), _raw(b)
        d = (ra - rb) * self.sign
        share = _mask(xp, d > 0, g) + 0.5 * _mask(xp, d == 0, g)
        return (_reduce_grad(g * share, _shape(a)) if self.needs[0] else None,
                _reduce_grad(g * (1.0 - share), _shape(b)) if self.needs[1] else None)


class Minimum(Maximum):
    op, sign = "minimum", -1.0


def where(cond, a, b):
    """``a`` where ``cond`` holds, else ``b`` (differentiable in ``a`` and ``b``)."""
    return Where()(cond, a, b)


def maximum(a, b): return Maximum()(a, b)
def minimum(a, b): return Minimum()(a, b)


# ---------------------------------------------------------------- reductions

class Sum(Function):
    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, xp, x):
        return xp.sum(x, axis=self.axis, keepdims=self.keepdims)

    def backward(self, g, y, x):
        return broadcast_to(_keep(g, self.axis, self.keepdims, _shape(x)), _shape(x)),


def _keep(g, axis, keepdims, shape):
    """A reduced gradient (or output) reshaped with the reduced axes kept, as size 1."""
    if keepdims:
        return g
    axes = _norm_axes(axis, len(shape))
    return reshape(g, tuple(1 if i in axes else n for i, n in enumerate(shape)))


class Max(Function):
    """max/min over axes; tied maxima share the gradient equally (as torch.amax)."""

    def __init__(self, axis, keepdims, largest=True):
        self.axis, self.keepdims, self.largest = axis, keepdims, largest

    def forward(self, xp, x):
        f = xp.max if self.largest else xp.min
        return f(x, axis=self.axis, keepdims=self.keepdims)

    def backward(self, g, y, x):
        xp, shape = self.xp, _shape(x)
        yk = _keep(_raw(y), self.axis, self.keepdims, shape)
        hit = _mask(xp, _raw(x) == yk, _raw(g))
        share = hit / xp.sum(hit, axis=_norm_axes(self.axis, len(shape)) if shape else None, keepdims=True)
        return broadcast_to(_keep(g, self.axis, self.keepdims, shape), shape) * share,


class LogSumExp(Function):
    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, xp, x):
        axes = _norm_axes(self.axis, x.ndim)
        if any(x.shape[a] == 0 for a in axes):  # over no element: log(0) = -inf, as PyTorch
            shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
            y = xp.full(shape, -math.inf, dtype=x.dtype, device=B.array_api_compat.device(x))
            return y if self.keepdims else xp.reshape(y, tuple(n for i, n in enumerate(x.shape) if i not in axes))
        m = xp.max(x, axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
        y = xp.log(xp.sum(xp.exp(x - m), axis=axes, keepdims=True)) + m
        return y if self.keepdims else xp.reshape(y, tuple(n for i, n in enumerate(x.shape) if i not in axes))

    def backward(self, g, y, x):
        shape = _shape(x)
        yk = _keep(y, self.axis, self.keepdims, shape)
        return _keep(g, self.axis, self.keepdims, shape) * exp(x - yk),


@axis_names
def sum(x, axis=None, keepdims: bool = False):
    """The sum over ``axis`` (all axes when None); float16/bfloat16 accumulate in float32."""
    if _is_half(x):
        return _in_float32(sum, x, axis, keepdims)
    return Sum(_axis(x, axis), keepdims)(x)


@axis_names
def mean(x, axis=None, keepdims: bool = False):
    """The mean over ``axis``; over no element it is NaN, as PyTorch (IEEE 0/0).  float16 and
    bfloat16 accumulate in float32."""
    if _is_half(x):
        return _in_float32(mean, x, axis, keepdims)
    axis = _axis(x, axis)
    shape = _shape(_raw(x))
    n = math.prod(shape[a] for a in _norm_axes(axis, len(shape)))
    return Sum(axis, keepdims)(x) / float(n) if n else Sum(axis, keepdims)(x) * math.nan


@axis_names
def max(x, axis=None, keepdims: bool = False):
    return Max(_axis(x, axis), keepdims, True)(x)


@axis_names
def min(x, axis=None, keepdims: bool = False):
    return Max(_axis(x, axis), keepdims, False)(x)


@axis_names
def logsumexp(x, axis=None, keepdims: bool = False):
    """log(sum(exp(x))) without overflow (float16/bfloat16: computed in float32)."""
    if _is_half(x):
        return _in_float32(logsumexp, x, axis, keepdims)
    return LogSumExp(_axis(x, axis), keepdims)(x)


def _correction(correction, unbiased, name):
    """PyTorch's rule: ``correction`` (default 1), or the legacy ``unbiased`` (True: 1, False: 0)."""
    if unbiased is not None:
        if correction is not None:
            raise ValueError(f"{name}: pass correction= or unbiased=, not both")
        return 1 if unbiased else 0
    return 1 if correction is None else correction


@axis_names
def var(x, axis=None, correction=None, keepdims: bool = False, *, unbiased=None):
    """Variance: the squared deviations summed over ``axis``, divided by ``n - correction``
    (``correction=None`` means 1, as PyTorch; ``unbiased=False`` means 0).  When
    ``n - correction <= 0`` the divisor is 0 (IEEE, as PyTorch): NaN for one element with
    ``correction=1``, inf when ``correction`` exceeds ``n``."""
    correction = _correction(correction, unbiased, "var")
    if _is_half(x):
        return _in_float32(var, x, axis, correction, keepdims)
    axis = _axis(x, axis)
    shape = _shape(_raw(x))
    n = math.prod(shape[a] for a in _norm_axes(axis, len(shape)))
    d = x - mean(x, axis, keepdims=True)
    dof = n - correction
    return sum(d * d, axis, keepdims) * (1.0 / dof if dof > 0 else math.inf)


@axis_names
def std(x, axis=None, correction=None, keepdims: bool = False, *, unbiased=None):
    """Standard deviation, ``sqrt(var(...))`` (same arguments; float16/bfloat16 in float32)."""
    if _is_half(x):
        return _in_float32(std, x, axis, correction, keepdims, unbiased=unbiased)
    return sqrt(var(x, axis, correction, keepdims, unbiased=unbiased))


@axis_names
def norm(input, p="fro", dim=None, keepdim: bool = False):
    """The ``p``-norm over ``dim`` (all elements when None), as ``torch.norm``: ``p`` is 2 or
    ``"fro"`` (sqrt of the sum of squares), 1, ``inf``/``-inf`` (max/min of ``|x|``), 0 (the
    number of nonzeros, not differentiable) or any other number (``sum(|x|**p) ** (1/p)``).
    Vector norms only: a matrix norm over two axes other than ``"fro"`` raises ValueError."""
    if p in ("fro", 2, 2.0):
        return sqrt(sum(input * input, dim, keepdim))
    if isinstance(p, str):
        raise ValueError(f"norm: p={p!r} is not supported: expected 'fro' or a number")
    if dim is not None and isinstance(dim, (tuple, list)) and len(dim) > 1:
        raise ValueError(f"norm: p={p} over the axes {tuple(dim)} is a matrix norm, which xpnet lacks: "
                         "expected p=2/'fro', or one axis")
    a = abs(input)
    if p == math.inf:
        return max(a, dim, keepdim)
    if p == -math.inf:
        return min(a, dim, keepdim)
    if p == 0:
        return sum(astype(not_equal(a, 0.0), _raw(input).dtype), dim, keepdim)
    if p == 1:
        return sum(a, dim, keepdim)
    return pow(sum(pow(a, float(p)), dim, keepdim), 1.0 / p)


# ---------------------------------------------------------------- linear algebra

class Matmul(Function):
    def forward(self, xp, a, b):
        # the operator reaches the library directly; xp.matmul promotes mixed dtypes
        return a @ b if a.dtype == b.dtype else xp.matmul(a, b)

    def backward(self, g, y, a, b):
        sa, sb = _shape(a), _shape(b)
        if len(sa) == 2 and len(sb) == 2:  # the common case, kept short
            return (_matmul(g, b.mT) if self.needs[0] else None,  # (a raw constant may not lead:
                    _matmul(a.mT, g) if self.needs[1] else None)  # strict arrays refuse tensors)
        a2 = reshape(a, (1, sa[0])) if len(sa) == 1 else a
        b2 = reshape(b, (sb[0], 1)) if len(sb) == 1 else b
        gshape = _shape(g)
        if len(sa) == 1:
            gshape = gshape[:-1] + (1,) + gshape[-1:] if len(sb) > 1 else (1, 1)
        if len(sb) == 1:
            gshape = gshape + (1,) if len(sa) > 1 else (1, 1)
        g2 = reshape(g, gshape)
        ga = gb = None
        if self.needs[0]:
            ga = reshape(sum_to(_matmul(g2, transpose(b2, -1, -2)), _shape(a2)), sa)
        if self.needs[1]:
            gb = reshape(sum_to(_matmul(transpose(a2, -1, -2), g2), _shape(b2)), sb)
        return ga, gb


def matmul(a, b):
    """Matrix product with NumPy's rules for 1-D operands and batch broadcasting (also the ``@``
    operator of tensors).  Under ``xpnet.autocast`` float32 operands are cast to the low precision
    first, as ``torch.matmul`` and ``Tensor.__matmul__`` are."""
    a, b = to_low(a, b)
    return Matmul()(a, b)


def _matmul(a, b):
    """:func:`matmul` without autocast: for backward rules and for the composite operations that
    PyTorch's autocast leaves in their input's dtype (``bilinear``, ``embedding_bag``,
    interpolation and adaptive pooling, whose products are with constant matrices)."""
    return Matmul()(a, b)


# ---------------------------------------------------------------- shapes

class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, xp, x):
        return xp.reshape(x, self.shape)

    def backward(self, g, y, x):
        return reshape(g, _shape(x)),


class Permute(Function):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, xp, x):
        n = len(self.axes)
        if n >= 2 and self.axes == tuple(range(n - 2)) + (n - 1, n - 2):
            return x.mT  # a swap of the last two axes: a view, without the compat wrapper
        return xp.permute_dims(x, self.axes)

    def backward(self, g, y, x):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return permute(g, tuple(inverse)),


def reshape(x, shape):
    shape = tuple(shape)
    if _shape(x) == shape:
        return x
    return Reshape(shape)(x)


def flatten(x, start_dim: int = 0, end_dim: int = -1):
    """Merge the axes ``start_dim..end_dim`` into one."""
    shape = _shape(_raw(x))
    if not shape:
        return reshape(x, (1,))
    s, e = start_dim % len(shape), end_dim % len(shape)
    return reshape(x, shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])


def permute(x, axes):
    axes = tuple(a % len(axes) for a in axes)
    if axes == tuple(range(len(axes))):
        return x
    return Permute(axes)(x)


def transpose(x, dim0: int, dim1: int):
    """Swap two axes (PyTorch's ``transpose``)."""
    n = len(_shape(x))
    if n == 0:  # a 0-d tensor: dims 0 and -1 name it, and it is its own transpose (as PyTorch)
        _norm_axes((dim0, dim1), 0)
        return x
    axes = list(range(n))
    axes[dim0 % n], axes[dim1 % n] = axes[dim1 % n], axes[dim0 % n]
    return permute(x, tuple(axes))


@axis_names
def unsqueeze(x, axis: int):
    shape = _shape(_raw(x))
    axis = axis % (len(shape) + 1)
    return reshape(x, shape[:axis] + (1,) + shape[axis:])


expand_dims = unsqueeze


@axis_names
def squeeze(x, axis=None):
    """``x`` without the given axes of size 1 (all of them when None); an axis of another size
    is left in place, as ``torch.squeeze`` does."""
    shape = _shape(_raw(x))
    axes = [i for i, n in enumerate(shape) if n == 1] if axis is None else _norm_axes(axis, len(shape))
    axes = [a for a in axes if shape[a] == 1]  # an axis of another size stays, as in PyTorch
    return reshape(x, tuple(n for i, n in enumerate(shape) if i not in axes))


@axis_names
def split(input, split_size_or_sections, dim: int = 0) -> tuple:
    """``input`` cut along ``dim`` into pieces of ``split_size_or_sections`` (an int: equal pieces,
    the last smaller) or of the sizes in a list (which must add up to the axis' length), as
    ``torch.split``; each piece is a differentiable slice."""
    shape = _shape(_raw(input))
    axis = _norm_axes(dim, len(shape))[0]
    n = shape[axis]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
        sizes = [builtins.min(split_size_or_sections, n - i) for i in range(0, n, split_size_or_sections)] or [0]
    else:
        sizes = [int(k) for k in split_size_or_sections]
        if builtins.sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} add up to {builtins.sum(sizes)}, but axis {dim} has length {n}")
    out, start = [], 0
    for k in sizes:
        out.append(getitem(input, (slice(None),) * axis + (slice(start, start + k), Ellipsis)))
        start += k
    return tuple(out)


@axis_names
def chunk(input, chunks: int, dim: int = 0) -> tuple:
    """``input`` cut along ``dim`` into ``chunks`` pieces of ``ceil(n / chunks)`` (fewer pieces when
    that divides evenly earlier), as ``torch.chunk``."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = _shape(_raw(input))[_norm_axes(dim, len(_shape(_raw(input))))[0]]
    return split(input, builtins.max(-(-n // chunks), 1), dim)


class Concat(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, xp, *xs):
        return xp.concat(xs, axis=self.axis)

    def backward(self, g, y, *xs):
        out, start = [], 0
        axis = self.axis % len(_shape(g))
        for x, need in zip(xs, self.needs):
            n = _shape(x)[axis]
            key = (slice(None),) * axis + (slice(start, start + n), ...)
            out.append(getitem(g, key) if need else None)
            start += n
        return tuple(out)


@axis_names
def concat(xs, axis: int = 0):
    """Join tensors along an existing axis."""
    return Concat(axis)(*xs)


cat = concat


@axis_names
def stack(xs, axis: int = 0):
    """Join tensors along a new axis."""
    return concat([unsqueeze(x, axis) for x in xs], axis)


class Pad(Function):
    def __init__(self, pad_width, value):
        self.pad_width, self.value = pad_width, value

    def forward(self, xp, x):
        return B.pad(x, self.pad_width, self.value)

    def backward(self, g, y, x):
        key = tuple(slice(lo, lo + n) for (lo, _), n in zip(self.pad_width, _shape(x)))
        return getitem(g, key),


def pad(x, pad_width, value: float = 0.0):
    """Constant padding; ``pad_width`` is ``((before, after), ...)`` for every axis.  A negative
    width crops that many places from that side (as PyTorch's ``F.pad``); ValueError when an
    axis would end up with a negative size."""
    pad_width = tuple((int(a), int(b)) for a, b in pad_width)
    shape = _shape(_raw(x))
    if len(pad_width) != len(shape):
        raise ValueError(f"pad: pad_width has {len(pad_width)} entries for a tensor with {len(shape)} axes")
    for i, ((a, b), n) in enumerate(zip(pad_width, shape)):
        if n + builtins.min(a, 0) + builtins.min(b, 0) < 0:
            raise ValueError(f"pad: axis {i} of size {n} cannot be cropped by ({a}, {b}): the negative widths "
                             f"remove more than its {n} places")
    if any(a < 0 or b < 0 for a, b in pad_width):  # crop first, as PyTorch
        x = GetItem(tuple(slice(builtins.max(-a, 0), n - builtins.max(-b, 0))
                          for (a, b), n in zip(pad_width, shape)))(x)
        pad_width = tuple((builtins.max(a, 0), builtins.max(b, 0)) for a, b in pad_width)
    if any(a or b for a, b in pad_width):
        x = Pad(pad_width, value)(x)
    return x


# ---------------------------------------------------------------- indexing

class GetItem(Function):
    """Basic indexing: integers, slices, ``None`` and ``...``."""

    def __init__(self, key):
        self.key = key if isinstance(key, tuple) else (key,)
        self.plain = tuple(k for k in self.key if k is not None)  # the key without new axes

    def forward(self, xp, x):
        y = x[self.key]
        self.plain_shape = tuple(x[self.plain].shape) if len(self.plain) < len(self.key) else tuple(y.shape)
        return y

    def backward(self, g, y, x):
        return IndexZerosSet(self.plain, _shape(x))(reshape(g, self.plain_shape)),


class IndexZerosSet(Function):
    """Zeros of ``shape`` with ``x`` written at basic index ``key`` (GetItem's backward)."""

    def __init__(self, key, shape):
        self.key, self.shape = key, shape

    def forward(self, xp, x):
        return B.index_zeros_set(self.shape, self.key, x)

    def backward(self, g, y, x):
        return getitem(g, self.key),


def _is_index_array(k) -> bool:
    return isinstance(k, (Tensor, list)) or hasattr(k, "shape")


def _expand_key(key, shape):
    """``key`` with ``...`` spelled out as slices; IndexError for too many indices."""
    used = builtins.sum(_mask_ndim(k) if _is_index_array(k) and _is_bool(k) else 1
                        for k in key if k is not None and k is not Ellipsis)
    if used > len(shape):
        raise IndexError(f"too many indices for a tensor of {len(shape)} dimensions (shape {shape}): "
                         f"got {used}")
    at = [i for i, k in enumerate(key) if k is Ellipsis]
    if len(at) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    fill = (slice(None),) * (len(shape) - used)
    if at:
        return key[:at[0]] + fill + key[at[0] + 1:]
    return key + fill


def _mask_ndim(k) -> int:
    """The number of axes of an index array, tensor or nested list (those a boolean mask indexes)."""
    if isinstance(k, list):
        n = 0
        while isinstance(k, list):
            n, k = n + 1, (k[0] if k else None)
        return n
    return len(_shape(_raw(k)))


def _is_bool(k) -> bool:
    if isinstance(k, list):
        while k and isinstance(k[0], list):
            k = k[0]
        return len(k) > 0 and builtins.all(isinstance(v, bool) for v in k)
    d = _raw(k)
    return B.namespace_of(d).isdtype(d.dtype, "bool")


def _check_int(i, n, d):
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of range for dimension {d} with size {n}: expected {-n} <= index < {n}")
    return i % n


def getitem(x, key):
    """``x[key]`` with PyTorch's semantics: integers (IndexError when out of range), slices,
    ``None`` and ``...`` (basic indexing, a trailing ``...`` implied), and advanced indexing by
    integer arrays, lists, tensors and boolean masks, alone or mixed with the others in a
    tuple (negative indices count from the end; the gradient of a repeated index adds up).
    Integers are applied first, as PyTorch does (``x[0, :, [0, 1]]`` has shape ``(x.shape[1], 2)``).
    """
    shape = _shape(_raw(x))
    key = key if isinstance(key, tuple) else (key,)
    if any(_is_index_array(k) for k in key):
        if len(key) == 1 and not _is_bool(key[0]) and len(shape) > 0 and _mask_ndim(key[0]) == 1:
            # one 1-D integer array: take along axis 0
            return take(x, key[0], axis=0)
        return _advanced(x, _expand_key(key, shape), shape)
    key = _expand_key(key, shape)
    d = 0
    for k in key:
        if k is None:
            continue
        if isinstance(k, int) and not isinstance(k, bool):
            _check_int(k, shape[d], d)
        d += 1
    return GetItem(key)(x)


def _advanced(x, key, shape):
    """Advanced indexing as one gather at flat positions (its backward scatter-adds, see :class:`Take`).

    The flat position of every output element is a sum of broadcast terms, one per key entry:
    ``start + step * arange`` for a slice, the (wrapped, range-checked) array times the axis's
    stride for an index array; a boolean mask stands for its ``nonzero()`` arrays.  The
    arrays' broadcast shape goes where the first of them stands when they are adjacent, else
    first (NumPy's and PyTorch's rule)."""
    xp = _xp(x)
    xr = _raw(x)
    dev = B.array_api_compat.device(xr)
    strides = [math.prod(shape[i + 1:]) for i in range(len(shape))]
    offset, d = 0, 0
    entries = []  # ("dim", size, term or None) and ("arr", index array times stride)
    for k in key:
        if k is None:
            entries.append(("dim", 1, None))
        elif _is_index_array(k):
            a = _raw(k)
            if not hasattr(a, "shape"):
                a = B.as_array(a, "bool" if _is_bool(k) else "int64", B.backend_of(xr))
            elif B.namespace_of(a) is not xp:
                raise TypeError(f"index: the index lives on backend {B.backend_of(a).name} but the tensor on "
                                f"{B.backend_of(xr).name}: move it with tensor.to(...) first")
            if xp.isdtype(a.dtype, "bool"):
                want = shape[d:d + a.ndim]
                if tuple(a.shape) != want:
                    raise IndexError(f"the boolean mask of shape {tuple(a.shape)} does not match the indexed "
                                     f"dimensions {d}..{d + a.ndim - 1} of shape {want} (tensor shape {shape})")
                if a.ndim == 0:
                    raise IndexError("a 0-d boolean index is not supported")
                for i, nz in enumerate(xp.nonzero(a)):
                    entries.append(("arr", nz * strides[d + i]))
                d += a.ndim
                continue
            if not xp.isdtype(a.dtype, "integral"):
                raise IndexError(f"tensors used as indices must be integer or boolean, got {B.dtype_name(a.dtype)}")
            a = B.check_indices(a, shape[d], f"index along dimension {d} (size {shape[d]})", wrap=True)
            entries.append(("arr", xp.astype(a, xp.int64) * strides[d]))
            d += 1
        elif isinstance(k, slice):
            r = range(*k.indices(shape[d]))
            entries.append(("dim", len(r), (r.start, r.step, strides[d])))
            d += 1
        else:
            offset += _check_int(int(k), shape[d], d) * strides[d]
            d += 1
    arrays = [a for kind, a in ((e[0], e[-1]) for e in entries) if kind == "arr"]
    where = [i for i, e in enumerate(entries) if e[0] == "arr"]
    bshape = _broadcast_shapes([tuple(a.shape) for a in arrays])
    adjacent = where == list(range(where[0], where[-1] + 1))
    dims = [e for e in entries if e[0] == "dim"]
    before = where[0] if adjacent else 0
    out_shape = tuple(e[1] for e in dims[:before]) + bshape + tuple(e[1] for e in dims[before:])
    rank = len(out_shape)
    pos = None
    for a in arrays:
        pos = a if pos is None else pos + a
    pos = xp.reshape(xp.broadcast_to(pos, bshape), (1,) * before + bshape + (1,) * (len(dims) - before))
    for j, (_, n, term) in enumerate(dims):
        if term is None:
            continue
        start, step, stride = term
        axis = j if j < before else j + len(bshape)
        t = xp.arange(n, dtype=xp.int64, device=dev) * (step * stride) + start * stride
        pos = pos + xp.reshape(t, tuple(n if i == axis else 1 for i in range(rank)))
    pos = xp.broadcast_to(pos + offset, out_shape) if offset else xp.broadcast_to(pos, out_shape)
    flat = Take(xp.reshape(pos, (-1,)), 0)(reshape(x, (-1,)))
    return reshape(flat, out_shape)


def _broadcast_shapes(shapes):
    rank = builtins.max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        sizes = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0} - {1}
        if len(sizes) > 1:
            raise IndexError(f"shape mismatch: index arrays of shapes {shapes} cannot be broadcast together")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


class Take(Function):
    """Integer-array indexing along one axis (``xp.take``)."""

    def __init__(self, indices, axis):
        self.indices, self.axis = indices, axis

    def forward(self, xp, x):
        return xp.take(x, self.indices, axis=self.axis)

    def backward(self, g, y, x):
        return IndexAdd(self.indices, self.axis, _shape(x)[self.axis])(g),


class IndexAdd(Function):
    """Slices of ``x`` along ``axis`` summed into ``size`` positions at ``indices`` (Take's backward)."""

    def __init__(self, indices, axis, size):
        self.indices, self.axis, self.size = indices, axis, size

    def forward(self, xp, x):
        moved = xp.moveaxis(x, self.axis, 0) if self.axis != 0 else x
        out = B.scatter_add(moved, self.indices, self.size)
        return xp.moveaxis(out, 0, self.axis) if self.axis != 0 else out

    def backward(self, g, y, x):
        return take(g, self.indices, self.axis),


def _index_array(x, indices):
    xp = _xp(x)
    idx = _raw(indices)
    if not hasattr(idx, "shape"):
        idx = B.as_array(idx, "int64", B.backend_of(_raw(x)))
    if not xp.isdtype(idx.dtype, "integral"):
        raise TypeError(f"indices must be integers, got {B.dtype_name(idx.dtype)}")
    return idx


@axis_names
def take(x, indices, axis: int = 0):
    """Slices of ``x`` at integer ``indices`` (1-D) along ``axis``; a negative index counts from
    the end (as ``torch.take`` and NumPy); one outside ``[-n, n)`` raises IndexError."""
    idx = _index_array(x, indices)
    shape = _shape(_raw(x))
    if not shape:  # a 0-d tensor: one element along axis 0 or -1, as PyTorch's index_select
        _norm_axes(axis, 0)
        idx = B.check_indices(_xp(x).reshape(idx, (-1,)), 1, "take from a 0-d tensor", wrap=True)
        return reshape(Take(idx, 0)(reshape(x, (1,))), ())
    axis = _norm_axes(axis, len(shape))[0]
    idx = B.check_indices(idx, shape[axis], f"take along axis {axis}", wrap=True)
    return Take(idx, axis)(x)


def _along_axis(x, indices, axis, wrap, name):
    xp = _xp(x)
    idx = _index_array(x, indices)
    shape = _shape(_raw(x))
    if len(shape) == 0:  # a 0-d input: axis 0 or -1, indices 0-d or (1,)
        _norm_axes(axis, 0)
        idx = B.check_indices(xp.reshape(idx, (-1,)), 1, f"{name} of a 0-d tensor", wrap=wrap)
        return reshape(take(reshape(x, (1,)), idx, 0), tuple(_index_array(x, indices).shape))
    axis = _norm_axes(axis, len(shape))[0]
    if math.prod(idx.shape) == 0:  # nothing to take (PyTorch allows any shape then)
        return reshape(Take(xp.reshape(idx, (-1,)), 0)(reshape(x, (-1,))), tuple(idx.shape))
    if wrap and idx.ndim == len(shape):  # take_along_dim broadcasts the other axes
        both = [builtins.max(a, b) if 1 in (a, b) else a for a, b in zip(shape, idx.shape)]
        xs = tuple(n if d == axis else both[d] for d, n in enumerate(shape))
        ids = tuple(n if d == axis else both[d] for d, n in enumerate(idx.shape))
        if ids != tuple(idx.shape):
            idx = xp.broadcast_to(idx, ids)
        if xs != shape:
            x, shape = broadcast_to(x, xs), xs
    if idx.ndim != len(shape):
        raise ValueError(f"{name}: indices of shape {tuple(idx.shape)} need as many dimensions as the input "
                         f"of shape {shape}")
    idx = B.check_indices(idx, shape[axis], f"{name} along axis {axis} (size {shape[axis]})", wrap=wrap)
    dev = B.array_api_compat.device(idx)
    strides = [math.prod(shape[i + 1:]) for i in range(len(shape))]
    flat = idx * strides[axis]
    for d in range(len(shape)):
        if d != axis:
            r = xp.reshape(xp.arange(idx.shape[d], dtype=idx.dtype, device=dev),
                           tuple(-1 if i == d else 1 for i in range(len(shape))))
            flat = flat + r * strides[d]
    return reshape(Take(xp.reshape(flat, (-1,)), 0)(reshape(x, (-1,))), tuple(idx.shape))


@axis_names
def take_along_axis(x, indices, axis: int = -1):
    """``out[..., i, ...] = x[..., indices[..., i, ...], ...]`` along ``axis`` (NumPy's
    ``take_along_axis``, PyTorch's ``take_along_dim``): a negative index counts from the end;
    one outside ``[-n, n)`` raises IndexError."""
    return _along_axis(x, indices, axis, True, "take_along_axis")


@axis_names
def gather(input, dim: int, index):
    """PyTorch's ``gather(input, dim, index)``: ``out[..., i, ...] = input[..., index[..., i, ...], ...]``
    along ``dim`` (:func:`take_along_axis` in PyTorch's argument order), except that a negative
    index raises IndexError, as ``torch.gather`` refuses it."""
    return _along_axis(input, index, dim, False, "gather")


# ------------------------------------------------------- non-differentiable

def _compare(name):
    def op(a, b):
        xp = _xp(a, b)
        return Tensor(getattr(xp, name)(_raw(a), _raw(b)))
    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}`` (not differentiable): a boolean tensor."
    return op


less, less_equal, greater, greater_equal, equal, not_equal = (
    _compare(n) for n in ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal"))


@axis_names
def argmax(x, axis=None, keepdims: bool = False):
    return Tensor(_xp(x).argmax(_raw(x), axis=_axis(x, axis), keepdims=keepdims))


@axis_names
def argmin(x, axis=None, keepdims: bool = False):
    return Tensor(_xp(x).argmin(_raw(x), axis=_axis(x, axis), keepdims=keepdims))


class Clone(Function):
    def forward(self, xp, x):
        return xp.asarray(x, copy=True)

    def backward(self, g, y, x):
        return g,


def clone(input):
    """A copy of ``input`` in new memory; gradients flow through it (``torch.clone``)."""
    return Clone()(input)


class AsType(Function):
    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, xp, x):
        return xp.astype(x, B.resolve_dtype(xp, self.dtype))

    def backward(self, g, y, x):
        return astype(g, _raw(x).dtype),


def astype(x, dtype):
    """``x`` converted to ``dtype`` (a name or a dtype); gradients flow back in the old dtype.
    A conversion to an integer or boolean dtype is not differentiable: its result is a leaf."""
    if isinstance(x, Tensor) and not B.dtype_name(dtype).startswith(("float", "bfloat", "complex")):
        return Tensor(AsType(dtype)(x.data))
    return AsType(dtype)(x)
