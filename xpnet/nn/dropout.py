"""Dropout modules: Dropout, Dropout1d/2d/3d (whole channels), AlphaDropout, FeatureAlphaDropout."""

from __future__ import annotations

from .functional.dropout import (_check_p, alpha_dropout, dropout, dropout1d, dropout2d, dropout3d,
                                 feature_alpha_dropout)
from .module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"]


class Dropout(Module):
    """Inverted dropout in training mode, identity in eval mode (``model.eval()``).

    ``generator`` (an ``xpnet.Generator``; default: the default generator) draws
    the masks.  ``inplace`` is accepted for PyTorch compatibility and ignored.
    """

    fn = staticmethod(dropout)

    def __init__(self, p: float = 0.5, inplace: bool = False, generator=None):
        super().__init__()
        _check_p(p, type(self).__name__)
        self.p, self.inplace, self.generator = p, inplace, generator

    def forward(self, input):
        return type(self).fn(input, self.p, self.training, generator=self.generator)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(Dropout):
    """Zeros whole channels of (N, C, L) or (C, L) in training mode."""

    fn = staticmethod(dropout1d)


class Dropout2d(Dropout):
    """Zeros whole channels of (N, C, H, W) or (C, H, W) in training mode."""

    fn = staticmethod(dropout2d)


class Dropout3d(Dropout):
    """Zeros whole channels of (N, C, D, H, W) or (C, D, H, W) in training mode."""

    fn = staticmethod(dropout3d)


class AlphaDropout(Dropout):
    """Dropout for SELU networks: keeps zero mean and unit variance (training mode only)."""

    fn = staticmethod(alpha_dropout)


class FeatureAlphaDropout(Dropout):
    """Alpha dropout of whole channels (dim 1)."""

    fn = staticmethod(feature_alpha_dropout)
