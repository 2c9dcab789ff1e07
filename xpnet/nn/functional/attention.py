"""``scaled_dot_product_attention`` (PyTorch's semantics) and the attention core of MultiheadAttention."""

from __future__ import annotations

import math

from ... import backend as B
from ...autograd.functions import astype, matmul, transpose, where
from ...autograd.tensor import Tensor, _raw
from .activation import Softmax
from .dropout import dropout

__all__ = ["scaled_dot_product_attention"]


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
