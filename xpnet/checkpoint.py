"""Safe checkpoints: one safetensors file, no pickle, so loading never runs code.

A checkpoint written by :func:`save` holds the model's state dict as tensors
``model.<name>``, the optimizer's array state as ``optimizer.state.<index>.<key>``,
optional ``extra.<name>`` tensors, and, as JSON in the header's metadata, the
rest: optimizer hyper-parameters and host scalars, scheduler state, epoch,
step, RNG and loader state, user metadata, the format version and the xpnet
version.  :func:`save_weights` / :func:`load_weights` read and write plain
weight files keyed by state-dict names, the files that
``safetensors.torch.save_file(torch_model.state_dict(), path)`` writes.
Tensors keep their dtype, bfloat16 included (held on the host by ml_dtypes).

Writes are atomic (temporary file in the same folder, fsync, rename, fsync of
the folder).  A load checks everything before it changes anything: on a bad
file a :class:`CheckpointError` names the file and the problem, and the model,
optimizer, scheduler, RNG and loader are left as they were.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import uuid
from collections import Counter

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from . import backend as B
from .autograd import Tensor
from .nn.module import IncompatibleKeys

__all__ = ["CheckpointError", "save", "load", "save_weights", "load_weights"]

FORMAT, FORMAT_VERSION = "xpnet-checkpoint", "1"
_MODEL, _OPT, _EXTRA = "model.", "optimizer.state.", "extra."
_INFO = ("epoch", "step", "rng", "loader", "optimizer", "scheduler", "metadata")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: unreadable, corrupted, or not matching what it is loaded into."""


# ---------------------------------------------------------------- JSON metadata

_TAGS = ("__tuple__", "__items__", "__counter__", "__float__")


def _pack(x, skip_callables=False):
    """``x`` as JSON data, keeping what JSON loses: tuples, non-string keys, Counters, inf and nan."""
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return {"__float__": repr(x)}
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, (list, tuple)):
        items = [_pack(v, skip_callables) for v in x]
        return {"__tuple__": items} if isinstance(x, tuple) else items
    if isinstance(x, dict):
        items = [(k, v) for k, v in x.items() if not (skip_callables and callable(v))]
        if isinstance(x, Counter) or not all(isinstance(k, str) for k, _ in items) or (
                len(items) == 1 and items[0][0] in _TAGS):
            return {"__counter__" if isinstance(x, Counter) else "__items__":
                    [[_pack(k), _pack(v, skip_callables)] for k, v in items]}
        return {k: _pack(v, skip_callables) for k, v in items}
    raise TypeError(f"cannot store a {type(x).__name__} in checkpoint metadata: "
                    "expected numbers, strings, None, lists, tuples or dicts of them")


def _unpack_hook(d):
    if len(d) == 1:
        (tag, v), = d.items()
        if tag == "__tuple__":
            return tuple(v)
        if tag in ("__items__", "__counter__"):
            return (Counter if tag == "__counter__" else dict)({k: x for k, x in v})
        if tag == "__float__":
            return float(v)
    return d


def _dumps(what, x, skip_callables=False) -> str:
    try:
        return json.dumps(_pack(x, skip_callables), allow_nan=False)
    except TypeError as e:
        raise TypeError(f"checkpoint.save: {what}: {e}") from None


# ---------------------------------------------------------------------- files

def _is_array(v) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, (bool, int, float))


def _host(v) -> np.ndarray:
    a = B.to_numpy(v.data if isinstance(v, Tensor) else v)
    return a if a.flags.c_contiguous else a.copy(order="C")


def _write(path, tensors: dict, metadata: dict):
    """Write a safetensors file atomically: a crash leaves the old file (if any) whole."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        save_file({k: _host(v) for k, v in tensors.items()}, tmp, metadata=metadata)
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    if os.name == "posix":  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read(path):
    """``(tensors, metadata)`` of a safetensors file; CheckpointError if it is not a valid one."""
    try:
        with safe_open(os.fspath(path), framework="numpy") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except OSError:
        raise
    except Exception as e:  # SafetensorError and friends: truncated, corrupted, inconsistent header
        raise CheckpointError(f"{path}: not a valid safetensors file ({e})") from None


def _state_once(model, prefix: str = ""):
    """``(tensors, aliases)``: the model's state dict with each shared (tied) tensor stored once,
    under its first name, and ``{other name: first name}`` for the rest: the header metadata that
    ``safetensors.torch.save_model`` writes for the names it drops."""
    tensors, aliases, first = {}, {}, {}
    for name, t in model._state_items():
        kept = first.setdefault(id(t), prefix + name)
        if kept == prefix + name:
            tensors[kept] = t.data
        else:
            aliases[prefix + name] = kept
    return tensors, aliases


def _with_aliases(tensors: dict, meta: dict) -> dict:
    """``tensors`` plus the names that metadata entries ``{dropped name: kept name}`` alias
    (a tied weight stored once by :func:`save`, :func:`save_weights` or ``safetensors.torch.save_model``)."""
    out = dict(tensors)
    out.update({k: tensors[v] for k, v in meta.items() if k not in tensors and v in tensors})
    return out


def _model_arrays(path, model, sd: dict, strict: bool, target):
    """The file's entries for ``model`` converted to each entry's backend and dtype (or ``target``),
    after checking names and shapes; nothing is changed."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    problems = [f"{k}: the file has shape {tuple(sd[k].shape)} but the model expects {tuple(a.shape)}"
                for k, a in own.items() if k in sd and tuple(sd[k].shape) != tuple(a.shape)]
    if strict and missing:
        problems.insert(0, "missing entries: " + ", ".join(missing))
    if strict and unexpected:
        problems.insert(0, "unexpected entries: " + ", ".join(unexpected))
    if problems:
        raise CheckpointError(f"{path}: does not fit {type(model).__name__}: " + "; ".join(problems)
                              + " (nothing was loaded)")
    new = {k: B.as_array(sd[k], B.dtype_name(a.dtype), target or B.backend_of(a))
           for k, a in own.items() if k in sd}
    return new, missing, unexpected


# ------------------------------------------------------------------ checkpoints

def save(path, model, optimizer=None, scheduler=None, *, epoch=None, step=None, rng=None, loader=None,
         metadata=None, extra_tensors=None):
    """Write a full checkpoint of ``model`` (and optimizer, scheduler, loader) to ``path``, atomically.

    ``rng``: a :class:`~xpnet.backend.Generator` whose state to save (default:
    the default generator), or ``False`` for none.  ``metadata``: JSON-like
    user data.  ``extra_tensors``: ``{name: array}`` saved alongside.
    """
    import xpnet
    tensors, aliases = _state_once(model, _MODEL)
    tensors.update({_EXTRA + k: v for k, v in (extra_tensors or {}).items()})
    info = {"epoch": epoch, "step": step, "metadata": metadata}
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars: dict = {}
        for i, entries in sd["state"].items():
            for key, v in entries.items():
                if _is_array(v.data if isinstance(v, Tensor) else v):
                    tensors[f"{_OPT}{i}.{key}"] = v
                else:
                    scalars.setdefault(i, {})[key] = v
        info["optimizer"] = {"param_groups": sd["param_groups"], "state": scalars}
    if rng is not False:
        info["rng"] = (B.default_generator() if rng in (None, True) else rng).get_state()
    if loader is not None:
        info["loader"] = loader.state_dict()
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "xpnet_version": xpnet.__version__, **aliases}
    meta.update({k: _dumps(k, v) for k, v in info.items() if v is not None})
    if scheduler is not None:  # functions (LambdaLR's lambdas) are not saved, as in PyTorch
        meta["scheduler"] = _dumps("scheduler", scheduler.state_dict(), skip_callables=True)
    _write(path, tensors, meta)


def load(path, model, optimizer=None, scheduler=None, *, rng=True, loader=None, map_backend=None,
         strict=True) -> dict:
    """Restore a checkpoint written by :func:`save` into ``model`` (and ``optimizer``, ``scheduler``).

    Arrays go to each parameter's backend and dtype, or with ``map_backend``
    (a name such as ``"torch:cuda"`` or a Backend) the model moves there.
    ``rng``: restore the default generator (``True``), a given Generator, or
    nothing (``False``); RNG and ``loader`` state are restored when the file
    has them.  ``strict=False`` tolerates missing and unexpected model entries.
    Returns ``{"epoch", "step", "metadata", "extra_tensors", "xpnet_version",
    "missing_keys", "unexpected_keys"}``.  Raises :class:`CheckpointError`, and
    changes nothing, when the file is not valid or does not fit.
    """
    tensors, meta = _read(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an xpnet checkpoint (its metadata lacks format={FORMAT!r}); "
                              "load a plain weight file with load_weights()")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {meta.get('format_version')!r}, but this "
                              f"xpnet reads version {FORMAT_VERSION!r}: use the xpnet version that wrote it "
                              f"({meta.get('xpnet_version')})")
    tensors = _with_aliases(tensors, meta)
    info = {}
    for k in _INFO:
        if k in meta:
            try:
                info[k] = json.loads(meta[k], object_hook=_unpack_hook)
            except ValueError as e:
                raise CheckpointError(f"{path}: metadata entry {k!r} is not valid JSON ({e})") from None
    target = None if map_backend is None else (
        map_backend if isinstance(map_backend, B.Backend) else B.get_backend(map_backend))

    # 1. check and convert everything, changing nothing
    model_sd, opt_arrays, extras, unknown = {}, {}, {}, []
    for k, v in tensors.items():
        index, _, key = k[len(_OPT):].partition(".")
        if k.startswith(_MODEL):
            model_sd[k[len(_MODEL):]] = v
        elif k.startswith(_OPT) and index.isdigit() and key:
            opt_arrays[int(index), key] = v
        elif k.startswith(_EXTRA):
            extras[k[len(_EXTRA):]] = v
        else:
            unknown.append(k)
    if unknown:
        raise CheckpointError(f"{path}: unexpected tensors {', '.join(unknown)}: expected names starting "
                              f"with {_MODEL!r}, {_OPT!r} or {_EXTRA!r}")
    new, missing, unexpected = _model_arrays(path, model, model_sd, strict, target)

    if optimizer is not None:
        if "optimizer" not in info:
            raise CheckpointError(f"{path}: the file has no optimizer state")
        try:
            state = {int(i): dict(s) for i, s in info["optimizer"]["state"].items()}
            for (i, key), v in opt_arrays.items():
                state.setdefault(i, {})[key] = v
            trial = copy.copy(optimizer)  # load_state_dict rebinds state and param_groups: the original keeps its own
            trial.load_state_dict({"state": state, "param_groups": info["optimizer"]["param_groups"]})
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{path}: the optimizer state does not fit {type(optimizer).__name__}: {e}") from None
        if target is not None:
            for s in trial.state.values():
                s.update({key: B.transfer(v, target) for key, v in s.items() if _is_array(v)})

    if scheduler is not None:
        if "scheduler" not in info:
            raise CheckpointError(f"{path}: the file has no scheduler state")
        opt = getattr(scheduler, "optimizer", None)
        try:  # on a copy that shares only the optimizer
            copy.deepcopy(scheduler, {id(opt): opt}).load_state_dict(copy.deepcopy(info["scheduler"]))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{path}: the scheduler state does not fit {type(scheduler).__name__}: {e}") from None

    gen = B.default_generator() if rng is True else (rng or None)
    if gen is not None and "rng" in info:
        try:
            B.Generator().set_state(info["rng"])
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: invalid RNG state ({e})") from None

    home = target or next((B.backend_of(a) for a in new.values()), None) or B.current_backend()
    extras = {k: B.as_array(v, None, home) for k, v in extras.items()}

    # 2. apply: the loader first (its load_state_dict checks everything before it changes anything)
    if loader is not None and "loader" in info:
        try:
            loader.load_state_dict(info["loader"])
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: the loader state does not fit: {e}") from None
    if target is not None:
        model.to(target)
    model.load_state_dict(new, strict=strict)
    if optimizer is not None:
        optimizer.state, optimizer.param_groups = trial.state, trial.param_groups
    if scheduler is not None:
        scheduler.load_state_dict(info["scheduler"])
    if gen is not None and "rng" in info:
        gen.set_state(info["rng"])
    return {"epoch": info.get("epoch"), "step": info.get("step"), "metadata": info.get("metadata"),
            "extra_tensors": extras, "xpnet_version": meta.get("xpnet_version"),
            "missing_keys": missing, "unexpected_keys": unexpected}


# ---------------------------------------------------------------------- weights

def save_weights(path, model):
    """Write ``model.state_dict()`` to a plain safetensors file (state-dict names as keys), atomically.
    A tensor shared by two modules (tied weights) is stored once, the other names recorded in the
    header metadata as ``safetensors.torch.save_model`` does (so its ``load_model`` reads the file)."""
    tensors, aliases = _state_once(model)
    _write(path, tensors, aliases or None)


def load_weights(path, model, strict: bool = True) -> IncompatibleKeys:
    """Load a plain safetensors weight file (e.g. from ``safetensors.torch.save_file(torch_model.state_dict())``
    or ``safetensors.torch.save_model(torch_model)``, whose header names the tied weights it stored once)
    or the model part of an xpnet checkpoint into ``model``; returns the missing and unexpected keys.
    Raises :class:`CheckpointError`, and changes nothing, when the file is not valid or does not fit."""
    tensors, meta = _read(path)
    tensors = _with_aliases(tensors, meta)  # tied weights stored once
    if meta.get("format") == FORMAT:
        tensors = {k[len(_MODEL):]: v for k, v in tensors.items() if k.startswith(_MODEL)}
    new, missing, unexpected = _model_arrays(path, model, tensors, strict, None)
    model.load_state_dict(new, strict=strict)
    return IncompatibleKeys(missing, unexpected)
