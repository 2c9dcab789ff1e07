"""Activation functions (``torch.nn.functional`` names and arguments).

``relu``, ``leaky_relu``, ``sigmoid`` and ``tanh`` are the core operations of
:mod:`xpnet.autograd.functions`; the rest are fused Functions below, each with
a backward rule that reuses the forward output or recomputes cheaply.
The Array API has no ``erf``: :func:`erf` uses the library's own where it has
one, else a portable version (see ``xpnet.backend.erf``).
"""

from __future__ import annotations

import math

from ...autograd.functions import (_norm_axes, _shape, abs, exp, getitem, leaky_relu, relu, reshape, sigmoid,
                                   tanh, where)
from ... import backend as B
from ...autograd.names import axis_names
from ...autograd.autocast_state import to_low
from ...autograd.softmax import LogSoftmax, Softmax, _prepare_softmax, log_softmax, softmax  # noqa: F401
from ...autograd.tensor import Function, Tensor, _raw

__all__ = ["relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax", "elu", "gelu", "silu",
           "softplus", "hardtanh", "celu", "selu", "glu", "hardshrink", "hardsigmoid", "hardswish", "relu6",
           "prelu", "rrelu", "logsigmoid", "mish", "softmin", "softshrink", "softsign", "tanhshrink",
           "threshold"]

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



# ------------------------------------------------------------------ the rest of torch.nn's activations
# Each is a composition of differentiable operations above (so each has its gradient of gradient).


def celu(input, alpha: float = 1.0, inplace: bool = False):
    """max(0, x) + min(0, alpha (exp(x / alpha) - 1)) (``torch.nn.functional.celu``)."""
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0 (it divides x)")
    return ELU(1.0)(input * (1.0 / alpha)) * float(alpha)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace: bool = False):
    """scale * elu(x, alpha) with PyTorch's constants (Klambauer et al., 2017)."""
    return ELU(_SELU_ALPHA)(input) * _SELU_SCALE


def glu(input, dim: int = -1):
    """a * sigmoid(b), where a and b are the two halves of the input along ``dim`` (its size
    must be even); the output has half that size."""
    shape = _shape(_raw(input))
    if not shape:
        raise ValueError("glu: the input is 0-dimensional: expected at least 1 dimension")
    d = _norm_axes(dim, len(shape))[0]
    if shape[d] % 2:
        raise ValueError(f"glu: halving dimension {dim} must have an even size, got {shape[d]} (shape {shape})")
    h = shape[d] // 2
    a = getitem(input, (slice(None),) * d + (slice(0, h), ...))
    b = getitem(input, (slice(None),) * d + (slice(h, None), ...))
    return a * sigmoid(b)


def hardshrink(input, lambd: float = 0.5):
    """x where |x| > lambd, else 0."""
    x = _raw(input)
    return where((x > lambd) | (x < -lambd), input, 0.0)


def softshrink(input, lambd: float = 0.5):
    """x - lambd where x > lambd, x + lambd where x < -lambd, else 0."""
    if lambd < 0:
        raise ValueError(f"softshrink: lambd must be >= 0, got {lambd}")
    x = _raw(input)
    return where(x > lambd, input - lambd, where(x < -lambd, input + lambd, 0.0))


def relu6(input, inplace: bool = False):
    """min(max(0, x), 6): hardtanh(x, 0, 6), with its gradient strictly inside (as PyTorch)."""
    return Hardtanh(0.0, 6.0)(input)


def hardsigmoid(input, inplace: bool = False):
    """relu6(x + 3) / 6; the gradient is 1/6 strictly inside (-3, 3)."""
    return Hardtanh(-3.0, 3.0)(input) * (1.0 / 6.0) + 0.5


def hardswish(input, inplace: bool = False):
    """x * relu6(x + 3) / 6 (Howard et al., 2019, MobileNetV3); the gradient is 0 for x <= -3,
    x / 3 + 1/2 strictly inside, 1 for x >= 3 (as PyTorch)."""
    return input * hardsigmoid(input)


def prelu(input, weight):
    """x where x > 0, else weight * x; ``weight`` has 1 element or one per channel (dim 1 of
    the input, dim 0 of a 1-D input).  In the low precision under ``xpnet.autocast`` (PyTorch's
    autocast lists prelu with the matrix products)."""
    input, weight = to_low(input, weight)
    shape, n = _shape(_raw(input)), math.prod(_shape(_raw(weight)))
    if n != 1:
        ch = 1 if len(shape) >= 2 else 0
        if not shape or shape[ch] != n:
            raise ValueError(f"prelu: weight has {n} elements but the input (shape {shape}) has "
                             f"{shape[ch] if shape else 0} channels: expected 1 or one per channel")
        weight = reshape(weight, (n,) + (1,) * (len(shape) - ch - 1))
    elif len(_shape(_raw(weight))) > len(shape):
        weight = reshape(weight, (1,) * len(shape))
    return where(_raw(input) > 0, input, input * weight)


def rrelu(input, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False, generator=None):
    """Randomized leaky ReLU (Xu et al., 2015): in training each negative element gets a slope
    drawn uniformly from [lower, upper] (from ``generator``, on the input's device); in eval
    the slope is (lower + upper) / 2."""
    if not 0 <= lower <= upper:
        raise ValueError(f"rrelu: expected 0 <= lower <= upper, got lower={lower}, upper={upper}")
    if not training:
        return leaky_relu(input, (lower + upper) / 2)
    x = _raw(input)
    b = B.backend_of(x)
    gen = generator if generator is not None else B.default_generator()
    keys = tuple(int(k) for k in gen.host.integers(-2**31, 2**31, size=2))
    u = b.xp.astype(B.random_bits(tuple(x.shape), keys, b), x.dtype) * (2.0 ** -24)
    return where(x > 0, input, input * (u * (upper - lower) + lower))


def logsigmoid(input):
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)), finite for any x."""
    from ...autograd.functions import log1p, minimum
    return minimum(input, 0.0) - log1p(exp(-abs(input)))


def mish(input, inplace: bool = False):
    """x * tanh(softplus(x)) (Misra, 2019)."""
    return input * tanh(softplus(input))


@axis_names
def softmin(input, dim=None, dtype=None):
    """softmax(-x) along ``dim`` (``dim=None``: PyTorch's implicit choice, with its warning)."""
    x, dim = _prepare_softmax("softmin", input, dim, dtype)
    return softmax(-x, dim)


def softsign(input):
    """x / (1 + |x|)."""
    return input / (abs(input) + 1.0)


def tanhshrink(input):
    """x - tanh(x)."""
    return input - tanh(input)


def threshold(input, threshold: float, value: float, inplace: bool = False):
    """x where x > threshold, else value."""
    return where(_raw(input) > threshold, input, float(value))
