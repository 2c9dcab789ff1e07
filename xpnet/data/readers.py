"""Readers of the standard image data sets from local files (NumPy only).

* MNIST / Fashion-MNIST: IDX files as distributed
  (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
  ``t10k-...``), gzipped or not: :func:`load_mnist`, :func:`read_idx`.
* CIFAR-10: the python batches (``cifar-10-batches-py/data_batch_1`` ...
  ``test_batch``, pickled dicts, read by an unpickler that admits only the
  NumPy array reconstructors, so a malicious file cannot run code) or the
  binary batches (``data_batch_1.bin`` ...): :func:`load_cifar10`.

Nothing is downloaded unless ``download=True`` (then into ``root``, by
default ``$XPNET_DATA`` or ``~/.cache/xpnet``, checked against the published
MD5).  A malformed file raises :class:`DataFileError` naming the file and
the fault.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import math
import os
import pickle
import shutil
import struct
import tarfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

__all__ = ["DataFileError", "read_idx", "load_mnist", "load_cifar10", "read_cifar10_batch"]


class DataFileError(ValueError):
    """A data file is malformed (bad magic number, wrong size, unsafe pickle, ...)."""


def _cache_root(sub: str, root) -> Path:
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ.get("XPNET_DATA", "~/.cache/xpnet")).expanduser() / sub


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic number."""
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataFileError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return data


# ------------------------------------------------------------------------ IDX

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file (gzipped or not), in native byte order.

    Layout: magic ``00 00 TT NN`` (TT the type code, NN the number of
    dimensions), NN big-endian uint32 sizes, then the data, big-endian.
    """
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataFileError(f"{path}: {len(data)} bytes: too short for an IDX header (4 bytes of magic number)")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or data[3] == 0:
        raise DataFileError(
            f"{path}: bad magic number 0x{data[:4].hex()}: expected an IDX file, 0x0000TTNN with type TT in "
            f"{{{', '.join(f'{t:02x}' for t in _IDX_TYPES)}}} and NN >= 1 dimensions (MNIST: 0x00000803 images, "
            "0x00000801 labels)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{path}: truncated header: {ndim} dimensions need {header} bytes, the file has {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    count = math.prod(shape)  # Python integers: no wrap-around past 2**63
    expected, got = count * dtype.itemsize, len(data) - header
    if got != expected:
        fault = "truncated" if got < expected else f"{got - expected} extra bytes after the data"
        raise DataFileError(f"{path}: {fault}: the header says shape {shape} of {dtype.str[1:]} "
                            f"({expected} bytes), but {got} bytes follow the header")
    return np.frombuffer(data, dtype, count=count, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


_MNIST = {
    "mnist": ("MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}),
    "fashion": ("FashionMNIST", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}),
}


def _find(dirs, stems):
    for d in dirs:
        for stem in stems:
            for suffix in ("", ".gz"):
                p = d / (stem + suffix)
                if p.is_file():
                    return p
    return None


def load_mnist(root=None, train=True, kind="mnist", download=False, raw=False):
    """MNIST (``kind='mnist'``) or Fashion-MNIST (``kind='fashion'``) from IDX files in ``root``.

    Looks in ``root``, ``root/MNIST/raw`` (``FashionMNIST/raw``, torchvision's
    layout) and ``root/raw`` for ``train-*`` (``train=True``) or ``t10k-*``
    files, gzipped or not.  Returns ``(images, labels)``: float32
    (N, 1, 28, 28) scaled to [0, 1] and int64 (N,); with ``raw=True`` the
    stored uint8 (N, 28, 28) images.  ``download=True`` fetches missing files
    into ``root`` (default ``~/.cache/xpnet/mnist`` or ``fashion-mnist``).
    """
    if kind not in _MNIST:
        raise ValueError(f"load_mnist: kind={kind!r}: expected 'mnist' or 'fashion'")
    folder, url, md5 = _MNIST[kind]
    root = _cache_root("mnist" if kind == "mnist" else "fashion-mnist", root)
    split = "train" if train else "t10k"
    dirs = [root, root / folder / "raw", root / "raw"]
    stems = {what: [f"{split}-{what}-idx{n}-ubyte", f"{split}-{what}.idx{n}-ubyte"]
             for what, n in (("images", 3), ("labels", 1))}
    paths = {what: _find(dirs, s) for what, s in stems.items()}
    if None in paths.values() and download:
        for what, p in paths.items():
            if p is None:
                name = stems[what][0] + ".gz"
                _download(url + name, root / name, md5[name])
        paths = {what: _find(dirs, s) for what, s in stems.items()}
    for what, p in paths.items():
        if p is None:
            raise FileNotFoundError(
                f"load_mnist: no {stems[what][0]}[.gz] in {', '.join(str(d) for d in dirs)}: put the "
                f"{kind} IDX files there (names as distributed) or pass download=True")
    images, labels = read_idx(paths["images"]), read_idx(paths["labels"])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFileError(f"{paths['images']}: holds {images.dtype} of shape {images.shape}: "
                            "expected uint8 images (N, rows, cols)")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataFileError(f"{paths['labels']}: holds {labels.dtype} of shape {labels.shape}: "
                            "expected uint8 labels (N,)")
    if labels.shape[0] != images.shape[0]:
        raise DataFileError(f"{paths['labels']}: {labels.shape[0]} labels for the {images.shape[0]} images "
                            f"in {paths['images']}: expected one label per image")
    if labels.size and labels.max() > 9:
        raise DataFileError(f"{paths['labels']}: label {int(labels.max())} is out of range: expected 0..9")
    labels = labels.astype(np.int64)
    if raw:
        return images, labels
    return (images[:, None].astype(np.float32) / np.float32(255.0)), labels


# -------------------------------------------------------------------- CIFAR-10

def _np_global(obj):
    return obj.__reduce__()[0]


_reconstruct = _np_global(np.empty(0))
_SAFE_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): __import__("_codecs").encode,  # bytes pickled by Python 3 at protocol <= 2
}
for _mod in ("numpy.core", "numpy._core"):
    _SAFE_GLOBALS[(_mod + ".multiarray", "_reconstruct")] = _reconstruct
    _SAFE_GLOBALS[(_mod + ".multiarray", "scalar")] = _np_global(np.float64(0))
    _SAFE_GLOBALS[(_mod + ".numeric", "_frombuffer")] = np.array(0).__reduce_ex__(5)[0]


class _Refused(pickle.UnpicklingError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    """Loads plain containers, numbers, strings and NumPy arrays; refuses
    every other global (functions, classes), so loading cannot run code."""

    def find_class(self, module, name):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(
                f"refused global {module}.{name}: only NumPy arrays, numbers, strings and containers "
                "are allowed in a data file") from None


def _field(d, key):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    return None


def read_cifar10_batch(path):
    """``(images uint8 (N, 3, 32, 32), labels int64 (N,))`` from one CIFAR-10
    batch: a python (pickled) batch, or a binary ``.bin`` batch of
    3073-byte records (label, then 3x32x32 pixels)."""
    path = Path(path)
    if path.suffix == ".bin":
        data = _read_bytes(path)
        if len(data) == 0 or len(data) % 3073:
            raise DataFileError(f"{path}: {len(data)} bytes is not a whole number of 3073-byte records "
                                "(1 label byte + 3072 pixel bytes): the file is truncated or not a CIFAR-10 batch")
        rec = np.frombuffer(data, np.uint8).reshape(-1, 3073)
        images, labels = rec[:, 1:].reshape(-1, 3, 32, 32).copy(), rec[:, 0].astype(np.int64)
    else:
        try:
            d = _RestrictedUnpickler(io.BytesIO(_read_bytes(path)), encoding="bytes").load()
        except _Refused as e:
            raise DataFileError(f"{path}: unsafe pickle: {e}") from None
        except Exception as e:  # truncated or garbled streams raise many kinds of errors
            raise DataFileError(f"{path}: not a readable CIFAR-10 python batch "
                                f"({type(e).__name__}: {e})") from None
        if not isinstance(d, dict):
            raise DataFileError(f"{path}: holds a {type(d).__name__}: expected a dict with 'data' and 'labels'")
        data, labels = _field(d, "data"), _field(d, "labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            what = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise DataFileError(f"{path}: 'data' is a {what}: expected a uint8 array (N, 3072)")
        try:
            labels = np.asarray(labels)
        except (TypeError, ValueError):
            labels = None
        if labels is None or labels.shape != (data.shape[0],):
            raise DataFileError(f"{path}: 'labels' must be {data.shape[0]} integers, one per row of 'data'")
        if labels.dtype.kind not in "iu":
            sample = ", ".join(map(repr, labels[:3].tolist()))
            raise DataFileError(f"{path}: 'labels' are {labels.dtype} ({sample}, ...): expected integers 0..9 "
                                "(refusing to round or truncate them)")
        labels = labels.astype(np.int64)
        images = data.reshape(-1, 3, 32, 32)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataFileError(f"{path}: label {int(labels.max() if labels.max() > 9 else labels.min())} "
                            "is out of range: expected 0..9")
    return images, labels


_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"


def load_cifar10(root=None, train=True, download=False, raw=False):
    """CIFAR-10 from ``root``: the python batches (in ``root/cifar-10-batches-py``
    or ``root``) or else the binary ones (``root/cifar-10-batches-bin`` or
    ``root``).  ``train=True`` reads ``data_batch_1..5``, else ``test_batch``.
    Returns ``(images, labels)``: float32 (N, 3, 32, 32) scaled to [0, 1]
    (uint8 with ``raw=True``) and int64 (N,).  ``download=True`` fetches and
    unpacks the python version into ``root`` (default ``~/.cache/xpnet/cifar10``).
    """
    root = _cache_root("cifar10", root)
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]

    def locate():
        for sub, ext in (("cifar-10-batches-py", ""), ("", ""), ("cifar-10-batches-bin", ".bin"), ("", ".bin")):
            d = root / sub
            found = [d / (n + ext) for n in names if (d / (n + ext)).is_file()]
            if found:
                missing = [n + ext for n in names if not (d / (n + ext)).is_file()]
                if missing:
                    raise FileNotFoundError(f"load_cifar10: {d} lacks {', '.join(missing)}: "
                                            "expected every batch of the split")
                return found
        return None

    files = locate()
    if files is None and download:
        archive = root / "cifar-10-python.tar.gz"
        if not archive.is_file():
            _download(_CIFAR_URL, archive, _CIFAR_MD5)
        _extract(archive, root)
        files = locate()
    if files is None:
        raise FileNotFoundError(
            f"load_cifar10: no {names[0]} (python) or {names[0]}.bin batches in {root}, "
            f"{root / 'cifar-10-batches-py'} or {root / 'cifar-10-batches-bin'}: unpack "
            "cifar-10-python.tar.gz there or pass download=True")
    parts = [read_cifar10_batch(f) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if raw:
        return images, labels
    return images.astype(np.float32) / np.float32(255.0), labels


# -------------------------------------------------------------------- download

def _download(url: str, dest: Path, md5: str):
    """Fetch ``url`` to ``dest`` (through a ``.part`` file), checking its MD5."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as f:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                f.write(block)
    except OSError as e:  # URLError, timeouts, a full disk: say which URL, and what to do
        with contextlib.suppress(OSError):
            part.unlink()
        why = getattr(e, "reason", None) or e.strerror or e
        raise OSError(f"cannot download {url} ({why}): check the network, or fetch the file by hand "
                      f"into {dest.parent}") from e
    if digest.hexdigest() != md5:
        part.unlink()
        raise DataFileError(f"{url}: the download has MD5 {digest.hexdigest()}, expected {md5}: "
                            "try again, or fetch the file by hand into " + str(dest.parent))
    shutil.move(str(part), str(dest))


def _extract(archive: Path, root: Path):
    """Unpack a tar archive into ``root``, refusing links and paths that leave it."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            try:
                tar.extractall(root, filter="data")
            except tarfile.FilterError as e:
                raise DataFileError(f"{archive}: unsafe member refused ({e})") from None
            return
        base = root.resolve()
        for m in tar.getmembers():
            target = (root / m.name).resolve()
            if not (m.isfile() or m.isdir()) or (target != base and base not in target.parents):
                raise DataFileError(f"{archive}: unsafe member {m.name!r}: expected plain files inside the archive")
        tar.extractall(root)
