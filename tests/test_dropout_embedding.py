"""Dropout (seeded masks, eval identity, scaling, gradients) and Embedding
(PyTorch agreement, padding_idx, repeated indices, bad indices)."""

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from xpnet import backend as B

from conftest import to_np


@pytest.fixture
def keep_default_rng():
    """Tests that reseed the default generator put its state back afterwards."""
    state = B.default_generator().get_state()
    yield
    B.default_generator().set_state(state)


# ------------------------------------------------------------------ dropout

def _mask_on(backend, seed, shape, p):
    with xn.using(backend):
        y = F.dropout(xn.tensor(np.ones(shape), dtype="float64"), p, True, generator=xn.Generator(seed))
        return to_np(y)


def test_dropout_same_seed_same_mask_on_every_backend(bk):
    y = _mask_on(bk, 5, (4, 6), 0.5)
    np.testing.assert_array_equal(y, _mask_on("numpy", 5, (4, 6), 0.5))
    assert set(np.unique(y)) <= {0.0, 2.0} and 0 < (y == 0).sum() < y.size
    assert not np.array_equal(y, _mask_on(bk, 6, (4, 6), 0.5))


def test_dropout_default_generator_follows_manual_seed(bk, keep_default_rng):
    x = xn.tensor(np.ones((4, 6)))
    xn.manual_seed(11)
    a = to_np(nn.Dropout(0.3)(x))
    b = to_np(nn.Dropout(0.3)(x))
    xn.manual_seed(11)
    np.testing.assert_array_equal(to_np(nn.Dropout(0.3)(x)), a)
    assert not np.array_equal(a, b)  # the generator moves on between calls


def test_dropout_eval_and_p0_are_identity(bk):
    x = xn.tensor(np.arange(1.0, 25.0).reshape(4, 6))
    m = nn.Dropout(0.5)
    m.eval()
    assert m(x) is x
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    model = nn.Sequential(nn.Linear(6, 3), nn.Dropout(0.9))
    model.eval()
    np.testing.assert_array_equal(to_np(model(x)), to_np(model[0](x)))
    model.train()
    assert model[1].training
    assert np.count_nonzero(to_np(model(x)) == 0) > 0


def test_dropout_scales_kept_units_and_preserves_the_mean(bk):
    p, n = 0.3, 20000
    y = to_np(F.dropout(xn.tensor(np.ones(n), dtype="float64"), p, generator=xn.Generator(0)))
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1.0 / (1.0 - p), rtol=1e-15)
    assert abs(1.0 - kept.mean() - p) < 0.02          # std of the fraction ~ 0.003
    assert abs(y.mean() - 1.0) < 0.03                  # std of the mean ~ 0.005


def test_dropout_gradient_flows_only_through_kept_units(bk):
    p = 0.4
    x = xn.tensor(np.arange(1.0, 13.0).reshape(3, 4), dtype="float64", requires_grad=True)
    w = np.arange(12.0).reshape(3, 4) + 1.0
    y = F.dropout(x, p, generator=xn.Generator(2))
    (y * xn.tensor(w, dtype="float64")).sum().backward()
    kept = to_np(y) != 0
    assert 0 < kept.sum() < 12
    np.testing.assert_allclose(to_np(x.grad), np.where(kept, w / (1 - p), 0.0), rtol=1e-15)
    f = lambda a: F.dropout(a, p, generator=xn.Generator(2))  # noqa: E731  (the same mask every call)
    assert xn.gradcheck(f, xn.tensor(np.ones((3, 4)), dtype="float64"))
    assert xn.gradgradcheck(lambda a: f(a) * a, xn.tensor(np.ones((3, 4)), dtype="float64"))


def test_dropout_p_one_gives_zeros(bk):
    x = xn.tensor(np.ones((2, 3)), requires_grad=True)
    y = nn.Dropout(1.0)(x)
    y.sum().backward()
    assert not to_np(y).any() and not to_np(x.grad).any()


def test_dropout_float32_stays_float32(bk):
    y = F.dropout(xn.tensor(np.ones((2, 3)), dtype="float32"), 0.5, generator=xn.Generator(0))
    assert to_np(y).dtype == np.float32


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_bad_p(bk, p):
    with pytest.raises(ValueError, match=f"Dropout: dropout probability has to be between 0 and 1, but got {p}"):
        nn.Dropout(p)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(xn.tensor([1.0]), p)


def test_dropout_repr():
    assert repr(nn.Dropout(0.25)) == "Dropout(p=0.25, inplace=False)"


# ------------------------------------------------------------------ embedding

IDX = np.array([[1, 4, 1, 0], [3, 3, 0, 2]])


def _torch_embedding(n, d, padding_idx=None):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch.nn.Embedding(n, d, padding_idx=padding_idx).double()


@pytest.mark.parametrize("padding_idx", [None, 0])
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 1e-6)])
def test_embedding_matches_torch(bk, padding_idx, dtype, rtol):
    torch = pytest.importorskip("torch")
    temb = _torch_embedding(5, 3, padding_idx)
    if padding_idx is not None:
        with torch.no_grad():
            temb.weight[padding_idx] = 0.7  # a non-zero padding row: the output shows it, the gradient not
    temb = temb.to(getattr(torch, dtype))
    emb = nn.Embedding(5, 3, padding_idx=padding_idx, dtype=dtype)
    emb.load_state_dict(temb.state_dict())
    w = np.random.default_rng(1).uniform(0.5, 1.5, size=(2, 4, 3))
    y = emb(xn.tensor(IDX))
    (y * xn.tensor(w, dtype=dtype)).sum().backward()
    ty = temb(torch.tensor(IDX))
    (ty * torch.tensor(w, dtype=getattr(torch, dtype))).sum().backward()
    assert y.shape == (2, 4, 3) and to_np(y).dtype == np.dtype(dtype)
    np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=rtol)
    np.testing.assert_allclose(to_np(emb.weight.grad), temb.weight.grad.numpy(), rtol=rtol, atol=1e-7)


def test_embedding_repeated_indices_add_up(bk):
    emb = nn.Embedding(4, 2, dtype="float64")
    y = emb(xn.tensor([2, 2, 2, 0]))
    y.sum().backward()
    np.testing.assert_array_equal(to_np(emb.weight.grad), [[1, 1], [0, 0], [3, 3], [0, 0]])
    np.testing.assert_array_equal(to_np(y)[0], to_np(emb.weight)[2])


def test_embedding_padding_row_zero_and_no_gradient(bk):
    emb = nn.Embedding(6, 3, padding_idx=-2)
    assert emb.padding_idx == 4
    w = to_np(emb.weight)
    assert np.all(w[4] == 0) and not np.signbit(w[4]).any()
    assert np.all(w[[0, 1, 2, 3, 5]] != 0)
    y = emb(xn.tensor([[4, 1], [4, 4]]))
    (y * y + y).sum().backward()
    g = to_np(emb.weight.grad)
    assert np.all(g[4] == 0) and np.all(g[1] != 0)
    assert emb.weight.dtype == emb.weight.xp.float32
    assert repr(emb) == "Embedding(6, 3, padding_idx=4)"


def test_embedding_init_is_standard_normal(bk, keep_default_rng):
    xn.manual_seed(0)
    w = to_np(nn.Embedding(200, 50).weight)
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1.0) < 0.02
    xn.manual_seed(0)
    np.testing.assert_array_equal(to_np(nn.Embedding(200, 50).weight), w)


def test_embedding_index_shapes(bk):
    emb = nn.Embedding(5, 3)
    w = to_np(emb.weight)
    np.testing.assert_array_equal(to_np(emb(xn.tensor(3))), w[3])
    np.testing.assert_array_equal(to_np(emb([0, 4])), w[[0, 4]])
    idx = np.array([[[0, 1], [2, 3]], [[4, 0], [1, 1]]])
    np.testing.assert_array_equal(to_np(emb(xn.tensor(idx))), w[idx])
    assert emb(xn.tensor(np.zeros((2, 0), dtype=np.int64))).shape == (2, 0, 3)
    np.testing.assert_array_equal(to_np(emb(xn.tensor(IDX, dtype="int32"))), w[IDX])


def test_embedding_gradcheck(bk):
    idx = xn.tensor(IDX)
    w = xn.tensor(np.random.default_rng(2).normal(size=(5, 3)), dtype="float64")
    assert xn.gradcheck(lambda a: F.embedding(idx, a), w)
    no_pad = xn.tensor([[2, 4], [4, 3]])  # padding_idx 1 is not looked up: its (zero) gradient is true
    assert xn.gradcheck(lambda a: F.embedding(no_pad, a, padding_idx=1), w)
    assert xn.gradgradcheck(lambda a: F.embedding(idx, a) ** 2, w)
    assert xn.gradgradcheck(lambda a: F.embedding(idx, a, padding_idx=3) ** 3, w)


@pytest.mark.parametrize("bad", [5, -1])
def test_embedding_index_out_of_range(bk, bad):
    emb = nn.Embedding(5, 3)
    before = to_np(emb.weight).copy()
    with pytest.raises(IndexError, match=rf"num_embeddings=5\): index {bad} is out of range: expected 0 <= index < 5"):
        emb(xn.tensor([[0, bad], [1, 2]]))
        B.flush_checks()  # deferred on an accelerator: raised at the next read
    np.testing.assert_array_equal(to_np(emb.weight), before)


def test_embedding_bad_inputs(bk):
    emb = nn.Embedding(5, 3)
    with pytest.raises(TypeError, match="embedding: indices must be integers .*got float32"):
        emb(xn.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"padding_idx 5 is out of range: expected -5 <= padding_idx < 5"):
        nn.Embedding(5, 3, padding_idx=5)
    with pytest.raises(ValueError, match=r"weight must be 2-D .*got shape \(5,\)"):
        F.embedding(xn.tensor([0]), xn.tensor(np.ones(5)))
    other = "numpy" if bk.name != "numpy" else "array_api_strict"
    with pytest.raises(TypeError, match=f"indices live on backend {other} but the weight on {bk.name}"):
        emb(xn.tensor([0, 1], backend=other))


def test_embedding_from_pretrained(bk):
    table = np.arange(12.0).reshape(4, 3)
    emb = nn.Embedding.from_pretrained(xn.tensor(table, dtype="float64"))
    assert (emb.num_embeddings, emb.embedding_dim) == (4, 3) and not emb.weight.requires_grad
    np.testing.assert_array_equal(to_np(emb(xn.tensor([3, 0]))), table[[3, 0]])
    trainable = nn.Embedding.from_pretrained(table, freeze=False, padding_idx=0)
    assert trainable.weight.requires_grad and trainable.padding_idx == 0
    np.testing.assert_array_equal(to_np(trainable.weight)[0], table[0])  # kept as given
    with pytest.raises(ValueError, match=r"must be 2-D, got shape \(3,\)"):
        nn.Embedding.from_pretrained(np.ones(3))
