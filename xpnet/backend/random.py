"""Seeded random numbers that are the same on every backend: a host generator, and
counter-based bits made on the array's device (dropout masks)."""

from __future__ import annotations

import math

import numpy as np

from . import select
from .dtypes import numpy_dtype
from .select import current_backend


class Generator:
    """Seeded random numbers that are the same on every backend.

    Most are drawn on the host by NumPy's PCG64 and moved to a backend (the
    current one unless ``backend=`` says otherwise): initial weights, once.
    :meth:`bernoulli` (dropout masks, every step) draws only two keys on the
    host and computes the mask on the array's device with :func:`random_bits`,
    so no host-to-device copy (on a GPU, a wait for the device) is needed.
    The state is the host generator's alone.
    """

    def __init__(self, seed=None):
        self.host = np.random.default_rng(seed)

    @staticmethod
    def _out(a, dtype, backend):
        b = backend or current_backend()
        dtype = b.xp.float32 if dtype is None else dtype
        return b.xp.asarray(a.astype(numpy_dtype(dtype)), device=b.device)

    def normal(self, shape, mean=0.0, std=1.0, dtype=None, backend=None):
        return self._out(self.host.normal(mean, std, size=shape), dtype, backend)

    def uniform(self, shape, low=0.0, high=1.0, dtype=None, backend=None):
        return self._out(self.host.uniform(low, high, size=shape), dtype, backend)

    def integers(self, low, high, shape, dtype=None, backend=None):
        b = backend or current_backend()
        return self._out(self.host.integers(low, high, size=shape), dtype or b.xp.int64, b)

    def permutation(self, n: int, backend=None):
        b = backend or current_backend()
        return self._out(self.host.permutation(n), b.xp.int64, b)

    def bernoulli(self, shape, p: float, backend=None):
        """A boolean mask, True with probability ``p`` (to 2**-24), made on the device.
        Each process of a distributed job draws its own masks (:func:`set_process_stream`)."""
        return random_bits(shape, self.mask_keys(), backend or current_backend()) < round(p * 2**24)

    def mask_keys(self) -> tuple:
        """The two signed 32-bit keys of one :meth:`bernoulli` draw, in this process's stream
        (:func:`set_process_stream`); advances the host generator by one draw of two."""
        keys = tuple(int(k) for k in self.host.integers(-2**31, 2**31, size=2))
        if _process["stream"]:
            keys = (_signed32(keys[0] + _process["stream"] * 0x9E3779B9), keys[1])
        return keys

    def orthogonal(self, rows: int, cols: int):
        """A host (NumPy) matrix with orthonormal rows or columns, from QR of a normal draw."""
        flat = self.host.normal(size=(rows, cols))
        q, r = np.linalg.qr(flat.T if rows < cols else flat)
        q = q * np.sign(np.diag(r))
        return q.T if rows < cols else q

    def get_state(self) -> dict:
        return self.host.bit_generator.state

    def set_state(self, state: dict):
        self.host.bit_generator.state = state


_process = {"stream": 0}


def _signed32(k: int) -> int:
    k &= 0xFFFFFFFF
    return k - 2**32 if k >= 2**31 else k


def set_process_stream(index: int):
    """Give this process its own stream of dropout masks (:meth:`Generator.bernoulli`):
    ``xpnet.distributed.init`` passes the rank, so that ranks seeded alike still drop
    different units.  The host generator (weights, data order) is unchanged, so it stays the
    same on every rank.  0 (the default) is the stream of a single process."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"set_process_stream: expected a non-negative int, got {index!r}")
    _process["stream"] = index


def _shift_right(x, s: int, signed: bool):
    """Logical right shift of 32-bit patterns (int32's ``>>`` copies the sign bit: masked)."""
    return (x >> s) & ((1 << (32 - s)) - 1) if signed else x >> s


def _mix32(x, signed: bool):
    """A bijective mix of 32-bit patterns (products wrap around): Wellons' two-round mixer
    with multipliers 0x21f0aaad and 0x735a2d97 (github.com/skeeto/hash-prospector)."""
    x = x ^ _shift_right(x, 16, signed)
    x = x * 0x21F0AAAD
    x = x ^ _shift_right(x, 15, signed)
    x = x * 0x735A2D97
    return x ^ _shift_right(x, 15, signed)


def _bits(xp, dtype, shape, keys, **device):
    """The bits of :func:`random_bits` in ``dtype`` (uint32, or int32 for libraries that
    lack unsigned arithmetic), as 24-bit values."""
    n = math.prod(shape)
    if n >= 2**31:
        raise ValueError(f"random_bits: {n} elements (shape {tuple(shape)}); at most 2**31 - 1 in one draw")
    signed = dtype == xp.int32
    k1, k2 = keys if signed else (k & 0xFFFFFFFF for k in keys)
    x = _mix32(_mix32(xp.arange(n, dtype=dtype, **device) ^ k1, signed) ^ k2, signed)
    return xp.reshape(_shift_right(x, 8, signed), tuple(shape))


def random_bits(shape, keys, backend):
    """Integers in [0, 2**24) (int32) of ``shape`` on ``backend``'s device: element ``i`` is
    a hash of ``i`` and the two 32-bit ``keys`` (a counter-based generator), so every
    backend gives the same bits.  They are made where the array will live: for a CPU
    device by NumPy in uint32 (its fastest), on a GPU by :func:`random_bits_portable`;
    nothing moves from the host to a GPU."""
    if select.device_name(backend.device) == "cpu":
        bits = _bits(np, np.uint32, shape, keys).view(np.int32)
        return bits if backend.name == "numpy" else backend.xp.asarray(bits, device=backend.device)
    return random_bits_portable(shape, keys, backend)


def random_bits_portable(shape, keys, backend):
    """:func:`random_bits` in int32 Array API operations, on any backend and device."""
    return _bits(backend.xp, backend.xp.int32, shape, keys, device=backend.device)


_default_rng = Generator(0)


def default_generator() -> Generator:
    """The generator that layers, dropout and loaders use unless given their own."""
    return _default_rng


def manual_seed(seed: int) -> Generator:
    """Reseed the default generator (the same numbers follow on every backend)."""
    _default_rng.host = np.random.default_rng(seed)
    return _default_rng
