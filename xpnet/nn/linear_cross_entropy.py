"""``LinearCrossEntropyLoss``: a linear layer and the cross entropy of its logits in one module
(PyTorch 2.13's ``torch.nn.LinearCrossEntropyLoss``; the same parameter names and layouts)."""

from __future__ import annotations

import math

from ..autograd.functions import reshape
from .functional.linear_cross_entropy import linear_cross_entropy
from .linear import Linear
from .loss import _WeightedLoss

__all__ = ["LinearCrossEntropyLoss"]


class LinearCrossEntropyLoss(_WeightedLoss):
    """``cross_entropy(self.linear(input) as (N, C, *out_features), target)``.

    ``self.linear`` is a :class:`Linear` (in_features -> C * prod(out_features)), stored flat
    as PyTorch does and reshaped in ``forward`` to (C, *out_features, in_features).  Input
    (in,) or (N, in); target as :func:`~xpnet.nn.functional.cross_entropy` for logits
    (N, C, *out_features).  ``options`` (PyTorch's chunking strategy) is accepted and ignored.
    Raises ValueError for a ``weight`` not of shape (C,) or ``label_smoothing`` outside [0, 1].
    """

    def __init__(self, in_features: int, num_classes: int, *, out_features: tuple = (), bias: bool = False,
                 dtype=None, backend=None, reduction: str = "mean", weight=None, ignore_index: int | None = None,
                 label_smoothing: float = 0.0, options=None):
        name = "LinearCrossEntropyLoss"
        if weight is not None and tuple(weight.shape) != (num_classes,):
            raise ValueError(f"{name}: weight must have shape {(num_classes,)}, got {tuple(weight.shape)}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
        super().__init__(weight, reduction)
        self.num_classes, self.out_features = num_classes, tuple(out_features)
        self.ignore_index, self.label_smoothing, self.options = ignore_index, label_smoothing, options
        self.linear = Linear(in_features, math.prod(self.out_features, start=num_classes), bias=bias, dtype=dtype,
                             backend=backend)

    def forward(self, input, target):
        shape = (self.num_classes, *self.out_features)
        w = reshape(self.linear.weight, (*shape, self.linear.in_features))
        b = None if self.linear.bias is None else reshape(self.linear.bias, shape)
        return linear_cross_entropy(input, w, target, linear_bias=b, weight=self.weight, reduction=self.reduction,
                                    ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
                                    options=self.options)

    def extra_repr(self) -> str:
        return (f"in_features={self.linear.in_features}, num_classes={self.num_classes}, "
                f"out_features={self.out_features}, bias={self.linear.bias is not None}, "
                f"reduction={self.reduction}, ignore_index={self.ignore_index}, "
                f"label_smoothing={self.label_smoothing}")
