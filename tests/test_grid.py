"""F.affine_grid and F.grid_sample: PyTorch's op_db samples (every mode, padding mode,
align_corners, 4-D and 5-D), own comparisons with PyTorch (outputs, input and grid gradients,
points far outside the input), gradient checks on every backend, bad input."""

import itertools

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn.functional as F
from conftest import to_np
from torch_samples import check_op_db

RNG = np.random.default_rng(13)


def test_op_db_grid_sample(bk):
    if bk.name == "jax":
        pytest.skip("jax: covered by the comparison and the gradient check")
    n = 6 if bk.name == "array_api_strict" else None
    assert check_op_db("nn.functional.grid_sample", F.grid_sample, max_samples=n) > 0


@pytest.mark.filterwarnings("ignore:Since version 1.3.0")
def test_affine_grid_matches_torch(bk):
    torch = pytest.importorskip("torch")
    for ac in (False, True):
        th = RNG.standard_normal((2, 2, 3)) * 0.7
        np.testing.assert_allclose(to_np(F.affine_grid(xn.tensor(th, dtype="float64"), (2, 3, 4, 5), ac)),
                                   torch.nn.functional.affine_grid(torch.tensor(th), (2, 3, 4, 5), ac).numpy(),
                                   rtol=1e-12, atol=1e-14)
        th3 = RNG.standard_normal((2, 3, 4))
        np.testing.assert_allclose(to_np(F.affine_grid(xn.tensor(th3, dtype="float64"), (2, 1, 2, 3, 1), ac)),
                                   torch.nn.functional.affine_grid(torch.tensor(th3), (2, 1, 2, 3, 1), ac).numpy(),
                                   rtol=1e-12, atol=1e-14)


CASES = list(itertools.product(("bilinear", "nearest", "bicubic"), ("zeros", "border", "reflection")))


@pytest.mark.parametrize("mode,padding_mode", CASES)
def test_matches_torch(bk, mode, padding_mode):
    """Both align_corners; 4-D and (but bicubic) 5-D; grid points up to 4 widths outside, where
    reflection folds several times; sizes of 1 (reflection's degenerate span)."""
    torch = pytest.importorskip("torch")
    if bk.name == "jax" and (mode, padding_mode) != ("bilinear", "reflection"):
        pytest.skip("jax: one case")
    shapes = [((2, 3, 4, 5), (2, 3, 4, 2)), ((1, 2, 1, 3), (1, 2, 3, 2))]
    if mode != "bicubic":
        shapes.append(((2, 2, 3, 4, 2), (2, 2, 3, 2, 3)))
    runs = list(itertools.product(shapes, (False, True)))
    for (xs, gs), ac in (runs[:1] if bk.name == "jax" else runs):  # jax compiles each shape
        x, g = RNG.standard_normal(xs), RNG.uniform(-1.5, 1.5, gs)
        g.flat[::3] *= 5.0  # far outside: several reflections
        tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
        ty = torch.nn.functional.grid_sample(tx, tg, mode=mode, padding_mode=padding_mode, align_corners=ac)
        X, G = xn.tensor(x, dtype="float64", requires_grad=True), xn.tensor(g, dtype="float64", requires_grad=True)
        y = F.grid_sample(X, G, mode=mode, padding_mode=padding_mode, align_corners=ac)
        what = f"{mode} {padding_mode} align_corners={ac} input {xs}"
        np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-12, atol=1e-13, err_msg=what)
        w = RNG.uniform(0.5, 1.5, tuple(ty.shape))
        (ty * torch.tensor(w)).sum().backward()
        (y * xn.tensor(w, dtype="float64")).sum().backward()
        np.testing.assert_allclose(to_np(X.grad), tx.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=what)
        gg = np.zeros(gs) if G.grad is None else to_np(G.grad)  # nearest: no grid gradient
        np.testing.assert_allclose(gg, tg.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=what)


def test_edges_match_torch(bk):
    """Grid points exactly on the edges and pixel centres: ATen counts the clipped edges as outside
    for the gradient (border and reflection), and reads the floor's neighbours there."""
    torch = pytest.importorskip("torch")
    if bk.name == "jax":
        pytest.skip("jax: covered by test_matches_torch")
    pts = np.array([-1.0, -0.75, -0.5, 0.0, 0.5, 1.0, 1.25, 3.0, -3.0])
    g = np.stack(np.meshgrid(pts, pts[::-1], indexing="xy"), -1)[None]  # (1, 9, 9, 2)
    x = RNG.standard_normal((1, 2, 3, 4))
    for mode, pm, ac in itertools.product(("bilinear", "bicubic"), ("zeros", "border", "reflection"), (False, True)):
        tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
        ty = torch.nn.functional.grid_sample(tx, tg, mode=mode, padding_mode=pm, align_corners=ac)
        X, G = xn.tensor(x, dtype="float64", requires_grad=True), xn.tensor(g, dtype="float64", requires_grad=True)
        y = F.grid_sample(X, G, mode=mode, padding_mode=pm, align_corners=ac)
        what = f"{mode} {pm} align_corners={ac}"
        np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-12, atol=1e-13, err_msg=what)
        ty.sum().backward()
        y.sum().backward()
        np.testing.assert_allclose(to_np(X.grad), tx.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=what)
        np.testing.assert_allclose(to_np(G.grad), tg.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=what)


def test_gradcheck(bk):
    x = xn.tensor(RNG.standard_normal((1, 1, 3, 3)), dtype="float64")
    g = xn.tensor(RNG.uniform(-1.8, 1.8, (1, 2, 2, 2)), dtype="float64")  # some outside, off the edges
    assert xn.gradcheck(lambda a, b: F.grid_sample(a, b, padding_mode="reflection"), x, g)
    th = xn.tensor(RNG.standard_normal((1, 2, 3)), dtype="float64")
    assert xn.gradcheck(lambda t: F.affine_grid(t, (1, 1, 2, 3)), th)
    if bk.name == "jax":
        return  # jax: one grid_sample (each op compiles)
    assert xn.gradcheck(lambda a, b: F.grid_sample(a, b, mode="bicubic", padding_mode="border",
                                                   align_corners=True), x, g)
    x3 = xn.tensor(RNG.standard_normal((1, 1, 2, 3, 2)), dtype="float64")
    g3 = xn.tensor(RNG.uniform(-0.9, 0.9, (1, 2, 1, 1, 3)), dtype="float64")
    assert xn.gradcheck(F.grid_sample, x3, g3)
    th3 = xn.tensor(RNG.standard_normal((1, 3, 4)), dtype="float64")
    assert xn.gradcheck(lambda t: F.affine_grid(t, (1, 1, 2, 1, 2), True), th3)


def test_bad_input(bk):
    with pytest.raises(ValueError, match="theta"):
        F.affine_grid(xn.tensor(np.zeros((1, 2, 2))), (1, 1, 3, 3))
    with pytest.raises(ValueError, match="bicubic"):
        F.grid_sample(xn.tensor(np.zeros((1, 1, 2, 2, 2))), xn.tensor(np.zeros((1, 1, 1, 1, 3))), mode="bicubic")
    with pytest.raises(ValueError, match="grid"):
        F.grid_sample(xn.tensor(np.zeros((1, 1, 2, 2))), xn.tensor(np.zeros((1, 1, 1, 3))))
    with pytest.raises(ValueError, match="mode"):
        F.grid_sample(xn.tensor(np.zeros((1, 1, 2, 2))), xn.tensor(np.zeros((1, 1, 1, 2))), mode="area")
    with pytest.raises(ValueError, match="padding_mode"):
        F.grid_sample(xn.tensor(np.zeros((1, 1, 2, 2))), xn.tensor(np.zeros((1, 1, 1, 2))), padding_mode="wrap")
