"""Semantics of the backward walk, higher-order gradients and the errors."""

import numpy as np
import pytest

import xpnet as xn
from xpnet import backend as B

from conftest import to_np


def test_worked_example_chain_rule(bk):
    w = xn.tensor(3.0, requires_grad=True)
    b = xn.tensor(4.0, requires_grad=True)
    z = (2 * w + 3 * b) * (2 * b + 1)
    z.backward()
    assert z.item() == 162 and w.grad.item() == 18 and b.grad.item() == 63


def test_value_used_twice_sums_its_gradients(bk):
    x = xn.tensor(3.0, requires_grad=True)
    y = x * x + x          # dy/dx = 2x + 1
    y.backward()
    assert x.grad.item() == 7


def test_diamond_graph_visits_each_node_once(bk):
    x = xn.tensor(2.0, dtype="float64", requires_grad=True)
    a = x * 3.0
    b, c = a * a, a + 1.0   # both use a
    (b * c).backward()      # d/dx [(3x)^2 (3x+1)] = 3 * (2*6*7 + 36) = 360
    assert x.grad.item() == pytest.approx(360.0)


def test_broadcast_gradient_is_reduced_to_the_input_shape(bk):
    x = xn.tensor(np.ones((2, 3)), requires_grad=True)
    b = xn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    s = xn.tensor(np.ones((2, 1)), requires_grad=True)
    ((x + b) * s).sum().backward()
    assert b.grad.shape == (3,) and s.grad.shape == (2, 1)
    np.testing.assert_allclose(to_np(b.grad), [2, 2, 2])
    np.testing.assert_allclose(to_np(s.grad), [[9], [9]])


def test_gradients_accumulate_across_backward_calls(bk):
    x = xn.tensor(1.0, requires_grad=True)
    (x * 2.0).backward()
    (x * 3.0).backward()
    assert x.grad.item() == 5
    x.zero_grad()
    assert x.grad is None


def test_graph_is_freed_unless_retained(bk):
    x = xn.tensor(2.0, requires_grad=True)
    y = xn.exp(x) * x
    y.backward(retain_graph=True)
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_second_derivative_of_cube(bk):
    x = xn.tensor(2.0, requires_grad=True)
    (g,) = xn.autograd.grad(x ** 3, x, create_graph=True)
    assert g.item() == 12
    (g2,) = xn.autograd.grad(g, x)
    assert g2.item() == 12  # 6x at 2


def test_backward_create_graph_then_differentiate_grad(bk):
    x = xn.tensor(1.5, dtype="float64", requires_grad=True)
    y = xn.sin(x) * x
    y.backward(create_graph=True)
    gx = x.grad                 # cos(x) x + sin(x)
    x.zero_grad()
    gx.backward()               # -sin(x) x + 2 cos(x)
    assert x.grad.item() == pytest.approx(-np.sin(1.5) * 1.5 + 2 * np.cos(1.5))


def _mlp_loss(params, x, y):
    w1, b1, w2, b2 = params
    h = xn.tanh(x @ w1 + b1)
    return xn.mean((h @ w2 + b2 - y) ** 2)


def test_hessian_vector_product_matches_finite_differences(bk):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (4, 2), (2,)]
    host = [rng.normal(size=s) for s in shapes]
    vec = [rng.normal(size=s) for s in shapes]
    x, y = xn.tensor(rng.normal(size=(5, 3)), dtype="float64"), xn.tensor(rng.normal(size=(5, 2)), dtype="float64")

    def grads_at(values):
        ps = [xn.tensor(v, dtype="float64", requires_grad=True) for v in values]
        return ps, xn.autograd.grad(_mlp_loss(ps, x, y), ps, create_graph=True)

    ps, gs = grads_at(host)
    dot = sum((g * xn.tensor(v, dtype="float64")).sum() for g, v in zip(gs, vec))
    hvp = [to_np(h) for h in xn.autograd.grad(dot, ps)]
    eps = 1e-5
    plus = [to_np(g) for g in grads_at([h + eps * v for h, v in zip(host, vec)])[1]]
    minus = [to_np(g) for g in grads_at([h - eps * v for h, v in zip(host, vec)])[1]]
    for h, p, m in zip(hvp, plus, minus):
        np.testing.assert_allclose(h, (p - m) / (2 * eps), rtol=1e-5, atol=1e-8)


def test_no_grad_records_nothing(bk):
    x = xn.tensor(1.0, requires_grad=True)
    with xn.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.creator is None
    assert xn.is_grad_enabled()

    @xn.no_grad()
    def f(t):
        return t * 3.0
    assert not f(x).requires_grad


def test_functional_grad_and_value_and_grad(bk):
    f = lambda x, y: (x * x * y).sum()  # noqa: E731
    value, (gx, gy) = xn.value_and_grad(f, argnums=(0, 1))(xn.tensor([1.0, 2.0]), xn.tensor([3.0, 4.0]))
    assert value.item() == 1 * 3 + 4 * 4
    np.testing.assert_allclose(to_np(gx), [6.0, 16.0])
    np.testing.assert_allclose(to_np(gy), [1.0, 4.0])
    np.testing.assert_allclose(to_np(xn.grad(f)(xn.tensor([1.0, 2.0]), xn.tensor([3.0, 4.0]))), [6.0, 16.0])


def test_autograd_grad_leaves_dot_grad_alone(bk):
    x = xn.tensor([1.0, 2.0], requires_grad=True)
    (g,) = xn.autograd.grad((x * x).sum(), x)
    np.testing.assert_allclose(to_np(g), [2.0, 4.0])
    assert x.grad is None


def test_unused_input_is_reported(bk):
    x = xn.tensor(1.0, requires_grad=True)
    z = xn.tensor(1.0, requires_grad=True)
    with pytest.raises(ValueError, match="input 1 .* was not used"):
        xn.autograd.grad(x * 2.0, [x, z])
    assert xn.autograd.grad(x * 2.0, [x, z], allow_unused=True)[1] is None


def test_retain_grad_on_intermediate(bk):
    x = xn.tensor(2.0, requires_grad=True)
    y = x * 3.0
    y.retain_grad()
    (y * y).backward()
    assert y.grad.item() == 12 and x.grad.item() == 36


def test_backward_on_non_scalar_needs_a_gradient(bk):
    x = xn.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"shape \(2,\) needs grad="):
        y.backward()
    y.backward(xn.tensor([1.0, 10.0]))
    np.testing.assert_allclose(to_np(x.grad), [2.0, 20.0])


def test_backward_on_constant_is_explained(bk):
    with pytest.raises(RuntimeError, match="does not require grad"):
        (xn.tensor(1.0) * 2.0).backward()


def test_shape_mismatch_names_the_operation_and_both_shapes(bk):
    a = xn.tensor(np.ones((2, 3)))
    b = xn.tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"add: cannot apply to inputs float64\(2, 3\), float64\(4, 5\)"):
        a + b
    with pytest.raises(ValueError, match=r"matmul: cannot apply to inputs float64\(2, 3\), float64\(4, 5\)"):
        a @ b


def test_mixing_backends_names_both_and_the_fix():
    a = xn.tensor([1.0], backend="numpy")
    b = xn.tensor([1.0], backend="array_api_strict")
    with pytest.raises(TypeError, match=r"two backends \(numpy and array_api_strict\).*tensor.to"):
        a + b


def test_int_tensor_cannot_require_grad(bk):
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients, got int64"):
        xn.tensor([1, 2], requires_grad=True)


def test_item_numpy_detach(bk):
    x = xn.tensor([[1.5]], requires_grad=True)
    assert x.item() == 1.5 and float(x) == 1.5
    assert isinstance(x.numpy(), np.ndarray)
    d = (x * 2).detach()
    assert not d.requires_grad and d.creator is None
    with pytest.raises(ValueError, match="one element"):
        xn.tensor([1.0, 2.0]).item()


def test_comparisons_are_boolean_and_not_differentiable(bk):
    x = xn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert not m.requires_grad
    np.testing.assert_array_equal(to_np(m), [False, True, True])
    np.testing.assert_array_equal(to_np(x == 2.0), [False, True, False])


def test_take_out_of_range_is_an_error(bk):
    x = xn.tensor(np.ones((3, 2)))
    with pytest.raises(IndexError, match="index 3 is out of range: expected -3 <= index < 3"):
        xn.take(x, xn.tensor([0, 3]))
        B.flush_checks()  # deferred on an accelerator: raised at the next read


def test_float32_gradients_keep_float32(bk):
    x = xn.tensor([1.0, 2.0], requires_grad=True)
    (xn.exp(x) * 2.0).sum().backward()
    assert xn.backend.dtype_name(x.grad.dtype) == "float32"


def test_astype_gradient_returns_in_the_source_dtype(bk):
    x = xn.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    (x.astype("float32") * 3.0).sum().backward()
    assert xn.backend.dtype_name(x.grad.dtype) == "float64"
    np.testing.assert_allclose(to_np(x.grad), [3.0, 3.0])
