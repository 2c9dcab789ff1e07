"""Weight initializers (``xpnet.nn.init``), PyTorch's names and formulas.

Each takes a tensor and fills it in place (rebinding ``.data``), drawing from
the default generator (or ``generator=``), so that a seed gives the same
weights on every backend.
"""

from __future__ import annotations

import math

from .. import backend as B
from ..autograd import Tensor


def _fill(t: Tensor, host_or_array):
    t.data = B.as_array(host_or_array, t.dtype, t.backend)
    return t


def _gen(generator):
    return generator or B.default_generator()


def _fans(t: Tensor):
    shape = t.shape
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for ``nonlinearity`` (as ``torch.nn.init.calculate_gain``)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                        "conv_transpose2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def zeros_(t):
    return _fill(t, t.xp.zeros(t.data.shape, dtype=t.dtype, device=t.device))


def ones_(t):
    return _fill(t, t.xp.ones(t.data.shape, dtype=t.dtype, device=t.device))


def constant_(t, value: float):
    return _fill(t, t.xp.full(t.data.shape, value, dtype=t.dtype, device=t.device))


def uniform_(t, a: float = 0.0, b: float = 1.0, generator=None):
    return _fill(t, _gen(generator).uniform(t.shape, a, b, t.dtype, t.backend))


def normal_(t, mean: float = 0.0, std: float = 1.0, generator=None):
    return _fill(t, _gen(generator).normal(t.shape, mean, std, t.dtype, t.backend))


def xavier_uniform_(t, gain: float = 1.0, generator=None):
    fan_in, fan_out = _fans(t)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a, generator)


def xavier_normal_(t, gain: float = 1.0, generator=None):
    fan_in, fan_out = _fans(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(t, a, mode, nonlinearity):
    fan_in, fan_out = _fans(t)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity), generator)


def orthogonal_(t, gain: float = 1.0, generator=None):
    """A (semi-)orthogonal matrix from the QR decomposition of a normal draw (on the host)."""
    if t.ndim < 2:
        raise ValueError(f"orthogonal_ needs at least 2 dimensions, got shape {t.shape}")
    q = _gen(generator).orthogonal(t.shape[0], math.prod(t.shape[1:]))
    return _fill(t, (gain * q).reshape(t.shape))


def fan_in_uniform_(t, fan_in: int, generator=None):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for biases (and RNN weights)."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform_(t, -bound, bound, generator)
