"""Linear, Identity and Flatten."""

from __future__ import annotations

from .. import backend as B
from ..autograd.functions import flatten, reshape
from ..autograd.names import axis_names
from . import init
from .functional.linear import bilinear, linear
from .module import Module, Parameter

__all__ = ["Linear", "Bilinear", "Identity", "Flatten", "Unflatten", "new_parameter"]


def new_parameter(shape, dtype=None, backend=None) -> Parameter:
    """An uninitialized (zero) parameter of ``shape`` on ``backend`` (default: current), float32 by default."""
    b = B.current_backend() if backend is None else (backend if isinstance(backend, B.Backend) else B.get_backend(backend))
    dt = B.resolve_dtype(b.xp, dtype or "float32")
    return Parameter(b.xp.zeros(tuple(shape), dtype=dt, device=b.device))


class Linear(Module):
    """y = x W^T + b; ``weight`` (out_features, in_features), PyTorch's initialization."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None, backend=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = new_parameter((out_features, in_features), dtype, backend)
        self.bias = new_parameter((out_features,), dtype, backend) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        if self.bias is not None:
            init.fan_in_uniform_(self.bias, self.in_features)

    def forward(self, input):
        if input.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}): input has {input.shape[-1]} "
                             f"features in its last axis (shape {tuple(input.shape)}), expected {self.in_features}")
        return linear(input, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Bilinear(Module):
    """y = x1^T W x2 + b; ``weight`` (out_features, in1_features, in2_features), ``bias``
    (out_features,), both U(-1/sqrt(in1), 1/sqrt(in1)) as PyTorch."""

    def __init__(self, in1_features: int, in2_features: int, out_features: int, bias: bool = True,
                 dtype=None, backend=None):
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        self.weight = new_parameter((out_features, in1_features, in2_features), dtype, backend)
        if bias:
            self.bias = new_parameter((out_features,), dtype, backend)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / self.in1_features ** 0.5
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Flatten(Module):
    """Merge axes ``start_dim..end_dim`` (default: all but the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split axis ``dim`` into ``unflattened_size`` (e.g. (N, 64) -> (N, 1, 8, 8))."""

    @axis_names
    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input):
        shape = tuple(input.shape)
        d = self.dim % len(shape)
        return reshape(input, shape[:d] + self.unflattened_size + shape[d + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
