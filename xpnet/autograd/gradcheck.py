"""Numerical gradient checks (central differences in float64)."""

from __future__ import annotations

from .. import backend as B
from .engine import grad as autograd_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree."""


def _prepare(inputs):
    out = []
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            x = Tensor(B.as_array(x, "float64"))
        if B.dtype_name(x.dtype) != "float64":
            raise TypeError(f"gradcheck: input {i} is {B.dtype_name(x.dtype)}: pass float64 tensors")
        out.append(Tensor(x.data, requires_grad=True))
    return out


def _projected(f, xs, weights):
    """sum(f(*xs) * w): one scalar whose gradient is the vector-Jacobian product with w."""
    y = f(*xs)
    if weights[0] is None:
        host = B.Generator(1234).host.uniform(0.5, 1.5, size=y.shape)
        weights[0] = B.as_array(host, "float64", y.backend)
    return (y * weights[0]).sum()


def gradcheck(f, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, create_graph=False):
    """Check the gradients of ``f`` at ``inputs`` against central differences.

    ``f`` maps float64 tensors to a tensor; the check compares the gradient
    of ``sum(f(*inputs) * w)`` for a fixed random ``w`` with
    ``(g(x + eps) - g(x - eps)) / (2 eps)`` element by element, and raises
    :class:`GradcheckError` naming the input, the index and both values on
    the first mismatch.  Returns True when all agree.
    """
    xs = _prepare(inputs)
    weights = [None]
    loss = _projected(f, xs, weights)
    if loss.requires_grad:
        analytic = autograd_grad(loss, xs, allow_unused=True, create_graph=create_graph)
    else:  # f does not depend on its inputs: all gradients are zero
        analytic = [None] * len(xs)
    for i, x in enumerate(xs):
        backend = x.backend
        host = B.to_numpy(x.data).astype("float64")
        a = B.to_numpy(analytic[i].data).reshape(-1) if analytic[i] is not None else None
        for k in range(host.size):
            values = []
            for step in (eps, -eps):
                moved = host.copy().reshape(-1)
                moved[k] += step
                trial = list(xs)
                trial[i] = Tensor(B.as_array(moved.reshape(host.shape), "float64", backend))
                values.append(float(_projected(f, trial, weights).item()))
            numeric = (values[0] - values[1]) / (2 * eps)
            got = 0.0 if a is None else float(a[k])
            if abs(got - numeric) > atol + rtol * abs(numeric):
                raise GradcheckError(
                    f"gradcheck: input {i} (shape {tuple(host.shape)}) at index {_unravel(k, host.shape)}: "
                    f"analytic gradient {got:.10g} but numerical {numeric:.10g}")
    return True


def gradgradcheck(f, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3):
    """Check second derivatives: :func:`gradcheck` of the (create_graph) gradient of ``f``."""
    weights = [None]

    def first_grads(*xs):
        xs = [Tensor(x.data, requires_grad=True) if not x.requires_grad else x for x in xs]
        gs = autograd_grad(_projected(f, xs, weights), xs, create_graph=True, allow_unused=True)
        from .functions import concat, reshape
        return concat([reshape(g if g is not None else 0.0 * x, (-1,)) for g, x in zip(gs, xs)])

    return gradcheck(first_grads, *inputs, eps=eps, atol=atol, rtol=rtol)


def _unravel(k, shape):
    idx = []
    for n in reversed(shape):
        k, r = divmod(k, n)
        idx.append(r)
    return tuple(reversed(idx))
