"""Metrics accumulated on the device and read back once per epoch (or log interval).

Each metric keeps running sums as backend arrays: ``update(output, target)``
adds one batch without a device-to-host transfer, ``compute()`` reads the
result once.  Classification metrics take logits or probabilities of shape
(N, C) and integer class targets of shape (N,).
"""

from __future__ import annotations

import math

from .. import backend as B
from ..autograd import Tensor

__all__ = ["Metric", "Accuracy", "TopKAccuracy", "Precision", "Recall", "F1Score", "ConfusionMatrix",
           "MeanSquaredError", "MeanAbsoluteError", "R2Score", "get_metric"]


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


class Metric:
    """Base class: ``reset()``, ``update(output, target)``, ``compute() -> float``."""

    name = "metric"

    def __init__(self):
        self.reset()

    def reset(self):
        self.state = None

    def _add(self, *values):
        self.state = values if self.state is None else tuple(a + b for a, b in zip(self.state, values))

    def compute(self) -> float:
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


def _classes(output, target):
    out, tgt = _raw(output), _raw(target)
    xp = B.namespace_of(out)
    if out.ndim != 2:
        raise ValueError(f"classification metrics expect outputs of shape (N, C), got {tuple(out.shape)}")
    if tuple(tgt.shape) != (out.shape[0],):
        raise ValueError(f"classification metrics expect targets of shape ({out.shape[0]},), got {tuple(tgt.shape)}")
    return xp, out, tgt


class Accuracy(Metric):
    name = "accuracy"

    def update(self, output, target):
        xp, out, tgt = _classes(output, target)
        hit = xp.argmax(out, axis=1) == xp.astype(tgt, xp.int64)
        self._add(xp.sum(xp.astype(hit, xp.int64)), out.shape[0])

    def compute(self):
        return float(B.to_numpy(self.state[0])) / self.state[1] if self.state else float("nan")


class TopKAccuracy(Metric):
    """The target is among the ``k`` highest scores."""

    def __init__(self, k: int = 5):
        self.k = k
        self.name = f"top{k}_accuracy"
        super().__init__()

    def update(self, output, target):
        xp, out, tgt = _classes(output, target)
        picked = xp.take_along_axis(out, xp.reshape(xp.astype(tgt, xp.int64), (-1, 1)), axis=1)
        rank = xp.sum(xp.astype(out > picked, xp.int64), axis=1)  # scores strictly above the target's
        self._add(xp.sum(xp.astype(rank < self.k, xp.int64)), out.shape[0])

    def compute(self):
        return float(B.to_numpy(self.state[0])) / self.state[1] if self.state else float("nan")


class ConfusionMatrix(Metric):
    """Counts ``cm[true, predicted]`` for ``num_classes`` classes."""

    name = "confusion_matrix"

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        super().__init__()

    def update(self, output, target):
        xp, out, tgt = _classes(output, target)
        dev = B.array_api_compat.device(out)
        classes = xp.arange(self.num_classes, device=dev)
        pred = xp.argmax(out, axis=1)
        t1 = xp.astype(xp.astype(tgt, xp.int64)[:, None] == classes[None, :], xp.float32)
        p1 = xp.astype(pred[:, None] == classes[None, :], xp.float32)
        self._add(xp.matmul(xp.matrix_transpose(t1), p1))  # exact: counts per batch < 2**24

    def compute(self):
        """The matrix as a NumPy int64 array (rows: true class, columns: predicted)."""
        if self.state is None:
            return None
        return B.to_numpy(self.state[0]).round().astype("int64")


class _PerClass(ConfusionMatrix):
    """Macro averages over classes, from the confusion matrix."""

    def _stats(self):
        cm = ConfusionMatrix.compute(self)
        tp = cm.diagonal().astype(float)
        return tp, cm.sum(axis=0) - tp, cm.sum(axis=1) - tp


def _safe_div(a, b):
    return [x / y if y else 0.0 for x, y in zip(a, b)]


class Precision(_PerClass):
    name = "precision"

    def compute(self):
        tp, fp, _ = self._stats()
        return sum(_safe_div(tp, tp + fp)) / self.num_classes


class Recall(_PerClass):
    name = "recall"

    def compute(self):
        tp, _, fn = self._stats()
        return sum(_safe_div(tp, tp + fn)) / self.num_classes


class F1Score(_PerClass):
    name = "f1"

    def compute(self):
        tp, fp, fn = self._stats()
        return sum(_safe_div(2 * tp, 2 * tp + fp + fn)) / self.num_classes


class _Regression(Metric):
    def _pair(self, output, target):
        out, tgt = _raw(output), _raw(target)
        if tuple(out.shape) != tuple(tgt.shape):
            raise ValueError(f"{self.name}: output shape {tuple(out.shape)} differs from target shape {tuple(tgt.shape)}")
        xp = B.namespace_of(out)
        return xp, out, xp.astype(tgt, out.dtype)


class MeanSquaredError(_Regression):
    name = "mse"

    def update(self, output, target):
        xp, out, tgt = self._pair(output, target)
        self._add(xp.sum((out - tgt) ** 2), math.prod(out.shape))

    def compute(self):
        return float(B.to_numpy(self.state[0])) / self.state[1] if self.state else float("nan")


class MeanAbsoluteError(MeanSquaredError):
    name = "mae"

    def update(self, output, target):
        xp, out, tgt = self._pair(output, target)
        self._add(xp.sum(xp.abs(out - tgt)), math.prod(out.shape))


class R2Score(_Regression):
    """1 - SS_res / SS_tot over everything seen (all outputs pooled)."""

    name = "r2"

    def update(self, output, target):
        xp, out, tgt = self._pair(output, target)
        self._add(xp.sum((out - tgt) ** 2), xp.sum(tgt), xp.sum(tgt * tgt), math.prod(out.shape))

    def compute(self):
        if self.state is None:
            return float("nan")
        res, s, s2 = (float(B.to_numpy(v)) for v in self.state[:3])
        n = self.state[3]
        tot = s2 - s * s / n
        return 1.0 - res / tot if tot > 0 else float("nan")


_NAMES = {"accuracy": Accuracy, "acc": Accuracy, "mse": MeanSquaredError, "mae": MeanAbsoluteError,
          "r2": R2Score}
_NEED_CLASSES = {"precision": Precision, "recall": Recall, "f1": F1Score}


def get_metric(spec, num_classes=None) -> Metric:
    """A metric from a name (``"accuracy"``, ``"top5"``, ``"f1"``, ``"mse"``, ...) or a Metric."""
    if isinstance(spec, Metric):
        return spec
    if spec in _NAMES:
        return _NAMES[spec]()
    if isinstance(spec, str) and spec.startswith("top") and spec[3:].isdigit():
        return TopKAccuracy(int(spec[3:]))
    if spec in _NEED_CLASSES:
        if num_classes is None:
            raise ValueError(f"metric {spec!r} needs the number of classes: pass {_NEED_CLASSES[spec].__name__}(num_classes)")
        return _NEED_CLASSES[spec](num_classes)
    raise ValueError(f"unknown metric {spec!r}: expected one of accuracy, topK (e.g. top5), precision, "
                     "recall, f1, mse, mae, r2, or a Metric instance")
