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


def _meta(key, value):
    def edit(h):
        h["__metadata__"][key] = value
    return edit


def _json_meta(key, change):
    """Edit one JSON metadata entry (parsed with the checkpoint's own tags)."""
    def edit(h):
        d = json.loads(h["__metadata__"][key])
        change(d)
        h["__metadata__"][key] = json.dumps(d)
    return edit


def _set_group(key, value):
    def change(d):
        d["param_groups"][0][key] = value
    return _json_meta("optimizer", change)


def _flip_bit(name, bit=3):
    """Flip one bit of tensor ``name``'s data; the header (and its digests) unchanged."""
    def corrupt(path):
        raw = bytearray(path.read_bytes())
        n = struct.unpack("<Q", raw[:8])[0]
        start, end = json.loads(raw[8:8 + n])[name]["data_offsets"]
        raw[8 + n + (start + end) // 2] ^= 1 << bit
        path.write_bytes(bytes(raw))
    return corrupt


def _folder(p):
    p.unlink()
    p.mkdir()


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
    # silent corruption: one flipped bit anywhere
    "bit flip in a weight": (_flip_bit("model.0.weight"), "tensor 'model.0.weight' is corrupted"),
    "bit flip in a bias (sign)": (_flip_bit("model.2.bias", 7), "tensor 'model.2.bias' is corrupted"),
    "bit flip in optimizer state": (_flip_bit("optimizer.state.1.exp_avg_sq", 0),
                                    "tensor 'optimizer.state.1.exp_avg_sq' is corrupted"),
    "metadata edited": (lambda p: _rewrite_header(p, _meta("epoch", "7"), redigest=False), "metadata is corrupted"),
    "digest of a tensor dropped": (lambda p: _rewrite_header(p, _json_meta("tensor_sha256", lambda d: d.pop(
        "model.0.bias"))), "tensors model.0.bias do not match the digests"),
    "digest table not a table": (lambda p: _rewrite_header(p, _meta("tensor_sha256", "[1, 2]")), "not a table"),
    # every load failure a CheckpointError naming the file
    "a folder": (_folder, "is a folder"),
    "no such file": (lambda p: p.unlink(), r"cannot read the checkpoint \(no such file\)"),
    "metadata nested 100,000 deep": (lambda p: _rewrite_header(p, _meta("metadata", "[" * 100000 + "]" * 100000)),
                                     "'metadata' is nested too deeply"),
    "malformed tuple tag": (lambda p: _rewrite_header(p, _meta("metadata", '{"__tuple__": 5}')),
                            "'metadata' is not valid JSON.*__tuple__: expected a list"),
    "malformed items tag": (lambda p: _rewrite_header(p, _meta("metadata", '{"__items__": [[[1], 2]]}')),
                            "'metadata' is not valid JSON.*unhashable"),
    "malformed float tag": (lambda p: _rewrite_header(p, _meta("metadata", '{"__float__": "abc"}')),
                            "__float__: expected 'inf'"),
    # metadata of the wrong type
    "lr of 'abc'": (lambda p: _rewrite_header(p, _set_group("lr", "abc")), r"param_groups\[0\]\['lr'\] is 'abc'"),
    "lr of -1": (lambda p: _rewrite_header(p, _set_group("lr", -1.0)), r"'lr'\] is -1.0: expected a finite number"),
    "betas of one number": (lambda p: _rewrite_header(p, _set_group("betas", {"__tuple__": [0.9]})),
                            r"'betas'\] has 1 entries: expected 2"),
    "amsgrad of 'yes'": (lambda p: _rewrite_header(p, _set_group("amsgrad", "yes")),
                         r"'amsgrad'\] is 'yes': expected bool"),
    "epoch of 'x'": (lambda p: _rewrite_header(p, _meta("epoch", '"x"')), "'epoch' is 'x': expected a whole number"),
    "step of -3": (lambda p: _rewrite_header(p, _meta("step", "-3")), "'step' is -3"),
    "epoch of 2.5": (lambda p: _rewrite_header(p, _meta("epoch", "2.5")), "'epoch' is 2.5"),
    "scheduler last_epoch of 'x'": (lambda p: _rewrite_header(p, _json_meta("scheduler", lambda d: d.update(
        last_epoch="x"))), r"scheduler state does not fit StepLR: state\['last_epoch'\] is 'x'"),
    "scheduler gamma of a list": (lambda p: _rewrite_header(p, _json_meta("scheduler", lambda d: d.update(
        gamma=[1]))), r"state\['gamma'\] is \[1\]: expected a number"),
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
    ck.save(path.parent / "fresh.safetensors", model, opt, sched)  # and nothing is left half done


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


# ------------------------------------------------------------- digests (silent corruption)

def test_weight_files_are_verified_too(bk, tmp_path):
    path = tmp_path / "w.safetensors"
    ck.save_weights(path, make(seed=2))
    for name, bit in (("0.weight", 0), ("2.bias", 6)):
        ck.save_weights(path, make(seed=2))
        _flip_bit(name, bit)(path)
        model = make()
        before = snapshot(model)
        with pytest.raises(CheckpointError, match=f"{path}: tensor '{name}' is corrupted"):
            ck.load_weights(path, model)
        assert_same(snapshot(model), before)


def test_files_without_digests_still_load(bk, tmp_path):
    from safetensors.numpy import save_file
    src = make(seed=4)
    want = {k: to_np(v) for k, v in src.state_dict().items()}
    plain = tmp_path / "plain.safetensors"  # as PyTorch's safetensors.torch.save_file writes it
    save_file(want, str(plain))
    model = make()
    ck.load_weights(plain, model)
    assert_same({k: to_np(v) for k, v in model.state_dict().items()}, want)

    old = tmp_path / "old.safetensors"  # an xpnet checkpoint from before the digests
    ck.save(old, src, epoch=3)

    def drop(h):
        del h["__metadata__"]["tensor_sha256"], h["__metadata__"]["metadata_sha256"]
    _rewrite_header(old, drop)
    model = make()
    assert ck.load(old, model)["epoch"] == 3
    assert_same({k: to_np(v) for k, v in model.state_dict().items()}, want)


def test_loader_state_is_checked_before_anything_is_applied(bk, tmp_path):
    data = pytest.importorskip("xpnet.data")
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    saved = data.DataLoader(data.ArrayDataset(X), batch_size=3, shuffle=True, seed=7)
    next(iter(saved))
    model = make()
    path = tmp_path / "l.safetensors"
    bad_states = {"rng state": {"bit_generator": "PCG64", "state": "x"},
                  "generator kind": {"bit_generator": "MT19937", "state": {"key": [1], "pos": 0}},
                  "epoch": "x", "batch": -1, "seed": 1.5}
    for what, value in bad_states.items():
        ck.save(path, model, loader=saved)
        key = "rng_state" if what in ("rng state", "generator kind") else what
        _rewrite_header(path, _json_meta("loader", lambda d: d.update({key: value})))
        loader = data.DataLoader(data.ArrayDataset(X), batch_size=3, shuffle=True, seed=99)
        loader.set_epoch(2)
        want_batch = to_np(next(iter(loader))[0])
        loader.set_epoch(2)
        other = make(seed=9)
        before, rng = snapshot(other), B.default_generator().get_state()
        with pytest.raises(CheckpointError, match=f"{path}: the loader state does not fit"):
            ck.load(path, other, loader=loader)
        assert (loader.seed, loader.epoch) == (99, 2), what
        np.testing.assert_array_equal(to_np(next(iter(loader))[0]), want_batch)
        assert_same(snapshot(other), before)
        assert B.default_generator().get_state() == rng


def test_digest_cost_is_one_hash_per_tensor(bk, tmp_path, monkeypatch):
    """Each tensor is hashed once at save and once at load (the cost measured in docs/benchmarks.md)."""
    calls = []
    real = ck._digest
    monkeypatch.setattr(ck, "_digest", lambda a: calls.append(a.size) or real(a))
    model = make()
    ck.save(tmp_path / "c.safetensors", model, make_opt(model, "sgd"))
    assert len(calls) == 4
    ck.load(tmp_path / "c.safetensors", make())
    assert len(calls) == 8


# ------------------------------------------------- files: folders, modes, leftovers, refusals

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_respect_the_umask(umask, tmp_path):
    old = os.umask(umask)
    try:
        ck.save(tmp_path / "c.safetensors", make())
        ck.save_weights(tmp_path / "w.safetensors", make())
    finally:
        os.umask(old)
    for name in ("c.safetensors", "w.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_parent_folders_are_created(tmp_path):
    ck.save(tmp_path / "runs" / "a" / "b" / "c.safetensors", make(), epoch=1)
    ck.save_weights(tmp_path / "w" / "x" / "w.safetensors", make())
    assert ck.load(tmp_path / "runs" / "a" / "b" / "c.safetensors", make())["epoch"] == 1
    ck.load_weights(tmp_path / "w" / "x" / "w.safetensors", make())
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OSError, match="cannot write the checkpoint") as err:
        ck.save(tmp_path / "file" / "c.safetensors", make())
    assert err.value.filename == str(tmp_path / "file" / "c.safetensors")
    (tmp_path / "taken").mkdir()
    with pytest.raises(IsADirectoryError, match="cannot write the checkpoint") as err:  # the target is a folder
        ck.save_weights(tmp_path / "taken", make())
    assert err.value.filename == str(tmp_path / "taken") and ".tmp" not in str(err.value)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def _stale(folder, base, content=b"half a checkpoint", age=0.0):
    import uuid
    p = folder / f".{base}.{uuid.uuid4().hex}.tmp"
    p.write_bytes(content)
    if age:
        os.utime(p, (p.stat().st_atime - age, p.stat().st_mtime - age))
    return p


def test_stale_temp_files_are_cleaned_but_not_those_of_live_writers(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    path = tmp_path / "ck.safetensors"
    stale = [_stale(tmp_path, path.name), _stale(tmp_path, path.name, b"", age=3600)]
    young_empty = _stale(tmp_path, path.name, b"")             # a writer may be about to lock it
    other = _stale(tmp_path, "other.safetensors")              # another checkpoint's: not ours to judge
    lookalike = tmp_path / f".{path.name}.not-a-temp.tmp"
    lookalike.write_bytes(b"x")
    live = _stale(tmp_path, path.name)
    with open(live, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)                 # as a writer at work holds it
        ck.save(path, make(), epoch=5)
        assert all(not p.exists() for p in stale)
        assert live.exists() and young_empty.exists() and other.exists() and lookalike.exists()
    ck.save(path, make(), epoch=6)                             # the writer is gone: its file is stale now
    assert not live.exists() and young_empty.exists()
    assert ck.load(path, make())["epoch"] == 6


KILLED_WRITER = """
import sys, time
import xpnet as xn
from xpnet import checkpoint as ck, nn
def stall(fd):
    print("writing", flush=True)
    time.sleep(120)
ck.os.fsync = stall            # killed between writing the bytes and the rename
xn.manual_seed(int(sys.argv[2]))
ck.save(sys.argv[1], nn.Sequential(nn.Linear(300, 300), nn.Linear(300, 3)), epoch=int(sys.argv[2]))
"""


def test_sigkill_during_saves_leaves_nothing_behind(tmp_path):
    """A writer SIGKILLed in the middle of a save leaves one temp file (ours, no second one from
    safetensors), which the next save removes; one of a writer still at work is kept."""
    import signal
    import subprocess
    import sys
    pytest.importorskip("fcntl")
    path = tmp_path / "ck.safetensors"
    ck.save(path, make(), epoch=1)
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}

    def start(seed):
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(seed)], stdout=subprocess.PIPE,
                                text=True, env=env)
        assert proc.stdout.readline().strip() == "writing"
        return proc

    def temps():
        return sorted(n for n in os.listdir(tmp_path) if n.endswith(".tmp"))

    seen = []
    for seed in (2, 3, 4):
        proc = start(seed)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        left = temps()  # the killed writer's one file; it had removed the one before
        assert len(left) == 1 and left[0].startswith(".ck.safetensors.") and left[0] not in seen
        seen += left
    live = start(5)                                   # a writer still at work: it removed the stale one
    try:
        held = temps()
        assert len(held) == 1 and held[0] not in seen
        ck.save(path, make(), epoch=7)                # leaves the live writer's file alone
        assert temps() == held
        assert ck.load(path, make())["epoch"] == 7
    finally:
        os.kill(live.pid, signal.SIGKILL)
        live.wait()
    ck.save(path, make(), epoch=8)
    assert sorted(os.listdir(tmp_path)) == ["ck.safetensors", "writer.py"]
    assert ck.load(path, make())["epoch"] == 8


@pytest.mark.parametrize("where", ["weight", "bias", "optimizer state"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_weights_are_never_written(bk, where, value, tmp_path):
    model = make()
    opt = make_opt(model, "adam")
    train(model, opt, None, 1)
    path = tmp_path / "c.safetensors"
    ck.save(path, model, opt, epoch=1)
    ck.save_weights(tmp_path / "w.safetensors", model)
    good = path.read_bytes()
    layer = model[2]
    if where == "optimizer state":
        p = layer.weight
        opt.state[p]["exp_avg"] = bk.xp.full(p.shape, value, dtype=p.dtype, device=bk.device)
        name = "optimizer.state.2.exp_avg"
    else:
        p = layer.weight if where == "weight" else layer.bias
        p.data = bk.xp.full(p.shape, value, dtype=p.dtype, device=bk.device)
        name = "model.2." + where
    with pytest.raises(ck.NonFiniteWeightsError, match=f"refused to write {path}: non-finite.*{name} "):
        ck.save(path, model, opt, epoch=2)
    assert path.read_bytes() == good and sorted(os.listdir(tmp_path)) == ["c.safetensors", "w.safetensors"]
    if where != "optimizer state":
        with pytest.raises(ck.NonFiniteWeightsError, match=f"{where}"):
            ck.save_weights(tmp_path / "w.safetensors", model)
        assert ck.load_weights(tmp_path / "w.safetensors", make()) == ([], [])
