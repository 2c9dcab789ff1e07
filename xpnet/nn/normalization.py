"""Normalization layers: BatchNorm1d/2d/3d, InstanceNorm1d/2d/3d, LayerNorm, GroupNorm, RMSNorm,
LocalResponseNorm (PyTorch's names and state)."""

from __future__ import annotations

from .. import backend as B
from ..autograd import Tensor, no_grad
from . import init
from .functional.normalization import (batch_norm, group_norm, instance_norm, layer_norm, local_response_norm,
                                       rms_norm)
from .linear import new_parameter
from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
           "LayerNorm", "GroupNorm", "RMSNorm", "LocalResponseNorm"]


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


class BatchNorm3d(_BatchNorm):
    """Batch normalization over (N, C, D, H, W), per channel C."""

    ranks = (5,)
    layout = "(N, C, D, H, W)"


class _InstanceNorm(_BatchNorm):
    """Per-sample, per-channel normalization over the spatial axes; PyTorch's defaults
    (affine=False, track_running_stats=False) and state names.  An input without the
    batch axis is normalized as a batch of one."""

    nd = 1

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = False,
                 track_running_stats: bool = False, dtype=None, backend=None, *, bias: bool = True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype, backend, bias=bias)

    def forward(self, input):
        x = input
        shape = tuple(x.shape)
        if len(shape) not in (self.nd + 1, self.nd + 2):
            raise ValueError(f"{self._name()}: input must have {self.nd + 1} or {self.nd + 2} dimensions: "
                             f"{self.layout}, got shape {shape}")
        unbatched = len(shape) == self.nd + 1
        if unbatched:
            x = x.unsqueeze(0)
        if x.shape[1] != self.num_features and (self.affine or self.track_running_stats):
            raise ValueError(f"{self._name()}: input has {x.shape[1]} channels (shape {shape}), "
                             f"expected {self.num_features}")
        use_input_stats = self.training or not self.track_running_stats
        y = instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias, use_input_stats,
                          self.momentum if self.momentum is not None else 0.1, self.eps)
        return y.squeeze(0) if unbatched else y


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization over (N, C, L) or (C, L)."""

    nd, layout = 1, "(N, C, L) or (C, L)"


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization over (N, C, H, W) or (C, H, W)."""

    nd, layout = 2, "(N, C, H, W) or (C, H, W)"


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization over (N, C, D, H, W) or (C, D, H, W)."""

    nd, layout = 3, "(N, C, D, H, W) or (C, D, H, W)"


class RMSNorm(Module):
    """x / sqrt(mean(x^2) + eps) * weight over the trailing ``normalized_shape`` axes;
    ``eps=None``: the dtype's machine epsilon.  ``weight`` starts at ones."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine: bool = True, dtype=None, backend=None):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = new_parameter(self.normalized_shape, dtype, backend)
            init.ones_(self.weight)
        else:
            self.register_parameter("weight", None)

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)

    def forward(self, x):  # PyTorch's RMSNorm names it x
        return rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class LocalResponseNorm(Module):
    """Normalization across ``size`` neighbouring channels (AlexNet's local response normalization)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input):
        return local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


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
