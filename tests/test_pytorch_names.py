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
    """Every module's forward names its first argument as PyTorch's does: ``input`` for most,
    PyTorch's own name (``query``, ``src``, ``input1``, ``anchor``, ...) where it differs."""
    torch = pytest.importorskip("torch")
    first = list(inspect.signature(cls.forward).parameters)[1]
    theirs = getattr(torch.nn, cls.__name__, None)
    expected = list(inspect.signature(theirs.forward).parameters)[1] if theirs is not None else "input"
    assert first == expected


def test_module_forward_by_keyword(bk):
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    x = xn.tensor([[1.0, 2.0]])
    np.testing.assert_array_equal(to_np(model(input=x)), to_np(model(x)))


# ------------------------------------------------------------------ (b) creation functions and dtypes

def test_creation_shapes_dtypes_and_values(bk):
    assert xn.zeros(2, 3).shape == xn.zeros((2, 3)).shape == xn.ones([2, 3]).shape == (2, 3)
    assert xn.float32 == xn.zeros(2).dtype and xn.float64 == xn.ones(2, dtype=xn.float64).dtype
    assert xn.int32 == xn.zeros(2, dtype="int32").dtype and xn.float64 == xn.empty(1, dtype=xn.double).dtype
    assert xn.bool == xn.full((2,), True).dtype and xn.int64 == xn.full((2,), 3).dtype
    assert xn.float32 == xn.full((2,), 0.5).dtype and xn.float64 == xn.full((2,), 1, dtype=xn.float64).dtype
    np.testing.assert_array_equal(to_np(xn.full((2, 2), 7.0)), np.full((2, 2), 7.0))
    a = xn.arange(5)
    assert xn.int64 == a.dtype
    np.testing.assert_array_equal(to_np(a), np.arange(5))
    np.testing.assert_allclose(to_np(xn.arange(1, 2, 0.25)), [1, 1.25, 1.5, 1.75])
    assert xn.float32 == xn.arange(1, 2, 0.25).dtype
    np.testing.assert_allclose(to_np(xn.linspace(0, 1, 5)), np.linspace(0, 1, 5), rtol=1e-7)
    np.testing.assert_array_equal(to_np(xn.eye(2, 3)), np.eye(2, 3))
    assert xn.eye(3, dtype=xn.float64).shape == (3, 3)
    x = xn.ones(2, 3, dtype=xn.float64)
    for f in (xn.zeros_like, xn.ones_like, xn.empty_like, xn.rand_like, xn.randn_like):
        y = f(x)
        assert y.shape == (2, 3) and xn.float64 == y.dtype and y.backend is x.backend
    np.testing.assert_array_equal(to_np(xn.full_like(x, 2.0)), np.full((2, 3), 2.0))
    assert xn.float32 == xn.zeros_like(x, dtype=xn.float32).dtype
    r = xn.randint_like(xn.zeros(4, dtype=xn.int64), 3)
    assert xn.int64 == r.dtype and set(to_np(r).tolist()) <= {0, 1, 2}


def test_requires_grad_keyword(bk):
    w = xn.randn(3, requires_grad=True)
    assert w.requires_grad and w.is_leaf
    (w * w).sum().backward()
    np.testing.assert_allclose(to_np(w.grad), 2 * to_np(w), rtol=1e-6)
    assert xn.zeros(2, requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="floating-point"):
        xn.zeros(2, dtype=xn.int64, requires_grad=True)


def test_random_creation_is_the_same_on_every_backend(bk):
    xn.manual_seed(123)
    got = [to_np(xn.rand(2, 3)), to_np(xn.randn(4, dtype=xn.float64)), to_np(xn.randint(10, (5,))),
           to_np(xn.randint(3, 7, size=(2, 2)))]
    with xn.using("numpy"):
        xn.manual_seed(123)
        want = [to_np(xn.rand(2, 3)), to_np(xn.randn(4, dtype=xn.float64)), to_np(xn.randint(10, (5,))),
                to_np(xn.randint(3, 7, size=(2, 2)))]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    rng = np.random.default_rng(123)  # the seeded generator is NumPy's PCG64 on the host
    np.testing.assert_allclose(want[0], rng.uniform(size=(2, 3)).astype(np.float32))
    assert want[2].dtype == np.int64 and ((want[3] >= 3) & (want[3] < 7)).all()
    g = xn.Generator(5)
    np.testing.assert_array_equal(to_np(xn.randn(3, generator=g)), to_np(xn.randn(3, generator=xn.Generator(5))))


def test_bad_creation_arguments(bk):
    with pytest.raises(TypeError, match="size must be integers"):
        xn.zeros(2.5, 3)
    with pytest.raises(ValueError, match="negative dimension"):
        xn.ones(-1)
    with pytest.raises(ValueError, match="low < high"):
        xn.randint(5, 5, (2,))
    with pytest.raises(TypeError, match="randint"):
        xn.randint(5)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        xn.from_numpy([1, 2])
    with pytest.raises(TypeError, match="unknown dtype"):
        xn.zeros(2, dtype="float33")


def test_device_keyword(bk):
    from xpnet import backend as B
    t = xn.zeros(2, device="cpu")
    if B.device_name(bk.device) == "cpu":
        assert t.backend is bk
        assert xn.tensor([1.0], device="cpu").backend is bk
    if bk.name in ("numpy", "array_api_strict") and not B.cuda_available():
        with pytest.raises(xn.BackendUnavailable):
            xn.zeros(2, device="cuda")


def test_from_numpy_and_as_tensor(bk):
    a = np.arange(3.0)
    t = xn.from_numpy(a)
    assert xn.float64 == t.dtype and t.backend is bk
    np.testing.assert_array_equal(to_np(t), a)
    if bk.name == "numpy":  # shares memory, as torch.from_numpy
        a[0] = 9.0
        assert to_np(t)[0] == 9.0
    assert xn.as_tensor(t) is t
    u = xn.as_tensor([1, 2], dtype=xn.float32)
    assert xn.float32 == u.dtype and to_np(u).tolist() == [1.0, 2.0]


def test_dtype_objects(bk):
    assert repr(xn.float32) == "xpnet.float32" and xn.float32 == "float32"
    assert xn.half is xn.float16 and xn.double is xn.float64 and xn.long is xn.int64
    assert xn.float32.is_floating_point and not xn.int64.is_floating_point
    assert xn.bfloat16.itemsize == 2 and xn.float64.itemsize == 8
    x = xn.tensor([1, 2])
    assert xn.astype(x, xn.float64).dtype == bk.xp.float64
    m = nn.Linear(2, 2).to(xn.float64)
    assert xn.float64 == m.weight.dtype
    assert xn.float32 != xn.float64 and xn.float32 != xn.zeros(1, dtype=xn.float64).dtype


# ------------------------------------------------------------------ (c) Tensor methods

def test_tensor_methods_match_pytorch(bk):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(1).normal(size=(2, 3, 4))
    x, t = xn.tensor(a, dtype=xn.float64), torch.tensor(a)
    pairs = [
        (x.clone(), t.clone()), (x.norm(), t.norm()), (x.norm(dim=1), t.norm(dim=1)),
        (x.norm(p=1, dim=2, keepdim=True), t.norm(p=1, dim=2, keepdim=True)),
        (x.norm(p=float("inf"), dim=0), t.norm(p=float("inf"), dim=0)), (x.norm(p=3, dim=1), t.norm(p=3, dim=1)),
        (x.norm(p=0), t.norm(p=0)),
        (x.std(), t.std()), (x.std(dim=1, keepdim=True), t.std(dim=1, keepdim=True)), (x.var(dim=2), t.var(dim=2)),
        (x.softmax(dim=1), t.softmax(dim=1)), (x.log_softmax(-1), t.log_softmax(-1)),
        (x.view(6, 4), t.view(6, 4)), (x.view(-1), t.view(-1)), (x.flatten(1), t.flatten(1)),
        (x.flatten(0, 1), t.flatten(0, 1)), (x.permute(2, 0, 1), t.permute(2, 0, 1)),
        (x.permute((1, 0, 2)), t.permute((1, 0, 2))), (x.mT, t.mT), (x[0].T, t[0].T), (x[0].t(), t[0].t()),
        (x.view_as(xn.zeros(4, 3, 1, 2)), t.view(4, 3, 1, 2)),
    ]
    pairs += list(zip(x.chunk(2, dim=2), t.chunk(2, dim=2))) + list(zip(x.chunk(3, 1), t.chunk(3, 1)))
    pairs += list(zip(x.split(3, dim=2), t.split(3, dim=2))) + list(zip(x.split([1, 2], 1), t.split([1, 2], 1)))
    assert len(x.chunk(3, 2)) == len(t.chunk(3, 2)) == 2
    for ours, theirs in pairs:
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_allclose(to_np(ours), theirs.numpy(), rtol=1e-12, atol=1e-12)
    assert x.numel() == t.numel() == 24 and x.dim() == t.dim() == 3
    assert x.tolist() == t.tolist()


def test_tensor_dtype_methods(bk):
    x = xn.tensor([[1.5, -2.0]], requires_grad=True)
    assert xn.float64 == x.double().dtype and x.double().requires_grad
    assert xn.float32 == x.double().float().dtype
    assert xn.int64 == x.long().dtype and not x.long().requires_grad
    assert xn.int32 == x.int().dtype and xn.bool == x.bool().dtype
    np.testing.assert_array_equal(to_np(x.long()), [[1, -2]])
    if bk.name != "array_api_strict" or hasattr(bk.xp, "float16"):
        assert xn.float16 == x.half().dtype
    assert xn.float64 == x.to(xn.float64).dtype == x.to("float64").dtype == x.to(dtype=xn.double).dtype
    assert x.to(xn.float32) is x and x.to(x) is x
    assert xn.float64 == x.to(xn.zeros(1, dtype=xn.float64)).dtype
    assert x.is_floating_point() and not x.long().is_floating_point()


def test_to_cpu_cuda(bk):
    from xpnet import backend as B
    x = xn.tensor([1.0, 2.0])
    if B.device_name(bk.device) == "cpu":
        assert x.to("cpu") is x and x.cpu() is x and not x.is_cuda
        y = x.to("cpu", xn.float64)
        assert xn.float64 == y.dtype and y.backend is bk
    if not B.cuda_available() and bk.name in ("numpy", "array_api_strict"):
        with pytest.raises(xn.BackendUnavailable):
            x.cuda()
    if bk.name != "torch" and "torch" in B.available_backends() and B.available_backends()["torch"] is None:
        y = x.to("torch")
        assert y.backend.name == "torch"
        np.testing.assert_array_equal(to_np(y), [1.0, 2.0])


def test_requires_grad_and_detach_in_place(bk):
    x = xn.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    y = x * 3
    assert y.detach_() is y and not y.requires_grad and y.is_leaf
    z = (x.clone() * 2).sum()
    z.backward()
    np.testing.assert_array_equal(to_np(x.grad), [2.0, 2.0])  # clone passes the gradient


def test_new_methods_gradcheck(bk):
    a = np.random.default_rng(2).normal(size=(3, 4))
    x = xn.tensor(a, dtype=xn.float64, requires_grad=True)
    for f in (lambda t: t.clone(), lambda t: t.norm(), lambda t: t.norm(p=1, dim=1), lambda t: t.norm(p=3, dim=0),
              lambda t: t.norm(p=float("inf"), dim=1), lambda t: t.std(dim=0),
              lambda t: t.chunk(2, dim=1)[1], lambda t: t.split([1, 2], 0)[1] * 2):
        xn.gradcheck(f, x)  # raises GradcheckError on a mismatch


def test_pytorch_only_names_say_what_to_write(bk):
    x = xn.tensor([[1.0, 2.0]])
    assert x.size == 2 and isinstance(x.size, int)
    with pytest.raises(TypeError, match=r"x\.shape for the shape"):
        x.size()
    with pytest.raises(AttributeError, match=r"x\.numel\(\)"):
        x.nelement()
    with pytest.raises(AttributeError, match="in place"):
        x.add_(1.0)
    with pytest.raises(AttributeError, match=r"xpnet\.take"):
        x.index_select(0, [0])
    with pytest.raises(AttributeError, match="^'Tensor' object has no attribute 'frobnicate'$"):
        x.frobnicate
    assert not hasattr(x, "frobnicate")


def test_module_device_and_dtype_methods(bk):
    from xpnet import backend as B
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    assert m.double() is m and xn.float64 == m[0].weight.dtype
    assert xn.float32 == m.float()[0].weight.dtype
    if bk.name != "array_api_strict" or hasattr(bk.xp, "float16"):
        assert xn.float16 == m.half()[0].weight.dtype
        m.float()
    assert xn.float64 == m.to(xn.float64)[1].running_mean.dtype
    if B.device_name(bk.device) == "cpu":
        assert m.cpu() is m and m[0].weight.backend is bk
    if not B.cuda_available() and bk.name in ("numpy", "array_api_strict"):
        with pytest.raises(xn.BackendUnavailable):
            m.cuda()


# ------------------------------------------------------------------ (d) PyTorch's signatures

def test_norm_layers_bias_false(bk):
    torch = pytest.importorskip("torch")
    for ours, theirs, shape in ((nn.BatchNorm1d(3, bias=False), torch.nn.BatchNorm1d(3, bias=False), (4, 3)),
                                (nn.BatchNorm2d(3, bias=False), torch.nn.BatchNorm2d(3, bias=False), (2, 3, 2, 2)),
                                (nn.GroupNorm(1, 3, bias=False), torch.nn.GroupNorm(1, 3, bias=False), (2, 3, 4))):
        assert ours.bias is None and theirs.bias is None
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert [n for n, _ in ours.named_parameters()] == ["weight"]
        a = np.random.default_rng(0).normal(size=shape)
        ours.weight.data = bk.xp.asarray(np.full(3, 1.5, np.float32), device=bk.device)
        with torch.no_grad():
            theirs.weight.fill_(1.5)
        np.testing.assert_allclose(to_np(ours(xn.tensor(a))), theirs(torch.tensor(a, dtype=torch.float32)).detach(),
                                   rtol=1e-5, atol=1e-5)
    assert nn.BatchNorm1d(3).bias is not None and nn.GroupNorm(1, 3).bias is not None


def test_embedding_max_norm_and_scale_grad_by_freq(bk):
    torch = pytest.importorskip("torch")
    w = np.random.default_rng(3).normal(size=(5, 3)) * 2
    idx = [[0, 2, 2], [4, 2, 0]]
    for kw in ({"max_norm": 1.0}, {"max_norm": 1.5, "norm_type": 1.0}, {"scale_grad_by_freq": True},
               {"max_norm": 2.0, "scale_grad_by_freq": True, "padding_idx": 4}):
        ours = nn.Embedding(5, 3, dtype="float64", **kw)
        ours.weight.data = bk.xp.asarray(w, device=bk.device)
        theirs = torch.nn.Embedding(5, 3, dtype=torch.float64, **kw)
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(w))
        y, ty = ours(xn.tensor(idx)), theirs(torch.tensor(idx))
        np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(to_np(ours.weight), theirs.weight.detach().numpy(), rtol=1e-12)  # renormed
        g = np.arange(18.0).reshape(2, 3, 3)
        (y * xn.tensor(g, dtype=xn.float64)).sum().backward()
        (ty * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(to_np(ours.weight.grad), theirs.weight.grad.numpy(), rtol=1e-12)
    x = xn.tensor(w, dtype=xn.float64)
    y = F.embedding(xn.tensor([1, 3]), x, max_norm=0.5)
    np.testing.assert_allclose(np.linalg.norm(to_np(y), axis=1), [0.5, 0.5], rtol=1e-6)
    np.testing.assert_allclose(to_np(x)[0], w[0])  # a row not looked up is not renormed
    with pytest.raises(ValueError, match="sparse"):
        nn.Embedding(3, 2, sparse=True)
    assert "max_norm=1.0" in repr(nn.Embedding(3, 2, max_norm=1.0))
    frozen = nn.Embedding(3, 2, _freeze=True)
    assert not frozen.weight.requires_grad


def test_add_sub_alpha_and_div_rounding_mode(bk):
    torch = pytest.importorskip("torch")
    a, b = np.array([-7.0, 7.0, -8.0, 5.0, 0.5]), np.array([2.0, -2.0, 3.0, 5.0, -0.25])
    x, y, ta, tb = xn.tensor(a), xn.tensor(b), torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
    np.testing.assert_allclose(to_np(xn.add(x, y, alpha=2)), torch.add(ta, tb, alpha=2))
    np.testing.assert_allclose(to_np(x.sub(y, alpha=0.5)), ta.sub(tb, alpha=0.5))
    np.testing.assert_allclose(to_np(x.add(3.0, alpha=2)), ta.add(3.0, alpha=2))
    for mode in (None, "trunc", "floor"):
        np.testing.assert_allclose(to_np(xn.div(x, y, rounding_mode=mode)), torch.div(ta, tb, rounding_mode=mode))
        np.testing.assert_array_equal(to_np(x.long().div(y.long() + 3, rounding_mode=mode or "floor")),
                                      ta.long().div(tb.long() + 3, rounding_mode=mode or "floor"))
    with pytest.raises(ValueError, match="rounding_mode"):
        xn.div(x, y, rounding_mode="round")
    w = xn.tensor(a, dtype=xn.float64, requires_grad=True)
    xn.gradcheck(lambda t: xn.sub(t, t * t, alpha=3.0), w)
    xn.gradcheck(lambda t: xn.add(t * 2.0, t, alpha=-0.5), w)


def test_conv_transpose_output_size(bk):
    torch = pytest.importorskip("torch")
    xn.manual_seed(0)
    ours = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    theirs = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    theirs.load_state_dict({k: torch.tensor(to_np(v)) for k, v in ours.state_dict().items()})
    a = np.random.default_rng(0).normal(size=(1, 2, 4, 5)).astype(np.float32)
    for size in ((8, 10), (7, 9), (1, 3, 8, 9)):
        y, ty = ours(xn.tensor(a), output_size=size), theirs(torch.tensor(a), output_size=size)
        assert y.shape == tuple(ty.shape)
        np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="valid sizes range from"):
        ours(xn.tensor(a), output_size=(9, 9))
    one = nn.ConvTranspose1d(2, 1, 2, stride=3)
    assert one(xn.tensor(a[0, :, 0]), output_size=[16]).shape == (1, 16)  # unbatched (C, L)


# ------------------------------------------------------------------ (e) tied weights in files

class _TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(7, 4)
        self.head = nn.Linear(4, 7, bias=False)
        self.head.weight = self.emb.weight  # tied, as a language model's output layer

    def forward(self, input):
        return self.head(self.emb(input))


def test_tied_weights_stored_once_and_restored(bk, tmp_path):
    from safetensors import safe_open
    xn.manual_seed(0)
    src = _TiedLM()
    xn.manual_seed(1)
    dst = _TiedLM()
    xn.save_weights(tmp_path / "w.safetensors", src)
    with safe_open(str(tmp_path / "w.safetensors"), "numpy") as f:
        assert list(f.keys()) == ["emb.weight"] and f.metadata()["head.weight"] == "emb.weight"
    xn.load_weights(tmp_path / "w.safetensors", dst)
    assert dst.head.weight is dst.emb.weight
    np.testing.assert_array_equal(to_np(dst.head.weight), to_np(src.emb.weight))
    opt = xn.optim.SGD(src.parameters(), lr=0.1)
    xn.save(tmp_path / "c.safetensors", src, opt, epoch=3)
    with safe_open(str(tmp_path / "c.safetensors"), "numpy") as f:
        assert [k for k in f.keys() if k.startswith("model.")] == ["model.emb.weight"]
    xn.manual_seed(2)
    dst2 = _TiedLM()
    assert xn.load(tmp_path / "c.safetensors", dst2, xn.optim.SGD(dst2.parameters(), lr=0.1))["epoch"] == 3
    assert dst2.head.weight is dst2.emb.weight
    np.testing.assert_array_equal(to_np(dst2.emb.weight), to_np(src.emb.weight))
    np.testing.assert_array_equal(to_np(dst2(xn.tensor([1, 2]))), to_np(src(xn.tensor([1, 2]))))


def test_tied_weights_from_safetensors_torch_save_model(bk, tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_model, save_model

    class TorchLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(7, 4)
            self.head = torch.nn.Linear(4, 7, bias=False)
            self.head.weight = self.emb.weight

    theirs = TorchLM()
    save_model(theirs, str(tmp_path / "t.safetensors"))
    ours = _TiedLM()
    xn.load_weights(tmp_path / "t.safetensors", ours)  # strict: both names found
    np.testing.assert_array_equal(to_np(ours.head.weight), theirs.emb.weight.detach().numpy())
    assert ours.head.weight is ours.emb.weight
    xn.save_weights(tmp_path / "x.safetensors", ours)  # and back: torch's load_model reads xpnet's file
    back = TorchLM()
    load_model(back, str(tmp_path / "x.safetensors"))
    np.testing.assert_array_equal(back.head.weight.detach().numpy(), to_np(ours.emb.weight))


# ------------------------------------------------------------------ (h) DataLoader workers

class _Work(xn.data.Dataset):
    """Per-item work (an 'augmentation' drawn from a per-item seed), and the pid that did it."""

    def __init__(self, n=23, fail_at=None):
        self.n, self.fail_at = n, fail_at

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        import os
        if i == self.fail_at:
            raise ValueError(f"bad item {i}")
        x = np.random.default_rng(i).normal(size=3).astype(np.float32) + i
        return x, np.int64(i % 3), np.int64(os.getpid())


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # JAX's, in this process
def test_dataloader_workers_give_the_same_batches(bk):
    import os
    from xpnet.data import DataLoader
    ds = _Work()
    for shuffle in (False, True):
        ref = [[to_np(t) for t in b] for b in DataLoader(ds, 4, shuffle=shuffle, seed=3)]
        got = [[to_np(t) for t in b] for b in DataLoader(ds, 4, shuffle=shuffle, seed=3, num_workers=2,
                                                          pin_memory=True)]
        assert len(got) == len(ref) == 6
        for r, g in zip(ref, got):
            np.testing.assert_array_equal(r[0], g[0])
            np.testing.assert_array_equal(r[1], g[1])
        pids = {int(p) for g in got for p in g[2]}
        assert os.getpid() not in pids and len(pids) == 2  # loaded in two worker processes
    b = next(iter(DataLoader(ds, 4, num_workers=2)))
    assert isinstance(b[0], xn.Tensor) and b[0].backend is bk


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # JAX's, in this process
def test_dataloader_collate_fn_and_worker_errors(bk):
    from xpnet.data import DataLoader
    seen = []

    def collate(samples):
        seen.append(len(samples))
        return [int(s[1]) for s in samples]

    assert list(DataLoader(_Work(7), 3, collate_fn=collate)) == [[0, 1, 2], [0, 1, 2], [0]]
    assert list(DataLoader(_Work(7), 3, collate_fn=collate, num_workers=2)) == [[0, 1, 2], [0, 1, 2], [0]]
    assert seen == [3, 3, 1, 3, 3, 1]
    with pytest.raises(ValueError, match="(?s)Caught ValueError in DataLoader worker.*bad item 5"):
        list(DataLoader(_Work(8, fail_at=5), 2, num_workers=2))
    loader = DataLoader(_Work(40), 2, num_workers=2)
    for i, _ in enumerate(loader):  # leaving early ends the workers
        if i == 1:
            break
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(_Work(), 2, num_workers=-1)
    with pytest.raises(TypeError, match="collate_fn"):
        DataLoader(_Work(), 2, collate_fn=3)


def test_pytorch_dtype_aliases_by_name(bk):
    assert xn.int64 == xn.tensor([1], dtype="long").dtype and xn.float64 == xn.zeros(1, dtype="double").dtype
    assert xn.float32 == xn.ones(1, dtype="float").dtype and xn.int32 == xn.ones(1, dtype="int").dtype
    if hasattr(bk.xp, "float16"):  # array-api-strict has no float16
        assert xn.float16 == xn.tensor([1.0]).to("half").dtype
