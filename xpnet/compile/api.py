"""``xpnet.compile(fn)``: trace a step once per input signature, then replay it."""

from __future__ import annotations

import builtins
import collections
import functools
import operator
import warnings

from .. import backend as B
from ..autograd.tensor import Tensor, is_grad_enabled
from . import graphs as _graphs
from .program import Program
from .state import Location, discover_roots, restore, snapshot, walk
from .trace import GuardMiss, Recorder, TracedArray, TracedNumber, Unreplayable, recording

__all__ = ["compile", "Compiled", "CompileError", "CompileWarning"]

MAX_STRUCTURE_RETRACES = 3
MAX_GUARD_MISSES = 4  # batches failing a guard (run eagerly) before a re-trace without guards


class CompileError(RuntimeError):
    """``strict=True`` and the step cannot be replayed (the message names the operation)."""


class CompileWarning(UserWarning):
    """A compiled function falls back to eager execution (said once per reason)."""


def compile(fn=None, *, state=None, strict: bool = False, cache_size: int = 8, donate: bool = True,
            cuda_graphs=False):
    """A callable that gives ``fn``'s results by replaying a recording of it.

    ``fn`` takes tensors (or arrays and Python values) and is typically a whole
    training step: ``zero_grad``, forward, loss, ``backward``, ``optimizer.step()``.
    Per input signature (shapes, dtypes, backend, device and ``requires_grad`` of
    the tensor arguments, the other arguments' values, the modules' train/eval
    mode, grad mode) the first call runs eagerly (optimizer state gets made), the
    second runs eagerly while every array operation is recorded (see
    :mod:`xpnet.compile.trace`), and later calls replay the :class:`Program`: on
    NumPy, PyTorch and array-api-strict as one straight-line function of the
    recorded calls, on JAX as that function under ``jax.jit`` with the updated state's
    buffers donated (``donate``).  ``cache_size`` signatures are kept (least
    recently used dropped).  With donation, arrays of the state taken before a call (a
    reference to ``p.data``) are invalid after it on JAX; ``donate=False`` keeps them.
    What the step leaves behind is what the jitted function returns: a step that starts with
    ``zero_grad()`` leaves the gradients in ``p.grad`` (as eager code does), so they are
    returned; one that ends with ``zero_grad()`` returns none, the faster form on JAX.

    ``state``: the modules, optimizers and schedulers whose tensors and numbers the
    step reads and writes; by default those that ``fn`` reaches through its closure,
    the globals it names and its bound ``self``.  Learning rates and optimizer step
    counters are inputs of the program, so a scheduler's change between calls is
    followed; dropout masks get fresh keys from the generator per call, so replayed
    masks equal eager ones.  Input checks (label ranges): on the host the batch's
    bounds are guards read before each replay, and a batch that fails one (a bad
    label, an ``ignore_index`` the traced batch did not have) runs eagerly (after
    four such calls the step is traced again without guards); on an accelerator
    they run on the program's outputs, queued until the next read back.

    Not replayable: a read of a traced value on the host (``.item()``, ``float()``,
    a Python ``if`` on a tensor, printing one), a random draw on the host other than
    a dropout mask, an array made from host data inside the step (a number is a
    constant), a Python value (outside optimizer state) that the step changes.
    Then the function runs eagerly from then on, with a :class:`CompileWarning`
    naming the operation, or ``strict=True`` raises :class:`CompileError`.

    Results equal the eager step's: bitwise on NumPy, PyTorch and array-api-strict
    (the same calls in the same order); on JAX within float rounding (XLA fuses).
    The returned tensors are detached.  Like ``torch.compile``, the function's
    Python code does not run on a replay: side effects other than array state
    (appending to a list, printing) happen on the eager calls only.

    ``cuda_graphs`` (:mod:`xpnet.compile.graphs`, like ``torch.compile(mode="reduce-overhead")``):
    False (default, until the graph replay has been verified on a GPU): the plain replay.
    None: replay steps on CUDA arrays (CuPy, torch CUDA) as a CUDA graph, one launch per
    step, and elsewhere plainly; where a graph cannot be made (the reason is said in a
    one-time :class:`CompileWarning`) the plain replay runs.  True: graphs or a
    :class:`CompileError` (at the trace, or at the first graphed call when the capture
    fails).  ``"emulate"``, for tests: the graph protocol (static buffers,
    device scalars) emulated on any backend but JAX.  On JAX ``jax.jit`` replays the step
    and ``cuda_graphs`` is not used.  Under a graph the state is updated in place (``p.data``
    keeps its buffer), a gradient made by the step is overwritten by the next replay, and
    returned values are copies.
    """
    if fn is None:
        return functools.partial(compile, state=state, strict=strict, cache_size=cache_size, donate=donate,
                                 cuda_graphs=cuda_graphs)
    return Compiled(fn, state, strict, cache_size, donate, cuda_graphs)


class _Entry:
    __slots__ = ("calls", "replay", "fallback", "retraces", "program", "misses")

    def __init__(self):
        self.calls, self.replay, self.fallback, self.retraces, self.program = 0, None, None, 0, None
        self.misses = 0


class _Stale(Exception):
    """The objects the program writes into are not those it was traced with."""


_training = operator.attrgetter("training")


def _signature_of(a):
    if isinstance(a, Tensor):
        d = a.data
        return (type(d), tuple(d.shape), d.dtype, B.device_key(d), a.requires_grad)
    if hasattr(a, "shape") and hasattr(a, "dtype"):
        return (type(a), tuple(a.shape), a.dtype, B.device_key(a))
    if isinstance(a, (tuple, list)):
        return (type(a),) + tuple(_signature_of(x) for x in a)
    try:
        hash(a)
        return (type(a), a)
    except TypeError:
        return ("id", id(a))


class Compiled:
    """What :func:`compile` returns: call it like ``fn``; ``program`` is the last traced
    :class:`~xpnet.compile.program.Program` (None before the first trace); ``runner`` the
    function that replays it (a :class:`~xpnet.compile.graphs.GraphedStep` under a CUDA graph)."""

    def __init__(self, fn, state, strict, cache_size, donate, cuda_graphs=False):
        self.fn, self.strict, self.cache_size, self.donate = fn, strict, cache_size, donate
        if cuda_graphs not in _graphs.MODES:
            raise ValueError(f"xpnet.compile: cuda_graphs={cuda_graphs!r}; expected None, True, False or 'emulate'")
        self.cuda_graphs, self.runner = cuda_graphs, None
        self._state = state
        self._roots = None
        self._modules = None
        self.cache: collections.OrderedDict = collections.OrderedDict()
        self._recent = None  # the entry of the last call (the last in ``cache``)
        self.program = None
        self._warned = set()
        functools.update_wrapper(self, fn, updated=())

    # ------------------------------------------------------------ calling
    def roots(self):
        if self._roots is None:
            st = self._state
            self._roots = discover_roots(self.fn) if st is None else list(st if isinstance(st, (list, tuple)) else [st])
            self._modules = walk(self._roots).modules
        return self._roots

    def signature(self, args, kwargs):
        if self._roots is None:
            self.roots()
        kw = tuple((k, _signature_of(v)) for k, v in sorted(kwargs.items())) if kwargs else ()
        return (tuple(map(_signature_of, args)), kw, tuple(map(_training, self._modules)), is_grad_enabled())

    def __call__(self, *args, **kwargs):
        sig = self.signature(args, kwargs)
        entry = self.cache.get(sig)
        if entry is None:
            entry = self.cache[sig] = _Entry()
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        elif entry is not self._recent:  # already the most recently used: nothing to move
            self.cache.move_to_end(sig)
        self._recent = entry
        if entry.fallback is not None:
            return self.fn(*args, **kwargs)
        if entry.replay is not None:
            try:
                return entry.replay(args, kwargs)
            except GuardMiss:  # this batch takes another path (an ignore_index, a bad label): eagerly
                entry.misses += 1
                if entry.misses == MAX_GUARD_MISSES:  # often: trace again, the general path
                    entry.replay, entry.calls = None, 1
                return self.fn(*args, **kwargs)
            except _Stale as e:
                entry.replay, entry.calls = None, 1
                entry.retraces += 1
                if entry.retraces > MAX_STRUCTURE_RETRACES:
                    self._give_up(entry, f"the step's state changes between calls outside it ({e}); "
                                  "keep zero_grad() and the optimizer step inside the compiled function")
                return self.fn(*args, **kwargs)
        entry.calls += 1
        if entry.calls == 1:  # warm-up: optimizer state, lazy buffers get made eagerly
            return self.fn(*args, **kwargs)
        return self._trace(entry, args, kwargs)

    def _give_up(self, entry, reason):
        entry.fallback, entry.replay = reason, None
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        if self.strict:
            raise CompileError(f"xpnet.compile({name}): cannot replay: {reason}")
        if reason not in self._warned:
            self._warned.add(reason)
            warnings.warn(f"xpnet.compile({name}) runs eagerly: {reason}", CompileWarning, stacklevel=3)

    def _no_graph(self, reason):
        """A CUDA graph was asked for and cannot be had: raise (``cuda_graphs=True``) or warn once."""
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        if self.cuda_graphs is True:
            raise CompileError(f"xpnet.compile({name}, cuda_graphs=True): no CUDA graph: {reason}")
        if reason not in self._warned:
            self._warned.add(reason)
            warnings.warn(f"xpnet.compile({name}) replays without a CUDA graph: {reason}", CompileWarning, stacklevel=4)

    # ------------------------------------------------------------ tracing
    def _trace(self, entry, args, kwargs):
        roots = self.roots()
        start = walk(roots)
        snap = snapshot(start)
        gen = B.default_generator()
        gen_state = gen.get_state()
        backend = next((B.backend_of(a.data if isinstance(a, Tensor) else a) for a in args
                        if isinstance(a, Tensor) or hasattr(a, "shape")), None) or B.current_backend()
        rec = Recorder(backend, guards=entry.misses < MAX_GUARD_MISSES)
        memo, inputs, in_paths, aliases = {}, [], {}, []
        try:
            with recording(rec):
                for loc, v, is_number in start.leaves:
                    t = memo.get(id(v))
                    if t is None:
                        t = memo[id(v)] = rec.wrap(v, "host-input" if is_number else "state")
                        inputs.append((t.s, "/".join(map(_label, loc.path))))
                        in_paths[t.s] = loc.path
                    else:  # one array at two places (a view, a buffer that is the gradient)
                        aliases.append((in_paths[t.s], loc.path))
                    loc.set(t)
                targs = [self._wrap_arg(rec, a, inputs, f"arg {i}") for i, a in enumerate(args)]
                tkw = {k: self._wrap_arg(rec, kwargs[k], inputs, f"arg {k}") for k in sorted(kwargs)}
                out = self.fn(*targs, **tkw)
                end = walk(roots)
                changed = [(loc, v) for loc, v in start.plain if _differs(loc, v)]
        except Unreplayable as e:
            restore(snap)
            gen.set_state(gen_state)
            self._give_up(entry, str(e))
            return self.fn(*args, **kwargs)
        except BaseException:
            restore(snap)
            gen.set_state(gen_state)
            raise
        # the state after the step: put the real values back, note which slot goes where
        writes = []
        for loc, v, _ in end.leaves:
            if isinstance(v, (TracedArray, TracedNumber)):
                loc.set(v.v)
                writes.append((loc, v.s))
        for c in end.containers:  # tensors made during the trace that hold stand-ins (grads)
            if isinstance(c, Tensor) and isinstance(c.data, TracedArray):
                c.data = c.data.v
        ret_template, ret_slots = _out_template(out)
        result = _untrace(out)
        if changed:
            loc, v = changed[0]
            self._give_up(entry, f"the step changes the Python value {'/'.join(map(_label, loc.path))} "
                          f"(from {v!r} to {loc.get()!r}), which a replay would not")
            return result
        end_at = {loc.path: loc for loc, _, _ in end.leaves}
        reads = []
        for s, label in inputs:
            if s in in_paths:
                loc = end_at.get(in_paths[s])
                # gone after the step (a gradient consumed and set to None): found from the roots per call
                reads.append(loc if loc is not None else _PathRead(roots, in_paths[s]))
        outputs = [(s, "/".join(map(_label, loc.path))) for loc, s in writes]
        outputs += [(s, f"return {i}") for i, s in enumerate(ret_slots)]
        outputs += [(s, f"check {getattr(c, '__name__', 'input check')}") for s, c in rec.checks]
        program = Program(rec, inputs, outputs, backend)
        entry.program = self.program = program
        alias_locs = [(end_at[a], end_at[b]) for a, b in aliases if a in end_at and b in end_at]
        # whether each gradient was None when the step began (accumulating into one is another program)
        end_links = {loc.path: loc for loc, _ in end.links}
        grads_none = [(end_links[loc.path], obj is None) for loc, obj in start.links
                      if isinstance(loc.container, Tensor) and loc.key == "grad" and loc.path in end_links]
        guards, relinks = _structure(end.links, [loc for loc, (s, _) in zip(reads, inputs) if s in program.live],
                                     [loc for loc, _ in writes])
        entry.replay = self._replay_fn(program, reads, writes, guards + grads_none, relinks, alias_locs,
                                       ret_template, rec.checks, backend, args, kwargs, rec.values)
        for s, check in rec.checks:  # the traced (eager) run's own checks
            B.require(rec.values[s], check)
        return result

    @staticmethod
    def _wrap_arg(rec, a, inputs, label):
        if isinstance(a, Tensor):
            t = rec.wrap(a.data, "input")
            inputs.append((t.s, label))
            return Tensor(t, requires_grad=a.requires_grad)
        if hasattr(a, "shape") and hasattr(a, "dtype"):
            t = rec.wrap(a, "input")
            inputs.append((t.s, label))
            return t
        return a

    # ------------------------------------------------------------ replaying
    def _replay_fn(self, program, reads, writes, guards, relinks, aliases, ret_template, checks, backend, args,
                   kwargs, values):
        n_in, n_out = len(program.inputs), len(program.outputs)
        if backend.name == "jax":
            host, run, pick, gather, n_run = self._jax_runner(program, len(reads), values)
        else:
            run = _graphs.runner(program, backend, self.cuda_graphs, reads, [loc for loc, _ in writes],
                                 self._no_graph)
            host, pick, gather, n_run = None, list(range(n_in)), list(range(n_out)), n_out
        self.runner = run
        # asynchronous (JAX) or on an accelerator: reading a check's values would wait for the step,
        # so it is queued and read with the next read back (at the latest 64 steps later)
        defer = backend.name == "jax" or B.device_name(backend.device) != "cpu"
        # the arguments that are program inputs (fixed by the signature): (position or name, is a Tensor)
        picks = [(i, isinstance(a, Tensor)) for i, a in enumerate(args) if _is_array_arg(a)]
        picks += [(k, isinstance(kwargs[k], Tensor)) for k in sorted(kwargs) if _is_array_arg(kwargs[k])]
        return _generate_replay(reads, picks, guards, aliases, host, run, pick, gather, n_run, relinks,
                                [loc for loc, _ in writes], ret_template, [c for _, c in checks], defer)

    def _jax_runner(self, program, n_state, values):
        """``(host, jitted, pick, gather, n_results)``: the host instructions as ``host(*inputs) ->
        host values`` (None when there are none), the array instructions under ``jax.jit``, its
        arguments as indices into [*inputs, *host values] and the program's outputs as indices
        into [*jitted results, *inputs, *host values].  The host numbers that only the arrays use
        (bias corrections) are computed inside the jitted function where they trace (``values``:
        the slots' values at the trace, for that check)."""
        host_fn, dev_fn, host_outs, dev_in, dev_out = program.split(numbers_on_device=True)
        if any(i.host for i in program.instrs) and not B.traceable(dev_fn, [values[s] for s in dev_in]):
            host_fn, dev_fn, host_outs, dev_in, dev_out = program.split()
        in_slots = [s for s, _ in program.inputs]
        out_slots = [s for s, _ in program.outputs]
        written = set(out_slots)
        donated = []
        if self.donate:
            state_slots = {s for s, _ in program.inputs[:n_state]}
            donated = [i for i, s in enumerate(dev_in) if s in state_slots and s not in written
                       and program.kinds[s] == "state"]
        jitted = B.jit_compile(dev_fn, donated)
        n_in, n_dev = len(in_slots), len(dev_out)
        pos = {s: n_in + i for i, s in enumerate(host_outs)}
        pos_in = {s: i for i, s in enumerate(in_slots)}
        pos.update(pos_in)
        pos_dev = {s: i for i, s in enumerate(dev_out)}
        gather = [pos_dev[s] if s in pos_dev else n_dev + pos[s] for s in out_slots]
        pick = [pos[s] for s in dev_in]
        if not any(i.name == "draw_keys" for i in program.instrs) and all(s in pos_in for s in host_outs):
            host_fn = None  # nothing computed on the host (no bias correction, no key): no host call
        return host_fn, jitted, pick, gather, n_dev


def _is_array_arg(a) -> bool:
    return isinstance(a, Tensor) or (hasattr(a, "shape") and hasattr(a, "dtype"))


def _stale_guard(guards, aliases=()):
    """The path of the first guard (or alias) that fails: the message of :class:`_Stale`."""
    for loc, obj in guards:
        now = loc.get()
        if (now is not obj) if obj.__class__ is not bool else ((now is None) is not obj):
            return "/".join(map(_label, loc.path))
    for a, b in aliases:
        if a.get() is not b.get():
            return f"{'/'.join(map(_label, a.path))} is no longer {'/'.join(map(_label, b.path))}"
    return "the step's structure"


def _generate_replay(reads, picks, guards, aliases, host, run, pick, gather, n_run, relinks, write_locs,
                     ret_template, checks, defer):
    """One generated Python function ``replay(args, kwargs)`` for a traced step: check the guards
    (each a constant container's entry compared by identity), read the state and the arguments,
    call ``host`` (if any) and ``run``, write the results back, queue the checks, return the result.
    The containers and objects are constants of the function, so a call costs one attribute or
    item access per guard, read and write (no loop, no accessor call).

    ``pick``: ``run``'s arguments as indices into [*inputs, *host values]; ``gather``: the program's
    outputs (writes, returns, checks) as indices into [*run's ``n_run`` results, *inputs, *host values]."""
    ns = {"Stale": _Stale, "Tensor": Tensor, "fill": _fill, "pending": B._pending_checks,
          "flush": B.flush_checks, "require": B.require, "host": host, "run": run, "tpl": ret_template}
    names = {}

    def const(v):
        if id(v) not in names:
            names[id(v)] = f"k{len(names)}"
            ns[names[id(v)]] = v
        return names[id(v)]

    def entry(loc):  # an expression for a Location's entry (readable and assignable)
        if isinstance(loc.container, Tensor):
            return f"{const(loc.container)}.{loc.key}"
        key = repr(loc.key) if isinstance(loc.key, (str, int)) and not isinstance(loc.key, bool) else const(loc.key)
        return f"{const(loc.container)}[{key}]"

    def stale(message):
        return f"raise Stale({const(message)})"

    lines = ["def replay(args, kwargs):"]
    for loc, obj in guards:
        test = (f"{entry(loc)} is {'not ' if obj is False else ''}None" if obj.__class__ is bool
                else f"{entry(loc)} is {const(obj)}")  # obj True/False: the gradient was None/not None
        lines.append(f"    if not ({test}): {stale('/'.join(map(_label, loc.path)))}")
    for a, b in aliases:
        lines.append(f"    if {entry(a)} is not {entry(b)}: "
                     + stale(f"{'/'.join(map(_label, a.path))} is no longer {'/'.join(map(_label, b.path))}"))
    inputs = [entry(loc) if isinstance(loc, Location) else f"{const(loc)}.get()" for loc in reads]
    inputs += [f"{'args' if isinstance(k, int) else 'kwargs'}[{k!r}]{'.data' if tensor else ''}"
               for k, tensor in picks]
    used = pick + [g - n_run for g in gather if g >= n_run]
    for i, e in enumerate(inputs):  # an entry that the program does not use is not read (a PathRead is)
        if i in used or host is not None or not isinstance(reads[i] if i < len(reads) else None, Location):
            lines.append(f"    i{i} = {e}")
    values = [f"i{i}" for i in range(len(inputs))] + [f"h[{j}]" for j in range(max(used + [0]) + 1 - len(inputs))]
    if host is not None:
        lines.append(f"    h = host({', '.join(values[:len(inputs)])})")
    lines.append(f"    d = run({', '.join(values[i] for i in pick)})")
    outs = [f"d[{g}]" if g < n_run else values[g - n_run] for g in gather]
    for loc, obj in relinks:
        lines.append(f"    {entry(loc)} = {const(obj)}")
    for loc, e in zip(write_locs, outs):
        if e not in values[:len(inputs)] or inputs[values.index(e)] != entry(loc):  # not put back where read
            lines.append(f"    {entry(loc)} = {e}")
    n_writes, n_checks = len(write_locs), len(checks)
    rets = outs[n_writes:len(outs) - n_checks]
    for check, e in zip(checks, outs[len(outs) - n_checks:]):
        lines.append(f"    pending.append(({e}, {const(check)}))" if defer else f"    require({e}, {const(check)})")
    if checks and defer:
        lines.append("    if len(pending) >= 64:\n        flush()")
    if isinstance(ret_template, _Out):
        lines.append(f"    return {'Tensor(' if ret_template.tensor else '('}{rets[ret_template.i]})")
    else:
        lines.append(f"    return fill(tpl, [{', '.join(rets)}])")
    source = "\n".join(lines) + "\n"
    exec(builtins.compile(source, "<xpnet.compile replay>", "exec"), ns)
    replay = ns["replay"]
    replay.source, replay.reads, replay.run, replay.write_locs = source, reads, run, write_locs
    return replay


class _PathRead:
    """Reads the entry at ``path`` (from the walk) starting at the roots, on every call."""

    def __init__(self, roots, path):
        self.roots, self.path = roots, path

    def get(self):
        obj = self.roots[self.path[0]]
        try:
            for k in self.path[1:]:
                if isinstance(obj, (dict, list)):
                    obj = obj[k]
                elif isinstance(obj, Tensor):
                    obj = getattr(obj, k)
                else:
                    obj = vars(obj)[k]
        except (KeyError, IndexError, AttributeError, TypeError):
            raise _Stale("/".join(map(_label, self.path))) from None
        return obj


def _structure(links, reads, writes):
    """``(guards, relinks)``: the links (Location, object) from the roots down to every
    container the replay reads from, checked before each replay; and those down to the
    containers it writes into (a gradient tensor made by the traced step), set after it."""
    by_path = {loc.path: (loc, obj) for loc, obj in links}

    def chain(locs):
        out, seen = [], set()
        for loc in locs:
            p = loc.path[:-1]
            while len(p) > 1:
                if p in by_path and p not in seen:
                    seen.add(p)
                    out.append(by_path[p])
                p = p[:-1]
        return out, seen
    guards, seen = chain(reads)
    relinks, _ = chain(writes)
    return guards, [(loc, obj) for loc, obj in relinks if loc.path not in seen]


def _label(k):
    if isinstance(k, Tensor):
        return f"<param {tuple(k.shape)}>"
    return str(k)


def _differs(loc, v):
    try:
        now = loc.get()
    except (KeyError, IndexError, AttributeError):
        return True
    if isinstance(now, (TracedArray, TracedNumber)):
        return True
    try:
        return bool(now != v) if type(now) is type(v) else now is not v
    except Exception:
        return now is not v


def _untrace(obj):
    """The eager result of the traced call, stand-ins replaced by real values."""
    if isinstance(obj, Tensor):
        if isinstance(obj.data, (TracedArray, TracedNumber)):
            obj.data = obj.data.v
        return obj
    if isinstance(obj, (TracedArray, TracedNumber)):
        return obj.v
    if isinstance(obj, (tuple, list)):
        return type(obj)(_untrace(x) for x in obj)
    if isinstance(obj, dict):
        return {k: _untrace(v) for k, v in obj.items()}
    return obj


class _Out:
    __slots__ = ("i", "tensor")

    def __init__(self, i, tensor):
        self.i, self.tensor = i, tensor


def _out_template(obj, slots=None):
    """The returned structure with each traced value replaced by an :class:`_Out` index."""
    slots = [] if slots is None else slots
    if isinstance(obj, Tensor):
        d = obj.data
        s = getattr(d, "s", None)
        if s is None:
            return Tensor(d), slots
        slots.append(s)
        return _Out(len(slots) - 1, True), slots
    if isinstance(obj, (TracedArray, TracedNumber)):
        slots.append(obj.s)
        return _Out(len(slots) - 1, False), slots
    if isinstance(obj, (tuple, list)):
        items = [_out_template(x, slots)[0] for x in obj]
        return type(obj)(items), slots
    if isinstance(obj, dict):
        return {k: _out_template(v, slots)[0] for k, v in obj.items()}, slots
    return obj, slots


def _fill(template, outs):
    if isinstance(template, _Out):
        v = outs[template.i]
        return Tensor(v) if template.tensor else v
    if isinstance(template, (tuple, list)):
        return type(template)(_fill(x, outs) for x in template)
    if isinstance(template, dict):
        return {k: _fill(v, outs) for k, v in template.items()}
    return template
