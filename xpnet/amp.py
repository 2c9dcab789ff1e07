"""``GradScaler``: loss scaling for low-precision (float16) training, as ``torch.amp.GradScaler``.

The loss is multiplied by ``scale`` before ``backward`` so that small float16 gradients do not
flush to zero; :meth:`GradScaler.unscale_` divides the gradients back (call it before
clipping), :meth:`GradScaler.step` skips the optimizer step when a gradient is inf or NaN,
and :meth:`GradScaler.update` halves the scale after such a step (``backoff_factor``) or
doubles it after ``growth_interval`` clean steps in a row (``growth_factor``).  The finite
check reads one flag per optimizer from the device (PyTorch's ``step`` does the same).
``state_dict`` goes in checkpoints (``xpnet.save(..., scaler=)``; the Trainer saves and restores
it with ``precision="16-mixed"``).  :class:`autocast` runs matrix products in float16 or
bfloat16 and reductions, softmax, norms and losses in float32.
"""

from __future__ import annotations

import math

from . import backend as B

__all__ = ["GradScaler", "autocast"]


class GradScaler:
    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True):
        if growth_factor <= 1.0 or not 0.0 < backoff_factor < 1.0 or growth_interval < 1 or init_scale <= 0:
            raise ValueError(f"GradScaler: expected init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1 and "
                             f"growth_interval >= 1, got {init_scale}, {growth_factor}, {backoff_factor}, "
                             f"{growth_interval}")
        self.device, self._enabled = device, enabled
        self._scale, self._growth_factor, self._backoff_factor = float(init_scale), growth_factor, backoff_factor
        self._growth_interval, self._growth_tracker = growth_interval, 0
        self._per_optimizer = {}  # id(optimizer) -> {"unscaled": bool, "found_inf": bool}

    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        return self._scale if self._enabled else 1.0

    def scale(self, outputs):
        """``outputs`` (a tensor, or a list/tuple of them) times the current scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        return outputs * self._scale

    def _state(self, optimizer):
        return self._per_optimizer.setdefault(id(optimizer), {"unscaled": False, "found_inf": False})

    def unscale_(self, optimizer):
        """Divide ``optimizer``'s gradients by the scale (once per step) and note whether any is
        inf or NaN.  Call it before ``clip_grad_norm_``."""
        if not self._enabled:
            return
        st = self._state(optimizer)
        if st["unscaled"]:
            raise RuntimeError("GradScaler.unscale_() has already been called on this optimizer since the last "
                               "update()")
        inv = 1.0 / self._scale
        flags = []
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data if hasattr(p.grad, "data") else p.grad
                xp = B.namespace_of(g)
                g = g * inv
                flags.append(xp.all(xp.isfinite(g)))
                if hasattr(p.grad, "data"):
                    p.grad.data = g
                else:
                    p.grad = g
        st["found_inf"] = not all(bool(f) for f in flags)
        st["unscaled"] = True

    def step(self, optimizer, *args, **kwargs):
        """``optimizer.step()`` unless a gradient is inf or NaN (then nothing changes); unscales
        first if :meth:`unscale_` was not called.  Returns the step's result or None."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        st = self._state(optimizer)
        if not st["unscaled"]:
            self.unscale_(optimizer)
        if st["found_inf"]:
            return None
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None):
        """Adjust the scale after the step(s): back off after an inf/NaN, grow after
        ``growth_interval`` clean steps; or set ``new_scale``."""
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = float(new_scale)
        elif any(st["found_inf"] for st in self._per_optimizer.values()):
            self._scale *= self._backoff_factor
            self._growth_tracker = 0
        else:
            self._growth_tracker += 1
            if self._growth_tracker == self._growth_interval:
                self._scale *= self._growth_factor
                self._growth_tracker = 0
        self._per_optimizer.clear()

    def state_dict(self) -> dict:
        """``{"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}`` (PyTorch's
        keys and values); ``{}`` for a disabled scaler."""
        return {"scale": self._scale, "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker} if self._enabled else {}

    @staticmethod
    def check_state_dict(state) -> None:
        """ValueError naming the first problem unless ``state`` is a state dict that
        :meth:`load_state_dict` can load (the keys of :meth:`state_dict`; a finite scale > 0,
        growth_factor > 1, 0 < backoff_factor < 1, whole numbers growth_interval >= 1 and
        0 <= _growth_tracker < growth_interval).  Changes nothing."""
        if not isinstance(state, dict):
            raise ValueError(f"GradScaler state: expected a dict, got {type(state).__name__}")
        if not state:
            raise ValueError("GradScaler state: it is empty (saved from a disabled GradScaler?)")
        keys = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")
        missing = [k for k in keys if k not in state]
        if missing:
            raise ValueError(f"GradScaler state: missing {', '.join(missing)} (expected the keys {', '.join(keys)})")
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
        whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
        checks = (("scale", lambda v: number(v) and v > 0, "a finite number > 0"),
                  ("growth_factor", lambda v: number(v) and v > 1, "a finite number > 1"),
                  ("backoff_factor", lambda v: number(v) and 0 < v < 1, "a number in (0, 1)"),
                  ("growth_interval", lambda v: whole(v) and v >= 1, "a whole number >= 1"),
                  ("_growth_tracker", lambda v: whole(v) and 0 <= v < state["growth_interval"],  # checked above
                   f"a whole number in [0, growth_interval={state['growth_interval']!r})"))
        for key, ok, expected in checks:
            if not ok(state[key]):
                raise ValueError(f"GradScaler state: {key} is {state[key]!r}: expected {expected}")

    def load_state_dict(self, state: dict):
        """Restore :meth:`state_dict`'s values (nothing for a disabled scaler, as PyTorch).  Raises
        RuntimeError for an empty state (from a disabled scaler, as PyTorch) and ValueError for a
        malformed one (:meth:`check_state_dict`), changing nothing."""
        if not self._enabled:
            return
        if isinstance(state, dict) and not state:
            raise RuntimeError("GradScaler.load_state_dict: the state is empty (saved from a disabled scaler?)")
        self.check_state_dict(state)
        self._scale = float(state["scale"])
        self._growth_factor, self._backoff_factor = float(state["growth_factor"]), float(state["backoff_factor"])
        self._growth_interval, self._growth_tracker = state["growth_interval"], state["_growth_tracker"]


class autocast:
    """``with xpnet.autocast(dtype="bfloat16"):`` (or ``"float16"``) runs ``matmul`` and the ``@``
    operator, ``linear``, the convolutions and ``prelu`` in that dtype, and softmax, log-softmax,
    batch/layer/group norm and the losses in float32, as ``torch.autocast``'s op lists.  Only
    float32 (and the other low dtype) operands are cast: float64 and integers are left alone, as
    PyTorch's.  Parameters stay float32 and get float32 gradients (the casts are differentiable).
    Also a decorator.  ``device_type`` is accepted for PyTorch compatibility (the dtype alone
    decides here).  Raises ValueError for a dtype other than float16 or bfloat16."""

    def __init__(self, device_type: str = "cpu", dtype="bfloat16", enabled: bool = True, cache_enabled=None):
        name = B.dtype_name(dtype) if not isinstance(dtype, str) else dtype
        if name not in ("float16", "bfloat16"):
            raise ValueError(f"autocast: dtype must be float16 or bfloat16, got {name}")
        self.dtype, self.enabled = name, enabled

    def __enter__(self):
        from .autograd.autocast_state import _state
        self._prev = _state["dtype"]
        _state["dtype"] = self.dtype if self.enabled else None
        return self

    def __exit__(self, *exc):
        from .autograd.autocast_state import _state
        _state["dtype"] = self._prev

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with autocast(dtype=self.dtype, enabled=self.enabled):
                return fn(*args, **kwargs)
        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper
