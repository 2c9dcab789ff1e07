"""The recurrence of one RNN/GRU/LSTM layer and direction as one differentiable operation.

:class:`RecurrentScan` takes the input projections of all time steps at once
(``xw = x W_ih^T + b_ih``, one matrix product over the whole sequence, as cuDNN
does) and runs the time loop on raw arrays: per step one matrix product with
``W_hh`` and a few elementwise operations.  Its backward rule is written by hand
(back-propagation through time, the formulas below) and applies the gradient of
``W_hh`` as one matrix product over all steps.  A graph holds one node per
layer and direction instead of about fifteen per time step.

Gradients of gradients (``create_graph=True``) re-run the recurrence with the
elementary differentiable operations and differentiate that, so every order of
derivative stays available.
"""

from __future__ import annotations

from ..autograd.engine import grad as _autograd_grad
from ..autograd.functions import Sigmoid, concat, relu, sigmoid, stack, tanh
from ..autograd.tensor import Function, Tensor, enable_grad
from .functional.linear import linear

__all__ = ["RecurrentScan", "MODES"]

MODES = ("RNN_TANH", "RNN_RELU", "GRU", "LSTM")
_sigmoid = Sigmoid().forward  # the same overflow-free formula as the differentiable sigmoid


# ---------------------------------------------- the elementary steps (grad of grad)

def rnn_step(xw, h, w_hh, b_hh, act):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), with ``xw`` the input part."""
    return act(xw + linear(h, w_hh, b_hh))


def gru_step(xw, h, w_hh, b_hh):
    """Gates r, z, n: n = tanh(x_n + r * (h W_hn^T + b_hn)), h' = (1 - z) n + z h."""
    H = h.shape[-1]
    gh = linear(h, w_hh, b_hh)
    rz = sigmoid(xw[:, :2 * H] + gh[:, :2 * H])
    r, z = rz[:, :H], rz[:, H:]
    n = tanh(xw[:, 2 * H:] + r * gh[:, 2 * H:])
    return n + z * (h - n)


def lstm_step(xw, h, c, w_hh, b_hh, w_hr=None):
    """Gates i, f, g, o: c' = f c + i g, h' = o tanh(c') (projected by ``w_hr`` when given)."""
    H = c.shape[-1]
    gates = xw + linear(h, w_hh, b_hh)
    s = sigmoid(gates)
    i, f, o = s[:, :H], s[:, H:2 * H], s[:, 3 * H:]
    g = tanh(gates[:, 2 * H:3 * H])
    c = f * c + i * g
    h = o * tanh(c)
    return (h if w_hr is None else linear(h, w_hr)), c


def elementary_scan(mode, reverse, xw, w_hh, h, b_hh=None, c=None):
    """What :class:`RecurrentScan` computes, from differentiable elementary operations."""
    L = xw.shape[0]
    hs, cs = [None] * L, [None] * L
    for t in (range(L - 1, -1, -1) if reverse else range(L)):
        if mode == "LSTM":
            h, c = lstm_step(xw[t, ...], h, c, w_hh, b_hh)
            cs[t] = c
        elif mode == "GRU":
            h = gru_step(xw[t, ...], h, w_hh, b_hh)
        else:
            h = rnn_step(xw[t, ...], h, w_hh, b_hh, relu if mode == "RNN_RELU" else tanh)
        hs[t] = h
    return concat([stack(hs, 0), stack(cs, 0)], -1) if mode == "LSTM" else stack(hs, 0)


# ------------------------------------------------------------------ the fused op

class RecurrentScan(Function):
    """All time steps of one recurrent layer and direction.

    Inputs: ``xw`` (L, N, G*H), the input projections ``x W_ih^T + b_ih`` of every
    step (G = 1, 3, 4 for RNN, GRU, LSTM; gates in PyTorch's order r,z,n and
    i,f,g,o); ``w_hh`` (G*H, H); ``h0`` (N, H); ``b_hh`` (G*H,) or None; ``c0``
    (N, H) for an LSTM.  Output: the hidden states (L, N, H) in time order
    (``reverse`` runs the recurrence from the last step to the first); for an
    LSTM the hidden and cell states side by side, (L, N, 2H).
    Formulas: PyTorch's ``torch.nn.RNN``/``GRU``/``LSTM`` documentation.
    """

    def __init__(self, mode: str, reverse: bool = False):
        if mode not in MODES:
            raise ValueError(f"RecurrentScan: unknown mode {mode!r}, expected one of {', '.join(MODES)}")
        self.mode, self.reverse = mode, reverse

    def _order(self, L):
        return range(L - 1, -1, -1) if self.reverse else range(L)

    def forward(self, xp, xw, w_hh, h0, b_hh=None, c0=None):
        mode, L = self.mode, xw.shape[0]
        H = w_hh.shape[1]
        wT = w_hh.mT
        hs, saved = [None] * L, [None] * L
        cs = [None] * L
        h, c = h0, c0
        for t in self._order(L):
            x = xw[t, ...]
            gh = h @ wT
            if b_hh is not None:
                gh = gh + b_hh
            if mode == "GRU":
                rz = _sigmoid(xp, x[:, :2 * H] + gh[:, :2 * H])
                ghn = gh[:, 2 * H:]
                n = xp.tanh(x[:, 2 * H:] + rz[:, :H] * ghn)
                saved[t] = (h, rz, n, ghn)
                h = n + rz[:, H:] * (h - n)
            elif mode == "LSTM":
                a = x + gh
                s = _sigmoid(xp, a)
                g = xp.tanh(a[:, 2 * H:3 * H])
                c_prev = c
                c = s[:, H:2 * H] * c + s[:, :H] * g
                tc = xp.tanh(c)
                saved[t] = (h, c_prev, s, g, tc)
                h = s[:, 3 * H:] * tc
                cs[t] = c
            else:
                saved[t] = h
                h = xp.tanh(x + gh) if mode == "RNN_TANH" else xp.maximum(x + gh, 0)
            hs[t] = h
        self.saved = saved
        y = xp.stack(hs, axis=0)
        return xp.concat([y, xp.stack(cs, axis=0)], axis=-1) if mode == "LSTM" else y

    def backward(self, g, y, xw, w_hh, h0, b_hh=None, c0=None):
        if isinstance(g, Tensor):  # create_graph: differentiate the elementary recurrence
            return self._backward_graph(g, xw, w_hh, h0, b_hh, c0)
        xp = self.xp
        mode, L, H = self.mode, xw.shape[0], w_hh.shape[1]
        saved, self.saved = self.saved, None
        dxs, dghs, hprev = [None] * L, [None] * L, [None] * L
        dh = dc = None
        gh_out = g[..., :H] if mode == "LSTM" else g
        for t in reversed(self._order(L)):
            dh = gh_out[t, ...] if dh is None else dh + gh_out[t, ...]
            if mode == "GRU":
                h, rz, n, ghn = saved[t]
                r, z = rz[:, :H], rz[:, H:]
                dan = (dh - dh * z) * (1.0 - n * n)
                drz = xp.concat([dan * ghn, dh * (h - n)], axis=1) * (rz * (1.0 - rz))
                dx = xp.concat([drz, dan], axis=1)
                dgh = xp.concat([drz, dan * r], axis=1)
                dh_direct = dh * z
            elif mode == "LSTM":
                h, c_prev, s, gg, tc = saved[t]
                i, f, o = s[:, :H], s[:, H:2 * H], s[:, 3 * H:]
                dct = dh * o * (1.0 - tc * tc) + g[t, :, H:]
                if dc is not None:
                    dct = dct + dc
                ds = xp.concat([dct * gg, dct * c_prev, dh * tc], axis=1) * (
                    xp.concat([i, f, o], axis=1) * (1.0 - xp.concat([i, f, o], axis=1)))
                dg = dct * i * (1.0 - gg * gg)
                dx = dgh = xp.concat([ds[:, :2 * H], dg, ds[:, 2 * H:]], axis=1)
                dc = dct * f
                dh_direct = None
            else:
                h = saved[t]
                hn = y[t, ...]
                dx = dgh = dh * (1.0 - hn * hn) if mode == "RNN_TANH" else dh * xp.astype(hn > 0, hn.dtype)
                dh_direct = None
            dxs[t], dghs[t], hprev[t] = dx, dgh, h
            dh = dgh @ w_hh if dh_direct is None else dh_direct + dgh @ w_hh
        gxw = xp.stack(dxs, axis=0) if self.needs[0] else None
        gw = gb = None
        if self.needs[1] or (b_hh is not None and self.needs[3]):
            N = xw.shape[1]
            dgh_all = xp.reshape(xp.stack(dghs, axis=0), (L * N, dghs[0].shape[1]))
            if self.needs[1]:
                gw = dgh_all.mT @ xp.reshape(xp.stack(hprev, axis=0), (L * N, H))
            if b_hh is not None and self.needs[3]:
                gb = xp.sum(dgh_all, axis=0)
        gh0 = dh if self.needs[2] else None
        gc0 = dc if c0 is not None and self.needs[4] else None
        return gxw, gw, gh0, gb, gc0

    def _backward_graph(self, g, *xs):
        self.saved = None
        with enable_grad():
            y = elementary_scan(self.mode, self.reverse, *xs)
            wanted = [x for x, need in zip(xs, self.needs) if need]
            grads = iter(_autograd_grad(y, wanted, g, create_graph=True, allow_unused=True))
        return tuple(next(grads) if need else None for need in self.needs) + (None,) * (5 - len(self.needs))


def recurrent_scan(mode, xw, w_hh, h0, b_hh=None, c0=None, reverse=False):
    """:class:`RecurrentScan` applied: hidden states (L, N, H) (LSTM: (L, N, 2H), h then c)."""
    args = (xw, w_hh, h0, b_hh) + ((c0,) if mode == "LSTM" else ())
    return RecurrentScan(mode, reverse)(*args)
