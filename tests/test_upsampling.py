"""F.interpolate / Upsample in every mode (nearest, nearest-exact, linear, bilinear, bicubic,
trilinear, area) with align_corners and scale_factor: PyTorch's op_db samples (outputs and
gradients, float64), the module against PyTorch, gradient checks on every backend, bad input."""

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from conftest import to_np
from torch_samples import check_op_db

RNG = np.random.default_rng(12)
MODES = ["nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area"]


@pytest.mark.parametrize("mode", MODES)
def test_op_db(bk, mode):
    if bk.name != "numpy" and mode not in ("bilinear", "nearest"):
        pytest.skip("numpy runs every mode; the others two (the matrices are the same on every backend)")
    if bk.name == "jax":
        pytest.skip("jax: covered by test_gradcheck")
    assert check_op_db("nn.functional.interpolate", F.interpolate, variant=mode, max_samples=12) > 0


@pytest.mark.parametrize("name", ["upsample_nearest", "upsample_bilinear"])
def test_op_db_upsample(bk, name):
    if bk.name != "numpy":
        pytest.skip("numpy: the same matrices as interpolate")
    assert check_op_db(f"nn.functional.{name}", getattr(F, name)) > 0


def test_upsample_module_matches_torch(bk):
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((1, 2, 3, 4))
    for kw in ({"scale_factor": 2, "mode": "nearest"}, {"size": (5, 7), "mode": "bilinear", "align_corners": True},
               {"scale_factor": 1.5, "mode": "bicubic"}):
        want = torch.nn.Upsample(**kw)(torch.tensor(x)).numpy()
        np.testing.assert_allclose(to_np(nn.Upsample(**kw)(xn.tensor(x, dtype="float64"))), want, rtol=1e-10,
                                   atol=1e-12, err_msg=str(kw))


def test_gradcheck(bk):
    x = xn.tensor(RNG.standard_normal((1, 1, 3, 2)), dtype="float64")
    for kw in ({"scale_factor": 2, "mode": "bilinear"}, {"size": (2, 3), "mode": "bicubic", "align_corners": True},
               {"size": (4, 3), "mode": "nearest-exact"}, {"size": (2, 1), "mode": "area"})[:1 if bk.name == "jax" else 4]:
        assert xn.gradcheck(lambda a: F.interpolate(a, **kw), x)


def test_bad_input(bk):
    x = xn.tensor(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="mode='cubic'"):
        F.interpolate(x, scale_factor=2, mode="cubic")
    with pytest.raises(ValueError, match="5-D"):
        F.interpolate(x, scale_factor=2, mode="trilinear")
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(x, scale_factor=2, mode="nearest", align_corners=True)
    with pytest.raises(ValueError, match="exactly one"):
        F.interpolate(x)
    with pytest.raises(NotImplementedError, match="antialias"):
        F.interpolate(x, scale_factor=2, mode="bilinear", antialias=True)
