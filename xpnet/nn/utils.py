"""Gradient clipping and other helpers (``xpnet.nn.utils``), with PyTorch's names.

The norms stay on the device as 0-d tensors: clipping never reads a value
back to the host (unless ``error_if_nonfinite=True`` asks for the check).
"""

from __future__ import annotations

import math

from .. import backend as B
from ..autograd import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]


def _params(parameters) -> list:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def _raw(t):
    return t.data if isinstance(t, Tensor) else t


def _vector_norm(xp, x, p: float):
    """The ``p``-norm of all entries of ``x`` (0-d array), as ``torch.linalg.vector_norm``."""
    if p == 2.0:
        return xp.sqrt(xp.sum(x * x))
    if p == 1.0:
        return xp.sum(xp.abs(x))
    if p == math.inf:
        return xp.max(xp.abs(x))
    if p == -math.inf:
        return xp.min(xp.abs(x))
    if p == 0.0:
        return xp.sum(xp.astype(x != 0, x.dtype))
    return xp.sum(xp.abs(x) ** p) ** (1.0 / p)


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """The ``norm_type``-norm of all entries of ``tensors`` together (a 0-d tensor).

    ``error_if_nonfinite=True`` raises RuntimeError when the norm is nan or inf
    (this reads the norm back to the host).
    """
    arrays = [_raw(t) for t in ([tensors] if isinstance(tensors, Tensor) else tensors) if t is not None]
    norm_type = float(norm_type)
    if not arrays:
        b = B.current_backend()
        return Tensor(b.xp.zeros((), dtype=b.xp.float32, device=b.device))
    xp = B.namespace_of(arrays[0])
    dtype = xp.result_type(*arrays) if len(arrays) > 1 else arrays[0].dtype
    if not xp.isdtype(dtype, "real floating"):
        raise TypeError(f"get_total_norm: expected floating-point gradients, got {B.dtype_name(dtype)}")
    # float16/bfloat16 accumulate in float32 (as PyTorch): 400^2 overflows float16
    work = xp.float32 if B.dtype_name(dtype) in ("float16", "bfloat16") else dtype
    norms = [_vector_norm(xp, a if a.dtype == work else xp.astype(a, work), norm_type)
             for a in arrays if math.prod(a.shape) > 0]
    if not norms:
        return Tensor(xp.zeros((), dtype=dtype, device=B.array_api_compat.device(arrays[0])))
    total = norms[0] if len(norms) == 1 else _vector_norm(xp, xp.stack(norms), norm_type)
    if total.dtype != dtype:
        total = xp.astype(total, dtype)
    if error_if_nonfinite and not bool(xp.all(xp.isfinite(total))):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it "
            "cannot be clipped. To disable this error and scale the gradients by the non-finite norm "
            "anyway, set `error_if_nonfinite=False`")
    return Tensor(total)


def clip_grads_with_norm_(parameters, max_norm: float, total_norm):
    """Scale the gradients by ``min(1, max_norm / (total_norm + 1e-6))``."""
    params = [p for p in _params(parameters) if p.grad is not None]
    if not params:
        return
    total = _raw(total_norm)
    xp = B.namespace_of(total)
    coef = B.clip(float(max_norm) / (total + 1e-6), None, 1.0)
    for p in params:
        g = _raw(p.grad)
        p.grad = Tensor(g * (coef if coef.dtype == g.dtype else xp.astype(coef, g.dtype)))


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """Rescale the gradients of ``parameters`` so that their total ``norm_type``-norm is at most
    ``max_norm``; return the total norm before clipping (a 0-d tensor, left on the device).

    Each clipped gradient is a new tensor (``p.grad`` is rebound; arrays are never
    written in place).  ``foreach`` is accepted for PyTorch compatibility and ignored.
    """
    params = _params(parameters)
    total = get_total_norm([p.grad for p in params if p.grad is not None], norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total)
    return total


def clip_grad_value_(parameters, clip_value: float, foreach=None):
    """Clip every gradient entry of ``parameters`` to ``[-clip_value, clip_value]``."""
    clip_value = float(clip_value)
    for p in _params(parameters):
        if p.grad is not None:
            g = _raw(p.grad)
            p.grad = Tensor(B.clip(g, -clip_value, clip_value))
