"""Adagrad: per-coordinate steps scaled by the root of the summed squared gradients."""

from __future__ import annotations

from .optimizer import Optimizer, _check, _maybe_neg

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """PyTorch's ``Adagrad``: ``sum += g^2``; ``p -= lr / (1 + (t-1) lr_decay) * g / (sqrt(sum) + eps)``.
    State: ``step``, ``sum``."""

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False,
                 foreach: bool | None = None):
        _check("Adagrad", lr >= 0.0, f"learning rate {lr}: expected lr >= 0")
        _check("Adagrad", lr_decay >= 0.0, f"lr_decay {lr_decay}: expected lr_decay >= 0")
        _check("Adagrad", weight_decay >= 0.0, f"weight_decay {weight_decay}: expected weight_decay >= 0")
        _check("Adagrad", initial_accumulator_value >= 0.0,
               f"initial_accumulator_value {initial_accumulator_value}: expected >= 0")
        _check("Adagrad", eps >= 0.0, f"eps {eps}: expected eps >= 0")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      maximize=maximize, foreach=foreach))

    def _update_group(self, xp, group, params, grads):
        lr, lr_decay, wd, eps = group["lr"], group["lr_decay"], group["weight_decay"], group["eps"]
        for p, g in zip(params, grads):
            state = self.state[p]
            if "sum" not in state:
                state["step"] = 0
                state["sum"] = xp.full_like(p.data, group["initial_accumulator_value"])
            state["step"] += 1
            g = _maybe_neg(g, group["maximize"])
            if wd != 0:
                g = g + wd * p.data
            clr = lr / (1 + (state["step"] - 1) * lr_decay)
            state["sum"] = s = state["sum"] + g * g
            p.data = p.data - clr * (g / (xp.sqrt(s) + eps))
