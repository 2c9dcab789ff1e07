"""Adadelta: steps scaled by the ratio of running RMS of updates and of gradients."""

from __future__ import annotations

from .optimizer import Optimizer, _check, _maybe_neg

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """PyTorch's ``Adadelta``: ``v = rho v + (1-rho) g^2``;
    ``d = sqrt(u + eps) / sqrt(v + eps) * g``; ``u = rho u + (1-rho) d^2``; ``p -= lr d``.
    State: ``step``, ``square_avg`` (v), ``acc_delta`` (u)."""

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, *, maximize: bool = False, foreach: bool | None = None):
        _check("Adadelta", lr >= 0.0, f"learning rate {lr}: expected lr >= 0")
        _check("Adadelta", 0.0 <= rho <= 1.0, f"rho {rho}: expected 0 <= rho <= 1")
        _check("Adadelta", eps >= 0.0, f"eps {eps}: expected eps >= 0")
        _check("Adadelta", weight_decay >= 0.0, f"weight_decay {weight_decay}: expected weight_decay >= 0")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                                      foreach=foreach))

    def _update_group(self, xp, group, params, grads):
        lr, rho, eps, wd = group["lr"], group["rho"], group["eps"], group["weight_decay"]
        for p, g in zip(params, grads):
            state = self.state[p]
            if "square_avg" not in state:
                state["step"] = 0
                state["square_avg"] = xp.zeros_like(p.data)
                state["acc_delta"] = xp.zeros_like(p.data)
            state["step"] += 1
            g = _maybe_neg(g, group["maximize"])
            if wd != 0:
                g = g + wd * p.data
            state["square_avg"] = v = rho * state["square_avg"] + (1 - rho) * (g * g)
            u = state["acc_delta"]
            delta = xp.sqrt(u + eps) / xp.sqrt(v + eps) * g
            state["acc_delta"] = rho * u + (1 - rho) * (delta * delta)
            p.data = p.data - lr * delta
