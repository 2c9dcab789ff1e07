"""Rewrites of a traced program on NumPy and PyTorch (CPU) that keep its results bitwise.

* **Resolution**: calls through array-api-compat's Python wrappers (and NumPy's
  Python-level functions such as ``np.sum``) become the kernels or array methods
  they end in (``np.add.reduce``, ``ndarray.reshape``, ``Tensor.amax``), by a table
  per library.
* **Cast fusion**: ``a * astype(mask, float)`` (``+``, ``-``), the cast used
  nowhere else, becomes ``a * mask``: the library casts the bool inside the
  operation.
* **Buffers** (``out=``): a temporary made by an elementwise operation, a
  reduction or a matrix product is written into a buffer of its own, made at the
  trace and reused by every replay, when no input, output or surviving view of
  it can reach the caller.  A convolution's padding (``add_slices`` of one piece)
  copies into a zeroed buffer whose border stays zero.

Every rewrite is tried on the traced arguments at the trace and kept only if it
gives the traced result bitwise (same type, dtype, shape and bytes).  The
buffers make a compiled step non-reentrant (one call at a time per compiled
function) and keep one step's temporaries allocated between calls.
"""

from __future__ import annotations

import operator

from .. import backend as B
from .trace import Slot

__all__ = ["optimize"]


def _slots_in(template, out):
    if isinstance(template, Slot):
        out.add(template.i)
    elif isinstance(template, (tuple, list)):
        for t in template:
            _slots_in(t, out)
    elif isinstance(template, dict):
        for t in template.values():
            _slots_in(t, out)
    return out


def _uses(ins):
    return _slots_in(ins.kwargs, _slots_in(ins.args, set()))


def _outs(ins):
    return () if ins.outs is None else (ins.outs if isinstance(ins.outs, tuple) else (ins.outs,))


class _Values(dict):
    """The traced value of every slot, as the mapping :func:`_substitute` takes."""

    def __init__(self, values):
        self.values = values

    def get(self, i, default=None):
        return self.values[i]

    def __getitem__(self, i):
        return self.values[i]


def _substitute(template, const):
    if isinstance(template, Slot):
        return const.get(template.i, template)
    if isinstance(template, tuple):
        return tuple(_substitute(t, const) for t in template)
    if isinstance(template, list):
        return [_substitute(t, const) for t in template]
    if isinstance(template, dict):
        return {k: _substitute(v, const) for k, v in template.items()}
    return template


# --------------------------------------------- array-api-compat wrappers resolved

def _plain(ins, names=()):
    """``ins``'s one array argument and its keyword arguments, if they are only ``names``."""
    if len(ins.args) != 1 or not isinstance(ins.args[0], Slot) or set(ins.kwargs) - set(names):
        return None
    return ins.args[0]


def _numpy_table(xp):
    """NumPy: the compat namespace's Python wrappers and NumPy's own Python-level functions
    replaced by the ufunc reductions and array methods they end in (same kernels, same order)."""
    def reduction(ufunc):
        def make(ins, v):
            x = _plain(ins, ("axis", "keepdims"))
            if x is None:
                return None
            return ufunc.reduce, (x,), {"axis": ins.kwargs.get("axis"), "keepdims": ins.kwargs.get("keepdims", False)}
        return make

    def method(name, kw=()):
        def make(ins, v):
            if set(ins.kwargs) - set(kw):
                return None
            return getattr(type(v), name), ins.args, ins.kwargs
        return make

    def expand_dims(ins, v):
        x, axis, ndim = _plain(ins, ("axis",)), ins.kwargs.get("axis", 0), v.ndim
        if x is None or not isinstance(axis, int) or not -ndim - 1 <= axis <= ndim:
            return None
        axis = axis % (ndim + 1)
        return operator.getitem, (x, (slice(None),) * axis + (None,)), {}

    return {"xp.sum": reduction(xp.add), "xp.max": reduction(xp.maximum), "xp.min": reduction(xp.minimum),
            "xp.reshape": method("reshape"), "xp.permute_dims": method("transpose"),
            "xp.astype": method("astype"), "xp.squeeze": method("squeeze", ("axis",)),
            "xp.expand_dims": expand_dims, "xp.matmul": lambda ins, v: (operator.matmul, ins.args, {})
            if not ins.kwargs and len(ins.args) == 2 else None}


def _torch_table(xp):
    """PyTorch: the compat namespace's wrappers replaced by the tensor methods they call."""
    def reduction(name):
        def make(ins, v):
            x = _plain(ins, ("axis", "keepdims"))
            axis = ins.kwargs.get("axis")
            if x is None or axis is None or axis == ():
                return None
            return getattr(type(v), name), (x, axis), {"keepdim": ins.kwargs.get("keepdims", False)}
        return make

    def positional(name, kw):
        def make(ins, v):
            if kw is None and ins.kwargs or kw and (_plain(ins, (kw,)) is None or kw not in ins.kwargs):
                return None
            return getattr(type(v), name), ins.args + ((ins.kwargs[kw],) if kw else ()), {}
        return make

    def astype(ins, v):
        if ins.kwargs or len(ins.args) != 2 or ins.args[1] == v.dtype:  # Tensor.to returns v itself then
            return None
        return type(v).to, ins.args, {}

    def two_arg(name):  # maximum(x, 0.0): the wrapper makes a tensor of the number on every call
        def make(ins, v):
            if ins.kwargs or len(ins.args) != 2 or not isinstance(ins.args[1], (int, float)) \
                    or isinstance(ins.args[1], bool):
                return None
            return getattr(type(v), name), (ins.args[0], xp.asarray(ins.args[1], dtype=xp.result_type(v, ins.args[1]),
                                                                    device=v.device)), {}
        return make

    def where(ins, v):  # where(c, x, y) with x a tensor: x.where(c, y)
        if ins.kwargs or len(ins.args) != 3 or not isinstance(ins.args[1], Slot):
            return None
        return type(v).where, (ins.args[1], ins.args[0], ins.args[2]), {}

    return {"xp.maximum": two_arg("maximum"), "xp.minimum": two_arg("minimum"), "xp.where": where,
            "xp.sum": reduction("sum"), "xp.max": reduction("amax"), "xp.min": reduction("amin"),
            "xp.reshape": positional("reshape", None), "xp.permute_dims": positional("permute", None),
            "xp.expand_dims": positional("unsqueeze", "axis"), "xp.squeeze": positional("squeeze", "axis"),
            "xp.astype": astype, "xp.matmul": lambda ins, v: (operator.matmul, ins.args, {})
            if not ins.kwargs and len(ins.args) == 2 else None}


_TABLES = {"numpy": _numpy_table, "torch": _torch_table}


def _same(a, b) -> bool:
    """Whether arrays ``a`` and ``b`` have the same type, dtype, shape and bytes."""
    if type(a) is not type(b) or a.dtype != b.dtype or tuple(a.shape) != tuple(b.shape):
        return False
    return B.to_numpy(a).tobytes() == B.to_numpy(b).tobytes()


def _resolve(instrs, values, backend):
    """Replace calls through array-api-compat (and NumPy's Python-level functions) by the library's
    own kernels or array methods (see the tables), each checked at the trace: it must give the
    recorded result bitwise on the recorded arguments, else the call is kept as it was."""
    make = _TABLES.get(backend.name)
    if make is None:
        return 0
    table, n = make(backend.xp), 0
    mt = operator.attrgetter("mT")
    for ins in instrs:
        if ins.name == ".mT":
            ins.fn, n = mt, n + 1
            continue
        rule = table.get(ins.name)
        if rule is None or ins.host or ins.inplace or not isinstance(ins.outs, int) or not ins.args \
                or not isinstance(ins.args[0], Slot):
            continue
        x = values[ins.args[0].i]
        if not hasattr(x, "dtype") or not B.on_host(x):
            continue
        try:
            new = rule(ins, x)
            if new is None:
                continue
            fn, args, kwargs = new
            got = fn(*_substitute(args, values), **_substitute(kwargs, values))
            if not _same(got, values[ins.outs]):
                continue
        except Exception:
            continue
        ins.fn, ins.args, ins.kwargs, n = fn, args, kwargs, n + 1
    return n


_MIXED = (operator.mul, operator.add, operator.sub)


def _fuse_casts(instrs, values, backend, escaping):
    """NumPy, PyTorch: ``a * astype(mask, float)`` (or ``+``, ``-``) with the cast used nowhere else becomes
    ``a * mask`` (NumPy casts the bool mask inside the operation: the same numbers, one call and
    one array less; a ReLU's backward, softmax minus one-hot).  Each checked bitwise at the trace.  Returns the instructions."""
    if backend.name not in ("numpy", "torch"):
        return instrs
    users = {}
    for ins in instrs:
        for s in _uses(ins):
            users.setdefault(s, []).append(ins)
    gone = set()
    for ins in instrs:
        if ins.name != "xp.astype" or ins.kwargs or len(ins.args) != 2 or not isinstance(ins.outs, int) \
                or not isinstance(ins.args[0], Slot) or ins.outs in escaping or len(users.get(ins.outs, ())) != 1:
            continue
        mask, use = values[ins.args[0].i], users[ins.outs][0]
        if not hasattr(mask, "dtype") or not B.isdtype(backend.xp, mask.dtype, "bool") or use.fn not in _MIXED or use.kwargs or len(use.args) != 2:
            continue
        args = tuple(ins.args[0] if isinstance(a, Slot) and a.i == ins.outs else a for a in use.args)
        other = [a for a in args if not (isinstance(a, Slot) and a.i == ins.args[0].i)]
        if len(other) != 1 or not isinstance(other[0], Slot) or values[other[0].i].dtype != values[ins.outs].dtype:
            continue
        try:
            if not _same(use.fn(*_substitute(args, values)), values[use.outs]):
                continue
        except Exception:
            continue
        use.args = args
        gone.add(id(ins))
    return [ins for ins in instrs if id(ins) not in gone]


# ------------------------------------------------------- out= buffers (NumPy)

_UFUNC_OF = {operator.add: "add", operator.sub: "subtract", operator.mul: "multiply", operator.truediv: "divide",
             operator.gt: "greater", operator.ge: "greater_equal", operator.lt: "less", operator.le: "less_equal",
             operator.eq: "equal", operator.ne: "not_equal", operator.neg: "negative"}


def _pad_into(shape, pieces, out):
    """:func:`xpnet.backend.add_slices` of one piece into ``out``, a buffer of zeros of ``shape``
    whose part outside the piece no replay writes: only the piece is copied."""
    (index, value), = pieces
    out[index] = value
    return out


_NEW = frozenset({"xp.where", "xp.stack", "xp.concat", "xp.astype", "B.add_slices"})  # uses that copy
_VIEWS = frozenset({".mT", "xp.reshape", "xp.permute_dims", "xp.squeeze", "xp.expand_dims", "getitem"})


_TORCH_OF = {operator.add: "add", operator.sub: "sub", operator.mul: "mul", operator.truediv: "div",
             operator.matmul: "matmul", operator.gt: "gt", operator.ge: "ge", operator.lt: "lt", operator.le: "le",
             operator.eq: "eq", operator.ne: "ne", operator.neg: "neg"}


def _buffers(instrs, values, backend, escaping):
    """``{slot: (function, buffer)}``: on NumPy and PyTorch (CPU), the temporaries that an elementwise operation, a
    reduction or a matrix product makes, written instead into a buffer of their own, made once
    and reused by every replay (``out=``).  Only for a slot that is no input or output of the
    program and whose every use makes a new array (so no view of the buffer outlives the replay),
    and where the ``out=`` call gives the traced result bitwise on the traced arguments."""
    xp = backend.xp
    if backend.name == "numpy":
        ufunc = type(xp.add)
        by_op = {op: getattr(xp, name) for op, name in _UFUNC_OF.items()}
        matmul = getattr(B.library(backend), "matmul", None)  # NumPy's own
        by_op[operator.matmul] = matmul if isinstance(matmul, ufunc) else xp.matmul  # compat's passes ``out`` on

        def out_form(fn):
            if fn in by_op:
                return by_op[fn]
            if isinstance(fn, ufunc) or (getattr(fn, "__name__", None) == "reduce" and isinstance(fn.__self__, ufunc)):
                return fn
            return None
    elif backend.name == "torch":
        torch = B.library(backend)
        T = torch.Tensor
        by_op = {op: getattr(torch, name) for op, name in _TORCH_OF.items()}
        by_op.update({f: f for f in (torch.exp, torch.log, torch.sqrt)})
        by_op.update({T.maximum: torch.maximum, T.minimum: torch.minimum, T.sum: torch.sum, T.amax: torch.amax,
                      T.amin: torch.amin})
        out_form = by_op.get
    else:
        return {}

    def padding(ins):  # B.add_slices of one piece: zeros around a copy (a convolution's padding)
        return _pad_into if ins.name == "B.add_slices" and len(ins.args) == 2 and len(ins.args[1]) == 1 else None

    users = {}
    for ins in instrs:
        for s in _uses(ins):
            users.setdefault(s, []).append(ins)
    safe = {}  # slot -> no view of it outlives the replay (its uses make new arrays, or safe views)
    for ins in reversed(instrs):
        for s in _outs(ins):
            safe[s] = s not in escaping and all(
                not u.inplace and not u.host and (out_form(u.fn) is not None or u.name in _NEW
                                                  or (u.name in _VIEWS and safe.get(u.outs, False)))
                and not (u.name == "xp.astype" and "copy" in u.kwargs)
                for u in users.get(s, ()))
    array = type(xp.empty(0))
    out = {}
    for ins in instrs:
        s = ins.outs
        fn = out_form(ins.fn) or padding(ins)
        if fn is None or not isinstance(s, int) or not safe.get(s) or ins.inplace or ins.host:
            continue
        v = values[s]
        if type(v) is not array or v.ndim < 1 or not B.on_host(v):
            continue
        try:
            buf = xp.zeros_like(v) if fn is _pad_into else xp.empty_like(v)
            got = fn(*_substitute(ins.args, values), **_substitute(ins.kwargs, values), out=buf)
            if got is not buf or not _same(got, v):
                continue
        except Exception:
            continue
        out[s] = (fn, buf)
    return out


def optimize(instrs, values, backend, escaping):
    """``(instrs, resolved, fused, buffers)``: the instructions after resolution and cast fusion,
    how many calls were resolved and casts fused, and the ``{slot: (function, buffer)}`` to write
    into.  ``values``: the traced value of every slot; ``escaping``: the program's input and output
    slots."""
    resolved = _resolve(instrs, values, backend)
    kept = _fuse_casts(instrs, values, backend, escaping)
    return kept, resolved, len(instrs) - len(kept), _buffers(kept, values, backend, escaping)
