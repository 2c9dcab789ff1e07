"""Convolution and pooling: gradient checks on every backend, comparisons with PyTorch, bad input."""

import math

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from conftest import to_np

RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape)


def distinct(*shape):
    """All values different (no ties inside a pooling window)."""
    n = math.prod(shape)
    return RNG.permutation(n).reshape(shape) * 0.1 - n * 0.05


# JAX compiles every operation it has not seen with these shapes (about 0.1 s each, eagerly;
# one conv forward and backward is ~40 compilations), so on JAX a representative subset of the
# cases runs, to keep this file within its time budget.
JAX_SUBSET = "JAX compiles each new operation shape eagerly: a representative subset of cases runs on JAX"


def jax_subset(bk, keep: bool):
    if bk.name == "jax" and not keep:
        pytest.skip(JAX_SUBSET)


def t64(a, requires_grad=False):
    return xn.tensor(a, dtype="float64", requires_grad=requires_grad)


# ------------------------------------------------------------- gradient checks

CONV_CASES = {
    # name: (function, input shape, weight shape, keyword arguments)
    "1d": (F.conv1d, (2, 2, 7), (3, 2, 3), dict(stride=2, padding=1)),
    "1d_dilated_groups": (F.conv1d, (1, 4, 8), (4, 2, 2), dict(dilation=2, groups=2, padding=2)),
    "1d_same": (F.conv1d, (1, 2, 6), (2, 2, 4), dict(padding="same")),
    "2d": (F.conv2d, (1, 2, 5, 4), (2, 2, 3, 2), dict(stride=(2, 1), padding=(1, 0))),
    "2d_dilated_groups": (F.conv2d, (1, 2, 5, 5), (2, 1, 2, 2), dict(dilation=2, groups=2, stride=2)),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_gradcheck(bk, case):
    jax_subset(bk, case in ("1d", "2d_dilated_groups"))
    fn, xs, ws, kw = CONV_CASES[case]
    assert xn.gradcheck(lambda x, w, b: fn(x, w, b, **kw), t64(randn(*xs)), t64(randn(*ws)), t64(randn(ws[0])))


@pytest.mark.parametrize("case", ["1d", "1d_same", "2d_dilated_groups"])
def test_conv_gradgradcheck(bk, case):
    """Strided convolutions take their input gradient by col2im, stride-1 ones by a convolution."""
    jax_subset(bk, case == "1d_same")
    fn, xs, ws, kw = CONV_CASES[case]
    assert xn.gradgradcheck(lambda x, w: fn(x, w, **kw) ** 2, t64(randn(*xs)), t64(randn(*ws)))


def test_conv_transpose_gradcheck(bk):
    x, w, b = t64(randn(1, 2, 3, 2)), t64(randn(2, 2, 2, 3)), t64(randn(4))
    assert xn.gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2),
                        x, w, b)
    if bk.name != "jax":  # see JAX_SUBSET
        assert xn.gradgradcheck(lambda x, w: F.conv_transpose1d(x, w, stride=2) ** 2,
                                t64(randn(1, 2, 3)), t64(randn(2, 1, 2)))


POOL_CASES = {
    "max1d": lambda x: F.max_pool1d(x, 3, stride=2, padding=1),
    "max2d": lambda x: F.max_pool2d(x, (2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
    "max2d_ceil": lambda x: F.max_pool2d(x, 2, ceil_mode=True),
    "avg1d": lambda x: F.avg_pool1d(x, 3, stride=2, padding=1, count_include_pad=False),
    "avg2d": lambda x: F.avg_pool2d(x, 2, stride=1, padding=1, ceil_mode=True),
    "adaptive1d": lambda x: F.adaptive_avg_pool1d(x, 3),
    "adaptive2d": lambda x: F.adaptive_avg_pool2d(x, (2, 3)),
}


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pool_gradcheck(bk, case):
    jax_subset(bk, case in ("max2d", "avg1d", "adaptive2d"))
    shape = (1, 2, 5) if "1d" in case else (1, 2, 5, 5)
    assert xn.gradcheck(POOL_CASES[case], t64(distinct(*shape)))


def test_pool_gradgradcheck(bk):
    jax_subset(bk, False)
    assert xn.gradgradcheck(lambda x: F.max_pool1d(x, 2) ** 2, t64(distinct(1, 2, 5)))
    assert xn.gradgradcheck(lambda x: F.avg_pool2d(x, 2, padding=1) ** 2, t64(distinct(1, 1, 3, 3)))


def test_unfold_is_the_adjoint_of_fold(bk):
    """<unfold(x), c> == <x, fold(c)>: the gradient pair conv relies on."""
    x, c = t64(randn(2, 3, 6, 5)), t64(randn(2, 3 * 6, 15))
    kw = dict(kernel_size=(3, 2), dilation=(1, 2), padding=1, stride=(2, 1))
    u = F.unfold(x, **kw)
    assert u.shape == (2, 18, 15)
    lhs = float((u * c).sum())
    rhs = float((x * F.fold(c, (6, 5), **kw)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12)


# ----------------------------------------------------------------- vs PyTorch

def _compare(xfn, tfn, inputs, dtype, tol):
    """Forward and every input gradient of xpnet's ``xfn`` and torch's ``tfn`` on the same data."""
    torch = pytest.importorskip("torch")
    tdt = getattr(torch, dtype)
    ts = [torch.tensor(a, dtype=tdt, requires_grad=True) if a is not None else None for a in inputs]
    ty = tfn(*ts)
    gy = randn(*ty.shape)
    ty.backward(torch.tensor(gy, dtype=tdt))
    xs = [xn.tensor(a, dtype=dtype, requires_grad=True) if a is not None else None for a in inputs]
    y = xfn(*xs)
    assert y.shape == tuple(ty.shape)
    assert xn.backend.dtype_name(y.dtype) == dtype
    y.backward(xn.tensor(gy, dtype=dtype))
    np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=tol, atol=tol)
    for x, t in zip(xs, ts):
        if x is not None:
            np.testing.assert_allclose(to_np(x.grad), t.grad.numpy(), rtol=tol, atol=tol)


CONV_TORCH = [
    # (nd, input shape, out channels, kernel, stride, padding, dilation, groups, bias)
    (1, (2, 4, 11), 6, 3, 1, 0, 1, 1, True),
    (1, (2, 4, 11), 6, 4, 3, 2, 2, 2, False),
    (1, (3, 2, 9), 4, 3, 1, "same", 3, 1, True),
    (1, (2, 4, 6), 2, 2, 1, 3, 1, 2, True),  # padding wider than the kernel
    (2, (2, 4, 7, 8), 6, (3, 2), (2, 1), (1, 0), (1, 2), 2, True),
    (2, (1, 3, 9, 8), 3, 2, 3, 2, 2, 3, False),
    (2, (2, 2, 6, 7), 4, (4, 3), 1, "same", (1, 2), 1, True),
    (2, (2, 2, 6, 7), 4, 3, 1, "valid", 1, 1, True),
]


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-8), ("float32", 1e-4)])
@pytest.mark.parametrize("case", range(len(CONV_TORCH)))
def test_conv_matches_torch(bk, case, dtype, tol):
    torch = pytest.importorskip("torch")
    jax_subset(bk, case == 4 and dtype == "float64")
    nd, xs, cout, k, s, p, d, g, bias = CONV_TORCH[case]
    ks = (k,) * nd if isinstance(k, int) else k
    x, w, b = randn(*xs), randn(cout, xs[1] // g, *ks) * 0.3, (randn(cout) if bias else None)
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    _compare(lambda x, w, b=None: getattr(F, f"conv{nd}d")(x, w, b, **kw),
             lambda x, w, b=None: getattr(torch.nn.functional, f"conv{nd}d")(x, w, b, **kw), [x, w, b], dtype, tol)


@pytest.mark.parametrize("nd,xs,kw", [
    (1, (2, 4, 5), dict(stride=2, padding=1, output_padding=1, groups=2)),
    (2, (1, 2, 3, 4), dict(stride=(2, 3), padding=(0, 1), dilation=(2, 1), output_padding=(1, 0))),
])
def test_conv_transpose_matches_torch(bk, nd, xs, kw):
    torch = pytest.importorskip("torch")
    jax_subset(bk, nd == 2)
    g = kw.get("groups", 1)
    w = randn(xs[1], 3, *(3,) * nd)
    _compare(lambda x, w, b: getattr(F, f"conv_transpose{nd}d")(x, w, b, **kw),
             lambda x, w, b: getattr(torch.nn.functional, f"conv_transpose{nd}d")(x, w, b, **kw),
             [randn(*xs), w, randn(3 * g)], "float64", 1e-8)


POOL_TORCH = [
    ("max_pool1d", (2, 3, 9), dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool1d", (2, 3, 9), dict(kernel_size=2, dilation=2, ceil_mode=True)),
    ("max_pool2d", (2, 3, 7, 8), dict(kernel_size=2)),
    ("max_pool2d", (2, 3, 7, 8), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), dilation=(2, 1),
                                      ceil_mode=True)),
    ("avg_pool1d", (2, 3, 9), dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool1d", (2, 3, 9), dict(kernel_size=2, ceil_mode=True, count_include_pad=False)),
    ("avg_pool2d", (2, 3, 7, 8), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("avg_pool2d", (2, 3, 7, 8), dict(kernel_size=(2, 3), padding=1, ceil_mode=True)),
    ("avg_pool2d", (2, 3, 7, 8), dict(kernel_size=2, divisor_override=3)),
    ("adaptive_avg_pool1d", (2, 3, 9), dict(output_size=4)),
    ("adaptive_avg_pool2d", (2, 3, 7, 8), dict(output_size=(3, 5))),
    ("adaptive_avg_pool2d", (2, 3, 7, 8), dict(output_size=(None, 3))),
    ("adaptive_avg_pool2d", (2, 3, 7, 8), dict(output_size=1)),
]


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
@pytest.mark.parametrize("case", range(len(POOL_TORCH)))
def test_pool_matches_torch(bk, case, dtype, tol):
    torch = pytest.importorskip("torch")
    jax_subset(bk, case in (3, 10) and dtype == "float64")
    name, shape, kw = POOL_TORCH[case]
    _compare(lambda x: getattr(F, name)(x, **kw), lambda x: getattr(torch.nn.functional, name)(x, **kw),
             [distinct(*shape)], dtype, tol)


def test_max_pool_return_indices_match_torch(bk):
    torch = pytest.importorskip("torch")
    x = distinct(2, 2, 7, 6)
    kw = dict(kernel_size=3, stride=2, padding=1, dilation=(1, 2), return_indices=True)
    y, i = F.max_pool2d(t64(x), **kw)
    ty, ti = torch.nn.functional.max_pool2d(torch.tensor(x), **kw)
    np.testing.assert_array_equal(to_np(i), ti.numpy())
    np.testing.assert_allclose(to_np(y), ty.numpy())


def test_max_pool_gradient_goes_to_the_first_maximum(bk):
    x = t64([[[1.0, 3.0, 3.0, 0.0, 2.0, 2.0]]], requires_grad=True)
    F.max_pool1d(x, 3).sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), [[[0, 1, 0, 0, 1, 0]]])


# ------------------------------------------------------------------- modules

@pytest.mark.parametrize("layer,tlayer,args,kw,xs", [
    ("Conv1d", "Conv1d", (3, 4, 3), dict(stride=2, padding=1), (2, 3, 9)),
    ("Conv2d", "Conv2d", (4, 6, (3, 2)), dict(dilation=(2, 1), groups=2, bias=False), (2, 4, 7, 5)),
    ("ConvTranspose2d", "ConvTranspose2d", (4, 2, 3), dict(stride=2, output_padding=1), (1, 4, 3, 3)),
])
def test_conv_module_loads_torch_weights(bk, layer, tlayer, args, kw, xs):
    torch = pytest.importorskip("torch")
    jax_subset(bk, layer == "Conv2d")
    torch.manual_seed(0)
    tm = getattr(torch.nn, tlayer)(*args, **kw).double()
    m = getattr(nn, layer)(*args, **kw, dtype="float64")
    assert [(n, p.shape) for n, p in m.named_parameters()] == [(n, tuple(p.shape)) for n, p in tm.named_parameters()]
    m.load_state_dict(tm.state_dict())
    x = randn(*xs)
    tx = torch.tensor(x, requires_grad=True)
    tm(tx).square().sum().backward()
    X = t64(x, requires_grad=True)
    (m(X) ** 2).sum().backward()
    np.testing.assert_allclose(to_np(X.grad), tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    for (n, p), tp in zip(m.named_parameters(), tm.parameters()):
        np.testing.assert_allclose(to_np(p.grad), tp.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=n)


def test_conv_default_init(bk):
    m = nn.Conv2d(4, 6, (3, 2), groups=2)
    assert m.weight.shape == (6, 2, 3, 2) and m.bias.shape == (6,)
    assert xn.backend.dtype_name(m.weight.dtype) == "float32"
    bound = 1 / math.sqrt(2 * 3 * 2)  # kaiming_uniform_(a=sqrt(5)) and the bias both give 1/sqrt(fan_in)
    w, b = to_np(m.weight), to_np(m.bias)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.5 * bound and w.std() > 0.25 * bound
    assert np.abs(b).max() <= bound and len(set(b.tolist())) == 6
    t = nn.ConvTranspose1d(4, 6, 3, groups=2)
    assert t.weight.shape == (4, 3, 3) and np.abs(to_np(t.weight)).max() <= 1 / 3


def test_small_cnn_matches_torch_float32(bk):
    """The benchmark network (three Conv1d, ReLU) in float32, forward and gradients, vs PyTorch."""
    torch = pytest.importorskip("torch")
    jax_subset(bk, False)
    torch.manual_seed(0)
    tnet = torch.nn.Sequential(torch.nn.Conv1d(1, 25, 5, 2, 1), torch.nn.ReLU(), torch.nn.Conv1d(25, 25, 3, 2, 1),
                               torch.nn.ReLU(), torch.nn.Conv1d(25, 25, 3, 2, 1))
    convs = [nn.Conv1d(1, 25, 5, 2, 1), nn.Conv1d(25, 25, 3, 2, 1), nn.Conv1d(25, 25, 3, 2, 1)]
    for c, tc in zip(convs, [tnet[0], tnet[2], tnet[4]]):
        c.load_state_dict(tc.state_dict())
    x = randn(100, 1, 40).astype("float32")
    tx = torch.tensor(x, requires_grad=True)
    ty = tnet(tx)
    ty.square().mean().backward()
    X = xn.tensor(x, requires_grad=True)
    y = convs[2](xn.relu(convs[1](xn.relu(convs[0](X)))))
    assert y.shape == (100, 25, 5)
    (y ** 2).mean().backward()
    np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_np(X.grad), tx.grad.numpy(), rtol=1e-4, atol=1e-6)
    for c, tc in zip(convs, [tnet[0], tnet[2], tnet[4]]):
        np.testing.assert_allclose(to_np(c.weight.grad), tc.weight.grad.numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(to_np(c.bias.grad), tc.bias.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_unbatched_input(bk):
    m = nn.Conv1d(2, 3, 3, padding=1)
    x = xn.tensor(randn(2, 5), dtype="float32")
    np.testing.assert_allclose(to_np(m(x)), to_np(m(x.reshape(1, 2, 5)))[0], rtol=1e-6)
    assert nn.MaxPool2d(2)(xn.tensor(randn(3, 4, 4))).shape == (3, 2, 2)


def test_pool_modules(bk):
    x = xn.tensor(distinct(2, 3, 6, 6))
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 3, 3)
    assert nn.AvgPool2d(3, stride=1, padding=1)(x).shape == (2, 3, 6, 6)
    assert nn.AdaptiveAvgPool2d((1, 1))(x).shape == (2, 3, 1, 1)
    np.testing.assert_allclose(to_np(nn.AdaptiveAvgPool2d(1)(x))[..., 0, 0], to_np(x).mean(axis=(2, 3)), rtol=1e-5)
    y = xn.tensor(distinct(2, 3, 8))
    assert nn.MaxPool1d(2)(y).shape == (2, 3, 4)
    assert nn.AvgPool1d(4, stride=2)(y).shape == (2, 3, 3)
    assert nn.AdaptiveAvgPool1d(3)(y).shape == (2, 3, 3)
    out, idx = nn.MaxPool1d(2, return_indices=True)(y)
    assert idx.shape == (2, 3, 4) and xn.backend.dtype_name(idx.dtype) == "int64"


# ----------------------------------------------------------------- bad input

def zeros(*shape):
    return xn.tensor(np.zeros(shape), dtype="float32")

def test_conv_errors(bk):
    m = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8, kernel_size=\(3, 3\).*input has 4 channels "
                                         r"\(shape \(2, 4, 8, 8\)\), expected 3"):
        m(zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8.*must have 4 dimensions \(N, C, H, W\) or 3 \(unbatched\), "
                                         r"got shape \(3, 8\)"):
        m(zeros(3, 8))
    with pytest.raises(ValueError, match=r"input has 2 channels \(shape \(2, 3, 8\), read as unbatched \(C, H, W\)\), "
                                         r"expected 3"):
        m(zeros(2, 3, 8))
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8.*kernel \(3, 3\).*larger than the padded input.*\(2, 8\)"):
        m(zeros(1, 3, 2, 8))
    with pytest.raises(ValueError, match=r"conv1d: input has 2 channels.*expected 4 \(weight shape \(4, 2, 3\), groups=2\)"):
        F.conv1d(zeros(1, 2, 5), zeros(4, 2, 3), groups=2)
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        F.conv1d(zeros(1, 2, 5), zeros(4, 2, 3), stride=2, padding="same")
    with pytest.raises(ValueError, match="divisible by groups=3"):
        nn.Conv1d(4, 6, 3, groups=3)
    with pytest.raises(TypeError, match="conv1d: input is float64 but a parameter is float32"):
        F.conv1d(t64(np.zeros((1, 2, 5))), xn.tensor(np.zeros((4, 2, 3), dtype="float32")))
    with pytest.raises(ValueError, match=r"ConvTranspose1d.*input has 3 channels.*expected 2"):
        nn.ConvTranspose1d(2, 4, 3)(zeros(1, 3, 5))
    for f, w in ((F.conv1d, zeros(4, 2, 3)), (F.conv_transpose1d, zeros(2, 4, 3))):
        with pytest.raises(ValueError, match=r"stride and dilation must be >= 1, got \(0,\) and \(1,\)"):
            f(zeros(1, 2, 5), w, stride=0)
    with pytest.raises(ValueError, match=r"conv_transpose1d: weight must have 3 dimensions \(in_channels, "
                                         r"out_channels/groups, \*kernel\)"):
        F.conv_transpose1d(zeros(1, 2, 5), zeros(2, 4))


def test_pool_errors(bk):
    x = zeros(1, 2, 3, 3)
    with pytest.raises(ValueError, match=r"MaxPool2d\(kernel_size=4.*larger than the padded input.*\(3, 3\)"):
        nn.MaxPool2d(4)(x)
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2, 2\) must be >= 0 and at most half"):
        F.max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"AvgPool1d\(kernel_size=2.*must have 3 dimensions \(N, C, L\).*\(1, 2, 3, 3\)"):
        nn.AvgPool1d(2)(x)
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: output_size must hold positive ints"):
        F.adaptive_avg_pool2d(x, 0)
