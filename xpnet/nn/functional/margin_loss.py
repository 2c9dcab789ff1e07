"""Margin, embedding and likelihood losses of ``torch.nn.functional`` (PyTorch's names,
arguments, formulas and reductions): cosine_embedding_loss, margin_ranking_loss,
hinge_embedding_loss, multi_margin_loss, multilabel_margin_loss,
multilabel_soft_margin_loss, soft_margin_loss, triplet_margin_loss,
triplet_margin_with_distance_loss, gaussian_nll_loss, poisson_nll_loss.

Each is a composition of differentiable operations; labels and class indices are
constants.  ``reduction`` is ``"mean"`` | ``"sum"`` | ``"none"``.  Under ``xpnet.autocast`` the
losses that PyTorch's autocast runs in float32 do too (all but multilabel_soft_margin_loss,
triplet_margin_with_distance_loss and gaussian_nll_loss, which PyTorch leaves in their input's dtype).
"""

from __future__ import annotations

import math

from ... import backend as B
from ...autograd import functions as F
from ...autograd.autocast_state import to_float32
from ...autograd.tensor import _raw
from .activation import logsigmoid
from .distance import pairwise_distance
from .loss import _check_reduction, _input, _like, _on, _reduce, _class_axis, _class_indices, _const, _onehot

__all__ = ["cosine_embedding_loss", "margin_ranking_loss", "hinge_embedding_loss", "multi_margin_loss",
           "multilabel_margin_loss", "multilabel_soft_margin_loss", "soft_margin_loss", "triplet_margin_loss",
           "triplet_margin_with_distance_loss", "gaussian_nll_loss", "poisson_nll_loss"]


def _labels(name, target, xr, shape=None):
    """Target values (labels, probabilities) as a raw array of the input's dtype and backend,
    of ``shape`` (default: the input's)."""
    t = _like(_raw(_on(_raw(target), xr)), xr)
    want = tuple(xr.shape) if shape is None else tuple(shape)
    if tuple(t.shape) != want:
        raise ValueError(f"{name}: target has shape {tuple(t.shape)}, expected {want}")
    return t


def _float_target(name, target, xr):
    """A floating target that may require a gradient (a tensor stays a tensor)."""
    t = _on(target, xr)
    if tuple(_raw(t).shape) != tuple(xr.shape):
        raise ValueError(f"{name}: input shape {tuple(xr.shape)} and target shape {tuple(_raw(t).shape)} differ")
    return _like(t, xr)


def cosine_embedding_loss(input1, input2, target, margin: float = 0.0, reduction: str = "mean"):
    """1 - cos(x1, x2) where y = 1, max(0, cos(x1, x2) - margin) where y = -1; cos along the
    last axis of (N, D) or (D,) inputs, with PyTorch's 1e-12 added to each squared norm."""
    name = "cosine_embedding_loss"
    _check_reduction(name, reduction)
    input1, input2 = to_float32(input1), to_float32(input2)  # float32 under xpnet.autocast (PyTorch's list)
    xr = _input(name, input1)
    if xr.ndim not in (1, 2) or tuple(_raw(input2).shape) != tuple(xr.shape):
        raise ValueError(f"{name}: inputs must both be (N, D) or (D,), got {tuple(xr.shape)} and "
                         f"{tuple(_raw(input2).shape)}")
    y = _labels(name, target, xr, xr.shape[:-1])
    dot = F.sum(input1 * input2, -1)
    denom = F.sqrt((F.sum(input1 * input1, -1) + 1e-12) * (F.sum(input2 * input2, -1) + 1e-12))
    cos = dot / denom
    loss = F.where(y == 1, 1.0 - cos, 0.0) + F.where(y == -1, F.relu(cos - margin), 0.0)
    return _reduce(loss, reduction)


def margin_ranking_loss(input1, input2, target, margin: float = 0.0, reduction: str = "mean"):
    """max(0, -y (x1 - x2) + margin) with y in {1, -1}."""
    name = "margin_ranking_loss"
    _check_reduction(name, reduction)
    input1, input2 = to_float32(input1), to_float32(input2)  # float32 under xpnet.autocast (PyTorch's list)
    xr = _input(name, input1)
    if tuple(_raw(input2).shape) != tuple(xr.shape):
        raise ValueError(f"{name}: input1 {tuple(xr.shape)} and input2 {tuple(_raw(input2).shape)} differ")
    y = _labels(name, target, xr)
    return _reduce(F.relu((input1 - input2) * -y + margin), reduction)


def hinge_embedding_loss(input, target, margin: float = 1.0, reduction: str = "mean"):
    """x where y = 1, max(0, margin - x) where y = -1 (PyTorch: x where y != -1, plus the
    margin term where y != 1)."""
    name = "hinge_embedding_loss"
    _check_reduction(name, reduction)
    input = to_float32(input)  # float32 under xpnet.autocast (PyTorch's list)
    xr = _input(name, input)
    y = _labels(name, target, xr)
    loss = F.where(y != 1, F.relu(margin - input), 0.0) + F.where(y != -1, input, 0.0)
    return _reduce(loss, reduction)


def multi_margin_loss(input, target, p: int = 1, margin: float = 1.0, weight=None, reduction: str = "mean"):
    """sum over i != y of max(0, margin - x[y] + x[i])^p / C (times weight[y]), for input
    (N, C) or (C,) and class indices y."""
    name = "multi_margin_loss"
    _check_reduction(name, reduction)
    input = to_float32(input)  # float32 under xpnet.autocast (PyTorch's list)
    if p not in (1, 2):
        raise ValueError(f"{name}: p must be 1 or 2, got {p}")
    xr = _input(name, input)
    if xr.ndim not in (0, 1, 2):
        raise ValueError(f"{name}: input must be (N, C) or (C,), got shape {tuple(xr.shape)}")
    xp = B.namespace_of(xr)
    t = _raw(_on(target, xr))
    if xr.ndim < 2:  # one sample: (C,) or a scalar (one class), and its class as () or (1,)
        input = F.reshape(input, (-1,))
        xr = _raw(input)
        t = xp.reshape(t, ())
    axis, C = _class_axis(name, xr)
    y, _ = _class_indices(name, t, xr, axis, C)
    hot = _onehot(xp, y, C, axis)
    xy = F.sum(F.where(hot, input, 0.0), axis, keepdims=True)
    h = F.relu(input - xy + margin)
    if p == 2:
        h = h * h
    w = _const(name, "weight", weight, xr, (C,))
    if w is not None:
        h = h * xp.reshape(xp.take(w, xp.reshape(y, (-1,))), tuple(y.shape) + (1,) * (xr.ndim - y.ndim))
    loss = F.sum(F.where(hot, 0.0, h), axis) * (1.0 / C)
    return _reduce(loss, reduction)


def multilabel_margin_loss(input, target, reduction: str = "mean"):
    """sum over targets j and non-targets i of max(0, 1 - (x[j] - x[i])) / C.  ``target``
    (N, C) or (C,) holds class indices, ended by the first -1."""
    name = "multilabel_margin_loss"
    _check_reduction(name, reduction)
    input = to_float32(input)  # float32 under xpnet.autocast (PyTorch's list)
    xr = _input(name, input)
    if xr.ndim not in (0, 1, 2):
        raise ValueError(f"{name}: input must be (N, C) or (C,), got shape {tuple(xr.shape)}")
    xp = B.namespace_of(xr)
    t = _raw(_on(target, xr))
    if xr.ndim == 0:  # a scalar: one class
        input, xr, t = F.reshape(input, (1,)), xp.reshape(xr, (1,)), xp.reshape(t, (1,))
    if not xp.isdtype(t.dtype, "integral") or tuple(t.shape) != tuple(xr.shape):
        raise ValueError(f"{name}: target must hold integer class indices of the input's shape "
                         f"{tuple(xr.shape)}, got {B.dtype_name(t.dtype)}{tuple(t.shape)}")
    t = xp.astype(t, xp.int64)
    C = xr.shape[-1]
    dev = B.array_api_compat.device(t)
    pos = xp.arange(C, dtype=xp.int64, device=dev)
    stop = xp.where(t == -1, pos, xp.full_like(t, C))
    first = xp.min(stop, axis=-1, keepdims=True)  # the position of the first -1 (C if none)
    valid = pos < first  # (..., K): the targets before it
    y = B.check_indices(xp.where(valid, t, xp.zeros_like(t)), C, f"{name}: target class")
    is_target = xp.any(valid[..., :, None] & (y[..., :, None] == pos), axis=-2)  # (..., C)
    xy = F.take_along_axis(input, y, -1)  # (..., K)
    h = F.relu(F.unsqueeze(input, -2) - F.unsqueeze(xy, -1) + 1.0)  # (..., K, C)
    keep = xp.astype(valid[..., :, None] & ~is_target[..., None, :], xr.dtype)
    loss = F.sum(h * keep, (-2, -1) if xr.ndim == 2 else None) * (1.0 / C)
    return _reduce(loss, reduction)


def multilabel_soft_margin_loss(input, target, weight=None, reduction: str = "mean"):
    """-mean over classes of y log sigmoid(x) + (1 - y) log sigmoid(-x) (times ``weight``)."""
    name = "multilabel_soft_margin_loss"
    _check_reduction(name, reduction)
    xr = _input(name, input)
    y = _labels(name, target, xr)
    loss = -(logsigmoid(input) * y + logsigmoid(-input) * (1.0 - y))
    w = _const(name, "weight", weight, xr)
    if w is not None:
        loss = loss * w
    C = xr.shape[-1] if xr.ndim else 1
    return _reduce(F.sum(loss, -1) * (1.0 / C) if xr.ndim else loss, reduction)


def soft_margin_loss(input, target, reduction: str = "mean"):
    """log(1 + exp(-y x)) with y in {1, -1}."""
    name = "soft_margin_loss"
    _check_reduction(name, reduction)
    input = to_float32(input)  # float32 under xpnet.autocast (PyTorch's list)
    xr = _input(name, input)
    y = _labels(name, target, xr)
    return _reduce(-logsigmoid(input * y), reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin: float = 1.0, swap: bool = False, reduction: str = "mean"):
    """max(0, d(a, p) - d(a, n) + margin) (Balntas et al., 2016); ``d`` defaults to
    :func:`pairwise_distance`; ``swap`` uses min(d(a, n), d(p, n))."""
    name = "triplet_margin_with_distance_loss"
    _check_reduction(name, reduction)
    if margin <= 0:
        raise ValueError(f"{name}: margin must be greater than 0, got {margin}")
    d = pairwise_distance if distance_function is None else distance_function
    dpos, dneg = d(anchor, positive), d(anchor, negative)
    if swap:
        dneg = F.minimum(dneg, d(positive, negative))
    return _reduce(F.relu(dpos - dneg + margin), reduction)


def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2, eps: float = 1e-6,
                        swap: bool = False, reduction: str = "mean"):
    """:func:`triplet_margin_with_distance_loss` with the p-norm pairwise distance."""
    name = "triplet_margin_loss"
    anchor, positive, negative = (to_float32(v) for v in (anchor, positive, negative))  # as above
    shapes = {tuple(_raw(v).shape) for v in (anchor, positive, negative)}
    ndim = len(_raw(anchor).shape)
    if len({len(s) for s in shapes}) != 1 or ndim not in (1, 2):
        raise ValueError(f"{name}: anchor, positive and negative must all be (N, D) or (D,), got {sorted(shapes)}")
    return triplet_margin_with_distance_loss(
        anchor, positive, negative, margin=margin, swap=swap, reduction=reduction,
        distance_function=lambda a, b: pairwise_distance(a, b, p, eps))


def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
    """0.5 (log var + (input - target)^2 / var) (+ 0.5 log 2 pi if ``full``).  ``var`` has the
    input's shape, or one axis fewer (or 1 there): one variance per sample (homoscedastic).
    var is clamped below by ``eps`` for the loss, but its gradient passes unchanged (as PyTorch)."""
    name = "gaussian_nll_loss"
    _check_reduction(name, reduction)
    xr = _input(name, input)
    shape = tuple(xr.shape)
    vs = tuple(_raw(var).shape)
    if vs != shape:
        if vs == shape[:-1]:
            var = F.unsqueeze(var, -1)
        elif len(vs) != len(shape) or any(a not in (1, b) for a, b in zip(vs, shape)):
            raise ValueError(f"{name}: var has shape {vs}: expected {shape}, {shape[:-1]} or a shape that "
                             f"broadcasts to it (such as {shape[:-1] + (1,)})")
    vr = _raw(var)
    xp = B.namespace_of(vr)
    if bool(xp.any(vr < 0)):
        raise ValueError(f"{name}: var has negative entries")
    var = var + (B.clip(vr, eps, None) - vr)  # the clamp as a constant shift: the gradient passes
    t = _float_target(name, target, xr) if tuple(_raw(target).shape) == shape else _on(target, xr)
    d = input - t
    loss = (F.log(var) + d * d / var) * 0.5
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def _no_legacy(name, size_average, reduce):
    if size_average is not None or reduce is not None:
        raise ValueError(f"{name}: size_average and reduce are deprecated in PyTorch and not taken: pass "
                         "reduction='mean', 'sum' or 'none'")


def poisson_nll_loss(input, target, log_input: bool = True, full: bool = False, size_average=None, eps: float = 1e-8,
                     reduce=None, reduction: str = "mean"):
    """exp(x) - y x (``log_input``) or x - y log(x + eps); ``full`` adds Stirling's
    y log y - y + 0.5 log(2 pi y) where y > 1.  ``size_average`` and ``reduce`` (deprecated
    in PyTorch) keep their places for positional calls and must be None (ValueError)."""
    name = "poisson_nll_loss"
    _no_legacy(name, size_average, reduce)
    _check_reduction(name, reduction)
    input = to_float32(input)  # float32 under xpnet.autocast (PyTorch's list)
    xr = _input(name, input)
    t = _float_target(name, target, xr)
    if log_input:
        loss = F.exp(input) - t * input
    else:
        loss = input - t * F.log(input + eps)
    if full:
        tr = _raw(t)
        big = tr > 1
        safe = F.where(big, t, 1.0)
        stirling = safe * F.log(safe) - safe + F.log(safe * (2 * math.pi)) * 0.5
        loss = loss + F.where(big, stirling, 0.0)
    return _reduce(loss, reduction)
