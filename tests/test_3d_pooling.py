"""Conv3d, ConvTranspose3d, MaxPool3d, AvgPool3d, AdaptiveAvgPool3d, AdaptiveMaxPool1d/2d/3d,
LPPool1d/2d/3d (the N-d conv/pool code at nd=3 and its new kinds): PyTorch's module_db and op_db
samples, gradient checks on every backend, bad input."""

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from conftest import to_np
from torch_samples import check_module_db, check_op_db

RNG = np.random.default_rng(4)
MODULES = ["Conv3d", "ConvTranspose3d", "MaxPool3d", "AvgPool3d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
           "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "LPPool1d", "LPPool2d", "LPPool3d", "MaxUnpool1d", "MaxUnpool2d",
           "MaxUnpool3d", "FractionalMaxPool2d", "FractionalMaxPool3d"]


@pytest.mark.parametrize("name", MODULES)
def test_module_db(bk, name):
    if bk.name == "jax" and name not in ("AdaptiveMaxPool2d", "LPPool2d"):
        pytest.skip("jax: two modules (each shape compiles); test_gradcheck covers the rest")
    n = 1 if bk.name in ("jax", "array_api_strict") else None  # op by op, 3-D samples are slow there
    assert check_module_db(name, max_samples=n, rtol=1e-6, atol=1e-9) > 0


# evenly spaced subsets of the longest sample lists (576, 288 and 144 samples; all pass with XPNET_FULL_SAMPLES=1)
STEPS = {"max_pool3d": 6, "max_unpool2d": 3, "max_unpool1d": 2}
OPS = ["conv3d", "conv_transpose3d", "max_pool3d", "avg_pool3d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
       "adaptive_max_pool2d", "adaptive_max_pool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d"]


@pytest.mark.parametrize("name", OPS)
def test_op_db(bk, name):
    if bk.name != "numpy":
        pytest.skip("numpy only: the 3-D samples are large; the module samples run everywhere")
    n = check_op_db(f"nn.functional.{name}", getattr(F, name), rtol=1e-6, atol=1e-9, step=STEPS.get(name, 1))
    assert n > 0


def test_gradcheck(bk):
    x = xn.tensor(RNG.standard_normal((1, 1, 3, 2, 2)), dtype="float64")  # small: jax compiles each op
    w = xn.tensor(RNG.standard_normal((2, 1, 2, 2, 1)), dtype="float64")
    assert xn.gradcheck(lambda x, w: F.conv3d(x, w, padding=1, stride=(2, 1, 1)), x, w)
    if bk.name == "jax":
        return  # jax: conv3d only (each op compiles); the others are checked on every other backend
    assert xn.gradcheck(lambda x, w: F.conv_transpose3d(x, w[:1], stride=2), x, w)
    assert xn.gradcheck(lambda x: F.max_pool3d(x, 2, padding=(1, 0, 0)), x)
    assert xn.gradcheck(lambda x: F.avg_pool3d(x, (2, 2, 1)), x)
    assert xn.gradcheck(lambda x: F.adaptive_avg_pool3d(x, (2, 1, 1)), x)
    assert xn.gradcheck(lambda x: F.adaptive_max_pool3d(x, (2, 1, 1)), x)
    assert xn.gradcheck(lambda x: F.lp_pool2d(x[0], 2.0, 2), x)
    _, idx = F.max_pool2d(x[0], 2, return_indices=True)
    assert xn.gradcheck(lambda v: F.max_unpool2d(v, idx, 2, output_size=(2, 2)), t_(RNG.standard_normal((1, 3, 1, 1))))


def t_(a):
    return xn.tensor(a, dtype="float64")


def test_fractional_max_pool_draws_from_the_seed(bk):
    if bk.name == "jax":
        pytest.skip("jax: the windows are built on the host, the same for every backend")
    x = xn.tensor(RNG.standard_normal((2, 3, 9, 9)), dtype="float64")
    xn.manual_seed(1)
    a = to_np(nn.FractionalMaxPool2d(2, output_ratio=0.5)(x))
    xn.manual_seed(1)
    b = to_np(F.fractional_max_pool2d(x, 2, output_ratio=0.5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 3, 4, 4)
    assert xn.gradcheck(lambda v: F.fractional_max_pool2d(v, 2, output_size=3, _random_samples=xn.tensor(
        np.full((1, 1, 2), 0.3))), xn.tensor(RNG.standard_normal((1, 1, 5, 4)), dtype="float64"))


def test_bad_input(bk):
    with pytest.raises(ValueError, match="5 dimensions"):
        nn.Conv3d(1, 1, 2)(xn.tensor(np.zeros((2, 3))))
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_max_pool2d(xn.tensor(np.zeros((1, 1, 4, 4))), (2, 2, 2))
