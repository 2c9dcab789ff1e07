"""MultiheadAttention, PyTorch's arguments, parameter layout and masks."""

from __future__ import annotations

from .. import backend as B
from ..autograd.functions import broadcast_to, concat, mean, pad, permute, reshape, squeeze, unsqueeze
from ..autograd.tensor import _raw
from . import init
from .functional.linear import linear
from .functional.attention import _is_bool, _like, attend
from .linear import Linear, new_parameter
from .module import Module

__all__ = ["MultiheadAttention"]


class MultiheadAttention(Module):
    """Attention over ``num_heads`` heads of ``embed_dim // num_heads`` features each.

    Parameters as in PyTorch: ``in_proj_weight`` (3E, E) and ``in_proj_bias``
    (3E,) when ``kdim == vdim == embed_dim``, else ``q_proj_weight`` (E, E),
    ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim); ``out_proj`` a
    Linear(E, E); ``bias_k``/``bias_v`` (1, 1, E) with ``add_bias_kv``.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim=None, vdim=None,
                 batch_first: bool = False, dtype=None, backend=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be positive, "
                             f"got {embed_dim} and {num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.head_dim = embed_dim // num_heads
        self.batch_first, self.add_zero_attn = batch_first, add_zero_attn
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        E = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = new_parameter((3 * E, E), dtype, backend)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = new_parameter((E, E), dtype, backend)
            self.k_proj_weight = new_parameter((E, self.kdim), dtype, backend)
            self.v_proj_weight = new_parameter((E, self.vdim), dtype, backend)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = new_parameter((3 * E,), dtype, backend)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, dtype=dtype, backend=backend)
        if add_bias_kv:
            self.bias_k = new_parameter((1, 1, E), dtype, backend)
            self.bias_v = new_parameter((1, 1, E), dtype, backend)
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self.reset_parameters()

    def reset_parameters(self):
        """PyTorch's: Xavier-uniform projections, zero biases, Xavier-normal bias_k/bias_v."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"

    def _name(self):
        return f"MultiheadAttention({self.embed_dim}, {self.num_heads})"

    def _project(self, query, key, value):
        E, w, b = self.embed_dim, self.in_proj_weight, self.in_proj_bias
        bq, bk, bv = (None,) * 3 if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if w is None:
            return (linear(query, self.q_proj_weight, bq), linear(key, self.k_proj_weight, bk),
                    linear(value, self.v_proj_weight, bv))
        if query is key and key is value:  # self-attention: one matmul for q, k and v
            qkv = linear(query, w, b)
            return qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:]
        return (linear(query, w[:E, :], bq), linear(key, w[E:2 * E, :], bk),
                linear(value, w[2 * E:, :], bv))

    def _check(self, query, key, value, batched):
        name, dims = self._name(), 3 if batched else 2
        for what, t, n in (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim)):
            if t.ndim != dims:
                raise ValueError(f"{name}: {what} has shape {tuple(t.shape)}, expected {dims}-D like query "
                                 f"(shape {tuple(query.shape)})")
            if t.shape[-1] != n:
                raise ValueError(f"{name}: {what} has {t.shape[-1]} features (shape {tuple(t.shape)}), expected {n}")
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"{name}: key (shape {tuple(key.shape)}) and value (shape {tuple(value.shape)}) "
                             "must have the same sequence length and batch size")
        if batched:
            bq, bk = (query.shape[0], key.shape[0]) if self.batch_first else (query.shape[1], key.shape[1])
            if bq != bk:
                raise ValueError(f"{name}: query has batch size {bq} but key and value have {bk}")

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True, attn_mask=None,
                average_attn_weights: bool = True, is_causal: bool = False):
        """Returns ``(attn_output, attn_weights)``.

        Shapes (time-major; batch first with ``batch_first``): query (L, N, E),
        key (S, N, kdim), value (S, N, vdim) -> output (L, N, E) and weights
        (N, L, S) averaged over heads, or (N, num_heads, L, S), or None with
        ``need_weights=False``.  Unbatched 2-D inputs work too.
        ``key_padding_mask`` (N, S) and ``attn_mask`` (L, S) or
        (N * num_heads, L, S): boolean True = masked out, float = added to
        the scores.  ``is_causal`` without ``attn_mask`` masks out future keys.
        """
        batched = query.ndim == 3
        self._check(query, key, value, batched)
        H, hd, E = self.num_heads, self.head_dim, self.embed_dim
        if not batched or self.batch_first:  # to (seq, batch, features); q is k is v stays so
            move = (lambda t: unsqueeze(t, 1)) if not batched else (lambda t: permute(t, (1, 0, 2)))
            if query is key and key is value:
                query = key = value = move(query)
            else:
                query, key, value = move(query), move(key), move(value)
        L, N = query.shape[0], query.shape[1]
        q, k, v = self._project(query, key, value)  # (L, N, E), (S, N, E), (S, N, E)
        if self.bias_k is not None:
            k = concat([k, broadcast_to(self.bias_k, (1, N, E))], 0)
            v = concat([v, broadcast_to(self.bias_v, (1, N, E))], 0)
        S = k.shape[0]
        q, k, v = (permute(reshape(t, (t.shape[0], N, H, hd)), (1, 2, 0, 3)) for t in (q, k, v))
        if self.add_zero_attn:
            xp, r = B.namespace_of(_raw(k)), _raw(k)
            zeros = xp.zeros((N, H, 1, hd), dtype=r.dtype, device=B.array_api_compat.device(r))
            k, v = concat([k, zeros], 2), concat([v, zeros], 2)
        masked, additive = self._masks(query, key_padding_mask, attn_mask, is_causal, batched, N, L, S)
        p = self.dropout if self.training else 0.0
        out, weights = attend(q, k, v, masked, additive, p)  # (N, H, L, hd), (N, H, L, S')
        out = reshape(permute(out, (2, 0, 1, 3)), (L, N, E))
        out = linear(out, self.out_proj.weight, self.out_proj.bias)
        if not batched:
            out = squeeze(out, 1)
        elif self.batch_first:
            out = permute(out, (1, 0, 2))
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = mean(weights, axis=1)
        return out, (weights if batched else squeeze(weights, 0))

    def _masks(self, query, key_padding_mask, attn_mask, is_causal, batched, N, L, S):
        """The boolean (True = hidden) and additive masks, shaped to broadcast to (N, H, L, S')."""
        name, H = self._name(), self.num_heads
        S0 = S - (self.bias_k is not None)
        extra = S - S0 + self.add_zero_attn  # columns appended for bias_k and the zero key
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
                expected = f"({L}, {S0}) or ({N * H}, {L}, {S0})"
                raise ValueError(f"{name}: attn_mask has shape {shape}, expected {expected}")
        if key_padding_mask is not None:
            key_padding_mask = _like(key_padding_mask, query)
            shape, expected = tuple(key_padding_mask.shape), ((N, S0) if batched else (S0,))
            if shape != expected:
                raise ValueError(f"{name}: key_padding_mask has shape {shape}, "
                                 f"expected {expected} (batch, source length)")
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
