"""Compiling a replayed step with the array library's own compiler (``jax.jit``)."""

from __future__ import annotations

import warnings


def jit(fn, donate_argnums=()):
    """``jax.jit(fn, donate_argnums=...)``: ``fn`` is a pure function of JAX arrays (and host
    numbers, which JAX treats as weakly typed, like Python scalars in eager code).  Donated
    arguments' buffers may be reused for the outputs; on backends that cannot (JAX on the
    CPU in some versions) JAX's warning about it is silenced (one filter, set at the first call)."""
    import jax
    # once, narrowly: a catch_warnings block per call costs more than a small step
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
    return jax.jit(fn, donate_argnums=tuple(donate_argnums))


_device_keys: dict = {}  # array type -> how to get its device key


def device_key(x):
    """A hashable that differs for arrays on different devices, cheap enough for a per-call
    signature (:func:`xpnet.compile`): a JAX array's ``sharding`` (its ``device`` property costs
    microseconds; a single-device sharding names the device), else ``x.device`` (None if absent)."""
    get = _device_keys.get(type(x))
    if get is None:
        is_jax = type(x).__module__.startswith(("jax", "jaxlib")) and hasattr(x, "sharding")
        get = _device_keys[type(x)] = _sharding if is_jax else _device
    return get(x)


def _sharding(x):
    return x.sharding


def _device(x):
    return getattr(x, "device", None)


def traceable(fn, args) -> bool:
    """Whether ``fn`` traces under ``jax.jit`` with arguments shaped like ``args`` (arrays, or host
    numbers passed as they are): an abstract evaluation, nothing runs.  False when it cannot
    (a host function that needs a concrete number, such as ``math.sqrt`` of a traced one)."""
    import jax
    spec = [jax.ShapeDtypeStruct(a.shape, a.dtype) if hasattr(a, "shape") and hasattr(a, "dtype") else a
            for a in args]
    try:
        jax.eval_shape(fn, *spec)
    except Exception:  # noqa: BLE001 - any failure to trace means: keep those numbers on the host
        return False
    return True
