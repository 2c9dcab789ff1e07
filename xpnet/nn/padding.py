"""Padding modules: ZeroPad, ConstantPad, ReflectionPad, ReplicationPad, CircularPad in 1d/2d/3d.

Each wraps :func:`xpnet.nn.functional.pad`; ``padding`` is an int (every side) or a
tuple of 2n ints, last axis first (``(left, right, top, bottom, front, back)``), as PyTorch.
"""

from __future__ import annotations

from .functional.padding import pad
from .module import Module

__all__ = [f"{kind}Pad{n}d" for kind in ("Zero", "Constant", "Reflection", "Replication", "Circular")
           for n in (1, 2, 3)]


class _PadNd(Module):
    nd, mode = 1, "constant"

    def __init__(self, padding, value: float = 0.0):
        super().__init__()
        if isinstance(padding, int):
            padding = (padding,) * (2 * self.nd)
        padding = tuple(int(p) for p in padding)
        if len(padding) != 2 * self.nd:
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple of {2 * self.nd} ints, "
                             f"got {padding}")
        self.padding, self.value = padding, value

    def forward(self, input):
        if input.ndim not in (self.nd + 1, self.nd + 2):
            raise ValueError(f"{type(self).__name__}: expected a {self.nd + 1}-D or {self.nd + 2}-D input, "
                             f"got shape {tuple(input.shape)}")
        return pad(input, self.padding, self.mode, self.value if self.mode == "constant" else None)

    def extra_repr(self):
        return f"{self.padding}" + (f", value={self.value}" if self.mode == "constant" else "")


def _make(kind, mode, nd):
    if kind == "Constant":
        def __init__(self, padding, value: float):
            _PadNd.__init__(self, padding, value)
    else:
        def __init__(self, padding):
            _PadNd.__init__(self, padding)
    doc = f"Pads the last {nd} axes ({mode} mode) of a ({nd + 1}-D or {nd + 2}-D) input."
    return type(f"{kind}Pad{nd}d", (_PadNd,), {"nd": nd, "mode": mode, "__init__": __init__, "__doc__": doc,
                                               "__module__": __name__})


for _kind, _mode in (("Zero", "constant"), ("Constant", "constant"), ("Reflection", "reflect"),
                     ("Replication", "replicate"), ("Circular", "circular")):
    for _n in (1, 2, 3):
        globals()[f"{_kind}Pad{_n}d"] = _make(_kind, _mode, _n)
