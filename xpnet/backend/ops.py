"""The operations the Array API standard lacks, written once.

Each has a portable version (``*_portable``, standard functions only) and, where a library
does it faster or without a device synchronization, a fast path beside it behind the same
function; the tests compare the two on every backend."""

from __future__ import annotations

import math

import array_api_compat
import array_api_extra as xpx
import numpy as np

from .arrays import namespace_of
from .dtypes import isdtype


def assign(target, value):
    """Write ``value`` into ``target`` in place where the library allows it, and
    return the result (a new array on JAX, whose arrays are immutable)."""
    return xpx.at(target)[...].set(value)


def scatter_add(values, index, size: int):
    """Rows of ``values`` summed into ``size`` rows at positions ``index`` (repeats add up).

    ``values`` has shape ``(len(index), *rest)``; the result ``(size, *rest)``.
    """
    xp = namespace_of(values)
    zeros = xp.zeros((size, *values.shape[1:]), dtype=values.dtype, device=array_api_compat.device(values))
    c = array_api_compat
    if c.is_numpy_array(values):
        np.add.at(zeros, index, values)
        return zeros
    if c.is_torch_array(values):
        return zeros.index_add_(0, index, values)
    if c.is_cupy_array(values):
        import cupyx
        cupyx.scatter_add(zeros, index, values)
        return zeros
    if c.is_jax_array(values):
        return zeros.at[index].add(values)
    return scatter_add_portable(values, index, size)


def scatter_add_portable(values, index, size: int):
    """The standard-only version of :func:`scatter_add`: a one-hot matrix product."""
    xp = namespace_of(values)
    dev = array_api_compat.device(values)
    onehot = xp.astype(index[None, :] == xp.arange(size, dtype=index.dtype, device=dev)[:, None], values.dtype)
    flat = xp.reshape(values, (values.shape[0], -1))
    return xp.reshape(onehot @ flat, (size, *values.shape[1:]))




def pad(x, pad_width, value=0.0):
    """``x`` padded with ``value``; ``pad_width`` is ``((before, after), ...)`` per axis."""
    return xpx.pad(x, tuple(tuple(p) for p in pad_width), constant_values=value)


def add_slices(shape, pieces):
    """Zeros of ``shape`` with every ``(index, value)`` of ``pieces`` added at ``index``.

    ``index`` is a tuple of slices with positive steps and at most one ``...``
    (axes left out are taken whole); ``value`` has the shape of the slice it
    selects; overlaps add up.  NumPy, CuPy and torch write into one buffer in
    place, copying a piece that no earlier one overlaps (cheaper than adding);
    others go through :func:`add_slices_portable` (on JAX it is several times
    faster than ``.at[].add``, an eager scatter per piece).
    """
    first = pieces[0][1]
    c = array_api_compat
    if not (c.is_numpy_array(first) or c.is_cupy_array(first) or c.is_torch_array(first)):
        return add_slices_portable(shape, pieces)
    z = namespace_of(first).zeros(shape, dtype=first.dtype, device=c.device(first))
    steps, seen = None, set()  # the step pattern shared by the pieces so far, and their phases
    for index, value in pieces:
        key = _phases(index)
        if key is not None and steps in (None, key[0]) and key[1] not in seen:
            z[index] = value  # a phase of its own: no earlier piece overlaps
            steps = key[0]
            seen.add(key[1])
        else:
            view = z[index]
            view += value  # in place on a view: no write-back of the slice
            steps = False if key is None or key[0] != steps else steps  # other steps: add from now on
            if steps is not False:
                seen.add(key[1])
    return z


def _phases(index):
    """``(steps, phases)`` of a tuple of slices with non-negative starts (``...`` kept in
    place), or None: two such indices with equal steps and different phases are disjoint."""
    steps, phases = [], []
    for s in index:
        if s is Ellipsis:
            steps.append(s)
            phases.append(0)
            continue
        if not isinstance(s, slice):
            return None
        start, step = s.start or 0, s.step or 1
        if start < 0 or step < 1:
            return None
        steps.append(step)
        phases.append(start % step)
    return tuple(steps), tuple(phases)


def add_slices_portable(shape, pieces):
    """The standard-only version of :func:`add_slices`, without writes.

    Along an axis of step ``s`` a slice starting at ``s*q + r`` fills every ``s``-th
    place of phase ``r``: each value is zero-padded by ``q`` on the grid of its
    phase, the values of one phase are summed, and the phases are interleaved by
    stacking and reshaping.
    """
    first = pieces[0][1]
    xp, dev, ndim = namespace_of(first), array_api_compat.device(first), len(shape)
    by_steps: dict = {}  # steps -> {phases: sum of the padded values}
    for index, value in pieces:
        index = tuple(index)
        if ... in index:
            at = index.index(...)
            index = index[:at] + (slice(None),) * (ndim - len(index) + 1) + index[at + 1:]
        index = index + (slice(None),) * (ndim - len(index))
        spans = [s.indices(n) if isinstance(s, slice) else (0, 0, 0) for s, n in zip(index, shape)]
        if len(index) != ndim or any(step < 1 for _, _, step in spans) or tuple(value.shape) != tuple(
                len(range(*span)) for span in spans):
            raise ValueError(f"add_slices: index {index} must hold slices with positive steps, selecting the "
                             f"shape of the value {tuple(value.shape)} from shape {tuple(shape)}")
        if math.prod(value.shape) == 0:
            continue
        steps = tuple(step for _, _, step in spans)
        qr = [divmod(start, step) for start, _, step in spans]
        grid = [-(-n // step) for n, step in zip(shape, steps)]
        value = pad(value, [(q, g - q - m) for (q, _), g, m in zip(qr, grid, value.shape)])
        phases = by_steps.setdefault(steps, {})
        r = tuple(r for _, r in qr)
        phases[r] = phases[r] + value if r in phases else value
    total = None
    for steps, phases in by_steps.items():
        grid = tuple(-(-n // step) for n, step in zip(shape, steps))

        def interleave(prefix, a):
            if a == ndim:
                got = phases.get(prefix)
                return got if got is not None else xp.zeros(grid, dtype=first.dtype, device=dev)
            if steps[a] == 1:
                return interleave(prefix + (0,), a + 1)
            return xp.stack([interleave(prefix + (r,), a + 1) for r in range(steps[a])], axis=a + 1)

        z = interleave((), 0)
        if any(s > 1 for s in steps):
            z = xp.reshape(z, tuple(g * s for g, s in zip(grid, steps)))
            if tuple(z.shape) != tuple(shape):
                z = z[tuple(slice(0, n) for n in shape)]
        total = z if total is None else total + z
    return total if total is not None else xp.zeros(tuple(shape), dtype=first.dtype, device=dev)


def clip(x, lo=None, hi=None):
    """``x`` limited to ``[lo, hi]`` (None: no limit), its dtype and NaNs kept.  The library's
    clip, except on CuPy: there array-api-compat assigns through boolean masks, and each
    such assignment reads a count back from the GPU (a sync), so :func:`clip_portable`."""
    if array_api_compat.is_cupy_array(x):
        return clip_portable(x, lo, hi)
    return namespace_of(x).clip(x, lo, hi)


def clip_portable(x, lo=None, hi=None):
    """:func:`clip` by ``maximum`` and ``minimum``."""
    xp = namespace_of(x)
    if lo is not None:
        x = xp.maximum(x, lo)
    return x if hi is None else xp.minimum(x, hi)


def sign(x):
    """-1, 0 or 1 by the sign of ``x``, NaNs kept: the library's, except on CuPy, where
    array-api-compat's NaN fix-up is a masked assignment (a sync; see :func:`clip`)."""
    if array_api_compat.is_cupy_array(x):
        return sign_portable(x)
    return namespace_of(x).sign(x)


def sign_portable(x):
    """:func:`sign` by comparisons and ``where``."""
    xp = namespace_of(x)
    s = xp.astype(x > 0, x.dtype) - xp.astype(x < 0, x.dtype)
    return xp.where(xp.isnan(x), x, s) if isdtype(xp, x.dtype, "real floating") else s



def index_zeros_set(shape, index, value):
    """A zero array of ``shape`` with ``value`` written at basic index ``index``."""
    xp = namespace_of(value)
    zeros = xp.zeros(shape, dtype=value.dtype, device=array_api_compat.device(value))
    return xpx.at(zeros)[index].set(value)
