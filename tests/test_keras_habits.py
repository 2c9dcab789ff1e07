"""Keras habits in the Trainer: fit(validation_split=), predict/evaluate results, names for loss and
optimizer, Keras 3's EarlyStopping and ReduceLROnPlateau, gradient accumulation, the progress line."""

import numpy as np
import pytest

import xpnet as xn
from xpnet import nn, optim
from xpnet.train import EarlyStopping, ReduceLROnPlateau

from conftest import to_np


# Keras 3.15.1 (jax backend) run on the same monitored values by driving its callbacks directly
# (model weight = epoch index before each on_epoch_end): tests/reference/keras_callbacks.py prints them.
KERAS = {
    "es_restore_not_stopped": {"stopped": None, "weight": 2.0},
    "es_restore_stopped": {"stopped": 3, "weight": 1.0},
    "es_start_from_epoch": {"stopped": 4, "weight": 3.0},
    "es_baseline": {"stopped": None, "weight": 6.0},
    "es_baseline_met": {"stopped": 3, "weight": 3.0},
    "es_patience0": {"stopped": 1, "weight": 1.0},
    "es_min_delta": {"stopped": 2, "weight": 0.0},
    "rlr_cooldown": [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.0625, 0.0625, 0.03125, 0.03125],
    "rlr_no_cooldown": [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.0625, 0.0625, 0.03125, 0.03125],
    "rlr_min_lr": [1.0, 0.1, 0.1, 0.01, 0.01, 0.005, 0.005, 0.005, 0.005, 0.005, 0.005, 0.005],
    "rlr_improving": [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25],
}
FLAT = [1.0] + [2.0] * 11


class _FakeTrainer:
    """What a callback sees of the Trainer: model, optimizer, stop(), log()."""

    def __init__(self):
        self.model = nn.Linear(1, 1, bias=False)
        self.optimizer = optim.SGD(self.model.parameters(), lr=1.0)
        self.stopped = None

    def stop(self, reason):
        self.stopped = reason

    def log(self, message):
        pass


def _run_es(values, **kw):
    tr, cb = _FakeTrainer(), EarlyStopping(monitor="val_loss", **kw)
    cb.set_trainer(tr)
    cb.on_train_begin()
    stopped = None
    for e, v in enumerate(values):
        tr.model.weight.data = tr.model.weight.xp.full((1, 1), float(e), dtype=tr.model.weight.dtype,
                                                       device=tr.model.weight.device)
        cb.on_epoch_end(e, {"val_loss": v})
        if tr.stopped:
            stopped = e
            break
    cb.on_train_end()
    return {"stopped": stopped, "weight": float(to_np(tr.model.weight)[0, 0])}


def _run_rlr(values, **kw):
    tr, cb = _FakeTrainer(), ReduceLROnPlateau(monitor="val_loss", **kw)
    cb.set_trainer(tr)
    cb.on_train_begin()
    lrs = []
    for e, v in enumerate(values):
        cb.on_epoch_end(e, {"val_loss": v})
        lrs.append(tr.optimizer.param_groups[0]["lr"])
    return lrs


def test_early_stopping_as_keras_3(bk):
    got = {
        "es_restore_not_stopped": _run_es([3, 2, 1, 1.5, 1.2], patience=5, restore_best_weights=True),
        "es_restore_stopped": _run_es([3, 2, 2.5, 2.6, 2.7, 1], patience=2, restore_best_weights=True),
        "es_start_from_epoch": _run_es([1, 2, 3, 4, 5, 6, 7], patience=1, start_from_epoch=3,
                                       restore_best_weights=True),
        "es_baseline": _run_es([5, 4, 3, 2.5, 2.4, 1.0, 0.9], patience=3, baseline=2.0, restore_best_weights=True),
        "es_baseline_met": _run_es([5, 1.5, 1.6, 1.7, 1.4, 1.8, 1.9, 2.0], patience=2, baseline=2.0),
        "es_patience0": _run_es([1, 2, 3], patience=0),
        "es_min_delta": _run_es([1.0, 0.95, 0.9, 0.85, 0.8], patience=2, min_delta=0.1, restore_best_weights=True),
    }
    assert got == {k: v for k, v in KERAS.items() if k.startswith("es_")}


def test_reduce_lr_on_plateau_as_keras_3(bk):
    got = {
        "rlr_cooldown": _run_rlr(FLAT, patience=2, cooldown=1, factor=0.5),
        "rlr_no_cooldown": _run_rlr(FLAT, patience=2, factor=0.5),
        "rlr_min_lr": _run_rlr(FLAT, patience=1, cooldown=2, factor=0.1, min_lr=0.005),
        "rlr_improving": _run_rlr([5, 4, 3.99995, 3.9999, 3, 3, 3, 3], patience=2, factor=0.5, min_delta=1e-4),
    }
    for k, v in got.items():
        np.testing.assert_allclose(v, KERAS[k], rtol=1e-6)  # Keras holds the rate in float32
    lrs = got["rlr_cooldown"]  # reductions after epochs 2, 4, 6, 8, 10 (from 0), as the issue says
    assert [e for e in range(1, 12) if lrs[e] < lrs[e - 1]] == [2, 4, 6, 8, 10]


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)
    return X, y


def _model(dtype="float32"):
    xn.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)


def _not_on_jax(bk):
    if bk.name == "jax":  # eager JAX compiles every new shape: these loops are backend-independent
        pytest.skip("the Trainer's logic is the same on every backend; JAX eager is slow (see README)")


def test_validation_split_takes_the_last_fraction_before_shuffling(bk):
    _not_on_jax(bk)
    X, y = _data(40)
    tr = xn.Trainer(_model(), "cross_entropy", "adam", metrics=["accuracy"], backend=bk, verbose=0)
    h = tr.fit(X, y, epochs=2, batch_size=8, validation_split=0.25, seed=0)
    assert {"val_loss", "val_accuracy"} <= set(h.history)
    assert len(tr.loader.dataset) == 30  # Keras: ceil(40 * 0.75) samples train
    ev = tr.evaluate(X[30:], y[30:])  # the last 10 validate: the same numbers
    assert ev["loss"] == pytest.approx(h.history["val_loss"][-1], rel=1e-6)
    assert ev["accuracy"] == pytest.approx(h.history["val_accuracy"][-1])
    assert len(xn.Trainer(_model(), "mse", "sgd", backend=bk, verbose=0)._split_off(X, y, 0.33)[0]) == 27
    with pytest.raises(ValueError, match="validation_split must be in"):
        tr.fit(X, y, validation_split=1.5)
    from xpnet.data import ArrayDataset
    with pytest.raises(ValueError, match="validation_data instead"):
        tr.fit(ArrayDataset(X, y), validation_split=0.2)
    h2 = tr.fit(X, y, epochs=1, validation_split=0.5, validation_data=(X[:4], y[:4]))  # validation_data wins
    assert tr.evaluate(X[:4], y[:4])["loss"] != pytest.approx(tr.evaluate(X[20:], y[20:])["loss"])
    assert len(tr.loader.dataset) == 40 and "val_loss" in h2.history


def test_predict_numpy_evaluate_floats_and_predict_only_trainer(bk):
    X, y = _data(20)
    tr = xn.Trainer(_model(), "categorical_crossentropy", "sgd", metrics=["accuracy"], backend=bk, verbose=0)
    tr.fit(X, y, epochs=1, batch_size=5)
    ev = tr.evaluate(X, y)
    assert set(ev) == {"loss", "accuracy"} and all(type(v) is float for v in ev.values())
    p = tr.predict(X, batch_size=7)
    assert isinstance(p, np.ndarray) and p.shape == (20, 3) and p.dtype == np.float32
    only = xn.Trainer(tr.model, backend=bk, verbose=0)  # no loss, no optimizer: predict works
    np.testing.assert_allclose(only.predict(X), p, rtol=1e-5, atol=1e-6)  # other batches: other rounding
    with pytest.raises(ValueError, match="fit needs a loss and an optimizer"):
        only.fit(X, y)
    with pytest.raises(ValueError, match="evaluate needs a loss"):
        only.evaluate(X, y)


def test_optimizer_and_loss_by_name(bk):
    m = _model()
    tr = xn.Trainer(m, "mse", "adam", backend=bk, verbose=0)
    assert isinstance(tr.optimizer, optim.Adam) and tr.optimizer.param_groups[0]["lr"] == 1e-3
    for name, cls in (("sgd", optim.SGD), ("RMSprop", optim.RMSprop), ("adamw", optim.AdamW)):
        assert isinstance(xn.Trainer(m, "mse", name, backend=bk, verbose=0).optimizer, cls)
    from xpnet.nn import functional as F
    assert xn.Trainer(m, "categorical_crossentropy", backend=bk, verbose=0).loss_fn is F.cross_entropy
    assert xn.Trainer(m, "mean_squared_error", backend=bk, verbose=0).loss_fn is F.mse_loss
    with pytest.raises(ValueError, match="unknown optimizer 'adamx'"):
        xn.Trainer(m, "mse", "adamx", backend=bk)
    with pytest.raises(ValueError, match="unknown loss"):
        xn.Trainer(m, "msee", "adam", backend=bk)


def test_accumulation_trains_exactly_as_the_bigger_batch(bk):
    _not_on_jax(bk)
    X, y = _data(10)  # batch 4: 4, 4, 2; batch 2 x accumulate 2: (2, 2), (2, 2), (2): a partial last window
    runs = []
    for bs, acc in ((4, 1), (2, 2)):
        m = _model("float64")
        tr = xn.Trainer(m, "cross_entropy", optim.SGD(m.parameters(), lr=0.5), backend=bk, accumulate=acc, verbose=0)
        tr.fit(X.astype(np.float64), y, epochs=2, batch_size=bs, shuffle=False)
        runs.append([to_np(p) for p in m.parameters()])
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_progress_bar_shows_the_whole_epoch_line_on_80_columns(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    from xpnet.train.progress import Progress
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    p = Progress(1, 3)
    assert p.tty
    p.start_epoch(0, 10, 0)
    p.update(10, 0.5, 1.0)
    logs = {"loss": 0.123456, "accuracy": 0.9512, "precision": 0.93, "recall": 0.91, "f1": 0.92,
            "val_loss": 0.23456, "val_accuracy": 0.9, "val_precision": 0.88, "val_recall": 0.87, "val_f1": 0.875,
            "lr": 0.001}
    p.end_epoch(logs, 1.0)
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines())
    for k, v in logs.items():
        assert f"{k}: {v:.4g}" in out


def test_tensorboard_event_files_read_back(bk, tmp_path):
    pytest.importorskip("tensorboardX")
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from xpnet.train import TensorBoard
    X, y = _data(24)
    tr = xn.Trainer(_model(), "cross_entropy", "adam", metrics=["accuracy"], backend=bk, verbose=0)
    h = tr.fit(X, y, epochs=2, batch_size=8, validation_split=0.25, seed=0,  # 18 train samples: 3 steps/epoch
               callbacks=[TensorBoard(tmp_path / "logs", update_freq=2, histogram_freq=1)])

    def run(name):
        ea = ea_mod.EventAccumulator(str(tmp_path / "logs" / name), size_guidance={"scalars": 0, "histograms": 0})
        ea.Reload()
        return ea

    train, val = run("train"), run("validation")
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "batch_loss"} <= set(train.Tags()["scalars"])
    for tag, key in (("epoch_loss", "loss"), ("epoch_accuracy", "accuracy"), ("epoch_learning_rate", "lr")):
        events = train.Scalars(tag)
        assert [e.step for e in events] == [0, 1]
        np.testing.assert_allclose([e.value for e in events], h.history[key], rtol=1e-6)
    np.testing.assert_allclose([e.value for e in val.Scalars("epoch_loss")], h.history["val_loss"], rtol=1e-6)
    np.testing.assert_allclose([e.value for e in val.Scalars("epoch_accuracy")], h.history["val_accuracy"], rtol=1e-6)
    assert [e.step for e in train.Scalars("batch_loss")] == [2, 4, 6]
    assert set(train.Tags()["histograms"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert [e.step for e in train.Histograms("0.weight")] == [0, 1]
    with pytest.raises(ValueError, match="update_freq"):
        TensorBoard(tmp_path, update_freq=0)
