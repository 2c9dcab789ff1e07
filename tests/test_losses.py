"""Losses: PyTorch comparisons (values and gradients, float64), NumPy formulas for the
losses PyTorch lacks, gradient checks, worked numbers and bad input, on every backend."""

import math

import numpy as np
import pytest

import xpnet as xn
from xpnet import backend as B
from xpnet import nn
from xpnet.nn import functional as F

from conftest import to_np

RNG = np.random.default_rng(7)
REDUCTIONS = ["mean", "sum", "none"]


def t64(a, grad=False):
    return xn.tensor(np.asarray(a, dtype=np.float64), dtype="float64", requires_grad=grad)


def idx(a):
    return xn.tensor(np.asarray(a, dtype=np.int64))


def probs(*shape):
    return RNG.uniform(0.05, 0.95, size=shape)


def normal(*shape):
    return RNG.normal(size=shape)


def pm1(*shape):
    return RNG.choice([-1.0, 1.0], size=shape)


def away_from(c, *shape, gap=0.25):
    """Values at distance >= gap from the kink at c (for gradient checks of non-smooth losses)."""
    return c + RNG.uniform(gap, 2.0, size=shape) * RNG.choice([-1.0, 1.0], size=shape)


def simplex(*shape, axis=1):
    p = RNG.uniform(0.1, 1.0, size=shape)
    return p / p.sum(axis=axis, keepdims=True)


# ------------------------------------------------------- PyTorch comparisons

def _compare(xfn, tfn, x, t, reduction, kwargs=None, target_grad=False, rtol=1e-8):
    """Loss values and gradients (input, and target when asked) of xpnet and PyTorch agree."""
    torch = pytest.importorskip("torch")
    kwargs = kwargs or {}
    int_target = np.asarray(t).dtype.kind == "i"
    X = t64(x, grad=True)
    T = idx(t) if int_target else t64(t, grad=target_grad)
    xkw = {k: t64(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    out = xfn(X, T, reduction=reduction, **xkw)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(t) if int_target else torch.tensor(t, dtype=torch.float64, requires_grad=target_grad)
    ref = tfn(tx, tt, reduction=reduction, **tkw)
    np.testing.assert_allclose(to_np(out), ref.detach().numpy(), rtol=rtol, atol=1e-12)
    gw = RNG.uniform(0.5, 1.5, size=ref.shape)  # a non-uniform upstream gradient
    (out * t64(gw)).sum().backward()
    (ref * torch.tensor(gw)).sum().backward()
    np.testing.assert_allclose(to_np(X.grad), tx.grad.numpy(), rtol=rtol, atol=1e-12)
    if target_grad:
        np.testing.assert_allclose(to_np(T.grad), tt.grad.numpy(), rtol=rtol, atol=1e-12)


def _tf(name):
    torch = pytest.importorskip("torch")
    return getattr(torch.nn.functional, name)


ELEMENTWISE = {  # id -> (xpnet, torch name, input, target, kwargs, target requires grad)
    "mse": (F.mse_loss, "mse_loss", normal(4, 3), normal(4, 3), {}, True),
    "l1": (F.l1_loss, "l1_loss", normal(4, 3), normal(4, 3), {}, True),
    "huber": (F.huber_loss, "huber_loss", 2 * normal(4, 3), normal(4, 3), {}, True),
    "huber_delta": (F.huber_loss, "huber_loss", 2 * normal(4, 3), normal(4, 3), {"delta": 0.5}, True),
    "smooth_l1": (F.smooth_l1_loss, "smooth_l1_loss", 2 * normal(4, 3), normal(4, 3), {}, True),
    "smooth_l1_beta": (F.smooth_l1_loss, "smooth_l1_loss", 2 * normal(4, 3), normal(4, 3), {"beta": 0.5}, True),
    "smooth_l1_beta0": (F.smooth_l1_loss, "smooth_l1_loss", normal(4, 3), normal(4, 3), {"beta": 0.0}, True),
    "bce": (F.binary_cross_entropy, "binary_cross_entropy", probs(4, 3), probs(4, 3), {}, True),
    "bce_weight": (F.binary_cross_entropy, "binary_cross_entropy", probs(4, 3), probs(4, 3),
                   {"weight": RNG.uniform(0.5, 2, size=3)}, True),
    "bce_logits": (F.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits",
                   3 * normal(4, 3), probs(4, 3), {}, True),
    "bce_logits_weight": (F.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits",
                          3 * normal(4, 3), probs(4, 3), {"weight": RNG.uniform(0.5, 2, size=(4, 1))}, True),
    "bce_logits_pos_weight": (F.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits",
                              3 * normal(4, 3), probs(4, 3), {"pos_weight": RNG.uniform(0.5, 3, size=3)}, True),
    "bce_logits_both": (F.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits",
                        3 * normal(4, 3), probs(4, 3),
                        {"weight": RNG.uniform(0.5, 2, size=3), "pos_weight": RNG.uniform(0.5, 3, size=3)}, True),
    "kl_div": (F.kl_div, "kl_div", np.log(simplex(4, 3)), simplex(4, 3), {}, True),
    "kl_div_log_target": (F.kl_div, "kl_div", np.log(simplex(4, 3)), np.log(simplex(4, 3)),
                          {"log_target": True}, True),
}


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")  # torch's kl_div notice
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(ELEMENTWISE))
def test_elementwise_losses_match_torch(bk, case, reduction):
    xfn, tname, x, t, kw, tgrad = ELEMENTWISE[case]
    _compare(xfn, _tf(tname), x, t, reduction, kw, target_grad=tgrad)


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_batchmean_and_zero_target_match_torch(bk, log_target):
    x = np.log(simplex(4, 3))
    t = simplex(4, 3)
    if not log_target:
        t[0, 1] = 0.0  # 0 log 0 = 0
    else:
        t = np.log(t)
    # the target's gradient too: NaN at the zero target in both (PyTorch's xlogy rule)
    _compare(F.kl_div, _tf("kl_div"), x, t, "batchmean", {"log_target": log_target}, target_grad=True)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
def test_kl_div_0d_matches_torch(bk, reduction, log_target):
    """0-d input and target (PyTorch's ``scalar_`` samples): value, input and target gradients, for
    a positive and a zero target; nn.KLDivLoss the same; float64 gradient checks."""
    for target in ([0.35, -1.2] if log_target else [0.35, 0.0]):
        _compare(F.kl_div, _tf("kl_div"), np.array(-0.8), np.array(target), reduction,
                 {"log_target": log_target}, target_grad=True)
        _compare(lambda x, t, **kw: nn.KLDivLoss(**kw)(x, t), _tf("kl_div"), np.array(0.6), np.array(target),
                 reduction, {"log_target": log_target}, target_grad=True)
    fn = lambda x, t: F.kl_div(x, t, reduction=reduction, log_target=log_target)  # noqa: E731
    xn.gradcheck(fn, t64(np.array(-0.8), grad=True), t64(np.array(0.35), grad=True))
    xn.gradgradcheck(fn, t64(np.array(-0.8), grad=True), t64(np.array(0.35), grad=True))


W3 = np.array([0.3, 1.0, 2.5])
CLASS_CASES = {  # id -> (input, target, kwargs)
    "plain": (normal(4, 3), np.array([0, 2, 1, 1]), {}),
    "weight": (normal(4, 3), np.array([0, 2, 1, 1]), {"weight": W3}),
    "ignore_default": (normal(4, 3), np.array([0, -100, 2, -100]), {}),
    "ignore_in_range": (normal(4, 3), np.array([0, 1, 2, 1]), {"ignore_index": 1}),
    "weight_ignore": (normal(4, 3), np.array([0, 2, -1, 1]), {"weight": W3, "ignore_index": -1}),
    "smoothing": (normal(4, 3), np.array([0, 2, 1, 1]), {"label_smoothing": 0.2}),
    "smoothing_weight_ignore": (normal(4, 3), np.array([0, 2, -100, 1]),
                                {"label_smoothing": 0.3, "weight": W3}),
    "ncd": (normal(2, 3, 4), np.array([[0, 1, 2, 2], [1, -100, 0, 2]]), {}),
    "ncd_weight_smoothing": (normal(2, 3, 4), np.array([[0, 1, 2, 2], [1, 1, 0, 2]]),
                             {"weight": W3, "label_smoothing": 0.1}),
    "ncdd": (normal(2, 3, 2, 2), np.array([[[0, 1], [2, 2]], [[1, 0], [0, 2]]]), {"weight": W3}),
    "ncdd_ignore": (normal(2, 3, 2, 2), np.array([[[0, 1], [7, 2]], [[1, 0], [7, 7]]]), {"ignore_index": 7}),
    "unbatched": (normal(3), np.array(2), {}),
    "probs": (normal(4, 3), simplex(4, 3), {}),
    "probs_weight_smoothing": (normal(4, 3), simplex(4, 3), {"weight": W3, "label_smoothing": 0.2}),
    "probs_ncd": (normal(2, 3, 4), simplex(2, 3, 4), {"weight": W3}),
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CLASS_CASES))
def test_cross_entropy_matches_torch(bk, case, reduction):
    x, t, kw = CLASS_CASES[case]
    _compare(F.cross_entropy, _tf("cross_entropy"), x, t, reduction, kw,
             target_grad=np.asarray(t).dtype.kind == "f")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ["plain", "weight", "ignore_default", "ignore_in_range", "weight_ignore",
                                  "ncd", "ncdd", "unbatched"])
def test_nll_loss_matches_torch(bk, case, reduction):
    x, t, kw = CLASS_CASES[case]
    kw = {k: v for k, v in kw.items() if k != "label_smoothing"}
    logp = x - np.log(np.exp(x).sum(axis=1 if x.ndim > 1 else 0, keepdims=True))
    _compare(F.nll_loss, _tf("nll_loss"), logp, t, reduction, kw)


def test_cross_entropy_float32_matches_torch(bk):
    torch = pytest.importorskip("torch")
    x, y = normal(6, 5).astype(np.float32), np.array([0, 4, 2, 1, 3, 3])
    X = xn.tensor(x, dtype="float32", requires_grad=True)
    out = F.cross_entropy(X, idx(y), label_smoothing=0.1)
    out.backward()
    assert B.dtype_name(out.dtype) == "float32"
    tx = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(tx, torch.tensor(y), label_smoothing=0.1)
    ref.backward()
    np.testing.assert_allclose(to_np(out), ref.detach().numpy(), rtol=1e-4)
    np.testing.assert_allclose(to_np(X.grad), tx.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_extreme_values_stay_finite_and_match_torch(bk):
    # logits of +-1000, probabilities of exactly 0 and 1: no inf, no nan, same numbers as PyTorch
    _compare(F.cross_entropy, _tf("cross_entropy"),
             np.array([[1000.0, -1000.0, 0.0], [-5.0, 990.0, 1000.0], [-1000.0, -1000.0, -999.0], [0.0, 0.0, 0.0]]),
             np.array([1, 2, 0, 1]), "none")
    _compare(F.binary_cross_entropy_with_logits, _tf("binary_cross_entropy_with_logits"),
             np.array([-200.0, -30.0, 0.0, 40.0]), np.array([1.0, 0.0, 0.5, 1.0]), "none",
             {"pos_weight": np.array(2.0)}, target_grad=True)
    _compare(F.binary_cross_entropy, _tf("binary_cross_entropy"), np.array([0.0, 1e-60, 1.0, 0.0]),
             np.array([1.0, 1.0, 0.0, 0.0]), "none")  # log(1e-60) = -138 is clamped to -100 too
    out = F.log_cosh_loss(t64([1000.0, -1000.0]), t64([0.0, 0.0]), reduction="none")
    np.testing.assert_allclose(to_np(out), 1000.0 - math.log(2.0), rtol=1e-12)


# ----------------------------------------------------------------- modules

MODULES = {  # xpnet module -> (torch module name, kwargs, input, target)
    "MSELoss": ("MSELoss", {"reduction": "sum"}, normal(4, 3), normal(4, 3)),
    "L1Loss": ("L1Loss", {}, normal(4, 3), normal(4, 3)),
    "HuberLoss": ("HuberLoss", {"delta": 0.7}, normal(4, 3), normal(4, 3)),
    "SmoothL1Loss": ("SmoothL1Loss", {"beta": 0.5, "reduction": "none"}, normal(4, 3), normal(4, 3)),
    "BCELoss": ("BCELoss", {"weight": np.array([0.5, 2.0, 1.0])}, probs(4, 3), probs(4, 3)),
    "BCEWithLogitsLoss": ("BCEWithLogitsLoss",
                          {"weight": np.array([0.5, 2.0, 1.0]), "pos_weight": np.array([3.0, 0.5, 1.0])},
                          normal(4, 3), probs(4, 3)),
    "CrossEntropyLoss": ("CrossEntropyLoss", {"weight": W3, "ignore_index": 0, "label_smoothing": 0.1},
                         normal(4, 3), np.array([0, 1, 2, 2])),
    "NLLLoss": ("NLLLoss", {"weight": W3, "reduction": "sum"}, np.log(simplex(4, 3)), np.array([0, 1, 2, 2])),
    "KLDivLoss": ("KLDivLoss", {"reduction": "batchmean", "log_target": True},
                  np.log(simplex(4, 3)), np.log(simplex(4, 3))),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_modules_match_torch_and_load_its_state_dict(bk, name):
    torch = pytest.importorskip("torch")
    tname, kw, x, t = MODULES[name]
    tmod = getattr(torch.nn, tname)(**{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                                       for k, v in kw.items()})
    xmod = getattr(nn, name)(**{k: t64(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()})
    assert sorted(xmod.state_dict()) == sorted(tmod.state_dict())
    xmod.load_state_dict(tmod.state_dict())
    T = idx(t) if t.dtype.kind == "i" else t64(t)
    tt = torch.tensor(t)
    X = t64(x, grad=True)
    out = xmod(X, T)
    tx = torch.tensor(x, requires_grad=True)
    ref = tmod(tx, tt)
    np.testing.assert_allclose(to_np(out), ref.detach().numpy(), rtol=1e-8)
    out.sum().backward()
    ref.sum().backward()
    np.testing.assert_allclose(to_np(X.grad), tx.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_module_weight_given_as_list_is_cast_to_the_input_dtype(bk):
    loss = nn.CrossEntropyLoss(weight=[1.0, 2.0, 3.0])  # float32 buffer
    out = loss(t64(normal(2, 3)), idx([1, 2]))
    assert B.dtype_name(out.dtype) == "float64"


# --------------------------------------------------- losses without a torch twin

def _np_reduce(v, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](v)


NUMPY_CASES = {  # id -> (xpnet, numpy formula, input, target)
    "msle": (F.msle_loss, lambda p, y: (np.log1p(p) - np.log1p(y)) ** 2,
             RNG.uniform(-0.5, 3, size=(4, 3)), RNG.uniform(-0.5, 3, size=(4, 3))),
    "mape": (F.mape_loss, lambda p, y: 100 * np.abs(y - p) / np.maximum(np.abs(y), 1e-8),
             normal(4, 3), normal(4, 3)),
    "log_cosh": (F.log_cosh_loss, lambda p, y: np.log(np.cosh(p - y)), 3 * normal(4, 3), normal(4, 3)),
    "hinge": (F.hinge_loss, lambda p, y: np.maximum(0, 1 - y * p), 2 * normal(4, 3), pm1(4, 3)),
    "squared_hinge": (F.squared_hinge_loss, lambda p, y: np.maximum(0, 1 - y * p) ** 2, 2 * normal(4, 3), pm1(4, 3)),
    "exponential": (F.exponential_loss, lambda p, y: np.exp(-y * p), normal(4, 3), pm1(4, 3)),
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(NUMPY_CASES))
def test_losses_match_numpy_formula(bk, case, reduction):
    xfn, formula, x, t = NUMPY_CASES[case]
    out = xfn(t64(x), t64(t), reduction=reduction)
    np.testing.assert_allclose(to_np(out), _np_reduce(formula(x, t), reduction), rtol=1e-10, atol=1e-12)


def test_mape_guards_zero_targets(bk):
    out = F.mape_loss(t64([2.0, 1.5]), t64([0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(to_np(out), [100 * 2.0 / 1e-8, 50.0])
    out = F.mape_loss(t64([2.0]), t64([0.0]), eps=0.5)
    np.testing.assert_allclose(to_np(out), 400.0)


def test_labels_may_be_integers_for_margin_losses(bk):
    out = F.hinge_loss(t64([0.5, -2.0, 0.2]), idx([1, -1, -1]), reduction="sum")
    np.testing.assert_allclose(to_np(out), 0.5 + 0.0 + 1.2)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_zero_one_loss_on_logits_and_on_scores(bk, reduction):
    logits = normal(6, 3)
    y = np.array([0, 1, 2, 0, 1, 2])
    want = (logits.argmax(1) != y).astype(float)
    out = F.zero_one_loss(t64(logits), idx(y), reduction=reduction)
    np.testing.assert_allclose(to_np(out), _np_reduce(want, reduction))
    scores = np.array([0.3, -1.2, 0.0, -0.1, 2.0])
    labels = np.array([1, 1, -1, -1, -1])
    want = ((np.where(scores >= 0, 1, -1)) != labels).astype(float)  # pred >= 0 means +1
    np.testing.assert_allclose(to_np(F.zero_one_loss(t64(scores), idx(labels), reduction=reduction)),
                               _np_reduce(want, reduction))
    np.testing.assert_allclose(to_np(F.zero_one_loss(t64(scores), t64(labels), reduction=reduction)),
                               _np_reduce(want, reduction))


def test_zero_one_loss_ncd_logits_and_no_graph(bk):
    logits = normal(2, 3, 4)
    y = np.array([[0, 1, 2, 2], [1, 0, 0, 2]])
    X = t64(logits, grad=True)
    out = F.zero_one_loss(X, idx(y))
    np.testing.assert_allclose(to_np(out), np.mean(logits.argmax(1) != y))
    assert not out.requires_grad


# -------------------------------------------------------------- worked numbers

@pytest.mark.parametrize("pred, mae, mse", [([1.0, 2.0, 3.0], (1.0, 3.0), (5 / 3, 5.0)),
                                            ([1.0, 3.0, 3.0], (4 / 3, 4.0), (8 / 3, 8.0))])
def test_worked_numbers_mae_vs_mse(bk, pred, mae, mse):
    y = t64([1.0, 1.0, 1.0])
    p = t64(pred)
    assert to_np(F.l1_loss(p, y)) == pytest.approx(mae[0], rel=1e-12)
    assert to_np(F.l1_loss(p, y, reduction="sum")) == pytest.approx(mae[1], rel=1e-12)
    assert to_np(nn.MSELoss()(p, y)) == pytest.approx(mse[0], rel=1e-12)
    assert to_np(nn.MSELoss(reduction="sum")(p, y)) == pytest.approx(mse[1], rel=1e-12)


# ----------------------------------------------------------------- gradients

KINKED = np.array([[0.1, -0.2, 0.45], [0.9, -1.7, -0.6], [0.3, 2.0, -0.05], [1.1, -0.3, 0.7]])  # none at +-0.5
PM1 = pm1(4, 3)  # numpy labels: moved to the backend under test by the loss
PROBS, SIMPLEX = probs(4, 3), simplex(4, 3)
GRADCHECK = {  # id -> (loss of tensors, inputs); non-smooth losses get inputs away from their kinks
    "mse": (lambda x, t: F.mse_loss(x, t), [normal(4, 3), normal(4, 3)]),
    "l1": (lambda x, t: F.l1_loss(x, t, reduction="sum"), [away_from(0, 4, 3), np.zeros((4, 3))]),
    "msle": (F.msle_loss, [RNG.uniform(0, 2, (4, 3)), RNG.uniform(0, 2, (4, 3))]),
    "mape": (F.mape_loss, [away_from(0, 4, 3) + 5, away_from(0, 4, 3)]),
    "huber": (lambda x, t: F.huber_loss(x, t, delta=0.5, reduction="none"),
              [KINKED, np.zeros((4, 3))]),
    "smooth_l1": (lambda x, t: F.smooth_l1_loss(x, t, beta=0.5),
                  [KINKED, np.zeros((4, 3))]),
    "log_cosh": (F.log_cosh_loss, [3 * normal(4, 3), normal(4, 3)]),
    "bce": (lambda p, t: F.binary_cross_entropy(p, t, weight=t64([0.5, 2.0, 1.0])), [probs(4, 3), probs(4, 3)]),
    "bce_logits": (lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=t64([0.5, 2.0, 1.0])),
                   [3 * normal(4, 3), probs(4, 3)]),
    "ce_indices": (lambda x: F.cross_entropy(x, idx([0, 2, -100, 1]), weight=t64(W3), label_smoothing=0.1),
                   [normal(4, 3)]),
    "ce_ncd": (lambda x: F.cross_entropy(x, idx([[0, 2, 1, 1], [1, 1, 0, 2]]), reduction="none"), [normal(2, 3, 4)]),
    "ce_probs": (lambda x, t: F.cross_entropy(x, t, weight=t64(W3), label_smoothing=0.2),
                 [normal(4, 3), simplex(4, 3)]),
    "nll": (lambda x: F.nll_loss(x, idx([0, 2, 1, -100]), weight=t64(W3)), [normal(4, 3)]),
    "kl_div": (lambda x, t: F.kl_div(x, t, reduction="batchmean"), [normal(4, 3), simplex(4, 3)]),
    "kl_div_log_target": (lambda x, t: F.kl_div(x, t, log_target=True), [normal(4, 3), normal(4, 3)]),
    "hinge": (lambda x: F.hinge_loss(x, PM1), [away_from(0, 4, 3) + 1]),
    "squared_hinge": (lambda x: F.squared_hinge_loss(x, PM1), [away_from(0, 4, 3) + 1]),
    "exponential": (lambda x: F.exponential_loss(x, PM1), [normal(4, 3)]),
    # constant targets given as NumPy arrays (moved to the backend; the loss sees a tensor and a raw array)
    "bce_logits_array_target": (lambda x: F.binary_cross_entropy_with_logits(x, PROBS, weight=t64([1.0, 2.0, 0.5])),
                                [3 * normal(4, 3)]),
    "ce_probs_array_target": (lambda x: F.cross_entropy(x, SIMPLEX, reduction="none"), [normal(4, 3)]),
    "bce_array_target": (lambda p: F.binary_cross_entropy(p, PROBS), [probs(4, 3)]),
}

GRADGRAD = ["mse", "log_cosh", "bce", "bce_logits", "ce_indices", "ce_ncd", "ce_probs", "kl_div",
            "bce_logits_array_target", "ce_probs_array_target", "bce_array_target"]


@pytest.mark.parametrize("case", list(GRADCHECK))
def test_gradcheck(bk, case):
    fn, inputs = GRADCHECK[case]
    assert xn.gradcheck(fn, *[t64(a) for a in inputs])


@pytest.mark.parametrize("case", GRADGRAD)
def test_gradgradcheck(bk, case):
    fn, inputs = GRADCHECK[case]
    assert xn.gradgradcheck(fn, *[t64(a) for a in inputs])


def test_gradcheck_detects_a_wrong_gradient(bk):
    # the checks above can fail: a deliberately wrong rule is caught
    class Wrong(xn.Function):
        def forward(self, xp, x):
            return x * x

        def backward(self, g, y, x):
            return g * x,
    with pytest.raises(xn.GradcheckError):
        xn.gradcheck(lambda x: F.mse_loss(Wrong()(x), t64([0.0, 0.0])), t64([0.5, -1.0]))


def test_targets_as_lists_and_arrays_and_raw_inputs(bk):
    x = normal(4, 3)
    want = F.cross_entropy(t64(x), idx([0, 2, 1, 1]))
    np.testing.assert_allclose(to_np(F.cross_entropy(t64(x), [0, 2, 1, 1])), to_np(want), rtol=1e-12)
    np.testing.assert_allclose(to_np(F.cross_entropy(t64(x), np.array([0, 2, 1, 1]))), to_np(want), rtol=1e-12)
    raw = F.cross_entropy(bk.asarray(x, "float64"), bk.asarray([0, 2, 1, 1]))  # arrays in, an array out
    assert not isinstance(raw, xn.Tensor)
    np.testing.assert_allclose(to_np(raw), to_np(want), rtol=1e-12)
    # a raw prediction with a target that needs a gradient: d/dt mean((x - t)^2) = -2 (x - t) / n
    t = t64(x + 1.0, grad=True)
    F.mse_loss(bk.asarray(x, "float64"), t).backward()
    np.testing.assert_allclose(to_np(t.grad), np.full((4, 3), 2.0 / 12), rtol=1e-12)


def test_float32_input_with_float64_target_and_weight_gives_float32(bk):
    x = xn.tensor(normal(4, 3), dtype="float32", requires_grad=True)
    out = F.binary_cross_entropy_with_logits(x, t64(probs(4, 3)), pos_weight=t64([1.0, 2.0, 3.0]))
    out.backward()
    assert B.dtype_name(out.dtype) == "float32" and B.dtype_name(x.grad.dtype) == "float32"


def test_cross_entropy_is_one_fused_function(bk):
    X = t64(normal(4, 3), grad=True)
    out = F.cross_entropy(X, idx([0, 1, 2, 1]))
    assert out.creator.inputs[0] is X  # logits go straight into the one Function that gives the loss


@pytest.mark.parametrize("call", [
    lambda: F.cross_entropy(t64(normal(4, 3), grad=True), idx([0, 1, 2, -100])),
    lambda: F.nll_loss(t64(normal(4, 3), grad=True), idx([0, 1, 2, 0])),
    lambda: F.binary_cross_entropy(t64(probs(4), grad=True), t64(probs(4))),
    lambda: F.msle_loss(t64(probs(4), grad=True), t64(probs(4))),
    lambda: F.hinge_loss(t64(normal(4), grad=True), t64(pm1(4))),
    lambda: F.mse_loss(t64(normal(4), grad=True), t64(normal(4))),
    lambda: F.cross_entropy(t64(normal(4, 3), grad=True), t64(simplex(4, 3))),
    lambda: F.binary_cross_entropy_with_logits(t64(normal(4), grad=True), t64(probs(4))),
])
def test_no_device_to_host_read_on_an_accelerator(bk, monkeypatch, call):
    """With the device taken for a GPU, data checks are queued, never read during the step."""
    count = [0]
    real = B._host_copy

    def counting(x):
        count[0] += 1
        return real(x)
    monkeypatch.setattr(B.arrays, "_host_copy", counting)
    monkeypatch.setattr(B, "device_name", lambda d: "cuda:0")
    monkeypatch.setattr(B.select, "device_name", lambda d: "cuda:0")
    loss = call()
    loss.backward()
    assert count[0] == 0
    B._pending_checks.clear()


# ------------------------------------------------------------------ bad input

ALL_LOSSES = {  # functional, a valid (input, target)
    "mse_loss": (F.mse_loss, normal(3), normal(3)),
    "l1_loss": (F.l1_loss, normal(3), normal(3)),
    "msle_loss": (F.msle_loss, probs(3), probs(3)),
    "mape_loss": (F.mape_loss, normal(3), normal(3)),
    "huber_loss": (F.huber_loss, normal(3), normal(3)),
    "smooth_l1_loss": (F.smooth_l1_loss, normal(3), normal(3)),
    "log_cosh_loss": (F.log_cosh_loss, normal(3), normal(3)),
    "binary_cross_entropy": (F.binary_cross_entropy, probs(3), probs(3)),
    "binary_cross_entropy_with_logits": (F.binary_cross_entropy_with_logits, normal(3), probs(3)),
    "kl_div": (F.kl_div, normal(3), probs(3)),
    "hinge_loss": (F.hinge_loss, normal(3), pm1(3)),
    "squared_hinge_loss": (F.squared_hinge_loss, normal(3), pm1(3)),
    "exponential_loss": (F.exponential_loss, normal(3), pm1(3)),
    "zero_one_loss": (F.zero_one_loss, normal(3), pm1(3)),
}


@pytest.mark.parametrize("name", list(ALL_LOSSES) + ["cross_entropy", "nll_loss"])
def test_unknown_reduction(bk, name):
    fn, x, t = ALL_LOSSES.get(name, (getattr(F, name), normal(2, 3), np.array([0, 1])))
    T = idx(t) if t.dtype.kind == "i" else t64(t)
    with pytest.raises(ValueError, match=f"{name}: unknown reduction 'avg'"):
        fn(t64(x), T, reduction="avg")


@pytest.mark.parametrize("name", [n for n in nn.loss.__all__])
def test_module_unknown_reduction(name):
    with pytest.raises(ValueError, match=f"{name}: unknown reduction 'avg'.*'mean'"):
        getattr(nn, name)(reduction="avg")


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_shape_mismatch_names_both_shapes(bk, name):
    fn, x, t = ALL_LOSSES[name]
    with pytest.raises(ValueError, match=r"input shape \(3, 1\) and target shape \(3,\)"):
        fn(t64(x[:, None]), t64(t))


def test_integer_input_is_refused(bk):
    with pytest.raises(TypeError, match="mse_loss: input must be floating point, got int64"):
        F.mse_loss(idx([1, 2]), t64([1.0, 2.0]))


@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss, F.zero_one_loss])
@pytest.mark.parametrize("bad", [3, 7, -1, -101])
def test_class_index_out_of_range(bk, fn, bad):
    with pytest.raises(IndexError, match=f"target class.*index {bad} is out of range: expected 0 <= index < 3"):
        fn(t64(normal(3, 3)), idx([0, bad, 1]))
        B.flush_checks()  # deferred on an accelerator: raised at the next read


def test_class_index_out_of_range_in_ncd_input(bk):
    with pytest.raises(IndexError, match="index 5 is out of range"):
        F.cross_entropy(t64(normal(2, 3, 4)), idx([[0, 1, 1, 1], [5, 2, 0, 0]]))
        B.flush_checks()


@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss, F.zero_one_loss])
def test_float_labels_where_indices_are_expected(bk, fn):
    with pytest.raises(TypeError, match=r"target of shape \(3,\) is read as class indices.*got float64"):
        fn(t64(normal(3, 4)), t64([0.0, 1.0, 2.0]))


def test_integer_labels_where_probabilities_are_expected(bk):
    with pytest.raises(TypeError, match="cross_entropy: target must hold floating-point probabilities, got int64"):
        F.cross_entropy(t64(normal(2, 3)), idx([[0, 1, 0], [1, 0, 0]]))
    for fn in (F.binary_cross_entropy, F.binary_cross_entropy_with_logits, F.kl_div):
        with pytest.raises(TypeError, match="target must hold floating-point probabilities, got int64"):
            fn(t64(probs(3)), idx([0, 1, 1]))


@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss])
def test_class_target_shape_mismatch(bk, fn):
    with pytest.raises(ValueError, match=r"input shape \(4, 3\) and target shape \(3,\).*shape \(4,\)"):
        fn(t64(normal(4, 3)), idx([0, 1, 2]))
    with pytest.raises(ValueError, match=r"input must have a class axis.*got shape \(\)"):
        fn(t64(1.0), idx(0))


@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss])
def test_class_weight_shape(bk, fn):
    with pytest.raises(ValueError, match=r"weight has shape \(4,\), expected \(3,\)"):
        fn(t64(normal(2, 3)), idx([0, 1]), weight=t64([1.0, 1.0, 1.0, 1.0]))


def test_label_smoothing_range(bk):
    with pytest.raises(ValueError, match="label_smoothing must be in \\[0, 1\\], got 1.5"):
        F.cross_entropy(t64(normal(2, 3)), idx([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        nn.CrossEntropyLoss(label_smoothing=-0.1)


@pytest.mark.parametrize("x, t, what, lo, hi", [([0.2, 1.5, 0.5], [0.0, 1.0, 1.0], "input", 0.2, 1.5),
                                                ([0.2, -0.1, 0.5], [0.0, 1.0, 1.0], "input", -0.1, 0.5),
                                                ([0.2, 0.3, 0.5], [0.0, 2.0, 1.0], "target", 0, 2)])
def test_bce_probabilities_outside_0_1(bk, x, t, what, lo, hi):
    with pytest.raises(ValueError, match=rf"binary_cross_entropy: {what} must hold probabilities in \[0, 1\], "
                                         rf"found values in \[{lo}, {hi}\]"):
        nn.BCELoss()(t64(x), t64(t))
        B.flush_checks()


def test_bce_nan_input_is_refused(bk):
    with pytest.raises(ValueError, match="probabilities in"):
        F.binary_cross_entropy(t64([0.2, math.nan]), t64([0.0, 1.0]))
        B.flush_checks()


@pytest.mark.parametrize("fn", [F.binary_cross_entropy, F.binary_cross_entropy_with_logits])
def test_bce_weight_must_broadcast(bk, fn):
    with pytest.raises(ValueError, match=r"weight of shape \(3,\) does not broadcast to the input's shape \(2, 2\)"):
        fn(t64(probs(2, 2)), t64(probs(2, 2)), weight=t64([1.0, 2.0, 3.0]))
    if fn is F.binary_cross_entropy_with_logits:
        with pytest.raises(ValueError, match=r"pos_weight of shape \(2, 2, 2\) does not broadcast"):
            fn(t64(probs(2, 2)), t64(probs(2, 2)), pos_weight=t64(np.ones((2, 2, 2))))


@pytest.mark.parametrize("fn", [F.hinge_loss, F.squared_hinge_loss, F.exponential_loss, F.zero_one_loss])
@pytest.mark.parametrize("labels", [[1.0, 0.0, -1.0], [1, 2, -1], [0.5, 1.0, 1.0]])
def test_margin_labels_must_be_plus_minus_one(bk, fn, labels):
    T = idx(labels) if isinstance(labels[1], int) else t64(labels)
    with pytest.raises(ValueError, match=r"labels must be -1 or \+1.*2 \* y - 1"):
        fn(t64(normal(3)), T)
        B.flush_checks()


@pytest.mark.parametrize("x, t, what", [([0.5, -1.0], [0.0, 1.0], "input"), ([0.5, 1.0], [-2.0, 1.0], "target")])
def test_msle_values_must_exceed_minus_one(bk, x, t, what):
    with pytest.raises(ValueError, match=rf"msle_loss: {what} must be > -1 .*found a minimum of -[12]"):
        nn.MSLELoss()(t64(x), t64(t))
        B.flush_checks()


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="delta must be > 0"):
        nn.HuberLoss(delta=0.0)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        nn.SmoothL1Loss(beta=-1.0)
    with pytest.raises(ValueError, match="eps must be > 0"):
        F.mape_loss(t64([1.0]), t64([1.0]), eps=0.0)
    with pytest.raises(ValueError, match="delta must be > 0"):
        F.huber_loss(t64([1.0]), t64([1.0]), delta=-1.0)


@pytest.mark.parametrize("kw", [{}, {"ignore_index": 1}, {"weight": W3}, {"label_smoothing": 0.1}],
                         ids=["plain", "ignore_absent", "weight", "smoothing"])
def test_cross_entropy_with_minus_inf_logits_stays_finite(bk, kw):
    """A masked (-inf) logit off the target adds nothing: no 0 * inf = nan in picking the target."""
    torch = pytest.importorskip("torch")
    x = normal(3, 3)
    x[0, 2] = x[2, 1] = -np.inf
    y = np.array([0, 2, 0])
    if "label_smoothing" in kw:  # smoothing spreads mass onto the masked class: PyTorch gives inf too
        x[0, 2] = x[2, 1] = -30.0
    X = t64(x, grad=True)
    out = F.cross_entropy(X, idx(y), **{k: (t64(v) if k == "weight" else v) for k, v in kw.items()})
    out.backward()
    tx = torch.tensor(x, requires_grad=True)
    tkw = {k: (torch.tensor(v) if k == "weight" else v) for k, v in kw.items()}
    ref = torch.nn.functional.cross_entropy(tx, torch.tensor(y), **tkw)
    ref.backward()
    assert np.isfinite(to_np(out)) and np.all(np.isfinite(to_np(X.grad)))
    np.testing.assert_allclose(to_np(out), ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(to_np(X.grad), tx.grad.numpy(), rtol=1e-10, atol=1e-15)
