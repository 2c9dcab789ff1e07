"""Plots (xpnet.plot): each writes a valid PNG; suggest_lr; the missing-matplotlib error."""

import math
import struct
import sys

import numpy as np
import pytest

import xpnet as xn
from xpnet import plot as P


@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib")


def assert_png(path, min_size=(200, 150)):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    assert len(data) > 1024, f"PNG suspiciously small ({len(data)} bytes)"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert width >= min_size[0] and height >= min_size[1]
    return width, height


HISTORY = {"loss": [1.0, 0.7, 0.5, 0.45], "val_loss": [1.1, 0.8, 0.65, 0.66],
           "accuracy": [0.5, 0.7, 0.8, 0.85], "val_accuracy": [0.45, 0.6, 0.7, 0.72], "lr": [0.1] * 4}


# ---------------------------------------------------------------- history

def test_plot_history(mpl, tmp_path):
    p = tmp_path / "history.png"
    assert P.plot_history(HISTORY, p) == p
    w3, _ = assert_png(p)

    class History:
        history = HISTORY
    w1, _ = assert_png(P.plot_history(History(), tmp_path / "h1.png", metrics="accuracy"))
    assert w3 > 2 * w1  # three panels (loss, accuracy, lr) side by side against one


def test_plot_history_takes_tensors_of_any_backend(mpl, bk, tmp_path):
    hist = {"loss": [xn.tensor(v) for v in (1.0, 0.5, 0.25)], "val_loss": xn.tensor([1.2, 0.6, 0.4])}
    assert_png(P.plot_history(hist, tmp_path / "h.png"))


def test_plot_history_bad_input(mpl, tmp_path):
    with pytest.raises(ValueError, match="no curve named 'f1'.*'loss'"):
        P.plot_history(HISTORY, tmp_path / "h.png", metrics=["loss", "f1"])
    with pytest.raises(ValueError, match="history is empty"):
        P.plot_history({}, tmp_path / "h.png")
    with pytest.raises(TypeError, match="expected a dict"):
        P.plot_history([1, 2], tmp_path / "h.png")


# ---------------------------------------------------------------- LR range test

def lr_curve(center_log10=-3.0, n=200, seed=0, tail="nan"):
    """Synthetic LR range test: flat, a steep drop centred at 10**center, a minimum, then divergence."""
    rng = np.random.default_rng(seed)
    lrs = np.geomspace(1e-7, 10.0, n)
    x = np.log10(lrs)
    loss = 2.3 - 1.8 / (1 + np.exp(-3 * (x - center_log10))) + rng.normal(0, 0.03, n)
    grow = x > center_log10 + 2
    loss = np.where(grow, loss + np.expm1(4 * (x - center_log10 - 2)), loss)
    if tail == "nan":
        loss[-15:-10], loss[-10:] = np.inf, np.nan
    elif tail == "wild":  # exploded, then garbage that drops sharply after the divergence
        loss[-30:] = np.where(np.arange(30) % 2 == 0, 1e6, 1e-3)
    return lrs, loss


@pytest.mark.parametrize("center", [-5.0, -3.0, -1.5])
@pytest.mark.parametrize("tail", ["nan", "wild", "none"])
def test_suggest_lr_picks_the_steepest_descent(center, tail):
    lrs, loss = lr_curve(center, tail=tail)
    lr = P.suggest_lr(lrs, loss)
    assert abs(math.log10(lr) - center) < 0.4, (lr, center)
    assert lr in lrs


def test_suggest_lr_takes_lists_and_tensors(bk):
    lrs, loss = lr_curve(-4.0, n=80)
    assert P.suggest_lr(list(lrs), xn.tensor(loss, dtype="float64")) == P.suggest_lr(lrs, loss)


def test_suggest_lr_bad_input():
    lrs, loss = lr_curve()
    with pytest.raises(ValueError, match="differ in length: 200 and 199"):
        P.suggest_lr(lrs, loss[:-1])
    with pytest.raises(ValueError, match="strictly increasing"):
        P.suggest_lr(lrs[::-1], loss)
    with pytest.raises(ValueError, match="at least 3 finite losses"):
        P.suggest_lr([1e-3, 1e-2, 1e-1], [1.0, float("nan"), 0.5])
    with pytest.raises(ValueError, match="never decreases"):
        P.suggest_lr(lrs, np.linspace(1.0, 3.0, 200))


def test_plot_lr_range(mpl, tmp_path):
    lrs, loss = lr_curve()
    assert_png(P.plot_lr_range(lrs, loss, tmp_path / "lr.png", suggestion=True))
    assert_png(P.plot_lr_range(lrs[:60], loss[:60], tmp_path / "lr2.png", suggestion=3e-4))


# ---------------------------------------------------------------- loss surface, decision boundary

def test_plot_loss_surface_vectorized_with_path(mpl, tmp_path):
    calls = []

    def f(w, b):
        calls.append(np.shape(w))
        return (w - 1) ** 2 + 3 * (b + 0.5) ** 2

    path = [(-2.0, 2.0), (-1.0, 1.0), (0.0, 0.0), (0.8, -0.4)]
    assert_png(P.plot_loss_surface(f, tmp_path / "s.png", center=(0, 0), span=3, path_points=path, resolution=20))
    assert calls == [(20, 20)]  # one call on the whole grid


def test_plot_loss_surface_scalar_function(mpl, tmp_path):
    f = lambda w, b: math.log1p((w - 1) ** 2 + (b - 2) ** 2)  # noqa: E731  floats only
    assert_png(P.plot_loss_surface(f, tmp_path / "s.png", center=[1, 2], span=(1, 0.5), resolution=12,
                                   path_points=np.array([[0.2, 1.6], [1.0, 2.0]])))
    with pytest.raises(ValueError, match="span must be > 0"):
        P.plot_loss_surface(f, tmp_path / "s.png", center=(0, 0), span=0)


def test_plot_decision_boundary(mpl, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    seen = []

    def predict(a):
        seen.append((a.shape, a.dtype))
        return (a[:, 0] + a[:, 1] > 0).astype(np.int64)

    assert_png(P.plot_decision_boundary(predict, X, y, tmp_path / "db.png", resolution=50))
    assert seen == [((2500, 2), np.float32)]
    # scores (n, C) are reduced with argmax; tensors are accepted
    scores = lambda a: xn.tensor(np.stack([-a.sum(1), a.sum(1), 0 * a[:, 0]], 1))  # noqa: E731
    assert_png(P.plot_decision_boundary(scores, xn.tensor(X), list(y), tmp_path / "db2.png", resolution=30,
                                        class_names=["neg", "pos", "never"]))
    with pytest.raises(ValueError, match=r"X must have shape \(n, 2\), got \(60, 3\)"):
        P.plot_decision_boundary(predict, np.zeros((60, 3)), y, tmp_path / "x.png")
    with pytest.raises(ValueError, match="returned 1 values for 900 points"):
        P.plot_decision_boundary(lambda a: np.zeros(1), X, y, tmp_path / "x.png", resolution=30)


# ---------------------------------------------------------------- activations

def test_activation_derivatives_come_from_autograd():
    curves = {name: (x, f, df) for name, x, f, df in P._activation_curves(["sigmoid", "tanh", "relu"], points=41)}
    x, s, ds = curves["sigmoid"]
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(ds, s * (1 - s), rtol=1e-12)
    x, t, dt = curves["tanh"]
    np.testing.assert_allclose(dt, 1 - np.tanh(x) ** 2, rtol=1e-10, atol=1e-15)
    x, r, dr = curves["relu"]
    np.testing.assert_array_equal(dr[x != 0], (x[x != 0] > 0).astype(float))
    # every default activation that exists is differentiated; the derivative matches finite differences
    for name, x, f, df in P._activation_curves(points=81):
        num = np.gradient(f, x)
        keep = np.abs(x - np.round(x)) > 0.11  # away from the kinks at -1, 0, 1 (relu, hardtanh, ...)
        np.testing.assert_allclose(df[keep][1:-1], num[keep][1:-1], atol=0.02, err_msg=name)


def test_plot_activations(mpl, tmp_path):
    w, h = assert_png(P.plot_activations(tmp_path / "a.png", points=101))
    assert w > 1000 and h > 500  # every default activation: a grid of panels, four per row
    with xn.no_grad():  # the derivatives are still computed
        assert_png(P.plot_activations(tmp_path / "b.png", names=["tanh", lambda x: x * x], points=51))
    with pytest.raises(ValueError, match="no activation 'nope'.*available: sigmoid, tanh, relu"):
        P.plot_activations(tmp_path / "c.png", names=["nope"])


# ---------------------------------------------------------------- confusion matrix

def test_plot_confusion_matrix(mpl, tmp_path):
    cm = xn.tensor([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    assert_png(P.plot_confusion_matrix(cm, tmp_path / "cm.png", class_names=["a", "b", "c"]))


def test_plot_confusion_matrix_normalized_and_bad_input(mpl, tmp_path):
    assert_png(P.plot_confusion_matrix([[3, 1], [0, 0]], tmp_path / "cm.png", normalize=True))
    with pytest.raises(ValueError, match=r"square \(C, C\) matrix, got shape \(2, 3\)"):
        P.plot_confusion_matrix(np.zeros((2, 3)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="3 class names for 2 classes"):
        P.plot_confusion_matrix(np.eye(2), tmp_path / "x.png", class_names="abc")


# ---------------------------------------------------------------- without matplotlib

def test_missing_matplotlib_says_what_to_install(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    lrs, loss = lr_curve()
    calls = [lambda p: P.plot_history(HISTORY, p),
             lambda p: P.plot_lr_range(lrs, loss, p),
             lambda p: P.plot_loss_surface(lambda w, b: w * w + b * b, p, (0, 0), 1, resolution=5),
             lambda p: P.plot_decision_boundary(lambda a: a[:, 0] > 0, np.eye(2), [0, 1], p, resolution=5),
             lambda p: P.plot_activations(p, names=["relu"], points=5),
             lambda p: P.plot_confusion_matrix(np.eye(2), p)]
    for call in calls:
        with pytest.raises(ImportError, match=r"matplotlib is not installed: pip install 'xpnet\[plot\]'"):
            call(tmp_path / "x.png")
    assert not list(tmp_path.iterdir())
    assert P.suggest_lr(lrs, loss) > 0  # the pure function needs no matplotlib
