"""Pooling layers: MaxPool, AvgPool, AdaptiveAvgPool, AdaptiveMaxPool and LPPool in 1d/2d/3d
(PyTorch's names and arguments)."""

from __future__ import annotations

from .functional import pooling as P
from .functional.conv import LayerName
from .module import Module

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d",
           "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
           "LPPool1d", "LPPool2d", "LPPool3d", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d",
           "FractionalMaxPool2d", "FractionalMaxPool3d"]


class _MaxPoolNd(Module):
    nd = 0

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input):
        return P._max_pool(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                           self.return_indices, self.nd, LayerName(self))

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """Max over sliding windows of (N, C, L); ``stride`` defaults to ``kernel_size``."""

    nd = 1


class MaxPool2d(_MaxPoolNd):
    """Max over sliding windows of (N, C, H, W); ``stride`` defaults to ``kernel_size``."""

    nd = 2


class _AvgPoolNd(Module):
    nd = 0

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input):
        return P._avg_pool(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                           self.count_include_pad, self.divisor_override, self.nd, LayerName(self))

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """Mean over sliding windows of (N, C, L); ``stride`` defaults to ``kernel_size``."""

    nd = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """Mean over sliding windows of (N, C, H, W); ``stride`` defaults to ``kernel_size``."""

    nd = 2


class _AdaptiveAvgPoolNd(Module):
    nd = 0

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return P._adaptive_avg(input, self.output_size, self.nd, LayerName(self))

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average pooling of (N, C, L) to ``output_size`` places."""

    nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average pooling of (N, C, H, W) to ``output_size`` (an int or (H, W); None keeps that size)."""

    nd = 2


class MaxPool3d(_MaxPoolNd):
    """Max over sliding windows of (N, C, D, H, W); ``stride`` defaults to ``kernel_size``."""

    nd = 3


class AvgPool3d(_AvgPoolNd):
    """Mean over sliding windows of (N, C, D, H, W); ``stride`` defaults to ``kernel_size``."""

    nd = 3


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Average pooling of (N, C, D, H, W) to ``output_size``."""

    nd = 3


class _AdaptiveMaxPoolNd(Module):
    nd = 0

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input):
        return P._adaptive_max(input, self.output_size, self.return_indices, self.nd, LayerName(self))

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max pooling of (N, C, L) to ``output_size`` places."""

    nd = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max pooling of (N, C, H, W) to ``output_size``."""

    nd = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Max pooling of (N, C, D, H, W) to ``output_size``."""

    nd = 3


class _LPPoolNd(Module):
    nd = 0

    def __init__(self, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False):
        super().__init__()
        self.norm_type, self.kernel_size, self.stride, self.ceil_mode = norm_type, kernel_size, stride, ceil_mode

    def forward(self, input):
        return P._lp_pool(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode, self.nd, LayerName(self))

    def extra_repr(self):
        return f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, ceil_mode={self.ceil_mode}"


class LPPool1d(_LPPoolNd):
    """(sum x^p)^(1/p) over sliding windows of (N, C, L)."""

    nd = 1


class LPPool2d(_LPPoolNd):
    """(sum x^p)^(1/p) over sliding windows of (N, C, H, W)."""

    nd = 2


class LPPool3d(_LPPoolNd):
    """(sum x^p)^(1/p) over sliding windows of (N, C, D, H, W)."""

    nd = 3


class _MaxUnpoolNd(Module):
    nd = 0

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding

    def forward(self, input, indices, output_size=None):
        return P._max_unpool(input, indices, self.kernel_size, self.stride, self.padding, output_size, self.nd,
                             LayerName(self))

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    """Inverse of MaxPool1d: forward(input, indices, output_size=None)."""

    nd = 1


class MaxUnpool2d(_MaxUnpoolNd):
    """Inverse of MaxPool2d: forward(input, indices, output_size=None)."""

    nd = 2


class MaxUnpool3d(_MaxUnpoolNd):
    """Inverse of MaxPool3d: forward(input, indices, output_size=None)."""

    nd = 3


class _FractionalMaxPoolNd(Module):
    nd = 0

    def __init__(self, kernel_size, output_size=None, output_ratio=None, return_indices: bool = False,
                 _random_samples=None, generator=None):
        super().__init__()
        if (output_size is None) == (output_ratio is None):
            raise ValueError(f"{type(self).__name__}: give exactly one of output_size and output_ratio")
        self.kernel_size, self.output_size, self.output_ratio = kernel_size, output_size, output_ratio
        self.return_indices, self.generator = return_indices, generator
        self.register_buffer("_random_samples", _random_samples)

    def forward(self, input):
        return P._fractional_max_pool(input, self.kernel_size, self.output_size, self.output_ratio, self.return_indices,
                                      self._random_samples, self.nd, LayerName(self), self.generator)

    def extra_repr(self):
        what = f"output_size={self.output_size}" if self.output_size is not None else f"output_ratio={self.output_ratio}"
        return f"kernel_size={self.kernel_size}, {what}"


class FractionalMaxPool2d(_FractionalMaxPoolNd):
    """Max over pseudo-random windows of (N, C, H, W), to ``output_size`` or ``output_ratio``."""

    nd = 2


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    """Max over pseudo-random windows of (N, C, T, H, W), to ``output_size`` or ``output_ratio``."""

    nd = 3
