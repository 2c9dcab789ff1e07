"""The :class:`Optimizer` base class (PyTorch's semantics and state-dict layout).

An optimizer holds ``param_groups`` (dicts with ``"params"`` and the
hyper-parameters of that group) and ``state`` (a dict per parameter).  A
subclass implements :meth:`Optimizer._update_group`, which computes each
update once with Array API operations on the raw arrays and rebinds
``p.data`` (arrays are never written in place, so this works on JAX too).
Step counters and other scalars live on the host as Python numbers, so a
step never waits for the device.
"""

from __future__ import annotations

import copy
from collections import defaultdict

from .. import backend as B
from ..autograd import Tensor, enable_grad
from .foreach import foreach_default, fused_update

__all__ = ["Optimizer"]


class Optimizer:
    """Base class of every optimizer.

    ``params`` is an iterable of parameters, of ``(name, parameter)`` pairs
    (``model.named_parameters()``), or of dicts that define parameter groups
    (``{"params": [...], "lr": 0.1}``); ``defaults`` fills what a group leaves out.
    Every optimizer takes PyTorch's ``foreach``: True runs the update once on all
    parameters of a group concatenated (same numbers, a few array operations per step
    instead of a few per parameter); None (default) does so for arrays on a GPU.
    """

    #: state entries that are host scalars (Python numbers), not arrays shaped like the parameter
    _scalar_state: tuple = ("step",)
    #: each parameter's update is elementwise, so it can run once on all of them concatenated
    _elementwise: bool = True

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list = []
        self._flat: dict = {}  # id(group) -> its parameters as views of flat arrays (foreach)
        if isinstance(params, Tensor) or isinstance(params, dict):
            raise TypeError(
                f"{type(self).__name__}: params should be an iterable of parameters or of dicts "
                f"(parameter groups), got a {type(params).__name__}: wrap it in a list")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    # ------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict):
        """Add a group of parameters (a dict with ``"params"`` and optional hyper-parameters)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a parameter group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(f"{name}: parameters must be in an ordered collection (a list), not a set")
        params = list(params)
        if params and all(isinstance(p, tuple) for p in params):
            group["param_names"] = [n for n, _ in params]
            params = [p for _, p in params]
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name} can only optimize tensors (xpnet.nn.Parameter), "
                                f"but one of the params is a {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: cannot optimize a non-leaf tensor (shape {p.shape})")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter group lists the same parameter twice")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        group["params"] = params
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True):
        """Forget the gradients (``None``, or zero arrays when ``set_to_none=False``)."""
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None and not set_to_none:
                    p.grad = Tensor(p.xp.zeros_like(p.grad.data))
                else:
                    p.grad = None

    # -------------------------------------------------------------- step
    def step(self, closure=None):
        """Update every parameter that has a gradient; ``closure`` (optional)
        re-evaluates the model (calling backward) and returns the loss, which
        ``step`` returns."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads = [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data if isinstance(p.grad, Tensor) else p.grad
                if tuple(g.shape) != tuple(p.data.shape) or g.dtype != p.data.dtype:
                    raise ValueError(
                        f"{type(self).__name__}.step(): a parameter of {B.dtype_name(p.data.dtype)}"
                        f"{tuple(p.data.shape)} has a gradient of {B.dtype_name(g.dtype)}{tuple(g.shape)}: "
                        "expected the same shape and dtype")
                params.append(p)
                grads.append(g)
            if params:
                xp = B.namespace_of(params[0].data)
                if not (len(params) > 1 and self._foreach(group, params[0].data)
                        and fused_update(self, xp, group, params, grads)):
                    self._update_group(xp, group, params, grads)
        return loss

    def _foreach(self, group: dict, x) -> bool:
        """Whether ``group`` (whose parameters are arrays like ``x``) is updated in one pass."""
        foreach = group.get("foreach")
        if foreach is None:
            foreach = foreach_default(B.namespace_of(x), x)
        return bool(foreach) and self._elementwise

    def _update_group(self, xp, group: dict, params: list, grads: list):
        """Update ``params`` (those of ``group`` with a gradient) given raw ``grads``."""
        raise NotImplementedError

    # ------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``, as in
        PyTorch; a snapshot (later steps do not change it)."""
        index: dict = {}
        groups = []
        for g in self.param_groups:
            packed = {k: copy.copy(v) for k, v in g.items() if k != "params"}
            for p in g["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in g["params"]]
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index and s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict):
        """Load what :meth:`state_dict` returned (here or by ``torch.optim``: tensors of any
        library are converted).  Everything is checked first; on a mismatch a
        ValueError names it and the optimizer is left unchanged."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}: expected a dict with 'state' and 'param_groups' entries")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: the state dict has {len(saved_groups)} parameter group(s), "
                             f"the optimizer has {len(self.param_groups)} (nothing was loaded)")
        id_map = {}
        for i, (g, sg) in enumerate(zip(self.param_groups, saved_groups)):
            if len(sg["params"]) != len(g["params"]):
                raise ValueError(f"{name}: parameter group {i} has {len(sg['params'])} parameter(s) in the "
                                 f"state dict but {len(g['params'])} in the optimizer (nothing was loaded)")
            missing = [k for k in self.defaults if k not in sg and k not in _OPTIONAL]
            if missing:
                raise ValueError(f"{name}: parameter group {i} lacks {', '.join(map(repr, missing))} "
                                 f"(saved by another optimizer?) (nothing was loaded)")
            id_map.update(zip(sg["params"], g["params"]))
        new_state = defaultdict(dict)
        for k, entries in saved_state.items():
            if k not in id_map:
                raise ValueError(f"{name}: the state dict has state for parameter {k!r}, which no "
                                 "parameter group lists (nothing was loaded)")
            p = id_map[k]
            new_state[p] = {key: self._load_value(name, k, key, v, p) for key, v in entries.items()}
        new_groups = []
        for g, sg in zip(self.param_groups, saved_groups):
            ng = {key: copy.deepcopy(v) for key, v in sg.items() if key != "params"}
            for key in _OPTIONAL:  # saved before the option existed: keep the current setting
                if key in g and key not in ng:
                    ng[key] = g[key]
            ng["params"] = g["params"]
            if "param_names" in g and "param_names" not in ng:
                ng["param_names"] = g["param_names"]
            new_groups.append(ng)
        self.state, self.param_groups = new_state, new_groups
        self._flat.clear()

    def _load_value(self, name, index, key, v, p):
        """One state entry converted for parameter ``p`` (host scalar or array on ``p``'s backend)."""
        if v is None:
            return None
        if isinstance(v, Tensor):
            v = v.data
        if key in self._scalar_state:
            if hasattr(v, "shape"):
                if tuple(v.shape) not in ((), (1,)):
                    raise ValueError(f"{name}: state[{index!r}][{key!r}] has shape {tuple(v.shape)}, "
                                     "expected a scalar (nothing was loaded)")
                v = B.to_numpy(v).reshape(()).item()
            if not isinstance(v, (int, float)):
                raise ValueError(f"{name}: state[{index!r}][{key!r}] is a {type(v).__name__}, "
                                 "expected a number (nothing was loaded)")
            return int(round(v)) if key == "step" else float(v)
        if not hasattr(v, "shape"):
            raise ValueError(f"{name}: state[{index!r}][{key!r}] is a {type(v).__name__}, "
                             f"expected an array of shape {p.shape} (nothing was loaded)")
        if tuple(v.shape) != p.shape:
            raise ValueError(f"{name}: state[{index!r}][{key!r}] has shape {tuple(v.shape)} but the "
                             f"parameter has shape {p.shape} (nothing was loaded)")
        # a copy: DLPack transfers share memory with the source (e.g. torch tensors updated in place)
        return p.xp.asarray(B.as_array(v, p.dtype, p.backend), copy=True)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {g[k]}" for k in sorted(g) if k not in ("params", "param_names")]
        return "\n".join(lines) + "\n)"


#: hyper-parameters that a state dict may lack (it was saved before they existed)
_OPTIONAL = ("foreach",)


def _check(name: str, ok: bool, what: str):
    """Raise ``ValueError`` saying ``what`` is invalid unless ``ok``."""
    if not ok:
        raise ValueError(f"{name}: invalid {what}")


def _maybe_neg(g, maximize: bool):
    return -g if maximize else g
