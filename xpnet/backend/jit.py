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


_READ_BACK = 64  # arrays per read: one compiled concatenation serves every count up to this
_concat = None


def read_back(arrays) -> list:
    """The values of many small JAX arrays as Python lists (float64), read with one device
    execution and one transfer per 64 arrays.  Reading each array on its own costs a wake-up of
    JAX's worker thread apiece (about 100 us on a busy machine).  The list is padded to 64 with
    its last array, so that the concatenation compiles once per pattern of shapes."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    global _concat
    if _concat is None:
        _concat = jax.jit(lambda *v: jnp.concatenate([jnp.ravel(x).astype(jnp.float64) for x in v]))
    out = []
    for start in range(0, len(arrays), _READ_BACK):
        chunk = list(arrays[start:start + _READ_BACK])
        sizes = [int(np.prod(a.shape)) for a in chunk]
        flat = np.asarray(_concat(*chunk, *[chunk[-1]] * (_READ_BACK - len(chunk)))).tolist()
        at = 0
        for n in sizes:
            out.append(flat[at:at + n])
            at += n
    return out
