"""MultiheadAttention and scaled_dot_product_attention: PyTorch parity (outputs, weights,
every gradient), gradient checks, masks and bad input, on every backend."""

import numpy as np
import pytest

import xpnet as xn
from xpnet import nn
from xpnet.nn import functional as F
from conftest import to_np

RNG = np.random.default_rng(0)
TOL = {"float64": dict(rtol=1e-8, atol=1e-10), "float32": dict(rtol=1e-4, atol=1e-5)}
E, HEADS, L, S, N = 8, 2, 3, 4, 2  # one set of sizes everywhere: JAX compiles each op once per shape


def _mask(kind, shape):
    """A boolean (True = hidden, never a whole row) or float additive mask as NumPy."""
    if kind == "bool":
        m = RNG.random(shape) < 0.4
        m[..., 0] = False
        return m
    return RNG.normal(size=shape)


def _compare_mha(torch, dtype, kw, q, k, v, self_attention=False, **call):
    """Run torch's and xpnet's MHA on the same weights and inputs; compare outputs, weights and all grads."""
    torch.manual_seed(0)
    tdt = getattr(torch, dtype)
    tm = torch.nn.MultiheadAttention(E, HEADS, **kw).to(tdt)
    m = nn.MultiheadAttention(E, HEADS, **kw, dtype=dtype)
    m.load_state_dict(tm.state_dict())
    arrays = [q] if self_attention else [q, k, v]
    t_in = [torch.tensor(a, dtype=tdt, requires_grad=True) for a in arrays]
    x_in = [xn.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    t_call = {n: (torch.tensor(a) if isinstance(a, np.ndarray) else a) for n, a in call.items()}
    x_call = {n: (xn.tensor(a, dtype="bool" if a.dtype == bool else dtype) if isinstance(a, np.ndarray) else a)
              for n, a in call.items()}
    t_out, t_w = tm(*(t_in * 3 if self_attention else t_in), **t_call)
    x_out, x_w = m(*(x_in * 3 if self_attention else x_in), **x_call)
    np.testing.assert_allclose(to_np(x_out), t_out.detach().numpy(), **TOL[dtype])
    assert (x_w is None) == (t_w is None)
    loss_w = RNG.uniform(0.5, 1.5, size=tuple(t_out.shape))
    t_loss = (t_out * torch.tensor(loss_w, dtype=tdt)).sum()
    x_loss = (x_out * xn.tensor(loss_w, dtype=dtype)).sum()
    if t_w is not None:
        np.testing.assert_allclose(to_np(x_w), t_w.detach().numpy(), **TOL[dtype])
        ww = RNG.uniform(0.5, 1.5, size=tuple(t_w.shape))
        t_loss = t_loss + (t_w * torch.tensor(ww, dtype=tdt)).sum()
        x_loss = x_loss + (x_w * xn.tensor(ww, dtype=dtype)).sum()
    t_loss.backward()
    x_loss.backward()
    for i, (a, b) in enumerate(zip(t_in, x_in)):
        np.testing.assert_allclose(to_np(b.grad), a.grad.numpy(), err_msg=f"input {i}", **TOL[dtype])
    tp = dict(tm.named_parameters())
    assert sorted(tp) == sorted(n for n, _ in m.named_parameters())
    for n, p in m.named_parameters():
        np.testing.assert_allclose(to_np(p.grad), tp[n].grad.numpy(), err_msg=n, **TOL[dtype])
    return x_out, x_w


def _qkv(batch_first=False, kdim=E, vdim=E, batched=True):
    lead = lambda T: ((N, T) if batch_first else (T, N)) if batched else (T,)  # noqa: E731
    return RNG.normal(size=lead(L) + (E,)), RNG.normal(size=lead(S) + (kdim,)), RNG.normal(size=lead(S) + (vdim,))


@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
def test_self_attention_matches_torch(bk, batch_first):
    torch = pytest.importorskip("torch")
    x = RNG.normal(size=(N, L, E) if batch_first else (L, N, E))
    _compare_mha(torch, "float64", dict(batch_first=batch_first), x, None, None, self_attention=True)


def test_cross_attention_masks_match_torch(bk):
    torch = pytest.importorskip("torch")
    q, k, v = _qkv()
    _compare_mha(torch, "float64", {}, q, k, v, key_padding_mask=_mask("bool", (N, S)),
                 attn_mask=_mask("bool", (L, S)))


def test_float_masks_per_head_match_torch(bk):
    torch = pytest.importorskip("torch")
    q, k, v = _qkv(batch_first=True)
    _compare_mha(torch, "float64", dict(batch_first=True), q, k, v,
                 key_padding_mask=_mask("float", (N, S)), attn_mask=_mask("float", (N * HEADS, L, S)),
                 average_attn_weights=False)


def test_kdim_vdim_no_bias_zero_attn_match_torch(bk):
    torch = pytest.importorskip("torch")
    q, k, v = _qkv(kdim=5, vdim=6)
    _, w = _compare_mha(torch, "float64", dict(kdim=5, vdim=6, bias=False, add_zero_attn=True), q, k, v,
                        attn_mask=_mask("bool", (L, S)), key_padding_mask=_mask("bool", (N, S)))
    assert w.shape == (N, L, S + 1)


def test_bias_kv_zero_attn_match_torch(bk):
    torch = pytest.importorskip("torch")
    q, k, v = _qkv()
    _, w = _compare_mha(torch, "float64", dict(add_bias_kv=True, add_zero_attn=True), q, k, v,
                        key_padding_mask=_mask("float", (N, S)), attn_mask=_mask("float", (L, S)))
    assert w.shape == (N, L, S + 2)


def test_causal_matches_torch_mask(bk):
    """is_causal=True alone builds the mask that torch needs spelled out."""
    torch = pytest.importorskip("torch")
    x = RNG.normal(size=(L, N, E))
    causal = np.triu(np.ones((L, L), dtype=bool), 1)
    _, ref = _compare_mha(torch, "float64", {}, x, None, None, self_attention=True, attn_mask=causal)
    m = nn.MultiheadAttention(E, HEADS, dtype="float64")
    xt = xn.tensor(x, dtype="float64")
    _, w = m(xt, xt, xt, is_causal=True)
    assert np.all(to_np(w)[:, np.triu_indices(L, 1)[0], np.triu_indices(L, 1)[1]] == 0)
    m2 = nn.MultiheadAttention(E, HEADS, dtype="float64")
    m2.load_state_dict(m.state_dict())
    np.testing.assert_allclose(to_np(m(xt, xt, xt, is_causal=True)[0]),
                               to_np(m2(xt, xt, xt, attn_mask=xn.tensor(causal))[0]), rtol=1e-12)


def test_unbatched_and_no_weights_match_torch(bk):
    torch = pytest.importorskip("torch")
    q, k, v = _qkv(batched=False)
    _, w = _compare_mha(torch, "float64", {}, q, k, v, attn_mask=_mask("bool", (HEADS, L, S)),
                        key_padding_mask=_mask("bool", (S,)), average_attn_weights=False)
    assert w.shape == (HEADS, L, S)
    _, w = _compare_mha(torch, "float64", {}, *_qkv(), need_weights=False)
    assert w is None


def test_float32_matches_torch(bk):
    torch = pytest.importorskip("torch")
    q, k, v = _qkv()
    _compare_mha(torch, "float32", {}, q, k, v, key_padding_mask=_mask("bool", (N, S)))


def test_state_dict_layout_matches_torch(bk):
    torch = pytest.importorskip("torch")
    for kw in [{}, dict(kdim=3, vdim=5, bias=False), dict(add_bias_kv=True)]:
        t = {k: tuple(v.shape) for k, v in torch.nn.MultiheadAttention(E, HEADS, **kw).state_dict().items()}
        x = {k: tuple(v.shape) for k, v in nn.MultiheadAttention(E, HEADS, **kw).state_dict().items()}
        assert x == t


def test_default_init(bk):
    m = nn.MultiheadAttention(E, HEADS)
    w = to_np(m.in_proj_weight)
    bound = np.sqrt(6 / (E + 3 * E))  # xavier_uniform_ over (3E, E)
    assert np.all(np.abs(w) <= bound + 1e-7) and np.abs(w).max() > bound / 2
    assert np.all(to_np(m.in_proj_bias) == 0) and np.all(to_np(m.out_proj.bias) == 0)
    assert to_np(m.out_proj.weight).std() > 0


def test_mha_gradcheck(bk):
    m = nn.MultiheadAttention(E, HEADS, dtype="float64")
    mask = xn.tensor(_mask("bool", (L, S)))
    q, k, v = _qkv(batched=False)  # the sizes of the unbatched parity test
    xn.gradcheck(lambda q, k, v: m(q, k, v, attn_mask=mask)[0], q, k, v)


def test_dropout(bk):
    m = nn.MultiheadAttention(E, HEADS, dropout=0.5, dtype="float64")
    x = xn.tensor(RNG.normal(size=(L, N, E)), dtype="float64")
    ref_out, ref_w = (to_np(t) for t in m.eval()(x, x, x, average_attn_weights=False))
    np.testing.assert_array_equal(to_np(m(x, x, x)[0]), ref_out)  # eval: no dropout
    m.train()
    out, w = m(x, x, x, average_attn_weights=False)
    assert not np.allclose(to_np(out), ref_out)
    w = to_np(w)  # the weights returned are the dropped ones (as PyTorch): 0 or doubled
    dropped = w == 0
    assert dropped.any() and not dropped.all()
    np.testing.assert_allclose(w[~dropped], 2 * ref_w[~dropped], rtol=1e-12)


# ------------------------------------------------------- scaled_dot_product_attention

@pytest.mark.parametrize("case", ["plain", "bool_mask", "float_mask", "causal", "causal_rect", "scale"])
def test_sdpa_matches_torch(bk, case):
    torch = pytest.importorskip("torch")
    Lq = S if case == "causal" else L
    hd = E // HEADS  # the shapes MultiheadAttention hands to the same core
    q, k, v = (RNG.normal(size=(N, HEADS, T, hd)) for T in (Lq, S, S))
    kw = {}
    if case == "bool_mask":
        kw["attn_mask"] = ~_mask("bool", (N, 1, Lq, S))  # torch: True = may attend
    elif case == "float_mask":
        kw["attn_mask"] = _mask("float", (Lq, S))
    elif case.startswith("causal"):
        kw["is_causal"] = True
    elif case == "scale":
        kw["scale"] = 0.3
    t_in = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    x_in = [xn.tensor(a, dtype="float64", requires_grad=True) for a in (q, k, v)]
    t_kw = {n: torch.tensor(a) if isinstance(a, np.ndarray) else a for n, a in kw.items()}
    x_kw = {n: xn.tensor(a) if isinstance(a, np.ndarray) else a for n, a in kw.items()}
    t_out = torch.nn.functional.scaled_dot_product_attention(*t_in, **t_kw)
    x_out = F.scaled_dot_product_attention(*x_in, **x_kw)
    np.testing.assert_allclose(to_np(x_out), t_out.detach().numpy(), **TOL["float64"])
    w = RNG.uniform(0.5, 1.5, size=tuple(t_out.shape))
    (t_out * torch.tensor(w)).sum().backward()
    (x_out * xn.tensor(w, dtype="float64")).sum().backward()
    for a, b in zip(t_in, x_in):
        np.testing.assert_allclose(to_np(b.grad), a.grad.numpy(), **TOL["float64"])


def test_sdpa_float_mask_gradient(bk):
    """A float mask (e.g. a learned bias) gets its gradient too."""
    q, k, v = RNG.normal(size=(2, 3)), RNG.normal(size=(4, 3)), RNG.normal(size=(4, 2))
    xn.gradcheck(lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, attn_mask=b),
                 q, k, v, RNG.normal(size=(2, 4)))


def test_sdpa_gradgradcheck(bk):
    xn.gradgradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                     RNG.normal(size=(2, 2)), RNG.normal(size=(2, 2)), RNG.normal(size=(2, 2)))


def test_sdpa_fully_masked_row_is_zero_and_stable(bk):
    q = xn.tensor(np.array([[1e4, 0.0], [0.0, 1.0]]), dtype="float64", requires_grad=True)
    k = xn.tensor(np.array([[1e4, 0.0], [-1e4, 1.0], [0.0, 0.0]]), dtype="float64")
    v = xn.tensor(RNG.normal(size=(3, 2)), dtype="float64")
    mask = xn.tensor(np.array([[True, True, False], [False, False, False]]))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    o = to_np(out)
    assert np.all(np.isfinite(o))
    np.testing.assert_allclose(o[0], to_np(v)[0], rtol=1e-12)  # huge scores: no overflow
    np.testing.assert_array_equal(o[1], 0.0)
    out.sum().backward()
    assert np.all(np.isfinite(to_np(q.grad)))


# ---------------------------------------------------------------- bad input

def test_bad_constructor():
    with pytest.raises(ValueError, match="embed_dim 10 is not divisible by num_heads 3"):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\]"):
        nn.MultiheadAttention(8, 2, dropout=2.0)


def test_bad_inputs(bk):
    m = nn.MultiheadAttention(E, HEADS)
    t = lambda *s, dt="float32": xn.tensor(np.zeros(s), dtype=dt)  # noqa: E731
    q = t(L, N, E)
    with pytest.raises(ValueError, match=r"MultiheadAttention\(8, 2\): query has 5 features .*expected 8"):
        m(t(L, N, 5), q, q)
    with pytest.raises(ValueError, match=r"key has shape \(4, 8\), expected 3-D"):
        m(q, t(S, E), t(S, E))
    with pytest.raises(ValueError, match="must have the same sequence length"):
        m(q, t(S, N, E), t(S + 1, N, E))
    with pytest.raises(ValueError, match="query has batch size 2 but key and value have 3"):
        m(q, t(S, 3, E), t(S, 3, E))
    with pytest.raises(ValueError, match=r"attn_mask has shape \(3, 5\), expected \(3, 4\) or \(4, 3, 4\)"):
        m(q, t(S, N, E), t(S, N, E), attn_mask=t(L, S + 1, dt="bool"))
    with pytest.raises(ValueError, match=r"key_padding_mask has shape \(4, 2\), expected \(2, 4\)"):
        m(q, t(S, N, E), t(S, N, E), key_padding_mask=t(S, N, dt="bool"))


def test_sdpa_bad_inputs(bk):
    a = lambda *s: xn.tensor(np.zeros(s), dtype="float64")  # noqa: E731
    with pytest.raises(ValueError, match=r"query has 3 features .* but key has 4"):
        F.scaled_dot_product_attention(a(2, 3), a(5, 4), a(5, 4))
    with pytest.raises(ValueError, match="key has 5 positions .* but value has 6"):
        F.scaled_dot_product_attention(a(2, 3), a(5, 3), a(6, 3))
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        F.scaled_dot_product_attention(a(2, 3), a(5, 3), a(5, 3), attn_mask=a(2, 5), is_causal=True)
    with pytest.raises(ValueError, match=r"attn_mask has shape \(3, 5\), expected one that broadcasts to "
                                         r"\(\.\.\., 2, 5\)"):
        F.scaled_dot_product_attention(a(2, 3), a(5, 3), a(5, 3), attn_mask=a(3, 5))


def test_sdpa_float_mask_takes_query_dtype(bk):
    q = xn.tensor(RNG.normal(size=(L, E // HEADS)), dtype="float32")
    k = xn.tensor(RNG.normal(size=(S, E // HEADS)), dtype="float32")
    out = F.scaled_dot_product_attention(q, k, k, attn_mask=xn.tensor(RNG.normal(size=(L, S)), dtype="float64"))
    assert str(out.dtype).endswith("float32")
