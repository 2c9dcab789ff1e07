"""Input checks that cost no device synchronization: run at once on the CPU, queued on an
accelerator until the next read back to the host (:func:`.arrays.flush_checks`)."""

from __future__ import annotations

import math

from . import arrays
from .arrays import _pending_checks, flush_checks, namespace_of, on_host
from .ops import clip


def require(values, check, defer: bool = True) -> bool:
    """Run ``check(*values)`` (a host function that raises on bad input) on the few
    scalars of 1-D array ``values``.

    On the CPU it runs at once.  On an accelerator that would cost a
    device-to-host synchronization per call, so the check is queued and runs
    at the next read back to the host (:func:`flush_checks`: ``item()``,
    ``numpy()``, the trainer's log interval, or once 64 are queued); returns
    False then.  ``defer=False`` runs it at once everywhere.
    """
    if not defer or on_host(values):
        check(*arrays._host_copy(values).tolist())
        return True
    _pending_checks.append((values, check))
    if len(_pending_checks) >= 64:
        flush_checks()
    return False


def index_bounds(index):
    """``(min, max)`` of integer array ``index`` as Python ints when it is non-empty and in host
    memory (no device to wait for); ``None`` otherwise."""
    if math.prod(index.shape) == 0 or not on_host(index):
        return None
    xp = namespace_of(index)
    return int(xp.min(index)), int(xp.max(index))


def check_indices(index, size: int, what: str, defer: bool = True, bounds=None, wrap: bool = False):
    """Check that every entry of ``index`` lies in ``[0, size)`` (``[-size, size)`` with ``wrap``:
    negative entries count from the end, as in PyTorch's indexing and ``take``) and return the
    index to use, negative entries wrapped.  An entry out of range raises IndexError naming it.
    On an accelerator the check is deferred (see :func:`require`) and the indices are clipped
    into range meanwhile, so that no kernel reads or writes out of bounds (CuPy would wrap
    them silently, JAX clip them).  ``bounds``: the :func:`index_bounds` of ``index`` if the
    caller has them already."""
    if math.prod(index.shape) == 0:
        return index
    lowest = -size if wrap else 0

    def in_range(lo, hi):
        if lo < lowest or hi >= size:
            raise IndexError(f"{what}: index {int(hi if hi >= size else lo)} is out of range: "
                             f"expected {lowest} <= index < {size}")

    bounds = index_bounds(index) if bounds is None else bounds
    if bounds is not None:
        in_range(*bounds)
        return _wrapped(index, size) if wrap and bounds[0] < 0 else index
    xp = namespace_of(index)
    if require(xp.stack([xp.min(index), xp.max(index)]), in_range, defer):
        return _wrapped(index, size) if wrap else index
    index = clip(index, lowest, size - 1)
    return _wrapped(index, size) if wrap else index


def _wrapped(index, size: int):
    """Negative entries of ``index`` counted from the end of an axis of ``size``."""
    xp = namespace_of(index)
    return xp.where(index < 0, index + size, index)
