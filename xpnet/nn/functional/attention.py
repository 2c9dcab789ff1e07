"""``scaled_dot_product_attention`` and ``multi_head_attention_forward`` (PyTorch's semantics): the
attention core of MultiheadAttention and the Transformer layers."""

from __future__ import annotations

import math

from ... import backend as B
from ...autograd.functions import (astype, broadcast_to, concat, matmul, mean, pad, permute, reshape, squeeze,
                                   transpose, unsqueeze, where)
from ...autograd.tensor import Tensor, _raw
from .activation import Softmax
from .dropout import dropout
from .linear import linear

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]


def _like(mask, ref):
    """``mask`` (tensor, array, list) on ``ref``'s backend, a float one in ``ref``'s dtype
    (float tensors stay differentiable)."""
    if not isinstance(mask, Tensor):
        mask = B.as_array(mask, None, B.backend_of(_raw(ref)))
    if not _is_bool(mask) and B.dtype_name(mask.dtype) != B.dtype_name(ref.dtype):
        mask = astype(mask, ref.dtype)
    return mask


def _is_bool(mask) -> bool:
    return B.dtype_name(_raw(mask).dtype) == "bool"


def attend(q, k, v, masked=None, additive=None, dropout_p=0.0, scale=None):
    """``(softmax(q k^T * scale + additive, masked -> -inf) @ v, weights)``.

    ``q`` (..., L, E), ``k`` (..., S, E), ``v`` (..., S, Ev); ``masked`` a
    boolean array broadcastable to (..., L, S), True where a key is hidden;
    ``additive`` a float tensor or array added to the scores.  A query that
    sees no key at all gets zero weights (and a zero output).
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = matmul(q * scale, transpose(k, -2, -1))
    if additive is not None:
        scores = scores + additive
    if masked is not None:
        scores = where(masked, -math.inf, scores)
    weights = Softmax(len(_raw(scores).shape) - 1)(scores)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, training=True)
    return matmul(weights, v), weights


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale=None):
    """softmax(Q K^T * scale + mask) V, as ``torch.nn.functional.scaled_dot_product_attention``.

    ``query`` (..., L, E), ``key`` (..., S, E), ``value`` (..., S, Ev) give
    (..., L, Ev).  ``attn_mask`` broadcasts to (..., L, S): a boolean mask is
    True where attention is ALLOWED (PyTorch's convention here, the opposite
    of MultiheadAttention's masks); a float mask is added to the scores.
    ``is_causal`` lets query i see keys 0..i (top-left aligned); ``scale``
    defaults to 1/sqrt(E).  ``dropout_p`` drops attention weights (always, as
    in PyTorch: pass 0.0 at evaluation).  Queries that see no key give zeros.
    """
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ValueError(f"scaled_dot_product_attention: query, key and value need at least 2 dimensions "
                         f"(..., seq, features), got shapes {tuple(query.shape)}, {tuple(key.shape)}, "
                         f"{tuple(value.shape)}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention: query has {query.shape[-1]} features (shape "
                         f"{tuple(query.shape)}) but key has {key.shape[-1]} (shape {tuple(key.shape)}): "
                         "expected the same")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: key has {key.shape[-2]} positions (shape "
                         f"{tuple(key.shape)}) but value has {value.shape[-2]} (shape {tuple(value.shape)}): "
                         "expected the same")
    L, S = query.shape[-2], key.shape[-2]
    masked = additive = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
        xp = B.namespace_of(_raw(query))
        dev = B.array_api_compat.device(_raw(query))
        i = xp.arange(L, device=dev)[:, None]
        masked = xp.arange(S, device=dev)[None, :] > i
    elif attn_mask is not None:
        attn_mask = _like(attn_mask, query)
        shape = tuple(attn_mask.shape)
        if len(shape) < 2 or shape[-2] not in (1, L) or shape[-1] not in (1, S):
            raise ValueError(f"scaled_dot_product_attention: attn_mask has shape {shape}, expected one "
                             f"that broadcasts to (..., {L}, {S})")
        if _is_bool(attn_mask):
            xp = B.namespace_of(_raw(attn_mask))
            masked = xp.logical_not(_raw(attn_mask))
        else:
            additive = attn_mask
    return attend(query, key, value, masked, additive, dropout_p, scale)[0]


def _project(query, key, value, E, w, b, separate):
    """q, k, v = the input projections (one matrix product for self-attention)."""
    q_w, k_w, v_w = separate if w is None else (w[:E, :], w[E:2 * E, :], w[2 * E:, :])
    bq, bk, bv = (None,) * 3 if b is None else (b[:E], b[E:2 * E], b[2 * E:])
    if w is not None and query is key and key is value:
        qkv = linear(query, w, b)
        return qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:]
    return linear(query, q_w, bq), linear(key, k_w, bk), linear(value, v_w, bv)


def multi_head_attention_forward(query, key, value, embed_dim_to_check: int, num_heads: int, in_proj_weight,
                                 in_proj_bias, bias_k, bias_v, add_zero_attn: bool, dropout_p: float,
                                 out_proj_weight, out_proj_bias, training: bool = True, key_padding_mask=None,
                                 need_weights: bool = True, attn_mask=None, use_separate_proj_weight: bool = False,
                                 q_proj_weight=None, k_proj_weight=None, v_proj_weight=None, static_k=None,
                                 static_v=None, average_attn_weights: bool = True, is_causal: bool = False,
                                 name: str = "multi_head_attention_forward"):
    """Multi-head attention with explicit parameters, as ``torch.nn.functional.multi_head_attention_forward``
    (what :class:`xpnet.nn.MultiheadAttention` runs).

    Time-major shapes: query (L, N, E), key (S, N, kdim), value (S, N, vdim), or unbatched
    (L, E), (S, kdim), (S, vdim).  ``in_proj_weight`` (3E, E) (or ``q/k/v_proj_weight`` with
    ``use_separate_proj_weight``), ``in_proj_bias`` (3E,), ``bias_k``/``bias_v`` (1, 1, E),
    ``out_proj_weight`` (E, E).  Masks as MultiheadAttention's (boolean True = hidden, float
    = added).  Returns ``(output (L, N, E), weights (N, L, S) or (N, H, L, S) or None)``.
    ``static_k``/``static_v`` are not supported (NotImplementedError).
    """
    if static_k is not None or static_v is not None:
        raise NotImplementedError(f"{name}: static_k and static_v are not supported")
    batched = query.ndim == 3
    E, H = query.shape[-1], num_heads
    if E != embed_dim_to_check:
        raise ValueError(f"{name}: query has {E} features (shape {tuple(query.shape)}), expected {embed_dim_to_check}")
    if E % H:
        raise ValueError(f"{name}: embed_dim {E} is not divisible by num_heads {H}")
    hd = E // H
    if not batched:
        if query is key and key is value:
            query = key = value = unsqueeze(query, 1)
        else:
            query, key, value = unsqueeze(query, 1), unsqueeze(key, 1), unsqueeze(value, 1)
    L, N = query.shape[0], query.shape[1]
    w = None if use_separate_proj_weight else in_proj_weight
    q, k, v = _project(query, key, value, E, w, in_proj_bias, (q_proj_weight, k_proj_weight, v_proj_weight))
    if bias_k is not None:
        k = concat([k, broadcast_to(bias_k, (1, N, E))], 0)
        v = concat([v, broadcast_to(bias_v, (1, N, E))], 0)
    S = k.shape[0]
    q, k, v = (permute(reshape(t, (t.shape[0], N, H, hd)), (1, 2, 0, 3)) for t in (q, k, v))
    if add_zero_attn:
        r = _raw(k)
        zeros = B.namespace_of(r).zeros((N, H, 1, hd), dtype=r.dtype, device=B.array_api_compat.device(r))
        k, v = concat([k, zeros], 2), concat([v, zeros], 2)
    extra = (bias_k is not None) + bool(add_zero_attn)
    masked, additive = _masks(name, query, key_padding_mask, attn_mask, is_causal, batched, N, H, L,
                              S - (bias_k is not None), extra)
    out, weights = attend(q, k, v, masked, additive, dropout_p if training else 0.0)  # (N, H, L, hd), (N, H, L, S')
    out = linear(reshape(permute(out, (2, 0, 1, 3)), (L, N, E)), out_proj_weight, out_proj_bias)
    if not batched:
        out = squeeze(out, 1)
    if not need_weights:
        return out, None
    if average_attn_weights:
        weights = mean(weights, axis=1)
    return out, (weights if batched else squeeze(weights, 0))


def _masks(name, query, key_padding_mask, attn_mask, is_causal, batched, N, H, L, S0, extra):
    """The boolean (True = hidden) and additive masks, shaped to broadcast to (N, H, L, S0 + extra);
    ``extra`` columns (bias_k, the zero key) are never masked."""
    masked, additive = [], []

    def add(mask, shape):
        mask = _pad_columns(mask, extra)
        if _is_bool(mask):
            masked.append(reshape(_raw(mask), shape))
        else:
            additive.append(reshape(mask, shape))

    if attn_mask is None and is_causal:
        xp, r = B.namespace_of(_raw(query)), _raw(query)
        dev = B.array_api_compat.device(r)
        attn_mask = xp.arange(S0, device=dev)[None, :] > xp.arange(L, device=dev)[:, None]
    if attn_mask is not None:
        attn_mask = _like(attn_mask, query)
        shape = tuple(attn_mask.shape)
        if shape == (L, S0):
            add(attn_mask, (1, 1, L, S0 + extra))
        elif shape == (N * H, L, S0):
            add(attn_mask, (N, H, L, S0 + extra))
        else:
            raise ValueError(f"{name}: attn_mask has shape {shape}, expected ({L}, {S0}) or ({N * H}, {L}, {S0})")
    if key_padding_mask is not None:
        key_padding_mask = _like(key_padding_mask, query)
        shape, expected = tuple(key_padding_mask.shape), ((N, S0) if batched else (S0,))
        if shape != expected:
            raise ValueError(f"{name}: key_padding_mask has shape {shape}, expected {expected} (batch, source length)")
        add(key_padding_mask if batched else reshape(key_padding_mask, (1, S0)), (N, 1, 1, S0 + extra))
    m = None
    for b in masked:
        m = b if m is None else B.namespace_of(b).logical_or(m, b)
    a = None
    for f in additive:
        a = f if a is None else a + f
    return m, a


def _pad_columns(mask, n):
    """``mask`` with ``n`` columns appended on its last axis (False for boolean masks, 0 for float)."""
    if n == 0:
        return mask
    if _is_bool(mask):
        r = _raw(mask)
        xp = B.namespace_of(r)
        zeros = xp.zeros((*r.shape[:-1], n), dtype=xp.bool, device=B.array_api_compat.device(r))
        return xp.concat([r, zeros], axis=-1)
    return pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, n)])
