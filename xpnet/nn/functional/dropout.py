"""Inverted dropout with a mask from the seeded generator."""

from __future__ import annotations

from ... import backend as B
from ...autograd.tensor import _raw

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"]


def _check_p(p, who: str):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{who}: dropout probability has to be between 0 and 1, but got {p}")


def _without_mask(input, p, training: bool, who: str):
    """The result when no mask is drawn: ``input`` in eval or for p == 0, zeros for p == 1
    (as PyTorch); None when a mask is needed.  Raises ValueError for p outside [0, 1]."""
    _check_p(p, who)
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0
    return None


def dropout(input, p: float = 0.5, training: bool = True, generator=None, inplace: bool = False):
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p).

    Identity when ``training`` is false or ``p == 0``; zeros when ``p == 1`` (as
    PyTorch).  The mask comes from ``generator`` (default: the default
    generator), computed on the input's device, and a seed gives the same mask
    on every backend; the gradient flows only through the kept elements.
    ``inplace`` is accepted for PyTorch compatibility and ignored.
    """
    trivial = _without_mask(input, p, training, "dropout")
    if trivial is not None:
        return trivial
    x = _raw(input)
    return input * (_keep_mask(x, x.shape, p, generator) * (1.0 / (1.0 - p)))


def _keep_mask(x, shape, p, generator):
    """A float mask of ``shape`` (broadcasting against ``x``), 1 with probability 1 - p, drawn
    on ``x``'s device from ``generator`` (default: the default generator)."""
    b = B.backend_of(x)
    gen = generator if generator is not None else B.default_generator()
    return b.xp.astype(gen.bernoulli(tuple(shape), 1.0 - p, backend=b), x.dtype)


def _feature_shape(x, nd: int, who: str):
    """The mask shape of channel-wise dropout: (N, C, 1, ...) or, without a batch axis, (C, 1, ...)."""
    shape = tuple(x.shape)
    if nd and len(shape) not in (nd + 1, nd + 2):
        raise ValueError(f"{who}: expected a {nd + 1}-D (C, *) or {nd + 2}-D (N, C, *) input, got shape {shape}")
    if len(shape) < 2:
        raise ValueError(f"{who}: expected at least 2 dimensions (N, C, *), got shape {shape}")
    lead = 1 if (nd and len(shape) == nd + 1) else 2
    return shape[:lead] + (1,) * (len(shape) - lead)


def _feature_dropout(input, p, training, generator, nd, who):
    trivial = _without_mask(input, p, training, who)
    if trivial is not None:
        return trivial
    x = _raw(input)
    return input * (_keep_mask(x, _feature_shape(x, nd, who), p, generator) * (1.0 / (1.0 - p)))


def dropout1d(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None):
    """Zero whole channels of (N, C, L) or (C, L) with probability ``p``; scale the rest by 1/(1-p)."""
    return _feature_dropout(input, p, training, generator, 1, "dropout1d")


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None):
    """Zero whole channels of (N, C, H, W) or (C, H, W) with probability ``p`` (Tompson et al., 2015)."""
    return _feature_dropout(input, p, training, generator, 2, "dropout2d")


def dropout3d(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) with probability ``p``."""
    return _feature_dropout(input, p, training, generator, 3, "dropout3d")


_SELU_ALPHA_PRIME = -1.0507009873554804934193349852946 * 1.6732632423543772848170429916717


def _alpha_dropout(input, p, training, generator, feature, who):
    trivial = _without_mask(input, p, training, who)
    if trivial is not None:
        return trivial
    x = _raw(input)
    shape = _feature_shape(x, 0, who) if feature else tuple(x.shape)
    keep = _keep_mask(x, shape, p, generator)
    a = ((1.0 - p) * (1.0 + p * _SELU_ALPHA_PRIME ** 2)) ** -0.5
    b = (1.0 - keep) * (_SELU_ALPHA_PRIME * a) - a * _SELU_ALPHA_PRIME * p
    return input * (keep * a) + b


def alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False, generator=None):
    """Dropout that keeps SELU's zero mean and unit variance (Klambauer et al., 2017): dropped
    elements become SELU's negative saturation alpha', then a * x + b restores the moments."""
    return _alpha_dropout(input, p, training, generator, False, "alpha_dropout")


def feature_alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False, generator=None):
    """:func:`alpha_dropout` of whole channels (dim 1 of (N, C, *))."""
    return _alpha_dropout(input, p, training, generator, True, "feature_alpha_dropout")
