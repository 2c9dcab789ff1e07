"""``return_indices``: PyTorch's flat indices (per channel's spatial plane) of adaptive, sliding and
fractional max pooling, compared with PyTorch's indices, outputs and input gradients (ties
included: the first maximum in row-major order), and fed to MaxUnpool."""

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from conftest import to_np

RNG = np.random.default_rng(21)


def _t(a, grad=False):
    return xn.tensor(a, dtype="float64", requires_grad=grad)


def _compare(torch, tfn, xfn, x):
    """Outputs, indices (exactly) and the input gradient of a weighted sum, xpnet vs PyTorch."""
    tx, X = torch.tensor(x, requires_grad=True), _t(x, True)
    (ty, ti), (y, i) = tfn(tx), xfn(X)
    assert B_dtype(i) == "int64"
    np.testing.assert_array_equal(to_np(i), ti.numpy())
    np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-12, atol=0)
    w = RNG.uniform(0.5, 1.5, tuple(ty.shape))
    (ty * torch.tensor(w)).sum().backward()
    (y * _t(w)).sum().backward()
    np.testing.assert_allclose(to_np(X.grad), tx.grad.numpy(), rtol=1e-12, atol=0)
    return i


def B_dtype(t):
    from xpnet import backend as B
    return B.dtype_name(t.data.dtype)


ADAPTIVE = [(1, (2, 3, 7), 3), (1, (1, 2, 5), 8), (2, (2, 5, 7), (3, None)), (2, (1, 2, 5, 7), (2, 3)),
            (3, (2, 2, 4, 5, 6), (2, 3, 4)), (3, (3, 4, 4, 4), 1)]


@pytest.mark.parametrize("nd,shape,out", ADAPTIVE)
def test_adaptive_max_indices_match_torch(bk, nd, shape, out):
    torch = pytest.importorskip("torch")
    if bk.name == "jax" and shape != (2, 5, 7):
        pytest.skip("jax: one case")
    x = np.round(RNG.standard_normal(shape) * 1.5)  # many ties
    tf, xf = getattr(torch.nn.functional, f"adaptive_max_pool{nd}d"), getattr(F, f"adaptive_max_pool{nd}d")
    _compare(torch, lambda v: tf(v, out, return_indices=True), lambda v: xf(v, out, return_indices=True), x)
    tm, xm = getattr(torch.nn, f"AdaptiveMaxPool{nd}d")(out, True), getattr(nn, f"AdaptiveMaxPool{nd}d")(out, True)
    _compare(torch, tm, xm, x)


def test_adaptive_max_indices_unpool(bk):
    """Adaptive indices name places of the input plane: MaxUnpool puts the maxima back (PyTorch)."""
    torch = pytest.importorskip("torch")
    if bk.name == "jax":
        pytest.skip("jax: test_adaptive_max_indices_match_torch has a case")
    x = RNG.standard_normal((2, 3, 6, 6))
    y, i = F.adaptive_max_pool2d(_t(x), 3, return_indices=True)
    ty, ti = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), 3, return_indices=True)
    back = nn.MaxUnpool2d(2)(y, i, output_size=(6, 6))
    np.testing.assert_allclose(to_np(back), torch.nn.MaxUnpool2d(2)(ty, ti, output_size=(6, 6)).numpy(), rtol=0,
                               atol=0)
    y1, i1 = F.adaptive_max_pool1d(_t(x[0]), 2, return_indices=True)  # unbatched (C, L)
    ty1, ti1 = torch.nn.functional.adaptive_max_pool1d(torch.tensor(x[0]), 2, return_indices=True)
    np.testing.assert_array_equal(to_np(i1), ti1.numpy())
    np.testing.assert_allclose(to_np(F.max_unpool1d(y1, i1, 3)), torch.nn.functional.max_unpool1d(ty1, ti1, 3).numpy())


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool_indices_match_torch(bk, nd):
    torch = pytest.importorskip("torch")
    if bk.name == "jax":
        pytest.skip("jax: the indices are the same code on every backend (module_db samples run there)")
    x = np.round(RNG.standard_normal((2, 2) + (5, 6, 4)[:nd]) * 1.5)
    kw = dict(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True, return_indices=True)
    tm, xm = getattr(torch.nn, f"MaxPool{nd}d")(**kw), getattr(nn, f"MaxPool{nd}d")(**kw)
    i = _compare(torch, tm, xm, x)
    y = xm(_t(x))[0]  # indices feed MaxUnpool back to the input's size
    ty = tm(torch.tensor(x))[0]
    tu = getattr(torch.nn, f"MaxUnpool{nd}d")(3, 2, 1)(ty, tm(torch.tensor(x))[1], output_size=x.shape[2:])
    xu = getattr(nn, f"MaxUnpool{nd}d")(3, 2, 1)(y, i, output_size=x.shape[2:])
    np.testing.assert_allclose(to_np(xu), tu.numpy(), rtol=0, atol=0)
    kw2 = dict(kernel_size=2, dilation=2, return_indices=True)
    _compare(torch, lambda v: getattr(torch.nn.functional, f"max_pool{nd}d")(v, **kw2),
             lambda v: getattr(F, f"max_pool{nd}d")(v, **kw2), x)


@pytest.mark.parametrize("nd", [2, 3])
def test_fractional_max_pool_indices_match_torch(bk, nd):
    torch = pytest.importorskip("torch")
    if bk.name == "jax":
        pytest.skip("jax: the windows are built on the host, the same for every backend")
    x = np.round(RNG.standard_normal((2, 3) + (7, 6, 5)[:nd]) * 1.5)
    s = RNG.uniform(size=(2, 3, nd))
    kw = dict(kernel_size=2, output_size=(4, 3, 2)[:nd], return_indices=True)
    tm = getattr(torch.nn, f"FractionalMaxPool{nd}d")(_random_samples=torch.tensor(s), **kw)
    xm = getattr(nn, f"FractionalMaxPool{nd}d")(_random_samples=_t(s), **kw)
    _compare(torch, tm, xm, x)
    tm = getattr(torch.nn, f"FractionalMaxPool{nd}d")(_random_samples=torch.tensor(s[:1]), **kw)  # unbatched
    xm = getattr(nn, f"FractionalMaxPool{nd}d")(_random_samples=_t(s[:1]), **kw)
    _compare(torch, tm, xm, x[0])


def test_adaptive_max_gradcheck(bk):
    x = _t(RNG.standard_normal((1, 2, 5, 3)))
    assert xn.gradcheck(lambda v: F.adaptive_max_pool2d(v, (3, 2), return_indices=True)[0], x)
    if bk.name != "jax":
        assert xn.gradcheck(lambda v: F.adaptive_max_pool1d(v, 4), _t(RNG.standard_normal((2, 3))))
