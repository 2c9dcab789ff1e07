"""Every differentiable operation, gradient-checked in float64 on every backend,
first and (for the smooth ones) second order."""

import numpy as np
import pytest

import xpnet as xn

RNG = np.random.default_rng(0)


def randn(*shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, size=shape)


def positive(*shape):
    return RNG.uniform(0.5, 2.0, size=shape)


def away_from_zero(*shape):
    """Values with |x| >= 0.3, so that kinks (relu, abs, ...) are not straddled by eps."""
    x = RNG.uniform(0.3, 2.0, size=shape)
    return x * RNG.choice([-1.0, 1.0], size=shape)


def distinct(*shape):
    """Values all different from each other (max/min without ties)."""
    n = int(np.prod(shape))
    return RNG.permutation(n).reshape(shape) * 0.37 - n * 0.1


# name -> (function, inputs, check second order too)
CASES = {
    "add": (lambda a, b: a + b, [randn(3, 4), randn(4)], True),
    "add_scalar_left": (lambda a: 2.5 + a, [randn(3)], True),
    "sub": (lambda a, b: a - b, [randn(3, 1), randn(1, 4)], True),
    "rsub_scalar": (lambda a: 1.0 - a, [randn(3)], True),
    "mul": (lambda a, b: a * b, [randn(2, 3), randn(2, 3)], True),
    "mul_broadcast": (lambda a, b: a * b, [randn(2, 3, 4), randn(3, 1)], True),
    "div": (lambda a, b: a / b, [randn(3, 2), positive(3, 2)], True),
    "rdiv_scalar": (lambda a: 3.0 / a, [positive(4)], True),
    "pow_scalar": (lambda a: a ** 3, [randn(5)], True),
    "pow_fractional": (lambda a: a ** 1.5, [positive(5)], True),
    "pow_tensor": (lambda a, b: a ** b, [positive(4), randn(4)], True),
    "rpow_scalar": (lambda a: 2.0 ** a, [randn(4)], True),
    "neg": (lambda a: -a, [randn(3)], True),
    "abs": (lambda a: abs(a), [away_from_zero(6)], True),
    "exp": (xn.exp, [randn(5)], True),
    "log": (xn.log, [positive(5)], True),
    "log1p": (xn.log1p, [positive(5)], True),
    "expm1": (xn.expm1, [randn(5)], True),
    "sqrt": (xn.sqrt, [positive(5)], True),
    "sin": (xn.sin, [randn(5)], True),
    "cos": (xn.cos, [randn(5)], True),
    "tanh": (xn.tanh, [randn(5)], True),
    "sigmoid": (xn.sigmoid, [randn(2, 5, low=-8, high=8)], True),
    "relu": (xn.relu, [away_from_zero(2, 5)], True),
    "leaky_relu": (lambda a: xn.leaky_relu(a, 0.2), [away_from_zero(7)], True),
    "maximum": (xn.maximum, [randn(3, 4), randn(4)], True),
    "minimum": (xn.minimum, [randn(3, 4), randn(3, 4)], True),
    "maximum_scalar": (lambda a: xn.maximum(a, 0.1), [away_from_zero(5)], True),
    "where": (lambda a, b: xn.where(a > 0, a * 2.0, b), [away_from_zero(3, 4), randn(4)], True),
    "clip": (lambda a: xn.clip(a, -1.0, 1.0), [np.array([-1.8, -0.5, 0.2, 0.9, 1.6])], True),
    "matmul_2d": (xn.matmul, [randn(3, 4), randn(4, 2)], True),
    "matmul_batched": (lambda a, b: a @ b, [randn(2, 3, 4), randn(4, 5)], True),
    "matmul_batched_both": (lambda a, b: a @ b, [randn(2, 1, 3, 4), randn(3, 4, 2)], True),
    "matmul_vec_mat": (xn.matmul, [randn(4), randn(4, 3)], True),
    "matmul_mat_vec": (xn.matmul, [randn(3, 4), randn(4)], True),
    "matmul_vec_vec": (xn.matmul, [randn(4), randn(4)], True),
    "sum_all": (lambda a: a.sum(), [randn(3, 4)], True),
    "sum_axis": (lambda a: xn.sum(a, axis=1), [randn(3, 4, 2)], True),
    "sum_axes_keepdims": (lambda a: xn.sum(a, axis=(0, 2), keepdims=True), [randn(3, 4, 2)], True),
    "mean": (lambda a: xn.mean(a, axis=-1), [randn(3, 4)], True),
    "max_all": (lambda a: a.max(), [distinct(3, 4)], False),
    "max_axis": (lambda a: xn.max(a, axis=0), [distinct(3, 4)], False),
    "min_axis_keepdims": (lambda a: xn.min(a, axis=1, keepdims=True), [distinct(3, 4)], False),
    "logsumexp": (lambda a: xn.logsumexp(a, axis=1), [randn(3, 4)], True),
    "logsumexp_all": (lambda a: xn.logsumexp(a), [randn(3, 4)], True),
    "var": (lambda a: xn.var(a, axis=0), [randn(5, 3)], True),
    "var_biased": (lambda a: xn.var(a, correction=0), [randn(5, 3)], True),
    "reshape": (lambda a: a.reshape(4, 3) * xn.tensor(np.arange(12.0).reshape(4, 3), dtype="float64"), [randn(3, 4)], True),
    "permute": (lambda a: a.permute(2, 0, 1) * xn.tensor(np.arange(24.0).reshape(4, 2, 3), dtype="float64"), [randn(2, 3, 4)], True),
    "transpose": (lambda a: a.transpose(0, 1) @ a, [randn(3, 2)], True),
    "broadcast_to": (lambda a: xn.broadcast_to(a, (3, 2, 4)) * xn.tensor(np.arange(24.0).reshape(3, 2, 4), dtype="float64"), [randn(2, 1)], True),
    "squeeze_unsqueeze": (lambda a: xn.unsqueeze(xn.squeeze(a, 1), 0) ** 2, [randn(3, 1, 2)], True),
    "concat": (lambda a, b: xn.concat([a, b, a], axis=1) ** 2, [randn(2, 3), randn(2, 1)], True),
    "stack": (lambda a, b: xn.stack([a, b], axis=1) ** 2, [randn(2, 3), randn(2, 3)], True),
    "pad": (lambda a: xn.pad(a, ((1, 0), (2, 1)), value=0.5) ** 2, [randn(2, 3)], True),
    "slice": (lambda a: a[1:, ::2] ** 2, [randn(3, 5)], True),
    "slice_int_none": (lambda a: a[1, None, ...] ** 2, [randn(3, 5)], True),
    "take": (lambda a: xn.take(a, xn.tensor([2, 0, 2, 1]), axis=0) ** 2, [randn(3, 2)], True),
    "take_axis1": (lambda a: xn.take(a, xn.tensor([1, 1, 0]), axis=1) ** 2, [randn(2, 3)], True),
    "index_list": (lambda a: a[[0, 0, 2]] ** 2, [randn(3, 2)], True),
    "take_along_axis": (lambda a: xn.take_along_axis(a, xn.tensor([[0, 2], [1, 1], [2, 0]]), axis=1) ** 2, [randn(3, 3)], True),
    "flatten": (lambda a: a.flatten(1) ** 2, [randn(2, 3, 2)], True),
    "composite_mlp": (lambda x, w, b: xn.tanh(x @ w + b).sum(axis=1), [randn(4, 3), randn(3, 5), randn(5)], True),
    "reused_value": (lambda a: a * a * xn.sin(a) + a, [randn(4)], True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(bk, name):
    fn, inputs, _ = CASES[name]
    xs = [xn.tensor(x, dtype="float64") for x in inputs]
    assert xn.gradcheck(fn, *xs)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c[2]))
def test_gradgradcheck(bk, name):
    fn, inputs, _ = CASES[name]
    xs = [xn.tensor(x, dtype="float64") for x in inputs]
    assert xn.gradgradcheck(fn, *xs)


def test_gradcheck_reports_a_wrong_gradient(bk):
    class BadSquare(xn.Function):
        def forward(self, xp, x):
            return x * x

        def backward(self, g, y, x):
            return g * x * 3.0,  # should be 2x

    with pytest.raises(xn.GradcheckError, match=r"input 0 \(shape \(3,\)\) at index \(\d,\): analytic gradient .* but numerical"):
        xn.gradcheck(lambda a: BadSquare()(a), xn.tensor([1.0, 2.0, 3.0], dtype="float64"))


def test_gradcheck_requires_float64(bk):
    with pytest.raises(TypeError, match="float32.*float64"):
        xn.gradcheck(xn.exp, xn.tensor([1.0, 2.0]))
