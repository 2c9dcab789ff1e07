"""Loss functions: MAE against MSE, a loss surface, cross-entropy, and every loss in xpnet.

A loss turns "how wrong are the predictions" into one number that gradient
descent can lower.

1. MAE (``L1Loss``) against MSE (``MSELoss``).  Three samples labelled
   [1, 1, 1]: predicting [1, 2, 3] costs |0| + |1| + |2| = 3 in absolute error
   and 0 + 1 + 4 = 5 in squared error; predicting [1, 3, 3] costs 4 and 8.
   Going from the first to the second prediction multiplies the absolute
   error by 4/3 = 1.33 but the squared error by 8/5 = 1.6: squaring punishes
   large errors more (and outliers pull an MSE fit harder).

2. The MSE of a linear regression y_hat = w x + b as a function of (w, b)
   is a bowl; its contour lines are ellipses around the best (w, b).
   Gradient descent walks down across them, perpendicular to each line.

3. Cross-entropy for a label y in {0, 1} and a predicted probability a:
   ``-log(a)`` when y = 1 (0 at a = 1, huge when a -> 0) and ``-log(1 - a)``
   when y = 0.  A confident wrong answer costs a lot; computed here with
   ``BCELoss(reduction="none")``.

4. Every loss class of ``xpnet.nn`` on one small example, next to the same
   formula written out in NumPy.

    python examples/loss_functions.py [--out out/examples]
"""

import argparse
import pathlib

import numpy as np

import xpnet as xn
import xpnet.plot
from xpnet import nn
from xpnet.nn import functional as F
from xpnet.plot import plot_loss_surface

# ---------------------------------------------------------------- 1. MAE and MSE

LABELS = [1.0, 1.0, 1.0]
PREDICTIONS = ([1.0, 2.0, 3.0], [1.0, 3.0, 3.0])


def mae_mse(prediction, labels=LABELS, reduction="sum"):
    a = xn.tensor(prediction, dtype="float64")
    y = xn.tensor(labels, dtype="float64")
    return nn.L1Loss(reduction=reduction)(a, y).item(), nn.MSELoss(reduction=reduction)(a, y).item()


# ---------------------------------------------------------------- 2. the loss surface

def regression_data(n=100, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 1))
    return x, 2.0 * x + 3.0 + rng.normal(0.0, 0.3, size=(n, 1))


def descent_path(x, y, start=(-1.0, -1.0), lr=0.2, steps=40):
    """The (w, b) of ``Linear(1, 1)`` after each gradient-descent step, from ``start``."""
    model = nn.Linear(1, 1, dtype="float64")
    model.load_state_dict({"weight": np.array([[start[0]]]), "bias": np.array([start[1]])})
    opt = xn.optim.SGD(model.parameters(), lr=lr)
    X, Y = xn.tensor(x, dtype="float64"), xn.tensor(y, dtype="float64")
    path = [start]
    for _ in range(steps):
        loss = F.mse_loss(model(X), Y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        path.append((model.weight.item(), model.bias.item()))
    return path


def mse_surface(x, y):
    """MSE(w, b) for NumPy grids ``w`` and ``b`` (one vectorized pass)."""
    xs, ys = x[:, 0], y[:, 0]
    return lambda w, b: np.mean((w[..., None] * xs + b[..., None] - ys) ** 2, axis=-1)


# ---------------------------------------------------------------- 3. cross-entropy

def cross_entropy_curves(points=199):
    """a in (0, 1) and the BCE for label 1 and for label 0, elementwise."""
    a = np.linspace(0.005, 0.995, points)
    bce = nn.BCELoss(reduction="none")
    return a, bce(_t(a), _t(np.ones(points))).numpy(), bce(_t(a), _t(np.zeros(points))).numpy()


def plot_cross_entropy(a, y1, y0, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(5.5, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(a, y1, label="y = 1: -log(a)")
    ax.plot(a, y0, label="y = 0: -log(1 - a)")
    ax.set_xlabel("predicted probability a"), ax.set_ylabel("loss"), ax.set_ylim(0, 5)
    ax.set_title("binary cross-entropy"), ax.legend(), ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


# ---------------------------------------------------------------- 4. every loss

def _t(v, dtype="float64"):
    return xn.tensor(v, dtype=dtype)


def _log_softmax(z):
    z = np.asarray(z)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


# one small example per kind of loss, as lists (for xpnet) and NumPy arrays (for the check)
REG_PRED, REG_TARGET = [2.5, 0.0, 2.0, 8.0], [3.0, -0.5, 2.0, 7.0]   # regression
PROBS, BIN_LABELS = [0.9, 0.2, 0.6], [1.0, 0.0, 0.0]                 # binary: probabilities, 0/1 labels
LOGITS, CLASSES = [[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], [0, 1]          # multi-class: scores, class indices
SOFT_TARGET = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]]                     # multi-class: target probabilities
SCORES, PM1 = [0.8, -0.3, 2.0, -1.5], [1.0, 1.0, -1.0, -1.0]         # margin: scores, -1/+1 labels

_pred, _target = np.array(REG_PRED), np.array(REG_TARGET)
_diff = _pred - _target
_prob, _label = np.array(PROBS), np.array(BIN_LABELS)
_log_p = _log_softmax(LOGITS)
_margin = np.array(SCORES) * np.array(PM1)
LOGIT_OF_PROBS = np.log(_prob / (1 - _prob))
LABEL_LISTS, MULTI_HOT = [[0, -1, -1], [1, 2, -1]], [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]  # multi-label targets
VARS, COUNTS = [0.5, 1.0, 2.0, 4.0], [1.0, 0.0, 3.0, 0.0]                            # variances, counts
_sig = 1 / (1 + np.exp(-np.array(LOGITS)))
_cos = [np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(LOGITS, SOFT_TARGET)]
_P = np.exp(_log_p)  # CTC: the two rows are two time steps of one sequence, class 0 the blank


def _dist(a, b):
    """PyTorch's pairwise_distance: ||a - b + 1e-6|| per row."""
    return np.linalg.norm(np.asarray(a) - np.asarray(b) + 1e-6, axis=1)

# name -> (what it is given, xpnet's value, the same formula in NumPy)
EXAMPLES = {
    "MSELoss": ("regression", lambda: nn.MSELoss()(_t(REG_PRED), _t(REG_TARGET)),
                lambda: np.mean(_diff ** 2)),
    "L1Loss": ("regression", lambda: nn.L1Loss()(_t(REG_PRED), _t(REG_TARGET)),
               lambda: np.mean(np.abs(_diff))),
    "MSLELoss": ("regression", lambda: nn.MSLELoss()(_t(REG_PRED), _t(REG_TARGET)),
                 lambda: np.mean((np.log1p(_pred) - np.log1p(_target)) ** 2)),
    "MAPELoss": ("regression", lambda: nn.MAPELoss()(_t(REG_PRED), _t(REG_TARGET)),
                 lambda: 100 * np.mean(np.abs(_diff) / np.abs(_target))),
    "HuberLoss": ("regression, delta=1", lambda: nn.HuberLoss()(_t(REG_PRED), _t(REG_TARGET)),
                  lambda: np.mean(np.where(np.abs(_diff) < 1, 0.5 * _diff ** 2, np.abs(_diff) - 0.5))),
    "SmoothL1Loss": ("regression, beta=0.5", lambda: nn.SmoothL1Loss(beta=0.5)(_t(REG_PRED), _t(REG_TARGET)),
                     lambda: np.mean(np.where(np.abs(_diff) < 0.5, 0.5 * _diff ** 2 / 0.5, np.abs(_diff) - 0.25))),
    "LogCoshLoss": ("regression", lambda: nn.LogCoshLoss()(_t(REG_PRED), _t(REG_TARGET)),
                    lambda: np.mean(np.log(np.cosh(_diff)))),
    "BCELoss": ("probabilities, 0/1 labels", lambda: nn.BCELoss()(_t(PROBS), _t(BIN_LABELS)),
                lambda: -np.mean(_label * np.log(_prob) + (1 - _label) * np.log(1 - _prob))),
    "BCEWithLogitsLoss": ("logits log(a/(1-a)), 0/1 labels",
                          lambda: nn.BCEWithLogitsLoss()(_t(LOGIT_OF_PROBS), _t(BIN_LABELS)),
                          lambda: -np.mean(_label * np.log(_prob) + (1 - _label) * np.log(1 - _prob))),
    "CrossEntropyLoss": ("logits, class indices", lambda: nn.CrossEntropyLoss()(_t(LOGITS), _t(CLASSES, "int64")),
                         lambda: -np.mean(_log_p[[0, 1], CLASSES])),
    "NLLLoss": ("log_softmax(logits), class indices",
                lambda: nn.NLLLoss()(F.log_softmax(_t(LOGITS), dim=1), _t(CLASSES, "int64")),
                lambda: -np.mean(_log_p[[0, 1], CLASSES])),
    "KLDivLoss": ("log_softmax(logits), probabilities, batchmean",
                  lambda: nn.KLDivLoss(reduction="batchmean")(F.log_softmax(_t(LOGITS), dim=1), _t(SOFT_TARGET)),
                  lambda: np.sum(np.array(SOFT_TARGET) * (np.log(SOFT_TARGET) - _log_p)) / 2),
    "HingeLoss": ("scores, -1/+1 labels", lambda: nn.HingeLoss()(_t(SCORES), _t(PM1)),
                  lambda: np.mean(np.maximum(0.0, 1.0 - _margin))),
    "SquaredHingeLoss": ("scores, -1/+1 labels", lambda: nn.SquaredHingeLoss()(_t(SCORES), _t(PM1)),
                         lambda: np.mean(np.maximum(0.0, 1.0 - _margin) ** 2)),
    "ExponentialLoss": ("scores, -1/+1 labels", lambda: nn.ExponentialLoss()(_t(SCORES), _t(PM1)),
                        lambda: np.mean(np.exp(-_margin))),
    "zero_one_loss": ("scores, -1/+1 labels (a metric)", lambda: F.zero_one_loss(_t(SCORES), _t(PM1)),
                      lambda: np.mean(np.sign(SCORES) != np.array(PM1))),
    "SoftMarginLoss": ("scores, -1/+1 labels", lambda: nn.SoftMarginLoss()(_t(SCORES), _t(PM1)),
                       lambda: np.mean(np.log1p(np.exp(-_margin)))),
    "MarginRankingLoss": ("scores vs 0, -1/+1 labels, margin=0.5",
                          lambda: nn.MarginRankingLoss(margin=0.5)(_t(SCORES), _t([0.0] * 4), _t(PM1)),
                          lambda: np.mean(np.maximum(0.0, 0.5 - _margin))),
    "HingeEmbeddingLoss": ("distances, -1/+1 labels", lambda: nn.HingeEmbeddingLoss()(_t(SCORES), _t(PM1)),
                           lambda: np.mean(np.where(np.array(PM1) > 0, SCORES, np.maximum(0.0, 1.0 - np.array(SCORES))))),
    "CosineEmbeddingLoss": ("logits vs soft targets, labels +1/-1",
                            lambda: nn.CosineEmbeddingLoss()(_t(LOGITS), _t(SOFT_TARGET), _t([1.0, -1.0])),
                            lambda: np.mean([1 - _cos[0], max(0.0, _cos[1])])),
    "MultiMarginLoss": ("logits, class indices", lambda: nn.MultiMarginLoss()(_t(LOGITS), _t(CLASSES, "int64")),
                        lambda: np.mean([sum(max(0.0, 1 - z[c] + z[i]) for i in range(3) if i != c) / 3
                                         for z, c in zip(LOGITS, CLASSES)])),
    "MultiLabelMarginLoss": ("logits, label lists ended by -1",
                             lambda: nn.MultiLabelMarginLoss()(_t(LOGITS), _t(LABEL_LISTS, "int64")),
                             lambda: np.mean([sum(max(0.0, 1 - (z[j] - z[i])) for j in js for i in range(3) if i not in js)
                                              / 3 for z, js in zip(LOGITS, ([0], [1, 2]))])),
    "MultiLabelSoftMarginLoss": ("logits, multi-hot labels",
                                 lambda: nn.MultiLabelSoftMarginLoss()(_t(LOGITS), _t(MULTI_HOT)),
                                 lambda: -np.mean(np.array(MULTI_HOT) * np.log(_sig) + (1 - np.array(MULTI_HOT))
                                                  * np.log(1 - _sig))),
    "TripletMarginLoss": ("anchor logits, soft targets, zeros",
                          lambda: nn.TripletMarginLoss()(_t(LOGITS), _t(SOFT_TARGET), _t(np.zeros((2, 3)))),
                          lambda: np.mean(np.maximum(0.0, _dist(LOGITS, SOFT_TARGET) - _dist(LOGITS, 0.0) + 1.0))),
    "TripletMarginWithDistanceLoss": ("the same, pairwise distance",
                                      lambda: nn.TripletMarginWithDistanceLoss()(_t(LOGITS), _t(SOFT_TARGET),
                                                                                 _t(np.zeros((2, 3)))),
                                      lambda: np.mean(np.maximum(0.0, _dist(LOGITS, SOFT_TARGET)
                                                                 - _dist(LOGITS, 0.0) + 1.0))),
    "GaussianNLLLoss": ("regression, variances", lambda: nn.GaussianNLLLoss()(_t(REG_PRED), _t(REG_TARGET), _t(VARS)),
                        lambda: np.mean(0.5 * (np.log(VARS) + _diff ** 2 / np.array(VARS)))),
    "PoissonNLLLoss": ("log-rates, counts", lambda: nn.PoissonNLLLoss()(_t(SCORES), _t(COUNTS)),
                       lambda: np.mean(np.exp(SCORES) - np.array(COUNTS) * np.array(SCORES))),
    "CTCLoss": ("2 steps of log_softmax(logits), target [1]",
                lambda: nn.CTCLoss()(_t(_log_p[:, None, :]), _t([[1]], "int64"), _t([2], "int64"), _t([1], "int64")),
                lambda: -np.log(_P[0, 1] * _P[1, 1] + _P[0, 0] * _P[1, 1] + _P[0, 1] * _P[1, 0])),  # paths 11, -1, 1-
}


def every_loss():
    """``{name: (xpnet value, NumPy value)}``, plus the loss classes with no example here."""
    table = {name: (float(xpnet_value().item()), float(numpy_value()))
             for name, (_, xpnet_value, numpy_value) in EXAMPLES.items()}
    missing = [name for name in nn.loss.__all__ if name not in EXAMPLES]
    return table, missing


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/examples")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plots = xpnet.plot.available()

    print(f"1. labels {LABELS}: absolute and squared errors summed (reduction='sum')")
    sums = [mae_mse(pred) for pred in PREDICTIONS]
    for pred, (mae, mse) in zip(PREDICTIONS, sums):
        print(f"   prediction {pred}: MAE sum {mae:g}, MSE sum {mse:g}")
    (mae1, mse1), (mae2, mse2) = sums
    print(f"   from the first to the second: MAE x {mae2 / mae1:.2f}, MSE x {mse2 / mse1:.2f}")

    print("2. MSE over (w, b) for y = 2x + 3 + noise, gradient descent from (-1, -1), lr 0.2")
    x, y = regression_data(seed=args.seed)
    path = descent_path(x, y)
    w_end, b_end = path[-1]
    print(f"   after {len(path) - 1} steps: w = {w_end:.4f}, b = {b_end:.4f}")
    if plots:
        center = (w_end, b_end)  # the minimum in the middle, the start near a corner
        span = (abs(w_end - path[0][0]) + 0.7, abs(b_end - path[0][1]) + 0.7)
        png = plot_loss_surface(mse_surface(x, y), out / "loss_surface.png", center, span, path_points=path)
        print(f"   plot: {png}")

    print("3. binary cross-entropy (BCELoss, reduction='none')")
    a, ce1, ce0 = cross_entropy_curves()
    for v in (0.1, 0.5, 0.9):
        i = int(np.argmin(np.abs(a - v)))
        print(f"   a = {a[i]:.2f}: y = 1 -> -log(a) = {ce1[i]:.4f}, y = 0 -> -log(1 - a) = {ce0[i]:.4f}")
    if plots:
        print(f"   plot: {plot_cross_entropy(a, ce1, ce0, out / 'cross_entropy.png')}")

    print("4. every loss on one small example (mean reduction unless said)")
    table, missing = every_loss()
    print(f"   {'loss':<30} {'input':<46} {'xpnet':>10} {'numpy':>10}")
    for name, (value, check) in table.items():
        print(f"   {name:<30} {EXAMPLES[name][0]:<46} {value:10.6f} {check:10.6f}")
    for name in missing:
        print(f"   {name:<30} (no example here yet)")
    return {"sums": sums, "path": path, "cross_entropy": (a, ce1, ce0), "table": table, "missing": missing}


if __name__ == "__main__":
    main()
