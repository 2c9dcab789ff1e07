"""Lion: sign momentum (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms")."""

from __future__ import annotations

from .. import backend as B
from .optimizer import Optimizer, _check, _maybe_neg

__all__ = ["Lion"]


class Lion(Optimizer):
    """``p *= 1 - lr wd``; ``p -= lr sign(b1 m + (1-b1) g)``; ``m = b2 m + (1-b2) g``.
    Use a learning rate 3-10x smaller and a weight decay 3-10x larger than for AdamW.
    State: ``exp_avg``."""

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0,
                 *, maximize: bool = False, foreach: bool | None = None):
        _check("Lion", lr >= 0.0, f"learning rate {lr}: expected lr >= 0")
        _check("Lion", len(betas) == 2 and 0.0 <= betas[0] <= 1.0 and 0.0 <= betas[1] <= 1.0,
               f"betas {betas}: expected two values in [0, 1]")
        _check("Lion", weight_decay >= 0.0, f"weight_decay {weight_decay}: expected weight_decay >= 0")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, maximize=maximize,
                                      foreach=foreach))

    def _update_group(self, xp, group, params, grads):
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        for p, g in zip(params, grads):
            state = self.state[p]
            if "exp_avg" not in state:
                state["exp_avg"] = xp.zeros_like(p.data)
            g = _maybe_neg(g, group["maximize"])
            m = state["exp_avg"]
            w = p.data * (1 - lr * wd) if wd != 0 else p.data
            p.data = w - lr * B.sign(beta1 * m + (1 - beta1) * g)
            state["exp_avg"] = beta2 * m + (1 - beta2) * g
