"""Normalization: ``batch_norm``, ``layer_norm``, ``group_norm``, ``instance_norm``, ``rms_norm``,
``local_response_norm``, as PyTorch.

One fused operation, :class:`Normalize`, standardizes over some axes and
applies the affine parameters, with the closed-form backward.  The backward
uses the statistics saved by the forward pass, or recomputes them from the
input when it runs on tensors (double backprop), so that the rule is
differentiable too.
"""

from __future__ import annotations

import math

from ... import backend as B
from ...autograd.functions import _is_half, add, astype, getitem, mean, mul, pad, reshape, sqrt, sum_to
from ...autograd.tensor import Function, Tensor, _raw, no_grad
from ...autograd.autocast_state import to_float32

__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "local_response_norm"]


class Normalize(Function):
    """y = (x - mean) / sqrt(var + eps) * w + b, mean and (biased) var taken over ``axes``.

    ``w`` and ``b`` (optional) are reshaped to ``pshape``, which broadcasts against x.
    After the forward pass, ``self.mean`` and ``self.var`` hold the statistics.
    """

    def __init__(self, axes, eps: float, pshape):
        self.axes, self.eps, self.pshape = tuple(axes), eps, tuple(pshape)

    def moments(self, xp, x):
        """``(mean, biased var)`` of ``x`` over ``self.axes``, kept as size-1 axes (SyncBatchNorm
        overrides it to take them over every process)."""
        if math.prod(x.shape[a] for a in self.axes) == 0:  # an empty batch: statistics 0 and 1, output empty
            shape = tuple(1 if i in self.axes else n for i, n in enumerate(x.shape))
            m = xp.zeros(shape, dtype=x.dtype, device=B.array_api_compat.device(x))
            return m, xp.ones_like(m)
        m = xp.mean(x, axis=self.axes, keepdims=True)
        d = x - m
        return m, xp.mean(d * d, axis=self.axes, keepdims=True)

    def forward(self, xp, x, w=None, b=None):
        self.mean, self.var = self.moments(xp, x)
        d = x - self.mean
        self.invstd = 1.0 / xp.sqrt(self.var + self.eps)
        self.xhat = d * self.invstd
        y = self.xhat
        if w is not None:
            y = y * xp.reshape(w, self.pshape)
        if b is not None:
            y = y + xp.reshape(b, self.pshape)
        return y

    def backward(self, g, y, x, w=None, b=None):
        axes = self.axes
        xhat, invstd = self.xhat, self.invstd
        if isinstance(x, Tensor) and x.requires_grad:  # double backprop: statistics as functions of x
            d = x - mean(x, axes, keepdims=True)
            invstd = 1.0 / sqrt(mean(d * d, axes, keepdims=True) + self.eps)
            xhat = d * invstd
        gx = gw = gb = None
        if self.needs[0]:
            gh = g if w is None else g * reshape(w, self.pshape)
            gx = invstd * (gh - mean(gh, axes, keepdims=True) - xhat * mean(gh * xhat, axes, keepdims=True))
        if w is not None and self.needs[1]:
            gw = reshape(sum_to(g * xhat, self.pshape), tuple(w.shape))
        if b is not None and self.needs[2]:
            gb = reshape(sum_to(g, self.pshape), tuple(b.shape))
        return gx, gw, gb


def _apply(fn, x, w, b):
    """``fn(x, w, b)``; a float16/bfloat16 input is normalized in float32 (statistics and all, as
    PyTorch) and the result cast back."""
    if _is_half(x):
        f32 = [None if v is None else astype(v, "float32") for v in (x, w, b)]
        return astype(_apply(fn, *f32), _raw(x).dtype)
    if w is None and b is None:
        return fn(x)
    if b is None:
        return fn(x, w)
    return fn(x, w, b)


def _check_param(name, what, p, shape):
    if p is not None and tuple(p.shape) != tuple(shape):
        raise ValueError(f"{name}: {what} has shape {tuple(p.shape)}, expected {tuple(shape)}")


def _channel_params(name, input, min_ndim, weight, bias, running_mean, running_var):
    """Check (N, C, *) against the per-channel parameters and statistics; return (shape, C)."""
    shape = tuple(input.shape)
    if len(shape) < min_ndim:
        raise ValueError(f"{name}: input must have at least {min_ndim} dimensions (N, C, *), got shape {shape}")
    C = shape[1]
    for what, p in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        _check_param(name, what, p, (C,))
    return shape, C


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum=0.1, eps: float = 1e-5):
    """Batch normalization of (N, C, *) over all axes but the channel axis 1.

    ``training``: normalize with the batch statistics and, where running
    statistics are given (tensors), update them in place (rebinding ``.data``)
    as ``(1 - momentum) * running + momentum * batch`` with the unbiased batch
    variance; ``momentum`` may be a number or a 0-d array.  Otherwise normalize
    with ``running_mean`` and ``running_var``.
    """
    input = to_float32(input)  # under xpnet.autocast
    name = "batch_norm"
    shape, C = _channel_params(name, input, 2, weight, bias, running_mean, running_var)
    pshape = (1, C) + (1,) * (len(shape) - 2)
    axes = (0,) + tuple(range(2, len(shape)))
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError(f"{name}: running_mean and running_var are needed when training=False")
        scale = 1.0 / sqrt(_raw(running_var) + eps)
        if weight is not None:
            scale = mul(weight, scale)
        shift = mul(scale, -_raw(running_mean))
        if bias is not None:
            shift = add(shift, bias)
        return add(mul(input, reshape(scale, pshape)), reshape(shift, pshape))
    count = math.prod(shape) // C if C else 0
    if count == 1:
        raise ValueError(f"{name}: expected more than 1 value per channel when training, got input of shape {shape}")
    fn = Normalize(axes, eps, pshape)
    y = _apply(fn, input, weight, bias)
    if count and (running_mean is not None or running_var is not None):  # an empty batch changes nothing
        for what, r in (("running_mean", running_mean), ("running_var", running_var)):
            if r is not None and not isinstance(r, Tensor):
                raise TypeError(f"{name}: {what} must be a tensor (updated in place when training), "
                                f"got {type(r).__name__}")
        with no_grad():
            m = _raw(momentum) if hasattr(_raw(momentum), "shape") else momentum
            xp = B.namespace_of(fn.mean)
            if running_mean is not None:
                new = (1 - m) * running_mean.data + m * xp.reshape(fn.mean, (C,))
                running_mean.data = xp.astype(new, running_mean.data.dtype)
            if running_var is not None:
                var = xp.reshape(fn.var, (C,)) * (count / (count - 1))
                running_var.data = xp.astype((1 - m) * running_var.data + m * var, running_var.data.dtype)
    return y


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalize over the trailing axes ``normalized_shape`` (as ``torch.nn.functional.layer_norm``)."""
    input = to_float32(input)  # under xpnet.autocast
    name = "layer_norm"
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    shape = tuple(input.shape)
    if len(ns) == 0 or shape[len(shape) - len(ns):] != ns or len(shape) < len(ns):
        raise ValueError(f"{name}: input of shape {shape} does not end with normalized_shape {ns}")
    _check_param(name, "weight", weight, ns)
    _check_param(name, "bias", bias, ns)
    axes = tuple(range(len(shape) - len(ns), len(shape)))
    return _apply(Normalize(axes, eps, ns), input, weight, bias)


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    """Normalize (N, C, *) over each group of C/num_groups channels and all spatial axes."""
    input = to_float32(input)  # under xpnet.autocast
    name = "group_norm"
    shape = tuple(input.shape)
    if len(shape) < 2 or shape[1] % num_groups:
        raise ValueError(f"{name}: input of shape {shape} needs at least 2 dimensions (N, C, ...) and C "
                         f"divisible by num_groups={num_groups}")
    C = shape[1]
    _check_param(name, "weight", weight, (C,))
    _check_param(name, "bias", bias, (C,))
    x = reshape(input, (shape[0], num_groups, math.prod(shape[1:]) // num_groups))
    y = reshape(_apply(Normalize((2,), eps, ()), x, None, None), shape)
    pshape = (1, C) + (1,) * (len(shape) - 2)
    if weight is not None:
        y = y * reshape(weight, pshape)
    if bias is not None:
        y = y + reshape(bias, pshape)
    return y


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats: bool = True, momentum=0.1, eps: float = 1e-5):
    """Normalize (N, C, *) per sample and channel over the spatial axes (Ulyanov et al., 2016).

    ``use_input_stats`` (PyTorch's default): each instance's own statistics; running
    statistics, when given, are updated in place with the mean over the batch of the
    instances' means and unbiased variances.  Otherwise normalize with the running ones.
    """
    name = "instance_norm"
    shape, C = _channel_params(name, input, 3, weight, bias, running_mean, running_var)
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    count = math.prod(shape[2:])
    if count <= 1:
        raise ValueError(f"{name}: expected more than 1 spatial element per channel, got input of shape {shape}")
    pshape = (1, C) + (1,) * (len(shape) - 2)
    fn = Normalize(tuple(range(2, len(shape))), eps, pshape)
    y = _apply(fn, input, weight, bias)
    with no_grad():
        xp = B.namespace_of(fn.mean)
        m = _raw(momentum) if hasattr(_raw(momentum), "shape") else momentum
        for r, stat, scale in ((running_mean, fn.mean, 1.0), (running_var, fn.var, count / (count - 1))):
            if r is not None:
                r.data = (1 - m) * r.data + m * xp.mean(xp.reshape(stat, (shape[0], C)), axis=0) * scale
    return y


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2) + eps) * weight over the trailing ``normalized_shape`` axes
    (Zhang and Sennrich, 2019); ``eps=None`` is the dtype's machine epsilon, as PyTorch."""
    name = "rms_norm"
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    shape = tuple(input.shape)
    if len(ns) == 0 or len(shape) < len(ns) or shape[len(shape) - len(ns):] != ns:
        raise ValueError(f"{name}: input of shape {shape} does not end with normalized_shape {ns}")
    _check_param(name, "weight", weight, ns)
    if eps is None:
        x = _raw(input)
        eps = float(B.namespace_of(x).finfo(x.dtype).eps)
    axes = tuple(range(len(shape) - len(ns), len(shape)))
    y = input / sqrt(mean(input * input, axes, keepdims=True) + eps)
    return y if weight is None else y * weight


def local_response_norm(input, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
    """x / (k + alpha / size * sum of x^2 over ``size`` neighbouring channels) ** beta
    (Krizhevsky et al., 2012); the window runs from c - size//2 to c + (size-1)//2, as PyTorch."""
    shape = tuple(input.shape)
    if len(shape) < 3:
        raise ValueError(f"local_response_norm: input must have at least 3 dimensions (N, C, *), got shape {shape}")
    C = shape[1]
    sq = pad(input * input, [(0, 0), (size // 2, (size - 1) // 2)] + [(0, 0)] * (len(shape) - 2))
    total = getitem(sq, (slice(None), slice(0, C)))
    for i in range(1, size):
        total = total + getitem(sq, (slice(None), slice(i, i + C)))
    return input / (total * (alpha / size) + k) ** beta
