"""Choosing an array library and a device: the selector.

A :class:`Backend` bundles an array namespace ``xp`` (Array API 2024.12) and a
device.  The current backend lives in a context variable: :func:`use` sets it,
:func:`using` sets it for a ``with`` block, and ``XPNET_BACKEND`` (e.g. ``numpy``,
``torch:cpu``, ``cupy:cuda:1``) picks the starting one.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
from dataclasses import dataclass
from typing import Any

import array_api_compat

from . import precision

API_VERSION = "2024.12"
NAMES = ("numpy", "array_api_strict", "torch", "jax", "cupy")


class BackendUnavailable(RuntimeError):
    """A backend or device was asked for that cannot run on this machine."""


# ---------------------------------------------------------------- namespaces

_MODULES = {"numpy": "numpy", "array_api_strict": "array_api_strict", "torch": "torch", "jax": "jax.numpy",
            "cupy": "cupy"}


def library(backend):
    """The array library's own module behind ``backend`` (a :class:`Backend` or its name):
    numpy, torch, cupy, jax.numpy or array_api_strict, for the few callers that reach a
    library's kernels directly (``xpnet.compile``'s passes).  KeyError for an unknown name."""
    return importlib.import_module(_MODULES[getattr(backend, "name", backend)])


def _load(name: str):
    """Import the array library behind ``name`` and return its namespace, or
    raise :class:`BackendUnavailable` with the cause and the fix."""
    installs = {
        "cupy": "pip install 'xpnet[gpu]' (CuPy for CUDA 12/13)",
        "torch": "pip install torch",
        "jax": "pip install jax",
        "array_api_strict": "pip install array-api-strict",
    }
    module = _MODULES.get(name)
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
        precision.apply_matmul_precision(name)
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
    precision.apply_matmul_precision(name)
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
        from .arrays import as_array  # arrays builds on this module
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


def on_device(b: Backend, device) -> Backend:
    """The backend that holds arrays like ``b``'s on ``device`` (PyTorch's ``x.to("cuda")``).

    ``device`` is ``"cpu"``, ``"cuda"``, ``"cuda:N"``, a library's device object, or a
    :class:`Backend` (returned as is).  The same library when it has that device; NumPy's
    arrays go to CuPy for ``"cuda"`` and CuPy's to NumPy for ``"cpu"`` (the host twin).
    Raises BackendUnavailable when no installed library can hold them there.
    """
    if isinstance(device, Backend):
        return device
    if not isinstance(device, str):
        device = device_name(device)
    if ":" in device and device.split(":", 1)[0] in NAMES:  # "torch:cuda": a backend spec
        return get_backend(device)
    kind = device.split(":", 1)[0]
    if b.name == "numpy" and kind == "cuda":
        return get_backend("cupy", device)
    if b.name == "cupy" and kind == "cpu":
        return get_backend("numpy")
    return get_backend(b.name, device)


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


def name_of_namespace(xp) -> str:
    c = array_api_compat
    for name, test in (("numpy", c.is_numpy_namespace), ("torch", c.is_torch_namespace),
                       ("jax", c.is_jax_namespace), ("cupy", c.is_cupy_namespace),
                       ("array_api_strict", c.is_array_api_strict_namespace)):
        if test(xp):
            return name
    raise TypeError(f"unsupported array namespace {xp!r}")


def matmul_precision_note(b: "Backend") -> str:
    """``", TF32 allowed in float32 matmul (...)"`` for a GPU backend when the precision allows
    it, else ``""`` (for the Trainer's device line)."""
    allowed = precision.get_float32_matmul_precision()
    if allowed == "highest" or b.name not in ("torch", "jax", "cupy") or not device_name(b.device).startswith("cuda"):
        return ""
    return f", TF32 allowed in float32 matmul (float32 matmul precision {allowed!r})"
