"""One rule for axis names: PyTorch's ``dim``/``keepdim`` and the Array API's ``axis``/``keepdims``.

Every function and method of xpnet that takes an axis is written with one pair of
names (``axis``/``keepdims`` for the Array API reductions, ``dim`` where PyTorch's
name is the function's own, as in ``softmax``) and decorated with
:func:`axis_names`, which accepts the other spelling as a keyword too.
"""

from __future__ import annotations

import functools
import inspect

#: each spelling and its other one
_OTHER = {"dim": "axis", "axis": "dim", "keepdim": "keepdims", "keepdims": "keepdim"}


def axis_names(fn):
    """``fn`` accepting ``dim=``/``axis=`` and ``keepdim=``/``keepdims=`` alike.

    ``fn``'s own parameter names are kept (they show in ``help``); the other
    spelling of each is mapped onto it.  Giving both spellings of one argument
    raises ``TypeError`` naming them.
    """
    params = inspect.signature(fn).parameters
    aliases = {_OTHER[p]: p for p in params if p in _OTHER and _OTHER[p] not in params}
    if not aliases:
        return fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if kwargs:
            for alias, own in aliases.items():
                if alias in kwargs:
                    if own in kwargs:
                        raise TypeError(f"{fn.__name__}() got both {own!r} and {alias!r}: they are two "
                                        f"spellings of one argument (PyTorch's and the Array API's); give one")
                    kwargs[own] = kwargs.pop(alias)
        return fn(*args, **kwargs)

    return wrapper
