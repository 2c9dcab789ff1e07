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
        return math.prod(self.data.shape)

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

    def to(self, backend=None, device=None, dtype=None) -> "Tensor":
        """This tensor on another backend/device (a :class:`Backend` or a name), or as ``dtype``."""
        out = self
        if backend is not None or device is not None:
            if backend is None:
                backend = self.backend.name
            b = backend if isinstance(backend, B.Backend) else B.get_backend(backend, device)
            out = Tensor(B.transfer(self.data, b), requires_grad=self.requires_grad and self.is_leaf)
        if dtype is not None:
            from .functions import astype
            out = astype(out, dtype)
        return out

    # -- gradients
    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if flag and not B.array_api_compat.get_namespace(self.data).isdtype(self.data.dtype, "real floating"):
            raise TypeError(
                f"only floating-point tensors can require gradients, got {B.dtype_name(self.dtype)}")
        self.requires_grad = flag
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

    # -- methods, PyTorch names
    def sum(self, axis=None, keepdims=False): return F.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return F.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return F.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return F.min(self, axis, keepdims)
    def var(self, axis=None, correction=None, keepdims=False): return F.var(self, axis, correction, keepdims)
    def logsumexp(self, axis=None, keepdims=False): return F.logsumexp(self, axis, keepdims)
    def argmax(self, axis=None, keepdims=False): return F.argmax(self, axis, keepdims)
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
    def squeeze(self, axis=None): return F.squeeze(self, axis)
    def unsqueeze(self, axis): return F.unsqueeze(self, axis)
    def expand(self, *shape): return F.broadcast_to(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)
    def broadcast_to(self, shape): return F.broadcast_to(self, shape)
    def astype(self, dtype): return F.astype(self, dtype)
    def float(self): return F.astype(self, "float32")
    def double(self): return F.astype(self, "float64")


def tensor(data, dtype=None, requires_grad: bool = False, backend=None) -> Tensor:
    """A new leaf tensor on the current backend (or ``backend``).

    ``data`` may be a Python scalar, a (nested) list, a tensor, or an array
    of any supported library (moved there by DLPack or through the host).
    Python floats become float32 and Python ints int64, as in PyTorch;
    ``dtype`` (a name such as ``"float64"`` or a dtype) overrides that.
    Wrap an array without moving it with ``Tensor(array)``.
    """
    if isinstance(data, Tensor):
        data = data.data
    return Tensor(B.as_array(data, dtype, backend), requires_grad=requires_grad)


from . import functions as F  # noqa: E402  (operators above dispatch to it)
