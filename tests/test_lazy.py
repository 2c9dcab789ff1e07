"""LazyLinear, LazyConv1d/2d/3d, LazyConvTranspose1d/2d/3d against PyTorch: its module_db
samples (LazyConv*), and cases of our own for LazyLinear (PyTorch has no samples for it): the
module is built at the first call on both sides, the class it becomes, its parameter shapes
and initialization bound are PyTorch's, then with PyTorch's values loaded the outputs and
the input and parameter gradients agree (float64).  Shapes inferred in a model, bad input."""

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
from conftest import to_np
from torch_samples import check_module_db, compare_modules

RNG = np.random.default_rng(6)
MODULES = ["LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d", "LazyConvTranspose2d",
           "LazyConvTranspose3d"]


@pytest.mark.parametrize("name", MODULES)
def test_module_db(bk, name):
    if bk.name == "jax" or (bk.name == "array_api_strict" and name != "LazyConv2d"):
        pytest.skip("the lazy step is backend-independent; the convolutions are tested on every backend")
    assert check_module_db(name, max_samples=2 if bk.name != "numpy" else None, rtol=1e-6, atol=1e-9) > 0


@pytest.mark.parametrize("bias", [True, False])
def test_lazy_linear_matches_torch(bk, bias):
    torch = pytest.importorskip("torch")
    if bk.name == "jax" and not bias:
        pytest.skip("jax: one case (each shape compiles)")
    for shape in [(4, 5), (2, 3, 5), (5,)]:  # batched, extra batch axes, unbatched
        tm = torch.nn.LazyLinear(3, bias=bias, dtype=torch.float64)
        m = nn.LazyLinear(3, bias=bias).to("float64")
        x = torch.tensor(RNG.standard_normal(shape), requires_grad=True)
        compare_modules(tm, m, (x,), {}, rtol=1e-10, atol=1e-12, desc=f"LazyLinear(bias={bias}) {shape}")
        assert type(m) is nn.Linear and m.weight.shape == (3, 5) and (m.bias is not None) == bias


def test_lazy_linear_becomes_linear(bk):
    xn.manual_seed(0)
    m = nn.LazyLinear(3)
    assert m.weight is None and list(m.parameters()) == []
    y = m(xn.tensor(RNG.standard_normal((2, 5)), dtype="float32"))
    assert type(m) is nn.Linear and m.in_features == 5 and m.weight.shape == (3, 5) and y.shape == (2, 3)
    xn.manual_seed(0)
    ref = nn.Linear(5, 3)
    np.testing.assert_array_equal(to_np(m.weight), to_np(ref.weight))  # the full module's initialization


def test_lazy_conv_in_a_model_trains(bk):
    if bk.name == "jax":
        pytest.skip("jax: each shape compiles; the lazy step is backend-independent")
    model = nn.Sequential(nn.LazyConv2d(4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    x = xn.tensor(RNG.standard_normal((2, 3, 4, 4)), dtype="float32")
    model(x)  # the dry run
    assert model[0].weight.shape == (4, 3, 3, 3) and model[3].weight.shape == (2, 64)
    loss = (model(x) ** 2).sum()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_to_before_the_first_call(bk):
    m = nn.LazyLinear(2).to("float64")
    m(xn.tensor(np.ones((1, 3)), dtype="float64"))
    assert str(to_np(m.weight).dtype) == "float64"


def test_bad_input(bk):
    with pytest.raises(ValueError, match="3-D or 4-D"):
        nn.LazyConv2d(2, 3)(xn.tensor(np.zeros((2, 3))))
    m = nn.LazyLinear(2)
    with pytest.raises(ValueError, match="0-dimensional"):
        m(xn.tensor(1.0))
    assert type(m) is nn.LazyLinear  # unchanged after the error
