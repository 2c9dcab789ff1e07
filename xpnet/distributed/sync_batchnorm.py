"""SyncBatchNorm: batch normalization with the statistics of the whole global batch."""

from __future__ import annotations

import math

from .. import backend as B
from ..autograd.tensor import Tensor, no_grad
from ..nn.functional.normalization import Normalize
from ..nn.normalization import _BatchNorm

__all__ = ["SyncBatchNorm"]


class _SyncNormalize(Normalize):
    """:class:`Normalize` over (N, *) per channel, with the sums taken over every rank.

    Forward: two all-reduces of per-channel sums (the mean, then the centred squares, so
    the variance has no cancellation).  Backward: one all-reduce of the per-channel sums of
    ``g*w`` and ``g*w*xhat``; the input gradient is that of the sum of every rank's loss,
    and the weight and bias gradients are this rank's sums (DDP averages them).
    """

    def __init__(self, axes, eps, pshape, engine):
        super().__init__(axes, eps, pshape)
        self.engine = engine

    def moments(self, xp, x):
        self.count = math.prod(x.shape) // x.shape[1] * self.engine.world_size
        m = self.engine.all_reduce(xp.sum(x, axis=self.axes, keepdims=True), "sum") / self.count
        d = x - m
        return m, self.engine.all_reduce(xp.sum(d * d, axis=self.axes, keepdims=True), "sum") / self.count

    def backward(self, g, y, x, w=None, b=None):
        if isinstance(g, Tensor):
            raise NotImplementedError("SyncBatchNorm: double backward (create_graph=True) is not supported")
        xp = B.namespace_of(g)
        axes, xhat, invstd = self.axes, self.xhat, self.invstd
        gh = g if w is None else g * xp.reshape(w, self.pshape)
        sums = xp.concat([xp.sum(gh, axis=axes, keepdims=True), xp.sum(gh * xhat, axis=axes, keepdims=True)],
                         axis=1)
        sums = self.engine.all_reduce(sums, "sum") / self.count
        C = g.shape[1]
        mean_gh, mean_ghx = sums[:, :C, ...], sums[:, C:, ...]
        gx = invstd * (gh - mean_gh - xhat * mean_ghx) if self.needs[0] else None
        gw = xp.reshape(xp.sum(g * xhat, axis=axes), w.shape) if w is not None and self.needs[1] else None
        gb = xp.reshape(xp.sum(g, axis=axes), b.shape) if b is not None and self.needs[2] else None
        return gx, gw, gb


class SyncBatchNorm(_BatchNorm):
    """Batch normalization whose training-mode statistics are those of the global batch
    (every rank's samples), as ``torch.nn.SyncBatchNorm``: input (N, C, *), the same
    parameters, buffers and state-dict keys as BatchNorm1d/2d.  In eval mode, and in a single
    process, it is plain batch normalization.  Every rank must call it in the same order
    (each training forward and backward makes collective calls).  Build it directly or
    swap a model's BatchNorm layers with :meth:`convert_sync_batchnorm`.
    """

    ranks = (2, 3, 4, 5)
    layout = "(N, C, *)"

    def forward(self, x):
        from . import engine
        eng = engine()
        if not self.training or eng.world_size == 1:
            return super().forward(x)
        shape = tuple(x.shape)
        if len(shape) not in self.ranks or shape[1] != self.num_features:
            return super().forward(x)  # raises the BatchNorm error naming the expected shape
        C = shape[1]
        pshape = (1, C) + (1,) * (len(shape) - 2)
        axes = (0,) + tuple(range(2, len(shape)))
        fn = _SyncNormalize(axes, self.eps, pshape, eng)
        if self.weight is None:
            y = fn(x)
        else:
            y = fn(x, self.weight, self.bias)
        if self.track_running_stats:
            with no_grad():
                nbt = self.num_batches_tracked
                nbt.data = nbt.data + 1
                m = self.momentum
                if m is None:
                    m = 1.0 / nbt.xp.astype(nbt.data, self.running_mean.dtype)
                xp = B.namespace_of(fn.mean)
                var = xp.reshape(fn.var, (C,)) * (fn.count / max(fn.count - 1, 1))
                self.running_mean.data = (1 - m) * self.running_mean.data + m * xp.reshape(fn.mean, (C,))
                self.running_var.data = (1 - m) * self.running_var.data + m * var
        return y

    @classmethod
    def convert_sync_batchnorm(cls, module):
        """``module`` with every BatchNorm1d/2d replaced by a SyncBatchNorm holding the same
        parameters and buffers (the same Tensor objects, so an optimizer built before still
        updates them).  A BatchNorm ``module`` itself is returned converted."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            sync = cls.__new__(cls)
            _BatchNorm.__init__(sync, module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats, backend=_backend_of(module))
            for name in ("weight", "bias"):
                if getattr(module, name) is not None:
                    setattr(sync, name, getattr(module, name))
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                sync.register_buffer(name, getattr(module, name))
            sync.train(module.training)
            return sync
        for name, child in list(module.named_children()):
            converted = cls.convert_sync_batchnorm(child)
            if converted is not child:
                setattr(module, name, converted)
        return module


def _backend_of(module):
    for t in list(module.parameters()) + [b for b in module.buffers() if b is not None]:
        return B.backend_of(t.data)
    return None
