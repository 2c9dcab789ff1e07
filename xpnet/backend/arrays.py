"""Arrays across libraries and devices: making them, finding their namespace and backend,
moving them (DLPack, else through the host), and reading them back to the host.

A read back to the host (:func:`to_numpy`) is also where input checks deferred on an
accelerator run (:func:`flush_checks`; they are queued by :mod:`.checks`)."""

from __future__ import annotations

import array_api_compat
import numpy as np

from . import select
from .dtypes import numpy_dtype, resolve_dtype
from .select import NAMES, Backend, current_backend, get_backend, name_of_namespace


def on_host(x) -> bool:
    """Whether array ``x`` lives in host memory (reading it costs no device synchronization)."""
    return select.device_name(array_api_compat.device(x)) == "cpu"


def as_array(data, dtype=None, backend=None):
    """``data`` as an array on ``backend`` (default: the current backend).

    ``data`` may be a Python scalar, a (nested) list, or an array of any
    supported library (moved by DLPack or through the host).  Python floats
    become float32 and ints int64, as in PyTorch; ``dtype`` (a name or a
    dtype) converts.
    """
    b = current_backend() if backend is None else (
        backend if isinstance(backend, Backend) else get_backend(backend))
    if isinstance(data, np.generic):
        data = np.asarray(data)
    if _is_array(data):
        foreign = namespace_of(data) is not b.xp
        arr = transfer(data, b)
        if dtype is not None:
            arr = b.xp.astype(arr, resolve_dtype(b.xp, dtype))
        # DLPack shares memory with the source: never alias another library's array
        return b.xp.asarray(arr, copy=True) if foreign else arr
    host = np.asarray(data)
    if dtype is None:
        dtype = {"f": "float32", "i": "int64", "u": "int64", "b": "bool"}.get(host.dtype.kind)
        if dtype is None:
            raise TypeError(
                f"cannot make an array from {type(data).__name__} data of dtype {host.dtype}: "
                "expected numbers, booleans, nested lists of them, or an array")
    return _from_host(host.astype(numpy_dtype(resolve_dtype(b.xp, dtype))), b)


_NS_BY_TYPE: dict = {}


def _is_array(x) -> bool:
    return array_api_compat.is_array_api_obj(x) and not isinstance(x, (int, float, bool, complex))


def namespace_of(x):
    """The Array API namespace of array ``x`` (cached per array type)."""
    t = type(x)
    ns = _NS_BY_TYPE.get(t)
    if ns is None:
        if isinstance(x, np.generic):
            x = np.asarray(x)
        ns = array_api_compat.array_namespace(x)
        if array_api_compat.is_jax_namespace(ns):
            select._load("jax")  # its float64 switch
        _NS_BY_TYPE[t] = ns
    return ns


def backend_of(x) -> Backend:
    """The :class:`Backend` that array ``x`` lives on."""
    xp = namespace_of(x)
    for name in NAMES:
        b = select._CACHE.get((name, None))
        if b is not None and b.xp is xp:
            dev = array_api_compat.device(x)
            if select.device_name(dev) == select.device_name(b.device):
                return b
            return get_backend(name, select.device_name(dev))
    name = name_of_namespace(xp)
    return get_backend(name, select.device_name(array_api_compat.device(x)))


def to_numpy(x) -> np.ndarray:
    """A NumPy copy of array ``x`` (from any library or device), for printing and saving.

    A read from an accelerator first raises any failed deferred index check
    (see :func:`check_indices`); copying host memory does not read the device."""
    if _pending_checks and not on_host(x):
        flush_checks()
    return _host_copy(x)


def _host_copy(x) -> np.ndarray:
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    c = array_api_compat
    if c.is_torch_array(x):
        x = x.detach().cpu()
        torch = _torch()
        if x.dtype == torch.bfloat16:  # NumPy knows bfloat16 through ml_dtypes only
            return x.view(torch.int16).numpy().view(numpy_dtype("bfloat16"))
        return x.numpy()
    if c.is_cupy_array(x):
        return x.get()
    if c.is_array_api_strict_namespace(namespace_of(x)):
        return np.asarray(x._array)
    return np.asarray(x)


def transfer(x, backend: Backend):
    """Array ``x`` moved to ``backend`` (library and device): DLPack where it works, else a host copy."""
    src = namespace_of(x)
    if src is backend.xp and select.device_name(array_api_compat.device(x)) == select.device_name(backend.device):
        return x
    if src is backend.xp:
        return array_api_compat.to_device(x, backend.device)
    try:
        y = backend.xp.from_dlpack(x)
        if select.device_name(array_api_compat.device(y)) == select.device_name(backend.device):
            return y
        return array_api_compat.to_device(y, backend.device)
    except Exception:  # no DLPack route between these two: go through the host
        return _from_host(to_numpy(x), backend)


def _from_host(a: np.ndarray, backend: Backend):
    """NumPy array ``a`` on ``backend``.  bfloat16 (ml_dtypes): torch takes it as its bits;
    a library without bfloat16 (CuPy, array_api_strict) gets float32, which holds it exactly."""
    if a.dtype.name == "bfloat16":
        if backend.name == "torch":
            torch = _torch()
            return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16).to(backend.device)
        if not hasattr(backend.xp, "bfloat16"):
            a = a.astype(np.float32)
    return backend.xp.asarray(a, device=backend.device)


def _torch():
    import torch
    return torch


_pending_checks: list = []  # input checks queued on an accelerator by checks.require: (values, check)


def flush_checks():
    """Run the checks queued on an accelerator (one read for all); the first failure raises."""
    if not _pending_checks:
        return
    checks = list(_pending_checks)
    _pending_checks.clear()
    values = [v for v, _ in checks]
    if array_api_compat.is_jax_array(values[0]):  # an eager concat on JAX: one compilation per count
        from .jit import read_back
        host = [x for v in read_back(values) for x in v]
    else:
        xp = namespace_of(values[0])
        host = _host_copy(xp.concat([xp.astype(v, xp.float64) for v in values])).tolist()
    start = 0
    for values, check in checks:
        n = values.shape[0]
        check(*host[start:start + n])
        start += n
