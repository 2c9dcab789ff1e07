"""Normalization layers: BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm (PyTorch's names and state)."""

from __future__ import annotations

from .. import backend as B
from ..autograd import Tensor, no_grad
from . import init
from .functional.normalization import batch_norm, group_norm, layer_norm
from .linear import new_parameter
from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm"]


def _backend(backend):
    return B.current_backend() if backend is None else (
        backend if isinstance(backend, B.Backend) else B.get_backend(backend))


class _BatchNorm(Module):
    ranks = ()
    layout = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=None, backend=None, *, bias: bool = True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:  # bias=False (PyTorch 2.x): a learned scale without a shift
            self.weight = new_parameter((num_features,), dtype, backend)
            self.register_parameter("bias", new_parameter((num_features,), dtype, backend) if bias else None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            b = _backend(backend)
            dt = B.resolve_dtype(b.xp, dtype or "float32")
            self.register_buffer("running_mean", Tensor(b.xp.zeros((num_features,), dtype=dt, device=b.device)))
            self.register_buffer("running_var", Tensor(b.xp.ones((num_features,), dtype=dt, device=b.device)))
            self.register_buffer("num_batches_tracked",
                                 Tensor(b.xp.zeros((), dtype=b.xp.int64, device=b.device)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.data = self.num_batches_tracked.xp.zeros_like(self.num_batches_tracked.data)

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _name(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def forward(self, input):
        shape = tuple(input.shape)
        if len(shape) not in self.ranks:
            raise ValueError(f"{self._name()}: input must have {' or '.join(map(str, self.ranks))} dimensions: "
                             f"{self.layout}, got shape {shape}")
        if shape[1] != self.num_features:
            raise ValueError(f"{self._name()}: input has {shape[1]} channels (shape {shape}), "
                             f"expected {self.num_features}")
        momentum = self.momentum
        if self.training and self.track_running_stats:
            with no_grad():
                nbt = self.num_batches_tracked
                nbt.data = nbt.data + 1
                if momentum is None:  # cumulative moving average: 1 / num_batches_tracked, on the device
                    xp = nbt.xp
                    momentum = 1.0 / xp.astype(nbt.data, self.running_mean.dtype)
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return batch_norm(input, self.running_mean if track else None, self.running_var if track else None,
                          self.weight, self.bias, use_batch, momentum if momentum is not None else 0.0, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L), per channel C."""

    ranks = (2, 3)
    layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W), per channel C."""

    ranks = (4,)
    layout = "(N, C, H, W)"


class LayerNorm(Module):
    """Normalization over the trailing ``normalized_shape`` axes of each sample."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype=None, backend=None):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = new_parameter(self.normalized_shape, dtype, backend)
            if bias:
                self.bias = new_parameter(self.normalized_shape, dtype, backend)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        ns, shape = self.normalized_shape, tuple(input.shape)
        if len(shape) < len(ns) or shape[len(shape) - len(ns):] != ns:
            raise ValueError(f"LayerNorm({ns}): input of shape {shape} must end with the normalized shape {ns}")
        return layer_norm(input, ns, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Normalization of (N, C, *) over groups of C/num_groups channels (and all spatial axes)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 dtype=None, backend=None, *, bias: bool = True):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels={num_channels} must be divisible by num_groups={num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        if affine:
            self.weight = new_parameter((num_channels,), dtype, backend)
            self.register_parameter("bias", new_parameter((num_channels,), dtype, backend) if bias else None)
            init.ones_(self.weight)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input):
        shape = tuple(input.shape)
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}): input of shape {shape} must be "
                             f"(N, {self.num_channels}, ...)")
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
