"""Dtypes across libraries: names, NumPy equivalents (bfloat16 through ml_dtypes), kinds."""

from __future__ import annotations

import numpy as np

from .select import name_of_namespace


def resolve_dtype(xp, dtype):
    """``dtype`` given as a name (``"float32"``) or a dtype of any library, as ``xp``'s dtype."""
    name = dtype if isinstance(dtype, str) else dtype_name(dtype)
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
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def dtype_name(dtype) -> str:
    """``float32``, ``int64``, ... for a dtype of any library."""
    return numpy_dtype(dtype).name
