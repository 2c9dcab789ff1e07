"""Recording a step: stand-ins for arrays, host numbers and the namespace ``xp``.

During one eager run every array is wrapped in a :class:`TracedArray` holding the
real array and a slot number.  Every operation on it, through its operators or
through the stand-in namespace (:data:`NAMESPACE`), runs for real on the real
arrays and is appended to the :class:`Recorder`'s list as ``(function, argument
template, output slots)``.  Host numbers that change between steps (learning
rates, optimizer step counters) are wrapped alike in :class:`TracedNumber`.
What cannot be replayed (a read back to the host, a random draw on the host)
raises :class:`Unreplayable` naming the operation.

On the host (NumPy, PyTorch CPU, array-api-strict) the bounds of an integer
batch input (class labels, embedding indices: ``xpnet.backend.index_bounds``)
are read during the trace as in eager code, as :class:`TracedBound` numbers:
every comparison made with them (the range check, "is ``ignore_index``
among the labels") is answered from the traced batch and kept as a *guard*
of the program.  A replay first reads the new batch's bounds and checks that
each comparison comes out the same; when one does not (a label out of range,
an ``ignore_index`` that now occurs) that call runs eagerly
(:class:`GuardMiss`).  So the program holds only the path the batch took.
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import os
import traceback

from .. import backend as B
from ..backend import checks as _checks
from ..backend import dtypes as _dtypes
from ..backend import random as _random

__all__ = ["TracedArray", "TracedNumber", "TracedBound", "Recorder", "Unreplayable", "GuardMiss", "Slot",
           "NAMESPACE", "recording"]


class Unreplayable(RuntimeError):
    """The step does something a replay cannot repeat; ``op`` names it."""

    def __init__(self, op: str):
        self.op = op
        super().__init__(op)


class GuardMiss(Exception):
    """A replay's batch fails a guard of the program (see the module's docstring): run this call eagerly."""


class Slot:
    """A reference to slot ``i`` inside an argument template."""

    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i

    def __repr__(self):
        return f"%{self.i}"


@functools.lru_cache(maxsize=None)
def _where() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _caller() -> str:
    """Where the operation was asked for: the innermost frame outside xpnet (the user's
    code), and the innermost one outside xpnet/compile if that is another."""
    pkg = _where()
    here = os.path.join(pkg, "compile")
    stack = traceback.extract_stack()[:-2]
    user = next((f for f in reversed(stack) if not f.filename.startswith(pkg)), None)
    lib = next((f for f in reversed(stack) if not f.filename.startswith(here)), None)
    where = [f"{os.path.relpath(f.filename)}:{f.lineno}" for f in (user, lib) if f is not None]
    if len(where) == 2 and where[0] != where[1]:
        return f"{where[0]}, in {where[1]}"
    return where[0] if where else "?"


# ------------------------------------------------------------------ recorder

class Instr:
    """One recorded call: ``outs = fn(*args, **kwargs)`` with slots in the templates.

    ``outs`` is a slot number, a tuple of them (the result unpacked), or None
    (an in-place operation); ``host`` marks a computation on host numbers."""

    __slots__ = ("fn", "args", "kwargs", "outs", "name", "host", "inplace")

    def __init__(self, fn, args, kwargs, outs, name, host=False, inplace=False):
        self.fn, self.args, self.kwargs, self.outs = fn, args, kwargs, outs
        self.name, self.host, self.inplace = name, host, inplace


_active: list = []  # the recorder of the trace in progress (at most one)


class Recorder:
    """The instructions, slots and checks of one trace on backend ``backend``."""

    def __init__(self, backend, guards: bool = True):
        self.backend = backend
        self.xp = backend.xp
        self.instrs: list = []
        self.values: list = []  # the real value of every slot (during the trace only)
        self.kinds: list = []  # per slot: "state", "input", "host-input", or the producing op's name
        self.checks: list = []  # (slot, check function) of deferred input checks
        self.tracing_backend = None  # ``backend`` with the stand-in namespace (B.backend_of of a stand-in)
        # host reads of batch bounds answered during the trace: {slot: [(bound 0|1, op, other, result)]}
        self.guards = {} if guards else None

    def guard(self, slot):
        """``(min, max)`` of input slot ``slot`` as :class:`TracedBound` (None if not guardable)."""
        if self.guards is None or self.kinds[slot] != "input" or self.backend.name == "jax":
            return None
        bounds = _bounds(self.values[slot])
        if bounds is None:
            return None
        conds = self.guards.setdefault(slot, [])
        return tuple(TracedBound(v, i, conds) for i, v in enumerate(bounds))

    def new_slot(self, value, kind):
        self.values.append(value)
        self.kinds.append(kind)
        return len(self.values) - 1

    def wrap(self, value, kind):
        """A stand-in for ``value`` (an array or a host number) in a new slot."""
        cls = TracedArray if _is_array(value) else TracedNumber
        return cls(value, self.new_slot(value, kind))

    def record(self, fn, args, kwargs=None, name=None, inplace=False):
        """Run ``fn`` on the real values and record it; returns stand-ins for its results."""
        kwargs = kwargs or {}
        targs, real_args = _template(args)
        tkw, real_kw = _template(kwargs)
        out = fn(*real_args, **real_kw)
        name = name or getattr(fn, "__name__", repr(fn))
        host = not _is_array(out) and not _has_array(args) and not _has_array(kwargs)
        if inplace or out is None:
            self.instrs.append(Instr(fn, targs, tkw, None, name, False, inplace=True))
            return out
        if isinstance(out, (tuple, list)) and out and all(_is_array(o) for o in out):
            wrapped = tuple(self.wrap(o, name) for o in out)
            self.instrs.append(Instr(fn, targs, tkw, tuple(w.s for w in wrapped), name, host))
            return type(out)(wrapped) if isinstance(out, tuple) else list(wrapped)
        if isinstance(out, bool) or not (_is_array(out) or isinstance(out, (int, float, tuple))):
            raise Unreplayable(f"{name} returned a {type(out).__name__} on the host (at {_caller()})")
        w = self.wrap(out, name)
        self.instrs.append(Instr(fn, targs, tkw, w.s, name, host))
        return w


def _is_traced(x):
    return isinstance(x, (TracedArray, TracedNumber))


def _has_array(obj):
    if isinstance(obj, TracedArray):
        return True
    if isinstance(obj, (tuple, list)):
        return any(_has_array(o) for o in obj)
    if isinstance(obj, dict):
        return any(_has_array(o) for o in obj.values())
    return False


def _has_traced(obj):
    if _is_traced(obj):
        return True
    if isinstance(obj, (tuple, list)):
        return any(_has_traced(o) for o in obj)
    if isinstance(obj, dict):
        return any(_has_traced(o) for o in obj.values())
    if isinstance(obj, slice):
        return _has_traced((obj.start, obj.stop, obj.step))
    return False


def _template(obj):
    """``(template, real)``: stand-ins replaced by :class:`Slot` and by their values."""
    if _is_traced(obj):
        return Slot(obj.s), obj.v
    if isinstance(obj, (tuple, list)):
        pairs = [_template(o) for o in obj]
        if isinstance(obj, tuple):
            return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if isinstance(obj, dict):
        pairs = {k: _template(v) for k, v in obj.items()}
        return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}
    if isinstance(obj, B.Backend) and obj.xp is NAMESPACE:
        real = _rec().backend
        return real, real
    if isinstance(obj, slice) and _has_traced((obj.start, obj.stop, obj.step)):
        raise Unreplayable(f"a slice bound computed from a traced value (at {_caller()})")
    return obj, obj


def _rec() -> Recorder:
    return _active[-1]


def _host_read(what):
    raise Unreplayable(f"{what}: a read of a traced value on the host (at {_caller()})")


# --------------------------------------------------------------- stand-ins

def _binary(op, reflected=False):
    if reflected:
        def method(self, other):
            return _rec().record(op, (other, self), name=op.__name__)
    else:
        def method(self, other):
            return _rec().record(op, (self, other), name=op.__name__)
    return method


def _inplace(op):
    def method(self, other):
        return _rec().record(op, (self, other), name=op.__name__)
    return method


def _unary(op):
    def method(self):
        return _rec().record(op, (self,), name=op.__name__)
    return method


@functools.lru_cache(maxsize=None)
def _getattr_op(name):
    def get(a):
        return getattr(a, name)
    get.__name__ = f".{name}"
    return get


@functools.lru_cache(maxsize=None)
def _method_op(name):
    def call(a, *args, **kwargs):
        return getattr(a, name)(*args, **kwargs)
    call.__name__ = f".{name}()"
    return call


_BINARY = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and_", "or_", "xor",
           "lshift", "rshift")
_COMPARE = ("lt", "le", "gt", "ge", "eq", "ne")


class TracedArray:
    """An array during a trace: ``v`` the real array, ``s`` its slot."""

    __slots__ = ("v", "s")
    __array_ufunc__ = None  # NumPy defers to the reflected operators below
    __array_priority__ = 2000
    __hash__ = object.__hash__

    def __init__(self, v, s):
        self.v, self.s = v, s

    def __repr__(self):
        return f"TracedArray(%{self.s}, {B.dtype_name(self.v.dtype)}{tuple(self.v.shape)})"

    def __array_namespace__(self, api_version=None):
        return NAMESPACE

    shape = property(lambda self: tuple(self.v.shape))
    dtype = property(lambda self: self.v.dtype)
    ndim = property(lambda self: self.v.ndim)
    size = property(lambda self: math.prod(self.v.shape))
    device = property(lambda self: B.array_api_compat.device(self.v))
    mT = property(lambda self: _rec().record(_getattr_op("mT"), (self,)))
    T = property(lambda self: _rec().record(_getattr_op("T"), (self,)))

    def __len__(self):
        return self.v.shape[0]

    def __getitem__(self, key):
        return _rec().record(operator.getitem, (self, key), name="getitem")

    def __setitem__(self, key, value):
        _rec().record(operator.setitem, (self, key, value), name="setitem", inplace=True)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name.startswith("_"):
            _host_read(f"the private attribute {name} of the array")
        real = getattr(self.v, name)
        if not callable(real):
            return real
        return functools.partial(_call_method, self, name)

    def __float__(self):
        _host_read("float()")

    def __int__(self):
        _host_read("int()")

    def __index__(self):
        _host_read("an index")

    def __bool__(self):
        _host_read("bool() (a Python if on a tensor)")

    def __complex__(self):
        _host_read("complex()")

    def __array__(self, *a, **k):
        _host_read("a conversion to NumPy")

    def __dlpack__(self, *a, **k):
        _host_read("DLPack")

    def item(self):
        _host_read(".item()")

    def tolist(self):
        _host_read(".tolist()")


def _call_method(self, name, *args, **kwargs):
    return _rec().record(_method_op(name), (self,) + args, kwargs)


class TracedNumber:
    """A host number during a trace (a learning rate, a step counter): ``v`` and slot ``s``.

    Arithmetic is recorded; comparisons answer from the current value."""

    __slots__ = ("v", "s")
    __hash__ = object.__hash__

    def __init__(self, v, s):
        self.v, self.s = v, s

    def __repr__(self):
        return f"TracedNumber(%{self.s}, {self.v!r})"

    def __float__(self):
        _host_read(f"float() of a host number that changes between steps ({self.v!r})")

    def __int__(self):
        _host_read(f"int() of a host number that changes between steps ({self.v!r})")

    __index__ = __int__

    def __bool__(self):
        return bool(self.v)

    def __format__(self, spec):
        return format(self.v, spec)


class TracedBound:
    """``min`` (``i = 0``) or ``max`` (``i = 1``) of a batch input, read on the host during a trace.

    Comparisons answer from the traced value ``v`` and append ``(i, op, other, result)``
    to ``conds``: the guards a replay's batch must pass.  ``int()`` guards the exact value."""

    __slots__ = ("v", "i", "conds")

    def __init__(self, v, i, conds):
        self.v, self.i, self.conds = v, i, conds

    def __repr__(self):
        return f"TracedBound({self.v})"

    def __int__(self):
        self.conds.append((self.i, operator.eq, self.v, True))
        return self.v

    __index__ = __int__

    def __format__(self, spec):
        return format(int(self), spec)


def _compare(op):
    def method(self, other):
        if isinstance(other, TracedBound):
            other = int(other)
        r = op(self.v, other)
        self.conds.append((self.i, op, other, r))
        return r
    return method


def _exact(op, reflected=False):
    def method(self, other):  # arithmetic: on the exact value (guarded as such)
        return op(other, int(self)) if reflected else op(int(self), int(other) if isinstance(other, TracedBound) else other)
    return method


for _n in _COMPARE:
    setattr(TracedBound, f"__{_n}__", _compare(getattr(operator, _n)))
for _n in ("add", "sub", "mul", "floordiv", "mod"):
    setattr(TracedBound, f"__{_n}__", _exact(getattr(operator, _n)))
    setattr(TracedBound, f"__r{_n}__", _exact(getattr(operator, _n), reflected=True))
TracedBound.__neg__ = lambda self: -int(self)
TracedBound.__hash__ = None


def _bounds(x):
    """``(min, max)`` of integer array ``x`` as Python ints on the host (None when empty or on a device):
    the array's own methods where it has them (NumPy, PyTorch), else the namespace's."""
    if math.prod(x.shape) == 0 or not B.on_host(x):
        return None
    if hasattr(x, "min") and hasattr(x, "max"):
        return int(x.min()), int(x.max())
    xp = B.namespace_of(x)
    return int(xp.min(x)), int(xp.max(x))


def _bounds_fn(x0):
    """A function giving the ``(min, max)`` of an array like ``x0`` (same type, shape and device,
    as the program's signature fixes) with the least work: NumPy's reductions called directly
    (the array's own library, already imported by the backend), ``aminmax`` on PyTorch."""
    lib = B.library("numpy") if type(x0).__module__ == "numpy" else None
    if lib is not None:
        lo, hi = lib.minimum.reduce, lib.maximum.reduce
        return lambda x: (int(lo(x, axis=None)), int(hi(x, axis=None)))
    if hasattr(x0, "aminmax"):
        def torch_bounds(x):
            lo, hi = x.aminmax()
            return int(lo), int(hi)
        return torch_bounds
    return _bounds


def guard_check(conds, x0):
    """A function ``check(x) -> bool``: whether batch ``x`` (like ``x0``) passes every guard in ``conds``."""
    conds = tuple(c for n, c in enumerate(conds) if c not in conds[:n])
    bounds = _bounds_fn(x0)

    def check(x):
        b = bounds(x)
        if b is None:
            return False
        for i, op, other, r in conds:
            if op(b[i], other) != r:
                return False
        return True
    return check


for _n in _BINARY:
    _op = getattr(operator, _n)
    _name = _n.rstrip("_")
    for _cls in (TracedArray, TracedNumber):
        setattr(_cls, f"__{_name}__", _binary(_op))
        setattr(_cls, f"__r{_name}__", _binary(_op, reflected=True))
    setattr(TracedArray, f"__i{_name}__", _inplace(getattr(operator, f"i{_name}")))
for _n in _COMPARE:
    setattr(TracedArray, f"__{_n}__", _binary(getattr(operator, _n)))
    setattr(TracedNumber, f"__{_n}__", lambda self, other, _op=getattr(operator, _n):
            _op(self.v, other.v if isinstance(other, TracedNumber) else other))
for _n in ("neg", "pos", "abs", "invert"):
    setattr(TracedArray, f"__{_n}__", _unary(getattr(operator, _n)))
for _n in ("neg", "pos", "abs"):
    setattr(TracedNumber, f"__{_n}__", _unary(getattr(operator, _n)))


class _Namespace:
    """Stands in for ``xp``: a call with a traced argument is run and recorded; a call that
    makes a new array is recorded too (made again on each replay, or once if constant);
    dtypes and constants pass through."""

    stands_in = True  # autograd lets its arrays meet real ones of the traced library

    def __getattr__(self, name):
        real = getattr(_rec().xp, name)
        if not callable(real) or isinstance(real, type):
            return real
        return functools.partial(_call_ns, real, name)

    def __repr__(self):
        return "<xpnet tracing namespace>"


_META = frozenset({"result_type", "can_cast", "finfo", "iinfo", "isdtype"})  # dtypes only: fixed by the signature


def _is_array(x) -> bool:
    return B.array_api_compat.is_array_api_obj(x) and not isinstance(x, (int, float, bool, complex))


def _call_ns(real, name, *args, **kwargs):
    if name in _META:
        return real(*_template(args)[1], **_template(kwargs)[1])
    if not (_has_traced(args) or _has_traced(kwargs)):
        out = real(*args, **kwargs)
        if not _is_array(out):
            return out  # a dtype, a bool (isdtype), a namespace-info object
        # a new array (zeros, ones, arange): made again on every replay, a stand-in now
        rec = _rec()
        w = rec.wrap(out, f"xp.{name}")
        rec.instrs.append(Instr(real, args, kwargs, w.s, f"xp.{name}"))
        return w
    return _rec().record(real, args, kwargs, name=f"xp.{name}")


NAMESPACE = _Namespace()


# ------------------------------------------------------ backend helpers patched

def _recorded(orig, name):
    @functools.wraps(orig)
    def helper(*args, **kwargs):
        if _has_traced(args) or _has_traced(kwargs):
            return _rec().record(orig, args, kwargs, name=f"B.{name}")
        return orig(*args, **kwargs)
    return helper


def _backend_of(orig):
    @functools.wraps(orig)
    def backend_of(x):
        if not isinstance(x, TracedArray):
            return orig(x)
        rec = _rec()
        if rec.tracing_backend is None:
            rec.tracing_backend = B.Backend(rec.backend.name, NAMESPACE, rec.backend.device)
        return rec.tracing_backend
    return backend_of


def _as_array(orig):
    @functools.wraps(orig)
    def as_array(data, dtype=None, backend=None):
        if _has_traced(data) or _has_traced(backend):
            return _rec().record(orig, (data, dtype, backend), name="B.as_array")
        shape = getattr(data, "shape", None)
        if shape is None:
            shape = (len(data),) if isinstance(data, (list, tuple)) else ()
        if math.prod(shape) > 1:
            raise Unreplayable(f"an array made from host data inside the step (at {_caller()}): a replay would "
                               "use the same values every time (a random draw on the host? data that changes "
                               "between calls?); pass it as an argument instead")
        out = orig(data, dtype, backend)  # a number: a constant of the program
        rec = _rec()
        w = rec.wrap(out, "B.as_array")
        rec.instrs.append(Instr(orig, (data, dtype, backend), {}, w.s, "B.as_array"))
        return w
    return as_array


def _reading(orig, name):
    @functools.wraps(orig)
    def helper(x, *args, **kwargs):
        if isinstance(x, TracedArray):
            _host_read(f"xpnet.backend.{name} (a read back to the host, e.g. Tensor.item/float/numpy)")
        return orig(x, *args, **kwargs)
    return helper


def _require(orig):
    def require(values, check, defer: bool = True) -> bool:
        if not isinstance(values, TracedArray):
            return orig(values, check, defer)
        rec = _rec()
        rec.checks.append((values.s, check))
        return B.on_host(values.v)  # on the host: checked right after each replay; else deferred
    return require


def _index_bounds(orig):
    def index_bounds(index):
        return _rec().guard(index.s) if isinstance(index, TracedArray) else orig(index)
    return index_bounds


def _isdtype(orig, xp, dtype, kind):
    return orig(_rec().xp if xp is NAMESPACE else xp, dtype, kind)


def _draw_keys(gen):
    """The two 32-bit keys of one :meth:`Generator.bernoulli` draw (as the eager call draws them,
    in this process's stream)."""
    return gen.mask_keys()


def _bernoulli(self, shape, p: float, backend=None):
    rec = _rec()
    b = backend or B.current_backend()
    if b.xp is NAMESPACE:
        b = rec.backend
    keys = rec.record(functools.partial(_draw_keys, self), (), name="draw_keys")
    bits_fn = _random.random_bits_portable if b.name == "jax" else _random.random_bits
    bits = rec.record(functools.partial(bits_fn, tuple(shape)), (keys, b), name="random_bits")
    return bits < round(p * 2**24)


def _host_draw(name):
    def draw(self, *args, **kwargs):
        raise Unreplayable(f"a random draw on the host (Generator.{name}, at {_caller()}): only "
                           "dropout-style masks (Generator.bernoulli) are replayed with fresh keys")
    return draw


_RECORDED = ("clip", "sign", "scatter_add", "pad", "erf", "add_slices", "index_zeros_set", "assign", "transfer",
             "random_bits", "random_bits_portable")


@contextlib.contextmanager
def recording(rec: Recorder):
    """Make ``rec`` the active recorder and patch the backend helpers for the duration."""
    saved = []

    def patch(obj, name, new):
        saved.append((obj, name, getattr(obj, name)))
        setattr(obj, name, new)

    for name in _RECORDED:
        patch(B, name, _recorded(getattr(B, name), name))
    patch(_checks, "clip", B.clip)
    patch(B, "as_array", _as_array(B.as_array))
    patch(B, "backend_of", _backend_of(B.backend_of))
    for name in ("to_numpy", "_host_copy"):
        patch(B, name, _reading(getattr(B, name), name))
    for obj in (B, _checks):
        patch(obj, "require", _require(getattr(obj, "require")))
        patch(obj, "index_bounds", _index_bounds(getattr(obj, "index_bounds")))
    for obj in (B, _dtypes):  # its cache is keyed by namespace: the real one
        patch(obj, "isdtype", functools.partial(_isdtype, getattr(obj, "isdtype")))
    patch(_random.Generator, "bernoulli", _bernoulli)
    for name in ("normal", "uniform", "integers", "permutation", "orthogonal"):
        patch(_random.Generator, name, _host_draw(name))
    _active.append(rec)
    try:
        yield rec
    finally:
        _active.pop()
        for obj, name, old in reversed(saved):
            setattr(obj, name, old)
