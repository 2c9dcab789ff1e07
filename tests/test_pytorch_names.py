"""PyTorch habits: both axis spellings, creation functions, dtypes, Tensor methods, signatures."""

import inspect

import numpy as np
import pytest

import xpnet as xn
from xpnet import nn
from xpnet.nn import functional as F

from conftest import to_np

# ------------------------------------------------------------------ (a) one rule for axis names

# (callable, extra positional args); each is called with dim=/keepdim= and with axis=/keepdims=
REDUCTIONS = ["sum", "mean", "max", "min", "logsumexp", "var", "std", "argmax", "argmin"]


@pytest.mark.parametrize("name", REDUCTIONS)
def test_reductions_take_both_spellings(bk, name):
    x = xn.tensor(np.arange(12, dtype=np.float32).reshape(3, 4) ** 1.5)
    want = getattr(np, {"logsumexp": "max"}.get(name, name))(to_np(x), axis=1, keepdims=True)
    for f in (getattr(xn, name), lambda t, **k: getattr(t, name)(**k)):
        a = f(x, dim=1, keepdim=True)
        b = f(x, axis=1, keepdims=True)
        c = f(x, dim=1, keepdims=True)
        assert a.shape == b.shape == c.shape == (3, 1)
        np.testing.assert_array_equal(to_np(a), to_np(b))
        if name not in ("logsumexp", "var", "std"):
            np.testing.assert_allclose(to_np(a), want, rtol=1e-6)


def test_both_spellings_at_once_is_a_type_error(bk):
    x = xn.tensor([[1.0, 2.0]])
    for call in (lambda: x.sum(dim=0, axis=0), lambda: xn.mean(x, keepdim=True, keepdims=True),
                 lambda: F.softmax(x, dim=0, axis=0), lambda: nn.Softmax(dim=0, axis=1)):
        with pytest.raises(TypeError, match="two spellings of one argument"):
            call()


def test_shape_functions_take_both_spellings(bk):
    x = xn.tensor(np.ones((2, 1, 3), np.float32))
    assert x.squeeze(dim=1).shape == xn.squeeze(x, axis=1).shape == (2, 3)
    assert x.unsqueeze(dim=0).shape == xn.unsqueeze(x, axis=0).shape == (1, 2, 1, 3)
    assert xn.cat([x, x], dim=2).shape == xn.concat([x, x], axis=2).shape == (2, 1, 6)
    assert xn.stack([x, x], dim=1).shape == (2, 2, 1, 3)
    idx = xn.tensor([[0, 0, 2], [1, 2, 0]])
    y = xn.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    g = xn.gather(y, 1, idx)  # PyTorch's order: (input, dim, index)
    np.testing.assert_array_equal(to_np(g), [[0, 0, 2], [4, 5, 3]])
    np.testing.assert_array_equal(to_np(xn.gather(y, dim=1, index=idx)), to_np(g))
    np.testing.assert_array_equal(to_np(xn.take_along_axis(y, idx, axis=1)), to_np(g))


def test_softmax_takes_both_spellings(bk):
    x = xn.tensor(np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32))
    for f in (F.softmax, F.log_softmax):
        np.testing.assert_array_equal(to_np(f(x, dim=0)), to_np(f(x, axis=0)))
    np.testing.assert_array_equal(to_np(nn.Softmax(axis=0)(x)), to_np(F.softmax(x, dim=0)))
    np.testing.assert_array_equal(to_np(nn.LogSoftmax(axis=0)(x)), to_np(F.log_softmax(x, dim=0)))
    assert nn.Unflatten(dim=1, unflattened_size=(3, 1))(x).shape == (2, 3, 1)
    assert nn.Unflatten(axis=1, unflattened_size=(3, 1))(x).shape == (2, 3, 1)


def _modules():
    for name in dir(nn):
        obj = getattr(nn, name)
        if (isinstance(obj, type) and issubclass(obj, nn.Module) and obj is not nn.Module
                and "forward" in vars(obj)):
            yield obj


@pytest.mark.parametrize("cls", list(_modules()), ids=lambda c: c.__name__)
def test_module_forward_first_argument_is_input(cls):
    first = list(inspect.signature(cls.forward).parameters)[1]
    assert first == ("query" if cls is nn.MultiheadAttention else "input")


def test_module_forward_by_keyword(bk):
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    x = xn.tensor([[1.0, 2.0]])
    np.testing.assert_array_equal(to_np(model(input=x)), to_np(model(x)))
