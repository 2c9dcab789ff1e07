"""A traced step as a program over slots, and the straight-line function that replays it.

A :class:`Program` lists its inputs (the batch, and the state: parameters,
buffers, gradients, optimizer state, learning rates, random keys), its
instructions (one call each, functions already resolved: the library's own
functions, the operators of its arrays, the backend's helpers) and its outputs.
``str(program)`` prints one line per operation.  The replay is one generated
Python function whose local variables are the slots, so a step runs no Tensor,
no Function and no graph walk: only the recorded calls.
"""

from __future__ import annotations

import math
import operator
import sys

from .. import backend as B
from .trace import GuardMiss, Slot, guard_check

__all__ = ["Program"]


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


def _short(v) -> str:
    if hasattr(v, "shape") and hasattr(v, "dtype"):
        return f"const {B.dtype_name(v.dtype)}{tuple(v.shape)}"
    if isinstance(v, B.Backend):
        return v.name
    if not isinstance(v, (int, float, str, tuple, type(None))):
        try:
            return B.dtype_name(v)
        except Exception:
            pass
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _show(t) -> str:
    if isinstance(t, Slot):
        return f"%{t.i}"
    if isinstance(t, tuple):
        return "(" + ", ".join(_show(x) for x in t) + ("," if len(t) == 1 else "") + ")"
    if isinstance(t, list):
        return "[" + ", ".join(_show(x) for x in t) + "]"
    if isinstance(t, slice):
        return ":".join("" if x is None else _show(x) for x in (t.start, t.stop, t.step)).rstrip(":") or ":"
    if t is Ellipsis:
        return "..."
    return _short(t)


_OPS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


class _Gen:
    """Python source for a list of instructions, constants kept in a namespace."""

    def __init__(self):
        self.ns = {}
        self.ids = {}

    def const(self, v) -> str:
        if v is None or isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v)):
            return repr(v)
        if v is Ellipsis:
            return "..."
        if isinstance(v, slice):
            return f"slice({self.expr(v.start)}, {self.expr(v.stop)}, {self.expr(v.step)})"
        key = id(v)
        if key not in self.ids:
            self.ids[key] = name = f"k{len(self.ids)}"
            self.ns[name] = v
        return self.ids[key]

    def expr(self, t) -> str:
        if isinstance(t, Slot):
            return f"s{t.i}"
        if isinstance(t, tuple):
            return "(" + "".join(self.expr(x) + ", " for x in t) + ")"
        if isinstance(t, list):
            return "[" + ", ".join(self.expr(x) for x in t) + "]"
        return self.const(t)

    def function(self, name, instrs, ins, outs, guards=None, buffers=None) -> str:
        lines = [f"def {name}({''.join(f's{i}, ' for i in ins)}):"]
        for s, check in (guards or {}).items():  # before any call: a miss changes nothing
            lines.append(f"    if not {self.const(check)}(s{s}):\n        raise {self.const(GuardMiss)}")
        # free each slot after its last use, as eager code drops its temporaries: the memory
        # allocator then hands the same (cache-warm) buffers back
        keep = set(outs)
        last = {}
        for n, ins_ in enumerate(instrs):
            for s in _uses(ins_):
                last[s] = n
        dead = [[] for _ in instrs]
        for s, n in last.items():
            if s not in keep:
                dead[n].append(s)
        buffers = buffers or {}
        for n, ins_ in enumerate(instrs):
            f = self.const(ins_.fn)
            args = [self.expr(a) for a in ins_.args] + [f"{k}={self.expr(v)}" for k, v in ins_.kwargs.items()]
            if ins_.outs in buffers:  # the same kind of call, writing into the slot's own buffer
                fn, buf = buffers[ins_.outs]
                f = self.const(fn)
                args.append(f"out={self.const(buf)}")
            call = f"{f}({', '.join(args)})"
            o = ins_.outs
            if o is None:
                lines.append(f"    {call}")
            elif isinstance(o, tuple):
                lines.append(f"    {''.join(f's{i}, ' for i in o)}= {call}")
            else:
                lines.append(f"    s{o} = {call}")
            unused = [i for i in _outs(ins_) if i not in last and i not in keep]
            if dead[n] or unused:
                lines.append(f"    del {', '.join(f's{i}' for i in sorted(dead[n]) + unused)}")
        lines.append(f"    return ({''.join(f's{i}, ' for i in outs)})")
        return "\n".join(lines) + "\n"

    def compile(self, source, name):
        ns = dict(self.ns)
        exec(compile(source, f"<xpnet.compile {name}>", "exec"), ns)
        return ns[name]


def _fold_constants(recorder, inputs, outputs):
    """Instructions whose arguments are all constants (``arange``, ``ones``, and what is computed
    from them alone) are computed once, at the trace: their results become constants.  Not
    for anything an in-place instruction writes, nor for random key draws."""
    written = set()
    for ins in recorder.instrs:
        if ins.inplace and ins.args and isinstance(ins.args[0], Slot):
            written.add(ins.args[0].i)
    const = {}
    kept = []
    for ins in recorder.instrs:
        uses = _uses(ins)
        outs = _outs(ins)
        if (not ins.inplace and ins.name != "draw_keys" and ins.args is not None and uses <= set(const)
                and not uses & inputs and not written.intersection(outs) and len(outs) == 1 and not ins.host
                and outs[0] not in outputs
                and (uses or ins.name.startswith("xp."))):
            const[outs[0]] = recorder.values[outs[0]]
            continue
        if uses & set(const):
            ins.args = _substitute(ins.args, const)
            ins.kwargs = _substitute(ins.kwargs, const)
        kept.append(ins)
    recorder.instrs = kept
    recorder.folded = len(const)


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
        matmul = getattr(sys.modules.get("numpy"), "matmul", None)  # NumPy's own (the backend imported it)
        by_op[operator.matmul] = matmul if isinstance(matmul, ufunc) else xp.matmul  # compat's passes ``out`` on

        def out_form(fn):
            if fn in by_op:
                return by_op[fn]
            if isinstance(fn, ufunc) or (getattr(fn, "__name__", None) == "reduce" and isinstance(fn.__self__, ufunc)):
                return fn
            return None
    elif backend.name == "torch":
        torch = sys.modules["torch"]  # imported by the backend
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


class Program:
    """A traced step.

    ``inputs``: ``[(slot, label)]`` read before each replay; ``outputs``:
    ``[(slot, label)]`` produced by it; ``instrs``: the recorded calls that the
    outputs need (in order).  ``host`` instructions compute host numbers (a
    learning rate's bias correction, random keys) and never depend on arrays.
    """

    def __init__(self, recorder, inputs, outputs, backend):
        self.backend = backend
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.kinds = list(recorder.kinds)
        # checks of the batch's bounds made before each replay (see trace.TracedBound)
        self.guards = {s: guard_check(c, recorder.values[s]) for s, c in (recorder.guards or {}).items() if c}
        self._guard_conds = {s: list(c) for s, c in (recorder.guards or {}).items() if c}
        _fold_constants(recorder, {s for s, _ in self.inputs}, {s for s, _ in self.outputs})
        needed = {s for s, _ in self.outputs}
        kept = []
        for ins in reversed(recorder.instrs):
            if ins.inplace or ins.name == "draw_keys" or needed.intersection(_outs(ins)):
                kept.append(ins)
                needed |= _uses(ins)
        self.instrs = kept[::-1]
        values = _Values(recorder.values)
        self.resolved = _resolve(self.instrs, values, backend)
        escaping = {s for s, _ in self.inputs} | {s for s, _ in self.outputs}
        n = len(self.instrs)
        self.instrs = _fuse_casts(self.instrs, values, backend, escaping)
        self.fused = n - len(self.instrs)
        self.buffers = _buffers(self.instrs, values, backend, escaping)
        self.recorded, self.folded = len(recorder.instrs), recorder.folded
        self.live = needed  # the slots the kept instructions and the outputs use

    def __len__(self):
        return len(self.instrs)

    def __str__(self):
        lines = [f"program on {B.describe(self.backend)}: {len(self.inputs)} inputs, {len(self.instrs)} operations "
                 f"({self.recorded - len(self.instrs) - self.fused} recorded ones unused, {self.folded} computed once "
                 f"at the trace, {self.fused} casts fused into arithmetic, {len(self.buffers)} results written into "
                 f"buffers reused by every replay), {len(self.outputs)} outputs"]
        lines += [f"  in   %{s} = {label}" for s, label in self.inputs]
        for s, conds in self._guard_conds.items():
            lines.append(f"  guard %{s}: " + ", ".join(f"{('min', 'max')[i]} {_OPS.get(op.__name__, op.__name__)} {o!r}"
                                                      f"{'' if r else ' is false'}" for i, op, o, r in conds))
        for ins in self.instrs:
            args = [_show(a) for a in ins.args] + [f"{k}={_show(v)}" for k, v in ins.kwargs.items()]
            o = ins.outs
            lhs = "" if o is None else (", ".join(f"%{i}" for i in o) if isinstance(o, tuple) else f"%{o}") + " = "
            lines.append(f"  {'host ' if ins.host else 'op   '}{lhs}{ins.name}({', '.join(args)})")
        lines += [f"  out  {label} = %{s}" for s, label in self.outputs]
        return "\n".join(lines)

    __repr__ = __str__

    def straight(self):
        """One function ``run(*input values) -> output values`` running every instruction in order."""
        g = _Gen()
        src = g.function("run", self.instrs, [s for s, _ in self.inputs], [s for s, _ in self.outputs], self.guards,
                         self.buffers)
        self.source = src
        return g.compile(src, "run")

    def split(self):
        """``(host, device, host_outs, dev_in)``: the host instructions as ``host(*inputs) -> values
        of host_outs`` and the array instructions as a pure ``device(*dev_in values) -> outputs``
        (for ``jax.jit``: no host number or key draw inside it)."""
        host = [i for i in self.instrs if i.host]
        dev = [i for i in self.instrs if not i.host]
        in_slots = [s for s, _ in self.inputs]
        host_made = {o for i in host for o in _outs(i)}
        host_in = {s for s in in_slots if self.kinds[s] == "host-input"}
        host_slots = host_made | host_in
        dev_uses = set()
        for i in dev:
            dev_uses |= _uses(i)
        out_slots = [s for s, _ in self.outputs]
        host_outs = sorted((dev_uses | set(out_slots)) & host_slots)
        dev_in = [s for s in in_slots if s not in host_slots and (s in dev_uses or s in out_slots)]
        dev_in += [s for s in host_outs if s in dev_uses]
        g = _Gen()
        host_fn = g.compile(g.function("host", host, in_slots, host_outs, self.guards), "host")
        g2 = _Gen()
        dev_out = [s for s in out_slots if s not in host_slots]
        dev_fn = g2.compile(g2.function("device", dev, dev_in, dev_out), "device")
        return host_fn, dev_fn, host_outs, dev_in, dev_out
