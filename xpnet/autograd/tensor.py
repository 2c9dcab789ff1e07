"""Tensor, Function and the reverse-mode backward walk.

A :class:`Function` computes its forward pass on raw arrays of the Array API
namespace ``xp``.  Its backward rule is written once with operators and the
differentiable functions of :mod:`xpnet.autograd.functions`, which accept raw
arrays as well as tensors: on a plain ``backward()`` the rule runs on raw
arrays (no graph, no wrappers), and with ``create_graph=True`` it runs on
tensors, so the gradient is itself differentiable (grad of grad).
"""

from __future__ import annotations

import math
import weakref

from .. import backend as B
from .names import axis_names

_state = {"grad_enabled": True}


def is_grad_enabled() -> bool:
    return _state["grad_enabled"]


class set_grad_enabled:
    """Context manager (and decorator) that turns graph recording on or off."""

    def __init__(self, mode: bool):
        self.mode = mode

    def __enter__(self):
        self.prev = _state["grad_enabled"]
        _state["grad_enabled"] = self.mode

    def __exit__(self, *exc):
        _state["grad_enabled"] = self.prev

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with set_grad_enabled(self.mode):
                return fn(*args, **kwargs)
        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper


class no_grad(set_grad_enabled):
    """``with xpnet.no_grad():`` computes without recording a graph."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    def __init__(self):
        super().__init__(True)


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _describe(x) -> str:
    if isinstance(x, Tensor):
        x = x.data
    if hasattr(x, "shape"):
        return f"{B.dtype_name(x.dtype)}{tuple(x.shape)}"
    return repr(x)


class Function:
    """One differentiable operation with a single output.

    Subclasses define ``forward(self, xp, *xs)`` on raw arrays and
    ``backward(self, g, y, *xs)``, which returns one gradient per input
    (``None`` where ``self.needs[i]`` is false).  ``y`` is the output.
    Called with tensors, a Function returns a Tensor and records the graph;
    called with raw arrays only, it returns the raw result.
    """

    inputs = None
    needs = ()

    def __call__(self, *args):
        first = None
        for a in args:
            if isinstance(a, Tensor):
                first = a
                break
        if first is None:  # raw arrays only: a backward rule running without a graph
            for a in args:
                if hasattr(a, "shape"):
                    return self.forward(B.namespace_of(a), *args)
        xs = [a.data if isinstance(a, Tensor) else a for a in args]
        xp = B.namespace_of(first.data)
        if len(xs) > 1:
            _check_same_backend(self, xp, first.data, xs)
        try:
            y = self.forward(xp, *xs)
        except Exception as e:
            _check_same_device(self, xs)
            raise ValueError(
                f"{type(self).__name__.lower()}: cannot apply to inputs "
                f"{', '.join(_describe(a) for a in args)}: {e}") from e
        out = Tensor(y)
        if _state["grad_enabled"]:
            needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
            if True in needs:
                self.inputs, self.needs, self.xp = args, needs, xp
                self.output = weakref.ref(out)
                out.creator, out.requires_grad = self, True
        return out

    def forward(self, xp, *xs):
        raise NotImplementedError

    def backward(self, g, y, *xs):
        raise NotImplementedError


def _check_same_backend(fn, xp, first, xs):
    """Raise if an array input belongs to another library than ``first``."""
    t0 = type(first)
    for x in xs:
        if type(x) is not t0 and hasattr(x, "shape") and B.namespace_of(x) is not xp:
            if getattr(xp, "stands_in", False) or getattr(B.namespace_of(x), "stands_in", False):
                continue  # a step being traced (xpnet.compile) meets a constant array
            raise TypeError(
                f"{type(fn).__name__.lower()}: inputs live on two backends ({B.backend_of(first).name} "
                f"and {B.backend_of(x).name}): move them to one with tensor.to(...) first")


def _check_same_device(fn, xs):
    """Raise if array inputs live on different devices (checked once an op has failed)."""
    devs = {B.device_name(B.array_api_compat.device(x)) for x in xs if hasattr(x, "shape")}
    if len(devs) > 1:
        raise TypeError(
            f"{type(fn).__name__.lower()}: inputs live on two devices ({' and '.join(sorted(devs))}): "
            "move them to one with tensor.to(device) first")


class _Size(int):
    """``Tensor.size``: the number of elements, an int as the Array API says; calling it as
    PyTorch's ``x.size()`` raises a TypeError that says what to write instead."""

    __slots__ = ()

    def __call__(self, dim=None):
        raise TypeError("Tensor.size is the number of elements (an int: the Array API's attribute), not "
                        "PyTorch's size() method: write x.shape for the shape, x.shape[d] for one axis, "
                        "x.numel() for the element count")


_IN_PLACE = ("xpnet does not change tensors in place (the core treats arrays as immutable): write "
             "x = x.{op}(...) or the operator form; to overwrite a parameter, assign p.data = ... "
             "under xpnet.no_grad()")

#: PyTorch names that xpnet's Tensor lacks, and what to write instead
_PYTORCH_ONLY = {
    "nelement": "write x.numel() or x.size",
    "type": "write x.dtype to read the dtype, x.to(dtype) to convert",
    "grad_fn": "write x.creator (the Function that made x; None for a leaf)",
    "data_ptr": "arrays of the Array API expose no pointers or strides",
    "stride": "arrays of the Array API expose no pointers or strides",
    "storage": "arrays of the Array API expose no pointers or strides",
    "is_contiguous": "arrays of the Array API expose no pointers or strides",
    "index_select": "write xpnet.take(x, index, axis=dim)",
    "masked_fill": "write xpnet.where(mask, value, x)",
    "new_zeros": "write xpnet.zeros(*size, dtype=x.dtype, backend=x.backend)",
    "new_ones": "write xpnet.ones(*size, dtype=x.dtype, backend=x.backend)",
    "new_full": "write xpnet.full(size, value, dtype=x.dtype, backend=x.backend)",
    "new_tensor": "write xpnet.tensor(data, dtype=x.dtype, backend=x.backend)",
    "unbind": "write [x[i] for i in range(x.shape[0])] (or xpnet.split(x, 1, dim) and squeeze)",
    "repeat": "write xpnet.concat([x] * n, axis=d) or x.expand(...)",
    "get_device": "write x.device",
}


class Tensor:
    """A backend array (``.data``) with a gradient and a place in the graph."""

    __slots__ = ("data", "grad", "creator", "requires_grad", "_retain", "__weakref__")
    __array_ufunc__ = None  # NumPy defers to our reflected operators
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False):
        self.data = data
        self.grad = None
        self.creator = None
        self.requires_grad = False
        self._retain = False
        if requires_grad:
            self.requires_grad_(True)

    # -- properties
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        """The number of elements (the Array API's attribute; PyTorch's ``size()`` is ``shape``)."""
        return _Size(math.prod(self.data.shape))

    @property
    def is_cuda(self) -> bool:
        return B.device_name(self.device).startswith("cuda")

    def is_floating_point(self) -> bool:
        return B.dtype_name(self.dtype).startswith(("float", "bfloat"))

    def __getattr__(self, name):
        # only reached for a name Tensor lacks: say what to write instead of PyTorch's
        hint = _PYTORCH_ONLY.get(name)
        if hint is None and name.endswith("_") and not name.startswith("_"):
            hint = _IN_PLACE.format(name=name, op=name[:-1])
        if hint is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        raise AttributeError(f"{type(self).__name__} has no {name!r} (PyTorch's): {hint} "
                             "(docs/pytorch-differences.md lists every such difference)")

    @property
    def device(self):
        return B.array_api_compat.device(self.data)

    @property
    def xp(self):
        """The Array API namespace of this tensor's data."""
        return B.namespace_of(self.data)

    @property
    def backend(self) -> B.Backend:
        return B.backend_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        """The sub-tensors along axis 0 (``for row in t``, ``list(t)``), as PyTorch."""
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    def __array__(self, dtype=None, copy=None):
        """A NumPy copy on the host (``np.asarray(t)``; a device-to-host transfer on a GPU)."""
        a = self.numpy()
        return a if dtype is None else a.astype(dtype, copy=False)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = repr(B.to_numpy(self.data)).replace("array(", "").rstrip(")")
        return f"tensor({body}, backend={self.backend.name}{grad})"

    # -- conversion
    def numpy(self):
        """A NumPy copy of the data (a device-to-host transfer on a GPU)."""
        return B.to_numpy(self.data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def to(self, *args, backend=None, device=None, dtype=None) -> "Tensor":
        """This tensor on another backend and/or device, and/or as another dtype, in PyTorch's
        forms: ``to(dtype)``, ``to("cuda")``, ``to("cpu", xpnet.float64)``, ``to(other)`` (its
        backend and dtype), and xpnet's ``to("torch")``/``to(backend)`` (a :class:`Backend` or a
        name such as ``"jax"`` or ``"torch:cuda"``).  A device alone keeps the library where it
        has that device (NumPy's arrays go to CuPy for ``"cuda"``, CuPy's to NumPy for ``"cpu"``).
        Returns ``self`` when nothing changes; a move cuts the graph (the result is a leaf)."""
        for a in args:
            if isinstance(a, Tensor):
                backend, dtype = a.backend, a.dtype
            elif isinstance(a, B.Backend) or (isinstance(a, str) and a.split(":", 1)[0] in B.NAMES):
                backend = a
            elif B.dtype_name_or_none(a) is not None:
                dtype = a
            else:
                device = a
        out = self
        if backend is not None or device is not None:
            if backend is None:
                b = B.on_device(self.backend, device)
            elif isinstance(backend, B.Backend):
                b = backend
            else:
                b = B.get_backend(backend, device)
            if b is not self.backend:
                out = Tensor(B.transfer(self.data, b), requires_grad=self.requires_grad and self.is_leaf)
        if dtype is not None and B.dtype_name(dtype) != B.dtype_name(out.dtype):
            from .functions import astype
            out = astype(out, B.DTYPE_ALIASES.get(dtype, dtype) if isinstance(dtype, str) else dtype)
        return out

    def cpu(self) -> "Tensor":
        """This tensor in host memory (``to("cpu")``)."""
        return self.to(device="cpu")

    def cuda(self, device=None) -> "Tensor":
        """This tensor on a CUDA device (``to("cuda")``; ``device`` an index or ``"cuda:N"``)."""
        return self.to(device="cuda" if device is None else device if isinstance(device, str) else f"cuda:{device}")

    # -- gradients
    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if flag and not B.array_api_compat.get_namespace(self.data).isdtype(self.data.dtype, "real floating"):
            raise TypeError(
                f"only floating-point tensors can require gradients, got {B.dtype_name(self.dtype)}")
        self.requires_grad = flag
        return self

    def detach_(self) -> "Tensor":
        """Cut this tensor from the graph in place (it becomes a leaf without gradient)."""
        self.creator, self.requires_grad = None, False
        return self

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        self._retain = True

    def zero_grad(self):
        """Forget the accumulated gradient."""
        self.grad = None

    def backward(self, grad=None, retain_graph: bool = False, create_graph: bool = False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is needed unless ``self`` holds one element; ``create_graph``
        records the backward pass so that the gradients can be differentiated.
        """
        from .engine import backward
        backward([self], [grad], retain_graph=retain_graph or create_graph, create_graph=create_graph)

    # -- operators (the functions live in .functions)
    def __add__(self, o): return F.add(self, o)
    def __radd__(self, o): return F.add(o, self)
    def __sub__(self, o): return F.sub(self, o)
    def __rsub__(self, o): return F.sub(o, self)
    def __mul__(self, o): return F.mul(self, o)
    def __rmul__(self, o): return F.mul(o, self)
    def __truediv__(self, o): return F.div(self, o)
    def __rtruediv__(self, o): return F.div(o, self)
    def __pow__(self, o): return F.pow(self, o)
    def __rpow__(self, o): return F.pow(o, self)
    def __matmul__(self, o): return F.matmul(self, o)
    def __rmatmul__(self, o): return F.matmul(o, self)
    def __neg__(self): return F.neg(self)
    def __abs__(self): return F.abs(self)
    def __getitem__(self, key): return F.getitem(self, key)
    def __lt__(self, o): return F.less(self, o)
    def __le__(self, o): return F.less_equal(self, o)
    def __gt__(self, o): return F.greater(self, o)
    def __ge__(self, o): return F.greater_equal(self, o)
    def __eq__(self, o): return F.equal(self, o)
    def __ne__(self, o): return F.not_equal(self, o)
    __hash__ = object.__hash__

    # -- methods, PyTorch names (``dim``/``keepdim`` and ``axis``/``keepdims`` alike: see .names)
    @axis_names
    def sum(self, axis=None, keepdims=False): return F.sum(self, axis, keepdims)
    @axis_names
    def mean(self, axis=None, keepdims=False): return F.mean(self, axis, keepdims)
    @axis_names
    def max(self, axis=None, keepdims=False): return F.max(self, axis, keepdims)
    @axis_names
    def min(self, axis=None, keepdims=False): return F.min(self, axis, keepdims)
    @axis_names
    def var(self, axis=None, correction=None, keepdims=False, *, unbiased=None):
        return F.var(self, axis, correction, keepdims, unbiased=unbiased)
    @axis_names
    def std(self, axis=None, correction=None, keepdims=False, *, unbiased=None):
        return F.std(self, axis, correction, keepdims, unbiased=unbiased)
    @axis_names
    def logsumexp(self, axis=None, keepdims=False): return F.logsumexp(self, axis, keepdims)
    @axis_names
    def argmax(self, axis=None, keepdims=False): return F.argmax(self, axis, keepdims)
    @axis_names
    def argmin(self, axis=None, keepdims=False): return F.argmin(self, axis, keepdims)
    def exp(self): return F.exp(self)
    def log(self): return F.log(self)
    def sqrt(self): return F.sqrt(self)
    def tanh(self): return F.tanh(self)
    def sigmoid(self): return F.sigmoid(self)
    def relu(self): return F.relu(self)
    def abs(self): return F.abs(self)
    def clip(self, min=None, max=None): return F.clip(self, min, max)
    clamp = clip
    def reshape(self, *shape): return F.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)
    view = reshape
    def flatten(self, start_dim=0, end_dim=-1): return F.flatten(self, start_dim, end_dim)
    def permute(self, *axes): return F.permute(self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes)
    def transpose(self, dim0, dim1): return F.transpose(self, dim0, dim1)
    @property
    def T(self): return F.permute(self, tuple(range(self.ndim - 1, -1, -1)))
    @property
    def mT(self): return F.transpose(self, -2, -1)
    @axis_names
    def squeeze(self, axis=None): return F.squeeze(self, axis)
    @axis_names
    def unsqueeze(self, axis): return F.unsqueeze(self, axis)
    def expand(self, *shape): return F.broadcast_to(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)
    def broadcast_to(self, shape): return F.broadcast_to(self, shape)
    def astype(self, dtype): return F.astype(self, dtype)
    def clone(self): return F.clone(self)
    def numel(self) -> int: return self.size
    def dim(self) -> int: return self.ndim
    @axis_names
    def norm(self, p="fro", dim=None, keepdim=False): return F.norm(self, p, dim, keepdim)
    @axis_names
    def split(self, split_size_or_sections, dim=0): return F.split(self, split_size_or_sections, dim)
    @axis_names
    def chunk(self, chunks, dim=0): return F.chunk(self, chunks, dim)
    @axis_names
    def gather(self, dim, index): return F.gather(self, dim, index)
    def add(self, other, *, alpha=1): return F.add(self, other, alpha=alpha)
    def sub(self, other, *, alpha=1): return F.sub(self, other, alpha=alpha)
    def mul(self, other): return F.mul(self, other)
    def div(self, other, *, rounding_mode=None): return F.div(self, other, rounding_mode=rounding_mode)
    def matmul(self, other): return F.matmul(self, other)
    def pow(self, exponent): return F.pow(self, exponent)
    def neg(self): return F.neg(self)

    @axis_names
    def softmax(self, dim, dtype=None):
        from .softmax import softmax
        return softmax(self, dim, dtype)

    @axis_names
    def log_softmax(self, dim, dtype=None):
        from .softmax import log_softmax
        return log_softmax(self, dim, dtype)

    def view_as(self, other): return F.reshape(self, other.shape)
    reshape_as = view_as
    def expand_as(self, other): return F.broadcast_to(self, other.shape)
    def type_as(self, other): return self.to(dtype=other.dtype)
    def t(self): return F.transpose(self, 0, 1) if self.ndim == 2 else self
    def contiguous(self): return self

    # dtype conversions, PyTorch's names (last in the class body: they shadow builtins there)
    def float(self): return self.to(dtype="float32")
    def double(self): return self.to(dtype="float64")
    def half(self): return self.to(dtype="float16")
    def bfloat16(self): return self.to(dtype="bfloat16")
    def long(self): return self.to(dtype="int64")
    def int(self): return self.to(dtype="int32")
    def bool(self): return self.to(dtype="bool")

def tensor(data, dtype=None, requires_grad: bool = False, backend=None, device=None) -> Tensor:
    """A new leaf tensor on the current backend (or ``backend``).

    ``data`` may be a Python scalar, a (nested) list, a tensor, or an array
    of any supported library (moved there by DLPack or through the host).
    Python floats become float32 and Python ints int64, as in PyTorch;
    ``dtype`` (a name such as ``"float64"`` or a dtype) overrides that.
    ``device`` (``"cpu"``, ``"cuda"``, ...) places it as ``Tensor.to(device)`` would.
    Wrap an array without moving it with ``Tensor(array)``.
    """
    if isinstance(data, Tensor):
        data = data.data
    if device is not None:
        b = B.current_backend() if backend is None else (
            backend if isinstance(backend, B.Backend) else B.get_backend(backend))
        backend = B.on_device(b, device)
    return Tensor(B.as_array(data, dtype, backend), requires_grad=requires_grad)


from . import functions as F  # noqa: E402  (operators above dispatch to it)
