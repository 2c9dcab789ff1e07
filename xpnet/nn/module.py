"""Module and Parameter, with PyTorch's names and semantics."""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator, NamedTuple

from .. import backend as B
from ..autograd import Tensor


class Parameter(Tensor):
    """A tensor that a :class:`Module` learns (``requires_grad=True`` by default)."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    missing_keys: list
    unexpected_keys: list


class RemovableHandle:
    def __init__(self, hooks: dict, key):
        self.hooks, self.key = hooks, key

    def remove(self):
        self.hooks.pop(self.key, None)


class Module:
    """Base class of every layer and model.

    Assigning a :class:`Parameter`, a :class:`Module` or (through
    :meth:`register_buffer`) a buffer to an attribute registers it, so that
    :meth:`parameters`, :meth:`state_dict`, :meth:`to` and the rest find it.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            buffers.pop(name, None), modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None), buffers.pop(name, None)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                "(a Parameter or None expected)")
            params[name] = None
        elif name in buffers:
            buffers[name] = value if value is None or isinstance(value, Tensor) else Tensor(value)
        else:
            modules.pop(name, None)
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if key in d and name in d[key]:
                return d[key][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for d in (self._parameters, self._buffers, self._modules):
            if name in d:
                del d[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param):
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param if isinstance(param, Parameter) else Parameter(param))

    def register_buffer(self, name: str, value, persistent: bool = True):
        """A tensor that belongs to the module's state but is not learned (e.g. running statistics)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = value if value is None or isinstance(value, Tensor) else Tensor(value)
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module):
        self._modules[name] = module

    # -- traversal
    def named_modules(self, prefix: str = "", memo=None) -> Iterator:
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def _named(self, attr, prefix="", recurse=True):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for n, v in getattr(m, attr).items():
                if v is None or id(v) in seen:
                    continue
                seen.add(id(v))
                yield (f"{mp}.{n}" if mp else n), v

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        return self._named("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        return self._named("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True):
        return (b for _, b in self.named_buffers(recurse=recurse))

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- modes and gradients
    def train(self, mode: bool = True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, flag: bool = True):
        for p in self.parameters():
            p.requires_grad = flag
        return self

    def zero_grad(self, set_to_none: bool = True):
        for p in self.parameters():
            if p.grad is not None and not set_to_none:
                p.grad = Tensor(p.xp.zeros_like(p.grad.data))
            else:
                p.grad = None

    # -- calling
    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        if not self._forward_hooks:
            return out
        for hook in tuple(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def register_forward_hook(self, hook) -> RemovableHandle:
        """``hook(module, inputs, output)`` runs after every forward; returns a handle with ``remove()``."""
        key = object()
        self._forward_hooks[key] = hook
        return RemovableHandle(self._forward_hooks, key)

    # -- state
    def _state_items(self, prefix: str = ""):
        """(name, tensor) in PyTorch's state_dict order: own parameters, own persistent
        buffers, then each child's; shared (tied) tensors appear under every name, as in PyTorch."""
        for n, p in self._parameters.items():
            if p is not None:
                yield prefix + n, p
        for n, b in self._buffers.items():
            if b is not None and n not in self._non_persistent:
                yield prefix + n, b
        for n, m in self._modules.items():
            if m is not None:
                yield from m._state_items(prefix + n + ".")

    def state_dict(self) -> "OrderedDict[str, object]":
        """``{name: array}`` for every parameter and persistent buffer (arrays, not copies)."""
        return OrderedDict((name, t.data) for name, t in self._state_items())

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays from ``state_dict`` (any supported library) into this module.

        Every entry is checked before anything is written: a missing or
        unexpected name (when ``strict``) or a wrong shape raises an error
        naming the entry, and the module is left unchanged.
        """
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing entries: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected entries: {', '.join(unexpected)}")
        new = {}
        for name, t in own.items():
            if name not in state_dict:
                continue
            v = state_dict[name]
            v = v.data if isinstance(v, Tensor) else v
            shape = tuple(getattr(v, "shape", ()))
            if shape != t.shape:
                problems.append(f"{name}: the file has shape {shape} but the model expects {t.shape}")
                continue
            try:
                new[name] = B.as_array(v, t.dtype, t.backend)
            except Exception as e:
                problems.append(f"{name}: cannot convert ({e})")
        if problems:
            raise ValueError(f"load_state_dict for {type(self).__name__}: " + "; ".join(problems)
                             + " (the model was left unchanged)")
        for name, arr in new.items():
            own[name].data = arr
        return IncompatibleKeys(missing, unexpected)

    def to(self, target=None, device=None, dtype=None):
        """Move every parameter and buffer to a backend (``"torch"``, a Backend) and/or device
        (``"cpu"``, ``"cuda"``: as :meth:`Tensor.to`), and/or convert floating ones to ``dtype``
        (``xpnet.float64``, ``"float64"``, any library's dtype); returns ``self``."""
        if B.dtype_name_or_none(target) is not None:
            target, dtype = None, target
        if isinstance(target, str) and target.split(":", 1)[0] not in B.NAMES or (
                target is not None and not isinstance(target, (str, B.Backend))):
            target, device = None, target  # "cpu", "cuda:1", a library's device object
        if isinstance(dtype, str):
            dtype = B.DTYPE_ALIASES.get(dtype, dtype)
        for t in [*self.parameters(), *self.buffers()]:  # non-persistent buffers too, each tensor once
            data = t.data
            if target is not None or device is not None:
                if target is None:
                    b = B.on_device(t.backend, device)
                else:
                    b = target if isinstance(target, B.Backend) else B.get_backend(target, device)
                data = B.transfer(data, b)
            if dtype is not None and B.dtype_name(data.dtype).startswith(("float", "bfloat")):
                xp = B.namespace_of(data)
                data = xp.astype(data, B.resolve_dtype(xp, dtype))
            t.data = data
            if t.grad is not None:
                t.grad = None
        return self

    def double(self):
        return self.to(dtype="float64")

    def float(self):
        return self.to(dtype="float32")

    def half(self):
        return self.to(dtype="float16")

    def bfloat16(self):
        return self.to(dtype="bfloat16")

    def cpu(self):
        """Every parameter and buffer in host memory (``to("cpu")``)."""
        return self.to(device="cpu")

    def cuda(self, device=None):
        """Every parameter and buffer on a CUDA device (``to("cuda")``; NumPy's arrays go to CuPy)."""
        return self.to(device="cuda" if device is None else device if isinstance(device, str) else f"cuda:{device}")

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # -- printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ("\n" + "\n".join(lines) + "\n)" if lines else ")")

    def summary(self, input_shape=None, dtype="float32") -> str:
        """A table of layers with output shapes and parameter counts (runs one forward on zeros
        of ``input_shape`` when given, batch axis included)."""
        from .summary import summary
        return summary(self, input_shape, dtype)
