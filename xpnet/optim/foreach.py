"""One update over all parameters of a group (PyTorch's ``foreach``).

Every optimizer here updates each parameter elementwise, so running its
per-parameter update once on all parameters concatenated gives the same
numbers with a handful of array operations instead of a handful per
parameter: on a GPU, a few kernel launches per step instead of a few per
parameter.  Between steps the parameters and their state arrays are views
of the flat arrays, so a step concatenates only the gradients; anything
that rebinds a parameter or a state entry (``load_state_dict``, user code)
is noticed and the flat arrays are rebuilt.  The price is memory: during a
step the new flat parameters and state exist next to the old ones (about
twice the parameters and optimizer state, where the loop needs one
parameter's worth more).
"""

from __future__ import annotations

from .. import backend as B
from ..autograd import Tensor

__all__ = ["fused_update", "foreach_default"]


def foreach_default(xp, x) -> bool:
    """What ``foreach=None`` means, as in PyTorch: on for arrays on a GPU (CuPy, PyTorch CUDA),
    where every operation is a kernel launch.  Off on the CPU, where the loop is faster
    (backends/bench_optim.py: the flat arrays outgrow the cache, and NumPy's per-call
    cost is small), and on JAX, where slicing the flat result copies every piece."""
    c = B.array_api_compat
    return (c.is_cupy_namespace(xp) or c.is_torch_namespace(xp)) and not B.on_host(x)


class _Flat:
    """The parameters of a group (and their state arrays) as views of flat arrays."""

    def __init__(self, xp, params, states):
        self.ids = [id(p) for p in params]
        self.shapes = [tuple(p.data.shape) for p in params]
        ends, n = [], 0
        for p in params:
            n += p.size
            ends.append(n)
        self.bounds = list(zip([0] + ends[:-1], ends))
        self.param = Tensor(_concat(xp, [p.data for p in params]))
        first = states[0]
        self.state = {k: _concat(xp, [s[k] for s in states]) if _is_array(v) else v for k, v in first.items()}
        self.views = {}  # key ("param" or a state entry) -> the views handed out

    @classmethod
    def build(cls, xp, params, states):
        """A new ``_Flat``, or None when the parameters cannot share flat arrays."""
        p0 = params[0].data
        dev = B.array_api_compat.device(p0)
        if any(p.data.dtype != p0.dtype or B.array_api_compat.device(p.data) != dev for p in params):
            return None
        first = states[0]
        for s in states:
            if s.keys() != first.keys():
                return None
            for k, v in s.items():
                if _is_array(v) != _is_array(first[k]) or (not _is_array(v) and v != first[k]):
                    return None
        return cls(xp, params, states)

    def current(self, params, states) -> bool:
        """Whether ``params`` and their states are still exactly the views handed out."""
        if [id(p) for p in params] != self.ids or not self.views:
            return False
        if any(p.data is not v for p, v in zip(params, self.views["param"])):
            return False
        for k, v in self.state.items():
            if _is_array(v):
                views = self.views.get(k)
                if views is None or any(s.get(k) is not w for s, w in zip(states, views)):
                    return False
            elif any(s.get(k) != v for s in states):
                return False
        return all(s.keys() == self.state.keys() for s in states)

    def scatter(self, xp, params, states):
        """Rebind every parameter and state entry to its view of the flat arrays."""
        self.views = {"param": self._split(xp, self.param.data)}
        for p, v in zip(params, self.views["param"]):
            p.data = v
        for k, v in self.state.items():
            if _is_array(v):
                self.views[k] = pieces = self._split(xp, v)
                for s, piece in zip(states, pieces):
                    s[k] = piece
            else:
                for s in states:
                    s[k] = v

    def _split(self, xp, flat):
        return [_reshape(xp, flat[a:b], shape) for (a, b), shape in zip(self.bounds, self.shapes)]


def _is_array(v) -> bool:
    return hasattr(v, "shape")


def _reshape(xp, a, shape):
    # the array's own method where it has one: xp.reshape wraps it in two Python calls on NumPy
    return a.reshape(shape) if hasattr(a, "reshape") else xp.reshape(a, shape)


def _concat(xp, arrays):
    return xp.concat([_reshape(xp, a, (-1,)) for a in arrays])


def fused_update(opt, xp, group: dict, params: list, grads: list) -> bool:
    """Run ``opt._update_group`` once on ``params`` concatenated; False (and nothing done)
    when they cannot be concatenated (mixed dtypes or devices, states at different steps)."""
    states = [opt.state[p] for p in params]
    flat = opt._flat.get(id(group))
    if flat is None or not flat.current(params, states):
        flat = _Flat.build(xp, params, states)
        if flat is None:
            return False
        opt._flat[id(group)] = flat
    opt.state[flat.param] = flat.state
    try:
        opt._update_group(xp, group, [flat.param], [_concat(xp, grads)])
    except BaseException:  # the parameters are untouched, the flat state may be half updated
        del opt._flat[id(group)]
        raise
    finally:
        flat.state = opt.state.pop(flat.param)
    flat.scatter(xp, params, states)
    return True
