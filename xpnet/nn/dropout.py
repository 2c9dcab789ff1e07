"""The Dropout module."""

from __future__ import annotations

from .functional.dropout import _check_p, dropout
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Inverted dropout in training mode, identity in eval mode (``model.eval()``).

    ``generator`` (an ``xpnet.Generator``; default: the default generator) draws
    the masks.  ``inplace`` is accepted for PyTorch compatibility and ignored.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, generator=None):
        super().__init__()
        _check_p(p, "Dropout")
        self.p, self.inplace, self.generator = p, inplace, generator

    def forward(self, input):
        return dropout(input, self.p, self.training, self.generator)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
