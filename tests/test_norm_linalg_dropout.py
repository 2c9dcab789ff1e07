"""InstanceNorm1d/2d/3d, BatchNorm3d, RMSNorm, LocalResponseNorm, Bilinear, CosineSimilarity,
PairwiseDistance, F.normalize, F.one_hot, F.pdist, EmbeddingBag, Dropout1d/2d/3d, AlphaDropout,
FeatureAlphaDropout: PyTorch's module_db and op_db samples where it has them, own comparisons
with PyTorch elsewhere, gradient checks on every backend, randomness, bad input."""

import math

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from conftest import to_np
from torch_samples import check_module_db, check_op_db

RNG = np.random.default_rng(5)


def t64(a, grad=False):
    return xn.tensor(a, dtype="float64", requires_grad=grad)


MODULES = ["InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "BatchNorm3d", "RMSNorm", "LocalResponseNorm",
           "Bilinear", "GroupNorm", "Linear"]  # GroupNorm (bias=) and Linear (forward(input=)) failed them before


@pytest.mark.parametrize("name", MODULES)
def test_module_db(bk, name):
    if bk.name == "jax" and name.endswith("3d"):
        pytest.skip("jax: the 3d modules are covered on the other backends (each shape compiles)")
    assert check_module_db(name, max_samples=1 if bk.name == "jax" else None) > 0


OPS = {"instance_norm": F.instance_norm, "rms_norm": F.rms_norm, "local_response_norm": F.local_response_norm,
       "bilinear": F.bilinear, "cosine_similarity": F.cosine_similarity, "pairwise_distance": F.pairwise_distance,
       "normalize": F.normalize, "one_hot": F.one_hot, "pdist": F.pdist}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_db(bk, name):
    if bk.name == "jax":
        pytest.skip("jax: covered by module samples and gradient checks")
    dtype = "int64" if name == "one_hot" else "float64"
    assert check_op_db(f"nn.functional.{name}", OPS[name], dtype=dtype) > 0


def test_op_db_embedding_bag(bk):
    if bk.name == "jax":
        pytest.skip("jax: covered by test_embedding_bag_matches_torch")
    # the sample's input is the weight, its first argument the indices (as PyTorch's OpInfo calls it).
    # The samples with scale_grad_by_freq are left out: PyTorch's CPU gradient there divides some rows
    # by another row's count (pytorch/pytorch#190063); test_embedding_bag_max_norm_and_scale_grad_by_freq
    # compares them with the documented rule.
    n = check_op_db("nn.functional.embedding_bag", lambda w, idx, **kw: F.embedding_bag(idx, w, **kw),
                    skip=lambda s: s.kwargs.get("scale_grad_by_freq"))
    assert n > 0


def test_gradchecks(bk):
    x = t64(RNG.standard_normal((2, 3, 4)))
    w, b = t64(RNG.standard_normal(3)), t64(RNG.standard_normal(3))
    assert xn.gradcheck(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), x, w, b)
    assert xn.gradcheck(lambda x, w: F.rms_norm(x, (3, 4), w), x, t64(RNG.standard_normal((3, 4))))
    assert xn.gradcheck(lambda x: F.local_response_norm(x, 2, alpha=0.5, beta=0.7, k=1.5), x)
    x1, x2 = t64(RNG.standard_normal((2, 3))), t64(RNG.standard_normal((2, 4)))
    assert xn.gradcheck(F.bilinear, x1, x2, t64(RNG.standard_normal((2, 3, 4))), t64(RNG.standard_normal(2)))
    y1 = t64(RNG.standard_normal((2, 3)))
    assert xn.gradcheck(F.cosine_similarity, x1, y1)
    assert xn.gradcheck(lambda a, c: F.pairwise_distance(a, c, p=3.0), x1, y1)
    assert xn.gradcheck(lambda a: F.normalize(a, dim=1), x1)
    assert xn.gradcheck(F.pdist, t64(RNG.standard_normal((3, 2))))


def test_embedding_bag_gradcheck(bk):
    w = t64(RNG.standard_normal((5, 2)))
    idx = xn.tensor([1, 2, 4, 4, 0, 3], dtype="int64")
    off = xn.tensor([0, 2, 2, 5], dtype="int64")
    for mode in ("max",) if bk.name == "jax" else ("sum", "mean", "max"):  # jax: few (each compiles)
        assert xn.gradcheck(lambda w: F.embedding_bag(idx, w, off, mode=mode, padding_idx=3), w)
    psw = t64(RNG.uniform(0.5, 1.5, 6))
    assert xn.gradcheck(lambda w, s: F.embedding_bag(idx, w, off, mode="sum", per_sample_weights=s), w, psw)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_matches_torch(bk, mode):
    torch = pytest.importorskip("torch")
    if bk.name == "jax":
        pytest.skip("jax: covered by test_embedding_bag_gradcheck (each shape compiles)")
    tm = torch.nn.EmbeddingBag(6, 3, mode=mode, padding_idx=2, dtype=torch.float64)
    m = nn.EmbeddingBag(6, 3, mode=mode, padding_idx=2).to("float64")
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    idx, off = [1, 2, 5, 5, 0, 3, 2], [0, 3, 3, 4]  # an empty bag, a bag of padding only, repeats
    ty = tm(torch.tensor(idx), torch.tensor(off))
    y = m(xn.tensor(idx, dtype="int64"), xn.tensor(off, dtype="int64"))
    np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-12)
    (ty ** 2).sum().backward()
    (y ** 2).sum().backward()
    np.testing.assert_allclose(to_np(m.weight.grad), tm.weight.grad.numpy(), rtol=1e-12)
    two_d = [[1, 2, 0], [4, 4, 5]]
    np.testing.assert_allclose(to_np(m(xn.tensor(two_d, dtype="int64"))),
                               tm(torch.tensor(two_d)).detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["CosineSimilarity", "PairwiseDistance"])
def test_distance_modules_match_torch(bk, name):
    torch = pytest.importorskip("torch")
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((1, 4))
    kw = {"dim": 1} if name == "CosineSimilarity" else {"p": 1.5, "keepdim": True}
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ty = getattr(torch.nn, name)(**kw)(ta, tb)
    xa, xb = t64(a, True), t64(b, True)
    y = getattr(nn, name)(**kw)(xa, xb)
    np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-12)
    ty.sum().backward()
    y.sum().backward()
    np.testing.assert_allclose(to_np(xa.grad), ta.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(to_np(xb.grad), tb.grad.numpy(), rtol=1e-10)


def test_instance_norm_running_stats_match_torch(bk):
    torch = pytest.importorskip("torch")
    tm = torch.nn.InstanceNorm1d(3, affine=True, track_running_stats=True, dtype=torch.float64)
    m = nn.InstanceNorm1d(3, affine=True, track_running_stats=True).to("float64")
    x = RNG.standard_normal((2, 3, 5)) * 2 + 1
    tm(torch.tensor(x)), m(t64(x))
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(to_np(m.state_dict()[k]), v.numpy(), rtol=1e-12, err_msg=k)
    tm.eval(), m.eval()
    np.testing.assert_allclose(to_np(m(t64(x))), tm(torch.tensor(x)).detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("name,shape,nd", [("Dropout1d", (8, 16, 5), 1), ("Dropout2d", (8, 16, 2, 3), 2),
                                           ("Dropout3d", (16, 2, 2, 2), 3)])
def test_channel_dropout(bk, name, shape, nd):
    m = getattr(nn, name)(p=0.25)
    x = t64(np.ones(shape), grad=True)
    xn.manual_seed(3)
    y = to_np(m(x))
    lead = 1 if len(shape) == nd + 1 else 2
    per_channel = y.reshape(shape[:lead] + (-1,))
    assert np.all(per_channel.min(axis=-1) == per_channel.max(axis=-1))  # a channel is all kept or all dropped
    assert set(np.unique(y)) <= {0.0, 1.0 / 0.75}
    assert 0.1 < (y == 0).mean() < 0.45
    xn.manual_seed(3)
    m(x).sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), y)  # the gradient is the mask times the scale
    m.eval()
    assert m(x) is x


def test_alpha_dropout_keeps_moments_and_is_seeded(bk):
    x = t64(RNG.standard_normal((200, 50)))
    xn.manual_seed(1)
    y = to_np(F.alpha_dropout(x, 0.2, training=True))
    xn.manual_seed(1)
    assert np.array_equal(y, to_np(nn.AlphaDropout(0.2)(x)))
    assert abs(y.mean()) < 0.05 and abs(y.std() - 1) < 0.05
    f = to_np(F.feature_alpha_dropout(t64(RNG.standard_normal((20, 30, 4))), 0.5, training=True))
    dropped = np.all(np.isclose(f, f[:, :, :1]), axis=-1)  # a dropped channel is one constant
    assert 0.3 < dropped.mean() < 0.7
    assert F.alpha_dropout(x, 0.5) is x  # training=False by default, as PyTorch
    assert nn.FeatureAlphaDropout(0.3).eval()(x) is x


def test_one_hot(bk):
    y = F.one_hot(xn.tensor([[0, 2], [1, 1]], dtype="int64"))
    assert to_np(y).dtype == np.int64 and y.shape == (2, 2, 3)
    assert to_np(y)[0, 1].tolist() == [0, 0, 1]
    assert F.one_hot(xn.tensor([1], dtype="int64"), 4).shape == (1, 4)


def test_bad_input(bk):
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        F.one_hot(xn.tensor([0, 2], dtype="int64"), 2)
    with pytest.raises(TypeError, match="integers"):
        F.one_hot(xn.tensor([0.5]))
    with pytest.raises(ValueError, match="3 or 4 dimensions"):
        nn.InstanceNorm2d(3)(xn.tensor(np.ones((2, 3))))
    with pytest.raises(ValueError, match="does not end with"):
        nn.RMSNorm(4)(xn.tensor(np.ones((2, 3))))
    with pytest.raises(ValueError, match="weight"):
        nn.Bilinear(2, 3, 4)(xn.tensor(np.ones((1, 2))), xn.tensor(np.ones((1, 2))))
    with pytest.raises(ValueError, match="mode='median'"):
        nn.EmbeddingBag(3, 2, mode="median")
    with pytest.raises(ValueError, match="offsets"):
        nn.EmbeddingBag(3, 2)(xn.tensor([0, 1], dtype="int64"))
    with pytest.raises(ValueError, match="2-D"):
        F.pdist(xn.tensor(np.ones(3)))
    with pytest.raises(ValueError, match="3-D"):
        F.dropout2d(xn.tensor(np.ones((2, 3))), training=True)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout2d(1.5)


def _bag_inputs(offsets_form):
    if offsets_form:  # 1-D with offsets: bags [1, 2, 4], [], [4, 1, 0], [1, 1, 5, 2]
        return np.array([1, 2, 4, 4, 1, 0, 1, 1, 5, 2]), np.array([0, 3, 3, 6])
    return np.array([[1, 2, 4], [4, 1, 0], [1, 1, 5]]), None


@pytest.mark.parametrize("offsets_form", [False, True])
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_max_norm_and_scale_grad_by_freq(bk, mode, offsets_form):
    """max_norm/norm_type renormalize the looked-up rows of the weight in place (as PyTorch: forward,
    weight afterwards and gradient match); scale_grad_by_freq divides each row's gradient by its
    count in the input: PyTorch's unscaled gradient divided by the counts (its CPU kernel misscales
    some rows, pytorch/pytorch#190063, so the scaled gradient is not compared with it directly)."""
    torch = pytest.importorskip("torch")
    if bk.name == "jax" and offsets_form:
        pytest.skip("jax: the 2-D form covers it (each shape compiles)")
    inp, off = _bag_inputs(offsets_form)
    counts = np.bincount(inp.reshape(-1), minlength=6)
    cases = [dict(max_norm=1.0), dict(max_norm=1.5, norm_type=1.0), dict(max_norm=0.8, norm_type=math.inf),
             dict(scale_grad_by_freq=True), dict(max_norm=1.0, scale_grad_by_freq=True, padding_idx=1)]
    for kw in cases:
        if mode == "max" and kw.get("scale_grad_by_freq"):
            continue
        w = RNG.standard_normal((6, 3)) * 2
        w[3] = 3.0  # a row not looked up (large: it must stay as it is)
        psw = RNG.uniform(0.5, 1.5, inp.shape) if mode == "sum" else None
        tkw = {k: v for k, v in kw.items() if k != "scale_grad_by_freq"}
        tw = torch.tensor(w, requires_grad=True)
        tps = None if psw is None else torch.tensor(psw, requires_grad=True)
        ty = torch.nn.functional.embedding_bag(torch.tensor(inp), tw, None if off is None else torch.tensor(off),
                                               mode=mode, per_sample_weights=tps, **tkw)
        g = RNG.uniform(0.5, 1.5, tuple(ty.shape))
        (ty * torch.tensor(g)).sum().backward()
        xps = None if psw is None else t64(psw, grad=True)
        bag = nn.EmbeddingBag(6, 3, mode=mode, _weight=t64(w), **kw)
        x = bag.weight
        y = bag(xn.tensor(inp), None if off is None else xn.tensor(off), per_sample_weights=xps)
        (y * t64(g)).sum().backward()
        np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-12, err_msg=str(kw))
        np.testing.assert_allclose(to_np(x), tw.detach().numpy(), rtol=1e-12, err_msg=str(kw))  # renormed in place
        want = tw.grad.numpy() / (np.maximum(counts, 1)[:, None] if kw.get("scale_grad_by_freq") else 1)
        np.testing.assert_allclose(to_np(x.grad), want, rtol=1e-12, atol=1e-15, err_msg=str(kw))
        if psw is not None:  # not scaled: the true derivative
            np.testing.assert_allclose(to_np(xps.grad), tps.grad.numpy(), rtol=1e-12, err_msg=str(kw))
        if kw.get("max_norm") is not None:
            norms = np.linalg.norm(to_np(x), ord=kw.get("norm_type", 2.0), axis=1)
            assert np.all(norms[counts > 0] <= kw["max_norm"] + 1e-9) and np.any(norms[counts == 0] > kw["max_norm"])


def test_embedding_bag_scale_grad_by_freq_agrees_with_torch_where_its_cpu_kernel_does(bk):
    """Where every index occurs equally often PyTorch's CPU kernel divides correctly: compared directly."""
    torch = pytest.importorskip("torch")
    inp = np.array([[3, 0, 3], [0, 5, 5]])
    w = RNG.standard_normal((6, 2))
    for mode in ("sum", "mean"):
        tw = torch.tensor(w, requires_grad=True)
        torch.nn.functional.embedding_bag(torch.tensor(inp), tw, mode=mode, scale_grad_by_freq=True).sum().backward()
        x = t64(w, grad=True)
        F.embedding_bag(xn.tensor(inp), x, mode=mode, scale_grad_by_freq=True).sum().backward()
        np.testing.assert_allclose(to_np(x.grad), tw.grad.numpy(), rtol=1e-12)
        assert np.abs(tw.grad.numpy()[3]).sum() > 0


def test_embedding_bag_options_gradcheck_and_errors(bk):
    idx = xn.tensor([1, 2, 4, 4, 0, 3], dtype="int64")
    off = xn.tensor([0, 2, 2, 5], dtype="int64")
    w = t64(RNG.standard_normal((5, 2)) * 3)
    psw = t64(RNG.uniform(0.5, 1.5, 6))
    F.embedding_bag(idx, w, off, max_norm=1.0, mode="sum")  # renormalizes w in place: later calls change nothing
    assert xn.gradcheck(lambda s: F.embedding_bag(idx, w, off, max_norm=1.0, mode="sum", per_sample_weights=s,
                                                  scale_grad_by_freq=True), psw)
    once = xn.tensor([1, 2, 4, 0], dtype="int64")  # each index once: the scaled gradient is the true one
    for mode in ("sum",) if bk.name == "jax" else ("sum", "mean"):
        assert xn.gradcheck(lambda v: F.embedding_bag(once, v, xn.tensor([0, 1], dtype="int64"), mode=mode,
                                                      scale_grad_by_freq=True, padding_idx=4), t64(RNG.standard_normal((5, 2))))
    before = to_np(w).copy()
    with pytest.raises(ValueError, match="max mode does not support scaling the gradient"):
        F.embedding_bag(idx, w, off, mode="max", scale_grad_by_freq=True, max_norm=0.1)
    np.testing.assert_array_equal(to_np(w), before)  # refused before the renorm
    with pytest.raises(ValueError, match="max mode"):
        nn.EmbeddingBag(5, 2, mode="max", scale_grad_by_freq=True)
    assert repr(nn.EmbeddingBag(5, 2, max_norm=1.0, scale_grad_by_freq=True)) == \
        "EmbeddingBag(5, 2, max_norm=1.0, scale_grad_by_freq=True, mode='mean')"
