"""Dtypes across libraries: names, NumPy equivalents (bfloat16 through ml_dtypes), kinds."""

from __future__ import annotations

import numpy as np

from .select import name_of_namespace


class DType(str):
    """A dtype named as in PyTorch (``xpnet.float32``, ...), accepted wherever a dtype is.

    It is the name itself (a ``str``), so every function that takes a dtype name takes it;
    it compares equal to the dtype of that name of any library (``x.dtype == xpnet.float32``
    on NumPy, PyTorch, JAX and CuPy arrays; array-api-strict's dtypes refuse to compare with
    anything foreign, so there write ``xpnet.float32 == x.dtype``).
    """

    __slots__ = ()

    def __repr__(self):
        return f"xpnet.{str.__str__(self)}"

    def __eq__(self, other):
        if isinstance(other, str):
            return str.__eq__(self, other)
        try:
            return dtype_name(other) == str.__str__(self)
        except (TypeError, ValueError):
            return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = str.__hash__

    @property
    def is_floating_point(self) -> bool:
        return self.startswith(("float", "bfloat"))

    @property
    def itemsize(self) -> int:
        return 2 if self == "bfloat16" else np.dtype(str.__str__(self)).itemsize


#: PyTorch's dtype names (and the aliases it has: float, double, half, long, int)
DTYPES = {n: DType(n) for n in ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32",
                                "int64", "uint8", "bool", "complex64", "complex128")}
DTYPE_ALIASES = {"half": "float16", "float": "float32", "double": "float64", "short": "int16",
                 "int": "int32", "long": "int64", "cfloat": "complex64", "cdouble": "complex128"}


def dtype_name_or_none(obj):
    """The dtype name of ``obj`` when it names or is a dtype (``xpnet.float32``, ``"double"``,
    ``torch.int64``, ``numpy.float32``), else None (a device, a backend name, ...)."""
    if isinstance(obj, str):
        name = DTYPE_ALIASES.get(obj, obj)
        return name if name in DTYPES else None
    if isinstance(obj, (int, float)) or obj is None:
        return None
    try:
        return dtype_name(obj)
    except (TypeError, ValueError):
        return None


def resolve_dtype(xp, dtype):
    """``dtype`` given as a name (``"float32"``, or PyTorch's ``"double"``, ``"long"``, ...) or a dtype
    of any library, as ``xp``'s dtype."""
    name = DTYPE_ALIASES.get(dtype, dtype) if isinstance(dtype, str) else dtype_name(dtype)
    try:
        return getattr(xp, name)
    except AttributeError:
        where = " (torch and jax have bfloat16)" if name == "bfloat16" else ""
        raise TypeError(f"unknown dtype {dtype!r} for the {name_of_namespace(xp)} backend{where}: "
                        "expected a name such as 'float32' or 'int64'") from None


_ISDTYPE: dict = {}


def isdtype(xp, dtype, kind) -> bool:
    """``xp.isdtype(dtype, kind)``, remembered (NumPy's takes microseconds: too slow per step)."""
    key = (xp, dtype, kind)  # xp first: dtypes of two libraries are never compared
    found = _ISDTYPE.get(key)
    if found is None:
        found = _ISDTYPE[key] = xp.isdtype(dtype, kind)
    return found


def numpy_dtype(dtype):
    """The NumPy dtype with the same name as a dtype of any library (bfloat16: ml_dtypes')."""
    if isinstance(dtype, np.dtype) or isinstance(dtype, type):
        return np.dtype(dtype)
    name = str(dtype).rsplit(".", 1)[-1].strip("')>")
    name = DTYPE_ALIASES.get(name, name)  # PyTorch's aliases: "float" is float32, "int" int32
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def dtype_name(dtype) -> str:
    """``float32``, ``int64``, ... for a dtype of any library."""
    return numpy_dtype(dtype).name
