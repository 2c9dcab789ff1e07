"""Training never loses or corrupts work: callbacks refuse bad templates and monitors before the
first step, create their folders, and never write non-finite weights; a malformed saved History
is refused before anything is loaded."""

import json
import math
import os
import struct

import numpy as np
import pytest

import xpnet as xn
from xpnet import checkpoint as ck
from xpnet import nn, optim
from xpnet.train import (BackupAndRestore, EarlyStopping, LearningRateScheduler, ModelCheckpoint,
                         ReduceLROnPlateau)

from conftest import to_np


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0, 3], [3, -2], [-3, -2]], dtype=np.float32)
    return (centers[y] + rng.normal(scale=0.7, size=(n, 2))).astype(np.float32), y


def make(lr=0.05, opt="adam"):
    xn.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    o = optim.Adam(model.parameters(), lr=lr) if opt == "adam" else optim.SGD(model.parameters(), lr=lr)
    return xn.Trainer(model, "cross_entropy", o, metrics=["accuracy"], verbose=0)


LATE = {  # callback (no validation data) -> what the error says
    "template names val_loss": (lambda d: ModelCheckpoint(d / "ckpt-{val_loss:.3f}.safetensors"),
                                r"names \{val_loss\}, which will not be in the logs.*loss, accuracy, lr"),
    "template names a typo": (lambda d: ModelCheckpoint(d / "ckpt-{epoc}.safetensors", monitor="loss"),
                              r"names \{epoc\}"),
    "template with a bad format": (lambda d: ModelCheckpoint(d / "ckpt-{epoch:.3q}.safetensors", monitor="loss"),
                                   "cannot be formatted"),
    "template with a stray brace": (lambda d: ModelCheckpoint(d / "ckpt-{epoch.safetensors", monitor="loss"),
                                    "not a valid template"),
    "template with a positional field": (lambda d: ModelCheckpoint(d / "ckpt-{}.safetensors", monitor="loss"),
                                         r"names \{\}"),
    "best of val_accuracy": (lambda d: ModelCheckpoint(d / "best.safetensors", monitor="val_accuracy",
                                                       save_best_only=True), "monitor 'val_accuracy'.*validation_data"),
    "EarlyStopping on a typo": (lambda d: EarlyStopping(monitor="acuracy"), "EarlyStopping: monitor 'acuracy'"),
    "ReduceLROnPlateau on val_loss": (lambda d: ReduceLROnPlateau(), "ReduceLROnPlateau: monitor 'val_loss'"),
    "LearningRateScheduler(ReduceLROnPlateau)": (
        lambda d: LearningRateScheduler(optim.lr_scheduler.ReduceLROnPlateau(_opt[0])), "monitor 'val_loss'"),
}
_opt = []


@pytest.mark.parametrize("case", list(LATE))
def test_bad_templates_and_monitors_fail_before_the_first_step(case, tmp_path):
    tr = make()
    _opt[:] = [tr.optimizer]
    X, y = blobs()
    callback, message = LATE[case]
    with pytest.raises(ValueError, match=message):
        tr.fit(X, y, epochs=2, batch_size=20, callbacks=[callback(tmp_path)])
    assert tr.global_step == 0 and os.listdir(tmp_path) == []


def test_good_templates_and_nested_folders(tmp_path):
    X, y = blobs()
    tr = make()
    h = tr.fit(X, y, epochs=2, batch_size=20, validation_data=(X, y), callbacks=[
        ModelCheckpoint(tmp_path / "ckpts" / "run1" / "best.safetensors", save_best_only=True),
        ModelCheckpoint(str(tmp_path / "all" / "e{epoch:02d}-{val_loss:.3f}-{accuracy:.2f}-{lr}.safetensors")),
        EarlyStopping(monitor="val_accuracy", patience=5), ReduceLROnPlateau(monitor="loss")])
    assert len(h.epoch) == 2
    assert (tmp_path / "ckpts" / "run1" / "best.safetensors").stat().st_size > 0
    names = sorted(os.listdir(tmp_path / "all"))
    assert len(names) == 2 and names[0].startswith("e01-")


def test_a_jump_to_non_finite_weights_is_never_saved(tmp_path):
    """Full-batch gradient descent whose learning rate jumps to 1e39 (past float32) in epoch 4: that epoch's loss is
    measured before its update, so it counts as an improvement, but the weights after it are inf:
    nothing is written, training stops saying why, the last good best and backup stay."""
    X, y = blobs(60)
    tr = make(lr=0.1, opt="sgd")
    backup = tmp_path / "backup"
    h = tr.fit(X, y, epochs=8, batch_size=60, shuffle=False, callbacks=[
        LearningRateScheduler(lambda epoch, lr: 1e39 if epoch == 3 else lr),
        ModelCheckpoint(tmp_path / "best.safetensors", monitor="loss", save_best_only=True),
        ModelCheckpoint(tmp_path / "w-{epoch}.safetensors", save_weights_only=True),
        BackupAndRestore(backup)])
    assert len(h.epoch) == 4 and all(math.isfinite(v) for v in h.history["loss"])
    assert "refused to write" in h.stop_reason and "non-finite" in h.stop_reason
    assert not all(np.isfinite(to_np(p.data)).all() for p in tr.model.parameters())
    assert sorted(os.listdir(tmp_path)) == ["backup", "best.safetensors", "w-1.safetensors", "w-2.safetensors",
                                            "w-3.safetensors"]
    for path in (tmp_path / "best.safetensors", backup / "backup.safetensors"):
        model = make().model
        info = ck.load(path, model, rng=False)
        assert info["epoch"] == 3
        assert all(np.isfinite(to_np(p.data)).all() for p in model.parameters())


def test_malformed_saved_history_is_refused_before_loading(tmp_path):
    X, y = blobs()
    tr = make()
    tr.fit(X, y, epochs=1, batch_size=20)
    path = tmp_path / "c.safetensors"
    for history in ('"x"', '{"loss": 3}', None):
        tr.save_checkpoint(path, epoch=1)
        raw = path.read_bytes()
        n = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8:8 + n])
        meta = json.loads(header["__metadata__"]["metadata"])
        if history is None:
            meta["history_epochs"] = ["one"]
        else:
            meta["history"] = json.loads(history)
        header["__metadata__"]["metadata"] = json.dumps(meta)
        header["__metadata__"]["metadata_sha256"] = ck._meta_digest(header["__metadata__"])
        h = json.dumps(header).encode()
        path.write_bytes(struct.pack("<Q", len(h)) + h + raw[8 + n:])
        other = make()
        other.model[0].weight.data = other.model[0].weight.data * 0 + 3
        with pytest.raises(ck.CheckpointError, match=f"{path}: metadata 'history"):
            other.restore(path)
        assert (to_np(other.model[0].weight.data) == 3).all() and other.epoch == 0
