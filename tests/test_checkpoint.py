"""Checkpoints: safetensors round trips, exact resumption, atomic writes, and bad files that change nothing."""

import errno
import json
import math
import os
import pickle
import struct
from collections import Counter

import numpy as np
import pytest

import xpnet as xn
from xpnet import backend as B
from xpnet import checkpoint as ck
from xpnet import nn
from xpnet.checkpoint import CheckpointError

from conftest import to_np

optim = pytest.importorskip("xpnet.optim")


def make(seed=0, hidden=4, bias=True, backend=None):
    xn.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, hidden, bias=bias, backend=backend), nn.ReLU(),
                         nn.Linear(hidden, 2, backend=backend))


def make_opt(model, kind):
    """``kind``: "sgd" or "adam", "-foreach" for the one-pass update."""
    foreach = kind.endswith("-foreach")
    if kind.startswith("sgd"):
        return optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=foreach)
    return optim.Adam(model.parameters(), lr=0.01, foreach=foreach)


def train(model, opt, sched, steps):
    """``steps`` steps on inputs drawn from the default generator (so the RNG state matters)."""
    for _ in range(steps):
        x = xn.Tensor(B.default_generator().normal((5, 3)))
        loss = xn.mean(model(x) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()


def snapshot(model, opt=None):
    """NumPy copies of everything a failed load must leave alone."""
    snap = {k: to_np(v).copy() for k, v in model.state_dict().items()}
    if opt is not None:
        for i, s in opt.state_dict()["state"].items():
            snap.update({f"opt.{i}.{k}": to_np(v).copy() if hasattr(v, "shape") else v for k, v in s.items()})
        snap["lr"] = [g["lr"] for g in opt.param_groups]
    snap["rng"] = json.dumps(B.default_generator().get_state())
    return snap


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ------------------------------------------------------------------ round trips

@pytest.mark.parametrize("kind", ["sgd", "adam", "sgd-foreach", "adam-foreach"])
def test_resume_is_bitwise_identical(bk, kind, tmp_path):
    model = make()
    opt = make_opt(model, kind)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    train(model, opt, sched, 6)
    expected = {k: to_np(v) for k, v in model.state_dict().items()}

    model = make()
    opt = make_opt(model, kind)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    train(model, opt, sched, 3)
    path = tmp_path / "ck.safetensors"
    ck.save(path, model, opt, sched, epoch=1, step=3, metadata={"note": "mid-run"})
    lr_at_save = sched.get_last_lr()

    model = make(seed=123)  # different weights, fresh optimizer state, another RNG position
    opt = make_opt(model, kind)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    info = ck.load(path, model, opt, sched)
    assert (info["epoch"], info["step"], info["metadata"]) == (1, 3, {"note": "mid-run"})
    assert sched.get_last_lr() == lr_at_save and sched.last_epoch == 3
    assert all(p.backend.name == bk.name for p in model.parameters())
    train(model, opt, sched, 3)
    for k, v in model.state_dict().items():
        if B.device_name(bk.device) == "cpu":
            np.testing.assert_array_equal(to_np(v), expected[k], err_msg=k)
        else:
            np.testing.assert_allclose(to_np(v), expected[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_bfloat16_round_trip(bk, tmp_path):
    """bfloat16 weights and Adam state (e.g. after the out-of-memory advice) save as BF16 and
    load back bit for bit; plain weight files too."""
    if not hasattr(bk.xp, "bfloat16"):
        pytest.skip(f"{bk.name} has no bfloat16")
    model = make().to(dtype="bfloat16")
    opt = optim.Adam(model.parameters(), lr=0.01)
    x = xn.tensor(np.linspace(-1, 1, 15).reshape(5, 3), dtype="bfloat16")
    for _ in range(2):
        opt.zero_grad()
        xn.mean(model(x) ** 2).backward()
        opt.step()
    path, weights = tmp_path / "bf16.safetensors", tmp_path / "w.safetensors"
    ck.save(path, model, opt)
    ck.save_weights(weights, model)
    with ck.safe_open(str(path), framework="numpy") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    other = make(seed=5).to(dtype="bfloat16")
    other_opt = optim.Adam(other.parameters(), lr=0.01)
    ck.load(path, other, other_opt)
    bits = {k: to_np(v).view(np.uint16) for k, v in model.state_dict().items()}
    for k, v in other.state_dict().items():
        assert v.dtype == bk.xp.bfloat16
        np.testing.assert_array_equal(to_np(v).view(np.uint16), bits[k], err_msg=k)
    for p, q in zip(model.parameters(), other.parameters()):
        np.testing.assert_array_equal(to_np(other_opt.state[q]["exp_avg"]).view(np.uint16),
                                      to_np(opt.state[p]["exp_avg"]).view(np.uint16))
    third = make(seed=6).to(dtype="bfloat16")
    ck.load_weights(weights, third)
    for k, v in third.state_dict().items():
        np.testing.assert_array_equal(to_np(v).view(np.uint16), bits[k], err_msg=k)


def test_bfloat16_weights_load_into_any_model(bk, tmp_path):
    """A bfloat16 weight file (as torch writes it) loads into a float32 model on every backend,
    exactly (bfloat16 values are float32 values)."""
    import ml_dtypes
    from safetensors.numpy import save_file
    model = make()
    sd = {k: to_np(v).astype(ml_dtypes.bfloat16) for k, v in model.state_dict().items()}
    path = tmp_path / "bf16.safetensors"
    save_file(sd, str(path))
    other = make(seed=3)
    ck.load_weights(path, other)
    for k, v in other.state_dict().items():
        assert v.dtype == bk.xp.float32
        np.testing.assert_array_equal(to_np(v), sd[k].astype(np.float32), err_msg=k)


def test_bfloat16_is_named_where_missing():
    with pytest.raises(TypeError, match="no dtype|unknown dtype 'bfloat16' for the numpy backend.*torch and jax"):
        make(backend="numpy").to(dtype="bfloat16")


def test_metadata_keeps_python_types(bk, tmp_path):
    meta = {"t": (1, 2.5), 3: "int key", "inf": -math.inf, "c": Counter({4: 2}), "n": [None, True, "s"],
            "f": np.float64(0.5)}
    path = tmp_path / "m.safetensors"
    ck.save(path, make(), metadata=meta, epoch=0, extra_tensors={"ema": bk.xp.ones((2, 2))})
    info = ck.load(path, make(), rng=False)
    got = info["metadata"]
    assert got == meta and type(got["c"]) is Counter and type(got["t"]) is tuple
    assert info["epoch"] == 0 and info["step"] is None
    assert B.backend_of(info["extra_tensors"]["ema"]).name == bk.name
    np.testing.assert_array_equal(to_np(info["extra_tensors"]["ema"]), np.ones((2, 2), np.float32))
    with pytest.raises(TypeError, match="metadata.*object"):
        ck.save(path, make(), metadata={"bad": object()})


def test_schedulers_with_counters_and_lambdas(bk, tmp_path):
    def build():
        model = make()
        opt = optim.SGD(model.parameters(), lr=0.1)
        s1 = optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.5)
        s2 = optim.lr_scheduler.LambdaLR(opt, lambda e: 0.9 ** e)
        return model, opt, s1, s2
    model, opt, s1, s2 = build()
    train(model, opt, None, 1)
    for _ in range(3):
        s1.step()
    path = tmp_path / "s.safetensors"
    ck.save(path, model, opt, s1)
    ck.save(tmp_path / "l.safetensors", model, opt, s2)  # the lambda is skipped, as in PyTorch
    model, opt, s1, s2 = build()
    ck.load(path, model, opt, s1)
    assert isinstance(s1.milestones, Counter) and s1.last_epoch == 3
    s1.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    ck.load(tmp_path / "l.safetensors", model, opt, s2)
    assert s2.get_lr() == [pytest.approx(0.1 * 0.9 ** s2.last_epoch)]


def test_rng_and_loader_state(bk, tmp_path):
    data = pytest.importorskip("xpnet.data")
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    loader = data.DataLoader(data.ArrayDataset(X), batch_size=3, shuffle=True, seed=7)
    it = iter(loader)
    next(it)
    model = make()
    path = tmp_path / "r.safetensors"
    ck.save(path, model, loader=loader)
    want_batch = to_np(next(it)[0])
    want_draw = to_np(B.default_generator().normal((3,)))

    other = data.DataLoader(data.ArrayDataset(X), batch_size=3, shuffle=True, seed=99)
    B.manual_seed(5)
    ck.load(path, model, loader=other)
    assert to_np(B.default_generator().normal((3,))).tolist() == want_draw.tolist()
    np.testing.assert_array_equal(to_np(next(iter(other))[0]), want_batch)

    wrong = data.DataLoader(data.ArrayDataset(X), batch_size=4, shuffle=True)
    model2 = make(seed=8)
    before = snapshot(model2)
    with pytest.raises(CheckpointError, match="loader state does not fit.*batch_size=3"):
        ck.load(path, model2, loader=wrong)
    assert_same(snapshot(model2), before)

    gen = B.Generator(1)
    ck.save(path, model, rng=gen)
    mine = B.Generator(2)
    ck.load(path, model, rng=mine)
    assert mine.get_state() == B.Generator(1).get_state()


def test_map_backend_moves_model_and_optimizer(bk, tmp_path):
    with xn.using("numpy"):
        model = make()
        opt = make_opt(model, "adam")
        train(model, opt, None, 2)
        path = tmp_path / "m.safetensors"
        ck.save(path, model, opt)
        want = snapshot(model, opt)
        model = make(seed=1)
        opt = make_opt(model, "adam")
    ck.load(path, model, opt, map_backend=bk)
    assert all(p.backend is bk for p in model.parameters())
    assert all(B.backend_of(s["exp_avg"]).name == bk.name for s in opt.state.values())
    got = snapshot(model, opt)
    del want["rng"], got["rng"]
    assert_same(got, want)
    train(model, opt, None, 1)  # and training goes on there


# ---------------------------------------------------------------- weight files

def test_weights_from_and_to_pytorch(bk, tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    path = tmp_path / "torch.safetensors"
    st_torch.save_file(tmodel.state_dict(), str(path))
    model = make(seed=5)
    assert ck.load_weights(path, model) == ([], [])
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    want = tmodel(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(to_np(model(xn.tensor(x))), want, rtol=1e-5, atol=1e-6)

    back = tmp_path / "xpnet.safetensors"
    model = make(seed=6)
    ck.save_weights(back, model)
    tmodel.load_state_dict(st_torch.load_file(str(back)))
    np.testing.assert_allclose(tmodel(torch.from_numpy(x)).detach().numpy(), to_np(model(xn.tensor(x))),
                               rtol=1e-5, atol=1e-6)


def test_load_weights_options(bk, tmp_path):
    src = make(seed=3)
    full = tmp_path / "full.safetensors"
    ck.save(full, src, make_opt(src, "sgd"))
    model = make()
    ck.load_weights(full, model)  # the model part of a full checkpoint
    assert_same({k: to_np(v) for k, v in model.state_dict().items()},
                {k: to_np(v) for k, v in src.state_dict().items()})
    part = tmp_path / "part.safetensors"
    ck.save_weights(part, nn.Sequential(nn.Linear(3, 4, bias=False)))
    keys = ck.load_weights(part, model, strict=False)
    assert keys.missing_keys == ["0.bias", "2.weight", "2.bias"] and keys.unexpected_keys == []
    with pytest.raises(CheckpointError, match="not an xpnet checkpoint"):
        ck.load(part, model)
    m64 = make().to(dtype="float64")  # arrays take the dtype of the model's parameters
    ck.load_weights(full, m64)
    assert B.dtype_name(m64[0].weight.dtype) == "float64"


# ----------------------------------------------------------------- bad files

def _rewrite_header(path, edit, redigest=True):
    """Edit the header; with ``redigest`` the metadata digest is recomputed, as a writer with
    wrong values would do, so that the checks behind the digest are tested."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    edit(header)
    if redigest and "metadata_sha256" in header.get("__metadata__", {}):
        header["__metadata__"]["metadata_sha256"] = ck._meta_digest(header["__metadata__"])
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + raw[8 + n:])


def _wrong_sizes(h):
    h["model.0.weight"]["shape"] = [4, 30]


def _past_the_end(h):
    h["model.2.bias"]["data_offsets"][1] += 4000


def _bad_json(h):
    h["__metadata__"]["optimizer"] = "{not json"


def _bad_scheduler(h):
    h["__metadata__"]["scheduler"] = "[1, 2]"


def _bad_rng(h):
    h["__metadata__"]["rng"] = '{"bit_generator": "PCG64"}'


def _newer_format(h):
    h["__metadata__"]["format_version"] = "99"


BAD = {
    "random bytes": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(500)), "not a valid safetensors"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:p.stat().st_size // 2]), "not a valid safetensors"),
    "empty": (lambda p: p.write_bytes(b""), "not a valid safetensors"),
    "header sizes": (lambda p: _rewrite_header(p, _wrong_sizes), "not a valid safetensors"),
    "offsets past the end": (lambda p: _rewrite_header(p, _past_the_end), "not a valid safetensors"),
    "bad metadata JSON": (lambda p: _rewrite_header(p, _bad_json), "'optimizer' is not valid JSON"),
    "newer format": (lambda p: _rewrite_header(p, _newer_format), "format version '99'"),
    "bad RNG state": (lambda p: _rewrite_header(p, _bad_rng), "invalid RNG state"),
    "bad scheduler state": (lambda p: _rewrite_header(p, _bad_scheduler), "scheduler state does not fit StepLR"),
    "wrong shapes": (lambda p: ck.save(p, make(hidden=5)), r"0\.weight: the file has shape \(5, 3\) but the model expects \(4, 3\)"),
    "missing keys": (lambda p: ck.save(p, make(bias=False)), r"missing entries: 0\.bias"),
    "unexpected keys": (lambda p: ck.save(p, nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2),
                                                          nn.Linear(2, 2))), r"unexpected entries: 3\.bias, 3\.weight"),
    "optimizer param count": (lambda p: ck.save(p, make(), _opt_on_first_layer()),
                              "optimizer state does not fit Adam.*parameter group 0 has 2"),
    "no optimizer": (lambda p: ck.save(p, make()), "has no optimizer state"),
    "plain weights": (lambda p: ck.save_weights(p, make()), "not an xpnet checkpoint"),
}


def _opt_on_first_layer():
    m = make()
    opt = optim.Adam(m[0].parameters(), lr=0.01)
    train(m, opt, None, 1)
    return opt


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_raise_and_change_nothing(bk, case, tmp_path):
    model = make(seed=1)
    opt = make_opt(model, "adam")
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train(model, opt, sched, 2)
    path = tmp_path / f"bad {case}.safetensors"
    ck.save(path, model, opt, sched)
    corrupt, message = BAD[case]
    corrupt(path)
    train(model, opt, sched, 1)  # so that the file differs from the live state: a partial load would show
    before = snapshot(model, opt)
    with pytest.raises(CheckpointError, match=message) as err:
        ck.load(path, model, opt, sched)
    assert str(path) in str(err.value)
    assert_same(snapshot(model, opt), before)
    assert sched.last_epoch == 3


def test_bad_weight_file_changes_nothing(bk, tmp_path):
    path = tmp_path / "w.safetensors"
    ck.save_weights(path, make(hidden=5))
    model = make()
    before = snapshot(model)
    with pytest.raises(CheckpointError, match=f"{path}.*expects"):
        ck.load_weights(path, model)
    assert_same(snapshot(model), before)


# ---------------------------------------------------------- format and safety

def test_file_is_plain_safetensors_and_loads_without_pickle(bk, tmp_path, monkeypatch):
    model = make()
    opt = make_opt(model, "sgd")
    train(model, opt, None, 1)
    path = tmp_path / "c.safetensors"
    ck.save(path, model, opt, epoch=2)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    assert header["__metadata__"]["format"] == "xpnet-checkpoint"
    assert all(isinstance(v, str) for v in header["__metadata__"].values())
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    assert 8 + n + max(ends) == len(raw)  # nothing but the header and the tensor bytes
    assert sorted(k for k in header if k != "__metadata__") == [
        "model.0.bias", "model.0.weight", "model.2.bias", "model.2.weight",
        "optimizer.state.0.momentum_buffer", "optimizer.state.1.momentum_buffer",
        "optimizer.state.2.momentum_buffer", "optimizer.state.3.momentum_buffer"]

    def no_pickle(*a, **k):
        raise AssertionError("pickle used while loading a checkpoint")
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, no_pickle)
    assert ck.load(path, make(), make_opt(make(), "sgd"))["epoch"] == 2


class _HalfWriter:
    """A file whose write stores half the bytes, then fails as a full disk does."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)


@pytest.mark.parametrize("where", ["writer", "fsync", "replace", "folder fsync"])
def test_write_is_atomic_and_errors_name_the_checkpoint(bk, where, tmp_path, monkeypatch):
    path = tmp_path / "ck.safetensors"
    old = make(seed=1)
    ck.save(path, old, epoch=1)
    real_fsync, real_open = os.fsync, open

    def fail(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    def fsync_files_only(fd):  # the folder's fsync fails (after the rename: the new file is whole)
        return fail() if os.path.isdir(f"/proc/self/fd/{fd}") else real_fsync(fd)

    target = {"writer": (ck, "open", lambda *a, **k: _HalfWriter(real_open(*a, **k))),
              "fsync": (ck.os, "fsync", fail), "replace": (ck.os, "replace", fail),
              "folder fsync": (ck.os, "fsync", fsync_files_only)}[where]
    monkeypatch.setattr(*target, raising=False)
    if where == "folder fsync" and not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to tell a folder's descriptor")
    with pytest.raises(OSError, match="cannot write the checkpoint.*No space left") as err:
        ck.save(path, make(seed=2), epoch=2)
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert ".tmp" not in str(err.value)
    assert os.listdir(tmp_path) == ["ck.safetensors"]  # no temporary file left behind
    model = make(seed=3)
    assert ck.load(path, model)["epoch"] == (2 if where == "folder fsync" else 1)
    if where != "folder fsync":
        assert_same({k: to_np(v) for k, v in model.state_dict().items()},
                    {k: to_np(v) for k, v in old.state_dict().items()})
