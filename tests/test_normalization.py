"""BatchNorm1d/2d, LayerNorm, GroupNorm: gradient checks, PyTorch comparisons (train and eval,
running statistics, state dicts), bad input."""

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from conftest import to_np

RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape)


def t64(a):
    return xn.tensor(a, dtype="float64")


# ------------------------------------------------------------- gradient checks

def test_batch_norm_gradcheck(bk):
    x, w, b = t64(randn(3, 2, 2) * 2 + 1), t64(randn(2)), t64(randn(2))
    rm, rv = t64(randn(2)), t64(np.abs(randn(2)) + 0.5)
    assert xn.gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, w, b)
    assert xn.gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False), x, w, b)
    assert xn.gradcheck(lambda x: F.batch_norm(x, None, None, training=True), t64(randn(4, 3)))


def test_batch_norm_gradgradcheck(bk):
    assert xn.gradgradcheck(lambda x, w: F.batch_norm(x, None, None, w, None, training=True) ** 2,
                            t64(randn(3, 2, 2)), t64(randn(2)))


def test_layer_norm_gradcheck(bk):
    x, w, b = t64(randn(2, 3, 4)), t64(randn(3, 4)), t64(randn(3, 4))
    assert xn.gradcheck(lambda x, w, b: F.layer_norm(x, (3, 4), w, b), x, w, b)
    assert xn.gradgradcheck(lambda x, w, b: F.layer_norm(x, 4, w[0], b[0]) ** 2, x, w, b)
    assert xn.gradgradcheck(lambda x: F.layer_norm(x, 3), t64(randn(2, 3)))


def test_group_norm_gradcheck(bk):
    assert xn.gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), t64(randn(2, 4, 3)), t64(randn(4)), t64(randn(4)))


def test_normalized_output_has_zero_mean_unit_variance(bk):
    x = xn.tensor(randn(8, 3, 5) * 4 + 2, dtype="float32")
    y = to_np(nn.BatchNorm1d(3)(x))
    np.testing.assert_allclose(y.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2)), 1, atol=1e-3)
    z = to_np(nn.LayerNorm(5)(x))
    np.testing.assert_allclose(z.mean(axis=-1), 0, atol=1e-5)
    np.testing.assert_allclose(z.var(axis=-1), 1, atol=1e-3)


# ----------------------------------------------------------------- vs PyTorch

def _run(tm, m, shape, modes, dtype="float64", tol=1e-8):
    """Load ``tm``'s state into ``m``, then in each mode (True: train) compare outputs, input and
    parameter gradients, and finally the whole state (running statistics included)."""
    torch = pytest.importorskip("torch")
    tdt = getattr(torch, dtype)
    tm = tm.to(tdt)
    m.load_state_dict(tm.state_dict())
    for train in modes:
        tm.train(train), m.train(train)
        x = randn(*shape) * 2 + 1
        tx = torch.tensor(x, dtype=tdt, requires_grad=True)
        ty = tm(tx)
        gy = randn(*ty.shape)
        ty.backward(torch.tensor(gy, dtype=tdt))
        X = xn.tensor(x, dtype=dtype, requires_grad=True)
        y = m(X)
        y.backward(xn.tensor(gy, dtype=dtype))
        np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(to_np(X.grad), tx.grad.numpy(), rtol=tol, atol=tol)
        for (n, p), (tn, tp) in zip(m.named_parameters(), tm.named_parameters()):
            assert n == tn
            np.testing.assert_allclose(to_np(p.grad), tp.grad.numpy(), rtol=tol, atol=tol, err_msg=n)
        m.zero_grad(), tm.zero_grad()
    ts, s = tm.state_dict(), m.state_dict()
    assert list(s) == list(ts)
    for k in ts:
        np.testing.assert_allclose(xn.backend.to_numpy(s[k]), ts[k].numpy(), rtol=tol, atol=tol, err_msg=k)
        assert xn.backend.dtype_name(s[k].dtype) == str(ts[k].dtype).replace("torch.", "")


TRAIN3_EVAL = [True, True, True, False]


@pytest.mark.parametrize("layer,args,kw,shape", [
    ("BatchNorm1d", (4,), {}, (5, 4)),
    ("BatchNorm1d", (4,), dict(momentum=None), (3, 4, 2)),
    ("BatchNorm2d", (3,), dict(momentum=0.3, eps=1e-3), (2, 3, 2, 3)),
    ("BatchNorm2d", (3,), dict(affine=False), (2, 3, 2, 2)),
    ("BatchNorm2d", (3,), dict(track_running_stats=False), (2, 3, 2, 2)),
])
def test_batch_norm_matches_torch(bk, layer, args, kw, shape):
    torch = pytest.importorskip("torch")
    _run(getattr(torch.nn, layer)(*args, **kw), getattr(nn, layer)(*args, **kw, dtype="float64"), shape, TRAIN3_EVAL)


def test_batch_norm_float32_matches_torch(bk):
    torch = pytest.importorskip("torch")
    _run(torch.nn.BatchNorm2d(3), nn.BatchNorm2d(3), (4, 3, 3, 3), TRAIN3_EVAL, "float32", 1e-4)


@pytest.mark.parametrize("layer,args,kw,shape", [
    ("LayerNorm", (5,), {}, (2, 3, 5)),
    ("LayerNorm", ((3, 5),), dict(bias=False, eps=1e-3), (2, 3, 5)),
    ("LayerNorm", ((3, 5),), dict(elementwise_affine=False), (2, 3, 5)),
    ("GroupNorm", (2, 4), {}, (2, 4, 3)),
])
def test_layer_and_group_norm_match_torch(bk, layer, args, kw, shape):
    torch = pytest.importorskip("torch")
    tm = getattr(torch.nn, layer)(*args, **kw)
    with torch.no_grad():  # non-trivial affine parameters
        for p in tm.parameters():
            p.copy_(torch.randn(p.shape))
    _run(tm, getattr(nn, layer)(*args, **kw, dtype="float64"), shape, [True, False])


def test_batch_norm_state(bk):
    m = nn.BatchNorm2d(3)
    s = m.state_dict()
    assert list(s) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert xn.backend.dtype_name(s["num_batches_tracked"].dtype) == "int64" and s["num_batches_tracked"].shape == ()
    assert xn.backend.dtype_name(s["running_mean"].dtype) == "float32"
    x = xn.tensor(randn(2, 3, 2, 2), dtype="float32")
    m(x), m(x)
    assert int(m.num_batches_tracked) == 2
    m.eval()
    m(x)
    assert int(m.num_batches_tracked) == 2
    m.reset_running_stats()
    assert int(m.num_batches_tracked) == 0 and np.all(to_np(m.running_var) == 1)
    assert list(nn.BatchNorm1d(3, track_running_stats=False).state_dict()) == ["weight", "bias"]


def test_running_stats_get_no_gradient(bk):
    m = nn.BatchNorm1d(2)
    x = xn.tensor(randn(4, 2), dtype="float32", requires_grad=True)
    m(x).sum().backward()
    assert not m.running_mean.requires_grad and m.running_mean.creator is None
    assert m.weight.grad is not None


# ----------------------------------------------------------------- bad input

def test_errors(bk):
    x = xn.tensor(np.zeros((2, 4, 3, 3)), dtype="float32")
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3, .*input has 4 channels \(shape \(2, 4, 3, 3\)\), expected 3"):
        nn.BatchNorm2d(3)(x)
    with pytest.raises(ValueError, match=r"BatchNorm1d\(4, .*input must have 2 or 3 dimensions: \(N, C\) or \(N, C, L\), "
                                         r"got shape \(2, 4, 3, 3\)"):
        nn.BatchNorm1d(4)(x)
    with pytest.raises(ValueError, match=r"BatchNorm2d\(4, .*must have 4 dimensions.*got shape \(4, 3, 3\)"):
        nn.BatchNorm2d(4)(x[0])
    with pytest.raises(ValueError, match=r"expected more than 1 value per channel when training, got input of shape \(1, 4\)"):
        nn.BatchNorm1d(4)(xn.tensor(np.zeros((1, 4)), dtype="float32"))
    with pytest.raises(ValueError, match=r"LayerNorm\(\(3, 4\)\): input of shape \(2, 4, 3, 3\) must end with the "
                                         r"normalized shape \(3, 4\)"):
        nn.LayerNorm((3, 4))(x)
    with pytest.raises(ValueError, match=r"batch_norm: weight has shape \(3,\), expected \(4,\)"):
        F.batch_norm(x, None, None, xn.tensor(np.ones(3), dtype="float32"), training=True)
    with pytest.raises(ValueError, match="GroupNorm: num_channels=5 must be divisible by num_groups=2"):
        nn.GroupNorm(2, 5)
