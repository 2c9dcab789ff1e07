"""``linear_cross_entropy``: the cross entropy of a linear layer's logits, as PyTorch 2.13's
``torch.nn.functional.linear_cross_entropy`` (its reference path: the logits are made whole)."""

from __future__ import annotations

import math

from ...autograd.functions import reshape
from .linear import linear
from .loss import cross_entropy

__all__ = ["linear_cross_entropy"]


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction: str = "mean",
                         ignore_index: int | None = None, label_smoothing: float = 0.0, options=None):
    """``cross_entropy(linear(input, W, b), target, ...)`` with the logits laid out as PyTorch.

    ``input`` (in,) or (N, in); ``linear_weight`` (C, d1, ..., dK, in) (K >= 0 extra dimensions:
    a K-dimensional loss, batched input only); ``linear_bias`` (C, d1, ..., dK); the logits
    have shape (N, C, d1, ..., dK) (or (C,)), and ``target``, ``weight``, ``reduction``,
    ``label_smoothing`` are those of :func:`cross_entropy`; ``ignore_index=None`` means -100,
    and is an error with class-probability targets.  ``options`` (PyTorch's chunking
    strategy, a memory saving) is accepted and ignored: the result is the same.
    Raises ValueError for shapes that do not fit, naming them.
    """
    name = "linear_cross_entropy"
    if len(input.shape) not in (1, 2):
        raise ValueError(f"{name}: input must be 1-D (in,) or 2-D (N, in), got shape {tuple(input.shape)}")
    wshape = tuple(linear_weight.shape)
    if len(wshape) < 2:
        raise ValueError(f"{name}: linear_weight must be (C, ..., in), at least 2-D; got shape {wshape}")
    batch, in_features = tuple(input.shape[:-1]), input.shape[-1]
    if in_features != wshape[-1]:
        raise ValueError(f"{name}: input has {in_features} features (shape {tuple(input.shape)}), "
                         f"linear_weight {wshape[-1]} (shape {wshape})")
    C, out = wshape[0], wshape[1:-1]
    if linear_bias is not None and tuple(linear_bias.shape) != (C, *out):
        raise ValueError(f"{name}: linear_bias must have shape {(C, *out)}, got {tuple(linear_bias.shape)}")
    if out and not batch:
        raise ValueError(f"{name}: a K-dimensional loss (linear_weight {wshape}) needs batched input (N, "
                         f"{in_features}), got shape {tuple(input.shape)}")
    logits_shape = (*batch, C, *out)
    if tuple(target.shape) == logits_shape and ignore_index is not None:
        raise ValueError(f"{name}: ignore_index cannot be given with class-probability targets")
    rows = math.prod(out, start=C)
    w = reshape(linear_weight, (rows, in_features)) if out else linear_weight
    b = None if linear_bias is None else (reshape(linear_bias, (rows,)) if out else linear_bias)
    logits = reshape(linear(input, w, b), logits_shape)
    return cross_entropy(logits, target, weight, -100 if ignore_index is None else ignore_index, reduction,
                         label_smoothing)
