"""Lazy modules: LazyLinear and LazyConv1d/2d/3d, LazyConvTranspose1d/2d/3d, whose input size
(``in_features`` or ``in_channels``) is read from the first input.

As PyTorch's ``LazyModuleMixin``: until the first call the module has no parameters (its
``weight`` and ``bias`` are None); the first call builds them with the full module's own
initialization and turns the module into that class (``LazyLinear`` becomes ``Linear``).
Create the optimizer after a first (dry) call, so that it sees the parameters.
"""

from __future__ import annotations

from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .linear import Linear
from .module import Module

__all__ = ["LazyLinear", "LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d", "LazyConvTranspose2d",
           "LazyConvTranspose3d"]


class _Lazy(Module):
    cls_to_become = None
    nd = 0  # spatial axes of the input (0: the features are the last axis)

    def __init__(self, *args, **kwargs):
        super().__init__()
        self._lazy_args = (args, kwargs)
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)

    def has_uninitialized_params(self) -> bool:
        return True

    def _in_size(self, x) -> int:
        shape = tuple(x.shape)
        if self.nd == 0:
            if not shape:
                raise ValueError(f"{type(self).__name__}: the input is 0-dimensional: expected (..., in_features)")
            return shape[-1]
        if len(shape) not in (self.nd + 1, self.nd + 2):
            raise ValueError(f"{type(self).__name__}: expected a {self.nd + 1}-D or {self.nd + 2}-D input, "
                             f"got shape {shape}")
        return shape[0] if len(shape) == self.nd + 1 else shape[1]

    def forward(self, input, *rest, **kwargs):
        n = self._in_size(input)
        args, kw = self._lazy_args
        training, hooks = self.training, dict(self._forward_hooks)
        cls = self.cls_to_become
        object.__delattr__(self, "_lazy_args")
        self.__class__ = cls
        cls.__init__(self, n, *args, **kw)  # the full module's parameters and initialization
        self.training = training
        self._forward_hooks.update(hooks)
        return self.forward(input, *rest, **kwargs)

    def to(self, target=None, device=None, dtype=None):
        """Remembered for the parameters to come (as PyTorch's uninitialized parameters)."""
        if isinstance(target, str) and target in ("float16", "float32", "float64", "bfloat16"):
            target, dtype = None, target
        kw = self._lazy_args[1]
        if dtype is not None:
            kw["dtype"] = dtype
        if target is not None or device is not None:
            from .. import backend as B
            name = target if target is not None else B.current_backend().name
            kw["backend"] = name if device is None or not isinstance(name, str) else B.get_backend(name, device)
        return self

    def extra_repr(self):
        args, kw = self._lazy_args
        return ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kw.items()])


class LazyLinear(_Lazy):
    """Linear(in_features, out_features) with ``in_features`` taken from the first input's last axis."""

    cls_to_become = Linear

    def __init__(self, out_features: int, bias: bool = True, dtype=None, backend=None):
        super().__init__(out_features, bias=bias, dtype=dtype, backend=backend)


def _lazy_conv(name, cls, nd, transposed):
    if transposed:
        def __init__(self, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1, bias=True,
                     dilation=1, padding_mode="zeros", dtype=None, backend=None):
            _Lazy.__init__(self, out_channels, kernel_size, stride, padding, output_padding, groups, bias, dilation,
                           padding_mode, dtype=dtype, backend=backend)
    else:
        def __init__(self, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                     padding_mode="zeros", dtype=None, backend=None):
            _Lazy.__init__(self, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                           dtype=dtype, backend=backend)
    doc = f"{cls.__name__} with ``in_channels`` taken from the first input."
    return type(name, (_Lazy,), {"cls_to_become": cls, "nd": nd, "__init__": __init__, "__doc__": doc,
                                 "__module__": __name__})


LazyConv1d = _lazy_conv("LazyConv1d", Conv1d, 1, False)
LazyConv2d = _lazy_conv("LazyConv2d", Conv2d, 2, False)
LazyConv3d = _lazy_conv("LazyConv3d", Conv3d, 3, False)
LazyConvTranspose1d = _lazy_conv("LazyConvTranspose1d", ConvTranspose1d, 1, True)
LazyConvTranspose2d = _lazy_conv("LazyConvTranspose2d", ConvTranspose2d, 2, True)
LazyConvTranspose3d = _lazy_conv("LazyConvTranspose3d", ConvTranspose3d, 3, True)
