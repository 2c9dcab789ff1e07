"""Numbers at the edges (issue 11): every input PyTorch accepts gives PyTorch's values and
gradients, one section per kind of fault, each with several members, on every backend."""

import math

import numpy as np
import pytest

import xpnet as xn
from xpnet import backend as B
from xpnet.autograd.gradcheck import gradcheck

from conftest import to_np


def _torch():
    return pytest.importorskip("torch")


def _few_on_jax(bk, case, keep):
    """JAX eager compiles every new shape (slow): a wide parametrization runs a few ``keep`` cases there."""
    if bk.name == "jax" and case not in keep:
        pytest.skip("a few cases of this kind run on JAX (eager compiles per shape); all run elsewhere")


def _leaf(a, dtype="float64"):
    return xn.tensor(np.asarray(a, dtype=float), dtype=dtype, requires_grad=True)


# ---------------------------------------------------------------- 1. advanced indexing backward adds up

X24 = np.arange(24.0).reshape(2, 3, 4)
ADVANCED_KEYS = {
    "repeated_pairs": ([0, 0], [1, 1]),
    "slice_then_repeated": (slice(None), [0, 0, -1]),
    "separated_arrays": ([0, 1], slice(None), [0, -1]),
    "int_then_array": (0, slice(None), [0, 1]),
    "none_ellipsis": (None, [1, 1], Ellipsis, [2, 2]),
    "bool_mask_full": (X24 > 5,),
    "bool_mask_inner": (slice(None), X24[0] > 5),
    "broadcast_arrays": (np.array([[0], [1]]), [0, 2]),
    "one_list": ([1, -1, 1],),
    "bool_list": ([True, False],),
    "two_d_index": (np.array([[1, 0], [-1, 1]]),),
    "bool_list_inner": (slice(None), [False, True, True]),
    "strided_slices": (slice(None, None, 2), [2, 0, 2], slice(1, None)),
}


@pytest.mark.parametrize("name", sorted(ADVANCED_KEYS))
def test_advanced_indexing_matches_torch_and_accumulates(bk, name):
    torch = _torch()
    _few_on_jax(bk, name, {"repeated_pairs", "separated_arrays", "bool_mask_inner", "int_then_array"})
    key = ADVANCED_KEYS[name]
    x = _leaf(X24)
    y = x[tuple(xn.tensor(k) if isinstance(k, np.ndarray) else k for k in key)]  # tensors inside the tuple
    (y * y).sum().backward()
    xt = torch.tensor(X24, requires_grad=True)
    yt = xt[tuple(torch.tensor(k) if isinstance(k, np.ndarray) else k for k in key)]
    (yt * yt).sum().backward()
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(to_np(y), yt.detach().numpy())
    np.testing.assert_allclose(to_np(x.grad), xt.grad.numpy())


def test_repeated_index_gradient_is_counted_twice(bk):
    x = _leaf(np.arange(6.0).reshape(2, 3))
    x[[0, 0], [1, 1]].sum().backward()
    assert to_np(x.grad)[0, 1] == 2.0 and to_np(x.grad).sum() == 2.0


def test_advanced_indexing_gradcheck(bk):
    x = _leaf(np.random.default_rng(0).normal(size=(3, 4)))
    assert gradcheck(lambda a: a[[0, 2, 0], :][:, [1, 1, 3]] * a[[2, 2], [0, 0]][0], x)


# ---------------------------------------------------------------- 2. negative indices follow PyTorch

def test_take_along_axis_wraps_negative_as_torch_take_along_dim(bk):
    torch = _torch()
    x = xn.tensor(np.arange(6.0).reshape(2, 3), dtype="float64")
    got = xn.take_along_axis(x, xn.tensor([[0], [-1]]), axis=1)
    np.testing.assert_array_equal(to_np(got), torch.take_along_dim(
        torch.arange(6.0).reshape(2, 3), torch.tensor([[0], [-1]]), 1).numpy())
    np.testing.assert_array_equal(to_np(got), [[0.0], [5.0]])


def test_take_and_list_index_wrap_negative(bk):
    x = _leaf(np.arange(6.0).reshape(3, 2))
    y = xn.take(x, [-1, 0, -1], axis=0)
    np.testing.assert_array_equal(to_np(y), [[4, 5], [0, 1], [4, 5]])
    y.sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), [[1, 1], [0, 0], [2, 2]])
    np.testing.assert_array_equal(to_np(x[[-3]]), [[0, 1]])


@pytest.mark.parametrize("call, index", [
    (lambda x: xn.take(x, [0, -4]), "-4"),
    (lambda x: xn.take_along_axis(x, [[0, 1], [-3, 0], [0, 0]], axis=1), "-3"),
    (lambda x: xn.gather(x, 1, [[0, 1], [-1, 0], [0, 0]]), "-1"),
    (lambda x: x[[3]], "3"),
    (lambda x: x[:, [0, 2]], "2"),
    (lambda x: xn.nn.functional.embedding(xn.tensor([[0, -1]]), x), "-1"),
])
def test_indices_out_of_range_raise_index_error_naming_them(bk, call, index):
    x = xn.tensor(np.ones((3, 2)))
    with pytest.raises(IndexError, match=f"index {index} "):
        call(x)
        B.flush_checks()


def test_deferred_index_check_wraps_and_raises_later(bk, monkeypatch):
    """On an accelerator the check waits for the next read (no sync); negatives are still wrapped."""
    monkeypatch.setattr(B.checks, "on_host", lambda a: False)
    x = xn.tensor(np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(B._host_copy(xn.take(x, [-1]).data), [[4, 5]])
    assert not B._pending_checks or B.flush_checks() is None
    xn.take(x, [0, 7])  # clipped meanwhile: no out-of-bounds read
    with pytest.raises(IndexError, match="index 7 is out of range"):
        B.flush_checks()


def test_integer_index_out_of_range_is_index_error(bk):
    t = xn.tensor(np.arange(6.0).reshape(3, 2))
    with pytest.raises(IndexError, match="index 3 is out of range"):
        t[3]
    with pytest.raises(IndexError, match="index -3 is out of range"):
        t[1, -3]
    with pytest.raises(IndexError, match="too many indices"):
        t[0, 0, 0]


# ---------------------------------------------------------------- 11. the Tensor protocol

def test_len_iter_and_array_protocol(bk):
    t = xn.tensor([[1.0, 5.0], [3.0, 2.0], [0.0, -1.0]])
    assert len(t) == 3
    rows = list(t)
    assert len(rows) == 3 and isinstance(rows[0], xn.Tensor) and rows[2].tolist() == [0.0, -1.0]
    assert [float(v) for v in t[0]] == [1.0, 5.0]
    a = np.asarray(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (3, 2)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert np.argmax(t) == 1 and np.argmax(t, axis=1).tolist() == [1, 0, 0]
    with pytest.raises(TypeError, match="0-d"):
        len(xn.tensor(1.0))
    with pytest.raises(TypeError, match="0-d"):
        iter(xn.tensor(1.0))


def test_argmax_of_trainer_predict(bk):
    from xpnet import nn, optim
    xn.manual_seed(0)
    model = nn.Linear(2, 3)
    trainer = xn.Trainer(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1), verbose=0)
    X = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    out = trainer.predict(X)
    labels = np.argmax(out, axis=1)
    assert labels.shape == (5,) and labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, np.argmax(to_np(out), axis=1))


# ---------------------------------------------------------------- 3. ignored elements: exact zero gradients

LOSS_CASES = {
    "cross_entropy": lambda F, x, y, w: F.cross_entropy(x, y),
    "cross_entropy_weight": lambda F, x, y, w: F.cross_entropy(x, y, weight=w),
    "cross_entropy_smoothing": lambda F, x, y, w: F.cross_entropy(x, y, label_smoothing=0.2),
    "cross_entropy_weight_smoothing": lambda F, x, y, w: F.cross_entropy(x, y, weight=w, label_smoothing=0.1),
    "nll_loss": lambda F, x, y, w: F.nll_loss(x, y),
    "nll_loss_weight": lambda F, x, y, w: F.nll_loss(x, y, weight=w),
}


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
@pytest.mark.parametrize("targets", [[-100, -100, -100], [2, -100, 0], [[1, -100], [-100, -100], [3, 0]]])
def test_ignored_targets_get_exact_zero_gradients_as_torch(bk, name, targets):
    torch = _torch()
    _few_on_jax(bk, (name, len(targets), targets[0] == -100), {(name, 3, True)})
    import torch.nn.functional as TF
    rng = np.random.default_rng(1)
    y0 = np.array(targets)
    x0 = rng.normal(size=(3, 4) if y0.ndim == 1 else (3, 4, 2))
    w0 = rng.uniform(0.5, 2.0, size=4)
    x = _leaf(x0)
    loss = LOSS_CASES[name](xn.nn.functional, x, xn.tensor(y0), xn.tensor(w0, dtype="float64"))
    loss.backward()
    xt = torch.tensor(x0, requires_grad=True)
    lt = LOSS_CASES[name](TF, xt, torch.tensor(y0), torch.tensor(w0))
    lt.backward()
    np.testing.assert_allclose(to_np(loss), lt.detach().numpy(), rtol=1e-12, equal_nan=True)
    g = to_np(x.grad)
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-10, atol=1e-15)
    assert np.all(np.isfinite(g))
    ignored = np.moveaxis(g, 1, -1)[y0 == -100]
    assert np.all(ignored == 0.0)


def test_mean_over_zero_total_weight_is_nan_with_zero_gradient(bk):
    """All kept targets in a class of weight 0: NaN loss; xpnet's gradient is 0 where PyTorch's is NaN
    (docs/pytorch-differences.md)."""
    F = xn.nn.functional
    for loss_fn in (F.cross_entropy, F.nll_loss):
        x = _leaf(np.random.default_rng(2).normal(size=(3, 4)))
        loss = loss_fn(x, xn.tensor([1, 1, 1]), weight=xn.tensor([1.0, 0.0, 1.0, 1.0], dtype="float64"))
        loss.backward()
        assert math.isnan(float(loss)) and np.all(to_np(x.grad) == 0.0)


# ---------------------------------------------------------------- 4. reductions over zero or too few elements

@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name, call, shape", [
    ("mean_empty_axis", lambda m, x: m.mean(x, 0), (0, 3)),
    ("mean_empty_all", lambda m, x: m.mean(x), (0, 3)),
    ("sum_empty", lambda m, x: m.sum(x, 0), (0, 3)),
    ("var_one", lambda m, x: m.var(x), (1,)),
    ("std_one", lambda m, x: m.std(x), (1,)),
    ("var_axis_one", lambda m, x: m.var(x, 1), (3, 1)),
    ("var_correction_above_n", lambda m, x: m.var(x, correction=3), (2,)),
    ("var_correction_n", lambda m, x: m.var(x, 0, correction=2), (2, 3)),
    ("logsumexp_empty", lambda m, x: m.logsumexp(x, 0), (0, 3)),
])
def test_small_reductions_follow_ieee_as_torch(bk, name, call, shape):
    torch = _torch()
    x0 = np.arange(math.prod(shape), dtype=float).reshape(shape) * 0.5 + 1.0
    got = to_np(call(xn, xn.tensor(x0, dtype="float64")))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = call(torch, torch.tensor(x0)).numpy()
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name, call, shape", [
    ("softmax", lambda F, x: F.softmax(x, -1), (5, 0, 0)),
    ("log_softmax", lambda F, x: F.log_softmax(x, 0), (5, 0, 0)),
    ("softmax_empty_batch", lambda F, x: F.softmax(x, 1), (0, 4)),
    ("group_norm", lambda F, x: F.group_norm(x, 1), (0, 2)),
    ("layer_norm", lambda F, x: F.layer_norm(x, (4,)), (0, 4)),
])
def test_empty_tensors_flow_through(bk, name, call, shape):
    x = _leaf(np.zeros(shape))
    y = call(xn.nn.functional, x)
    assert y.shape == shape
    y.sum().backward()
    assert x.grad.shape == shape


def test_batch_norm_training_on_an_empty_batch(bk):
    torch = _torch()
    bn = xn.nn.BatchNorm1d(5)
    x = _leaf(np.zeros((0, 5, 9)), "float32")
    y = bn(x)
    y.sum().backward()
    tbn = torch.nn.BatchNorm1d(5)
    assert y.shape == tuple(tbn(torch.zeros(0, 5, 9)).shape) == (0, 5, 9)
    np.testing.assert_array_equal(to_np(bn.running_mean), tbn.running_mean.numpy())
    np.testing.assert_array_equal(to_np(bn.running_var), tbn.running_var.numpy())
    assert x.grad.shape == (0, 5, 9) and np.all(to_np(bn.weight.grad) == 0)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(xn.tensor(np.zeros((1, 5)), dtype="float32"))


# ---------------------------------------------------------------- 5. 0-d tensors take axis 0 and -1

ZERO_D = {
    "sum": (lambda m, F, x: m.sum(x, -1), lambda T, TF, x: x.sum(-1)),
    "mean_keepdims": (lambda m, F, x: m.mean(x, 0, keepdims=True), lambda T, TF, x: x.mean(0, keepdim=True)),
    "max": (lambda m, F, x: m.max(x, 0), lambda T, TF, x: x.amax(0)),
    "min": (lambda m, F, x: m.min(x, -1), lambda T, TF, x: x.amin(-1)),
    "logsumexp": (lambda m, F, x: m.logsumexp(x, 0), lambda T, TF, x: x.logsumexp(0)),
    "var": (lambda m, F, x: m.var(x, 0, correction=0), lambda T, TF, x: x.var(0, correction=0)),
    "squeeze": (lambda m, F, x: m.squeeze(x, 0), lambda T, TF, x: x.squeeze(0)),
    "transpose": (lambda m, F, x: m.transpose(x, 0, -1), lambda T, TF, x: x.transpose(0, -1)),
    "gather": (lambda m, F, x: m.gather(x, 0, m.tensor(0)), lambda T, TF, x: T.gather(x, 0, T.tensor(0))),
    "softmax": (lambda m, F, x: F.softmax(x, 0), lambda T, TF, x: TF.softmax(x, 0)),
    "log_softmax": (lambda m, F, x: F.log_softmax(x, -1), lambda T, TF, x: TF.log_softmax(x, -1)),
}


@pytest.mark.parametrize("name", sorted(ZERO_D))
def test_zero_d_tensors_take_axis_0_and_minus_1(bk, name):
    torch = _torch()
    ours, theirs = ZERO_D[name]
    x = _leaf(1.5)
    y = ours(xn, xn.nn.functional, x)
    (y * 3.0).sum().backward()
    xt = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    yt = theirs(torch, torch.nn.functional, xt)
    (yt * 3.0).sum().backward()
    assert y.shape == tuple(yt.shape) == ()
    np.testing.assert_allclose(to_np(y), yt.detach().numpy())
    np.testing.assert_allclose(to_np(x.grad), xt.grad.numpy())


def test_zero_d_argmax_and_bad_axis(bk):
    x = xn.tensor(1.5)
    assert int(xn.argmax(x, 0)) == 0 and int(xn.argmin(x, -1)) == 0
    with pytest.raises(ValueError, match="axis 1 is out of range"):
        xn.sum(x, 1)
    with pytest.raises(ValueError, match="axis -2 is out of range"):
        xn.max(x, -2)


# ---------------------------------------------------------------- 6. half precision accumulates in float32

HALF = {
    "sum": (lambda m, F, x: m.sum(x / 2.0), lambda T, TF, x: (x / 2.0).sum()),
    "mean": (lambda m, F, x: m.mean(x * 200.0, 0), lambda T, TF, x: (x * 200.0).mean(0)),
    "var": (lambda m, F, x: m.var(x * 2.0), lambda T, TF, x: (x * 2.0).var()),
    "std": (lambda m, F, x: m.std(x * 4.0, 0), lambda T, TF, x: (x * 4.0).std(0)),
    "logsumexp": (lambda m, F, x: m.logsumexp(x / 30.0, 0), lambda T, TF, x: (x / 30.0).logsumexp(0)),
    "softmax": (lambda m, F, x: F.softmax(x / 30.0, 0), lambda T, TF, x: TF.softmax(x / 30.0, 0)),
    "log_softmax": (lambda m, F, x: F.log_softmax(x / 30.0, 0), lambda T, TF, x: TF.log_softmax(x / 30.0, 0)),
    "layer_norm": (lambda m, F, x: F.layer_norm(m.reshape(x, (3, 100)), (100,)),
                   lambda T, TF, x: TF.layer_norm(x.reshape(3, 100), (100,))),
    "group_norm": (lambda m, F, x: F.group_norm(m.reshape(x, (1, 3, 100)), 3),
                   lambda T, TF, x: TF.group_norm(x.reshape(1, 3, 100), 3)),
    "batch_norm": (lambda m, F, x: F.batch_norm(m.reshape(x, (100, 3)), None, None, training=True),
                   lambda T, TF, x: TF.batch_norm(x.reshape(100, 3), None, None, training=True)),
}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", sorted(HALF))
def test_half_precision_reductions_accumulate_in_float32(bk, name, dtype):
    """Values whose squares or sums overflow float16 (and round badly in bfloat16): as PyTorch."""
    torch = _torch()
    _few_on_jax(bk, name, {"mean", "var", "layer_norm"})
    if not hasattr(bk.xp, dtype):
        pytest.skip(f"{bk.name} has no {dtype}")
    ours, theirs = HALF[name]
    x0 = np.arange(300.0)
    w0 = np.random.default_rng(3).uniform(-1, 1, size=300)
    x = xn.tensor(x0, dtype=dtype, requires_grad=True)
    y = ours(xn, xn.nn.functional, x)
    xt = torch.tensor(x0, dtype=getattr(torch, dtype), requires_grad=True)
    yt = theirs(torch, torch.nn.functional, xt)
    assert B.dtype_name(y.dtype) == dtype and np.all(np.isfinite(to_np(y).astype(float)))
    want = yt.detach().double().numpy()
    tol = 1e-2 if dtype == "float16" else 4e-2
    np.testing.assert_allclose(to_np(y).astype(float), want, rtol=tol, atol=tol * np.abs(want).max())
    w = w0[:math.prod(y.shape)].reshape(y.shape)
    (y * xn.tensor(w, dtype=dtype)).sum().backward()
    (yt * torch.tensor(w, dtype=getattr(torch, dtype))).sum().backward()
    assert B.dtype_name(x.grad.dtype) == dtype
    gw = xt.grad.double().numpy()
    np.testing.assert_allclose(to_np(x.grad).astype(float), gw, rtol=5 * tol, atol=5 * tol * np.abs(gw).max())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_clip_grad_norm_of_half_gradients(bk, dtype):
    torch = _torch()
    if not hasattr(bk.xp, dtype):
        pytest.skip(f"{bk.name} has no {dtype}")
    p = xn.tensor(np.zeros((1, 2)), dtype=dtype, requires_grad=True)
    q = xn.tensor(np.zeros(3), dtype=dtype, requires_grad=True)
    p.grad, q.grad = xn.tensor([[400.0, 400.0]], dtype=dtype), xn.tensor([300.0, 0.0, -300.0], dtype=dtype)
    total = xn.nn.utils.clip_grad_norm_([p, q], 1.0)
    pt = torch.zeros(1, 2, dtype=getattr(torch, dtype), requires_grad=True)
    qt = torch.zeros(3, dtype=getattr(torch, dtype), requires_grad=True)
    pt.grad = torch.tensor([[400.0, 400.0]], dtype=getattr(torch, dtype))
    qt.grad = torch.tensor([300.0, 0.0, -300.0], dtype=getattr(torch, dtype))
    want = torch.nn.utils.clip_grad_norm_([pt, qt], 1.0)
    assert B.dtype_name(total.dtype) == dtype
    assert float(total) == pytest.approx(float(want), rel=1e-2) and math.isfinite(float(total))
    np.testing.assert_allclose(to_np(p.grad).astype(float), pt.grad.double().numpy(), rtol=1e-2)
    np.testing.assert_allclose(to_np(q.grad).astype(float), qt.grad.double().numpy(), rtol=1e-2)


# ---------------------------------------------------------------- 7. a gradient has its leaf's dtype

DTYPE_MIX = {
    "mul_float64_array": lambda x, a: (x * a).sum(),
    "matmul_float64": lambda x, a: xn.matmul(x, a).sum(),
    "add_then_square": lambda x, a: ((x + a) * (x + a)).sum(),
    "astype_float64": lambda x, a: (xn.astype(x, "float64") * a).sum(),
    "where_float64": lambda x, a: xn.where(a > 3.5, x * a, a).sum(),
}


@pytest.mark.parametrize("name", sorted(DTYPE_MIX))
def test_gradient_has_the_leaf_dtype_as_torch(bk, name):
    torch = _torch()
    x = xn.tensor([1.0, 2.0], requires_grad=True)  # float32
    a = xn.tensor([3.0, 4.0], dtype="float64")
    loss = DTYPE_MIX[name](x, a)
    loss.backward()
    assert B.dtype_name(x.grad.dtype) == "float32"
    xt = torch.tensor([1.0, 2.0], requires_grad=True)
    at = torch.tensor([3.0, 4.0], dtype=torch.float64)
    lt = {"mul_float64_array": lambda: (xt * at).sum(), "matmul_float64": lambda: (xt.double() @ at),
          "add_then_square": lambda: ((xt + at) * (xt + at)).sum(),
          "astype_float64": lambda: (xt.double() * at).sum(),
          "where_float64": lambda: torch.where(at > 3.5, xt * at, at).sum()}[name]()
    lt.backward()
    assert xt.grad.dtype == torch.float32
    np.testing.assert_allclose(to_np(x.grad), xt.grad.numpy(), rtol=1e-6)
    opt = xn.optim.SGD([x], lr=0.1)
    opt.step()  # accepted: the gradient has the parameter's dtype
    assert B.dtype_name(x.dtype) == "float32"


def test_gradient_dtype_in_grad_and_double_backward(bk):
    x = xn.tensor([1.0, 2.0], requires_grad=True)
    a = xn.tensor([3.0, 4.0], dtype="float64")
    (g,) = xn.autograd.grad((x * x * a).sum(), x, create_graph=True)
    assert B.dtype_name(g.dtype) == "float32"
    g.sum().backward()
    assert B.dtype_name(x.grad.dtype) == "float32"
    np.testing.assert_allclose(to_np(x.grad), [6.0, 8.0])
    y = xn.tensor([1.0, 2.0], requires_grad=True)
    y.backward(xn.tensor([1.0, 1.0], dtype="float64"))
    assert B.dtype_name(y.grad.dtype) == "float32"


# ---------------------------------------------------------------- 8. pooling with ceil_mode and a large kernel

POOL_CASES = [  # (op, input shape, kwargs)
    ("max_pool2d", (1, 1, 2, 2), dict(kernel_size=3, stride=2, ceil_mode=True)),
    ("max_pool2d", (2, 1, 3, 2), dict(kernel_size=(4, 3), stride=2, padding=1, ceil_mode=True)),
    ("max_pool1d", (1, 2, 3), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True)),
    ("max_pool1d", (1, 1, 5), dict(kernel_size=2, stride=2, ceil_mode=True)),
    ("avg_pool2d", (1, 1, 2, 2), dict(kernel_size=3, stride=2, ceil_mode=True)),
    ("avg_pool2d", (1, 2, 2, 3), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("avg_pool1d", (1, 1, 2), dict(kernel_size=3, stride=1, padding=1, ceil_mode=True)),
    ("avg_pool1d", (1, 1, 4), dict(kernel_size=3, stride=3, ceil_mode=True)),
]


@pytest.mark.parametrize("op, shape, kw", POOL_CASES)
def test_pooling_ceil_mode_with_a_large_kernel_as_torch(bk, op, shape, kw):
    torch = _torch()
    _few_on_jax(bk, (op, shape), {("max_pool2d", (1, 1, 2, 2)), ("avg_pool1d", (1, 1, 2))})
    x0 = np.random.default_rng(4).normal(size=shape)
    x = _leaf(x0)
    y = getattr(xn.nn.functional, op)(x, **kw)
    xt = torch.tensor(x0, requires_grad=True)
    yt = getattr(torch.nn.functional, op)(xt, **kw)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(to_np(y), yt.detach().numpy(), rtol=1e-12)
    w = np.random.default_rng(5).normal(size=y.shape)
    (y * xn.tensor(w, dtype="float64")).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), xt.grad.numpy(), rtol=1e-12)


def test_max_pool_module_ceil_mode_value(bk):
    y = xn.nn.MaxPool2d(3, 2, ceil_mode=True)(xn.tensor(np.arange(4.0).reshape(1, 1, 2, 2)))
    assert y.shape == (1, 1, 1, 1) and float(y.sum()) == 3.0


def test_pooling_without_an_output_still_raises(bk):
    x = xn.tensor(np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        xn.nn.functional.max_pool2d(x, 3, 2)  # floor mode: no window fits (PyTorch raises too)


# ---------------------------------------------------------------- 9. clamp/clip with tensor bounds

_R = np.random.default_rng(6)
_X = _R.normal(size=(2, 3))
CLIP_CASES = {  # x, min, max (None, a number, or an array: a tensor bound)
    "row_and_column_bounds": (_X, _R.normal(size=3) - 0.5, _R.normal(size=(2, 1)) + 0.5),
    "zero_d_min": (_X, np.array(0.2), None),
    "max_only": (_X, None, _R.normal(size=(2, 1))),
    "min_above_max": (_X, np.full(3, 1.0), np.array(-0.5)),
    "x_broadcast_up": (_X[0], _X * 0 - 0.2, np.array(0.6)),
    "full_bounds": (_X, _X * 0 + 0.1, _X * 0 + _R.normal(size=(2, 3))),
    "full_bounds_swapped": (_X, _X * 0 + 1.0, _X * 0 - 1.0),
    "numbers_swapped": (_X, 1.0, -1.0),
    "numbers": (_X, -0.5, 0.5),
}


@pytest.mark.parametrize("name", sorted(CLIP_CASES))
def test_clip_with_tensor_bounds_as_torch_clamp(bk, name):
    torch = _torch()
    a, lo, hi = CLIP_CASES[name]
    full = np.broadcast_shapes(*[np.shape(v) for v in (a, lo, hi) if isinstance(v, np.ndarray)])

    def ours(v):
        return v if v is None or isinstance(v, float) else _leaf(v)

    def theirs(v):  # PyTorch differentiates a bound only when it has the result's shape
        return v if v is None or isinstance(v, float) else torch.tensor(v, requires_grad=np.shape(v) == full)

    x, lo_, hi_ = ours(a), ours(lo), ours(hi)
    xt, lot, hit = theirs(a), theirs(lo), theirs(hi)
    y = xn.clip(x, lo_, hi_)
    yt = torch.clamp(xt, lot, hit)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_array_equal(to_np(y), yt.detach().numpy())
    w = np.random.default_rng(7).normal(size=y.shape)
    (y * xn.tensor(w, dtype="float64")).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    for p, pt in ((x, xt), (lo_, lot), (hi_, hit)):
        if isinstance(p, xn.Tensor) and pt.requires_grad:
            np.testing.assert_array_equal(to_np(p.grad), pt.grad.numpy())


def test_clip_gradcheck_in_every_bound(bk):
    x = _leaf(np.array([[-2.0, -0.3, 0.4], [0.9, 2.5, 0.1]]))
    lo = _leaf(np.array([-1.0, -0.5, 0.0]))
    hi = _leaf(np.array([[1.0], [0.5]]))
    assert gradcheck(lambda a, b, c: xn.clip(a, b, c) * 1.5, x, lo, hi)
    y = x.clamp(max=hi)  # the method takes tensors too
    assert y.shape == (2, 3) and float(y.max()) <= 1.0


# ---------------------------------------------------------------- 10. argument forms PyTorch accepts

@pytest.mark.parametrize("call, theirs", [
    (lambda x: xn.var(x), lambda x: x.var()),
    (lambda x: xn.var(x, 1, correction=None), lambda x: x.var(1)),
    (lambda x: xn.var(x, 0, unbiased=False), lambda x: x.var(0, unbiased=False)),
    (lambda x: xn.std(x, 1, unbiased=True, keepdims=True), lambda x: x.std(1, unbiased=True, keepdim=True)),
    (lambda x: xn.std(x, correction=2), lambda x: x.std(correction=2)),
    (lambda x: x.var(), lambda x: x.var()),
])
def test_var_std_correction_none_and_unbiased(bk, call, theirs):
    torch = _torch()
    x0 = np.random.default_rng(8).normal(size=(3, 4))
    x = _leaf(x0)
    y = call(x)
    xt = torch.tensor(x0, requires_grad=True)
    yt = theirs(xt)
    np.testing.assert_allclose(to_np(y), yt.detach().numpy(), rtol=1e-12)
    y.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), xt.grad.numpy(), rtol=1e-10)
    with pytest.raises(ValueError, match="not both"):
        xn.var(x, correction=1, unbiased=True)


@pytest.mark.parametrize("widths, torch_pad", [
    (((0, 0), (-1, -1)), (-1, -1)),
    (((-1, 2), (1, -3)), (1, -3, -1, 2)),
    (((-3, 1), (0, 0)), (0, 0, -3, 1)),
])
def test_negative_pad_widths_crop_as_torch(bk, widths, torch_pad):
    torch = _torch()
    x0 = np.arange(12.0).reshape(3, 4)
    x = _leaf(x0)
    y = xn.pad(x, widths, value=7.0)
    xt = torch.tensor(x0, requires_grad=True)
    yt = torch.nn.functional.pad(xt, torch_pad, value=7.0)
    np.testing.assert_array_equal(to_np(y), yt.detach().numpy())
    w = np.random.default_rng(9).normal(size=y.shape)
    (y * xn.tensor(w, dtype="float64")).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), xt.grad.numpy())


def test_pad_cropping_more_than_the_axis_raises(bk):
    with pytest.raises(ValueError, match="axis 1 of size 4 cannot be cropped"):
        xn.pad(xn.tensor(np.zeros((3, 4))), ((0, 0), (3, -5)))


def test_expand_minus_one_keeps_a_size(bk):
    t = _leaf([[1.0], [2.0]])
    e = t.expand(-1, 3)
    assert e.shape == (2, 3) and to_np(e).tolist() == [[1, 1, 1], [2, 2, 2]]
    e.sum().backward()
    assert to_np(t.grad).tolist() == [[3.0], [3.0]]
    assert xn.tensor([1.0, 2.0]).expand(4, -1).shape == (4, 2)
    assert xn.tensor([1.0, 2.0]).expand((2, 3, -1)).shape == (2, 3, 2)
    with pytest.raises(ValueError, match="-1"):
        xn.tensor([1.0, 2.0]).expand(-1, 2)


# ---------------------------------------------------------------- forms the sweep found (on every backend)

def test_sweep_forms_on_every_backend(bk):
    torch = _torch()
    x0 = np.arange(10.0).reshape(5, 2)
    x = _leaf(x0)
    y = xn.take_along_axis(x, xn.tensor([[1], [-1]]), axis=0)  # the index broadcasts (take_along_dim)
    yt = torch.take_along_dim(torch.tensor(x0), torch.tensor([[1], [-1]]), 0)
    assert y.shape == (2, 2)
    np.testing.assert_array_equal(to_np(y), yt.numpy())
    y.sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), [[0, 0], [1, 1], [0, 0], [0, 0], [1, 1]])
    assert xn.squeeze(xn.tensor(np.zeros((5, 1, 3))), (1, 2)).shape == (5, 3)  # size 3 stays, as torch
    assert xn.take(xn.tensor(2.0), [0]).shape == ()  # index_select of a 0-d tensor
    h = xn.nn.functional.hardtanh(xn.tensor([-1.0, 2.0]), 0.5, 0.5)
    assert to_np(h).tolist() == [0.5, 0.5]
    p = xn.nn.functional.avg_pool2d(xn.tensor(np.ones((1, 1, 3, 3))), 3, padding=(1,), stride=(2,))
    assert p.shape == (1, 1, 2, 2)  # a 1-tuple stands for both axes
    assert xn.gather(x, 1, xn.tensor(np.zeros((5, 0), dtype=np.int64))).shape == (5, 0)
