"""F.pad with PyTorch's signature (constant, reflect, replicate, circular; negative pads crop),
the 15 padding modules, and Conv padding_mode: PyTorch's module_db and op_db samples, gradient
checks on every backend, bad input."""

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from conftest import to_np
from torch_samples import check_module_db, check_op_db

RNG = np.random.default_rng(11)
MODULES = [f"{k}Pad{n}d" for k in ("Zero", "Constant", "Reflection", "Replication", "Circular") for n in (1, 2, 3)]


@pytest.mark.parametrize("name", MODULES)
def test_module_db(bk, name):
    if bk.name == "jax" and not name.endswith("2d"):
        pytest.skip("jax: the 2d modules only (each new shape compiles)")
    assert check_module_db(name, max_samples=1 if bk.name == "jax" else None) > 0


@pytest.mark.parametrize("variant", ["constant", "reflect", "replicate", "replicate_negative", "circular"])
def test_op_db_pad(bk, variant):
    if bk.name == "jax":
        pytest.skip("jax: covered by the module samples and the gradient checks")
    assert check_op_db("nn.functional.pad", F.pad, variant=variant) > 0


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_gradcheck(bk, mode):
    x = xn.tensor(RNG.standard_normal((1, 2, 3, 4)), dtype="float64")
    assert xn.gradcheck(lambda a: F.pad(a, (2, 1, -1, 2), mode=mode), x)


def test_gradgradcheck(bk):
    x = xn.tensor(RNG.standard_normal((2, 4)), dtype="float64")
    assert xn.gradgradcheck(lambda a: F.pad(a, (3, 2), mode="reflect") ** 2, x)


def test_values_small_case(bk):
    x = xn.tensor([[[0.0, 1.0, 2.0, 3.0]]], dtype="float64")
    got = {m: to_np(F.pad(x, (2, 3), mode=m))[0, 0].tolist() for m in ("reflect", "replicate", "circular")}
    assert got == {"reflect": [2, 1, 0, 1, 2, 3, 2, 1, 0], "replicate": [0, 0, 0, 1, 2, 3, 3, 3, 3],
                   "circular": [2, 3, 0, 1, 2, 3, 0, 1, 2]}
    assert to_np(F.pad(x, (1, -2), value=9.0))[0, 0].tolist() == [9, 0, 1]
    assert to_np(F.pad(x, (-1, 1), mode="circular"))[0, 0].tolist() == [1, 2, 3, 1]


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv_padding_mode_matches_torch(bk, mode):
    torch = pytest.importorskip("torch")
    if bk.name == "jax":
        pytest.skip("jax: the convolutions (tests/test_conv_pool.py) and each padding mode (test_gradcheck, "
                    "test_module_db) are checked on jax; this composes them, the same code on every backend")
    tm = torch.nn.Conv2d(2, 3, (3, 2), padding=(1, 2), padding_mode=mode, dtype=torch.float64)
    m = nn.Conv2d(2, 3, (3, 2), padding=(1, 2), padding_mode=mode).to("float64")
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = RNG.standard_normal((2, 2, 4, 3))
    tx = torch.tensor(x, requires_grad=True)
    X = xn.tensor(x, dtype="float64", requires_grad=True)
    ty, y = tm(tx), m(X)
    np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    (ty ** 2).sum().backward()
    (y ** 2).sum().backward()
    np.testing.assert_allclose(to_np(X.grad), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_np(m.weight.grad), tm.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    if mode != "zeros":
        assert f"padding_mode='{mode}'" in repr(m)
    same = nn.Conv1d(2, 2, 4, padding="same", padding_mode=mode).to("float64")
    assert same(xn.tensor(RNG.standard_normal((1, 2, 5)), dtype="float64")).shape == (1, 2, 5)


def test_bad_input(bk):
    x = xn.tensor(np.ones((1, 2, 3)))
    with pytest.raises(ValueError, match="mode='wrap'"):
        F.pad(x, (1, 1), mode="wrap")
    with pytest.raises(ValueError, match="even length"):
        F.pad(x, (1, 1, 1))
    with pytest.raises(ValueError, match="smaller than the size 3"):
        F.pad(x, (3, 0), mode="reflect")
    with pytest.raises(ValueError, match="at most the size 3"):
        F.pad(x, (0, 4), mode="circular")
    with pytest.raises(ValueError, match="takes no value"):
        F.pad(x, (1, 1), mode="replicate", value=2.0)
    with pytest.raises(ValueError, match="size -1"):
        F.pad(x, (-2, -2))
    with pytest.raises(ValueError, match="1 or 2"):
        F.pad(xn.tensor(np.ones(3)), (1, 1), mode="reflect")
    with pytest.raises(ValueError, match="4 ints"):
        nn.ReflectionPad2d((1, 2))
    with pytest.raises(ValueError, match="3-D or 4-D"):
        nn.ZeroPad2d(1)(xn.tensor(np.ones(3)))
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv1d(1, 1, 2, padding_mode="wrap")
    with pytest.raises(ValueError, match="transposed"):
        nn.ConvTranspose1d(1, 1, 2, padding_mode="reflect")
