"""Built-in data sets (shipped, no network) and synthetic ones.

Every function returns NumPy arrays: float32 features and int64 labels (or
float32 targets); pass them to :class:`~xpnet.data.ArrayDataset`.  Synthetic
sets are drawn from ``np.random.default_rng(seed)``, so a seed gives the same
data on every machine and backend.
"""

from __future__ import annotations

import gzip
import math
from importlib import resources

import numpy as np

__all__ = ["IRIS_CLASSES", "load_digits", "load_iris", "make_moons", "make_spirals", "make_blobs",
           "make_regression", "make_polynomial"]

IRIS_CLASSES = ("setosa", "versicolor", "virginica")


def _data_file(name: str):
    return resources.files("xpnet.data").joinpath("files", name)


def load_digits():
    """The 8x8 handwritten digits (UCI; shipped in the package): ``X`` float32
    (1797, 64) with pixel counts 0..16 (``X.reshape(-1, 8, 8)`` gives the
    images; divide by 16 to scale to [0, 1]) and ``y`` int64 (1797,) in 0..9."""
    with _data_file("digits.csv.gz").open("rb") as raw, gzip.open(raw, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return np.ascontiguousarray(table[:, :-1]), table[:, -1].astype(np.int64)


def load_iris():
    """Fisher's iris (shipped in the package): ``X`` float32 (150, 4) (sepal
    length, sepal width, petal length, petal width in cm) and ``y`` int64
    (150,) in 0..2 (:data:`IRIS_CLASSES`)."""
    with _data_file("iris.csv").open("r") as f:
        table = np.loadtxt(f, delimiter=",", skiprows=1, dtype=np.float64)
    return table[:, :4].astype(np.float32), table[:, 4].astype(np.int64)


def _check_count(n, what="n_samples", minimum=1):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{what}={n!r}: expected an int >= {minimum}")
    return int(n)


def make_moons(n_samples=100, noise=0.0, seed=None):
    """Two interleaving half circles in 2-D (as scikit-learn's): ``X`` float32
    (n, 2), ``y`` int64 (n,) with 0 for the upper and 1 for the lower moon,
    Gaussian ``noise`` (std) added, rows shuffled."""
    n = _check_count(n_samples, minimum=2)
    rng = np.random.default_rng(seed)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0.0, math.pi, n_out)
    t_in = np.linspace(0.0, math.pi, n_in)
    X = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1),
                        np.stack([1.0 - np.cos(t_in), 0.5 - np.sin(t_in)], 1)])
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    if noise:
        X = X + rng.normal(0.0, noise, size=X.shape)
    perm = rng.permutation(n)
    return X[perm].astype(np.float32), y[perm]


def make_spirals(n_per_class=100, n_classes=3, noise=0.2, seed=None):
    """``n_classes`` interleaved spiral arms in 2-D (the CS231n toy set):
    ``X`` float32 (n_per_class * n_classes, 2), ``y`` int64, ordered by class.
    ``noise`` is the std of the angle jitter."""
    m = _check_count(n_per_class, "n_per_class")
    k = _check_count(n_classes, "n_classes")
    rng = np.random.default_rng(seed)
    r = np.tile(np.linspace(0.0, 1.0, m), k)
    base = np.concatenate([np.linspace(4.0 * j, 4.0 * (j + 1), m) for j in range(k)])
    t = base + rng.normal(0.0, 1.0, size=m * k) * noise
    X = np.stack([r * np.sin(t), r * np.cos(t)], 1)
    return X.astype(np.float32), np.repeat(np.arange(k, dtype=np.int64), m)


def make_blobs(n_samples=100, centers=3, std=1.0, seed=None, n_features=2):
    """Gaussian clusters: ``centers`` is a number (centers drawn uniformly in
    [-10, 10]^n_features) or an array (k, n_features); samples are split
    evenly over the clusters (the first ones get one more), each with
    standard deviation ``std`` (a number or one per cluster), rows shuffled.  Returns ``X`` float32 (n,
    n_features) and ``y`` int64 (n,), the cluster of each row."""
    n = _check_count(n_samples)
    rng = np.random.default_rng(seed)
    if isinstance(centers, (int, np.integer)) and not isinstance(centers, bool):
        k = _check_count(centers, "centers")
        c = rng.uniform(-10.0, 10.0, size=(k, _check_count(n_features, "n_features")))
    else:
        c = np.asarray(centers, dtype=np.float64)
        if c.ndim != 2 or c.shape[0] < 1:
            raise ValueError(f"make_blobs: centers of shape {c.shape}: expected an int or an array (k, n_features)")
        k = c.shape[0]
    counts = np.full(k, n // k) + (np.arange(k) < n % k)
    y = np.repeat(np.arange(k, dtype=np.int64), counts)
    s = np.asarray(std, dtype=np.float64)
    if s.ndim == 1 and s.shape[0] == k:  # one std per cluster
        s = s[y][:, None]
    elif s.ndim != 0:
        raise ValueError(f"make_blobs: std of shape {s.shape}: expected a number or one per center ({k},)")
    if np.any(s < 0):
        raise ValueError(f"make_blobs: std={std!r}: expected non-negative values")
    X = c[y] + rng.normal(0.0, 1.0, size=(n, c.shape[1])) * s
    perm = rng.permutation(n)
    return X[perm].astype(np.float32), y[perm]


def make_regression(n_samples=100, n_features=1, noise=0.0, seed=None, bias=0.0):
    """A linear problem ``y = X @ coef + bias + noise``: ``X`` float32 (n,
    n_features) standard normal, ``y`` float32 (n,) (reshape to (n, 1) for an
    (n, 1) model output), and the true ``coef`` float32 (n_features,), drawn
    uniformly in [-2, 2]."""
    n = _check_count(n_samples)
    d = _check_count(n_features, "n_features")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    coef = rng.uniform(-2.0, 2.0, size=d)
    y = X @ coef + bias + rng.normal(0.0, 1.0, size=n) * noise
    return X.astype(np.float32), y.astype(np.float32), coef.astype(np.float32)


def make_polynomial(n_samples=100, degree=3, noise=0.0, seed=None, low=-1.0, high=1.0):
    """A 1-D polynomial problem ``y = sum_k coef[k] * x**k + noise``: ``X``
    float32 (n, 1) uniform in [low, high], ``y`` float32 (n,), ``coef``
    float32 (degree + 1,) (constant term first), drawn uniformly in [-2, 2]."""
    n = _check_count(n_samples)
    deg = _check_count(degree, "degree", minimum=0)
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, size=n)
    coef = rng.uniform(-2.0, 2.0, size=deg + 1)
    y = np.polynomial.polynomial.polyval(x, coef) + rng.normal(0.0, 1.0, size=n) * noise
    return x[:, None].astype(np.float32), y.astype(np.float32), coef.astype(np.float32)
