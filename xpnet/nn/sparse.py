"""The Embedding and EmbeddingBag modules."""

from __future__ import annotations

from .. import backend as B
from ..autograd import Tensor
from . import init
from .functional.embedding import embedding, embedding_bag
from .linear import new_parameter
from .module import Module, Parameter

__all__ = ["Embedding", "EmbeddingBag"]


class Embedding(Module):
    """A lookup table: ``weight`` (num_embeddings, embedding_dim), initialized N(0, 1) as PyTorch.

    The row ``padding_idx`` (when given) starts at zero and receives no gradient;
    ``max_norm``, ``norm_type`` and ``scale_grad_by_freq`` act as in
    :func:`xpnet.nn.functional.embedding`.  ``_freeze=True`` makes the weight untrainable.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, max_norm=None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False, _weight=None,
                 _freeze: bool = False, dtype=None, backend=None):
        super().__init__()
        if sparse:
            raise ValueError("Embedding: sparse=True is not supported: xpnet's gradients are dense arrays")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding({num_embeddings}, {embedding_dim}): padding_idx {padding_idx} is "
                                 f"out of range: expected {-num_embeddings} <= padding_idx < {num_embeddings}")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.max_norm, self.norm_type, self.scale_grad_by_freq = max_norm, norm_type, scale_grad_by_freq
        self.sparse = False
        if _weight is None:
            self.weight = new_parameter((num_embeddings, embedding_dim), dtype, backend)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding({num_embeddings}, {embedding_dim}): _weight has shape "
                                 f"{tuple(_weight.shape)}, expected {(num_embeddings, embedding_dim)}")
            self.weight = _weight if isinstance(_weight, Parameter) else Parameter(_weight)
        if _freeze:
            self.weight.requires_grad = False

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            xp, w = self.weight.xp, self.weight.data
            rows = xp.arange(self.num_embeddings, device=self.weight.device)
            self.weight.data = xp.where((rows != self.padding_idx)[:, None], w, xp.zeros_like(w))

    def forward(self, input):
        return embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                         self.scale_grad_by_freq)

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None, max_norm=None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False):
        """An Embedding holding ``embeddings`` (a 2-D tensor or array of any library),
        frozen (no gradient) unless ``freeze=False``."""
        data = embeddings.data if isinstance(embeddings, Tensor) else B.as_array(embeddings)
        if len(data.shape) != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape {tuple(data.shape)}")
        return cls(data.shape[0], data.shape[1], padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=Parameter(data, requires_grad=not freeze))

    def extra_repr(self):
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        pad += f", max_norm={self.max_norm}" if self.max_norm is not None else ""
        pad += f", norm_type={self.norm_type}" if self.max_norm is not None and self.norm_type != 2 else ""
        pad += ", scale_grad_by_freq=True" if self.scale_grad_by_freq else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class EmbeddingBag(Module):
    """Sums, means or maxima of bags of embeddings (see :func:`xpnet.nn.functional.embedding_bag`);
    ``weight`` (num_embeddings, embedding_dim), initialized N(0, 1), the ``padding_idx`` row zero.
    ``max_norm``, ``norm_type`` and ``scale_grad_by_freq`` as in :class:`Embedding`."""

    def __init__(self, num_embeddings: int, embedding_dim: int, max_norm=None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False, _weight=None,
                 include_last_offset: bool = False, padding_idx=None, dtype=None, backend=None):
        super().__init__()
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"EmbeddingBag: mode={mode!r} is not supported: expected 'sum', 'mean' or 'max'")
        if scale_grad_by_freq and mode == "max":
            raise ValueError("EmbeddingBag: max mode does not support scaling the gradient by the frequency "
                             "(scale_grad_by_freq=True needs mode 'sum' or 'mean')")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"EmbeddingBag: padding_idx {padding_idx} is out of range for "
                                 f"{num_embeddings} embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.mode = num_embeddings, embedding_dim, mode
        self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse = max_norm, norm_type, scale_grad_by_freq, sparse
        self.include_last_offset, self.padding_idx = include_last_offset, padding_idx
        if _weight is None:
            self.weight = new_parameter((num_embeddings, embedding_dim), dtype, backend)
            self.reset_parameters()
        else:
            self.weight = _weight if isinstance(_weight, Parameter) else Parameter(_raw_data(_weight))

    reset_parameters = Embedding.reset_parameters

    def forward(self, input, offsets=None, per_sample_weights=None):
        return embedding_bag(input, self.weight, offsets, self.max_norm, self.norm_type, self.scale_grad_by_freq,
                             mode=self.mode, per_sample_weights=per_sample_weights,
                             include_last_offset=self.include_last_offset, padding_idx=self.padding_idx)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"  # PyTorch's order
        s += f", max_norm={self.max_norm}" if self.max_norm is not None else ""
        s += f", norm_type={self.norm_type}" if self.norm_type != 2 else ""
        s += ", scale_grad_by_freq=True" if self.scale_grad_by_freq else ""
        s += f", mode={self.mode!r}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


def _raw_data(w):
    return w.data if isinstance(w, Tensor) else w
