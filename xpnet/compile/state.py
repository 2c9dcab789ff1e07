"""The state a step reads and writes, found by walking the objects it uses.

From the roots (modules, optimizers, schedulers) the walk visits tensors
(``data``, ``grad``), dicts, lists and the attributes of xpnet objects.  Its
leaves are arrays, and the host numbers that change between steps: every
number in an optimizer's ``state`` (step counters) and the ``lr`` of its
parameter groups (a scheduler changes it between steps).
"""

from __future__ import annotations

import functools
import operator

from ..autograd.tensor import Tensor

__all__ = ["walk", "Location", "snapshot", "restore", "discover_roots"]


class Location:
    """Entry ``key`` of ``container`` (a Tensor attribute, a dict key or a list index)."""

    __slots__ = ("container", "key", "path", "get", "set")

    def __init__(self, container, key, path):
        self.container, self.key, self.path = container, key, path
        attr = isinstance(container, Tensor)
        # bound C-level accessors: ``get()`` and ``set(value)`` cost one call each
        self.get = functools.partial(getattr if attr else operator.getitem, container, key)
        self.set = functools.partial(setattr if attr else operator.setitem, container, key)


def _is_xpnet_object(v) -> bool:
    from ..autograd.tensor import Function
    from ..backend import Backend, Generator
    mod = type(v).__module__ or ""
    return (mod.startswith("xpnet.") and hasattr(v, "__dict__")
            and not isinstance(v, (Backend, Generator, Function, Tensor, type)))


def _is_number(v) -> bool:
    from .trace import TracedNumber
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) or isinstance(v, TracedNumber)


class World:
    """What one walk found: ``leaves`` (Location, value, is_number), ``links`` (Location,
    child object) for the structure, and the ``containers`` visited."""

    def __init__(self):
        self.leaves, self.links, self.containers = [], [], []
        self.modules, self.plain = [], []


def walk(roots) -> World:
    from ..nn.module import Module
    from ..optim.optimizer import Optimizer
    w, seen = World(), set()

    def visit(obj, path, numbers, lr_only=False):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        w.containers.append(obj)
        if isinstance(obj, Tensor):
            items = [("data", obj.data), ("grad", obj.grad)]
        elif isinstance(obj, dict):
            items = list(obj.items())
        elif isinstance(obj, list):
            items = list(enumerate(obj))
        else:  # an xpnet object: its attributes
            if isinstance(obj, Module):
                w.modules.append(obj)
            d = vars(obj)
            for k, v in list(d.items()):
                if isinstance(obj, Optimizer) and k in ("state", "_flat"):
                    visit_child(d, k, v, path + (k,), True)
                elif isinstance(obj, Optimizer) and k == "param_groups":
                    for i, g in enumerate(v):
                        visit_child(v, i, g, path + (k, i), False, lr_only=True)
                else:
                    visit_child(d, k, v, path + (k,), numbers)
            return
        for k, v in items:
            if lr_only and k == "lr":
                if _is_number(v):
                    w.leaves.append((Location(obj, k, path + (k,)), v, True))
                continue
            visit_child(obj, k, v, path + (k,), numbers)

    def visit_child(container, k, v, path, numbers, lr_only=False):
        loc = Location(container, k, path)
        if isinstance(v, (Tensor, dict, list)) or _is_xpnet_object(v):
            w.links.append((loc, v))
            visit(v, path, numbers, lr_only)
        elif v is None and isinstance(container, Tensor):
            w.links.append((loc, None))
        elif hasattr(v, "shape") and hasattr(v, "dtype"):
            w.leaves.append((loc, v, False))
        elif numbers and _is_number(v):
            w.leaves.append((loc, v, True))
        elif isinstance(v, (int, float, str, tuple)) or v is None:
            w.plain.append((loc, v))

    for i, r in enumerate(roots):
        visit(r, (i,), False)
    return w


def snapshot(world: World):
    """A shallow copy of every container the walk visited, for :func:`restore`."""
    out = []
    for c in world.containers:
        if isinstance(c, Tensor):
            out.append((c, (c.data, c.grad, c.creator, c.requires_grad)))
        elif isinstance(c, dict):
            out.append((c, dict(c)))
        elif isinstance(c, list):
            out.append((c, list(c)))
        else:
            out.append((c, dict(vars(c))))
    return out


def restore(snap):
    """Put every container back as :func:`snapshot` found it."""
    for c, saved in snap:
        if isinstance(c, Tensor):
            c.data, c.grad, c.creator, c.requires_grad = saved
        elif isinstance(c, dict):
            c.clear()
            c.update(saved)
        elif isinstance(c, list):
            c[:] = saved
        else:
            d = vars(c)
            d.clear()
            d.update(saved)


def discover_roots(fn) -> list:
    """The modules, optimizers and schedulers that ``fn`` reaches through its closure, the
    globals it names and its bound ``self`` (one level into nested functions)."""
    from ..nn.module import Module
    from ..optim.lr_scheduler import LRScheduler
    from ..optim.optimizer import Optimizer
    kinds = (Module, Optimizer, LRScheduler)
    found, seen_fns = [], set()

    def take(v):
        if isinstance(v, kinds):
            if all(v is not f for f in found):
                found.append(v)
        elif isinstance(v, (list, tuple)):
            for x in v:
                if isinstance(x, kinds):
                    take(x)
        elif (callable(v) and hasattr(v, "__code__") and id(v) not in seen_fns
              and not (getattr(v, "__module__", None) or "").startswith("xpnet")):
            scan(v)

    def scan(f):
        seen_fns.add(id(f))
        self = getattr(f, "__self__", None)
        if self is not None:
            take(self)
            f = f.__func__
        code = getattr(f, "__code__", None)
        if code is None:
            return
        for cell in f.__closure__ or ():
            try:
                take(cell.cell_contents)
            except ValueError:
                pass
        g = getattr(f, "__globals__", {})
        for name in code.co_names:
            if name in g:
                take(g[name])

    scan(fn)
    return found
