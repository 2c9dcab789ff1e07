"""Activations: gradient checks (first and second order, float64), PyTorch agreement
(forward and gradient, float64 and float32), stability for large |x|, modules, errors."""

import math
import warnings

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from xpnet.nn.functional.activation import erf

from conftest import to_np

RNG = np.random.default_rng(7)


def away_from_zero(*shape, lo=0.3, hi=2.5):
    """|x| in [lo, hi] with random signs, so that kinks at 0 are not straddled by eps."""
    return RNG.uniform(lo, hi, size=shape) * RNG.choice([-1.0, 1.0], size=shape)


def smooth(*shape):
    return RNG.uniform(-3.0, 3.0, size=shape)


# Every input has shape (2, 4) (two tests use (2, 2, 2)): JAX compiles each operation once per
# shape, so few shapes keep the file fast there.
# softplus(beta=2, threshold=3) switches at x = 1.5; hardtanh(-1.5, 0.5) clips at -1.5 and 0.5:
# inputs on both sides of each switch, none within eps of it.
SOFTPLUS_X = np.array([[-4.0, -1.2, 0.3, 1.1], [1.4, 1.6, 2.5, -0.1]])
HARDTANH_X = np.array([[-2.3, -1.4, -0.2, 0.4], [0.6, 1.7, -1.6, 0.1]])

# name -> (xpnet function, torch function name and kwargs, input)
CASES = {
    "sigmoid": (F.sigmoid, ("sigmoid", {}), smooth(2, 4)),
    "tanh": (F.tanh, ("tanh", {}), smooth(2, 4)),
    "relu": (F.relu, ("relu", {}), away_from_zero(2, 4)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), ("leaky_relu", {"negative_slope": 0.2}), away_from_zero(2, 4)),
    "softmax_last": (lambda x: F.softmax(x, -1), ("softmax", {"dim": -1}), smooth(2, 4)),
    "softmax_dim0": (lambda x: F.softmax(x, 0), ("softmax", {"dim": 0}), smooth(2, 4)),
    "softmax_dim1_3d": (lambda x: F.softmax(x, 1), ("softmax", {"dim": 1}), smooth(2, 2, 2)),
    "log_softmax_last": (lambda x: F.log_softmax(x, -1), ("log_softmax", {"dim": -1}), smooth(2, 4)),
    "log_softmax_dim1_3d": (lambda x: F.log_softmax(x, 1), ("log_softmax", {"dim": 1}), smooth(2, 2, 2)),
    "elu": (F.elu, ("elu", {}), away_from_zero(2, 4)),
    "elu_alpha": (lambda x: F.elu(x, 0.7), ("elu", {"alpha": 0.7}), away_from_zero(2, 4)),
    "gelu": (F.gelu, ("gelu", {}), smooth(2, 4)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), ("gelu", {"approximate": "tanh"}), smooth(2, 4)),
    "silu": (F.silu, ("silu", {}), smooth(2, 4)),
    "softplus": (F.softplus, ("softplus", {}), smooth(2, 4)),
    "softplus_beta_threshold": (lambda x: F.softplus(x, 2.0, 3.0), ("softplus", {"beta": 2.0, "threshold": 3.0}),
                                SOFTPLUS_X),
    "hardtanh": (F.hardtanh, ("hardtanh", {}), HARDTANH_X),
    "hardtanh_bounds": (lambda x: F.hardtanh(x, -1.5, 0.5), ("hardtanh", {"min_val": -1.5, "max_val": 0.5}),
                        HARDTANH_X),
    "erf": (erf, None, smooth(2, 4)),
}


def torch_fn(spec):
    torch = pytest.importorskip("torch")
    name, kwargs = spec
    return lambda t: getattr(torch.nn.functional, name)(t, **kwargs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(bk, name):
    fn, _, x = CASES[name]
    assert xn.gradcheck(fn, xn.tensor(x, dtype="float64"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradgradcheck(bk, name):
    fn, _, x = CASES[name]
    assert xn.gradgradcheck(fn, xn.tensor(x, dtype="float64"))


def _xn_forward_backward(fn, x, w, dtype):
    t = xn.tensor(x, dtype=dtype, requires_grad=True)
    y = fn(t)
    (y * xn.tensor(w, dtype=dtype)).sum().backward()
    return to_np(y), to_np(t.grad)


def _torch_forward_backward(fn, x, w, dtype):
    import torch
    t = torch.tensor(x, dtype=getattr(torch, dtype), requires_grad=True)
    y = fn(t)
    (y * torch.tensor(w, dtype=getattr(torch, dtype))).sum().backward()
    return y.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("dtype,rtol,atol", [("float64", 1e-8, 1e-12), ("float32", 1e-4, 1e-6)])
@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n][1] is not None))
def test_matches_torch(bk, name, dtype, rtol, atol):
    fn, spec, x = CASES[name]
    tfn = torch_fn(spec)
    w = RNG.uniform(0.5, 1.5, size=x.shape)
    y, gx = _xn_forward_backward(fn, x, w, dtype)
    ty, tgx = _torch_forward_backward(tfn, x, w, dtype)
    assert y.dtype == np.dtype(dtype) and gx.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, ty, rtol=rtol, atol=atol)
    np.testing.assert_allclose(gx, tgx, rtol=rtol, atol=atol)


def test_kinks_match_torch(bk):
    """At x exactly on a kink the gradient is PyTorch's: relu'(0) = 0, hardtanh' = 0 at the bounds
    (and gelu, whose backward divides by x, is right at 0)."""
    x = np.array([[-1.0, 0.0, 1.0, 2.0], [-2.0, -0.5, 0.0, 0.5]])
    w = np.ones((2, 4))
    for fn, spec in [(F.relu, ("relu", {})), (lambda a: F.hardtanh(a, -1.0, 1.0), ("hardtanh", {})),
                     (lambda a: F.leaky_relu(a, 0.1), ("leaky_relu", {"negative_slope": 0.1})),
                     (F.elu, ("elu", {})), (F.gelu, ("gelu", {}))]:  # gelu'(0) = 1/2
        _, gx = _xn_forward_backward(fn, x, w, "float64")
        _, tgx = _torch_forward_backward(torch_fn(spec), x, w, "float64")
        np.testing.assert_allclose(gx, tgx, rtol=1e-12)


LARGE = np.array([[-1000.0, -30.0, 0.0, 30.0], [1000.0, -1000.0, 1.0, -1.0]])


def _ref_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_large_inputs_stay_finite(bk, dtype):
    x = LARGE
    lse = x.max(axis=1, keepdims=True) + np.log(np.exp(x - x.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True))
    with np.errstate(over="ignore"):
        expected = {
            "sigmoid": (F.sigmoid, 1 / (1 + np.exp(-x))),
            "softmax": (lambda a: F.softmax(a, -1), _ref_softmax(x)),
            "log_softmax": (lambda a: F.log_softmax(a, -1), x - lse),
            "softplus": (F.softplus, np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))),
            "silu": (F.silu, x / (1 + np.exp(-x))),
            "gelu": (F.gelu, np.array([[-0.0, -0.0, 0.0, 30.0],
                                       [1000.0, -0.0, 0.8413447460685429, -0.15865525393145707]])),
            "elu": (F.elu, np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
        }
    for name, (fn, want) in expected.items():
        t = xn.tensor(x, dtype=dtype, requires_grad=True)
        y = fn(t)
        (y * xn.tensor(np.arange(1.0, 9.0).reshape(2, 4), dtype=dtype)).sum().backward()
        assert np.all(np.isfinite(to_np(y))), name
        assert np.all(np.isfinite(to_np(t.grad))), name
        np.testing.assert_allclose(to_np(y), want, rtol=1e-5, atol=1e-6 if dtype == "float32" else 1e-12, err_msg=name)


def test_softmax_rows_sum_to_one_and_agree_with_log_softmax(bk):
    x = xn.tensor(smooth(2, 4) * 50, dtype="float64")
    p = F.softmax(x, dim=1)
    np.testing.assert_allclose(to_np(p).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.log(to_np(p)), to_np(F.log_softmax(x, dim=1)), rtol=1e-10, atol=1e-12)


def test_softmax_dtype_argument(bk):
    y = F.softmax(xn.tensor(smooth(2, 4)), dim=-1, dtype="float64")
    assert str(to_np(y).dtype) == "float64"


def test_softmax_masked_entries(bk):
    """-inf entries (attention masks) get probability 0 and a finite gradient."""
    x = xn.tensor(np.array([[0.5, -np.inf, 1.0, 0.0], [-np.inf, 2.0, 0.0, -np.inf]]), dtype="float64",
                  requires_grad=True)
    y = F.softmax(x, -1)
    (y * xn.tensor(np.arange(1.0, 9.0).reshape(2, 4), dtype="float64")).sum().backward()
    assert to_np(y)[0, 1] == 0.0 and to_np(y)[1, 0] == 0.0 and to_np(y)[1, 3] == 0.0
    np.testing.assert_allclose(to_np(y).sum(axis=1), 1.0)
    assert np.all(np.isfinite(to_np(x.grad)))


def test_erf_matches_math_erf(bk):
    xs = np.concatenate([np.linspace(-7, 7, 141), np.logspace(-10, 0.5, 25), -np.logspace(-10, 0.5, 25),
                         [0.0, 0.4999, 0.5, 0.5001, 12.0, -40.0, 1e300, np.inf, -np.inf]])
    want = np.array([math.erf(v) for v in xs])
    got = to_np(erf(xn.tensor(xs, dtype="float64")))
    np.testing.assert_allclose(got, want, rtol=2e-15, atol=0)
    got32 = to_np(erf(xn.tensor(np.clip(xs, -1e30, 1e30), dtype="float32")))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, want.astype(np.float32), rtol=2e-6, atol=1e-37)
    assert np.isnan(to_np(erf(xn.tensor(np.full((2, 4), np.nan), dtype="float64")))).all()


# ------------------------------------------------------------------ modules

MODULES = [
    (nn.Sigmoid(), F.sigmoid, "Sigmoid()"),
    (nn.Tanh(), F.tanh, "Tanh()"),
    (nn.ReLU(), F.relu, "ReLU()"),
    (nn.LeakyReLU(0.3), lambda x: F.leaky_relu(x, 0.3), "LeakyReLU(negative_slope=0.3)"),
    (nn.Softmax(dim=0), lambda x: F.softmax(x, 0), "Softmax(dim=0)"),
    (nn.LogSoftmax(dim=1), lambda x: F.log_softmax(x, 1), "LogSoftmax(dim=1)"),
    (nn.ELU(alpha=0.5), lambda x: F.elu(x, 0.5), "ELU(alpha=0.5)"),
    (nn.GELU(), F.gelu, "GELU(approximate='none')"),
    (nn.GELU("tanh"), lambda x: F.gelu(x, "tanh"), "GELU(approximate='tanh')"),
    (nn.SiLU(), F.silu, "SiLU()"),
    (nn.Softplus(beta=2.0, threshold=10.0), lambda x: F.softplus(x, 2.0, 10.0), "Softplus(beta=2.0, threshold=10.0)"),
    (nn.Hardtanh(-2.0, 2.0), lambda x: F.hardtanh(x, -2.0, 2.0), "Hardtanh(min_val=-2.0, max_val=2.0)"),
]


@pytest.mark.parametrize("i", range(len(MODULES)), ids=[m[2] for m in MODULES])
def test_module_equals_functional(bk, i):
    module, fn, text = MODULES[i]
    x = xn.tensor(smooth(2, 4) * 2)
    np.testing.assert_array_equal(to_np(module(x)), to_np(fn(x)))
    assert repr(module) == text
    assert list(module.parameters()) == [] and module.state_dict() == {}


def test_module_defaults_match_torch():
    torch = pytest.importorskip("torch")
    pairs = [(nn.LeakyReLU(), torch.nn.LeakyReLU(), ["negative_slope"]),
             (nn.ELU(), torch.nn.ELU(), ["alpha"]),
             (nn.GELU(), torch.nn.GELU(), ["approximate"]),
             (nn.Softplus(), torch.nn.Softplus(), ["beta", "threshold"]),
             (nn.Hardtanh(), torch.nn.Hardtanh(), ["min_val", "max_val"]),
             (nn.Softmax(), torch.nn.Softmax(), ["dim"]),
             (nn.LogSoftmax(), torch.nn.LogSoftmax(), ["dim"])]
    for ours, theirs, attrs in pairs:
        for a in attrs:
            assert getattr(ours, a) == getattr(theirs, a), (type(ours).__name__, a)


def test_softmax_module_without_dim_follows_torch_legacy_choice(bk):
    torch = pytest.importorskip("torch")
    for shape in [(8,), (2, 4), (2, 2, 2), (2, 2, 1, 2)]:
        x = smooth(*shape)
        with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
            y = nn.Softmax()(xn.tensor(x, dtype="float64"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ty = torch.nn.Softmax()(torch.tensor(x)).numpy()
        np.testing.assert_allclose(to_np(y), ty, rtol=1e-12)


def test_modules_in_a_model(bk):
    model = nn.Sequential(nn.Linear(4, 4, dtype="float64"), nn.SiLU(), nn.Linear(4, 4, dtype="float64"),
                          nn.LogSoftmax(dim=1))
    x = xn.tensor(smooth(2, 4), dtype="float64")
    assert xn.gradcheck(lambda a: model(a), x)


def test_errors(bk):
    x = xn.tensor(smooth(2, 4))
    with pytest.raises(ValueError, match=r"softmax: dim 2 is out of range .*shape \(2, 4\).* -2 <= dim < 2"):
        F.softmax(x, 2)
    with pytest.raises(ValueError, match="log_softmax: dim -3 is out of range"):
        F.log_softmax(x, -3)
    with pytest.raises(ValueError, match="approximate='exact' is not supported: expected 'none' or 'tanh'"):
        F.gelu(x, approximate="exact")
    with pytest.raises(ValueError, match="approximate='fast'"):
        nn.GELU("fast")
    with pytest.raises(ValueError, match=r"max_val \(-1\) must not be less than min_val \(1\)"):
        F.hardtanh(x, 1, -1)
    with pytest.raises(ValueError, match=r"Hardtanh: max_val \(0.0\) must be greater than min_val \(0.0\)"):
        nn.Hardtanh(0.0, 0.0)


def test_softmax_of_an_all_masked_row_is_zero_not_nan(bk):
    x = xn.tensor(np.array([[-np.inf, -np.inf, -np.inf], [0.0, 1.0, -np.inf]]), dtype="float64", requires_grad=True)
    y = F.softmax(x, dim=1)
    np.testing.assert_array_equal(to_np(y)[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(to_np(y)[1], [1 / (1 + np.e), np.e / (1 + np.e), 0.0])
    (y * xn.tensor(np.arange(6.0).reshape(2, 3), dtype="float64")).sum().backward()
    assert np.isfinite(to_np(x.grad)).all()
