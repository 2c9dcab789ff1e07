"""``embedding``: rows of a weight matrix picked by integer indices; ``embedding_bag``: their
sums, means or maxima over bags."""

from __future__ import annotations

import math

from ... import backend as B
from ...autograd.functions import IndexAdd, reshape
from ...autograd.tensor import Function, Tensor, _raw

__all__ = ["embedding", "embedding_bag"]


class Embedding(Function):
    """``weight[idx]`` for an index array of any shape; the backward scatter-adds the
    gradient rows (repeated indices add up), skipping ``padding_idx``."""

    def __init__(self, idx, num_embeddings, padding_idx, scale_grad_by_freq=False):
        self.idx, self.n, self.padding_idx = idx, num_embeddings, padding_idx
        self.scale_grad_by_freq = scale_grad_by_freq

    def forward(self, xp, w):
        flat = xp.reshape(self.idx, (-1,))
        return xp.reshape(xp.take(w, flat, axis=0), (*self.idx.shape, w.shape[1]))

    def backward(self, g, y, w):
        xp = self.xp
        flat = xp.reshape(self.idx, (-1,))
        g2 = reshape(g, (flat.shape[0], _raw(w).shape[1]))
        if self.padding_idx is not None:
            g2 = g2 * xp.astype(flat != self.padding_idx, _raw(g).dtype)[:, None]
        if self.scale_grad_by_freq:  # each row's gradient divided by its count in the batch
            counts = _counts(xp, flat, self.n, _raw(g).dtype)
            g2 = g2 / xp.take(counts, flat, axis=0)[:, None]
        return IndexAdd(flat, 0, self.n)(g2),


def _counts(xp, flat, n, dtype):
    """How often each of the ``n`` rows occurs in the flat index array ``flat``."""
    return B.scatter_add(xp.ones(flat.shape, dtype=dtype, device=B.array_api_compat.device(flat)), flat, n)


def _renorm(xp, w, idx, max_norm, norm_type):
    """``w`` with the rows that ``idx`` picks rescaled to a ``norm_type``-norm of at most
    ``max_norm`` (PyTorch's ``embedding_renorm_``: scale ``max_norm / (norm + 1e-7)``)."""
    a = xp.abs(w)
    if norm_type == math.inf:
        norms = xp.max(a, axis=1)
    else:
        norms = xp.sum(a ** norm_type, axis=1) ** (1.0 / norm_type)
    used = _counts(xp, xp.reshape(idx, (-1,)), w.shape[0], w.dtype) > 0
    scale = xp.where(used & (norms > max_norm), max_norm / (norms + 1e-7), xp.ones_like(norms))
    return w * scale[:, None]


def _indices(input, weight_array, who: str):
    """``input`` (tensor, array or list of ints) as an integer array on the weight's backend."""
    idx = _raw(input)
    b = B.backend_of(weight_array)
    if not hasattr(idx, "shape"):
        idx = B.as_array(idx, "int64", b)
    elif B.namespace_of(idx) is not b.xp:
        raise TypeError(f"{who}: the indices live on backend {B.backend_of(idx).name} but the weight on "
                        f"{b.name}: move them to one with tensor.to(...) first")
    elif B.device_name(B.array_api_compat.device(idx)) != B.device_name(b.device):
        raise TypeError(f"{who}: the indices live on device {B.device_name(B.array_api_compat.device(idx))} "
                        f"but the weight on {B.device_name(b.device)}: move them to one with tensor.to(...) first")
    if not b.xp.isdtype(idx.dtype, "integral"):
        raise TypeError(f"{who}: indices must be integers (int32 or int64), got {B.dtype_name(idx.dtype)}")
    return idx


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False):
    """Rows of ``weight`` (num_embeddings, embedding_dim) at the integer indices ``input``
    (any shape): the result has shape ``(*input.shape, embedding_dim)``.

    The row ``padding_idx`` (when given) receives no gradient.  With ``max_norm``, the rows
    that ``input`` picks are first rescaled to a ``norm_type``-norm of at most ``max_norm``,
    in ``weight`` itself when it is a tensor (as PyTorch, outside the graph).
    ``scale_grad_by_freq`` divides each row's gradient by its count in ``input``.
    Gradients are dense: ``sparse=True`` raises ValueError.  An index outside
    ``[0, num_embeddings)`` raises IndexError (one device read of its min and max).
    """
    if sparse:
        raise ValueError("embedding: sparse=True is not supported: xpnet's gradients are dense arrays "
                         "(use sparse=False)")
    w = _raw(weight)
    if len(w.shape) != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {tuple(w.shape)}")
    n = w.shape[0]
    idx = _indices(input, w, "embedding")
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise ValueError(f"embedding: padding_idx {padding_idx} is out of range: "
                             f"expected {-n} <= padding_idx < {n}")
        padding_idx %= n
    if math.prod(idx.shape) > 0:
        idx = B.check_indices(idx, n, f"embedding (num_embeddings={n})")
    if max_norm is not None:
        w = _renorm(B.namespace_of(w), w, idx, float(max_norm), float(norm_type))
        if isinstance(weight, Tensor):
            weight.data = w  # in place, not recorded (torch.embedding_renorm_)
        else:
            weight = w
    return Embedding(idx, n, padding_idx, scale_grad_by_freq)(weight)



def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type: float = 2, scale_grad_by_freq: bool = False,
                  mode: str = "mean", sparse: bool = False, per_sample_weights=None,
                  include_last_offset: bool = False, padding_idx=None):
    """Sums, means or maxima of bags of embeddings, without the (bags, length, dim) tensor.

    ``input`` 2-D (B, N): each row is a bag (``offsets`` must be None).  ``input`` 1-D with
    ``offsets`` (B,) (or (B + 1,) with ``include_last_offset``): bag b is
    ``input[offsets[b]:offsets[b + 1]]``.  ``mode``: 'sum', 'mean' or 'max'.
    ``per_sample_weights`` (input's shape, 'sum' mode only) scale each embedding.  Entries equal
    to ``padding_idx`` are left out of their bag (and of its count).  An empty bag gives zeros.
    Output: (B, embedding_dim).  Bags are formed on the device with a (B, T) membership mask,
    so nothing is read back to the host.  ``max_norm``, ``norm_type`` and ``scale_grad_by_freq`` act
    as in :func:`embedding` over all of ``input``: the rows looked up are renormalized in ``weight``
    itself (outside the graph), and each row's gradient is divided by its count in ``input``
    (the documented rule, PyTorch's on CUDA; its CPU kernel up to 2.13 divides some rows by
    another row's count, pytorch/pytorch#190063).  ``scale_grad_by_freq`` with mode 'max' raises
    ValueError, as PyTorch.
    """
    from ...autograd.functions import _matmul, max as amax, reshape, where
    who = "embedding_bag"
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"{who}: mode={mode!r} is not supported: expected 'sum', 'mean' or 'max'")
    if scale_grad_by_freq and mode == "max":
        raise ValueError(f"{who}: max mode does not support scaling the gradient by the frequency "
                         "(scale_grad_by_freq=True needs mode 'sum' or 'mean')")
    if per_sample_weights is not None and mode != "sum":
        raise ValueError(f"{who}: per_sample_weights is only supported for mode='sum', got mode={mode!r}")
    w = _raw(weight)
    idx = _indices(input, w, who)
    xp, dev = B.namespace_of(w), B.array_api_compat.device(w)
    if len(idx.shape) == 2:
        if offsets is not None:
            raise ValueError(f"{who}: offsets must be None for a 2-D input (each row is a bag), got offsets")
        nbags, length = idx.shape
        flat = xp.reshape(idx, (-1,))
        t = xp.arange(nbags * length, dtype=xp.int64, device=dev)
        starts = xp.arange(nbags, dtype=xp.int64, device=dev) * length
        ends = starts + length
    elif len(idx.shape) == 1:
        if offsets is None:
            raise ValueError(f"{who}: a 1-D input needs offsets (the start of each bag)")
        off = xp.astype(_indices(offsets, w, who), xp.int64)
        flat, total = idx, idx.shape[0]
        t = xp.arange(total, dtype=xp.int64, device=dev)
        if include_last_offset:
            starts, ends = off[:-1], off[1:]
        else:
            starts = off
            ends = xp.concat([off[1:], xp.asarray([total], dtype=xp.int64, device=dev)])
        nbags = starts.shape[0]
    else:
        raise ValueError(f"{who}: input must be 1-D (with offsets) or 2-D (B, N), got shape {tuple(idx.shape)}")
    member = (t[None, :] >= starts[:, None]) & (t[None, :] < ends[:, None])  # (B, T)
    if padding_idx is not None:
        padding_idx %= w.shape[0]
        member = member & (flat != padding_idx)[None, :]
    emb = embedding(flat, weight, padding_idx, max_norm, norm_type, scale_grad_by_freq)  # (T, D)
    if per_sample_weights is not None:
        emb = emb * reshape(per_sample_weights, (-1, 1))
    m = xp.astype(member, w.dtype)
    if mode == "max":
        neg = xp.asarray(-xp.inf, dtype=w.dtype, device=dev)
        picked = where(member[:, :, None], reshape(emb, (1,) + tuple(emb.shape)), neg)
        best = amax(picked, 1)
        return where(xp.any(member, axis=1)[:, None], best, 0.0)
    out = _matmul(m, emb)  # (B, D): in the weight's dtype under autocast too (as PyTorch)
    if mode == "mean":
        count = xp.sum(m, axis=1, keepdims=True)
        out = out / xp.where(count > 0, count, xp.ones_like(count))
    return out
