"""Safe checkpoints: one safetensors file, no pickle, so loading never runs code.

A checkpoint written by :func:`save` holds the model's state dict as tensors
``model.<name>``, the optimizer's array state as ``optimizer.state.<index>.<key>``,
optional ``extra.<name>`` tensors, and, as JSON in the header's metadata, the
rest: optimizer hyper-parameters and host scalars, scheduler and GradScaler state, epoch,
step, RNG and loader state, user metadata, the format version and the xpnet
version.  :func:`save_weights` / :func:`load_weights` read and write plain
weight files keyed by state-dict names, the files that
``safetensors.torch.save_file(torch_model.state_dict(), path)`` writes.
Tensors keep their dtype, bfloat16 included (held on the host by ml_dtypes).

Guarantees:

* **Atomic.** The file is serialized in memory, written to one temporary file
  of ours in the same folder (created with the umask's permissions, locked
  while written), flushed, fsynced and renamed over the target, and the folder
  is fsynced: a crash leaves the old file (or none), never a partial one.  Temp
  files left by killed writers of the same path are deleted at the next save;
  those of writers still at work (they hold the lock) are left alone.  Missing
  parent folders are created.  A failed write raises an ``OSError`` (of the
  errno's subclass) that names the checkpoint, not the temporary file.
* **Verified.** The SHA-256 of every tensor's bytes and of the other metadata
  is stored in the metadata (``tensor_sha256``, ``metadata_sha256``) and
  checked on load: a flipped bit is a :class:`CheckpointError` naming the file
  and the tensor.  Files without digests (PyTorch's, older xpnet's) load unchecked.
* **Nothing non-finite is written.** :func:`save` and :func:`save_weights`
  refuse (:class:`NonFiniteWeightsError`) when a parameter or optimizer state
  holds NaN or infinity; the check runs on the host copy that the save makes
  anyway (no extra device read).
* **A load checks everything before it changes anything.** Every failure,
  a missing or unreadable file included, is a :class:`CheckpointError` naming
  the file and the problem (digests, structure, metadata types, shapes,
  optimizer, scheduler, GradScaler, RNG and loader state), and the model, optimizer,
  scheduler, GradScaler, RNG and loader are left as they were.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Mapping

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as serialize

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; stale temp files are judged by age alone
    fcntl = None

from . import backend as B
from .autograd import Tensor
from .nn.module import IncompatibleKeys

__all__ = ["CheckpointError", "NonFiniteWeightsError", "save", "load", "save_weights", "load_weights"]

FORMAT, FORMAT_VERSION = "xpnet-checkpoint", "1"
_MODEL, _OPT, _EXTRA = "model.", "optimizer.state.", "extra."
_INFO = ("epoch", "step", "rng", "loader", "optimizer", "scheduler", "scaler", "metadata")
_TENSOR_DIGESTS, _META_DIGEST = "tensor_sha256", "metadata_sha256"
_STALE_EMPTY_S = 60.0  # an empty, unlocked temp file younger than this may be a writer that has not locked it yet


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: missing, unreadable, corrupted, or not matching what it is
    loaded into.  The message names the file."""


class NonFiniteWeightsError(ValueError):
    """A save refused because a parameter or optimizer state holds NaN or infinity."""


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
            if not isinstance(v, list):
                raise ValueError(f"malformed tag {tag}: expected a list, got {type(v).__name__}")
            return tuple(v)
        if tag in ("__items__", "__counter__"):
            if not isinstance(v, list) or not all(isinstance(kv, list) and len(kv) == 2 for kv in v):
                raise ValueError(f"malformed tag {tag}: expected a list of [key, value] pairs")
            return (Counter if tag == "__counter__" else dict)({k: x for k, x in v})
        if tag == "__float__":
            if v not in ("inf", "-inf", "nan"):
                raise ValueError(f"malformed tag {tag}: expected 'inf', '-inf' or 'nan', got {v!r}")
            return float(v)
    return d


def _loads(path, key, text):
    """The JSON metadata entry ``key``; CheckpointError naming the file if it is not valid."""
    try:
        return json.loads(text, object_hook=_unpack_hook)
    except RecursionError:
        raise CheckpointError(f"{path}: metadata entry {key!r} is nested too deeply to be read") from None
    except (ValueError, TypeError) as e:  # TypeError: an unhashable key in a tagged dict
        raise CheckpointError(f"{path}: metadata entry {key!r} is not valid JSON ({e})") from None


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


def _digest(a: np.ndarray) -> str:
    """SHA-256 of an array's bytes (C order, little-endian as safetensors stores them)."""
    return hashlib.sha256(np.ascontiguousarray(a).reshape(-1).view(np.uint8)).hexdigest()


def _meta_digest(metadata: dict) -> str:
    rest = {k: v for k, v in metadata.items() if k not in (_TENSOR_DIGESTS, _META_DIGEST)}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def _nonfinite(path, arrays: dict, names) -> None:
    """NonFiniteWeightsError naming the entries of ``names`` in ``arrays`` that hold NaN or infinity."""
    bad = []
    for k in names:
        a = arrays[k]
        if a.dtype.kind not in "fc" and "float" not in a.dtype.name:
            continue
        a = a if a.dtype.kind in "fc" else a.astype(np.float32)  # bfloat16, float8 (ml_dtypes)
        if not np.isfinite(a).all():
            bad.append(f"{k} ({int(a.size - np.count_nonzero(np.isfinite(a)))} of {a.size} values)")
    if bad:
        raise NonFiniteWeightsError(
            f"refused to write {path}: non-finite values (NaN or infinity) in {', '.join(bad)}: the training "
            "diverged (try a lower learning rate or gradient clipping); the file was not written")


def _write_error(path, e: OSError) -> OSError:
    """``e`` again, of the same OSError subclass, naming the checkpoint instead of a temporary file."""
    what = e.strerror or str(e) or type(e).__name__
    if e.errno is not None:
        return OSError(e.errno, f"cannot write the checkpoint ({what})", os.fspath(path))  # errno picks the subclass
    try:
        return type(e)(f"{path}: cannot write the checkpoint ({what})")
    except TypeError:
        return OSError(f"{path}: cannot write the checkpoint ({what})")


def _temp_pattern(base: str):
    return re.compile(re.escape(f".{base}.") + r"[0-9a-f]{32}\.tmp")


def _clean_stale(folder: str, base: str):
    """Delete temp files of ``base`` left by writers that died (their lock is gone); leave those of
    writers still at work (they hold an exclusive lock until their rename)."""
    pattern = _temp_pattern(base)
    try:
        names = [n for n in os.listdir(folder) if pattern.fullmatch(n)]
    except OSError:
        return
    for name in names:
        tmp = os.path.join(folder, name)
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue  # renamed or removed meanwhile
        try:
            st = os.fstat(fd)
            young = time.time() - st.st_mtime < _STALE_EMPTY_S
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live writer
                if st.st_size == 0 and young:
                    continue  # maybe created a moment ago by a writer about to lock it
            elif young or st.st_size == 0:
                continue
            with contextlib.suppress(OSError):
                if os.path.samestat(os.stat(tmp), st):
                    os.remove(tmp)
        finally:
            os.close(fd)


def _write(path, arrays: dict, metadata: dict):
    """Write host ``arrays`` as a safetensors file at ``path`` atomically, with the SHA-256 of every
    tensor and of the metadata: a crash leaves the old file (if any) whole."""
    metadata = dict(metadata or {})
    metadata[_TENSOR_DIGESTS] = json.dumps({k: _digest(a) for k, a in arrays.items()})
    metadata[_META_DIGEST] = _meta_digest(metadata)
    data = serialize(arrays, metadata=metadata)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    tmp = os.path.join(folder, f".{base}.{uuid.uuid4().hex}.tmp")
    fd = None
    try:
        os.makedirs(folder, exist_ok=True)
        _clean_stale(folder, base)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)  # umask applies
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held until closed: marks the file as in use
        with open(fd, "wb", closefd=True) as f:
            fd = None
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)  # still locked: a cleaner never sees it unlocked before the rename
        if os.name == "posix":  # make the rename itself durable
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except BaseException as e:
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise _write_error(path, e) from e
        raise


def _read(path):
    """``(tensors, metadata)`` of a safetensors file, its digests checked when it has them;
    CheckpointError naming the file for every failure."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise CheckpointError(f"{path}: is a folder, expected a checkpoint file")
    try:
        with safe_open(name, framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except OSError as e:
        why = "no such file" if isinstance(e, FileNotFoundError) else (e.strerror or str(e))
        raise CheckpointError(f"{path}: cannot read the checkpoint ({why})") from e
    except Exception as e:  # SafetensorError and friends: truncated, corrupted, inconsistent header
        raise CheckpointError(f"{path}: not a valid safetensors file ({e})") from None
    _verify(path, tensors, meta)
    return tensors, meta


def _verify(path, tensors: dict, meta: dict):
    """Check the stored SHA-256 digests (when the file has them) against the tensors and metadata."""
    if _TENSOR_DIGESTS not in meta and _META_DIGEST not in meta:
        return  # written by PyTorch or an older xpnet: nothing to check against
    if meta.get(_META_DIGEST) != _meta_digest(meta):
        raise CheckpointError(f"{path}: the metadata is corrupted: its SHA-256 differs from the one stored "
                              "at save (the file was changed after it was written)")
    digests = _loads(path, _TENSOR_DIGESTS, meta.get(_TENSOR_DIGESTS, "null"))
    if not isinstance(digests, dict) or not all(isinstance(v, str) for v in digests.values()):
        raise CheckpointError(f"{path}: metadata entry {_TENSOR_DIGESTS!r} is not a table of digests")
    if set(digests) != set(tensors):
        odd = sorted(set(digests) ^ set(tensors))
        raise CheckpointError(f"{path}: the tensors {', '.join(odd)} do not match the digests stored at save "
                              "(the file is corrupted)")
    for k, a in tensors.items():
        if _digest(a) != digests[k]:
            raise CheckpointError(f"{path}: tensor {k!r} is corrupted: the SHA-256 of its bytes differs from "
                                  "the one stored at save")


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
    try:
        new = {k: B.as_array(sd[k], B.dtype_name(a.dtype), target or B.backend_of(a))
               for k, a in own.items() if k in sd}
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot convert the file's tensors for {type(model).__name__}: {e} "
                              "(nothing was loaded)") from None
    return new, missing, unexpected


def _parameter_names(model, prefix=""):
    return [prefix + name for name, _ in model.named_parameters()]


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_kind(where: str, saved, live):
    """ValueError unless ``saved`` (from a file) is of the kind of ``live`` (the object's own value):
    numbers for numbers, flags for flags, text for text, sequences and dicts alike, recursively.
    None on either side and callables are not judged."""
    if saved is None or live is None or callable(live):
        return
    if _is_number(live) or isinstance(live, bool) or isinstance(live, str):
        kind = _is_number if _is_number(live) else (lambda x: isinstance(x, type(live)))
        if not kind(saved):
            expected = "a number" if _is_number(live) else type(live).__name__
            raise ValueError(f"{where} is {saved!r}: expected {expected}")
    elif isinstance(live, (list, tuple)):
        if not isinstance(saved, (list, tuple)):
            raise ValueError(f"{where} is {saved!r}: expected a sequence like {live!r}")
        if isinstance(live, tuple) and len(saved) != len(live):
            raise ValueError(f"{where} has {len(saved)} entries: expected {len(live)}")
        for j, (v, w) in enumerate(zip(saved, live)):
            _check_kind(f"{where}[{j}]", v, w)
    elif isinstance(live, Mapping):
        if not isinstance(saved, Mapping):
            raise ValueError(f"{where} is {saved!r}: expected a dict")
        for k in saved.keys() & live.keys():
            _check_kind(f"{where}[{k!r}]", saved[k], live[k])


# ------------------------------------------------------------------ checkpoints

def save(path, model, optimizer=None, scheduler=None, *, epoch=None, step=None, rng=None, loader=None,
         metadata=None, extra_tensors=None, scaler=None):
    """Write a full checkpoint of ``model`` (and optimizer, scheduler, loader, and the
    :class:`~xpnet.GradScaler` ``scaler``: its ``state_dict``, as Lightning saves it) to ``path``, atomically.

    ``rng``: a :class:`~xpnet.backend.Generator` whose state to save (default:
    the default generator), or ``False`` for none.  ``metadata``: JSON-like
    user data.  ``extra_tensors``: ``{name: array}`` saved alongside.
    Missing parent folders are created.  Raises :class:`NonFiniteWeightsError`, writing
    nothing, when a parameter or an optimizer state array holds NaN or infinity, and an
    ``OSError`` naming ``path`` when the file cannot be written.
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
    if scaler is not None:
        info["scaler"] = scaler.state_dict()
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "xpnet_version": xpnet.__version__, **aliases}
    meta.update({k: _dumps(k, v) for k, v in info.items() if v is not None})
    if scheduler is not None:  # functions (LambdaLR's lambdas) are not saved, as in PyTorch
        meta["scheduler"] = _dumps("scheduler", scheduler.state_dict(), skip_callables=True)
    arrays = {k: _host(v) for k, v in tensors.items()}  # the one read from the device
    _nonfinite(path, arrays, [n for n in _parameter_names(model, _MODEL) if n in arrays]
               + [k for k in arrays if k.startswith(_OPT)])
    _write(path, arrays, meta)


def load(path, model, optimizer=None, scheduler=None, *, rng=True, loader=None, map_backend=None,
         strict=True, check=None, scaler=None) -> dict:
    """Restore a checkpoint written by :func:`save` into ``model`` (and ``optimizer``, ``scheduler``,
    and an enabled :class:`~xpnet.GradScaler` ``scaler``: a file without its state, or with a
    malformed one, is a CheckpointError).

    Arrays go to each parameter's backend and dtype, or with ``map_backend``
    (a name such as ``"torch:cuda"`` or a Backend) the model moves there.
    ``rng``: restore the default generator (``True``), a given Generator, or
    nothing (``False``); RNG and ``loader`` state are restored when the file
    has them.  ``strict=False`` tolerates missing and unexpected model entries.
    ``check``: a function of the saved user metadata that raises ValueError or
    TypeError to refuse the file (before anything is changed).  Tensor digests
    are verified when the file has them.
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
    tensors = _with_aliases(tensors, meta)  # tied weights stored once
    info = {k: _loads(path, k, meta[k]) for k in _INFO if k in meta}
    for k in ("epoch", "step"):
        v = info.get(k)
        if v is not None and (type(v) is not int or v < 0):
            raise CheckpointError(f"{path}: metadata entry {k!r} is {v!r}: expected a whole number >= 0")
    if check is not None:
        try:
            check(info.get("metadata"))
        except (ValueError, TypeError, KeyError) as e:
            raise CheckpointError(f"{path}: {e}") from None
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
            saved = info["optimizer"]
            if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list) or not all(
                    isinstance(g, dict) for g in saved["param_groups"]) or not isinstance(saved.get("state"), dict):
                raise ValueError("expected {'param_groups': [dicts], 'state': {index: dict}}")
            for i, (sg, g) in enumerate(zip(saved["param_groups"], optimizer.param_groups)):
                for key in sg.keys() & g.keys() - {"params", "param_names"}:
                    _check_kind(f"param_groups[{i}][{key!r}]", sg[key], g[key])
                if "lr" in sg and not (_is_number(sg["lr"]) and math.isfinite(sg["lr"]) and sg["lr"] >= 0):
                    raise ValueError(f"param_groups[{i}]['lr'] is {sg['lr']!r}: expected a finite number >= 0")
            state = {int(i): dict(s) for i, s in saved["state"].items()}
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
            if not isinstance(info["scheduler"], dict):
                raise ValueError(f"expected a dict, got {type(info['scheduler']).__name__}")
            _check_kind("state", info["scheduler"], scheduler.state_dict())
            copy.deepcopy(scheduler, {id(opt): opt}).load_state_dict(copy.deepcopy(info["scheduler"]))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{path}: the scheduler state does not fit {type(scheduler).__name__}: {e}") from None

    scaler = scaler if scaler is not None and scaler.is_enabled() else None  # a disabled one has no state
    if scaler is not None:
        if "scaler" not in info:
            raise CheckpointError(f"{path}: the file has no GradScaler state (it was saved without one, e.g. by a "
                                  "Trainer with precision other than '16-mixed'); nothing was loaded")
        try:
            scaler.check_state_dict(info["scaler"])
        except ValueError as e:
            raise CheckpointError(f"{path}: the GradScaler state does not fit: {e} (nothing was loaded)") from None

    gen = B.default_generator() if rng is True else (rng or None)
    if gen is not None and "rng" in info:
        try:
            B.Generator().set_state(info["rng"])
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: invalid RNG state ({e})") from None

    if loader is not None and "loader" in info:
        checker = getattr(loader, "check_state_dict", None)  # DataLoader's: raises and changes nothing
        try:
            if checker is not None:
                checker(info["loader"])
            elif not isinstance(info["loader"], dict):
                raise ValueError(f"expected a dict, got {type(info['loader']).__name__}")
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: the loader state does not fit: {e}") from None

    home = target or next((B.backend_of(a) for a in new.values()), None) or B.current_backend()
    try:
        extras = {k: B.as_array(v, None, home) for k, v in extras.items()}
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot convert the extra tensors: {e}") from None

    # 2. apply, everything checked
    if loader is not None and "loader" in info:
        try:
            loader.load_state_dict(info["loader"])
        except (ValueError, KeyError, TypeError) as e:  # a loader without check_state_dict
            raise CheckpointError(f"{path}: the loader state does not fit: {e}") from None
    if target is not None:
        model.to(target)
    model.load_state_dict(new, strict=strict)
    if optimizer is not None:
        optimizer.state, optimizer.param_groups = trial.state, trial.param_groups
    if scheduler is not None:
        scheduler.load_state_dict(info["scheduler"])
    if scaler is not None:
        scaler.load_state_dict(info["scaler"])
    if gen is not None and "rng" in info:
        gen.set_state(info["rng"])
    return {"epoch": info.get("epoch"), "step": info.get("step"), "metadata": info.get("metadata"),
            "extra_tensors": extras, "xpnet_version": meta.get("xpnet_version"),
            "missing_keys": missing, "unexpected_keys": unexpected}


# ---------------------------------------------------------------------- weights

def save_weights(path, model):
    """Write ``model.state_dict()`` to a plain safetensors file (state-dict names as keys), atomically,
    with digests in its metadata.  A tensor shared by two modules (tied weights) is stored once, the
    other names recorded in the header metadata as ``safetensors.torch.save_model`` does (so its
    ``load_model`` reads the file).  Raises :class:`NonFiniteWeightsError` (nothing written) when a
    parameter holds NaN or infinity, an ``OSError`` naming ``path`` when it cannot be written."""
    tensors, aliases = _state_once(model)
    arrays = {k: _host(v) for k, v in tensors.items()}
    _nonfinite(path, arrays, [n for n in _parameter_names(model) if n in arrays])
    _write(path, arrays, aliases)


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
