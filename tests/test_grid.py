"""F.affine_grid and F.grid_sample: PyTorch's op_db samples where supported (bilinear/nearest,
zeros/border, 4-D), own comparisons with PyTorch (outputs, input and grid gradients),
gradient checks on every backend, bad input."""

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn.functional as F
from conftest import to_np
from torch_samples import check_op_db

RNG = np.random.default_rng(13)


def _supported(s):
    kw = s.kwargs
    return (kw.get("mode", "bilinear") in ("bilinear", "nearest") and kw.get("padding_mode", "zeros") != "reflection"
            and s.input.ndim == 4)


def test_op_db_grid_sample(bk):
    if bk.name == "jax":
        pytest.skip("jax: covered by the comparison and the gradient check")
    assert check_op_db("nn.functional.grid_sample", F.grid_sample, skip=lambda s: not _supported(s)) > 0


@pytest.mark.parametrize("align_corners", [False, True])
def test_matches_torch(bk, align_corners):
    torch = pytest.importorskip("torch")
    if bk.name == "jax" and align_corners:
        pytest.skip("jax: one case")
    th = RNG.standard_normal((2, 2, 3)) * 0.7
    np.testing.assert_allclose(to_np(F.affine_grid(xn.tensor(th, dtype="float64"), (2, 3, 4, 5), align_corners)),
                               torch.nn.functional.affine_grid(torch.tensor(th), (2, 3, 4, 5), align_corners).numpy(),
                               rtol=1e-12, atol=1e-14)
    th3 = RNG.standard_normal((1, 3, 4))
    np.testing.assert_allclose(to_np(F.affine_grid(xn.tensor(th3, dtype="float64"), (1, 1, 2, 3, 2), align_corners)),
                               torch.nn.functional.affine_grid(torch.tensor(th3), (1, 1, 2, 3, 2),
                                                               align_corners).numpy(), rtol=1e-12, atol=1e-14)
    x, g = RNG.standard_normal((2, 3, 4, 5)), RNG.uniform(-1.2, 1.2, (2, 3, 2, 2))
    for mode, pm in (("bilinear", "zeros"), ("bilinear", "border"), ("nearest", "zeros")):
        tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
        ty = torch.nn.functional.grid_sample(tx, tg, mode=mode, padding_mode=pm, align_corners=align_corners)
        X, G = xn.tensor(x, dtype="float64", requires_grad=True), xn.tensor(g, dtype="float64", requires_grad=True)
        y = F.grid_sample(X, G, mode=mode, padding_mode=pm, align_corners=align_corners)
        np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-12, atol=1e-14)
        (ty ** 2).sum().backward()
        (y ** 2).sum().backward()
        np.testing.assert_allclose(to_np(X.grad), tx.grad.numpy(), rtol=1e-10, atol=1e-13)
        if mode == "bilinear":
            np.testing.assert_allclose(to_np(G.grad), tg.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_gradcheck(bk):
    x = xn.tensor(RNG.standard_normal((1, 1, 3, 3)), dtype="float64")
    g = xn.tensor(RNG.uniform(-0.9, 0.9, (1, 2, 2, 2)), dtype="float64")
    assert xn.gradcheck(F.grid_sample, x, g)
    th = xn.tensor(RNG.standard_normal((1, 2, 3)), dtype="float64")
    assert xn.gradcheck(lambda t: F.affine_grid(t, (1, 1, 2, 3)), th)


def test_bad_input(bk):
    with pytest.raises(ValueError, match="theta"):
        F.affine_grid(xn.tensor(np.zeros((1, 2, 2))), (1, 1, 3, 3))
    with pytest.raises(NotImplementedError, match="bicubic"):
        F.grid_sample(xn.tensor(np.zeros((1, 1, 2, 2))), xn.tensor(np.zeros((1, 1, 1, 2))), mode="bicubic")
    with pytest.raises(ValueError, match="grid"):
        F.grid_sample(xn.tensor(np.zeros((1, 1, 2, 2))), xn.tensor(np.zeros((1, 1, 1, 3))))
