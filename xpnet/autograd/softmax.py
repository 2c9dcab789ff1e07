"""Softmax and log-softmax along one axis (``torch.nn.functional`` names and arguments), here in
autograd so that ``Tensor.softmax`` can use them; :mod:`xpnet.nn.functional` re-exports them."""

from __future__ import annotations

import math
import warnings

from .autocast_state import to_float32
from .functions import _in_float32, _is_half, _norm_axes, _shape, astype, exp, reshape, sum
from .names import axis_names
from .tensor import Function, _raw

__all__ = ["softmax", "log_softmax"]


def _softmax_dim(name: str, ndim: int) -> int:
    """PyTorch's legacy choice when ``dim=None``: 0 for 0-, 1- and 3-D inputs, else 1 (with its warning)."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  "Change the call to include dim=X as an argument.", UserWarning, stacklevel=5)
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
    x = astype(x, dtype) if dtype is not None else to_float32(x)  # float32 under xpnet.autocast
    ndim = len(_shape(_raw(x)))
    if dim is None:
        dim = _softmax_dim(name, ndim)
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{name}: dim {dim} is out of range for an input with {ndim} dimensions "
                         f"(shape {_shape(_raw(x))}): expected {-max(ndim, 1)} <= dim < {max(ndim, 1)}")
    return x, (_norm_axes(dim, ndim)[0] if ndim else 0)


@axis_names
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


@axis_names
def log_softmax(input, dim=-1, dtype=None):
    """log(softmax(x)) along ``dim``, as x - logsumexp(x) (stable for any |x|)."""
    x, dim = _prepare_softmax("log_softmax", input, dim, dtype)
    if _is_half(x):
        return _in_float32(log_softmax, x, dim)
    if not _shape(_raw(x)):
        return reshape(LogSoftmax(0)(reshape(x, (1,))), ())
    return LogSoftmax(dim)(x)
