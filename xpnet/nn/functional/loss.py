"""Loss functions (PyTorch's names and semantics) and the zero-one metric.

Every loss takes ``reduction`` = ``"mean"`` | ``"sum"`` | ``"none"`` (and
``kl_div`` also ``"batchmean"``).  Prediction and target must have the same
shape (except class indices, which drop the class axis): broadcasting a loss
is almost always a bug, so it is an error here.

Checks that need the data look at a few scalars per call (``xpnet.backend.require``):
at once on the CPU; on an accelerator they are queued on the device and raised
at the next read back to the host, so that a training step never waits for one:

* ``cross_entropy``/``nll_loss``/``zero_one_loss`` with class indices:
  min/max of the indices (CuPy would wrap and JAX clip out-of-range ones);
* ``binary_cross_entropy``: min/max of input and target, which must lie in [0, 1];
* ``msle_loss``: min of input and target, which must be > -1;
* ``hinge_loss``, ``squared_hinge_loss``, ``exponential_loss`` and
  ``zero_one_loss`` on scores: whether every label is -1 or +1.

The other losses read nothing.  Softmax cross-entropy is one fused
operation (:class:`_CrossEntropyIndices`, :class:`_CrossEntropyProbs`).
"""

from __future__ import annotations

import math

from ... import backend as B
from ...autograd import functions as F
from ...autograd.tensor import Function, Tensor, _raw
from .activation import Softmax
from ...autograd.autocast_state import to_float32

__all__ = [
    "mse_loss", "l1_loss", "msle_loss", "mape_loss", "huber_loss", "smooth_l1_loss",
    "log_cosh_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "cross_entropy", "nll_loss", "kl_div", "hinge_loss", "squared_hinge_loss",
    "exponential_loss", "zero_one_loss",
]

REDUCTIONS = ("mean", "sum", "none")

# ------------------------------------------------------------------ helpers


def _check_reduction(name, reduction, allowed=REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"{name}: unknown reduction {reduction!r}: expected one of "
                         f"{', '.join(repr(r) for r in allowed)}")


def _input(name, x, floating=True):
    """The raw array of the prediction ``x`` (a tensor or an array)."""
    d = _raw(x)
    if not hasattr(d, "shape"):
        raise TypeError(f"{name}: input must be a tensor or an array, got {type(x).__name__}")
    if floating and not B.isdtype(B.namespace_of(d), d.dtype, "real floating"):
        raise TypeError(f"{name}: input must be floating point, got {B.dtype_name(d.dtype)}")
    return d


def _on(v, xr):
    """``v`` (tensor, array of any library, list or number) as a tensor or array on ``xr``'s backend."""
    if isinstance(v, Tensor):
        return v
    if hasattr(v, "shape") and B.array_api_compat.is_array_api_obj(v) and B.namespace_of(v) is B.namespace_of(xr):
        return v
    return B.as_array(v, None, B.backend_of(xr))


def _like(v, xr):
    """``v`` converted to ``xr``'s dtype (differentiably when it is a tensor)."""
    d = _raw(v)
    if d.dtype == xr.dtype:
        return v
    return F.astype(v, xr.dtype) if isinstance(v, Tensor) else B.namespace_of(xr).astype(d, xr.dtype)


def _const(name, what, v, xr, shape=None):
    """A weight-like constant (no gradient) as a raw array on ``xr``'s backend and dtype.

    ``shape`` is the exact shape required; without it ``v`` must broadcast to ``xr``'s shape.
    """
    if v is None:
        return None
    v = _like(_on(_raw(v), xr), xr)
    vs, xs = tuple(v.shape), tuple(xr.shape)
    if shape is not None:
        if vs != tuple(shape):
            raise ValueError(f"{name}: {what} has shape {vs}, expected {tuple(shape)}")
    elif len(vs) > len(xs) or any(a not in (1, b) for a, b in zip(vs[::-1], xs[::-1])):
        raise ValueError(f"{name}: {what} of shape {vs} does not broadcast to the input's shape {xs}")
    return v


def _same_shape(name, xr, t):
    xs, ts = tuple(xr.shape), tuple(t.shape)
    if ts != xs:
        raise ValueError(f"{name}: input shape {xs} and target shape {ts} differ: expected the same "
                         "shape (a loss that broadcasts, e.g. (N, 1) against (N,), is usually a bug)")


def _pair(name, input, target, probabilities=False):
    """Prediction and target, checked (same shape; a floating target if ``probabilities``) and made
    alike: the target on the input's backend and in its dtype, and both tensors if either is (so
    that backward rules always see operands of one kind).  float32 under ``xpnet.autocast``."""
    input = to_float32(input)
    xr = _input(name, input)
    t = _on(target, xr)
    d = _raw(t)
    if probabilities and not B.namespace_of(d).isdtype(d.dtype, "real floating"):
        raise TypeError(f"{name}: target must hold floating-point probabilities, got "
                        f"{B.dtype_name(d.dtype)}: convert it with .astype('float32')")
    _same_shape(name, xr, d)
    t = _like(t, xr)
    if isinstance(t, Tensor) != isinstance(input, Tensor):
        input, t = (v if isinstance(v, Tensor) else Tensor(v) for v in (input, t))
    return input, t


def _pm1_labels(name, target, xr):
    """Labels in {-1, +1} with the input's shape, as a raw array of its dtype (a deferred check on accelerators)."""
    t = _raw(_on(target, xr))
    xp = B.namespace_of(t)
    if not (xp.isdtype(t.dtype, "integral") or xp.isdtype(t.dtype, "real floating")):
        raise TypeError(f"{name}: labels must be -1 or +1 as integers or floats, got {B.dtype_name(t.dtype)}")
    _same_shape(name, xr, t)
    t = _like(t, xr)
    if _numel(t):
        def pm1(ok):
            if not ok:
                raise ValueError(f"{name}: labels must be -1 or +1, found other values "
                                 "(for 0/1 labels pass 2 * y - 1)")
        B.require(xp.reshape(xp.astype(xp.all((t == 1) | (t == -1)), xp.int64), (1,)), pm1)
    return t


def _numel(a):
    return math.prod(a.shape)


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "sum" or _numel(_raw(loss)):
        return F.sum(loss) if reduction == "sum" else F.mean(loss)
    return F.sum(loss) * math.nan  # the mean of nothing, as PyTorch


# --------------------------------------------------------------- regression


def mse_loss(input, target, reduction: str = "mean"):
    """Mean squared error ``(input - target)^2``."""
    _check_reduction("mse_loss", reduction)
    input, t = _pair("mse_loss", input, target)
    d = input - t
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction: str = "mean"):
    """Mean absolute error ``|input - target|`` (gradient 0 where they are equal)."""
    _check_reduction("l1_loss", reduction)
    input, t = _pair("l1_loss", input, target)
    return _reduce(F.abs(input - t), reduction)


def msle_loss(input, target, reduction: str = "mean"):
    """Mean squared logarithmic error ``(log1p(input) - log1p(target))^2``.

    Input and target must be > -1: checked on every call (deferred on accelerators).
    """
    name = "msle_loss"
    _check_reduction(name, reduction)
    input, t = _pair(name, input, target)
    xr = _raw(input)
    if _numel(xr):
        xp = B.namespace_of(xr)
        def above_minus_one(lo_x, lo_t):
            for what, lo in (("input", lo_x), ("target", lo_t)):
                if not lo > -1:
                    raise ValueError(f"{name}: {what} must be > -1 (log1p is undefined below), "
                                     f"found a minimum of {lo:g}")
        B.require(xp.stack([xp.min(xr), xp.min(_raw(t))]), above_minus_one)
    d = F.log1p(input) - F.log1p(t)
    return _reduce(d * d, reduction)


def mape_loss(input, target, reduction: str = "mean", eps: float = 1e-8):
    """Mean absolute percentage error ``100 * |target - input| / max(|target|, eps)``.

    ``eps`` (default 1e-8) keeps zero targets from dividing by zero: there
    the loss is ``100 * |input| / eps``, large but finite.
    """
    name = "mape_loss"
    _check_reduction(name, reduction)
    if not eps > 0:
        raise ValueError(f"{name}: eps must be > 0, got {eps}")
    input, t = _pair(name, input, target)
    return _reduce(F.abs(t - input) / F.maximum(F.abs(t), eps) * 100.0, reduction)


def _huber(name, input, target, reduction, delta, scale):
    _check_reduction(name, reduction)
    input, t = _pair(name, input, target)
    d = input - t
    ad = F.abs(d)
    small = _raw(ad) < delta
    return _reduce(F.where(small, d * d * (0.5 * scale), (ad - 0.5 * delta) * (delta * scale)), reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0):
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - delta / 2)``, with ``d = input - target``."""
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    return _huber("huber_loss", input, target, reduction, delta, 1.0)


def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0):
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - beta / 2`` (``beta=0``: L1)."""
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    if beta == 0:
        _check_reduction("smooth_l1_loss", reduction)
        input, t = _pair("smooth_l1_loss", input, target)
        return _reduce(F.abs(input - t), reduction)
    return _huber("smooth_l1_loss", input, target, reduction, beta, 1.0 / beta)


class _LogCosh(Function):
    """log(cosh(d)) = |d| + log1p(exp(-2|d|)) - log 2, without overflow; derivative tanh(d)."""

    def forward(self, xp, d):
        a = xp.abs(d)
        return a + xp.log1p(xp.exp(-2.0 * a)) - math.log(2.0)

    def backward(self, g, y, d):
        return g * F.tanh(d),


def log_cosh_loss(input, target, reduction: str = "mean"):
    """``log(cosh(input - target))``: quadratic near 0, linear (slope 1) far away."""
    _check_reduction("log_cosh_loss", reduction)
    input, t = _pair("log_cosh_loss", input, target)
    return _reduce(_LogCosh()(input - t), reduction)


# ------------------------------------------------------ binary classification


def _clamped_log(p):
    """log(p) clamped below at -100 as PyTorch's BCE does; log never sees 0 (differentiable)."""
    pos = _raw(p) > 0
    return F.where(pos, F.clip(F.log(F.where(pos, p, 1.0)), -100.0, None), -100.0)


def _clamped_log1m(p):
    """log1p(-p) clamped below at -100; log1p never sees -1 (differentiable)."""
    below = _raw(p) < 1
    return F.where(below, F.clip(F.log1p(-F.where(below, p, 0.0)), -100.0, None), -100.0)


class _BinaryCrossEntropy(Function):
    """-w (t log p + (1 - t) log(1 - p)) with both logs clamped at -100; PyTorch's gradient
    ``w (p - t) / max(p (1 - p), 1e-12)``."""

    def __init__(self, weight):
        self.w = weight

    def forward(self, xp, p, t):
        loss = (t - 1.0) * _clamped_log1m(p) - t * _clamped_log(p)
        return loss if self.w is None else loss * self.w

    def backward(self, g, y, p, t):
        gw = g if self.w is None else g * self.w
        gp = gw * (p - t) / F.maximum(p * (1.0 - p), 1e-12) if self.needs[0] else None
        gt = gw * (_clamped_log1m(p) - _clamped_log(p)) if self.needs[1] else None
        return gp, gt


def binary_cross_entropy(input, target, weight=None, reduction: str = "mean"):
    """Binary cross-entropy on probabilities ``input`` in [0, 1] (logs clamped at -100).

    Input and target must lie in [0, 1]: checked on every call (deferred on accelerators).
    ``weight`` rescales each element (it broadcasts to the input's shape).
    """
    name = "binary_cross_entropy"
    _check_reduction(name, reduction)
    input, t = _pair(name, input, target, probabilities=True)
    xr = _raw(input)
    w = _const(name, "weight", weight, xr)
    if _numel(xr):
        xp = B.namespace_of(xr)
        tr = _raw(t)
        def probabilities(lo, hi, tlo, thi):
            for what, a, b in (("input", lo, hi), ("target", tlo, thi)):
                if not (a >= 0 and b <= 1):
                    raise ValueError(f"{name}: {what} must hold probabilities in [0, 1], found values in "
                                     f"[{a:g}, {b:g}]" + (": for logits use binary_cross_entropy_with_logits"
                                                            if what == "input" else ""))
        B.require(xp.stack([xp.min(xr), xp.max(xr), xp.min(tr), xp.max(tr)]), probabilities)
    return _reduce(_BinaryCrossEntropy(w)(input, t), reduction)


def _softplus(x):
    """log(1 + exp(x)) without overflow (differentiable)."""
    return F.log1p(F.exp(-F.abs(x))) + F.relu(x)


class _BCEWithLogits(Function):
    """(1 - t) x + (1 + (pw - 1) t) softplus(-x), times w: sigmoid and BCE in one stable step."""

    def __init__(self, weight, pos_weight):
        self.w, self.pw = weight, pos_weight

    def forward(self, xp, x, t):
        sp = xp.log1p(xp.exp(-xp.abs(x))) + B.clip(-x, 0.0, None)  # softplus(-x)
        lw = 1.0 if self.pw is None else 1.0 + (self.pw - 1.0) * t
        loss = (1.0 - t) * x + lw * sp
        return loss if self.w is None else loss * self.w

    def backward(self, g, y, x, t):
        gw = g if self.w is None else g * self.w
        gx = gt = None
        if self.needs[0]:
            if self.pw is None:
                gx = gw * (F.sigmoid(x) - t)
            else:
                gx = gw * ((t * (self.pw - 1.0) + 1.0) * F.sigmoid(x) - t * self.pw)
        if self.needs[1]:
            gt = -(gw * x) if self.pw is None else gw * (_softplus(-x) * (self.pw - 1.0) - x)
        return gx, gt


def binary_cross_entropy_with_logits(input, target, weight=None, reduction: str = "mean", pos_weight=None):
    """Sigmoid + binary cross-entropy on logits, computed stably.

    ``weight`` rescales each element; ``pos_weight`` (e.g. shape (C,) for
    input (N, C)) weighs the positive term of each class.  Both broadcast to
    the input's shape.
    """
    name = "binary_cross_entropy_with_logits"
    _check_reduction(name, reduction)
    input, t = _pair(name, input, target, probabilities=True)
    xr = _raw(input)
    w = _const(name, "weight", weight, xr)
    pw = _const(name, "pos_weight", pos_weight, xr)
    return _reduce(_BCEWithLogits(w, pw)(input, t), reduction)


# ---------------------------------------------------- multi-class (softmax)


def _class_axis(name, xr):
    """The class axis (1, or 0 for an unbatched input (C,)) and the number of classes."""
    if xr.ndim == 0:
        raise ValueError(f"{name}: input must have a class axis: shape (C,), (N, C) or (N, C, d1, ...), got shape ()")
    axis = 1 if xr.ndim >= 2 else 0
    return axis, xr.shape[axis]


def _class_indices(name, t, xr, axis, C, ignore_index=None):
    """Integer class indices, range-checked on every backend (a deferred check on accelerators).

    Returns ``(y, kept)``: ``y`` as int64 with targets equal to
    ``ignore_index`` replaced by class 0, and ``kept`` (bool) marking the
    others (``None`` without an ``ignore_index``).
    """
    xp = B.namespace_of(xr)
    y = _raw(t)
    want = tuple(xr.shape[:axis] + xr.shape[axis + 1:])
    if not B.isdtype(xp, y.dtype, "integral"):
        raise TypeError(f"{name}: target of shape {tuple(y.shape)} is read as class indices, which must be "
                        f"integers, got {B.dtype_name(y.dtype)}: convert with .astype('int64')"
                        + (f" (or pass class probabilities of the input's shape {tuple(xr.shape)})"
                           if name == "cross_entropy" else ""))
    if tuple(y.shape) != want:
        raise ValueError(f"{name}: input shape {tuple(xr.shape)} and target shape {tuple(y.shape)} do not match: "
                         f"expected class indices of shape {want}")
    # read on the CPU (of the batch as given: a compiled step guards on it); None on an accelerator
    bounds = B.index_bounds(y)
    if y.dtype != xp.int64:
        y = xp.astype(y, xp.int64)
    what = f"{name}: target class" + ("" if ignore_index is None else f" (ignore_index={ignore_index})")
    if ignore_index is None or (bounds is not None and not bounds[0] <= ignore_index <= bounds[1]):
        return B.check_indices(y, C, what, bounds=bounds), None  # nothing to ignore
    kept = y != ignore_index
    y = xp.where(kept, y, xp.zeros_like(y))
    return B.check_indices(y, C, what), kept


def _target_weights(xp, kept, y, w, dtype):
    """``(wy, kf)``: the class weight of each target, 0 where ignored, and ``kept`` as 0/1;
    ``None`` stands for all ones (no ``weight``, nothing ignored)."""
    kf = None if kept is None else xp.astype(kept, dtype)
    if w is None:
        return kf, kf
    wy = xp.reshape(xp.take(w, xp.reshape(y, (-1,))), tuple(y.shape))
    return (wy if kf is None else wy * kf), kf


def _safe_denominator(xp, denom):
    """``(safe, nothing)``: the mean's denominator with 0 replaced by 1, and where it was 0
    (None when that cannot happen).  A mean over nothing (all targets ignored, all weights 0)
    is NaN, as PyTorch, but its gradient is exactly 0: the value is chosen by ``where``,
    never computed as 0/0, so that no NaN reaches the gradient."""
    if not hasattr(denom, "shape"):  # a count of targets: 0 only for an empty input, with no gradient to spoil
        return denom, None
    nothing = denom == 0
    return xp.where(nothing, xp.ones_like(denom), denom), nothing


def _mean_over(total, denom):
    """``total / denom`` (a differentiable total), NaN when ``denom`` is 0, with a zero gradient then."""
    xp = B.namespace_of(_raw(total))
    safe, nothing = _safe_denominator(xp, denom)
    if nothing is None:
        return total / safe if safe else total * math.nan
    return total / safe + xp.where(nothing, xp.full_like(safe, math.nan), xp.zeros_like(safe))


def _count(wy, y):
    """The mean's denominator: the summed target weights (the number of targets when all are 1)."""
    return math.prod(y.shape) if wy is None else B.namespace_of(wy).sum(wy)


def _onehot(xp, y, C, axis):
    """``[c == y]`` (bool) with the class axis inserted at ``axis``, by comparison (no scatter)."""
    classes = xp.arange(C, dtype=y.dtype, device=B.array_api_compat.device(y))
    if axis == y.ndim:  # the class axis last: (..., C)
        return y[..., None] == classes
    shape = tuple(y.shape[:axis]) + (1,) + tuple(y.shape[axis:])
    return xp.reshape(y, shape) == xp.reshape(classes, tuple(C if i == axis else 1 for i in range(y.ndim + 1)))


class _SoftmaxCrossEntropy(Function):
    """What the two fused cross-entropies share: logsumexp along ``axis``
    (keeping ``exp(x - max)`` for the softmax of the backward pass), the
    reduction, and the upstream gradient brought back to the input's rank."""

    def __init__(self, axis, reduction, wb, denom=None):
        self.axis, self.reduction, self.wb, self.denom = axis, reduction, wb, denom

    def _logsumexp(self, xp, x):
        m = xp.max(x, axis=self.axis, keepdims=True)
        self.e = xp.exp(x - m)
        self.se = xp.sum(self.e, axis=self.axis, keepdims=True)
        return xp.squeeze(xp.log(self.se) + m, axis=self.axis)

    def _reduced(self, xp, loss):
        if self.reduction == "none":
            return loss
        total = xp.sum(loss)
        if self.reduction == "sum":
            return total
        self.safe, nothing = _safe_denominator(xp, self.denom)
        if nothing is None:
            return total / self.safe if self.safe else total * math.nan
        return xp.where(nothing, xp.full_like(total, math.nan), total / self.safe)

    def _upstream(self, g):
        """``g`` with the class axis back (as size 1), divided by the mean's denominator (a
        denominator of 0, every target ignored, divides by 1: the gradient is exactly 0, as PyTorch)."""
        if self.reduction == "none":
            return F.unsqueeze(g, self.axis)
        if self.reduction != "mean" or not (hasattr(self.safe, "shape") or self.safe):  # no bool() of an array:
            return g                                                                   # that would sync a GPU
        return g / self.safe

    def _softmax(self, x):
        """softmax(x), differentiable, from the forward pass's exponentials."""
        return Softmax(self.axis, self.e / self.se)(x)


class _CrossEntropyIndices(_SoftmaxCrossEntropy):
    """Log-softmax + NLL on class indices in one step.

    With ``a_i = (1 - eps) w_{y_i}``, ``b_i = eps / C`` (both 0 where the
    target is ignored) and ``s_i = a_i + b_i sum_c w_c``:
    ``loss_i = s_i logsumexp(x_i) - a_i x_{i,y_i} - b_i sum_c w_c x_ic`` and
    ``d loss_i / d x_i = s_i softmax(x_i) - a_i onehot(y_i) - b_i w``; without
    smoothing (``b = None``) ``s = a`` and the gradient is ``a (softmax - onehot)``.
    ``a``, ``b`` and ``s`` are per-target arrays or plain numbers (``a = None``: 1,
    the plain case).  The backward rule uses the differentiable softmax, so it
    can be differentiated again.
    """

    def __init__(self, axis, reduction, wb, denom, y, a=None, b=None, s=None):
        super().__init__(axis, reduction, wb, denom)
        self.y, self.a, self.b, self.s = y, a, b, s

    def _per_target(self, xp, v):
        """A per-target factor broadcast against the input (class axis restored)."""
        return xp.expand_dims(v, axis=self.axis) if hasattr(v, "shape") else v

    def forward(self, xp, x):
        ax = self.axis
        lse = self._logsumexp(xp, x)
        self.hit = _onehot(xp, self.y, x.shape[ax], ax)
        picked = xp.sum(xp.where(self.hit, x, 0.0), axis=ax)  # x at the target (no 0 * inf)
        if self.b is not None:
            spread = xp.sum(x if self.wb is None else x * self.wb, axis=ax)
            return self._reduced(xp, lse * self.s - picked * self.a - spread * self.b)
        loss = lse - picked
        return self._reduced(xp, loss if self.a is None else loss * self.a)

    def backward(self, g, y, x):
        if not self.needs[0]:
            return None,
        xp = self.xp
        g = self._upstream(g)
        hit = xp.astype(self.hit, _raw(x).dtype)
        if self.b is None:
            gx = self._softmax(x) - hit
            return gx * g if self.a is None else gx * (g * self._per_target(xp, self.a)),
        gx = self._softmax(x) * (g * self._per_target(xp, self.s)) - (g * self._per_target(xp, self.a)) * hit
        gb = g * self._per_target(xp, self.b)
        return gx - (gb if self.wb is None else gb * self.wb),


class _CrossEntropyProbs(_SoftmaxCrossEntropy):
    """Log-softmax + cross-entropy on class probabilities ``t`` (the second input) in one step.

    With ``q = w ((1 - eps) t + eps / C)`` and ``s = sum_c q``:
    ``loss = s logsumexp(x) - sum_c q x``, ``d loss / dx = s softmax(x) - q``
    and ``d loss / dt = -(1 - eps) w log_softmax(x)``.
    """

    def __init__(self, axis, reduction, wb, eps):
        super().__init__(axis, reduction, wb)
        self.eps = eps

    def _weights(self, t):
        """``q`` and ``s`` (class axis kept) for probabilities ``t`` (raw, or a tensor for double backprop)."""
        C = _raw(t).shape[self.axis]
        q = t * (1.0 - self.eps) + self.eps / C if self.eps else t
        if self.wb is not None:
            q = q * self.wb
        return q, F.sum(q, self.axis, keepdims=True)

    def forward(self, xp, x, t):
        self.q, self.s = self._weights(t)
        self.denom = math.prod(x.shape) / x.shape[self.axis]
        loss = self._logsumexp(xp, x) * xp.squeeze(self.s, axis=self.axis) - xp.sum(self.q * x, axis=self.axis)
        return self._reduced(xp, loss)

    def backward(self, g, y, x, t):
        g = self._upstream(g)
        q, s = self._weights(t) if isinstance(t, Tensor) else (self.q, self.s)
        gx = g * (self._softmax(x) * s - q) if self.needs[0] else None
        gt = None
        if self.needs[1]:
            gt = g * (x - F.logsumexp(x, self.axis, keepdims=True)) * (self.eps - 1.0)
            if self.wb is not None:
                gt = gt * self.wb
        return gx, gt


def cross_entropy(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0):
    """Softmax cross-entropy of logits ``input`` (C,), (N, C) or (N, C, d1, ...), as PyTorch.

    ``target`` holds class indices (integers, the input's shape without the
    class axis; range-checked) or class probabilities
    (floating, the input's shape).  ``weight`` (C,) weighs the classes;
    targets equal to ``ignore_index`` add nothing (indices only);
    ``label_smoothing`` mixes the target with the uniform distribution.  With
    indices, ``"mean"`` divides by the summed weight of the kept targets.
    Either way it is one fused operation.
    """
    input = to_float32(input)  # under xpnet.autocast
    name = "cross_entropy"
    _check_reduction(name, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    xr = _input(name, input)
    xp = B.namespace_of(xr)
    axis, C = _class_axis(name, xr)
    t = _on(target, xr)
    w = _const(name, "weight", weight, xr, shape=(C,))
    wb = None if w is None else xp.reshape(w, tuple(C if i == axis else 1 for i in range(xr.ndim)))
    if tuple(_raw(t).shape) == tuple(xr.shape):
        return _CrossEntropyProbs(axis, reduction, wb, label_smoothing)(*_pair(name, input, t, probabilities=True))
    y, kept = _class_indices(name, t, xr, axis, C, ignore_index)
    wy, kf = _target_weights(xp, kept, y, w, xr.dtype)
    denom = _count(wy, y) if reduction == "mean" else None
    eps = label_smoothing
    if not eps:
        return _CrossEntropyIndices(axis, reduction, wb, denom, y, wy)(input)
    a = (1.0 - eps) if wy is None else wy * (1.0 - eps)
    b = eps / C if kf is None else kf * (eps / C)
    s = a + b * (C if w is None else xp.sum(w))
    return _CrossEntropyIndices(axis, reduction, wb, denom, y, a, b, s)(input)


def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean"):
    """Negative log-likelihood ``-w_y input[y]`` of log-probabilities ``input`` (C,), (N, C) or (N, C, d1, ...).

    ``target`` holds class indices (range-checked);
    ``weight`` (C,) weighs the classes; ``ignore_index`` targets add nothing;
    ``"mean"`` divides by the summed weight of the kept targets.
    """
    input = to_float32(input)  # under xpnet.autocast
    name = "nll_loss"
    _check_reduction(name, reduction)
    xr = _input(name, input)
    xp = B.namespace_of(xr)
    axis, C = _class_axis(name, xr)
    w = _const(name, "weight", weight, xr, shape=(C,))
    y, kept = _class_indices(name, _on(target, xr), xr, axis, C, ignore_index)
    wy, _ = _target_weights(xp, kept, y, w, xr.dtype)
    hit = _onehot(xp, y, C, axis)
    q = xp.astype(hit, xr.dtype) if wy is None else xp.where(hit, xp.expand_dims(wy, axis=axis), 0.0)  # w_y at y
    loss = -F.sum(input * q, axis)
    if reduction == "mean":
        return _mean_over(F.sum(loss), _count(wy, y))
    return _reduce(loss, reduction)


class _XLogX(Function):
    """``t log t`` with ``0 log 0 = 0`` (``torch.xlogy(t, t)``).  The derivative ``log t + 1`` is
    NaN at ``t = 0``, as PyTorch's (its xlogy rule adds ``t / t``): a zero target's gradient is
    NaN in both."""

    def forward(self, xp, t):
        zero = t == 0
        return xp.where(zero, xp.zeros_like(t), t * xp.log(xp.where(zero, xp.ones_like(t), t)))

    def backward(self, g, y, t):
        zero = _raw(t) == 0
        return g * F.where(zero, math.nan, F.log(F.where(zero, 1.0, t)) + 1.0),


def kl_div(input, target, reduction: str = "mean", log_target: bool = False):
    """Kullback-Leibler divergence ``target (log target - input)`` with ``input`` log-probabilities,
    elementwise for any shape (0-d included); ``target`` of the input's shape.

    ``log_target=True`` reads ``target`` as log-probabilities too.
    ``"batchmean"`` divides the sum by the batch size (the size of the first axis; 1 for a 0-d
    input) (the mathematically right KL); ``"mean"`` divides by the number of elements, as
    PyTorch.  Forward and gradients are PyTorch's, also where the target is 0 (``0 log 0 = 0``;
    the target's gradient there is NaN, as PyTorch's).
    """
    name = "kl_div"
    _check_reduction(name, reduction, REDUCTIONS + ("batchmean",))
    input, t = _pair(name, input, target, probabilities=True)
    xr = _raw(input)
    if log_target:
        loss = F.exp(t) * (t - input)
    else:
        loss = _XLogX()(t) - t * input  # PyTorch's xlogy(target, target) - target * input
    if reduction == "batchmean":
        return F.sum(loss) / (xr.shape[0] if xr.ndim else 1)
    return _reduce(loss, reduction)


# ------------------------------------------------------ margin (labels ±1)


def hinge_loss(input, target, reduction: str = "mean"):
    """Hinge loss ``max(0, 1 - y f)`` of scores ``f`` and labels ``y`` in {-1, +1} (checked)."""
    _check_reduction("hinge_loss", reduction)
    y = _pm1_labels("hinge_loss", target, _input("hinge_loss", input))
    return _reduce(F.relu(1.0 - input * y), reduction)


def squared_hinge_loss(input, target, reduction: str = "mean"):
    """``max(0, 1 - y f)^2`` with labels ``y`` in {-1, +1} (checked)."""
    _check_reduction("squared_hinge_loss", reduction)
    y = _pm1_labels("squared_hinge_loss", target, _input("squared_hinge_loss", input))
    h = F.relu(1.0 - input * y)
    return _reduce(h * h, reduction)


def exponential_loss(input, target, reduction: str = "mean"):
    """``exp(-y f)`` (AdaBoost's loss) with labels ``y`` in {-1, +1} (checked)."""
    _check_reduction("exponential_loss", reduction)
    y = _pm1_labels("exponential_loss", target, _input("exponential_loss", input))
    return _reduce(F.exp(-(input * y)), reduction)


# ------------------------------------------------------------------ metric


def zero_one_loss(pred, target, reduction: str = "mean"):
    """Fraction misclassified (not differentiable; no graph).

    Either logits ``pred`` (C,), (N, C) or (N, C, d1, ...) with integer class
    indices (the prediction is the argmax; indices range-checked), or scores
    with labels in {-1, +1} of the same shape (the prediction is +1 where
    ``pred >= 0``, else -1; labels checked).
    ``reduction="sum"`` counts the errors, ``"none"`` gives 1.0 per error.
    """
    name = "zero_one_loss"
    _check_reduction(name, reduction)
    xr = _input(name, pred, floating=False)
    xp = B.namespace_of(xr)
    if xp.isdtype(xr.dtype, "bool"):
        raise TypeError(f"{name}: pred must be scores or logits, got bool")
    t = _raw(_on(target, xr))
    dtype = xr.dtype if xp.isdtype(xr.dtype, "real floating") else xp.float32
    scores_like = xr.ndim >= 2 and xr.shape[1] == 1 and xp.isdtype(t.dtype, "real floating")  # (N, 1) vs (N,)
    if tuple(t.shape) == tuple(xr.shape) or scores_like:
        y = _pm1_labels(name, t, xr)
        wrong = (xr >= 0) != (y > 0)
    else:
        axis, C = _class_axis(name, xr)
        y, _ = _class_indices(name, t, xr, axis, C)
        wrong = xp.argmax(xr, axis=axis) != y
    out = xp.astype(wrong, dtype)
    if reduction != "none":
        out = xp.sum(out) if reduction == "sum" else xp.mean(out)
    return Tensor(out) if isinstance(pred, Tensor) else out
