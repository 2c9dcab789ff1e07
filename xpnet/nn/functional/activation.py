"""Activation functions (``torch.nn.functional`` names and arguments).

``relu``, ``leaky_relu``, ``sigmoid`` and ``tanh`` are the core operations of
:mod:`xpnet.autograd.functions`; the rest are fused Functions below, each with
a backward rule that reuses the forward output or recomputes cheaply.
The Array API has no ``erf``: :func:`erf` uses the library's own where it has
one, else a portable version (see ``xpnet.backend.erf``).
"""

from __future__ import annotations

import math

from ...autograd.functions import exp, leaky_relu, relu, sigmoid, tanh
from ... import backend as B
from ...autograd.softmax import LogSoftmax, Softmax, log_softmax, softmax  # noqa: F401
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
# Softmax and LogSoftmax live in autograd (Tensor.softmax needs them; layers only look down).

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

