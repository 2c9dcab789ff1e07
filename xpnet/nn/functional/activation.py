"""Activation functions (``torch.nn.functional`` names and arguments).

``relu``, ``leaky_relu``, ``sigmoid`` and ``tanh`` are the core operations of
:mod:`xpnet.autograd.functions`; the rest are fused Functions below, each with
a backward rule that reuses the forward output or recomputes cheaply.
The Array API has no ``erf``: :func:`erf` uses the library's own where it has
one, else a portable version (see ``xpnet.backend.erf``).
"""

from __future__ import annotations

import math
import warnings

from ...autograd.functions import _in_float32, _is_half, _norm_axes, _shape, astype, exp, leaky_relu, relu, reshape, sigmoid, sum, tanh
from ... import backend as B
from ...autograd.tensor import Function, Tensor, _raw

__all__ = ["relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax", "elu", "gelu", "silu",
           "softplus", "hardtanh"]

# ------------------------------------------------------------------ erf


class Erf(Function):
    def forward(self, xp, x):
        return B.erf(x)

    def backward(self, g, y, x):
        return g * exp(x * x * -1.0) * (2.0 / math.sqrt(math.pi)),


def erf(x):
    """The error function, differentiable (``torch.erf``)."""
    return Erf()(x)


# ------------------------------------------------------------------ softmax


def _softmax_dim(name: str, ndim: int) -> int:
    """PyTorch's legacy choice when ``dim=None``: 0 for 0-, 1- and 3-D inputs, else 1 (with its warning)."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  "Change the call to include dim=X as an argument.", UserWarning, stacklevel=4)
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Function):
    """exp(x - max) / sum along ``dim``; rows that are all -inf give zeros, not NaN (masked
    attention).  ``cached``, the known output for this input, skips the work (a fused loss
    passes the softmax it already has).  Backward: y * (g - sum(g * y))."""

    def __init__(self, dim, cached=None):
        self.dim, self.cached = dim, cached

    def forward(self, xp, x):
        if self.cached is not None:
            return self.cached
        if x.shape[self.dim] == 0 or math.prod(x.shape) == 0:  # nothing to normalize (empty, as PyTorch)
            return x
        m = xp.max(x, axis=self.dim, keepdims=True)
        e = xp.exp(x - xp.where(xp.isfinite(m), m, xp.zeros_like(m)))
        s = xp.sum(e, axis=self.dim, keepdims=True)
        return e / xp.where(s > 0, s, xp.ones_like(s))

    def backward(self, g, y, x):
        return y * (g - sum(g * y, self.dim, keepdims=True)),


class LogSoftmax(Function):
    """x - max - log(sum(exp(x - max))) along ``dim``; backward g - exp(y) * sum(g)."""

    def __init__(self, dim):
        self.dim = dim

    def forward(self, xp, x):
        if math.prod(x.shape) == 0:  # nothing to normalize (empty, as PyTorch)
            return x
        s = x - xp.max(x, axis=self.dim, keepdims=True)
        return s - xp.log(xp.sum(xp.exp(s), axis=self.dim, keepdims=True))

    def backward(self, g, y, x):
        return g - exp(y) * sum(g, self.dim, keepdims=True),


def _prepare_softmax(name, x, dim, dtype):
    if dtype is not None:
        x = astype(x, dtype)
    ndim = len(_shape(_raw(x)))
    if dim is None:
        dim = _softmax_dim(name, ndim)
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{name}: dim {dim} is out of range for an input with {ndim} dimensions "
                         f"(shape {_shape(_raw(x))}): expected {-max(ndim, 1)} <= dim < {max(ndim, 1)}")
    return x, (_norm_axes(dim, ndim)[0] if ndim else 0)


def softmax(input, dim=-1, dtype=None):
    """exp(x) / sum(exp(x)) along ``dim``, computed without overflow.

    ``dim`` defaults to the last axis (PyTorch warns and guesses when it is
    left out; ``dim=None`` here makes the same guess with the same warning).
    ``dtype`` converts the input first.
    """
    x, dim = _prepare_softmax("softmax", input, dim, dtype)
    if _is_half(x):  # computed in float32 (as PyTorch), the result in x's dtype
        return _in_float32(softmax, x, dim)
    if not _shape(_raw(x)):  # a 0-d input: one element, along dim 0 or -1 (as PyTorch)
        return reshape(Softmax(0)(reshape(x, (1,))), ())
    return Softmax(dim)(x)


def log_softmax(input, dim=-1, dtype=None):
    """log(softmax(x)) along ``dim``, as x - logsumexp(x) (stable for any |x|)."""
    x, dim = _prepare_softmax("log_softmax", input, dim, dtype)
    if _is_half(x):
        return _in_float32(log_softmax, x, dim)
    if not _shape(_raw(x)):
        return reshape(LogSoftmax(0)(reshape(x, (1,))), ())
    return LogSoftmax(dim)(x)


# ------------------------------------------------------------------ elementwise


def _mask(xp, cond, like):
    return xp.astype(cond, _raw(like).dtype)


class ELU(Function):
    def __init__(self, alpha):
        self.alpha = alpha

    def forward(self, xp, x):
        neg = xp.expm1(B.clip(x, None, 0.0)) * self.alpha  # clipped: no overflow where x > 0
        return xp.where(x > 0, x, neg)

    def backward(self, g, y, x):
        m = _mask(self.xp, _raw(x) > 0, g)
        return g * ((y + self.alpha) * (1.0 - m) + m),  # tensor operand first (strict arrays refuse tensors)


class GELU(Function):
    """x * Phi(x) with Phi the standard normal CDF (exact, via erf)."""

    def forward(self, xp, x):
        return x * 0.5 * (1.0 + B.erf(x * _SQRT1_2))

    def backward(self, g, y, x):
        if isinstance(x, Tensor):  # double backward: Phi(x) differentiable, through erf
            cdf = (erf(x * _SQRT1_2) + 1.0) * 0.5
        else:  # plain backward: Phi(x) = y / x (Phi(0) = 1/2), no second erf
            xp = self.xp
            nonzero = x != 0
            cdf = xp.where(nonzero, y / xp.where(nonzero, x, 1.0), 0.5)
        pdf = exp(x * x * -0.5) * _INV_SQRT_2PI
        return g * (cdf + x * pdf),


class GELUTanh(Function):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), PyTorch's ``approximate='tanh'``."""

    def forward(self, xp, x):
        return x * (1.0 + xp.tanh((x + x * x * x * _GELU_C) * _SQRT_2_PI)) * 0.5

    def backward(self, g, y, x):
        x2 = x * x
        t = tanh((x + x2 * x * _GELU_C) * _SQRT_2_PI)
        dt = (1.0 - t * t) * ((x2 * (3.0 * _GELU_C) + 1.0) * _SQRT_2_PI)
        return g * ((t + 1.0) * 0.5 + x * dt * 0.5),


_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


class SiLU(Function):
    def forward(self, xp, x):
        return x * sigmoid(x)

    def backward(self, g, y, x):
        s = sigmoid(x)
        return g * (s * (1.0 + x * (1.0 - s))),


class Softplus(Function):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (as PyTorch)."""

    def __init__(self, beta, threshold):
        self.beta, self.threshold = beta, threshold

    def forward(self, xp, x):
        bx = x * self.beta
        soft = xp.log1p(xp.exp(B.clip(bx, None, self.threshold))) / self.beta
        return xp.where(bx > self.threshold, x, soft)

    def backward(self, g, y, x):
        m = _mask(self.xp, _raw(x) * self.beta > self.threshold, g)
        return g * (sigmoid(x * self.beta) * (1.0 - m) + m),


class Hardtanh(Function):
    """x clipped to [min_val, max_val]; the gradient passes strictly inside (as PyTorch)."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, xp, x):
        return B.clip(x, self.lo, self.hi)

    def backward(self, g, y, x):
        x = _raw(x)
        return g * _mask(self.xp, (x > self.lo) & (x < self.hi), g),


def elu(input, alpha: float = 1.0, inplace: bool = False):
    """x where x > 0, else alpha * (exp(x) - 1). ``inplace`` is accepted for PyTorch
    compatibility; xpnet never overwrites its inputs."""
    return ELU(float(alpha))(input)


def gelu(input, approximate: str = "none"):
    """x * Phi(x) (``approximate='none'``, via erf) or its tanh approximation (``'tanh'``)."""
    if approximate == "none":
        return GELU()(input)
    if approximate == "tanh":
        return GELUTanh()(input)
    raise ValueError(f"gelu: approximate={approximate!r} is not supported: expected 'none' or 'tanh'")


def silu(input, inplace: bool = False):
    """x * sigmoid(x) (also called swish)."""
    return SiLU()(input)


def softplus(input, beta: float = 1.0, threshold: float = 20.0):
    """log(1 + exp(beta x)) / beta, switching to x where beta x > threshold."""
    return Softplus(float(beta), float(threshold))(input)


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    """x clipped to [min_val, max_val]."""
    if max_val < min_val:
        raise ValueError(f"hardtanh: max_val ({max_val}) must not be less than min_val ({min_val})")
    return Hardtanh(float(min_val), float(max_val))(input)

