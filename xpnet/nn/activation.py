"""Activation modules (PyTorch's names, arguments and defaults).

``inplace`` arguments are accepted for compatibility and ignored: xpnet never
overwrites its inputs.
"""

from __future__ import annotations

from ..autograd.functions import leaky_relu, relu, sigmoid, tanh
from .functional import activation as F
from ..autograd.names import axis_names
from . import init as nn_init
from .linear import new_parameter
from .module import Module

__all__ = ["Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Softmax", "LogSoftmax", "ELU", "GELU", "SiLU",
           "Softplus", "Hardtanh", "CELU", "SELU", "GLU", "Hardshrink", "Hardsigmoid", "Hardswish", "ReLU6",
           "PReLU", "RReLU", "LogSigmoid", "Mish", "Softmin", "Softmax2d", "Softshrink", "Softsign",
           "Tanhshrink", "Threshold"]


class Sigmoid(Module):
    def forward(self, input):
        return sigmoid(input)


class Tanh(Module):
    def forward(self, input):
        return tanh(input)


class ReLU(Module):
    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return relu(input)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input):
        return leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Softmax(Module):
    """Softmax along ``dim`` (``dim=None``: PyTorch's legacy guess, with its warning)."""

    @axis_names
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    @axis_names
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class ELU(Module):
    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        return F.elu(input, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate={approximate!r} is not supported: expected 'none' or 'tanh'")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.silu(input)


class Softplus(Module):
    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Module):
    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        if not max_val > min_val:
            raise ValueError(f"Hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


def _simple(name, fn, doc, inplace=True):
    """A module that applies ``fn``; its one argument ``inplace`` (accepted and ignored) where
    PyTorch's module has it (``inplace=False``: none, as LogSigmoid, Softsign, Tanhshrink)."""
    def with_inplace(self, inplace: bool = False):
        Module.__init__(self)
        self.inplace = inplace

    def without(self):
        Module.__init__(self)

    def forward(self, input):
        return fn(input)
    return type(name, (Module,), {"__init__": with_inplace if inplace else without, "forward": forward,
                                  "__doc__": doc, "__module__": __name__})


SELU = _simple("SELU", F.selu, "scale * elu(x, alpha) with PyTorch's constants.")
Hardsigmoid = _simple("Hardsigmoid", F.hardsigmoid, "relu6(x + 3) / 6.")
Hardswish = _simple("Hardswish", F.hardswish, "x * relu6(x + 3) / 6.")
ReLU6 = _simple("ReLU6", F.relu6, "min(max(0, x), 6).")
LogSigmoid = _simple("LogSigmoid", F.logsigmoid, "log(sigmoid(x)), stable for any x.", inplace=False)
Mish = _simple("Mish", F.mish, "x * tanh(softplus(x)).")
Softsign = _simple("Softsign", F.softsign, "x / (1 + |x|).", inplace=False)
Tanhshrink = _simple("Tanhshrink", F.tanhshrink, "x - tanh(x).", inplace=False)


class CELU(Module):
    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        return F.celu(input, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class GLU(Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.glu(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Hardshrink(Module):
    def __init__(self, lambd: float = 0.5):
        super().__init__()
        self.lambd = lambd

    def forward(self, input):
        return F.hardshrink(input, self.lambd)

    def extra_repr(self):
        return f"{self.lambd}"


class Softshrink(Hardshrink):
    def forward(self, input):
        return F.softshrink(input, self.lambd)


class PReLU(Module):
    """x where x > 0, else a * x with a learnt slope ``weight`` of shape (num_parameters,),
    one per channel (dim 1) or one shared, initialised to ``init``."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, dtype=None, backend=None):
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = new_parameter((num_parameters,), dtype, backend)
        self.reset_parameters()

    def reset_parameters(self):
        nn_init.constant_(self.weight, self.init)

    def forward(self, input):
        return F.prelu(input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class RReLU(Module):
    """Randomized leaky ReLU: a random slope in [lower, upper] per negative element in
    training (from ``generator``), (lower + upper) / 2 in eval."""

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False, generator=None):
        super().__init__()
        self.lower, self.upper, self.inplace, self.generator = lower, upper, inplace, generator

    def forward(self, input):
        return F.rrelu(input, self.lower, self.upper, self.training, generator=self.generator)

    def extra_repr(self):
        return f"lower={self.lower}, upper={self.upper}"


class Softmin(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmin(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax2d(Module):
    """Softmax over the channels (dim -3) of a (N, C, H, W) or (C, H, W) input."""

    def forward(self, input):
        if input.ndim not in (3, 4):
            raise ValueError(f"Softmax2d: expected a 3-D or 4-D input (C, H, W) or (N, C, H, W), "
                             f"got shape {tuple(input.shape)}")
        return F.softmax(input, -3)


class Threshold(Module):
    def __init__(self, threshold: float, value: float, inplace: bool = False):
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace

    def forward(self, input):
        return F.threshold(input, self.threshold, self.value)

    def extra_repr(self):
        return f"threshold={self.threshold}, value={self.value}"
