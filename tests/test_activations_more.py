"""The rest of torch.nn's activations: PyTorch's own module_db and op_db samples (forward,
input and parameter gradients, float64), gradient checks on every backend, randomness of
RReLU, modules' reprs and bad input."""

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from conftest import to_np
from torch_samples import check_module_db, check_op_db

RNG = np.random.default_rng(3)
# |x| in [0.2, 3.5] away from every kink (0, +-0.5, +-3, 6, the thresholds below)
X = np.array([[-3.4, -2.2, -0.9, -0.3], [0.25, 0.8, 2.6, 3.3]])

MODULES = ["CELU", "SELU", "GLU", "Hardshrink", "Hardsigmoid", "Hardswish", "ReLU6", "PReLU", "RReLU",
           "LogSigmoid", "Mish", "Softmin", "Softmax2d", "Softshrink", "Softsign", "Tanhshrink", "Threshold"]


def few(bk):
    """JAX compiles each new shape: one sample per module there keeps the suite short."""
    return 1 if bk.name == "jax" else None


# on jax, the modules beyond one elementwise formula (a parameter, a split, a softmax axis, a
# threshold value); the elementwise ones are the same code on every backend, compared with
# PyTorch on the others and gradient-checked on jax (test_gradcheck)
JAX_MODULES = ("GLU", "PReLU", "Softmin", "Softmax2d", "Threshold")


@pytest.mark.parametrize("name", MODULES)
def test_module_db(bk, name):
    if name == "RReLU":
        pytest.skip("PyTorch has no module_db samples for RReLU (see test_rrelu_*)")
    if bk.name == "jax" and name not in JAX_MODULES:
        pytest.skip(f"jax: {', '.join(JAX_MODULES)} only (each shape compiles; see JAX_MODULES)")
    assert check_module_db(name, max_samples=few(bk)) > 0


FUNCTIONAL = {
    "celu": F.celu, "selu": F.selu, "glu": F.glu, "hardshrink": F.hardshrink, "hardsigmoid": F.hardsigmoid,
    "hardswish": F.hardswish, "relu6": F.relu6, "prelu": F.prelu, "logsigmoid": F.logsigmoid,
    "mish": F.mish, "softmin": F.softmin, "softshrink": F.softshrink, "softsign": F.softsign,
    "tanhshrink": F.tanhshrink, "threshold": F.threshold,
}


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_op_db(bk, name):
    if bk.name == "jax":
        pytest.skip("the module_db samples cover jax; op_db's many shapes would compile for minutes")
    assert check_op_db(f"nn.functional.{name}", FUNCTIONAL[name]) > 0


def test_rrelu_op_db_eval(bk):
    """rrelu in eval mode (the deterministic slope) on PyTorch's samples with training=False."""
    n = check_op_db("nn.functional.rrelu", F.rrelu, max_samples=few(bk),
                    skip=lambda s: s.kwargs.get("training", False))
    assert n > 0


GRADCHECK = {
    "celu": lambda x: F.celu(x, 0.7), "selu": F.selu, "glu": lambda x: F.glu(x, 1),
    "hardshrink": F.hardshrink, "softshrink": lambda x: F.softshrink(x, 0.4), "hardsigmoid": F.hardsigmoid,
    "hardswish": F.hardswish, "relu6": lambda x: F.relu6(x * 3.0), "logsigmoid": F.logsigmoid,
    "mish": F.mish, "softmin": lambda x: F.softmin(x, 1), "softsign": F.softsign, "tanhshrink": F.tanhshrink,
    "threshold": lambda x: F.threshold(x, 0.5, -2.0), "rrelu_eval": F.rrelu,
}


@pytest.mark.parametrize("name", sorted(GRADCHECK))
def test_gradcheck(bk, name):
    assert xn.gradcheck(GRADCHECK[name], xn.tensor(X, dtype="float64"))


def test_gradcheck_prelu_weight(bk):
    assert xn.gradcheck(F.prelu, xn.tensor(X, dtype="float64"), xn.tensor([0.3], dtype="float64"))
    x3 = xn.tensor(X.reshape(1, 2, 4), dtype="float64")
    assert xn.gradcheck(F.prelu, x3, xn.tensor([0.3, -0.2], dtype="float64"))


def test_gradgradcheck_smooth_ones(bk):
    for fn in (F.selu, F.mish, F.logsigmoid, F.softsign, lambda x: F.glu(x, 1)):
        assert xn.gradgradcheck(fn, xn.tensor(X, dtype="float64"))


def test_hardswish_kinks_match_torch(bk):
    torch = pytest.importorskip("torch")
    x = np.array([-4.0, -3.0, 0.0, 3.0, 4.0])
    t = torch.tensor(x, requires_grad=True)
    torch.nn.functional.hardswish(t).sum().backward()
    a = xn.tensor(x, dtype="float64", requires_grad=True)
    F.hardswish(a).sum().backward()
    np.testing.assert_allclose(to_np(a.grad), t.grad.numpy())


def test_rrelu_training_draws_slopes_in_range_from_the_seed(bk):
    x = xn.tensor(-np.ones((64, 8)), dtype="float64")
    xn.manual_seed(5)
    y1 = to_np(F.rrelu(x, 0.1, 0.3, training=True))
    xn.manual_seed(5)
    y2 = to_np(nn.RReLU(0.1, 0.3)(x))
    np.testing.assert_array_equal(y1, y2)
    slopes = -y1
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3 and slopes.std() > 0.03
    assert len(np.unique(slopes)) > 400
    pos = to_np(F.rrelu(xn.tensor(np.ones((2, 3)), dtype="float64"), training=True))
    np.testing.assert_array_equal(pos, 1.0)
    m = nn.RReLU(0.1, 0.3).eval()
    np.testing.assert_allclose(to_np(m(x)), -0.2)


def test_rrelu_gradient_is_the_drawn_slope(bk):
    x = xn.tensor(-np.ones((3, 4)), dtype="float64", requires_grad=True)
    y = F.rrelu(x, 0.1, 0.3, training=True)
    y.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), -to_np(y))


def test_reprs_and_parameters(bk):
    assert repr(nn.CELU(0.5)) == "CELU(alpha=0.5)"
    assert repr(nn.Threshold(0.1, 20)) == "Threshold(threshold=0.1, value=20)"
    assert repr(nn.Softshrink()) == "Softshrink(0.5)"
    p = nn.PReLU(3, init=0.1)
    assert [n for n, _ in p.named_parameters()] == ["weight"] and p.weight.shape == (3,)
    np.testing.assert_allclose(to_np(p.weight), 0.1, rtol=1e-6)


def test_bad_input(bk):
    with pytest.raises(ValueError, match="even"):
        F.glu(xn.tensor(np.ones((2, 3))), -1)
    with pytest.raises(ValueError, match="channels"):
        nn.PReLU(3)(xn.tensor(np.ones((2, 4))))
    with pytest.raises(ValueError, match="lower"):
        F.rrelu(xn.tensor(np.ones(3)), 0.5, 0.1)
    with pytest.raises(ValueError, match="4-D"):
        nn.Softmax2d()(xn.tensor(np.ones((2, 3))))
