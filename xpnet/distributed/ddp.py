"""DistributedDataParallel: one model replica per process, gradients averaged after backward."""

from __future__ import annotations

import contextlib
import math
import weakref

from .. import backend as B
from ..autograd.engine import register_backward_end_hook
from ..autograd.tensor import Tensor, no_grad
from ..nn.module import Module

__all__ = ["DistributedDataParallel"]


def _buckets(tensors, cap_bytes):
    """``tensors`` grouped by (library, device, dtype), each group cut into runs of at most
    ``cap_bytes`` (a tensor larger than that is a bucket of its own).  Order is kept."""
    groups = {}
    for t in tensors:
        d = t.data
        key = (type(d), str(B.backend_of(d).device), str(d.dtype))
        groups.setdefault(key, []).append(t)
    out = []
    for members in groups.values():
        bucket, size = [], 0
        for t in members:
            nbytes = math.prod(t.shape) * t.data.dtype.itemsize if hasattr(t.data.dtype, "itemsize") \
                else math.prod(t.shape) * 8
            if bucket and size + nbytes > cap_bytes:
                out.append(bucket)
                bucket, size = [], 0
            bucket.append(t)
            size += nbytes
        if bucket:
            out.append(bucket)
    return out


def _flatten(arrays):
    xp = B.namespace_of(arrays[0])
    return xp, xp.concat([xp.reshape(a, (-1,)) for a in arrays]) if len(arrays) > 1 else xp.reshape(arrays[0], (-1,))


def _unflatten(xp, flat, shapes):
    out, start = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(xp.reshape(flat[start:start + n], shape))
        start += n
    return out


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training, as ``torch.nn.parallel.DistributedDataParallel``.

    - At wrap time, the parameters and buffers of rank 0 are broadcast to every rank.
    - After each ``backward()`` that reached one of the module's parameters (the autograd
      engine's backward-end hook), every parameter's gradient is replaced by its mean over
      the ranks.  Gradients travel in flat buckets of at most ``bucket_cap_mb`` MiB (one
      all-reduce per bucket, per library/device/dtype), not one call per parameter.
      A parameter that got no gradient on a rank counts as zeros there, so after the
      average every trainable parameter has a gradient.
    - Inside ``with ddp.no_sync():`` backward passes only accumulate locally (gradient
      accumulation); the first backward outside it averages the accumulated gradients.
    - ``broadcast_buffers`` (default True, as PyTorch): each training-mode forward first
      copies rank 0's buffers (BatchNorm running statistics) to every rank.

    ``state_dict()`` keys start with ``module.`` as in PyTorch; save ``ddp.module`` for
    files that load into the bare model.  Every rank must run the same number of backward
    passes (the data loader pads the shards to equal length for that).
    """

    def __init__(self, module, bucket_cap_mb: float = 25.0, broadcast_buffers: bool = True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an xpnet Module, got {type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        from . import engine
        self.module = module
        object.__setattr__(self, "_engine", engine())
        object.__setattr__(self, "bucket_cap_mb", float(bucket_cap_mb))
        object.__setattr__(self, "broadcast_buffers", bool(broadcast_buffers))
        object.__setattr__(self, "_sync", True)
        self._broadcast([p for p in module.parameters()] + [b for b in module.buffers() if b is not None])
        ref = weakref.WeakMethod(self._after_backward)
        object.__setattr__(self, "_hook", register_backward_end_hook(lambda leaves: ref() and ref()(leaves)))

    @property
    def world_size(self) -> int:
        return self._engine.world_size

    def forward(self, *args, **kwargs):
        if self.training and self.broadcast_buffers and self.world_size > 1:
            self._broadcast([b for b in self.module.buffers() if b is not None])
        return self.module(*args, **kwargs)

    def _broadcast(self, tensors):
        if self.world_size == 1 or not tensors:
            return
        with no_grad():
            for bucket in _buckets(tensors, self.bucket_cap_mb * 2**20):
                xp, flat = _flatten([t.data for t in bucket])
                flat = self._engine.broadcast(flat, 0)
                if self._engine.rank != 0:
                    for t, a in zip(bucket, _unflatten(xp, flat, [t.shape for t in bucket])):
                        t.data = a

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside only accumulate gradients locally (no communication)."""
        previous = self._sync
        object.__setattr__(self, "_sync", False)
        try:
            yield
        finally:
            object.__setattr__(self, "_sync", previous)

    def _after_backward(self, leaves):
        if not self._sync or self.world_size == 1:
            return
        params = [p for p in self.module.parameters() if p.requires_grad]
        ids = {id(t) for t in leaves}
        if any(id(p) in ids for p in params):
            self.reduce_gradients(params)

    def reduce_gradients(self, params=None):
        """Average the gradients of ``params`` (default: the module's trainable parameters)
        over the ranks now; missing gradients count as zeros.  Called after backward."""
        params = [p for p in self.module.parameters() if p.requires_grad] if params is None else params
        world = self.world_size
        with no_grad():
            for bucket in _buckets(params, self.bucket_cap_mb * 2**20):
                xp = bucket[0].xp
                grads = [p.grad.data if p.grad is not None else
                         xp.zeros(p.data.shape, dtype=p.data.dtype, device=p.device) for p in bucket]
                xp, flat = _flatten(grads)
                flat = self._engine.all_reduce(flat, "sum") / world
                for p, g in zip(bucket, _unflatten(xp, flat, [p.shape for p in bucket])):
                    p.grad = Tensor(g)

    def extra_repr(self):
        return f"world_size={self.world_size}, bucket_cap_mb={self.bucket_cap_mb}"
