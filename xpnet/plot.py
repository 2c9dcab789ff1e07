"""Plots written to PNG files: training curves, LR range test, loss surfaces,
decision boundaries, activation functions, confusion matrices.

matplotlib is optional (``pip install 'xpnet[plot]'``) and imported only when a
plot is drawn.  Figures are drawn on matplotlib's Agg canvas directly, without
pyplot, so nothing is displayed and no global matplotlib state changes.  Every
function writes a PNG to the ``path`` it is given and returns ``path``.
Plotting happens on the host: tensors and arrays of any backend are copied
there (``xpnet.backend.to_numpy``) once, outside any training step.
"""

from __future__ import annotations

import math

import numpy as np  # host I/O: plots are drawn from host copies of the arrays

from . import backend as B
from .autograd.tensor import Tensor, enable_grad

__all__ = ["available", "plot_history", "plot_lr_range", "suggest_lr", "plot_loss_surface",
           "plot_decision_boundary", "plot_activations", "plot_confusion_matrix"]


_MISSING = "matplotlib is not installed: pip install 'xpnet[plot]'"


def available(notice: bool = True) -> bool:
    """True when matplotlib can be imported; otherwise prints that there will be no plots."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if notice:
            print("matplotlib is not installed: no plots (pip install 'xpnet[plot]')")
        return False
    return True


def _figure(nrows=1, ncols=1, size=(6.4, 4.8)):
    """A Figure on the Agg canvas and its axes (a flat list)."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(_MISSING) from None
    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _host(x, dtype=None):
    """``x`` (a Tensor, an array of any backend, a list or a number) as a NumPy array."""
    if isinstance(x, Tensor):
        x = x.data
    if isinstance(x, (list, tuple)) and any(isinstance(v, Tensor) or hasattr(v, "shape") for v in x):
        x = [_host(v) for v in x]
    a = B.to_numpy(x) if hasattr(x, "shape") else np.asarray(x)
    return a if dtype is None else a.astype(dtype)


# ------------------------------------------------------------------ history

def plot_history(history, path, metrics=None):
    """Training curves from a Keras-like history, one panel per metric.

    ``history`` is ``{"loss": [...], "val_loss": [...], "accuracy": [...], ...}``
    or an object with such a ``.history`` dict (a Keras/xpnet History).  Each
    panel shows ``name`` (train) and ``val_name`` (validation) over the
    epochs.  ``metrics`` picks and orders the panels (default: loss first,
    then every other recorded name).
    """
    hist = getattr(history, "history", history)
    if not isinstance(hist, dict):
        raise TypeError(f"plot_history(): expected a dict of lists or an object with .history, "
                        f"got {type(history).__name__}")
    names = []
    for k in hist:
        base = k[4:] if k.startswith("val_") else k
        if base not in names:
            names.append(base)
    if "loss" in names:
        names.remove("loss")
        names.insert(0, "loss")
    if metrics is not None:
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = [m for m in metrics if m not in names]
        if unknown:
            raise ValueError(f"plot_history(): no curve named {', '.join(map(repr, unknown))}; "
                             f"the history has {', '.join(map(repr, hist)) or 'nothing'}")
        names = metrics
    if not names:
        raise ValueError("plot_history(): the history is empty: expected lists such as {'loss': [...]}")
    fig, axes = _figure(1, len(names), size=(4.5 * len(names), 3.6))
    for ax, name in zip(axes, names):
        for key, label, style in ((name, "train", "-o"), ("val_" + name, "validation", "-s")):
            if key in hist:
                y = _host(hist[key], "float64").reshape(-1)
                ax.plot(range(1, len(y) + 1), y, style, markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    return _save(fig, path)


# ------------------------------------------------------------ LR range test

def _lr_curve(lrs, losses, window=None):
    """Validated ``(lrs, losses, smoothed)`` with the tail cut at the first non-finite loss.

    Smoothing is a centred moving average (zero lag), computed after capping
    the losses at the highest value seen before the minimum, so that a
    diverging tail cannot leak into the curve before it.
    """
    lrs, losses = _host(lrs, "float64").reshape(-1), _host(losses, "float64").reshape(-1)
    if lrs.shape != losses.shape:
        raise ValueError(f"lrs and losses differ in length: {lrs.size} and {losses.size}")
    bad = np.flatnonzero(~np.isfinite(losses))
    n = int(bad[0]) if bad.size else losses.size
    lrs, losses = lrs[:n], losses[:n]
    if n < 3:
        raise ValueError(f"the LR range test needs at least 3 finite losses before the first inf/nan, got {n}")
    if not (np.all(lrs > 0) and np.all(np.diff(lrs) > 0)):
        raise ValueError("lrs must be positive and strictly increasing (one learning rate per recorded loss)")
    capped = np.minimum(losses, losses[: int(np.argmin(losses)) + 1].max())
    w = max(1, n // 20) if window is None else int(window)
    kernel = np.ones(2 * (w // 2) + 1)
    smooth = np.convolve(capped, kernel, "same") / np.convolve(np.ones(n), kernel, "same")
    return lrs, losses, smooth


def suggest_lr(lrs, losses, window=None) -> float:
    """The learning rate at the steepest descent of the smoothed loss (fastai's "steep", Lightning's suggestion).

    ``lrs`` increase (usually geometrically) and ``losses`` are the losses
    recorded at them.  The slope is taken against log(lr) on a centred moving
    average of ``window`` points (default: 5% of the curve), and searched only
    up to the minimum of that average: a diverging tail (huge values, inf or
    nan, which cut the curve) cannot win.
    """
    lrs, _, smooth = _lr_curve(lrs, losses, window)
    stop = int(np.argmin(smooth))
    if stop == 0:
        raise ValueError("suggest_lr(): the loss never decreases over the range: "
                         "start the LR range test at a smaller learning rate")
    slope = np.gradient(smooth, np.log(lrs))
    return float(lrs[int(np.argmin(slope[: stop + 1]))])


def plot_lr_range(lrs, losses, path, suggestion=None):
    """Loss against learning rate (log axis) of an LR range test.

    ``suggestion`` marks a learning rate on the curve: a number, or ``True``
    for :func:`suggest_lr`'s pick.  The y-axis is limited so that a diverging
    tail does not flatten the interesting part.
    """
    lrs_all, losses_all = _host(lrs, "float64").reshape(-1), _host(losses, "float64").reshape(-1)
    lrs_ok, losses_ok, smooth = _lr_curve(lrs_all, losses_all)
    if suggestion is True:
        suggestion = suggest_lr(lrs_all, losses_all)
    fig, (ax,) = _figure(size=(6.4, 4.4))
    ax.plot(lrs_ok, losses_ok, color="tab:blue", alpha=0.35, label="loss")
    lo, hi = losses_ok.min(), losses_ok[: int(np.argmin(losses_ok)) + 1].max()
    ax.plot(lrs_ok, np.where(losses_ok > hi, np.nan, smooth), color="tab:blue", label="smoothed")
    if suggestion is not None:
        s = float(suggestion)
        ax.axvline(s, color="tab:red", linestyle="--", linewidth=1)
        ax.plot([s], [np.interp(math.log(s), np.log(lrs_ok), smooth)], "o", color="tab:red",
                label=f"suggested lr = {s:.2e}")
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title("LR range test")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, path)


# ------------------------------------------------------------ loss surface

def _evaluate_grid(f, W, Bm):
    """``f`` on the grid: one vectorized call if ``f`` accepts arrays, else point by point."""
    try:
        Z = _host(f(W, Bm), "float64")
        if Z.shape == W.shape:
            return Z
    except Exception:  # a scalar-only f: fall back to a loop over the points
        pass
    return np.array([[float(_host(f(float(w), float(b)))) for w, b in zip(rw, rb)] for rw, rb in zip(W, Bm)])


def plot_loss_surface(f, path, center, span, path_points=None, resolution=50,
                      labels=("w", "b"), levels=30):
    """Filled contour of a loss over two parameters, with an optional descent path.

    ``f(w, b)`` returns the loss; it is called once on 2-D NumPy grids when it
    accepts arrays, else once per grid point with floats.  The grid covers
    ``center ± span`` (``span`` a number or a pair) at ``resolution`` points per
    axis.  ``path_points`` is a sequence of ``(w, b)`` pairs (e.g. the
    parameters after each step of gradient descent), drawn from start to end.
    """
    (w0, b0) = (float(c) for c in _host(center, "float64").reshape(2))
    sw, sb = (float(s) for s in np.broadcast_to(_host(span, "float64"), (2,)))
    if sw <= 0 or sb <= 0 or resolution < 2:
        raise ValueError(f"plot_loss_surface(): span must be > 0 and resolution >= 2, got span "
                         f"{(sw, sb)} and resolution {resolution}")
    W, Bm = np.meshgrid(np.linspace(w0 - sw, w0 + sw, resolution), np.linspace(b0 - sb, b0 + sb, resolution))
    Z = _evaluate_grid(f, W, Bm)
    fig, (ax,) = _figure(size=(6.4, 5.2))
    cs = ax.contourf(W, Bm, Z, levels=levels, cmap="viridis")
    ax.contour(W, Bm, Z, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
    fig.colorbar(cs, ax=ax, label="loss")
    if path_points is not None:
        P = _host(path_points, "float64").reshape(-1, 2)
        ax.plot(P[:, 0], P[:, 1], "-o", color="tab:red", markersize=3, linewidth=1.2, label="descent path")
        ax.plot(P[:1, 0], P[:1, 1], "s", color="white", markeredgecolor="k", label="start")
        ax.plot(P[-1:, 0], P[-1:, 1], "*", color="gold", markeredgecolor="k", markersize=12, label="end")
        ax.legend(loc="upper right")
    ax.set_xlim(w0 - sw, w0 + sw)
    ax.set_ylim(b0 - sb, b0 + sb)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title("loss surface")
    return _save(fig, path)


# ------------------------------------------------------- decision boundary

def plot_decision_boundary(predict, X, y, path, resolution=200, class_names=None):
    """Regions of a 2-D classifier (filled contour) with the data on top.

    ``predict`` maps an (n, 2) NumPy array (X's float dtype) to n class
    indices (a NumPy array, a list, a Tensor or an array of any backend);
    an (n, C) result of scores is reduced with argmax.  ``X`` is (n, 2),
    ``y`` the n labels.
    """
    X, y = _host(X), _host(y).reshape(-1)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary(): X must have shape (n, 2), got {X.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"plot_decision_boundary(): X has {X.shape[0]} rows but y has {y.shape[0]} labels")
    dtype = X.dtype if X.dtype.kind == "f" else np.float64
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.1 * np.where(hi > lo, hi - lo, 1.0)
    gx, gy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution),
                         np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(dtype)
    pred = _host(predict(grid))
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    if pred.size != grid.shape[0]:
        raise ValueError(f"plot_decision_boundary(): predict returned {pred.size} values "
                         f"for {grid.shape[0]} points (shape {pred.shape}): expected one class index per row")
    Z = pred.reshape(gx.shape).astype(np.int64)
    n_classes = int(max(Z.max(), y.max())) + 1
    fig, (ax,) = _figure(size=(6.4, 5.2))
    from matplotlib.colors import ListedColormap
    base = [f"C{i % 10}" for i in range(n_classes)]
    cmap = ListedColormap(base)
    ax.contourf(gx, gy, Z, levels=np.arange(n_classes + 1) - 0.5, cmap=cmap, alpha=0.3)
    for c in range(n_classes):
        m = y == c
        if m.any():
            name = class_names[c] if class_names is not None else f"class {c}"
            ax.scatter(X[m, 0], X[m, 1], s=18, color=base[c], edgecolors="k", linewidths=0.5, label=name)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title("decision boundary")
    ax.legend(loc="best")
    return _save(fig, path)


# -------------------------------------------------------------- activations

DEFAULT_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "softplus",
                       "hardtanh", "mish", "selu", "celu", "hardswish", "hardsigmoid", "softsign", "logsigmoid")


def _activation(name):
    from .autograd import functions as core
    from .nn import functional as nnf
    fn = getattr(nnf, name, None) or getattr(core, name, None)
    return fn if callable(fn) else None


def _activation_curves(names=None, x_range=(-4.0, 4.0), points=401):
    """``[(name, x, f(x), f'(x))]`` as NumPy arrays, f' from ``backward()`` on the numpy backend."""
    if names is None:
        items = [(n, _activation(n)) for n in DEFAULT_ACTIVATIONS]
        items = [(n, fn) for n, fn in items if fn is not None]
    else:
        items = []
        for n in ([names] if isinstance(names, str) or callable(names) else names):
            fn = n if callable(n) else _activation(n)
            if fn is None:
                have = [d for d in DEFAULT_ACTIVATIONS if _activation(d) is not None]
                raise ValueError(f"plot_activations(): no activation {n!r} in xpnet.nn.functional; "
                                 f"available: {', '.join(have)}")
            items.append((getattr(n, "__name__", "activation") if callable(n) else n, fn))
    if not items:
        raise ValueError("plot_activations(): no activation to plot")
    backend = B.get_backend("numpy")
    xs = np.linspace(float(x_range[0]), float(x_range[1]), points)
    out = []
    for name, fn in items:
        x = Tensor(B.as_array(xs, "float64", backend), requires_grad=True)
        with enable_grad():
            y = fn(x)
            y.sum().backward()  # elementwise: d(sum y)/dx_i = f'(x_i)
        out.append((name, xs, y.numpy(), x.grad.numpy()))
    return out


def plot_activations(path, names=None, x_range=(-4.0, 4.0), points=401):
    """Activation functions and their derivatives, one panel each.

    The derivatives come from xpnet's autograd (``backward()`` on the numpy
    backend, float64), not from hand-written formulas: the picture checks the
    backward rules.  ``names`` are functions of ``xpnet.nn.functional`` (or
    callables); by default every common activation that exists there.
    """
    curves = _activation_curves(names, x_range, points)
    ncols = min(4, len(curves))
    nrows = -(-len(curves) // ncols)
    fig, axes = _figure(nrows, ncols, size=(3.6 * ncols, 2.9 * nrows))
    for ax, (name, x, y, dy) in zip(axes, curves):
        ax.axhline(0, color="gray", linewidth=0.5)
        ax.axvline(0, color="gray", linewidth=0.5)
        ax.plot(x, y, label=f"{name}(x)")
        ax.plot(x, dy, "--", label="derivative")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(curves):]:
        ax.set_visible(False)
    return _save(fig, path)


# --------------------------------------------------------- confusion matrix

def plot_confusion_matrix(cm, path, class_names=None, normalize=False):
    """A confusion matrix (rows: true class, columns: predicted) with counts in the cells.

    ``normalize=True`` divides each row by its total (recall per class).
    """
    cm = _host(cm, "float64")
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix(): expected a square (C, C) matrix, got shape {cm.shape}")
    n = cm.shape[0]
    names = [str(c) for c in (class_names if class_names is not None else range(n))]
    if len(names) != n:
        raise ValueError(f"plot_confusion_matrix(): {len(names)} class names for {n} classes")
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1e-12)
    size = max(4.0, 0.55 * n + 2.5)
    fig, (ax,) = _figure(size=(size + 1.0, size))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax)
    ax.set_xticks(range(n), labels=names, rotation=45 if n > 6 else 0)
    ax.set_yticks(range(n), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix" + (" (normalized)" if normalize else ""))
    if n <= 30:
        top = cm.max() if cm.size else 0.0
        for i in range(n):
            for j in range(n):
                v = cm[i, j]
                text = f"{v:.2f}" if normalize else (f"{int(v)}" if v == int(v) else f"{v:.3g}")
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if top and v > 0.5 * top else "black")
    return _save(fig, path)
