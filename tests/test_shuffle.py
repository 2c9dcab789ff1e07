"""PixelShuffle, PixelUnshuffle, ChannelShuffle: PyTorch's op_db samples (no module_db samples
exist for them), own comparisons with PyTorch, gradient checks on every backend, bad input."""

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from conftest import to_np
from torch_samples import check_op_db

RNG = np.random.default_rng(8)


@pytest.mark.parametrize("name", ["pixel_shuffle", "pixel_unshuffle", "channel_shuffle"])
def test_op_db(bk, name):
    if bk.name == "jax":
        pytest.skip("jax: covered by test_modules_match_torch")
    assert check_op_db(f"nn.functional.{name}", getattr(F, name)) > 0


def test_modules_match_torch(bk):
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((2, 8, 2, 4))
    for name, arg in (("PixelShuffle", 2), ("PixelUnshuffle", 2), ("ChannelShuffle", 4)):
        want = getattr(torch.nn, name)(arg)(torch.tensor(x)).numpy()
        got = getattr(nn, name)(arg)(xn.tensor(x, dtype="float64"))
        np.testing.assert_array_equal(to_np(got), want, err_msg=name)


def test_gradcheck_and_inverse(bk):
    x = xn.tensor(RNG.standard_normal((1, 4, 2, 2)), dtype="float64")
    assert xn.gradcheck(lambda a: F.pixel_shuffle(a, 2) * F.pixel_shuffle(a, 2), x)
    np.testing.assert_array_equal(to_np(F.pixel_unshuffle(F.pixel_shuffle(x, 2), 2)), to_np(x))
    assert xn.gradcheck(lambda a: F.channel_shuffle(a, 2) ** 2, x)


def test_bad_input(bk):
    with pytest.raises(ValueError, match="divisible by upscale_factor"):
        nn.PixelShuffle(2)(xn.tensor(np.zeros((1, 3, 2, 2))))
    with pytest.raises(ValueError, match="divisible by downscale_factor"):
        nn.PixelUnshuffle(2)(xn.tensor(np.zeros((1, 3, 3, 2))))
    with pytest.raises(ValueError, match="groups=3"):
        nn.ChannelShuffle(3)(xn.tensor(np.zeros((1, 4, 2))))
