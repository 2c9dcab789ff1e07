"""Out-of-memory errors: xpnet's own, and recognising every library's."""

from __future__ import annotations

import sys

class OutOfMemoryError(MemoryError):
    """A step ran out of memory on the device (or the host).  The message names the step, the
    batch size, the backend and device, and what to try; ``__cause__`` is the library's error."""


# substrings of the RuntimeErrors the libraries raise for a failed allocation (lower case)
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "status_alloc_failed", "cudaerrormemoryallocation")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from (``raise ... from``), is an array library's
    out-of-memory error: any MemoryError (NumPy's, CuPy's ``cupy.cuda.memory.OutOfMemoryError``,
    xpnet's), ``torch.OutOfMemoryError``, JAX's ``JaxRuntimeError``/``XlaRuntimeError`` whose
    message starts with ``RESOURCE_EXHAUSTED`` (or says ``Out of memory allocating``), or a RuntimeError for a failed allocation (torch's
    CPU allocator, CUDA, cuBLAS/cuDNN ``*_STATUS_ALLOC_FAILED``).  Imports no library."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _is_out_of_memory(exc):
            return True
        exc = exc.__cause__
    return False


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    message = str(exc)
    if type(exc).__module__.split(".")[0] in ("jax", "jaxlib"):
        # RESOURCE_EXHAUSTED, or (a failure while dispatching, seen on the CPU) INTERNAL: ... Out of memory allocating
        return message.startswith("RESOURCE_EXHAUSTED") or "out of memory allocating" in message.lower()
    return any(m in message.lower() for m in _OOM_MESSAGES)
