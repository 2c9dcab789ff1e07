"""Inverted dropout with a mask from the seeded generator."""

from __future__ import annotations

from ... import backend as B
from ...autograd.tensor import _raw

__all__ = ["dropout"]


def _check_p(p, who: str):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{who}: dropout probability has to be between 0 and 1, but got {p}")


def dropout(input, p: float = 0.5, training: bool = True, generator=None, inplace: bool = False):
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p).

    Identity when ``training`` is false or ``p == 0``; zeros when ``p == 1`` (as
    PyTorch).  The mask comes from ``generator`` (default: the default
    generator), computed on the input's device, and a seed gives the same mask
    on every backend; the gradient flows only through the kept elements.
    ``inplace`` is accepted for PyTorch compatibility and ignored.
    """
    _check_p(p, "dropout")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0
    x = _raw(input)
    b = B.backend_of(x)
    gen = generator if generator is not None else B.default_generator()
    keep = gen.bernoulli(tuple(x.shape), 1.0 - p, backend=b)
    return input * (b.xp.astype(keep, x.dtype) * (1.0 / (1.0 - p)))
