"""CosineEmbedding, MarginRanking, HingeEmbedding, MultiMargin, MultiLabelMargin,
MultiLabelSoftMargin, SoftMargin, TripletMargin, TripletMarginWithDistance, GaussianNLL,
PoissonNLL and CTC losses: PyTorch's module_db and op_db samples, gradient checks on every
backend, CTC's blank and zero_infinity, bad input."""

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from conftest import to_np
from torch_samples import check_module_db, check_op_db

RNG = np.random.default_rng(9)

MODULES = ["CosineEmbeddingLoss", "MarginRankingLoss", "HingeEmbeddingLoss", "MultiMarginLoss",
           "MultiLabelMarginLoss", "MultiLabelSoftMarginLoss", "SoftMarginLoss", "GaussianNLLLoss",
           "PoissonNLLLoss", "CTCLoss"]

JAX_MODULES = ("MultiLabelMarginLoss", "GaussianNLLLoss")  # indices and targets; broadcasting variances


@pytest.mark.parametrize("name", MODULES)
def test_module_db(bk, name):
    if bk.name == "jax" and name == "CTCLoss":
        pytest.skip("jax: CTC's 50 time steps compile op by op; test_ctc_gradcheck covers it")
    if bk.name == "jax" and name not in JAX_MODULES:
        pytest.skip(f"jax: {' and '.join(JAX_MODULES)} only (each op compiles): the losses are one code on every "
                    "backend, and test_gradchecks checks each of them on jax")
    # CTC: the first 4 samples hold the 4 ways to give targets and lengths (op_db has the rest);
    # array_api_strict, the slowest op by op: the first 2
    n = 1 if bk.name == "jax" else (({"array_api_strict": 2}.get(bk.name, 4)) if name == "CTCLoss" else None)
    assert check_module_db(name, max_samples=n, prep=_ctc_prep(name)) > 0


def _ctc_prep(name):
    """CTC: PyTorch's gradient with respect to log_probs assumes they come from a log_softmax (it
    is the gradient with respect to the logits); xpnet's is the exact one (docs/pytorch-differences.md).
    Both agree on the logits: the samples go through a log_softmax first."""
    return (lambda Fn, x: Fn.log_softmax(x, -1)) if name in ("CTCLoss", "ctc_loss") else None


OPS = ["cosine_embedding_loss", "margin_ranking_loss", "hinge_embedding_loss", "multi_margin_loss",
       "multilabel_margin_loss", "multilabel_soft_margin_loss", "soft_margin_loss", "triplet_margin_loss",
       "triplet_margin_with_distance_loss", "gaussian_nll_loss", "poisson_nll_loss", "ctc_loss"]


@pytest.mark.parametrize("name", OPS)
def test_op_db(bk, name):
    if bk.name == "jax":
        pytest.skip("jax: covered by the module samples and the gradient checks")
    if name == "ctc_loss" and bk.name != "numpy":
        pytest.skip("ctc_loss's op_db samples (T=50, N=16) take minutes op by op: numpy only; the other "
                    "backends run the module samples and the gradient check")
    assert check_op_db(f"nn.functional.{name}", getattr(F, name), prep=_ctc_prep(name)) > 0


def t64(a):
    return xn.tensor(a, dtype="float64")


def test_gradchecks(bk):
    x1, x2 = t64(RNG.standard_normal((3, 4))), t64(RNG.standard_normal((3, 4)))
    y = xn.tensor([1.0, -1.0, 1.0], dtype="float64")
    assert xn.gradcheck(lambda a, b: F.cosine_embedding_loss(a, b, y, margin=-0.5), x1, x2)
    s1, s2 = t64(RNG.standard_normal(3)), t64(RNG.standard_normal(3))
    assert xn.gradcheck(lambda a, b: F.margin_ranking_loss(a, b, y, margin=0.1), s1, s2)
    assert xn.gradcheck(lambda a: F.hinge_embedding_loss(a, xn.tensor([[1, -1, 1, -1]] * 3), margin=5.0), x1)
    c = xn.tensor([0, 3, 1], dtype="int64")
    assert xn.gradcheck(lambda a: F.multi_margin_loss(a, c, p=2, margin=3.0, weight=[1.0, 2.0, 0.5, 1.0]), x1)
    ml = xn.tensor([[0, 2, -1, 1], [3, -1, 0, 0], [1, 2, 3, 0]], dtype="int64")
    assert xn.gradcheck(lambda a: F.multilabel_margin_loss(a * 0.1, ml), x1)
    bits = t64(RNG.integers(0, 2, (3, 4)))
    assert xn.gradcheck(lambda a: F.multilabel_soft_margin_loss(a, bits), x1)
    signs = xn.tensor(np.sign(RNG.standard_normal((3, 4))))
    assert xn.gradcheck(lambda a: F.soft_margin_loss(a, signs), x1)
    n3 = t64(RNG.standard_normal((3, 4)))
    assert xn.gradcheck(lambda a, p, n: F.triplet_margin_loss(a, p, n, margin=4.0, swap=True), x1, x2, n3)
    assert xn.gradcheck(lambda a, p, n: F.triplet_margin_with_distance_loss(
        a, p, n, distance_function=lambda u, v: 1.0 - F.cosine_similarity(u, v), margin=2.0), x1, x2, n3)
    v = t64(RNG.uniform(0.5, 2.0, (3, 1)))
    assert xn.gradcheck(lambda a, b, v: F.gaussian_nll_loss(a, b, v, full=True), x1, x2, v)
    counts = t64(RNG.uniform(0, 3, (3, 4)))
    assert xn.gradcheck(lambda a, b: F.poisson_nll_loss(a, b, full=True), x1, counts)
    assert xn.gradcheck(lambda a: F.poisson_nll_loss(a, counts, log_input=False), t64(RNG.uniform(0.5, 2, (3, 4))))


def _ctc_case():
    lp = RNG.standard_normal((6, 2, 4))
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    return lp, [[1, 2, 2], [3, 1, 0]], [6, 5], [3, 2]


def test_ctc_gradcheck(bk):
    lp, tg, il, tl = _ctc_case()
    lp, tg, il, tl = lp[:4, 1:], [[3, 1]], [4], [2]  # small: 4 steps, one sample (jax compiles each op)
    targets = xn.tensor(tg, dtype="int64")
    assert xn.gradcheck(lambda a: F.ctc_loss(a, targets, il, tl, reduction="sum"), t64(lp))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_ctc_blank_zero_infinity_match_torch(bk, reduction):
    torch = pytest.importorskip("torch")
    if bk.name == "jax" and reduction == "none":
        pytest.skip("jax: one case")
    lp, tg, il, tl = _ctc_case()
    # sample 1 cannot align: 3 labels with a repeat need 4 frames, it has 3
    il = [6, 3]
    tg2, tl2 = [[1, 2, 2], [3, 3, 1]], [3, 3]
    for zero_inf in (False, True):  # gradients compared on the logits (see _ctc_prep)
        t = torch.tensor(lp, requires_grad=True)
        tl_ = torch.nn.functional.ctc_loss(t.log_softmax(-1), torch.tensor(tg2), il, tl2, blank=0,
                                           reduction=reduction, zero_infinity=zero_inf)
        x = xn.tensor(lp, dtype="float64", requires_grad=True)
        xl = nn.CTCLoss(blank=0, reduction=reduction, zero_infinity=zero_inf)(
            F.log_softmax(x, -1), xn.tensor(tg2, dtype="int64"), il, tl2)
        np.testing.assert_allclose(to_np(xl), tl_.detach().numpy(), rtol=1e-10)
        if zero_inf:
            tl_.sum().backward()
            xl.sum().backward()
            assert np.all(np.isfinite(to_np(x.grad)))
            np.testing.assert_allclose(to_np(x.grad), t.grad.numpy(), rtol=1e-9, atol=1e-12)
    t = torch.tensor(lp, requires_grad=True)
    want = torch.nn.functional.ctc_loss(t, torch.tensor(tg), [6, 5], tl)
    np.testing.assert_allclose(to_np(F.ctc_loss(t64(lp), xn.tensor(tg, dtype="int64"), [6, 5], tl)),
                               want.detach().numpy(), rtol=1e-10)


def test_ctc_other_blank_matches_torch(bk):
    torch = pytest.importorskip("torch")
    lp, _, il, _ = _ctc_case()
    tg, tl = [[0, 1, 1], [2, 0, 0]], [3, 1]  # blank = 3, the last class
    want = torch.nn.functional.ctc_loss(torch.tensor(lp), torch.tensor(tg), il, tl, blank=3, reduction="none")
    got = F.ctc_loss(t64(lp), xn.tensor(tg, dtype="int64"), il, tl, blank=3, reduction="none")
    np.testing.assert_allclose(to_np(got), want.numpy(), rtol=1e-10)


def test_bad_input(bk):
    x = t64(RNG.standard_normal((3, 4)))
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        nn.MultiMarginLoss(p=3)
    with pytest.raises(ValueError, match="margin must be greater than 0"):
        nn.TripletMarginLoss(margin=0.0)
    with pytest.raises(ValueError, match="var has shape"):
        F.gaussian_nll_loss(x, x, t64(np.ones((2, 4))))
    with pytest.raises(ValueError, match="negative"):
        F.gaussian_nll_loss(x, x, t64(-np.ones((3, 4))))
    with pytest.raises(ValueError, match="target has shape"):
        F.soft_margin_loss(x, t64(np.ones(3)))
    with pytest.raises(ValueError, match="blank=5"):
        F.ctc_loss(t64(np.zeros((4, 1, 3))), xn.tensor([[1]], dtype="int64"), [4], [1], blank=5)
    with pytest.raises(ValueError, match="target_lengths sum"):
        F.ctc_loss(t64(np.zeros((4, 2, 3))), xn.tensor([1, 2, 1], dtype="int64"), [4, 4], [1, 1])
    with pytest.raises(ValueError, match="reduction"):
        nn.CTCLoss(reduction="avg")


def test_linear_cross_entropy_module_db(bk):
    """LinearCrossEntropyLoss (PyTorch 2.13): its module_db samples, every 20th of 857 on numpy (the
    module sweep runs every 6th; all pass with XPNET_FULL_SAMPLES=1), two elsewhere."""
    if bk.name == "jax":
        pytest.skip("jax: test_linear_cross_entropy_gradcheck runs it (each shape compiles)")
    n, step = (None, 20) if bk.name == "numpy" else (2, 1)
    assert check_module_db("LinearCrossEntropyLoss", max_samples=n, step=step) > 0


def test_linear_cross_entropy_gradcheck(bk):
    x, w, b = t64(RNG.standard_normal((3, 4))), t64(RNG.standard_normal((5, 2, 4))), t64(RNG.standard_normal((5, 2)))
    y = xn.tensor([[0, 4], [2, 2], [1, 3]], dtype="int64")  # a K=1-dimensional loss: logits (3, 5, 2)
    assert xn.gradcheck(lambda x, w, b: F.linear_cross_entropy(x, w, y, linear_bias=b, label_smoothing=0.1), x, w, b)
    p = t64(RNG.dirichlet(np.ones(5), size=(3, 2)).transpose(0, 2, 1))  # class probabilities (3, 5, 2)
    assert xn.gradcheck(lambda x, w: F.linear_cross_entropy(x, w, p, reduction="sum"), x, w)


def test_linear_cross_entropy_bad_input(bk):
    x, w = t64(np.zeros((3, 4))), t64(np.zeros((5, 4)))
    y = xn.tensor([0, 1, 2], dtype="int64")
    with pytest.raises(ValueError, match="input has 4 features"):
        F.linear_cross_entropy(x, t64(np.zeros((5, 3))), y)
    with pytest.raises(ValueError, match=r"linear_bias must have shape \(5,\)"):
        F.linear_cross_entropy(x, w, y, linear_bias=t64(np.zeros(4)))
    with pytest.raises(ValueError, match="needs batched input"):
        F.linear_cross_entropy(t64(np.zeros(4)), t64(np.zeros((5, 2, 4))), xn.tensor([0, 1], dtype="int64"))
    with pytest.raises(ValueError, match="ignore_index cannot be given"):
        F.linear_cross_entropy(x, w, t64(np.full((3, 5), 0.2)), ignore_index=1)
    with pytest.raises(ValueError, match=r"weight must have shape \(5,\)"):
        nn.LinearCrossEntropyLoss(4, 5, weight=t64(np.ones(3)))
    m = nn.LinearCrossEntropyLoss(4, 5, out_features=(2,), bias=True)
    assert m.linear.weight.shape == (10, 4) and m.linear.bias.shape == (10,)  # stored flat, as PyTorch
