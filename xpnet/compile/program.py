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

from .. import backend as B
from .passes import _Values, _outs, _substitute, _uses, optimize
from .trace import GuardMiss, Slot, guard_check

__all__ = ["Program"]


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
        escaping = {s for s, _ in self.inputs} | {s for s, _ in self.outputs}
        self.instrs, self.resolved, self.fused, self.buffers = optimize(self.instrs, _Values(recorder.values), backend,
                                                                         escaping)
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

    def split(self, numbers_on_device=False):
        """``(host, device, host_outs, dev_in)``: the host instructions as ``host(*inputs) -> values
        of host_outs`` and the array instructions as a pure ``device(*dev_in values) -> outputs``
        (for ``jax.jit``: no host number or key draw inside it).  ``numbers_on_device``: the device
        function also computes the host numbers it uses (bias corrections) from the host inputs
        (step counters, learning rates), so a call passes those few instead of every derived number;
        the host keeps the key draws and what the outputs need (the new step counters)."""
        host = [i for i in self.instrs if i.host]
        dev = [i for i in self.instrs if not i.host]
        dev_made = set()
        if numbers_on_device:
            need, keep = {s for s, _ in self.outputs}, []
            for i in reversed(host):
                if i.name == "draw_keys" or need.intersection(_outs(i)):
                    keep.append(i)
                    need |= _uses(i)
            dev = [i for i in self.instrs if not i.host or i.name != "draw_keys"]
            host = keep[::-1]
            dev_made = {o for i in dev for o in _outs(i)}
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
        dev_in += [s for s in host_outs if s in dev_uses and s not in dev_made]
        g = _Gen()
        host_fn = g.compile(g.function("host", host, in_slots, host_outs, self.guards), "host")
        g2 = _Gen()
        dev_out = [s for s in out_slots if s not in host_slots]
        dev_fn = g2.compile(g2.function("device", dev, dev_in, dev_out), "device")
        return host_fn, dev_fn, host_outs, dev_in, dev_out
