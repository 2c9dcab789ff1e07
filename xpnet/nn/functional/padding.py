"""``pad`` with PyTorch's signature: constant, reflect, replicate and circular modes.

``pad`` is a flat tuple, last axis first: ``(left, right)`` pads the last axis,
``(left, right, top, bottom)`` the last two, and so on; negative values crop.
Each padded axis is built from slices of the input (an ascending run is a
slice, a descending one a flipped slice, a repeated edge a broadcast slice, a
constant block a filled array), joined by ``concat``: one implementation for
every mode, differentiable through those operations, and nothing copied from
the host.  Source of the conventions: ``torch.nn.functional.pad``.
"""

from __future__ import annotations

from ... import backend as B
from ...autograd.functions import _shape, broadcast_to, concat, getitem
from ...autograd.functions import pad as pad_constant
from ...autograd.tensor import Tensor, _raw
from .conv import Flip

__all__ = ["pad"]

_MODES = ("constant", "reflect", "replicate", "circular")


def _source(j: int, n: int, mode: str):
    """The input index that output position ``j`` (in input coordinates) copies, or None (fill)."""
    if 0 <= j < n:
        return j
    if mode == "constant":
        return None
    if mode == "reflect":
        return -j if j < 0 else 2 * (n - 1) - j
    if mode == "replicate":
        return min(max(j, 0), n - 1)
    return j % n  # circular


def _runs(src):
    """``src`` (ints or None) split into runs (first, step, length): step 1, -1, 0 or None (fill)."""
    runs = []
    for s in src:
        if runs:
            first, step, length = runs[-1]
            last = None if first is None else first + step * (length - 1)
            if s is None and first is None:
                runs[-1] = (None, None, length + 1)
                continue
            if s is not None and last is not None:
                if length == 1 and s - last in (1, -1, 0):
                    runs[-1] = (first, s - last, 2)
                    continue
                if length > 1 and s - last == step:
                    runs[-1] = (first, step, length + 1)
                    continue
        runs.append((s, 1 if s is not None else None, 1))
    return runs


def _pad_axis(x, axis: int, lo: int, hi: int, mode: str, value: float):
    shape = _shape(_raw(x))
    n = shape[axis]
    pieces = []
    before = (slice(None),) * axis
    for first, step, length in _runs([_source(j, n, mode) for j in range(-lo, n + hi)]):
        if first is None:
            raw = _raw(x)
            xp = B.namespace_of(raw)
            block = xp.full(shape[:axis] + (length,) + shape[axis + 1:], value, dtype=raw.dtype,
                            device=B.array_api_compat.device(raw))
            pieces.append(Tensor(block) if isinstance(x, Tensor) else block)
        elif step == 1:
            pieces.append(getitem(x, before + (slice(first, first + length), ...)))
        elif step == -1:
            pieces.append(Flip((axis,))(getitem(x, before + (slice(first - length + 1, first + 1), ...))))
        else:
            edge = getitem(x, before + (slice(first, first + 1), ...))
            pieces.append(broadcast_to(edge, shape[:axis] + (length,) + shape[axis + 1:]))
    return pieces[0] if len(pieces) == 1 else concat(pieces, axis)


def pad(input, pad, mode: str = "constant", value=None):
    """``input`` padded by ``pad`` (a flat sequence of 2k ints, last axis first).

    ``mode``: ``'constant'`` (fill with ``value``, default 0; any number of axes),
    ``'reflect'`` (mirror without repeating the edge; each pad < the axis size),
    ``'replicate'`` (repeat the edge) or ``'circular'`` (wrap around; each pad <= the
    axis size).  The three non-constant modes pad the last 1, 2 or 3 axes of an
    input with 1 or 2 more axes (batch and channels, as PyTorch).  Negative pads crop,
    as PyTorch: constant and circular crop first and then pad what is left; reflect and
    replicate map each output position ``j`` to an input index (so ``(-4, 5)`` replicates
    the last element five times).
    Returns a tensor of the input's dtype; raises ValueError naming the problem for a
    bad ``pad``, ``mode`` or ``value``.
    """
    if mode not in _MODES:
        raise ValueError(f"pad: mode={mode!r} is not supported: expected one of {', '.join(map(repr, _MODES))}")
    pad = tuple(int(p) for p in pad)
    shape = _shape(_raw(input))
    k = len(pad) // 2
    if len(pad) % 2 or k > len(shape):
        raise ValueError(f"pad: pad={pad} must have an even length of at most 2 * {len(shape)} "
                         f"(the input has shape {shape})")
    if mode != "constant":
        if value is not None and value != 0:
            raise ValueError(f"pad: mode {mode!r} takes no value (got value={value})")
        if not 1 <= k <= 3 or len(shape) not in (k + 1, k + 2):
            raise ValueError(f"pad: mode {mode!r} pads the last 1, 2 or 3 axes of an input with 1 or 2 "
                             f"more axes (batch, channels): got pad={pad} for shape {shape}")
    widths = [(0, 0)] * (len(shape) - k) + [(pad[2 * i], pad[2 * i + 1]) for i in reversed(range(k))]
    for axis, (lo, hi) in enumerate(widths):
        if shape[axis] + lo + hi < 0:
            raise ValueError(f"pad: pad={pad} leaves axis {axis} (size {shape[axis]}) with size "
                             f"{shape[axis] + lo + hi}: expected at least 0")
    out = input
    if mode in ("constant", "circular") and any(lo < 0 or hi < 0 for lo, hi in widths):
        # crop first; circular then wraps what is left (as PyTorch)
        out = getitem(out, tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(widths, shape)))
        shape = _shape(_raw(out))
        widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    for axis, (lo, hi) in enumerate(widths):
        n = shape[axis]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise ValueError(f"pad: reflect padding ({lo}, {hi}) must be smaller than the size {n} of axis {axis}")
        if mode == "circular" and (lo > n or hi > n):
            raise ValueError(f"pad: circular padding ({lo}, {hi}) must be at most the size {n} of axis {axis}")
        if mode == "replicate" and n == 0 and (lo or hi):
            raise ValueError(f"pad: replicate padding needs a non-empty axis {axis}")
    value = 0.0 if value is None else float(value)
    if mode == "constant":
        return pad_constant(out, widths, value) if any(lo or hi for lo, hi in widths) else out
    for axis, (lo, hi) in enumerate(widths):  # reflect, replicate: output j copies input index f(j)
        if lo or hi:
            out = _pad_axis(out, axis, lo, hi, mode, value)
    return out
