"""Module API (registration, traversal, modes, state dicts, moves), the containers,
summary(), and Linear against PyTorch, on every backend."""

from collections import OrderedDict

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from xpnet import backend as B

from conftest import to_np

RNG = np.random.default_rng(3)


class Block(nn.Module):
    """A custom module with a child container, a loose parameter and two buffers."""

    def __init__(self, dtype=None):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4, dtype=dtype), nn.ReLU(), nn.Linear(4, 2, dtype=dtype))
        self.scale = nn.Parameter(xn.tensor(np.ones(2), dtype=dtype or "float32"))
        self.register_buffer("count", xn.tensor(np.zeros(()), dtype="int64"))
        self.register_buffer("cache", xn.tensor(np.zeros(2)), persistent=False)

    def forward(self, x):
        return self.body(x) * self.scale


def mlp(dtype="float64"):
    return nn.Sequential(nn.Linear(3, 4, dtype=dtype), nn.Tanh(), nn.Linear(4, 2, dtype=dtype))


def snapshot(model):
    return {k: to_np(v).copy() for k, v in model.state_dict().items()}


def assert_same_state(model, snap):
    state = model.state_dict()
    assert list(state) == list(snap)
    for k, v in snap.items():
        np.testing.assert_array_equal(B.to_numpy(state[k]), v, err_msg=k)


# ------------------------------------------------------------------ registration, traversal

def test_parameter_names_and_order(bk):
    m = Block()
    assert [n for n, _ in m.named_parameters()] == ["scale", "body.0.weight", "body.0.bias", "body.2.weight",
                                                    "body.2.bias"]
    assert [tuple(p.shape) for p in m.parameters()] == [(2,), (4, 3), (4,), (2, 4), (2,)]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["scale"]
    assert m.num_parameters() == 2 + 12 + 4 + 8 + 2
    seq = mlp()
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_children_and_modules(bk):
    m = Block()
    assert [type(c).__name__ for c in m.children()] == ["Sequential"]
    assert [n for n, _ in m.named_modules()] == ["", "body", "body.0", "body.1", "body.2"]
    assert [type(x).__name__ for x in m.modules()] == ["Block", "Sequential", "Linear", "ReLU", "Linear"]
    assert [n for n, _ in m.body.named_children()] == ["0", "1", "2"]
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "ReLU", "Linear", "Sequential", "Block"]  # children first, as PyTorch


def test_assigning_registers_and_replaces(bk):
    m = Block()
    m.extra = nn.Linear(2, 2)
    assert "extra.weight" in dict(m.named_parameters())
    m.extra = None  # a plain attribute now: the module is no longer registered
    assert "extra.weight" not in dict(m.named_parameters())
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'scale'"):
        m.scale = xn.tensor([1.0, 2.0])
    del m.scale
    assert "scale" not in dict(m.named_parameters())
    with pytest.raises(AttributeError, match="'Block' object has no attribute 'missing'"):
        m.missing


def test_train_eval_propagate(bk):
    m = nn.Sequential(Block(), nn.Dropout(0.5))
    assert all(x.training for x in m.modules())
    assert m.eval() is m
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    m.train(False)
    assert not m[0].body[2].training


def test_zero_grad_and_requires_grad(bk):
    m = mlp()
    m(xn.tensor(RNG.normal(size=(2, 3)), dtype="float64")).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not to_np(p.grad).any() for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.requires_grad_(False)
    assert m.num_parameters(trainable_only=True) == 0 and m.num_parameters() == 26
    assert not m(xn.tensor(np.ones((1, 3)), dtype="float64")).requires_grad


def test_forward_hook(bk):
    m = mlp()
    calls = []
    handle = m[0].register_forward_hook(lambda mod, inputs, out: calls.append(out.shape))
    m(xn.tensor(np.ones((5, 3)), dtype="float64"))
    handle.remove()
    m(xn.tensor(np.ones((5, 3)), dtype="float64"))
    assert calls == [(5, 4)]


# ------------------------------------------------------------------ state dicts

def test_state_dict_round_trip(bk):
    a, b = Block(), Block()
    state = a.state_dict()
    assert list(state) == ["scale", "count", "body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"]
    assert "cache" not in state  # non-persistent buffer
    assert [n for n, _ in a.named_buffers()] == ["count", "cache"]
    x = xn.tensor(RNG.normal(size=(2, 3)))
    assert not np.allclose(to_np(a(x)), to_np(b(x)))
    result = b.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(to_np(a(x)), to_np(b(x)))
    # from NumPy arrays (e.g. a file) too
    c = Block()
    c.load_state_dict({k: B.to_numpy(v) for k, v in state.items()})
    np.testing.assert_array_equal(to_np(c(x)), to_np(a(x)))


def test_state_dict_order_and_tied_weights_follow_torch(bk):
    torch = pytest.importorskip("torch")

    class TorchTied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Linear(3, 3)
            self.register_buffer("steps", torch.zeros(()))
            self.head = torch.nn.Linear(3, 3)
            self.head.weight = self.emb.weight

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Linear(3, 3)
            self.register_buffer("steps", xn.tensor(0.0))
            self.head = nn.Linear(3, 3)
            self.head.weight = self.emb.weight

    theirs, ours = TorchTied(), Tied()
    assert list(ours.state_dict()) == list(theirs.state_dict()) == [
        "steps", "emb.weight", "emb.bias", "head.weight", "head.bias"]
    assert len(list(ours.parameters())) == 3  # the tied weight counted once
    ours.load_state_dict(theirs.state_dict())
    assert ours.head.weight is ours.emb.weight
    np.testing.assert_array_equal(to_np(ours.head.weight), theirs.emb.weight.detach().numpy())


def test_load_state_dict_missing_and_unexpected(bk):
    m = mlp()
    snap = snapshot(m)
    state = dict(mlp().state_dict())
    del state["2.bias"]
    with pytest.raises(ValueError, match=r"missing entries: 2\.bias.*left unchanged"):
        m.load_state_dict(state)
    assert_same_state(m, snap)
    state = dict(mlp().state_dict(), **{"3.weight": np.ones(2)})
    with pytest.raises(ValueError, match=r"unexpected entries: 3\.weight"):
        m.load_state_dict(state)
    assert_same_state(m, snap)


def test_load_state_dict_wrong_shape_names_entry_and_shapes(bk):
    m = mlp()
    snap = snapshot(m)
    state = dict(mlp().state_dict())
    state["0.weight"] = np.ones((5, 3))
    with pytest.raises(ValueError, match=r"0\.weight: the file has shape \(5, 3\) but the model expects \(4, 3\)"):
        m.load_state_dict(state)
    assert_same_state(m, snap)  # the valid entries were not written either


def test_load_state_dict_not_strict(bk):
    m = mlp()
    donor = mlp()
    state = dict(donor.state_dict())
    del state["0.bias"]
    state["head.weight"] = np.ones((1, 1))
    before_bias = to_np(m[0].bias).copy()
    result = m.load_state_dict(state, strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == ["head.weight"]
    np.testing.assert_array_equal(to_np(m[0].weight), to_np(donor[0].weight))
    np.testing.assert_array_equal(to_np(m[0].bias), before_bias)


def test_load_state_dict_converts_dtype(bk):
    m = mlp("float32")
    m.load_state_dict(mlp("float64").state_dict())
    assert all(B.dtype_name(p.dtype) == "float32" for p in m.parameters())


# ------------------------------------------------------------------ moving

def test_to_float64(bk):
    m = Block()
    assert m.to("float64") is m
    assert all(B.dtype_name(p.dtype) == "float64" for p in m.parameters())
    assert B.dtype_name(m.count.dtype) == "int64"  # integer buffers keep their dtype
    assert B.dtype_name(m.cache.dtype) == "float64"
    m.float()
    assert all(B.dtype_name(p.dtype) == "float32" for p in m.parameters())
    m.double()
    assert B.dtype_name(m.scale.dtype) == "float64"


def test_to_another_backend(bk):
    other = "array_api_strict" if bk.name == "numpy" else "numpy"
    m = Block(dtype="float64")
    x = RNG.normal(size=(2, 3))
    want = to_np(m(xn.tensor(x, dtype="float64")))
    m.to(other)
    target = xn.get_backend(other)
    assert all(B.namespace_of(t.data) is target.xp for t in list(m.parameters()) + list(m.buffers()))
    with xn.using(other):
        np.testing.assert_allclose(to_np(m(xn.tensor(x, dtype="float64"))), want, rtol=1e-12)  # cuBLAS vs BLAS rounding
    with pytest.raises(TypeError, match="two backends"):
        m(xn.tensor(x, dtype="float64", backend=bk.name if bk.name != other else "numpy"))


# ------------------------------------------------------------------ containers

def test_sequential(bk):
    a, r, b = nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)
    seq = nn.Sequential(a, r, b)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is b and list(seq) == [a, r, b]
    tail = seq[1:]
    assert isinstance(tail, nn.Sequential) and list(tail) == [r, b]
    assert [n for n, _ in tail.named_children()] == ["1", "2"]  # names kept, as PyTorch
    x = xn.tensor(RNG.normal(size=(2, 3)))
    np.testing.assert_array_equal(to_np(seq(x)), to_np(b(r(a(x)))))
    seq.append(nn.Tanh())
    assert len(seq) == 4 and isinstance(seq[3], nn.Tanh)
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(3, 4)), ("act", nn.ReLU())]))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"]
    assert named.fc is named[0]
    with pytest.raises(IndexError):
        seq[7]


def test_module_list(bk):
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])
    layers.append(nn.Linear(2, 3))
    layers.extend([nn.ReLU()])
    assert len(layers) == 4 and isinstance(layers[-1], nn.ReLU) and isinstance(layers[1:3], nn.ModuleList)
    assert [n for n, _ in layers.named_parameters()] == [f"{i}.{w}" for i in range(3) for w in ("weight", "bias")]
    x = xn.tensor(np.ones((1, 2)))
    for layer in layers:
        x = layer(x)
    assert x.shape == (1, 3)
    holder = Block()
    holder.stages = layers
    assert "stages.2.bias" in holder.state_dict()


def test_module_dict(bk):
    heads = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 3)})
    heads["c"] = nn.Tanh()
    assert list(heads) == ["a", "b", "c"] and list(heads.keys()) == ["a", "b", "c"] and len(heads) == 3
    assert "b" in heads and "z" not in heads
    assert heads["b"].out_features == 3 and [k for k, _ in heads.items()] == ["a", "b", "c"]
    assert [n for n, _ in heads.named_parameters()] == ["a.weight", "a.bias", "b.weight", "b.bias"]
    assert len(list(heads.values())) == 3
    with pytest.raises(KeyError):
        heads["z"]


def test_repr():
    assert repr(mlp()) == ("Sequential(\n  (0): Linear(in_features=3, out_features=4, bias=True)\n  (1): Tanh()\n"
                           "  (2): Linear(in_features=4, out_features=2, bias=True)\n)")


def test_summary(bk):
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, bias=False))
    text = m.summary((5, 3))
    lines = text.splitlines()
    assert lines[0].split() == ["Layer", "Type", "Output", "shape", "Params"]
    assert lines[2].split() == ["0", "Linear", "(5,", "4)", "16"]
    assert lines[3].split() == ["1", "ReLU", "(5,", "4)", "0"]
    assert lines[4].split() == ["2", "Linear", "(5,", "2)", "8"]
    assert "Total params: 24" in text and "Trainable params: 24" in text and "Non-trainable params: 0" in text
    assert m.training  # summary() runs in eval mode and restores the mode
    m[2].requires_grad_(False)
    text = m.summary()
    assert "Trainable params: 16" in text and "Non-trainable params: 8" in text
    assert text.splitlines()[2].split() == ["0", "Linear", "-", "16"]


# ------------------------------------------------------------------ Linear

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-8), ("float32", 1e-4)])
@pytest.mark.parametrize("shape", [(4, 3), (2, 2, 3)])
def test_linear_matches_torch(bk, bias, dtype, rtol, shape):
    torch = pytest.importorskip("torch")
    tdt = getattr(torch, dtype)
    theirs = torch.nn.Linear(3, 5, bias=bias).to(tdt)
    ours = nn.Linear(3, 5, bias=bias, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = RNG.normal(size=shape)
    w = RNG.uniform(0.5, 1.5, size=shape[:-1] + (5,))
    tx = xn.tensor(x, dtype=dtype, requires_grad=True)
    y = ours(tx)
    (y * xn.tensor(w, dtype=dtype)).sum().backward()
    ttx = torch.tensor(x, dtype=tdt, requires_grad=True)
    ty = theirs(ttx)
    (ty * torch.tensor(w, dtype=tdt)).sum().backward()
    assert to_np(y).dtype == np.dtype(dtype)
    np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_allclose(to_np(tx.grad), ttx.grad.numpy(), rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_allclose(to_np(ours.weight.grad), theirs.weight.grad.numpy(), rtol=rtol, atol=rtol * 1e-2)
    if bias:
        np.testing.assert_allclose(to_np(ours.bias.grad), theirs.bias.grad.numpy(), rtol=rtol, atol=rtol * 1e-2)
    else:
        assert ours.bias is None and [n for n, _ in ours.named_parameters()] == ["weight"]


@pytest.mark.parametrize("shape", [(4, 3), (2, 2, 3)])
def test_linear_gradcheck(bk, shape):
    x = xn.tensor(RNG.normal(size=shape), dtype="float64")
    w = xn.tensor(RNG.normal(size=(2, 3)), dtype="float64")
    b = xn.tensor(RNG.normal(size=(2,)), dtype="float64")
    assert xn.gradcheck(F.linear, x, w, b)
    assert xn.gradcheck(F.linear, x, w)
    assert xn.gradgradcheck(lambda x, w, b: F.linear(x, w, b) ** 2, x, w, b)


def test_linear_gradcheck_1d_input(bk):
    x = xn.tensor(RNG.normal(size=(3,)), dtype="float64")
    w = xn.tensor(RNG.normal(size=(2, 3)), dtype="float64")
    b = xn.tensor(RNG.normal(size=(2,)), dtype="float64")
    assert xn.gradcheck(F.linear, x, w, b)
    assert xn.gradgradcheck(lambda x, w, b: F.linear(x, w, b) ** 2, x, w, b)


def test_linear_init_bounds(bk):
    m = nn.Linear(50, 40)
    bound = 1 / np.sqrt(50)
    w, b = to_np(m.weight), to_np(m.bias)
    assert w.dtype == np.float32 and w.shape == (40, 50) and b.shape == (40,)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound and abs(w.std() - bound / np.sqrt(3)) < 0.01


def test_linear_wrong_input_width(bk):
    m = nn.Linear(3, 4)
    with pytest.raises(ValueError, match=r"Linear\(3, 4\): input has 5 features in its last axis "
                                         r"\(shape \(2, 5\)\), expected 3"):
        m(xn.tensor(np.ones((2, 5))))
