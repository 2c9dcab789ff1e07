"""Creation functions with PyTorch's names and arguments: ``zeros``, ``ones``, ``full``,
``empty``, ``arange``, ``linspace``, ``eye``, ``rand``, ``randn``, ``randint``, their
``*_like`` forms, ``from_numpy`` and ``as_tensor``.

Every one takes ``dtype=`` (``xpnet.float32``, a name such as ``"float64"``, or any
library's dtype), ``device=`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``: on the current
backend's library, NumPy's arrays going to CuPy for ``"cuda"``), ``requires_grad=`` and
``backend=`` (a name or :class:`~xpnet.Backend`; default the current one).  Shapes are
given as varargs or one tuple (``zeros(2, 3)`` or ``zeros((2, 3))``).  Default dtypes are
PyTorch's: float32 for floating values, int64 for integers (``arange(5)``, ``randint``),
bool for ``full(..., True)``.

The random ones (``rand``, ``randn``, ``randint`` and their ``*_like``) draw from the
seeded generator (``xpnet.manual_seed``, or ``generator=``) on the host, so a seed gives
the same numbers on every backend (not the numbers PyTorch's generator gives).
"""

from __future__ import annotations

import operator

from .. import backend as B
from .tensor import Tensor

__all__ = ["zeros", "ones", "full", "empty", "arange", "linspace", "eye", "rand", "randn", "randint",
           "zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like", "randint_like",
           "from_numpy", "as_tensor"]


def _where(device=None, backend=None, like=None) -> B.Backend:
    """The backend (library and device) a new tensor goes to."""
    if backend is not None:
        b = backend if isinstance(backend, B.Backend) else B.get_backend(backend)
    else:
        b = B.current_backend() if like is None else B.backend_of(like)
    return b if device is None else B.on_device(b, device)


def _size(size, who: str) -> tuple:
    """The shape given as varargs or as one tuple/list, checked."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    try:
        out = tuple(operator.index(n) for n in size)
    except TypeError:
        raise TypeError(f"{who}: the size must be integers (varargs or one tuple), got {size!r}") from None
    if any(n < 0 for n in out):
        raise ValueError(f"{who}: negative dimension in size {out}")
    return out


def _dtype(b: B.Backend, dtype, default):
    return B.resolve_dtype(b.xp, default if dtype is None else dtype)


def _made(arr, requires_grad: bool) -> Tensor:
    return Tensor(arr, requires_grad=requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False, backend=None) -> Tensor:
    """A tensor of zeros of shape ``size`` (float32 unless ``dtype``)."""
    b = _where(device, backend)
    return _made(b.xp.zeros(_size(size, "zeros"), dtype=_dtype(b, dtype, "float32"), device=b.device), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False, backend=None) -> Tensor:
    """A tensor of ones of shape ``size`` (float32 unless ``dtype``)."""
    b = _where(device, backend)
    return _made(b.xp.ones(_size(size, "ones"), dtype=_dtype(b, dtype, "float32"), device=b.device), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False, backend=None) -> Tensor:
    """An uninitialized tensor of shape ``size`` (its values are whatever the memory held)."""
    b = _where(device, backend)
    return _made(b.xp.empty(_size(size, "empty"), dtype=_dtype(b, dtype, "float32"), device=b.device), requires_grad)


def _scalar_dtype(value) -> str:
    """PyTorch's dtype for a Python scalar: bool, int64 or float32."""
    if isinstance(value, bool):
        return "bool"
    return "int64" if isinstance(value, int) else "float32"


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False, backend=None) -> Tensor:
    """A tensor of shape ``size`` filled with ``fill_value``; the dtype follows the value
    (bool, int64, float32) unless ``dtype`` says otherwise, as in PyTorch."""
    b = _where(device, backend)
    dt = _dtype(b, dtype, _scalar_dtype(fill_value))
    return _made(b.xp.full(_size((size,), "full"), fill_value, dtype=dt, device=b.device), requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad: bool = False,
           backend=None) -> Tensor:
    """``[start, end)`` in steps of ``step`` (``arange(n)``: 0..n-1); int64 when every bound
    is an integer, else float32, unless ``dtype``."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    b = _where(device, backend)
    ints = all(isinstance(v, int) for v in (start, end, step))
    return _made(b.xp.arange(start, end, step, dtype=_dtype(b, dtype, "int64" if ints else "float32"),
                             device=b.device), requires_grad)


def linspace(start, end, steps: int, *, dtype=None, device=None, requires_grad: bool = False,
             backend=None) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (float32 unless ``dtype``)."""
    if operator.index(steps) < 0:
        raise ValueError(f"linspace: steps must be non-negative, got {steps}")
    b = _where(device, backend)
    return _made(b.xp.linspace(start, end, steps, dtype=_dtype(b, dtype, "float32"), device=b.device),
                 requires_grad)


def eye(n: int, m=None, *, dtype=None, device=None, requires_grad: bool = False, backend=None) -> Tensor:
    """The ``n`` x ``m`` (default ``n`` x ``n``) identity matrix (float32 unless ``dtype``)."""
    b = _where(device, backend)
    return _made(b.xp.eye(n, m, dtype=_dtype(b, dtype, "float32"), device=b.device), requires_grad)


def _random(draw, shape, dtype, b, generator, requires_grad, default="float32"):
    gen = generator or B.default_generator()
    dt = _dtype(b, dtype, default)  # checked on the backend before anything is drawn
    return _made(draw(gen, shape, dt, b), requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False, backend=None) -> Tensor:
    """Uniform samples in [0, 1) of shape ``size`` from the seeded generator."""
    return _random(lambda g, s, d, b: g.uniform(s, dtype=d, backend=b), _size(size, "rand"), dtype,
                   _where(device, backend), generator, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False, backend=None) -> Tensor:
    """Standard normal samples of shape ``size`` from the seeded generator."""
    return _random(lambda g, s, d, b: g.normal(s, dtype=d, backend=b), _size(size, "randn"), dtype,
                   _where(device, backend), generator, requires_grad)


def randint(*args, size=None, generator=None, dtype=None, device=None, requires_grad: bool = False,
            backend=None) -> Tensor:
    """Integers drawn uniformly from ``[low, high)``, PyTorch's ``randint(low=0, high, size)``:
    ``randint(10, (3,))``, ``randint(1, 7, (2, 2))`` or ``size=`` as a keyword; int64 unless ``dtype``."""
    if size is None and args and isinstance(args[-1], (tuple, list)):
        args, size = args[:-1], args[-1]
    if size is None or len(args) not in (1, 2):
        raise TypeError("randint: expected randint(high, size) or randint(low, high, size), "
                        f"got {len(args)} bounds and size={size!r}")
    low, high = (0, args[0]) if len(args) == 1 else args
    if high <= low:
        raise ValueError(f"randint: empty range [{low}, {high}): expected low < high")
    return _random(lambda g, s, d, b: g.integers(low, high, s, dtype=d, backend=b), _size((size,), "randint"),
                   dtype, _where(device, backend), generator, requires_grad, default="int64")


# ------------------------------------------------------------------ *_like

def _like(input, dtype, device, backend):
    x = input.data if isinstance(input, Tensor) else input
    b = _where(device, backend, like=x)
    return tuple(x.shape), (x.dtype if dtype is None else dtype), b


def zeros_like(input, *, dtype=None, device=None, requires_grad: bool = False, backend=None) -> Tensor:
    """Zeros with the shape of ``input`` and its dtype and device unless given."""
    shape, dt, b = _like(input, dtype, device, backend)
    return zeros(shape, dtype=dt, requires_grad=requires_grad, backend=b)


def ones_like(input, *, dtype=None, device=None, requires_grad: bool = False, backend=None) -> Tensor:
    shape, dt, b = _like(input, dtype, device, backend)
    return ones(shape, dtype=dt, requires_grad=requires_grad, backend=b)


def empty_like(input, *, dtype=None, device=None, requires_grad: bool = False, backend=None) -> Tensor:
    shape, dt, b = _like(input, dtype, device, backend)
    return empty(shape, dtype=dt, requires_grad=requires_grad, backend=b)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad: bool = False, backend=None) -> Tensor:
    shape, dt, b = _like(input, dtype, device, backend)
    return full(shape, fill_value, dtype=dt, requires_grad=requires_grad, backend=b)


def rand_like(input, *, generator=None, dtype=None, device=None, requires_grad: bool = False,
              backend=None) -> Tensor:
    shape, dt, b = _like(input, dtype, device, backend)
    return rand(shape, generator=generator, dtype=dt, requires_grad=requires_grad, backend=b)


def randn_like(input, *, generator=None, dtype=None, device=None, requires_grad: bool = False,
               backend=None) -> Tensor:
    shape, dt, b = _like(input, dtype, device, backend)
    return randn(shape, generator=generator, dtype=dt, requires_grad=requires_grad, backend=b)


def randint_like(input, low=0, high=None, *, generator=None, dtype=None, device=None,
                 requires_grad: bool = False, backend=None) -> Tensor:
    """``randint_like(x, high)`` or ``randint_like(x, low, high)``, with ``x``'s shape and dtype."""
    if high is None:
        low, high = 0, low
    shape, dt, b = _like(input, dtype, device, backend)
    return randint(low, high, shape, generator=generator, dtype=dt, requires_grad=requires_grad, backend=b)


# ------------------------------------------------------------------ from existing data

def from_numpy(ndarray) -> Tensor:
    """A tensor from a NumPy array.  On the NumPy backend it shares the array's memory (as
    ``torch.from_numpy``); on another backend the data are copied there.
    Raises TypeError for anything but a NumPy array."""
    if type(ndarray).__module__ != "numpy" or type(ndarray).__name__ != "ndarray":
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(ndarray).__name__}")
    return Tensor(B.as_array(ndarray))


def as_tensor(data, dtype=None, device=None, backend=None) -> Tensor:
    """``data`` as a tensor, without a copy where it already is one (or an array of the target
    backend) of that dtype and device, as ``torch.as_tensor``."""
    if isinstance(data, Tensor):
        same = dtype is None or B.dtype_name(data.dtype) == B.dtype_name(dtype)
        if same and device is None and backend is None:
            return data
        data = data.data
    b = _where(device, backend)
    return Tensor(B.as_array(data, dtype, b))

