"""The backward walk: visit each Function once, in reverse topological order."""

from __future__ import annotations

import itertools

from .. import backend as B
from .tensor import Function, Tensor, set_grad_enabled

_backward_end_hooks = {}
_hook_ids = itertools.count()


class BackwardHookHandle:
    """Returned by :func:`register_backward_end_hook`; ``remove()`` unregisters the hook."""

    def __init__(self, key):
        self.key = key

    def remove(self):
        _backward_end_hooks.pop(self.key, None)


def register_backward_end_hook(hook) -> BackwardHookHandle:
    """Call ``hook(leaves)`` each time a ``backward()`` walk has ended and accumulated its
    gradients into ``.grad``; ``leaves`` is the list of tensors whose ``.grad`` it changed.
    (``autograd.grad`` touches no ``.grad`` and calls no hook.)  Hooks run in the order they
    were registered; DistributedDataParallel averages the gradients over processes here.
    Returns a handle whose ``remove()`` unregisters the hook."""
    if not callable(hook):
        raise TypeError(f"register_backward_end_hook: expected a callable, got {type(hook).__name__}")
    key = next(_hook_ids)
    _backward_end_hooks[key] = hook
    return BackwardHookHandle(key)


def _topological(roots) -> list[Function]:
    """Functions reachable from ``roots``, each after every function that uses its output."""
    order, seen = [], set()
    stack = [(t.creator, False) for t in roots if t.creator is not None]
    while stack:
        f, done = stack.pop()
        if done:
            order.append(f)
            continue
        if id(f) in seen:
            continue
        seen.add(id(f))
        if f.inputs is None:
            raise RuntimeError(
                "backward through a graph that was already freed: pass retain_graph=True "
                "to the first backward() to go through it a second time")
        stack.append((f, True))
        for x in f.inputs:
            if isinstance(x, Tensor) and x.creator is not None and id(x.creator) not in seen:
                stack.append((x.creator, False))
    order.reverse()
    return order


def _seed(t: Tensor, g, create_graph: bool):
    xp = t.xp
    if g is None:
        if t.size != 1:
            raise RuntimeError(
                f"backward() on a tensor of shape {t.shape} needs grad=...: only a tensor "
                "with one element gets the implicit gradient 1")
        g = xp.ones(t.data.shape, dtype=t.data.dtype, device=t.device)
    elif isinstance(g, Tensor):
        g = g if create_graph else g.data
    if tuple(getattr(g, "shape", ())) != t.shape:
        raise ValueError(f"backward(): grad has shape {tuple(g.shape)} but the tensor has shape {t.shape}")
    return Tensor(g) if create_graph and not isinstance(g, Tensor) else g


def _cast(g, dtype):
    """Gradient ``g`` (array or tensor) as ``dtype``, differentiably for a tensor."""
    if isinstance(g, Tensor):
        from .functions import astype
        return astype(g, dtype)
    return B.namespace_of(g).astype(g, dtype)


def run_backward(roots, grads, retain_graph=False, create_graph=False, targets=None):
    """Propagate ``grads`` from ``roots`` through the graph.

    Returns ``{id(tensor): gradient}`` for every leaf that requires a gradient
    and every tensor in ``targets``.  Gradients are raw arrays, or tensors
    when ``create_graph`` is true.
    """
    acc, keep = {}, {}
    for t, g in zip(roots, grads):
        if not t.requires_grad:
            raise RuntimeError(
                f"backward() on a tensor of shape {t.shape} that does not require grad: "
                "no input of its computation has requires_grad=True (or it ran under no_grad)")
        g = _seed(t, g, create_graph)
        acc[id(t)] = acc[id(t)] + g if id(t) in acc else g
        keep[id(t)] = t
    wanted = {id(t) for t in targets} if targets is not None else set()
    found = {}
    with set_grad_enabled(create_graph):
        for f in _topological(roots):
            out = f.output()
            g = acc.pop(id(out), None) if out is not None else None
            if out is not None and (id(out) in wanted or out._retain) and g is not None:
                found[id(out)] = g
            if g is None:
                if not retain_graph:
                    f.inputs = None
                continue
            if create_graph:
                gxs = f.backward(g, out, *f.inputs)
            else:
                gxs = f.backward(g, out.data, *[x.data if isinstance(x, Tensor) else x for x in f.inputs])
            for x, gx, need in zip(f.inputs, gxs, f.needs):
                if not need or gx is None:
                    continue
                if create_graph and not isinstance(gx, Tensor):
                    gx = Tensor(gx)
                if isinstance(x, Tensor) and gx.dtype != x.data.dtype:
                    gx = _cast(gx, x.data.dtype)  # a gradient has its input's dtype, as in PyTorch
                k = id(x)
                acc[k] = acc[k] + gx if k in acc else gx
                keep[k] = x
            if not retain_graph:
                f.inputs = None
    for k, g in acc.items():
        if keep[k].creator is None or k in wanted:
            found[k] = g
    return found, keep


def backward(roots, grads, retain_graph=False, create_graph=False):
    """Accumulate gradients into ``.grad`` of the leaves (and retained tensors)."""
    found, keep = run_backward(roots, grads, retain_graph, create_graph)
    touched = []
    for k, g in found.items():
        t = keep.get(k)
        if t is None or not (t.creator is None or t._retain):
            continue
        g = g if isinstance(g, Tensor) else Tensor(g)
        if g.data.dtype != t.data.dtype:  # a root's own seed may differ: .grad has the leaf's dtype
            g = _cast(g, t.data.dtype)
        t.grad = g if t.grad is None else t.grad + g
        touched.append(t)
    for hook in list(_backward_end_hooks.values()):
        hook(touched)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, without touching ``.grad``.

    Like ``torch.autograd.grad``: returns a tuple with one tensor per input
    (``None`` for an unused input when ``allow_unused``).
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor) or hasattr(grad_outputs, "shape"):
        grad_outputs = [grad_outputs]
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor) or not x.requires_grad:
            raise ValueError(f"grad(): input {i} does not require grad, so it has no gradient")
    retain = create_graph if retain_graph is None else retain_graph
    found, _ = run_backward(outputs, grad_outputs, retain, create_graph, targets=inputs)
    result = []
    for i, x in enumerate(inputs):
        g = found.get(id(x))
        if g is None and not allow_unused:
            raise ValueError(
                f"grad(): input {i} (shape {x.shape}) was not used to compute the outputs: "
                "pass allow_unused=True to get None for it")
        result.append(g if g is None or isinstance(g, Tensor) else Tensor(g))
    return tuple(result)
