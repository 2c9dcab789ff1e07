"""RMSprop, optionally centered and with momentum."""

from __future__ import annotations

from .optimizer import Optimizer, _check, _maybe_neg

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """PyTorch's ``RMSprop``: ``v = alpha v + (1-alpha) g^2``; centered: ``m = lerp(m, g, 1-alpha)``,
    ``avg = sqrt(v - m^2) + eps`` (else ``sqrt(v) + eps``); with momentum
    ``buf = momentum buf + g / avg``, ``p -= lr buf``, else ``p -= lr g / avg``.
    State: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered)."""

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 *, maximize: bool = False, foreach: bool | None = None):
        _check("RMSprop", lr >= 0.0, f"learning rate {lr}: expected lr >= 0")
        _check("RMSprop", eps >= 0.0, f"eps {eps}: expected eps >= 0")
        _check("RMSprop", momentum >= 0.0, f"momentum {momentum}: expected momentum >= 0")
        _check("RMSprop", weight_decay >= 0.0, f"weight_decay {weight_decay}: expected weight_decay >= 0")
        _check("RMSprop", alpha >= 0.0, f"alpha {alpha}: expected alpha >= 0")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize,
                                      foreach=foreach))

    def _update_group(self, xp, group, params, grads):
        lr, alpha, eps, wd = group["lr"], group["alpha"], group["eps"], group["weight_decay"]
        momentum, centered = group["momentum"], group["centered"]
        for p, g in zip(params, grads):
            state = self.state[p]
            if "square_avg" not in state:
                state["step"] = 0
                state["square_avg"] = xp.zeros_like(p.data)
            if momentum > 0 and "momentum_buffer" not in state:
                state["momentum_buffer"] = xp.zeros_like(p.data)
            if centered and "grad_avg" not in state:
                state["grad_avg"] = xp.zeros_like(p.data)
            state["step"] += 1
            g = _maybe_neg(g, group["maximize"])
            if wd != 0:
                g = g + wd * p.data
            state["square_avg"] = v = alpha * state["square_avg"] + (1 - alpha) * (g * g)
            if centered:
                m = state["grad_avg"]
                state["grad_avg"] = m = m + (1 - alpha) * (g - m)
                avg = xp.sqrt(v - m * m) + eps
            else:
                avg = xp.sqrt(v) + eps
            if momentum > 0:
                state["momentum_buffer"] = buf = momentum * state["momentum_buffer"] + g / avg
                p.data = p.data - lr * buf
            else:
                p.data = p.data - lr * (g / avg)
