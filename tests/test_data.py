"""xpnet.data: DataLoader semantics on every backend, preprocessing, built-in,
synthetic and file-format data sets (tiny files written to tmp_path)."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

import xpnet as xn
from xpnet import backend as B
from xpnet.data import (ArrayDataset, DataFileError, DataLoader, Dataset, Standardizer, default_collate,
                        load_cifar10, load_digits, load_iris, load_mnist, make_blobs, make_moons,
                        make_polynomial, make_regression, make_spirals, one_hot, read_cifar10_batch, read_idx,
                        standardize, train_test_split)

from conftest import AVAILABLE, to_np


def _data(n=10):
    X = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
    y = np.arange(n, dtype=np.int64)
    return X, y


def _ids(loader):
    """The sample ids (second array) of one epoch, batch by batch."""
    return [to_np(yb).tolist() for _, yb in loader]


# ------------------------------------------------------------------ DataLoader

@pytest.mark.parametrize("batch_size, drop_last, sizes", [
    (1, False, [1] * 10), (3, False, [3, 3, 3, 1]), (3, True, [3, 3, 3]), (5, True, [5, 5]),
    (None, False, [10]), (None, True, [10]), (10, False, [10]), (20, False, [10]), (20, True, [])])
def test_batch_counts(bk, batch_size, drop_last, sizes):
    loader = DataLoader(ArrayDataset(*_data()), batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == len(sizes)
    batches = list(loader)
    assert [b[0].shape[0] for b in batches] == sizes
    for xb, yb in batches:
        assert isinstance(xb, xn.Tensor) and isinstance(yb, xn.Tensor)
        assert xb.backend.name == bk.name and yb.backend.name == bk.name
        assert xb.shape[1:] == (2,)


@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_every_sample_once_per_epoch(bk, batch_size):
    X, y = _data(11)
    loader = DataLoader(ArrayDataset(X, y), batch_size=batch_size, shuffle=True, seed=5)
    for _ in range(2):
        xs, ys = zip(*[(to_np(a), to_np(b)) for a, b in loader])
        ys, xs = np.concatenate(ys), np.concatenate(xs)
        assert sorted(ys.tolist()) == list(range(11))
        np.testing.assert_array_equal(xs, X[ys])  # rows stay together


def test_unshuffled_order_and_whole_set(bk):
    X, y = _data(7)
    assert sum(_ids(DataLoader(ArrayDataset(X, y), batch_size=3)), []) == list(range(7))
    (xb, yb), = DataLoader(ArrayDataset(X, y), batch_size=None)
    np.testing.assert_array_equal(to_np(xb), X)


def test_same_seed_same_order_on_every_backend(bk):
    X, y = _data(9)
    order = sum(_ids(DataLoader(ArrayDataset(X, y), batch_size=4, shuffle=True, seed=123)), [])
    # the order is NumPy's permutation for that seed, whatever the backend
    assert order == np.random.default_rng(123).permutation(9).tolist()
    for other in AVAILABLE:
        again = DataLoader(ArrayDataset(X, y), batch_size=4, shuffle=True, seed=123, backend=other)
        assert sum(_ids(again), []) == order
        assert next(iter(again))[0].backend is B.get_backend(other)


def test_epochs_differ_but_repeat(bk):
    X, y = _data(12)
    make = lambda: DataLoader(ArrayDataset(X, y), batch_size=5, shuffle=True, seed=7)  # noqa: E731
    a, b = make(), make()
    epochs_a = [_ids(a) for _ in range(3)]
    epochs_b = [_ids(b) for _ in range(3)]
    assert epochs_a == epochs_b
    assert epochs_a[0] != epochs_a[1] != epochs_a[2]
    assert a.epoch == 3
    assert _ids(DataLoader(ArrayDataset(X, y), batch_size=5, shuffle=True, seed=8)) != epochs_a[0]


def test_seed_none_follows_manual_seed(bk):
    X, y = _data(12)
    xn.manual_seed(42)
    first = _ids(DataLoader(ArrayDataset(X, y), batch_size=4, shuffle=True))
    xn.manual_seed(42)
    assert _ids(DataLoader(ArrayDataset(X, y), batch_size=4, shuffle=True)) == first


@pytest.mark.parametrize("stop_after", [0, 2, 3])
def test_resume_from_state_dict(bk, stop_after):
    X, y = _data(10)
    a = DataLoader(ArrayDataset(X, y), batch_size=3, shuffle=True, seed=11)
    _ids(a)  # epoch 0
    it = iter(a)
    for _ in range(stop_after):  # part of epoch 1
        next(it)
    state = a.state_dict()
    expected = [to_np(yb).tolist() for _, yb in it] + sum([_ids(a) for _ in range(2)], [])

    b = DataLoader(ArrayDataset(X, y), batch_size=3, shuffle=True, seed=999)
    b.load_state_dict(state)
    assert b.epoch == 1
    got = _ids(b) + sum([_ids(b) for _ in range(2)], [])
    assert got == expected
    assert len(got) == (4 - stop_after) + 8


def test_resume_rejects_a_different_loader():
    X, y = _data(10)
    state = DataLoader(ArrayDataset(X, y), batch_size=3, shuffle=True, seed=1).state_dict()
    with pytest.raises(ValueError, match="batch_size=3.*batch_size=4"):
        DataLoader(ArrayDataset(X, y), batch_size=4, shuffle=True).load_state_dict(state)
    with pytest.raises(ValueError, match="num_samples=10"):
        DataLoader(ArrayDataset(*_data(9)), batch_size=3, shuffle=True).load_state_dict(state)
    with pytest.raises(KeyError, match="rng_state"):
        DataLoader(ArrayDataset(X, y), batch_size=3).load_state_dict({"epoch": 0, "batch": 0})


@pytest.mark.parametrize("dtype", ["float64", "float32", "int32", "uint8", "bool"])
def test_dtype_preserved(bk, dtype):
    data = (np.arange(6) % 3).astype(dtype).reshape(3, 2)
    for shuffle in (False, True):
        (xb,), = DataLoader(ArrayDataset(data), batch_size=None, shuffle=shuffle, seed=0)
        assert B.dtype_name(xb.dtype) == dtype
        assert sorted(map(tuple, to_np(xb).tolist())) == sorted(map(tuple, data.tolist()))


def test_arrays_from_another_backend(bk):
    X, y = _data(6)
    src = "torch" if "torch" in AVAILABLE else "numpy"
    Xs, ys = (B.as_array(a, backend=src) for a in (X, y))
    loader = DataLoader(ArrayDataset(xn.Tensor(Xs), ys), batch_size=4, shuffle=True, seed=3, backend=bk)
    xb, yb = next(iter(loader))
    assert xb.backend.name == bk.name
    np.testing.assert_array_equal(to_np(xb), X[to_np(yb)])


class Squares(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return np.array([i, i * i], dtype=np.float64), i, {"half": i / 2}


def test_generic_dataset_is_collated(bk):
    batches = list(DataLoader(Squares(), batch_size=2, shuffle=True, seed=4))
    assert len(batches) == 3
    ids = sum((to_np(b[1]).tolist() for b in batches), [])
    assert ids == np.random.default_rng(4).permutation(5).tolist()
    x, i, d = batches[0]
    assert B.dtype_name(x.dtype) == "float64" and B.dtype_name(i.dtype) == "int64"
    assert B.dtype_name(d["half"].dtype) == "float32" and x.backend.name == bk.name
    np.testing.assert_array_equal(to_np(x)[:, 1], to_np(i) ** 2)
    np.testing.assert_allclose(to_np(d["half"]), to_np(i) / 2)


def test_collate_rejects_ragged_samples():
    with pytest.raises(ValueError, match="different shapes"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(ValueError, match="different numbers of fields"):
        default_collate([(1, 2), (1,)])


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"different lengths \(10, 9\)"):
        ArrayDataset(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="scalar"):
        ArrayDataset(np.zeros(()))
    with pytest.raises(ValueError, match="batch_size=0"):
        DataLoader(ArrayDataset(np.zeros(3)), batch_size=0)
    with pytest.raises(TypeError, match="__len__ and __getitem__"):
        DataLoader(5)
    with pytest.raises(IndexError, match="out of range"):
        ArrayDataset(np.zeros(3))[3]
    x, = ArrayDataset([[1.0, 2.0]])[-1]
    assert x.dtype == np.float32 and x.tolist() == [1.0, 2.0]


# --------------------------------------------------------------- preprocessing

def test_train_test_split(bk):
    X, y = _data(10)
    Xb = B.as_array(X, backend=bk)
    Xtr, Xte, ytr, yte = train_test_split(Xb, xn.Tensor(B.as_array(y, backend=bk)), test_size=0.25, seed=0)
    assert isinstance(ytr, xn.Tensor) and not isinstance(Xtr, xn.Tensor)
    assert Xtr.shape == (7, 2) and Xte.shape == (3, 2)  # ceil(0.25 * 10) = 3 test samples
    ids = to_np(ytr).tolist() + to_np(yte).tolist()
    assert sorted(ids) == list(range(10))
    np.testing.assert_array_equal(to_np(Xte), X[to_np(yte)])
    again = train_test_split(X, y, test_size=0.25, seed=0)
    np.testing.assert_array_equal(again[3], to_np(yte))  # same split for a seed on every backend
    _, te = train_test_split(y, test_size=4, shuffle=False)
    assert te.tolist() == [6, 7, 8, 9]


def test_train_test_split_stratified():
    y = np.array([0] * 40 + [1] * 20 + [2] * 10)
    ytr, yte = train_test_split(y, test_size=0.3, seed=1, stratify=y)
    assert len(yte) == 21 and np.bincount(yte).tolist() == [12, 6, 3]
    assert np.bincount(ytr).tolist() == [28, 14, 7]


def test_train_test_split_errors():
    with pytest.raises(ValueError, match=r"different lengths \(4, 3\)"):
        train_test_split(np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match="test_size=1.5"):
        train_test_split(np.zeros(4), test_size=1.5)
    with pytest.raises(ValueError, match="4 test samples out of 4"):
        train_test_split(np.zeros(4), test_size=4)
    with pytest.raises(ValueError, match="shuffle=True"):
        train_test_split(np.zeros(4), shuffle=False, stratify=np.zeros(4, int))


def test_standardize(bk):
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, size=(50, 3))
    train[:, 2] = 5.0  # constant feature: std taken as 1, no NaN
    test = rng.normal(3.0, 2.0, size=(7, 3))
    tr, te, scaler = standardize(B.as_array(train, backend=bk), xn.Tensor(B.as_array(test, backend=bk)))
    assert isinstance(te, xn.Tensor) and B.dtype_name(tr.dtype) == "float64"
    mean, std = train.mean(0), train.std(0)
    std[2] = 1.0
    np.testing.assert_allclose(to_np(tr), (train - mean) / std, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_np(te), (test - mean) / std, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_np(scaler.inverse_transform(te)), test, rtol=1e-12)
    # statistics move to the data's backend
    moved = Standardizer().fit(train).transform(B.as_array(test, backend=bk))  # fitted on NumPy
    assert B.backend_of(moved).name == bk.name
    np.testing.assert_allclose(to_np(moved), (test - mean) / std, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"features \(2,\), expected \(3,\)"):
        scaler.transform(np.zeros((4, 2)))
    with pytest.raises(RuntimeError, match="fit"):
        Standardizer().transform(train)


def test_one_hot(bk):
    labels = B.as_array(np.array([2, 0, 1, 2]), backend=bk)
    out = one_hot(labels, 3)
    assert B.dtype_name(out.dtype) == "float32" and B.backend_of(out).name == bk.name
    np.testing.assert_array_equal(to_np(out), np.eye(3)[[2, 0, 1, 2]])
    t = one_hot(xn.Tensor(B.as_array(np.array([[1], [0]]), backend=bk)), 2, dtype="int64")
    assert isinstance(t, xn.Tensor) and t.shape == (2, 1, 2) and to_np(t).tolist() == [[[0, 1]], [[1, 0]]]
    assert one_hot([0, 3]).shape == (2, 4)
    with pytest.raises(IndexError, match="index 3 is out of range"):
        one_hot(labels + 1, 3)
    with pytest.raises(IndexError, match="index -1"):
        one_hot(labels - 1, 3)
    with pytest.raises(TypeError, match="expected integers"):
        one_hot(B.as_array([0.0, 1.0], backend=bk), 2)


# ------------------------------------------------------------ built-in, synthetic

def test_load_digits():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert X.min() == 0 and X.max() == 16 and np.all(X == np.round(X))
    assert X[0, :10].tolist() == [0, 0, 5, 13, 9, 1, 0, 0, 0, 0]


def test_load_iris():
    X, y = load_iris()
    assert X.shape == (150, 4) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [50, 50, 50]
    np.testing.assert_allclose(X[0], [5.1, 3.5, 1.4, 0.2], rtol=1e-6)


@pytest.mark.parametrize("make, kwargs, n", [
    (make_moons, dict(n_samples=51, noise=0.1), 51),
    (make_spirals, dict(n_per_class=20, n_classes=3, noise=0.2), 60),
    (make_blobs, dict(n_samples=31, centers=3, std=0.5), 31),
])
def test_synthetic_classification(make, kwargs, n):
    X, y = make(**kwargs, seed=0)
    assert X.shape == (n, 2) and X.dtype == np.float32 and y.shape == (n,) and y.dtype == np.int64
    X2, y2 = make(**kwargs, seed=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(make(**kwargs, seed=1)[0], X)
    counts = np.bincount(y)
    assert counts.max() - counts.min() <= 1


def test_synthetic_geometry():
    X, y = make_moons(100, noise=0.0, seed=0)
    np.testing.assert_allclose(np.hypot(X[y == 0, 0], X[y == 0, 1]), 1.0, rtol=1e-6)  # upper moon: unit circle
    X, y = make_blobs(300, centers=[[10.0, 0.0], [-10.0, 0.0]], std=[0.1, 0.2], seed=0)
    np.testing.assert_allclose(X[y == 0].mean(0), [10.0, 0.0], atol=0.05)
    assert 0.15 < X[y == 1, 1].std() < 0.25
    X, y = make_spirals(50, 2, noise=0.0, seed=0)
    np.testing.assert_allclose(np.hypot(X[:50, 0], X[:50, 1]), np.linspace(0, 1, 50), atol=1e-6)
    with pytest.raises(ValueError, match="n_samples=0"):
        make_moons(0)
    with pytest.raises(ValueError, match=r"one per center \(2,\)"):
        make_blobs(10, centers=2, std=[1.0, 2.0, 3.0])


def test_make_regression_and_polynomial():
    X, y, coef = make_regression(40, n_features=3, noise=0.0, seed=2, bias=0.5)
    assert X.shape == (40, 3) and y.shape == (40,) and coef.shape == (3,) and y.dtype == np.float32
    np.testing.assert_allclose(y, X @ coef + 0.5, rtol=1e-5, atol=1e-5)
    _, y_noisy, coef2 = make_regression(40, n_features=3, noise=0.1, seed=2, bias=0.5)
    np.testing.assert_array_equal(coef, coef2)
    assert 0.02 < np.std(y_noisy - y) < 0.3
    x, y, coef = make_polynomial(30, degree=3, seed=4)
    assert x.shape == (30, 1) and coef.shape == (4,)
    np.testing.assert_allclose(y, sum(c * x[:, 0] ** k for k, c in enumerate(coef)), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(make_polynomial(30, degree=3, seed=4)[1], y)


def test_builtin_data_through_the_loader(bk):
    X, y = load_iris()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, seed=0, stratify=y)
    Xtr, Xte, _ = standardize(Xtr, Xte)
    loader = DataLoader(ArrayDataset(Xtr, ytr), batch_size=32, shuffle=True, seed=0)
    assert len(loader) == 4 and sum(b[0].shape[0] for b in loader) == 120
    xb, yb = next(iter(loader))
    assert B.dtype_name(xb.dtype) == "float32" and one_hot(yb, 3).shape == (32, 3)


# ------------------------------------------------------------------ IDX / MNIST

def _idx_bytes(arr, code):
    big = arr.astype(arr.dtype.newbyteorder(">"))
    return bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + big.tobytes()


def _write(path, data, gz=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _mnist_files(root, split="train", n=5, gz=True, labels=None):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 4, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8) if labels is None else labels
    sfx = ".gz" if gz else ""
    _write(root / f"{split}-images-idx3-ubyte{sfx}", _idx_bytes(images, 0x08), gz)
    _write(root / f"{split}-labels-idx1-ubyte{sfx}", _idx_bytes(labels, 0x08), gz)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist(tmp_path, gz):
    images, labels = _mnist_files(tmp_path, "train", 5, gz)
    test_images, _ = _mnist_files(tmp_path, "t10k", 3, gz)
    X, y = load_mnist(tmp_path, raw=True)
    np.testing.assert_array_equal(X, images)
    assert y.dtype == np.int64 and y.tolist() == labels.tolist()
    Xf, _ = load_mnist(tmp_path, train=False)
    assert Xf.shape == (3, 1, 4, 4) and Xf.dtype == np.float32
    np.testing.assert_allclose(Xf[:, 0], test_images / 255.0, rtol=1e-6)
    # Fashion-MNIST in torchvision's layout
    fashion, _ = _mnist_files(tmp_path / "f" / "FashionMNIST" / "raw", "train", 2, gz)
    np.testing.assert_array_equal(load_mnist(tmp_path / "f", kind="fashion", raw=True)[0], fashion)


@pytest.mark.parametrize("code, dtype", [(0x09, "i1"), (0x0B, "i2"), (0x0C, "i4"), (0x0D, "f4"), (0x0E, "f8")])
def test_read_idx_types(tmp_path, code, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    out = read_idx(_write(tmp_path / "a.idx", _idx_bytes(arr, code)))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_malformed_idx(tmp_path):
    good = _idx_bytes(np.zeros((2, 3, 3), np.uint8), 0x08)
    cases = {
        "bad magic number 0x12345678": b"\x12\x34\x56\x78" + good[4:],
        "truncated: the header says shape \\(2, 3, 3\\)": good[:-1],
        "2 extra bytes": good + b"\0\0",
        "truncated header": good[:9],
        "too short": b"\0\0",
        # dimensions whose product passes 2**63 (int64 would wrap around to a small size)
        "truncated: the header says shape \\(4294967295, 4294967295, 4294967295\\)":
            b"\0\0\x08\x03" + b"\xff\xff\xff\xff" * 3 + bytes(8),
        "truncated: the header says shape \\(65536, 65536, 65536, 65536\\)":  # 2**64: int64 wraps to 0
            b"\0\0\x08\x04" + b"\x00\x01\x00\x00" * 4,
        "truncated: the header says shape \\(2147483648, 2147483648, 4\\) of i4":  # 2**64 bytes of int32
            b"\0\0\x0c\x03" + b"\x80\0\0\0" * 2 + b"\0\0\0\x04" + bytes(16),
    }
    for match, data in cases.items():
        path = _write(tmp_path / "x-idx3-ubyte", data)
        with pytest.raises(DataFileError, match=match) as info:
            read_idx(path)
        assert str(path) in str(info.value)
    path = _write(tmp_path / "y.gz", gzip.compress(good)[:-8])
    with pytest.raises(DataFileError, match="y.gz: corrupt or truncated gzip"):
        read_idx(path)


def test_malformed_mnist(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*download=True"):
        load_mnist(tmp_path)
    _mnist_files(tmp_path, labels=np.zeros(4, np.uint8))
    with pytest.raises(DataFileError, match="4 labels for the 5 images"):
        load_mnist(tmp_path)
    _mnist_files(tmp_path, labels=np.array([0, 1, 12, 3, 4], np.uint8))
    with pytest.raises(DataFileError, match="label 12 is out of range"):
        load_mnist(tmp_path)
    _write(tmp_path / "train-images-idx3-ubyte.gz", _idx_bytes(np.zeros((5, 16), np.uint8), 0x08), gz=True)
    with pytest.raises(DataFileError, match=r"expected uint8 images \(N, rows, cols\)"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="kind='kmnist'"):
        load_mnist(tmp_path, kind="kmnist")


# ------------------------------------------------------------------- CIFAR-10

def _cifar_batch(n, start, str_keys=False, protocol=2):
    rng = np.random.default_rng(start)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [(start + i) % 10 for i in range(n)]
    keys = ("data", "labels", "batch_label") if str_keys else (b"data", b"labels", b"batch_label")
    d = dict(zip(keys, (data, labels, b"batch")))
    return pickle.dumps(d, protocol=protocol), data, labels


def test_load_cifar10_python(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    want_x, want_y = [], []
    for i in range(1, 6):
        blob, data, labels = _cifar_batch(2, i, str_keys=i % 2 == 0, protocol=[0, 2, 3, 4, 5][i - 1])
        _write(folder / f"data_batch_{i}", blob)
        want_x.append(data)
        want_y += labels
    blob, test_data, _ = _cifar_batch(3, 100)
    _write(folder / "test_batch", blob)
    X, y = load_cifar10(tmp_path, raw=True)
    assert X.shape == (10, 3, 32, 32) and X.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(X.reshape(10, -1), np.concatenate(want_x))
    assert y.tolist() == want_y
    Xt, yt = load_cifar10(tmp_path, train=False)
    assert Xt.dtype == np.float32 and Xt.shape == (3, 3, 32, 32)
    np.testing.assert_allclose(Xt.reshape(3, -1), test_data / 255.0, rtol=1e-6)


def test_load_cifar10_binary(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    rng = np.random.default_rng(0)
    records = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rec = rng.integers(0, 256, size=(2, 3073), dtype=np.uint8)
        rec[:, 0] %= 10
        records[name] = rec
        _write(folder / f"{name}.bin", rec.tobytes())
    X, y = load_cifar10(tmp_path, train=False, raw=True)
    np.testing.assert_array_equal(X.reshape(2, -1), records["test_batch"][:, 1:])
    assert y.tolist() == records["test_batch"][:, 0].tolist()
    assert load_cifar10(tmp_path)[0].shape == (10, 3, 32, 32)
    (folder / "data_batch_3.bin").unlink()
    with pytest.raises(FileNotFoundError, match="lacks data_batch_3.bin"):
        load_cifar10(tmp_path)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Evil(marker), b"labels": [0]})
    path = _write(tmp_path / "data_batch_1", evil)
    assert "system" in str(evil)
    with pytest.raises(DataFileError, match=r"data_batch_1: unsafe pickle: refused global (posix|nt)\.system"):
        read_cifar10_batch(path)
    assert not marker.exists()
    path = _write(tmp_path / "b", pickle.dumps(eval))
    with pytest.raises(DataFileError, match="refused global builtins.eval"):
        read_cifar10_batch(path)


def test_malformed_cifar(tmp_path):
    blob, _, _ = _cifar_batch(2, 0)
    bad_shape = pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    cases = {
        "t1": (blob[:-20], "not a readable CIFAR-10 python batch"),
        "t2": (pickle.dumps([1, 2]), "holds a list: expected a dict"),
        "t3": (bad_shape, r"'data' is a uint8 array of shape \(2, 100\): expected a uint8 array \(N, 3072\)"),
        "t4": (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "must be 2 integers"),
        "t5": (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), "label 10 is out of range"),
        "t6": (b"not a pickle at all", "not a readable CIFAR-10 python batch"),
        "t7.bin": (bytes(3073 * 2 - 5), "not a whole number of 3073-byte records"),
        "t8": (pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0.5, 1.0, 2.7]}),
               r"'labels' are float64 \(0.5, 1.0, 2.7, ...\): expected integers"),
        "t9": (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": np.array([1.0, 2.0], np.float32)}),
               "'labels' are float32"),
        "t10": (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [True, False]}), "'labels' are bool"),
        "t11": (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["1", "2"]}), "'labels' are <U1"),
        "t12": (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [2**70]}), "'labels' are object"),
    }
    for name, (data, match) in cases.items():
        path = _write(tmp_path / name, data)
        with pytest.raises(DataFileError, match=match) as info:
            read_cifar10_batch(path)
        assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_cifar10(tmp_path / "empty")


# ------------------------------------------------------- download (no network)

def _fake_urlopen(files, calls):
    import io

    def urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO(files[url.rsplit("/", 1)[-1]])
    return urlopen


def test_mnist_download_checks_md5(tmp_path, monkeypatch):
    import hashlib

    from xpnet.data import readers
    src = tmp_path / "src"
    _mnist_files(src, "train", 3, gz=True)
    files = {p.name: p.read_bytes() for p in src.iterdir()}
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in files.items()}
    calls = []
    monkeypatch.setattr(readers.urllib.request, "urlopen", _fake_urlopen(files, calls))
    monkeypatch.setitem(readers._MNIST, "mnist", ("MNIST", "https://example.invalid/", md5))
    X, y = load_mnist(tmp_path / "cache", download=True, raw=True)
    assert X.shape == (3, 4, 4) and len(calls) == 2
    load_mnist(tmp_path / "cache", download=True)  # present now: nothing fetched
    assert len(calls) == 2
    md5["train-images-idx3-ubyte.gz"] = "0" * 32
    with pytest.raises(DataFileError, match="the download has MD5 .*, expected 0000"):
        load_mnist(tmp_path / "other", download=True)
    assert not any(p.name.startswith("train-images") for p in (tmp_path / "other").iterdir())


def test_cifar_download_unpacks_safely(tmp_path, monkeypatch):
    import hashlib
    import io
    import tarfile

    from xpnet.data import readers

    def tar_of(members):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    blob, data, labels = _cifar_batch(2, 3)
    archive = tar_of({"cifar-10-batches-py/test_batch": blob})
    monkeypatch.setattr(readers.urllib.request, "urlopen", _fake_urlopen({"cifar-10-python.tar.gz": archive}, []))
    monkeypatch.setattr(readers, "_CIFAR_MD5", hashlib.md5(archive).hexdigest())
    X, y = load_cifar10(tmp_path / "c", train=False, download=True, raw=True)
    np.testing.assert_array_equal(X.reshape(2, -1), data)
    evil = tar_of({"../escaped": b"x"})
    monkeypatch.setattr(readers.urllib.request, "urlopen", _fake_urlopen({"cifar-10-python.tar.gz": evil}, []))
    monkeypatch.setattr(readers, "_CIFAR_MD5", hashlib.md5(evil).hexdigest())
    with pytest.raises(DataFileError, match="unsafe member"):
        load_cifar10(tmp_path / "d", download=True)
    assert not (tmp_path / "escaped").exists()


def test_set_epoch_gives_that_epochs_order():
    from xpnet.data import ArrayDataset, DataLoader
    X = np.arange(20.0).reshape(10, 2)
    a = DataLoader(ArrayDataset(X), batch_size=4, shuffle=True, seed=3, backend="numpy")
    orders = [[b[0].numpy()[:, 0].tolist() for b in a] for _ in range(3)]
    b = DataLoader(ArrayDataset(X), batch_size=4, shuffle=True, seed=3, backend="numpy")
    b.set_epoch(2)
    assert [x[0].numpy()[:, 0].tolist() for x in b] == orders[2] and orders[2] != orders[0]
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        b.set_epoch(-1)
