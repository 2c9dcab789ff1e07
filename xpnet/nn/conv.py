"""Convolution layers: Conv1d/2d/3d, ConvTranspose1d/2d/3d (PyTorch's names and layouts), one N-d code."""

from __future__ import annotations

import math

from . import init
from .functional.conv import LayerName, _conv, _conv_transpose, _ntuple, _padding
from .functional.padding import pad
from .linear import new_parameter
from .module import Module

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]


class _ConvNd(Module):
    nd = 0
    transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", dtype=None, backend=None,
                 output_padding=0):
        super().__init__()
        name = type(self).__name__
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels={in_channels} and out_channels={out_channels} must both be "
                             f"divisible by groups={groups}")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"{name}: padding_mode={padding_mode!r} is not supported: expected 'zeros', "
                             "'reflect', 'replicate' or 'circular'")
        if self.transposed and padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported for a transposed convolution")
        nd = self.nd
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _ntuple(kernel_size, nd, "kernel_size", name)
        self.stride = _ntuple(stride, nd, "stride", name)
        self.padding = padding if isinstance(padding, str) else _ntuple(padding, nd, "padding", name)
        self.dilation = _ntuple(dilation, nd, "dilation", name)
        self.output_padding = _ntuple(output_padding, nd, "output_padding", name)
        self.padding_mode = padding_mode
        if self.transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = new_parameter(shape, dtype, backend)
        if bias:
            self.bias = new_parameter((out_channels,), dtype, backend)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """PyTorch's default: kaiming_uniform_(a=sqrt(5)) weights, U(+-1/sqrt(fan_in)) bias."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            init.fan_in_uniform_(self.bias, self.weight.shape[1] * math.prod(self.kernel_size))

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self.nd:
            s += f", padding={self.padding!r}"
        if self.dilation != (1,) * self.nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self.nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s


class _Conv(_ConvNd):
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", dtype=None, backend=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype, backend)  # PyTorch's signature: no output_padding

    def forward(self, input):
        padding = self.padding
        if self.padding_mode != "zeros":  # as PyTorch: pad in that mode first, then convolve unpadded
            lo, hi = _padding(padding, self.nd, self.kernel_size, self.dilation, self.stride, LayerName(self))
            input = pad(input, [p for i in reversed(range(self.nd)) for p in (lo[i], hi[i])], self.padding_mode)
            padding = 0
        return _conv(input, self.weight, self.bias, self.stride, padding, self.dilation, self.groups,
                     self.nd, LayerName(self))


class _ConvTranspose(_ConvNd):
    transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", dtype=None,
                 backend=None):
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple, got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype, backend, output_padding)

    def forward(self, input, output_size=None):
        """``output_size`` (the spatial size, or the whole shape) picks the output padding that
        gives it, as PyTorch; it must lie within ``stride - 1`` above the smallest output size."""
        outpad = self.output_padding if output_size is None else self._output_padding(input, output_size)
        return _conv_transpose(input, self.weight, self.bias, self.stride, self.padding, outpad,
                               self.groups, self.dilation, self.nd, LayerName(self))

    def _output_padding(self, input, output_size):
        """PyTorch's ``_ConvTransposeNd._output_padding``: the padding that yields ``output_size``."""
        nd, shape = self.nd, tuple(input.shape)
        lead = 2 if len(shape) == nd + 2 else 1
        output_size = tuple(int(n) for n in output_size)
        if len(output_size) == lead + nd:
            output_size = output_size[lead:]
        if len(output_size) != nd:
            raise ValueError(f"{LayerName(self)}: output_size must have {nd} or {nd + lead} elements (got "
                             f"{len(output_size)})")
        lo = tuple((shape[lead + i] - 1) * self.stride[i] - 2 * self.padding[i]
                   + self.dilation[i] * (self.kernel_size[i] - 1) + 1 for i in range(nd))
        hi = tuple(m + s - 1 for m, s in zip(lo, self.stride))
        if any(not a <= n <= b for a, n, b in zip(lo, output_size, hi)):
            raise ValueError(f"{LayerName(self)}: requested an output size of {output_size}, but valid sizes "
                             f"range from {lo} to {hi} (for an input of {shape[lead:]})")
        return tuple(n - a for n, a in zip(output_size, lo))


class Conv1d(_Conv):
    """1-D convolution over (N, C_in, L); ``weight`` (out_channels, in_channels/groups, k).

    ``padding``: int, 1-tuple, ``'same'`` (stride 1) or ``'valid'``.
    """

    nd = 1


class Conv2d(_Conv):
    """2-D convolution over (N, C_in, H, W); ``weight`` (out_channels, in_channels/groups, kH, kW)."""

    nd = 2


class ConvTranspose1d(_ConvTranspose):
    """Transposed 1-D convolution; ``weight`` (in_channels, out_channels/groups, k)."""

    nd = 1


class ConvTranspose2d(_ConvTranspose):
    """Transposed 2-D convolution; ``weight`` (in_channels, out_channels/groups, kH, kW)."""

    nd = 2


class Conv3d(_Conv):
    """3-D convolution over (N, C_in, D, H, W); ``weight`` (out_channels, in_channels/groups, kD, kH, kW)."""

    nd = 3


class ConvTranspose3d(_ConvTranspose):
    """Transposed 3-D convolution; ``weight`` (in_channels, out_channels/groups, kD, kH, kW)."""

    nd = 3
