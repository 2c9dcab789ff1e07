"""The one place that knows concrete array libraries.

A :class:`Backend` bundles an array namespace ``xp`` (Array API 2024.12), a
device and a seeded random generator.  The current backend lives in a context
variable: :func:`use` sets it, :func:`using` sets it for a ``with`` block, and
``XPNET_BACKEND`` (e.g. ``numpy``, ``torch:cpu``, ``cupy:cuda:1``) picks the
starting one.  Everything outside this module calls only the standard through
``xp`` plus the few helpers defined here for what the standard lacks
(:func:`scatter_add`, :func:`pad`, :func:`index_zeros_set`, :func:`assign`).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import math
import os
from dataclasses import dataclass
from typing import Any

import array_api_compat
import array_api_extra as xpx
import numpy as np

API_VERSION = "2024.12"
NAMES = ("numpy", "array_api_strict", "torch", "jax", "cupy")


class BackendUnavailable(RuntimeError):
    """A backend or device was asked for that cannot run on this machine."""


# ---------------------------------------------------------------- namespaces

def _load(name: str):
    """Import the array library behind ``name`` and return its namespace, or
    raise :class:`BackendUnavailable` with the cause and the fix."""
    installs = {
        "cupy": "pip install 'xpnet[gpu]' (CuPy for CUDA 12/13)",
        "torch": "pip install torch",
        "jax": "pip install jax",
        "array_api_strict": "pip install array-api-strict",
    }
    module = {"numpy": "numpy", "array_api_strict": "array_api_strict",
              "torch": "torch", "jax": "jax.numpy", "cupy": "cupy"}.get(name)
    if module is None:
        raise BackendUnavailable(
            f"unknown backend {name!r}: expected one of {', '.join(NAMES)} or 'auto'")
    try:
        lib = importlib.import_module(module)
    except ImportError as e:
        raise BackendUnavailable(
            f"{name} is not installed ({e}): {installs[name]}") from None
    if name == "array_api_strict":
        lib.set_array_api_strict_flags(api_version=API_VERSION)
        return lib
    if name == "jax":
        import jax
        jax.config.update("jax_enable_x64", True)  # float64 for gradient checks
        _apply_matmul_precision(name)
        return lib
    if name == "cupy":
        try:
            count = lib.cuda.runtime.getDeviceCount()
        except Exception as e:  # CUDA driver missing or broken
            raise BackendUnavailable(
                f"CuPy is installed but no CUDA device was found ({e}): "
                "run on a machine with an NVIDIA GPU and driver, or use 'numpy'") from None
        if count == 0:
            raise BackendUnavailable(
                "CuPy is installed but no CUDA device was found: "
                "run on a machine with an NVIDIA GPU, or use 'numpy'")
    _apply_matmul_precision(name)
    return array_api_compat.array_namespace(lib.empty(0))


def _parse_device(name: str, device):
    """Turn ``None``/``"cpu"``/``"cuda"``/``"cuda:N"`` into the library's device."""
    dev = "cpu" if device is None and name not in ("cupy",) else device
    if name == "numpy":
        if dev not in ("cpu", None):
            raise BackendUnavailable(f"numpy runs on 'cpu' only, not {device!r}: use backend 'cupy' or 'torch' for CUDA")
        return "cpu"
    if name == "array_api_strict":
        if dev not in ("cpu", None):
            raise BackendUnavailable(f"array_api_strict runs on 'cpu' only, not {device!r}")
        import array_api_strict
        return array_api_strict.Device("CPU_DEVICE")
    if name == "torch":
        import torch
        d = torch.device(dev)
        if d.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(
                f"torch is installed but CUDA is not available for device {device!r}: "
                "install a CUDA build of PyTorch on a GPU machine, or use device 'cpu'")
        if d.type == "cuda" and d.index is None:
            d = torch.device("cuda", torch.cuda.current_device())
        return d
    if name == "jax":
        import jax
        kind, _, index = (dev or "cpu").partition(":")
        kind = "gpu" if kind == "cuda" else kind
        try:
            devices = jax.devices(kind)
        except RuntimeError as e:
            raise BackendUnavailable(f"jax has no {kind!r} device ({e}): install jax[cuda12] or use 'cpu'") from None
        return devices[int(index or 0)]
    if name == "cupy":
        import cupy
        kind, _, index = (dev or "cuda").partition(":")
        if kind != "cuda":
            raise BackendUnavailable(f"cupy runs on CUDA devices only, not {device!r}: use backend 'numpy' for the CPU")
        n = cupy.cuda.runtime.getDeviceCount()
        i = int(index or 0)
        if i >= n:
            raise BackendUnavailable(f"cupy: device {device!r} does not exist: this machine has {n} CUDA device(s)")
        return cupy.cuda.Device(i)
    raise AssertionError(name)


# --------------------------------------------------------------------- Backend

@dataclass(eq=False, frozen=True)
class Backend:
    """An array library and a device on it.

    ``xp`` is the Array API namespace; ``device`` the library's device object.
    """

    name: str
    xp: Any
    device: Any

    def asarray(self, data, dtype=None):
        """``data`` (scalar, list, or an array of any library) as an array here."""
        return as_array(data, dtype, self)

    def __repr__(self):
        return f"Backend({self.name!r}, device={device_name(self.device)!r})"


def device_name(device) -> str:
    """A short, library-independent name such as ``cpu`` or ``cuda:0``."""
    s = str(device)
    if "CPU" in s.upper() and "cuda" not in s:
        return "cpu"
    for prefix in ("<CUDA Device ", "cuda:"):
        if s.startswith(prefix):
            return "cuda:" + s[len(prefix):].rstrip(">")
    if s.startswith("cuda"):
        return s
    return s.lower()


def on_host(x) -> bool:
    """Whether array ``x`` lives in host memory (reading it costs no device synchronization)."""
    return device_name(array_api_compat.device(x)) == "cpu"


def describe(b: "Backend") -> str:
    """``numpy / cpu``, ``cupy / cuda:0 (NVIDIA H100 80GB HBM3)``: library, device and GPU name."""
    dev = device_name(b.device)
    line = f"{b.name} / {dev}"
    if dev.startswith("cuda"):
        index = int(dev.split(":")[1]) if ":" in dev else 0
        try:
            if b.name == "cupy":
                import cupy
                gpu = cupy.cuda.runtime.getDeviceProperties(index)["name"]
                gpu = gpu.decode() if isinstance(gpu, bytes) else gpu
            else:
                import torch
                gpu = torch.cuda.get_device_name(index)
            line += f" ({gpu})"
        except Exception:  # the name is a courtesy
            pass
    return line


_CACHE: dict = {}


def get_backend(name: str = "auto", device=None) -> Backend:
    """The backend named ``name`` on ``device`` (cached), or raise BackendUnavailable."""
    if name == "auto":
        name = "cupy" if cuda_available() else "numpy"
    if ":" in name and name.split(":", 1)[0] in NAMES:
        name, device = name.split(":", 1)
    key = (name, device)
    if key not in _CACHE:
        xp = _load(name)
        dev = _parse_device(name, device)
        # one Backend per library and device, however the device was spelled ("cuda", "cuda:0")
        same = next((b for b in _CACHE.values() if b.name == name and device_name(b.device) == device_name(dev)),
                    None)
        _CACHE[key] = same or Backend(name, xp, dev)
    return _CACHE[key]


def cuda_available() -> bool:
    """True when CuPy imports and a CUDA device answers."""
    try:
        _load("cupy")
        return True
    except BackendUnavailable:
        return False


def available_backends() -> dict:
    """``{name: None or reason}`` for every backend on this machine."""
    out = {}
    for name in NAMES:
        try:
            get_backend(name)
            out[name] = None
        except BackendUnavailable as e:
            out[name] = str(e)
    return out


_current: contextvars.ContextVar = contextvars.ContextVar("xpnet_backend", default=None)


def current_backend() -> Backend:
    """The backend in force: set by :func:`use`/:func:`using`, else ``XPNET_BACKEND``, else numpy."""
    b = _current.get()
    if b is None:
        b = get_backend(os.environ.get("XPNET_BACKEND", "numpy"))
        _current.set(b)
    return b


def use(name: str = "auto", device=None) -> Backend:
    """Make ``name`` (on ``device``) the current backend and return it."""
    b = name if isinstance(name, Backend) else get_backend(name, device)
    _current.set(b)
    return b


@contextlib.contextmanager
def using(name: str = "auto", device=None):
    """``with xpnet.using("torch"): ...`` runs the block on that backend."""
    token = _current.set(name if isinstance(name, Backend) else get_backend(name, device))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


# ------------------------------------------------------------ array helpers

def resolve_dtype(xp, dtype):
    """``dtype`` given as a name (``"float32"``) or a dtype of any library, as ``xp``'s dtype."""
    name = dtype if isinstance(dtype, str) else dtype_name(dtype)
    try:
        return getattr(xp, name)
    except AttributeError:
        where = " (torch and jax have bfloat16)" if name == "bfloat16" else ""
        raise TypeError(f"unknown dtype {dtype!r} for the {_name_of_namespace(xp)} backend{where}: "
                        "expected a name such as 'float32' or 'int64'") from None


_ISDTYPE: dict = {}


def isdtype(xp, dtype, kind) -> bool:
    """``xp.isdtype(dtype, kind)``, remembered (NumPy's takes microseconds: too slow per step)."""
    key = (xp, dtype, kind)  # xp first: dtypes of two libraries are never compared
    found = _ISDTYPE.get(key)
    if found is None:
        found = _ISDTYPE[key] = xp.isdtype(dtype, kind)
    return found


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
    return _from_host(host.astype(_np_dtype(resolve_dtype(b.xp, dtype))), b)


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
            _load("jax")
        _NS_BY_TYPE[t] = ns
    return ns


def backend_of(x) -> Backend:
    """The :class:`Backend` that array ``x`` lives on."""
    xp = namespace_of(x)
    for name in NAMES:
        b = _CACHE.get((name, None))
        if b is not None and b.xp is xp:
            dev = array_api_compat.device(x)
            if device_name(dev) == device_name(b.device):
                return b
            return get_backend(name, device_name(dev))
    name = _name_of_namespace(xp)
    return get_backend(name, device_name(array_api_compat.device(x)))


def _name_of_namespace(xp) -> str:
    c = array_api_compat
    for name, test in (("numpy", c.is_numpy_namespace), ("torch", c.is_torch_namespace),
                       ("jax", c.is_jax_namespace), ("cupy", c.is_cupy_namespace),
                       ("array_api_strict", c.is_array_api_strict_namespace)):
        if test(xp):
            return name
    raise TypeError(f"unsupported array namespace {xp!r}")


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
            return x.view(torch.int16).numpy().view(_np_dtype("bfloat16"))
        return x.numpy()
    if c.is_cupy_array(x):
        return x.get()
    if c.is_array_api_strict_namespace(namespace_of(x)):
        return np.asarray(x._array)
    return np.asarray(x)


def transfer(x, backend: Backend):
    """Array ``x`` moved to ``backend`` (library and device): DLPack where it works, else a host copy."""
    src = namespace_of(x)
    if src is backend.xp and device_name(array_api_compat.device(x)) == device_name(backend.device):
        return x
    if src is backend.xp:
        return array_api_compat.to_device(x, backend.device)
    try:
        y = backend.xp.from_dlpack(x)
        if device_name(array_api_compat.device(y)) == device_name(backend.device):
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


def assign(target, value):
    """Write ``value`` into ``target`` in place where the library allows it, and
    return the result (a new array on JAX, whose arrays are immutable)."""
    return xpx.at(target)[...].set(value)


def scatter_add(values, index, size: int):
    """Rows of ``values`` summed into ``size`` rows at positions ``index`` (repeats add up).

    ``values`` has shape ``(len(index), *rest)``; the result ``(size, *rest)``.
    """
    xp = namespace_of(values)
    zeros = xp.zeros((size, *values.shape[1:]), dtype=values.dtype, device=array_api_compat.device(values))
    c = array_api_compat
    if c.is_numpy_array(values):
        np.add.at(zeros, index, values)
        return zeros
    if c.is_torch_array(values):
        return zeros.index_add_(0, index, values)
    if c.is_cupy_array(values):
        import cupyx
        cupyx.scatter_add(zeros, index, values)
        return zeros
    if c.is_jax_array(values):
        return zeros.at[index].add(values)
    return scatter_add_portable(values, index, size)


def scatter_add_portable(values, index, size: int):
    """The standard-only version of :func:`scatter_add`: a one-hot matrix product."""
    xp = namespace_of(values)
    dev = array_api_compat.device(values)
    onehot = xp.astype(index[None, :] == xp.arange(size, dtype=index.dtype, device=dev)[:, None], values.dtype)
    flat = xp.reshape(values, (values.shape[0], -1))
    return xp.reshape(onehot @ flat, (size, *values.shape[1:]))


_pending_checks: list = []  # input checks queued on an accelerator: (values, check)


def require(values, check, defer: bool = True) -> bool:
    """Run ``check(*values)`` (a host function that raises on bad input) on the few
    scalars of 1-D array ``values``.

    On the CPU it runs at once.  On an accelerator that would cost a
    device-to-host synchronization per call, so the check is queued and runs
    at the next read back to the host (:func:`flush_checks`: ``item()``,
    ``numpy()``, the trainer's log interval, or once 64 are queued); returns
    False then.  ``defer=False`` runs it at once everywhere.
    """
    if not defer or on_host(values):
        check(*_host_copy(values).tolist())
        return True
    _pending_checks.append((values, check))
    if len(_pending_checks) >= 64:
        flush_checks()
    return False


def flush_checks():
    """Run the checks queued on an accelerator (one read for all); the first failure raises."""
    if not _pending_checks:
        return
    checks = list(_pending_checks)
    _pending_checks.clear()
    xp = namespace_of(checks[0][0])
    host = _host_copy(xp.concat([xp.astype(v, xp.float64) for v, _ in checks])).tolist()
    start = 0
    for values, check in checks:
        n = values.shape[0]
        check(*host[start:start + n])
        start += n


def index_bounds(index):
    """``(min, max)`` of integer array ``index`` as Python ints when it is non-empty and in host
    memory (no device to wait for); ``None`` otherwise."""
    if math.prod(index.shape) == 0 or not on_host(index):
        return None
    xp = namespace_of(index)
    return int(xp.min(index)), int(xp.max(index))


def check_indices(index, size: int, what: str, defer: bool = True, bounds=None):
    """Check that every entry of ``index`` lies in ``[0, size)`` (IndexError otherwise) and
    return the index to use: on an accelerator the check is deferred (see :func:`require`)
    and the indices are clipped into range meanwhile, so that no kernel reads or writes
    out of bounds (CuPy would wrap them silently, JAX clip them).  ``bounds``: the
    :func:`index_bounds` of ``index`` if the caller has them already."""
    if math.prod(index.shape) == 0:
        return index

    def in_range(lo, hi):
        if lo < 0 or hi >= size:
            raise IndexError(f"{what}: index {int(hi if hi >= size else lo)} is out of range: "
                             f"expected 0 <= index < {size}")

    bounds = index_bounds(index) if bounds is None else bounds
    if bounds is not None:
        in_range(*bounds)
        return index
    xp = namespace_of(index)
    if require(xp.stack([xp.min(index), xp.max(index)]), in_range, defer):
        return index
    return clip(index, 0, size - 1)


def pad(x, pad_width, value=0.0):
    """``x`` padded with ``value``; ``pad_width`` is ``((before, after), ...)`` per axis."""
    return xpx.pad(x, tuple(tuple(p) for p in pad_width), constant_values=value)


def add_slices(shape, pieces):
    """Zeros of ``shape`` with every ``(index, value)`` of ``pieces`` added at ``index``.

    ``index`` is a tuple of slices with positive steps and at most one ``...``
    (axes left out are taken whole); ``value`` has the shape of the slice it
    selects; overlaps add up.  NumPy, CuPy and torch write into one buffer in
    place, copying a piece that no earlier one overlaps (cheaper than adding);
    others go through :func:`add_slices_portable` (on JAX it is several times
    faster than ``.at[].add``, an eager scatter per piece).
    """
    first = pieces[0][1]
    c = array_api_compat
    if not (c.is_numpy_array(first) or c.is_cupy_array(first) or c.is_torch_array(first)):
        return add_slices_portable(shape, pieces)
    z = namespace_of(first).zeros(shape, dtype=first.dtype, device=c.device(first))
    steps, seen = None, set()  # the step pattern shared by the pieces so far, and their phases
    for index, value in pieces:
        key = _phases(index)
        if key is not None and steps in (None, key[0]) and key[1] not in seen:
            z[index] = value  # a phase of its own: no earlier piece overlaps
            steps = key[0]
            seen.add(key[1])
        else:
            view = z[index]
            view += value  # in place on a view: no write-back of the slice
            steps = False if key is None or key[0] != steps else steps  # other steps: add from now on
            if steps is not False:
                seen.add(key[1])
    return z


def _phases(index):
    """``(steps, phases)`` of a tuple of slices with non-negative starts (``...`` kept in
    place), or None: two such indices with equal steps and different phases are disjoint."""
    steps, phases = [], []
    for s in index:
        if s is Ellipsis:
            steps.append(s)
            phases.append(0)
            continue
        if not isinstance(s, slice):
            return None
        start, step = s.start or 0, s.step or 1
        if start < 0 or step < 1:
            return None
        steps.append(step)
        phases.append(start % step)
    return tuple(steps), tuple(phases)


def add_slices_portable(shape, pieces):
    """The standard-only version of :func:`add_slices`, without writes.

    Along an axis of step ``s`` a slice starting at ``s*q + r`` fills every ``s``-th
    place of phase ``r``: each value is zero-padded by ``q`` on the grid of its
    phase, the values of one phase are summed, and the phases are interleaved by
    stacking and reshaping.
    """
    first = pieces[0][1]
    xp, dev, ndim = namespace_of(first), array_api_compat.device(first), len(shape)
    by_steps: dict = {}  # steps -> {phases: sum of the padded values}
    for index, value in pieces:
        index = tuple(index)
        if ... in index:
            at = index.index(...)
            index = index[:at] + (slice(None),) * (ndim - len(index) + 1) + index[at + 1:]
        index = index + (slice(None),) * (ndim - len(index))
        spans = [s.indices(n) if isinstance(s, slice) else (0, 0, 0) for s, n in zip(index, shape)]
        if len(index) != ndim or any(step < 1 for _, _, step in spans) or tuple(value.shape) != tuple(
                len(range(*span)) for span in spans):
            raise ValueError(f"add_slices: index {index} must hold slices with positive steps, selecting the "
                             f"shape of the value {tuple(value.shape)} from shape {tuple(shape)}")
        if math.prod(value.shape) == 0:
            continue
        steps = tuple(step for _, _, step in spans)
        qr = [divmod(start, step) for start, _, step in spans]
        grid = [-(-n // step) for n, step in zip(shape, steps)]
        value = pad(value, [(q, g - q - m) for (q, _), g, m in zip(qr, grid, value.shape)])
        phases = by_steps.setdefault(steps, {})
        r = tuple(r for _, r in qr)
        phases[r] = phases[r] + value if r in phases else value
    total = None
    for steps, phases in by_steps.items():
        grid = tuple(-(-n // step) for n, step in zip(shape, steps))

        def interleave(prefix, a):
            if a == ndim:
                got = phases.get(prefix)
                return got if got is not None else xp.zeros(grid, dtype=first.dtype, device=dev)
            if steps[a] == 1:
                return interleave(prefix + (0,), a + 1)
            return xp.stack([interleave(prefix + (r,), a + 1) for r in range(steps[a])], axis=a + 1)

        z = interleave((), 0)
        if any(s > 1 for s in steps):
            z = xp.reshape(z, tuple(g * s for g, s in zip(grid, steps)))
            if tuple(z.shape) != tuple(shape):
                z = z[tuple(slice(0, n) for n in shape)]
        total = z if total is None else total + z
    return total if total is not None else xp.zeros(tuple(shape), dtype=first.dtype, device=dev)


# ------------------------------------------------------------------ erf

# erfc(z) = t * exp(-z^2 + f(u)) for z >= 0, t = 2 / (2 + z), u = 2t - 1 in (-1, 1]:
# the Chebyshev coefficients of f, computed with mpmath (40 digits) at 60 Chebyshev
# nodes; the terms left out are below 1e-19.  (The same expansion as Numerical
# Recipes' erfccheb, coefficient 0 halved here.)
_ERFC_CHEB = (
    -0.6513268598908547, 0.6419697923564903, 0.019476473204185836, -0.009561514786808632,
    -0.0009465953444820369, 0.00036683949785276145, 4.252332480690777e-05, -2.0278578112534243e-05,
    -1.6242900046470255e-06, 1.3036558355805232e-06, 1.5626441722066143e-08, -8.523809591492654e-08,
    6.529054439098851e-09, 5.059343495551469e-09, -9.91364156493033e-10, -2.273651222931836e-10,
    9.646791102015527e-11, 2.3940380830391147e-12, -6.886027526497553e-12, 8.944879273090726e-13,
    3.130921399342958e-13, -1.1270822361367252e-13, 3.810905255189232e-16, 7.106097613609237e-15,
    -1.5230282014571043e-15, -9.457494571291234e-17, 1.210237189224279e-16, -2.816663087747177e-17,
)
# erf(z) = z * sum_n T_n z^(2n) for |z| < 0.5 (Maclaurin series, 13 terms: error < 1e-17),
# used there because 1 - erfc(z) loses relative accuracy near 0.
_ERF_TAYLOR = tuple(2 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(13))
# Terms (Chebyshev, Maclaurin) enough for float32 (truncation error < 1e-9): half the work.
_TERMS_FLOAT32 = (15, 8)


def _erfc_nonneg(xp, z, terms):
    """erfc(z) for z >= 0 (Clenshaw sum of the first ``terms`` Chebyshev terms)."""
    t = 2.0 / (2.0 + z)
    u2 = 4.0 * t - 2.0
    d = dd = xp.zeros_like(z)
    for c in _ERFC_CHEB[terms - 1:0:-1]:
        d, dd = u2 * d - dd + c, d
    return t * xp.exp(-z * z + _ERFC_CHEB[0] + 0.5 * u2 * d - dd)


def clip(x, lo=None, hi=None):
    """``x`` limited to ``[lo, hi]`` (None: no limit), its dtype and NaNs kept.  The library's
    clip, except on CuPy: there array-api-compat assigns through boolean masks, and each
    such assignment reads a count back from the GPU (a sync), so :func:`clip_portable`."""
    if array_api_compat.is_cupy_array(x):
        return clip_portable(x, lo, hi)
    return namespace_of(x).clip(x, lo, hi)


def clip_portable(x, lo=None, hi=None):
    """:func:`clip` by ``maximum`` and ``minimum``."""
    xp = namespace_of(x)
    if lo is not None:
        x = xp.maximum(x, lo)
    return x if hi is None else xp.minimum(x, hi)


def sign(x):
    """-1, 0 or 1 by the sign of ``x``, NaNs kept: the library's, except on CuPy, where
    array-api-compat's NaN fix-up is a masked assignment (a sync; see :func:`clip`)."""
    if array_api_compat.is_cupy_array(x):
        return sign_portable(x)
    return namespace_of(x).sign(x)


def sign_portable(x):
    """:func:`sign` by comparisons and ``where``."""
    xp = namespace_of(x)
    s = xp.astype(x > 0, x.dtype) - xp.astype(x < 0, x.dtype)
    return xp.where(xp.isnan(x), x, s) if isdtype(xp, x.dtype, "real floating") else s


def erf_portable(x):
    """erf with standard functions only: about 2e-16 relative error in float64 (one ulp in
    float32), some 100 elementwise passes in float64."""
    xp = namespace_of(x)
    cheb, taylor = (len(_ERFC_CHEB), len(_ERF_TAYLOR)) if x.dtype == xp.float64 else _TERMS_FLOAT32
    a = clip(xp.abs(x), 0.0, 10.0)  # erf(10) is 1 to double precision
    s = a * a
    p = xp.full_like(a, _ERF_TAYLOR[taylor - 1])
    for c in _ERF_TAYLOR[taylor - 2::-1]:
        p = p * s + c
    return sign(x) * xp.where(a < 0.5, a * p, 1.0 - _erfc_nonneg(xp, a, cheb))


def erf(x):
    """The error function of array ``x``: the library's own where it has one (SciPy for
    NumPy when installed), else :func:`erf_portable`."""
    c = array_api_compat
    if c.is_torch_array(x):
        import torch
        return torch.special.erf(x)
    if c.is_jax_array(x):
        import jax.scipy.special
        return jax.scipy.special.erf(x)
    if c.is_cupy_array(x):
        import cupyx.scipy.special
        return cupyx.scipy.special.erf(x)
    if c.is_numpy_array(x):
        try:
            import scipy.special
        except ImportError:
            return erf_portable(x)
        return scipy.special.erf(x)
    return erf_portable(x)


def index_zeros_set(shape, index, value):
    """A zero array of ``shape`` with ``value`` written at basic index ``index``."""
    xp = namespace_of(value)
    zeros = xp.zeros(shape, dtype=value.dtype, device=array_api_compat.device(value))
    return xpx.at(zeros)[index].set(value)


# ----------------------------------------------------------------- randomness

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
        return b.xp.asarray(a.astype(_np_dtype(dtype)), device=b.device)

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
        """A boolean mask, True with probability ``p`` (to 2**-24), made on the device."""
        keys = tuple(int(k) for k in self.host.integers(-2**31, 2**31, size=2))
        return random_bits(shape, keys, backend or current_backend()) < round(p * 2**24)

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
    if device_name(backend.device) == "cpu":
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


def _np_dtype(dtype):
    """The NumPy dtype with the same name as a dtype of any library (bfloat16: ml_dtypes')."""
    if isinstance(dtype, np.dtype) or isinstance(dtype, type):
        return np.dtype(dtype)
    name = str(dtype).rsplit(".", 1)[-1].strip("')>")
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def dtype_name(dtype) -> str:
    """``float32``, ``int64``, ... for a dtype of any library."""
    return _np_dtype(dtype).name


# ------------------------------------------------- float32 matmul precision (TF32)

MATMUL_PRECISIONS = ("highest", "high", "medium")
_matmul_precision = "highest"
_precision_applied: dict = {}  # library -> the precision last applied to it (libraries loaded by _load)
_JAX_PRECISION = {"highest": "float32", "high": "tensorfloat32", "medium": "bfloat16"}


def set_float32_matmul_precision(precision: str):
    """Allow faster, less precise float32 matrix products, with PyTorch's names and meaning:

    - ``"highest"`` (the default): full float32 products;
    - ``"high"``: TensorFloat32 allowed (NVIDIA GPUs from Ampere on), or the library's equivalent;
    - ``"medium"``: bfloat16 products allowed where the library has them, else as ``"high"``.

    Applies to every loaded backend and to those loaded later: torch
    (``torch.set_float32_matmul_precision``; xpnet's convolutions are matrix products), JAX
    (``jax_default_matmul_precision`` ``"float32"``/``"tensorfloat32"``/``"bfloat16"``), CuPy (the
    cuBLAS compute type of float32, as ``CUPY_TF32=1`` does; CuPy has no bfloat16 mode for float32,
    so ``"medium"`` is ``"high"``).  It replaces those libraries' own defaults (JAX allows TF32 on
    GPUs by default).  NumPy and array_api_strict have no switch: their float32 is always full
    precision (so is JAX's on the CPU; torch's ``"medium"`` lets oneDNN use bfloat16 on CPUs that
    have it).
    """
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"set_float32_matmul_precision: unknown precision {precision!r}: "
                         f"expected one of {', '.join(map(repr, MATMUL_PRECISIONS))}")
    global _matmul_precision
    _matmul_precision = precision
    for name in list(_precision_applied):
        _apply_matmul_precision(name)


def get_float32_matmul_precision() -> str:
    """The float32 matmul precision in force: ``"highest"``, ``"high"`` or ``"medium"``."""
    return _matmul_precision


def _apply_matmul_precision(name: str):
    """Give library ``name`` (just imported by :func:`_load`) the current precision, once."""
    precision = _matmul_precision
    if _precision_applied.get(name) == precision:
        return
    if name == "torch":
        import torch
        torch.set_float32_matmul_precision(precision)  # xpnet's convolutions are matmuls: no cuDNN flag
    elif name == "jax":
        import jax
        jax.config.update("jax_default_matmul_precision", _JAX_PRECISION[precision])
    elif name == "cupy":
        _set_cupy_precision(precision)
    _precision_applied[name] = precision


def _set_cupy_precision(precision: str):
    """CuPy's cuBLAS compute type for float32 (``set_compute_type``; its ``CUPY_TF32`` variable is
    read only before the first float32 matmul).  Ampere or later, else CuPy warns and keeps float32."""
    for module in ("cupy._core._routines_linalg", "cupy._core._gpu._routines_linalg"):
        try:
            linalg = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(linalg, "set_compute_type"):
            tf32 = precision != "highest"
            # CuPy's enum: COMPUTE_TYPE_DEFAULT = 1, COMPUTE_TYPE_TF32 = 7
            kind = getattr(linalg, "COMPUTE_TYPE_TF32", 7) if tf32 else getattr(linalg, "COMPUTE_TYPE_DEFAULT", 1)
            linalg.set_compute_type(np.float32, kind)
            return
    os.environ["CUPY_TF32"] = "1" if precision != "highest" else "0"


def matmul_precision_note(b: "Backend") -> str:
    """``", TF32 allowed in float32 matmul (...)"`` for a GPU backend when the precision allows
    it, else ``""`` (for the Trainer's device line)."""
    precision = _matmul_precision
    if precision == "highest" or b.name not in ("torch", "jax", "cupy") or not device_name(b.device).startswith("cuda"):
        return ""
    return f", TF32 allowed in float32 matmul (float32 matmul precision {precision!r})"


# ------------------------------------------------------------ out of memory

class OutOfMemoryError(MemoryError):
    """A step ran out of memory on the device (or the host).  The message names the step, the
    batch size, the backend and device, and what to try; ``__cause__`` is the library's error."""


# substrings of the RuntimeErrors the libraries raise for a failed allocation (lower case)
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "status_alloc_failed", "cudaerrormemoryallocation")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from (``raise ... from``), is an array library's
    out-of-memory error: any MemoryError (NumPy's, CuPy's ``cupy.cuda.memory.OutOfMemoryError``,
    xpnet's), ``torch.OutOfMemoryError``, JAX's ``JaxRuntimeError``/``XlaRuntimeError`` whose
    message starts with ``RESOURCE_EXHAUSTED``, or a RuntimeError for a failed allocation (torch's
    CPU allocator, CUDA, cuBLAS/cuDNN ``*_STATUS_ALLOC_FAILED``).  Imports no library."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _is_out_of_memory(exc):
            return True
        exc = exc.__cause__
    return False


def _is_out_of_memory(exc: BaseException) -> bool:
    import sys
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    message = str(exc)
    if type(exc).__module__.split(".")[0] in ("jax", "jaxlib"):
        return message.startswith("RESOURCE_EXHAUSTED")
    return any(m in message.lower() for m in _OOM_MESSAGES)
