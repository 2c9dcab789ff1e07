"""Loss modules (PyTorch's names, arguments and buffers); the math lives in
:mod:`xpnet.nn.functional.loss`."""

from __future__ import annotations

from .. import backend as B
from ..autograd import Tensor
from .functional import loss as L
from .module import Module

__all__ = [
    "MSELoss", "L1Loss", "MSLELoss", "MAPELoss", "HuberLoss", "SmoothL1Loss", "LogCoshLoss",
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss", "KLDivLoss",
    "HingeLoss", "SquaredHingeLoss", "ExponentialLoss",
]


def _buffer(v):
    """A weight given as a tensor, an array or a list, as a tensor (on the current backend unless already one)."""
    if v is None or isinstance(v, Tensor):
        return v
    return Tensor(B.as_array(v))


class _Loss(Module):
    """A loss: ``loss(input, target)``; ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``."""

    allowed = L.REDUCTIONS

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        L._check_reduction(type(self).__name__, reduction, self.allowed)
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with an optional ``weight`` buffer (in the state dict, as PyTorch)."""

    def __init__(self, weight=None, reduction: str = "mean"):
        super().__init__(reduction)
        self.register_buffer("weight", _buffer(weight))


class MSELoss(_Loss):
    """Mean squared error."""

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        return L.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error."""

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        return L.l1_loss(input, target, reduction=self.reduction)


class MSLELoss(_Loss):
    """Mean squared logarithmic error ``(log1p(input) - log1p(target))^2``; values must be > -1."""

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        return L.msle_loss(input, target, reduction=self.reduction)


class MAPELoss(_Loss):
    """Mean absolute percentage error ``100 |target - input| / max(|target|, eps)`` (eps guards zero targets)."""

    def __init__(self, *, reduction: str = "mean", eps: float = 1e-8):
        super().__init__(reduction)
        self.eps = eps

    def forward(self, input, target):
        return L.mape_loss(input, target, reduction=self.reduction, eps=self.eps)


class HuberLoss(_Loss):
    """Quadratic for ``|d| < delta``, linear beyond."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        if not delta > 0:
            raise ValueError(f"HuberLoss: delta must be > 0, got {delta}")
        self.delta = delta

    def forward(self, input, target):
        return L.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(_Loss):
    """Huber loss divided by ``beta`` (L1 when ``beta=0``)."""

    def __init__(self, *, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        if beta < 0:
            raise ValueError(f"SmoothL1Loss: beta must be >= 0, got {beta}")
        self.beta = beta

    def forward(self, input, target):
        return L.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class LogCoshLoss(_Loss):
    """``log(cosh(input - target))``, computed without overflow."""

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        return L.log_cosh_loss(input, target, reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy on probabilities (checked to lie in [0, 1])."""

    def __init__(self, weight=None, *, reduction: str = "mean"):
        super().__init__(weight, reduction)

    def forward(self, input, target):
        return L.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """Sigmoid + binary cross-entropy on logits; ``pos_weight`` weighs positives per class."""

    def __init__(self, weight=None, *, reduction: str = "mean", pos_weight=None):
        super().__init__(weight, reduction)
        self.register_buffer("pos_weight", _buffer(pos_weight))

    def forward(self, input, target):
        return L.binary_cross_entropy_with_logits(input, target, weight=self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy of logits against class indices or class probabilities (one fused op)."""

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(weight, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return L.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities at class indices."""

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return L.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class KLDivLoss(_Loss):
    """KL divergence of log-probabilities ``input`` from ``target``; use ``reduction="batchmean"`` for the true KL."""

    allowed = L.REDUCTIONS + ("batchmean",)

    def __init__(self, *, reduction: str = "mean", log_target: bool = False):
        super().__init__(reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return L.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class HingeLoss(_Loss):
    """``max(0, 1 - y f)`` with labels in {-1, +1}."""

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        return L.hinge_loss(input, target, reduction=self.reduction)


class SquaredHingeLoss(_Loss):
    """``max(0, 1 - y f)^2`` with labels in {-1, +1}."""

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        return L.squared_hinge_loss(input, target, reduction=self.reduction)


class ExponentialLoss(_Loss):
    """``exp(-y f)`` with labels in {-1, +1}."""

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        return L.exponential_loss(input, target, reduction=self.reduction)
