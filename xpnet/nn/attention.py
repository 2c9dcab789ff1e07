"""MultiheadAttention, PyTorch's arguments, parameter layout and masks."""

from __future__ import annotations

from ..autograd.functions import permute
from . import init
from .functional.attention import multi_head_attention_forward
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
        The computation is :func:`xpnet.nn.functional.multi_head_attention_forward`.
        """
        batched = query.ndim == 3
        self._check(query, key, value, batched)
        if batched and self.batch_first:  # to (seq, batch, features); q is k is v stays so
            if query is key and key is value:
                query = key = value = permute(query, (1, 0, 2))
            else:
                query, key, value = (permute(t, (1, 0, 2)) for t in (query, key, value))
        out, weights = multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights, is_causal=is_causal, name=self._name())
        if batched and self.batch_first:
            out = permute(out, (1, 0, 2))
        return out, weights
