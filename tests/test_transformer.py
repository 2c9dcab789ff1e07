"""Transformer, TransformerEncoder/Decoder and their layers, F.multi_head_attention_forward:
PyTorch's module_db and op_db samples (forward, input and parameter gradients, float64);
TransformerDecoder (PyTorch has no samples for it) and the encoder's own arguments (norm,
enable_nested_tensor, mask_check, is_causal) in cases of our own against PyTorch; masks,
norm_first, batch_first, activations, gradient checks on every backend, bad input."""

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from conftest import to_np
from torch_samples import check_module_db, check_op_db, compare_modules, to_xpnet

RNG = np.random.default_rng(2)


@pytest.mark.parametrize("name", ["TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
                                  "Transformer"])
def test_module_db(bk, name):
    if bk.name == "jax" and name != "TransformerEncoderLayer":
        pytest.skip("jax: one module (each shape compiles); the others run on every other backend")
    # numpy: every 3rd of PyTorch's 64-134 samples per module (they cross batch_first, norm_first, bias,
    # masks of both dtypes and unbatched inputs; all pass with XPNET_FULL_SAMPLES=1); op by op the
    # other backends are slow: two samples (jax one)
    n = {"numpy": None, "jax": 1}.get(bk.name, 2)
    assert check_module_db(name, max_samples=n, rtol=1e-6, atol=1e-8, step=3 if bk.name == "numpy" else 1) > 0


def test_op_db_multi_head_attention_forward(bk):
    if bk.name == "jax":
        pytest.skip("jax: covered by the module samples")
    # PyTorch's gradient samples all use dropout 0.5 (random): its forward samples, without
    # dropout in effect, are compared instead (outputs and gradients)
    random = lambda s: s.kwargs.get("training", True) and s.args[9] > 0  # noqa: E731  (args[9]: dropout_p)
    n = None if bk.name == "numpy" else 3  # every sample on numpy; the same code elsewhere: three
    assert check_op_db("nn.functional.multi_head_attention_forward", F.multi_head_attention_forward,
                       rtol=1e-6, atol=1e-8, grad_samples=False, skip=random, max_samples=n) > 0


def _pair(dm=4, nhead=2, ff=6, norm_first=False, batch_first=True, activation="gelu"):
    torch = pytest.importorskip("torch")
    kw = dict(dim_feedforward=ff, dropout=0.0, activation=activation, batch_first=batch_first, norm_first=norm_first)
    tm = torch.nn.TransformerDecoderLayer(dm, nhead, dtype=torch.float64, **kw)
    m = nn.TransformerDecoderLayer(dm, nhead, **kw).to("float64")
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return torch, tm, m


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_masks_match_torch(bk, norm_first):
    if bk.name == "jax" and norm_first:
        pytest.skip("jax: one case")
    torch, tm, m = _pair(norm_first=norm_first)
    tgt, mem = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((2, 5, 4))
    causal = nn.Transformer.generate_square_subsequent_mask(3, dtype="float64")
    tkpm = np.array([[False, False, True], [False, False, False]])
    mkpm = np.array([[False, True, False, False, True], [False, False, False, False, False]])
    tt = torch.tensor(tgt, requires_grad=True)
    ty = tm(tt, torch.tensor(mem), tgt_mask=torch.tensor(to_np(causal)), tgt_key_padding_mask=torch.tensor(tkpm),
            memory_key_padding_mask=torch.tensor(mkpm))
    xt = xn.tensor(tgt, dtype="float64", requires_grad=True)
    y = m(xt, xn.tensor(mem, dtype="float64"), tgt_mask=causal, tgt_key_padding_mask=xn.tensor(tkpm),
          memory_key_padding_mask=xn.tensor(mkpm))
    np.testing.assert_allclose(to_np(y), ty.detach().numpy(), rtol=1e-9, atol=1e-12)
    (ty ** 2).sum().backward()
    (y ** 2).sum().backward()
    np.testing.assert_allclose(to_np(xt.grad), tt.grad.numpy(), rtol=1e-8, atol=1e-11)
    tp = dict(tm.named_parameters())
    for k, p in m.named_parameters():
        np.testing.assert_allclose(to_np(p.grad), tp[k].grad.numpy(), rtol=1e-8, atol=1e-11, err_msg=k)


def _stack(torch, kind, norm_first, batch_first, **kw):
    """PyTorch's Transformer{kind} of two layers with a final norm, and xpnet's made from the same layer."""
    layer = getattr(torch.nn, f"Transformer{kind}Layer")(4, 2, 6, dropout=0.0, activation="gelu", batch_first=batch_first,
                                                          norm_first=norm_first, dtype=torch.float64)
    tm = getattr(torch.nn, f"Transformer{kind}")(layer, 2, norm=torch.nn.LayerNorm(4, dtype=torch.float64), **kw)
    return tm, getattr(nn, f"Transformer{kind}")(to_xpnet(layer), 2, norm=nn.LayerNorm(4), **kw).to("float64")


def _batched(torch, shape, batch_first):
    """A (N, L, E) sample laid out for ``batch_first``, requiring gradients."""
    x = RNG.standard_normal(shape)
    return torch.tensor(x if batch_first else x.transpose(1, 0, 2).copy(), requires_grad=True)


@pytest.mark.parametrize("norm_first,batch_first", [(False, False), (True, True)])
def test_decoder_stack_matches_torch(bk, norm_first, batch_first):
    """TransformerDecoder (no module_db samples): masks of every kind, outputs and gradients."""
    torch = pytest.importorskip("torch")
    if bk.name == "jax":
        pytest.skip("jax: test_decoder_layer_masks_match_torch runs the decoder layer (each shape compiles)")
    tm, m = _stack(torch, "Decoder", norm_first, batch_first)
    tgt, mem = _batched(torch, (2, 3, 4), batch_first), _batched(torch, (2, 5, 4), batch_first)
    kw = dict(tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(3, dtype=torch.float64),
              memory_mask=torch.tensor(RNG.uniform(size=(3, 5)) < 0.3),
              tgt_key_padding_mask=torch.tensor([[False, False, True], [False, False, False]]),
              memory_key_padding_mask=torch.tensor([[False, True, False, False, True], [False] * 5]),
              tgt_is_causal=True)
    compare_modules(tm, m, (tgt, mem), kw, rtol=1e-8, atol=1e-11, desc=f"TransformerDecoder {norm_first=} {batch_first=}")


@pytest.mark.parametrize("batch_first", [True, False])
def test_encoder_arguments_match_torch(bk, batch_first):
    """TransformerEncoder with a final norm, enable_nested_tensor and mask_check (accepted: no
    nested tensors here), a key-padding mask and a causal mask with is_causal."""
    torch = pytest.importorskip("torch")
    if bk.name == "jax":
        pytest.skip("jax: test_gradcheck_encoder runs the encoder (each shape compiles)")
    tm, m = _stack(torch, "Encoder", True, batch_first, enable_nested_tensor=False, mask_check=False)
    src = _batched(torch, (2, 3, 4), batch_first)
    kw = dict(mask=torch.nn.Transformer.generate_square_subsequent_mask(3, dtype=torch.float64),
              src_key_padding_mask=torch.tensor([[False, False, True], [False, False, False]]), is_causal=True)
    compare_modules(tm, m, (src,), kw, rtol=1e-8, atol=1e-11, desc=f"TransformerEncoder {batch_first=}")
    assert nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2), 1, enable_nested_tensor=True).num_layers == 1


def test_causal_mask_and_callable_activation(bk):
    if bk.name == "jax":
        pytest.skip("jax: masks and activations are the same code on every backend; the layers run on jax above")
    mask = to_np(nn.Transformer.generate_square_subsequent_mask(3))
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, [[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]])
    layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, activation=F.silu).to("float64")
    x = xn.tensor(RNG.standard_normal((3, 1, 4)), dtype="float64")
    y = layer(x, is_causal=True)
    # a causal encoder: the first position does not depend on the later ones
    x2 = xn.tensor(np.concatenate([to_np(x)[:1], RNG.standard_normal((2, 1, 4))]), dtype="float64")
    np.testing.assert_allclose(to_np(layer(x2, is_causal=True))[0], to_np(y)[0], rtol=1e-12)
    assert not np.allclose(to_np(layer(x2))[0], to_np(layer(x))[0])


def test_gradcheck_encoder(bk):
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, norm_first=True), 2,
                                norm=nn.LayerNorm(4)).to("float64")
    assert enc.layers[0].linear1.weight is not enc.layers[1].linear1.weight  # independent copies
    kpm = xn.tensor([[False, False, True]])
    assert xn.gradcheck(lambda x: enc(x, src_key_padding_mask=kpm), xn.tensor(RNG.standard_normal((3, 1, 4)),
                                                                              dtype="float64"))


def test_transformer_shapes_state_and_dropout(bk):
    if bk.name == "jax":
        pytest.skip("jax: the layers' tests cover it (each shape compiles)")
    xn.manual_seed(0)
    model = nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=2, dim_feedforward=16,
                           batch_first=True)
    keys = list(model.state_dict())
    assert "encoder.layers.0.self_attn.in_proj_weight" in keys and "decoder.layers.1.multihead_attn.out_proj.bias" in keys
    assert "encoder.norm.weight" in keys and "decoder.norm.bias" in keys
    src, tgt = xn.tensor(RNG.standard_normal((2, 5, 8))), xn.tensor(RNG.standard_normal((2, 3, 8)))
    out = model(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(3))
    assert out.shape == (2, 3, 8)
    model.eval()
    a, b = model(src, tgt), model(src, tgt)
    np.testing.assert_array_equal(to_np(a), to_np(b))  # no dropout in eval
    model.train()
    assert not np.array_equal(to_np(model(src, tgt)), to_np(a))  # dropout 0.1 in training


def test_bad_input(bk):
    with pytest.raises(ValueError, match="activation"):
        nn.TransformerEncoderLayer(4, 2, activation="swish")
    with pytest.raises(ValueError, match="divisible"):
        nn.TransformerEncoderLayer(6, 4)
    model = nn.Transformer(d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=8)
    with pytest.raises(ValueError, match="batch size"):
        model(xn.tensor(np.zeros((3, 2, 4))), xn.tensor(np.zeros((3, 1, 4))))
    with pytest.raises(ValueError, match="d_model=4"):
        model(xn.tensor(np.zeros((3, 2, 5))), xn.tensor(np.zeros((3, 2, 5))))
    with pytest.raises(ValueError, match="attn_mask has shape"):
        model.encoder(xn.tensor(np.zeros((3, 2, 4))), mask=xn.tensor(np.zeros((2, 2))))


def test_encoder_eval_with_nested_tensor(bk):
    """In eval mode PyTorch's fast path (enable_nested_tensor=True with a key-padding mask) returns
    zeros at padded positions; xpnet computes them as in training (docs/pytorch-differences.md).
    Every other position agrees."""
    torch = pytest.importorskip("torch")
    if bk.name == "jax":
        pytest.skip("jax: the encoder's numbers are compared above")
    layer = torch.nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True, dtype=torch.float64)
    tm = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=True).eval()
    m = nn.TransformerEncoder(to_xpnet(layer), 2, enable_nested_tensor=True).to("float64").eval()
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x, kpm = RNG.standard_normal((2, 3, 4)), np.array([[False, False, True], [False, False, False]])
    with torch.no_grad():
        want = tm(torch.tensor(x), src_key_padding_mask=torch.tensor(kpm)).numpy()
    y = to_np(m(xn.tensor(x, dtype="float64"), src_key_padding_mask=xn.tensor(kpm)))
    np.testing.assert_allclose(y[~kpm], want[~kpm], rtol=1e-9, atol=1e-12)
    assert np.all(want[kpm] == 0) and np.all(np.isfinite(y[kpm]))
