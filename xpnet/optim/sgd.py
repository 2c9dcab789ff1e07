"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from .optimizer import Optimizer, _check, _maybe_neg

__all__ = ["SGD"]


class SGD(Optimizer):
    """PyTorch's ``SGD``: ``g += wd p``; ``buf = momentum buf + (1 - dampening) g``
    (``buf = g`` on the first step); ``g = g + momentum buf`` (Nesterov) or
    ``buf``; ``p -= lr g``.  State: ``momentum_buffer`` (when momentum != 0)."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None):
        _check("SGD", lr >= 0.0, f"learning rate {lr}: expected lr >= 0")
        _check("SGD", momentum >= 0.0, f"momentum {momentum}: expected momentum >= 0")
        _check("SGD", weight_decay >= 0.0, f"weight_decay {weight_decay}: expected weight_decay >= 0")
        _check("SGD", not nesterov or (momentum > 0 and dampening == 0),
               "nesterov=True: Nesterov momentum requires momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                                      foreach=foreach))

    def _update_group(self, xp, group, params, grads):
        lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
        dampening, nesterov, maximize = group["dampening"], group["nesterov"], group["maximize"]
        for p, g in zip(params, grads):
            g = _maybe_neg(g, maximize)
            if wd != 0:
                g = g + wd * p.data
            if momentum != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                buf = g if buf is None else momentum * buf + (1 - dampening) * g
                state["momentum_buffer"] = buf
                g = g + momentum * buf if nesterov else buf
            p.data = p.data - lr * g
