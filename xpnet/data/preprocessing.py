"""Splitting, standardizing and one-hot encoding, for NumPy arrays, arrays of
any backend and xpnet Tensors alike (the result has the kind of the input)."""

from __future__ import annotations

import math

import array_api_compat
import numpy as np

from .. import backend as B
from ..autograd.tensor import Tensor

__all__ = ["train_test_split", "Standardizer", "standardize", "one_hot"]


def _unwrap(x, what: str):
    """(raw array, was it a Tensor) for ``x``; lists become NumPy arrays."""
    if isinstance(x, Tensor):
        return x.data, True
    if isinstance(x, np.generic) or not array_api_compat.is_array_api_obj(x) or isinstance(x, (int, float, bool)):
        x = B.as_array(x, backend="numpy")
    if x.ndim == 0:
        raise ValueError(f"{what} is a scalar: expected an array with samples along the first axis")
    return x, False


def _rewrap(x, was_tensor):
    return Tensor(x) if was_tensor else x


def _host_rng(seed):
    """A NumPy generator: seeded by ``seed``, else drawn from xpnet's default generator."""
    if seed is None:
        seed = int(B.default_generator().host.integers(2**63))
    return np.random.default_rng(seed)


def _take_rows(x, index: np.ndarray):
    if isinstance(x, np.ndarray):
        return x[index]
    b = B.backend_of(x)
    return b.xp.take(x, B.as_array(index, "int64", b), axis=0)


# --------------------------------------------------------------------- split

def train_test_split(*arrays, test_size=0.25, shuffle=True, seed=None, stratify=None):
    """Split ``arrays`` (same length) into train and test parts, as in scikit-learn.

    Returns ``[a_train, a_test, b_train, b_test, ...]``.  ``test_size`` is a
    fraction in (0, 1) (the test part gets ``ceil(test_size * n)`` samples) or
    a number of samples.  ``shuffle`` draws a permutation on the host from
    ``seed`` (the same split on every backend); ``stratify`` (labels) keeps
    each class's share equal in both parts.  ``shuffle=False`` puts the last
    samples in the test part.
    """
    if not arrays:
        raise ValueError("train_test_split needs at least one array")
    raw = [_unwrap(a, f"train_test_split argument {i}") for i, a in enumerate(arrays)]
    lengths = [int(a.shape[0]) for a, _ in raw]
    if len(set(lengths)) > 1:
        raise ValueError(f"train_test_split: the arrays have different lengths {tuple(lengths)}: "
                         "expected the same number of samples in each")
    n = lengths[0]
    if isinstance(test_size, float) and not isinstance(test_size, bool):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"train_test_split: test_size={test_size}: a fraction must lie in (0, 1)")
        n_test = math.ceil(test_size * n)
    elif isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        n_test = int(test_size)
    else:
        raise TypeError(f"train_test_split: test_size={test_size!r}: expected a float in (0, 1) or an int")
    if not 0 < n_test < n:
        raise ValueError(f"train_test_split: test_size={test_size!r} gives {n_test} test samples out of {n}: "
                         "expected at least one sample in each part")
    if stratify is not None:
        if not shuffle:
            raise ValueError("train_test_split: stratify needs shuffle=True")
        labels = B.to_numpy(_unwrap(stratify, "stratify")[0])
        if labels.shape[0] != n:
            raise ValueError(f"train_test_split: stratify has {labels.shape[0]} labels for {n} samples")
        train_idx, test_idx = _stratified(labels, n_test, _host_rng(seed))
    elif shuffle:
        perm = _host_rng(seed).permutation(n)
        train_idx, test_idx = perm[n_test:], perm[:n_test]
    else:
        train_idx, test_idx = np.arange(n - n_test), np.arange(n - n_test, n)
    out = []
    for x, was_tensor in raw:
        out += [_rewrap(_take_rows(x, train_idx), was_tensor), _rewrap(_take_rows(x, test_idx), was_tensor)]
    return out


def _stratified(labels, n_test, rng):
    """Train and test indices with each class split in proportion (largest remainders)."""
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True, axis=0)
    inverse = inverse.reshape(-1)
    want = counts * (n_test / labels.shape[0])
    per_class = np.floor(want).astype(np.int64)
    short = n_test - int(per_class.sum())
    per_class[np.argsort(-(want - per_class), kind="stable")[:short]] += 1
    train, test = [], []
    for c in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(inverse == c))
        test.append(idx[:per_class[c]])
        train.append(idx[per_class[c]:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


# ---------------------------------------------------------------- standardize

class Standardizer:
    """Scale features to zero mean and unit variance (scikit-learn's StandardScaler).

    :meth:`fit` stores the per-feature ``mean`` and ``std`` (population
    standard deviation over axis 0; a constant feature gets std 1) in the
    array kind of the data; :meth:`transform` applies them to data of any
    backend (moving the statistics there), :meth:`inverse_transform` undoes it.
    Integer data are converted to float32; float dtypes are kept.
    """

    def __init__(self, eps: float = 0.0):
        self.eps = eps
        self.mean = None
        self.std = None

    @staticmethod
    def _float(x, what):
        x, was_tensor = _unwrap(x, what)
        xp = B.namespace_of(x)
        if not xp.isdtype(x.dtype, "real floating"):
            x = xp.astype(x, xp.float32)
        return x, was_tensor, xp

    def fit(self, x):
        x, _, xp = self._float(x, "Standardizer.fit input")
        if x.shape[0] == 0:
            raise ValueError("Standardizer.fit: no samples: expected at least one row")
        self.mean = xp.mean(x, axis=0)
        std = xp.sqrt(xp.var(x, axis=0) + self.eps)
        self.std = xp.where(std == 0, xp.ones_like(std), std)
        return self

    def _stats(self, x, xp):
        if self.mean is None:
            raise RuntimeError("Standardizer: call fit(train) before transform")
        if tuple(x.shape[1:]) != tuple(self.mean.shape):
            raise ValueError(f"Standardizer: data of shape {tuple(x.shape)} has features {tuple(x.shape[1:])}, "
                             f"expected {tuple(self.mean.shape)} as in the data it was fitted on")
        b = B.backend_of(x)
        mean, std = B.transfer(self.mean, b), B.transfer(self.std, b)
        return xp.astype(mean, x.dtype), xp.astype(std, x.dtype)

    def transform(self, x):
        x, was_tensor, xp = self._float(x, "Standardizer.transform input")
        mean, std = self._stats(x, xp)
        return _rewrap((x - mean) / std, was_tensor)

    def inverse_transform(self, x):
        x, was_tensor, xp = self._float(x, "Standardizer.inverse_transform input")
        mean, std = self._stats(x, xp)
        return _rewrap(x * std + mean, was_tensor)

    def fit_transform(self, x):
        return self.fit(x).transform(x)

    def state_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict):
        self.mean, self.std = state["mean"], state["std"]


def standardize(train, *others, eps: float = 0.0):
    """``(train_scaled, *others_scaled, scaler)``: every array scaled by the
    mean and std of ``train``; ``scaler`` is the fitted :class:`Standardizer`
    (``scaler.mean``, ``scaler.std``, ``scaler.transform(new_data)``)."""
    scaler = Standardizer(eps).fit(train)
    return (scaler.transform(train), *(scaler.transform(o) for o in others), scaler)


# ------------------------------------------------------------------- one-hot

def one_hot(labels, num_classes=None, dtype="float32"):
    """``labels`` (integers, any shape) as one-hot vectors along a new last axis.

    Computed by comparing with ``arange(num_classes)`` (no scatter) on the
    labels' own backend; the result is a Tensor if ``labels`` is one.  Labels
    outside ``[0, num_classes)`` raise IndexError (a documented label range
    check: one read of the minimum and maximum).  ``num_classes=None`` uses
    ``max(labels) + 1``.
    """
    y, was_tensor = (labels.data, True) if isinstance(labels, Tensor) else (labels, False)
    if isinstance(y, np.generic) or not array_api_compat.is_array_api_obj(y) or isinstance(y, (int, bool)):
        y = B.as_array(y, backend="numpy")
    xp = B.namespace_of(y)
    if not xp.isdtype(y.dtype, "integral"):
        raise TypeError(f"one_hot: labels have dtype {B.dtype_name(y.dtype)}: expected integers")
    if num_classes is None:
        if math.prod(y.shape) == 0:
            raise ValueError("one_hot: num_classes=None needs at least one label to infer it")
        num_classes = int(B.to_numpy(xp.max(y))) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"one_hot: num_classes={num_classes!r}: expected a positive int")
    B.check_indices(y, int(num_classes), f"one_hot(num_classes={num_classes})", defer=False)
    classes = xp.arange(int(num_classes), dtype=y.dtype, device=array_api_compat.device(y))
    out = xp.astype(y[..., None] == classes, B.resolve_dtype(xp, dtype))
    return _rewrap(out, was_tensor)
