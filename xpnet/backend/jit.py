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
