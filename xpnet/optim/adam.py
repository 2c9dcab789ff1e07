"""Adam (optionally AMSGrad) and AdamW (decoupled weight decay)."""

from __future__ import annotations

from .optimizer import Optimizer, _check, _maybe_neg

__all__ = ["Adam", "AdamW"]


def _check_betas(name, lr, betas, eps, weight_decay):
    _check(name, lr >= 0.0, f"learning rate {lr}: expected lr >= 0")
    _check(name, eps >= 0.0, f"eps {eps}: expected eps >= 0")
    _check(name, len(betas) == 2 and 0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0,
           f"betas {betas}: expected two values in [0, 1)")
    _check(name, weight_decay >= 0.0, f"weight_decay {weight_decay}: expected weight_decay >= 0")


class Adam(Optimizer):
    """PyTorch's ``Adam``: ``m = lerp(m, g, 1-b1)``, ``v = b2 v + (1-b2) g^2``,
    ``p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)`` (AMSGrad: the running
    maximum of ``v``).  Weight decay adds ``wd p`` to ``g``, or with
    ``decoupled_weight_decay`` multiplies ``p`` by ``1 - lr wd`` (AdamW).
    State: ``step``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False, foreach: bool | None = None):
        _check_betas(type(self).__name__, lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay, foreach=foreach))

    def _update_group(self, xp, group, params, grads):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        amsgrad, decoupled = group["amsgrad"], group["decoupled_weight_decay"]
        for p, g in zip(params, grads):
            state = self.state[p]
            if "exp_avg" not in state:
                state["step"] = 0
                state["exp_avg"] = xp.zeros_like(p.data)
                state["exp_avg_sq"] = xp.zeros_like(p.data)
            if amsgrad and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = xp.zeros_like(p.data)
            state["step"] = step = state["step"] + 1
            g = _maybe_neg(g, group["maximize"])
            w = p.data
            if wd != 0:
                if decoupled:
                    w = w * (1 - lr * wd)
                else:
                    g = g + wd * w
            m = state["exp_avg"]
            state["exp_avg"] = m = m + (1 - beta1) * (g - m)
            state["exp_avg_sq"] = v = beta2 * state["exp_avg_sq"] + (1 - beta2) * (g * g)
            if amsgrad:
                state["max_exp_avg_sq"] = v = xp.maximum(state["max_exp_avg_sq"], v)
            step_size = lr / (1 - beta1 ** step)
            bc2_sqrt = (1 - beta2 ** step) ** 0.5
            p.data = w - step_size * (m / (xp.sqrt(v) / bc2_sqrt + eps))


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr wd`` before the Adam step), default ``wd=1e-2``."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True, foreach=foreach)
