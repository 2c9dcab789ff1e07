"""NAdam: Adam with Nesterov momentum and momentum decay (Dozat, 2016)."""

from __future__ import annotations

from .adam import _check_betas
from .optimizer import Optimizer, _check, _maybe_neg

__all__ = ["NAdam"]


class NAdam(Optimizer):
    """PyTorch's ``NAdam``: ``mu_t = b1 (1 - 0.5 * 0.96^(t psi))`` with ``psi = momentum_decay``,
    ``p -= lr [(1-mu_t) / (1-prod mu) g + mu_{t+1} / (1-prod mu * mu_{t+1}) m] / (sqrt(v / (1-b2^t)) + eps)``.
    State: ``step``, ``mu_product`` (host scalars), ``exp_avg``, ``exp_avg_sq``."""

    _scalar_state = ("step", "mu_product")

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None):
        _check_betas("NAdam", lr, betas, eps, weight_decay)
        _check("NAdam", momentum_decay >= 0.0, f"momentum_decay {momentum_decay}: expected >= 0")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                                      foreach=foreach))

    def _update_group(self, xp, group, params, grads):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        psi = group["momentum_decay"]
        for p, g in zip(params, grads):
            state = self.state[p]
            if "exp_avg" not in state:
                state["step"], state["mu_product"] = 0, 1.0
                state["exp_avg"] = xp.zeros_like(p.data)
                state["exp_avg_sq"] = xp.zeros_like(p.data)
            state["step"] = step = state["step"] + 1
            g = _maybe_neg(g, group["maximize"])
            w = p.data
            if wd != 0:
                if group["decoupled_weight_decay"]:
                    w = w * (1 - lr * wd)
                else:
                    g = g + wd * w
            mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
            mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi))
            state["mu_product"] = mu_product = state["mu_product"] * mu
            m = state["exp_avg"]
            state["exp_avg"] = m = m + (1 - beta1) * (g - m)
            state["exp_avg_sq"] = v = beta2 * state["exp_avg_sq"] + (1 - beta2) * (g * g)
            denom = xp.sqrt(v / (1 - beta2 ** step)) + eps
            c_grad = lr * (1.0 - mu) / (1.0 - mu_product)
            c_avg = lr * mu_next / (1.0 - mu_product * mu_next)
            p.data = w - (c_grad * g + c_avg * m) / denom
