"""The state of ``xpnet.autocast`` and the two casts it asks of the operations (here in autograd,
below every operation that casts: softmax lives here too).

Under autocast, matrix products (``matmul`` and the ``@`` operator, ``linear``, the
convolutions, ``prelu``) run in the low precision (``to_low``), and softmax, log-softmax, the
norms and the losses run in float32 (``to_float32``), as PyTorch's autocast op lists say.  As
PyTorch's, the low-precision cast takes float32 (and the other low dtype) only: float64 stays
float64, integers stay integers.  Both casts are differentiable (``astype``): gradients flow back
in each input's own dtype (float32 parameters get float32 gradients).
"""

from __future__ import annotations

from .. import backend as B
from .tensor import _raw

_state = {"dtype": None}


def active_dtype():
    """The low-precision dtype name while autocast is on, else None."""
    return _state["dtype"]


def _floating(x):
    r = _raw(x)
    return hasattr(r, "dtype") and B.namespace_of(r).isdtype(r.dtype, "real floating")


def to_low(*xs):
    """``xs`` (tensors, arrays or None) in the autocast dtype, when autocast is on: those of
    float32, float16 or bfloat16 (PyTorch's eligible inputs: float64 and integers are left alone)."""
    dt = _state["dtype"]
    if dt is None:
        return xs
    from .functions import astype  # (functions imports this module)
    return tuple(astype(x, dt) if x is not None and _floating(x)
                 and B.dtype_name(_raw(x).dtype) in ("float32", "float16", "bfloat16")
                 and B.dtype_name(_raw(x).dtype) != dt else x for x in xs)


def to_float32(x):
    """``x`` in float32 when autocast is on and ``x`` is float16 or bfloat16."""
    if _state["dtype"] is None or x is None or not _floating(x):
        return x
    from .functions import astype
    return astype(x, "float32") if B.dtype_name(_raw(x).dtype) in ("float16", "bfloat16") else x
