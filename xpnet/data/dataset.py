"""Datasets: the PyTorch protocol (``__len__``/``__getitem__``) and arrays held whole."""

from __future__ import annotations

import array_api_compat
import numpy as np

from .. import backend as B
from ..autograd.tensor import Tensor

__all__ = ["Dataset", "ArrayDataset", "TensorDataset"]


class Dataset:
    """A sized, indexable collection of samples, as in PyTorch.

    Subclasses define ``__len__`` and ``__getitem__(i)``, which returns one
    sample: an array or number, or a tuple/list/dict of them.  The
    :class:`~xpnet.data.DataLoader` stacks samples into batches (one Python
    call per sample); hold data as whole arrays in an :class:`ArrayDataset`
    to batch without per-sample work.
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


def _as_array(x, what: str):
    """``x`` (an array of any backend, a Tensor, or nested lists) as an array, dtype kept."""
    if isinstance(x, Tensor):
        x = x.data
    if isinstance(x, (np.generic, int, float, bool)) or not array_api_compat.is_array_api_obj(x):
        x = B.as_array(x, backend="numpy")  # lists: floats -> float32, ints -> int64
    if x.ndim == 0:
        raise ValueError(f"{what} is a scalar: expected an array whose first axis indexes the samples")
    return x


class ArrayDataset(Dataset):
    """Samples stored as whole arrays; sample ``i`` is ``tuple(a[i] for a in arrays)``.

    ``arrays`` may be NumPy arrays, arrays of any backend, or xpnet Tensors;
    their first axis indexes the samples, so all must have the same length.
    The :class:`~xpnet.data.DataLoader` moves them to the target backend once
    and takes a whole batch with one ``xp.take`` per array.
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array (e.g. ArrayDataset(X, y))")
        self.arrays = tuple(_as_array(a, f"ArrayDataset argument {i}") for i, a in enumerate(arrays))
        lengths = [int(a.shape[0]) for a in self.arrays]
        if len(set(lengths)) > 1:
            raise ValueError(
                f"ArrayDataset: the arrays have different lengths {tuple(lengths)} "
                f"(shapes {', '.join(str(tuple(a.shape)) for a in self.arrays)}): "
                "expected the same number of samples along the first axis of each")

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])

    def __getitem__(self, index):
        n = len(self)
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"ArrayDataset index must be an int, got {type(index).__name__}: "
                            "use a DataLoader (or xp.take) to take many samples at once")
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"ArrayDataset index {i} is out of range for {n} samples")
        i %= n
        return tuple(a[i, ...] for a in self.arrays)

    def __repr__(self):
        shapes = ", ".join(f"{B.dtype_name(a.dtype)}{tuple(a.shape)}" for a in self.arrays)
        return f"ArrayDataset({shapes})"


TensorDataset = ArrayDataset  # the PyTorch name
