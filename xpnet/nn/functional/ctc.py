"""Connectionist temporal classification loss (Graves et al., 2006), in log space.

The forward variables alpha over the extended label sequence (a blank between and around
the labels) are computed for the whole batch at once, one time step after another, with
differentiable operations; the gradient is the backward pass through that recursion
(which is the forward-backward algorithm's).  A log-sum-exp that guards its all -inf case
keeps impossible alignments at -inf with zero (not NaN) gradients, so ``zero_infinity``
can zero their loss and their gradient, as PyTorch does.
"""

from __future__ import annotations

from ... import backend as B
from ...autograd import functions as F
from ...autograd.autocast_state import to_float32
from ...autograd.tensor import Tensor, _raw
from .loss import _check_reduction, _input

__all__ = ["ctc_loss"]


def _lse(terms):
    """log(sum(exp(t))) of same-shape terms; -inf (with zero gradients) where all are -inf."""
    raw = [_raw(t) for t in terms]
    xp = B.namespace_of(raw[0])
    m = raw[0]
    for r in raw[1:]:
        m = xp.maximum(m, r)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    s = F.exp(terms[0] - m)
    for t in terms[1:]:
        s = s + F.exp(t - m)
    alive = _raw(s) > 0
    return F.where(alive, F.log(F.where(alive, s, 1.0)) + m, -xp.inf)


def _ints(v, who, what):
    """A 1-D sequence of Python ints from a tensor, array, list or int (one read from the device)."""
    if isinstance(v, int):
        return [v]
    if isinstance(v, Tensor):
        v = v.tolist()
    elif hasattr(v, "shape"):
        v = B.to_numpy(v).tolist()
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    if any(int(a) != a for a in v):
        raise TypeError(f"ctc_loss: {what} must be integers, got {v}")
    return [int(a) for a in v]


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank: int = 0, reduction: str = "mean",
             zero_infinity: bool = False):
    """The CTC loss of ``log_probs`` (T, N, C) (log-softmax outputs; or (T, C) unbatched).

    ``targets``: (N, S) padded label indices, or the N target sequences concatenated (1-D);
    ``input_lengths``, ``target_lengths``: (N,) lengths (ints, lists or tensors; read on the
    host, as PyTorch's CPU version does).  ``blank``: the blank class.  ``reduction='mean'``
    divides each loss by its target length (at least 1) and averages over the batch.
    ``zero_infinity``: impossible alignments give loss 0 and gradient 0 instead of inf.
    Returns (N,) for ``'none'``, else a scalar.
    """
    name = "ctc_loss"
    _check_reduction(name, reduction)
    log_probs = to_float32(log_probs)  # float32 under xpnet.autocast (PyTorch's list)
    lr = _input(name, log_probs)
    xp = B.namespace_of(lr)
    dev = B.array_api_compat.device(lr)
    unbatched = lr.ndim == 2
    if unbatched:
        log_probs = F.unsqueeze(log_probs, 1)
        lr = _raw(log_probs)
    if lr.ndim != 3:
        raise ValueError(f"{name}: log_probs must be (T, N, C) or (T, C), got shape {tuple(_raw(log_probs).shape)}")
    T, N, C = lr.shape
    if not 0 <= blank < C:
        raise ValueError(f"{name}: blank={blank} is not a class: expected 0 <= blank < {C}")
    in_len = _ints(input_lengths, name, "input_lengths")
    tg_len = _ints(target_lengths, name, "target_lengths")
    if len(in_len) != N or len(tg_len) != N:
        raise ValueError(f"{name}: expected {N} input_lengths and target_lengths, got {len(in_len)} and {len(tg_len)}")
    if any(not 0 <= n <= T for n in in_len):
        raise ValueError(f"{name}: input_lengths {in_len} must lie in [0, {T}]")
    tr = _raw(targets)
    if not hasattr(tr, "shape"):
        tr = B.as_array(tr, "int64", B.backend_of(lr))
    tr = B.as_array(tr, "int64", B.backend_of(lr)) if B.namespace_of(tr) is not xp else xp.astype(tr, xp.int64)
    if unbatched and tr.ndim == 1 and len(tg_len) == 1 and tr.shape[0] >= tg_len[0]:
        tr = tr[None, :]
    S = max(tg_len) if tg_len else 0
    if tr.ndim == 1:  # concatenated: pad to (N, S)
        if tr.shape[0] != sum(tg_len):
            raise ValueError(f"{name}: 1-D targets have {tr.shape[0]} labels but target_lengths sum to {sum(tg_len)}")
        starts = [sum(tg_len[:n]) for n in range(N)]
        index = [starts[n] + min(k, max(tg_len[n] - 1, 0)) for n in range(N) for k in range(S)]
        tr = xp.reshape(xp.take(tr, B.as_array(index, "int64", B.backend_of(lr)), axis=0), (N, S)) if S and \
            tr.shape[0] else xp.zeros((N, S), dtype=xp.int64, device=dev)
    elif tr.ndim != 2 or tr.shape[0] != N or tr.shape[1] < S:
        raise ValueError(f"{name}: targets must be (N, S) with S >= max(target_lengths) = {S}, or 1-D "
                         f"(concatenated), got shape {tuple(tr.shape)}")
    tr = tr[:, :S]
    L = 2 * S + 1
    # the extended labels: blank, l1, blank, l2, ..., blank (N, L)
    pos = xp.arange(L, dtype=xp.int64, device=dev)
    odd = (pos % 2) == 1
    if S:
        labels = xp.take(tr, B.clip(pos // 2, 0, S - 1), axis=1)  # (N, L): l_(s // 2)
    else:
        labels = xp.zeros((N, L), dtype=xp.int64, device=dev)
    ext = xp.where(odd[None, :], labels, xp.full((N, L), blank, dtype=xp.int64, device=dev))
    lens = B.as_array(tg_len, "int64", B.backend_of(lr))
    inside = pos[None, :] < (2 * lens[:, None] + 1)  # positions of each sample's extended sequence
    prev2 = xp.concat([xp.full((N, 2), -1, dtype=xp.int64, device=dev), ext[:, :-2]], axis=1)
    skip = odd[None, :] & (ext != prev2) & inside  # alpha may come from s - 2 (a different label)
    neg = xp.full((N, L), -xp.inf, dtype=lr.dtype, device=dev)
    emit = F.take_along_axis(log_probs, xp.broadcast_to(ext[None, :, :], (T, N, L)), 2)  # (T, N, L)
    start = (pos[None, :] == 0) | ((pos[None, :] == 1) & (lens[:, None] > 0))
    alpha = F.where(start, emit[0], neg)
    ninf1 = xp.full((N, 1), -xp.inf, dtype=lr.dtype, device=dev)
    ninf2 = xp.full((N, 2), -xp.inf, dtype=lr.dtype, device=dev)
    tlen = B.as_array(in_len, "int64", B.backend_of(lr))
    for t in range(1, max(in_len) if in_len else 0):
        a1 = F.concat([ninf1, alpha[:, :-1]], 1)
        a2 = F.where(skip, F.concat([ninf2, alpha[:, :-2]], 1), neg)
        new = F.where(inside, _lse([alpha, a1, a2]) + emit[t], neg)
        alpha = F.where((tlen > t)[:, None], new, alpha)
    last = xp.reshape(2 * lens, (N, 1))
    end1 = F.take_along_axis(alpha, last, 1)
    end2 = F.where((lens > 0)[:, None], F.take_along_axis(alpha, B.clip(last - 1, 0, None), 1), ninf1)
    loss = -F.reshape(_lse([end1, end2]), (N,))
    empty = xp.asarray([n == 0 for n in in_len], device=dev)
    if bool(xp.any(empty)):  # no frames: loss 0 for an empty target, inf otherwise
        loss = F.where(empty, xp.where(lens == 0, xp.zeros((N,), dtype=lr.dtype, device=dev),
                                       xp.full((N,), xp.inf, dtype=lr.dtype, device=dev)), loss)
    if zero_infinity:
        loss = F.where(xp.isinf(_raw(loss)), 0.0, loss)
    if reduction == "none":
        return F.reshape(loss, ()) if unbatched else loss
    if reduction == "sum":
        return F.sum(loss)
    return F.mean(loss / xp.astype(B.clip(lens, 1, None), lr.dtype))
