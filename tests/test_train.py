"""The Trainer, callbacks and metrics."""

import csv
import math

import numpy as np
import pytest

import xpnet as xn
from xpnet import nn, optim
from xpnet.train import (Accuracy, BackupAndRestore, ConfusionMatrix, CSVLogger, EarlyStopping, F1Score,
                         LambdaCallback, LearningRateScheduler, MeanAbsoluteError, MeanSquaredError,
                         ModelCheckpoint, Precision, R2Score, Recall, ReduceLROnPlateau, TerminateOnNaN,
                         TopKAccuracy)

from conftest import to_np


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0, 3], [3, -2], [-3, -2]], dtype=np.float32)
    X = (centers[y] + rng.normal(scale=0.7, size=(n, 2))).astype(np.float32)
    return X, y


def make(seed=0, lr=0.05, **kw):
    xn.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = optim.Adam(model.parameters(), lr=lr)
    return xn.Trainer(model, "cross_entropy", opt, metrics=["accuracy"], verbose=0, **kw)


def test_fit_learns_and_history_has_keras_keys(bk):
    X, y = blobs()
    tr = make(backend=bk)
    h = tr.fit(X, y, epochs=8, batch_size=16, validation_data=(X, y), seed=0)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert len(h.history["loss"]) == 8 and h.epoch == list(range(8))
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert h.history["val_accuracy"][-1] > 0.9
    ev = tr.evaluate(X, y)
    assert ev["accuracy"] == pytest.approx(h.history["val_accuracy"][-1])
    pred = tr.predict(X, batch_size=50)
    assert pred.shape == (120, 3) and isinstance(pred, np.ndarray)  # on the host, as Keras


def test_same_seed_same_run_on_every_backend():
    X, y = blobs()
    runs = {}
    for name in ("numpy", "array_api_strict"):
        tr = make(backend=name)
        runs[name] = tr.fit(X, y, epochs=3, batch_size=32, seed=1).history["loss"]
    np.testing.assert_allclose(runs["numpy"], runs["array_api_strict"], rtol=1e-5)


def test_device_line(capsys):
    tr = make()
    tr.verbose = 1
    tr.fit(*blobs(), epochs=1)
    out = capsys.readouterr().out
    if xn.backend.cuda_available():
        assert "Training on cupy / cuda:0" in out
    else:
        assert "CUDA not available: training on numpy / cpu" in out
    assert "Epoch 1/1" in out and "ms/step" in out


def test_batch_size_none_is_full_batch(bk):
    X, y = blobs(40)
    steps = []
    tr = make(backend=bk)
    tr.fit(X, y, epochs=2, batch_size=None, callbacks=[LambdaCallback(on_train_batch_end=lambda b, logs: steps.append(b))])
    assert steps == [0, 0]


def test_gradient_accumulation_equals_a_bigger_batch():
    X, y = blobs(64)
    a = make(lr=0.01, accumulate=2)
    a.optimizer = optim.SGD(a.model.parameters(), lr=0.1)
    a.fit(X, y, epochs=1, batch_size=16, shuffle=False)
    b = make(lr=0.01)
    b.optimizer = optim.SGD(b.model.parameters(), lr=0.1)
    b.fit(X, y, epochs=1, batch_size=32, shuffle=False)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        np.testing.assert_allclose(to_np(p), to_np(q), rtol=1e-5, atol=1e-6)


def test_nan_loss_stops_with_epoch_and_step(tmp_path):
    X, y = blobs(64)
    X[40] = np.nan  # the third batch of 16 (unshuffled) has a NaN
    ck = ModelCheckpoint(tmp_path / "ck.safetensors", monitor="loss")
    tr = make()
    h = tr.fit(X, y, epochs=3, batch_size=16, shuffle=False, callbacks=[ck])
    assert "non-finite loss (nan) at epoch 1, step 3" in h.stop_reason
    assert h.history == {} and not (tmp_path / "ck.safetensors").exists()


def test_terminate_on_nan_checks_every_step():
    X, y = blobs(64)
    X[5] = np.inf
    h = make().fit(X, y, epochs=2, batch_size=16, shuffle=False, callbacks=[TerminateOnNaN()])
    assert "epoch 1, step 1" in h.stop_reason


def test_early_stopping_restores_best_weights():
    X, y = blobs()
    seen = {}
    es = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    tr = make(lr=0.5)

    def remember(epoch, logs):
        seen[epoch] = {k: to_np(v).copy() for k, v in tr.model.state_dict().items()}

    h = tr.fit(X, y, epochs=40, batch_size=8, validation_data=(X[:20], y[:20]),
               callbacks=[LambdaCallback(on_epoch_end=remember), es])
    assert es.stopped_epoch is not None and len(h.epoch) < 40
    for k, v in tr.model.state_dict().items():
        np.testing.assert_array_equal(to_np(v), seen[es.best_epoch][k])


def test_reduce_lr_on_plateau_callback():
    X, y = blobs(32)
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0)  # only epoch 1 "improves"
    h = make(lr=0.1).fit(X, y, epochs=4, batch_size=32, callbacks=[cb])
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.025])  # the rate each epoch used


def test_scheduler_callback_and_keras_schedule():
    X, y = blobs(32)
    tr = make(lr=0.1)
    sched = optim.lr_scheduler.StepLR(tr.optimizer, step_size=1, gamma=0.5)
    h = tr.fit(X, y, epochs=3, batch_size=32, callbacks=[LearningRateScheduler(sched)])
    assert h.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    tr = make(lr=0.1)
    h = tr.fit(X, y, epochs=3, batch_size=32, callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))])
    assert h.history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_csv_logger(tmp_path):
    X, y = blobs(32)
    make().fit(X, y, epochs=2, batch_size=16, callbacks=[CSVLogger(tmp_path / "log.csv")])
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1"] and float(rows[1]["loss"]) > 0


def test_model_checkpoint_best_only(tmp_path):
    pytest.importorskip("safetensors")
    X, y = blobs()
    ck = ModelCheckpoint(tmp_path / "best-{epoch:02d}.safetensors", monitor="val_accuracy", save_best_only=True)
    make().fit(X, y, epochs=3, batch_size=16, validation_data=(X, y), callbacks=[ck])
    assert ck.last_saved is not None and pathlib_exists(ck.last_saved)


def pathlib_exists(p):
    import pathlib
    return pathlib.Path(p).exists()


def _run(tmp_path, epochs, interrupt_at=None):
    X, y = blobs(96)
    tr = make(seed=3)
    cbs = [BackupAndRestore(tmp_path / "backup", delete_checkpoint=False)]
    if interrupt_at is not None:
        def stop(batch, logs):
            if tr.global_step == interrupt_at:
                tr.interrupted = True  # what Ctrl-C does
        cbs.append(LambdaCallback(on_train_batch_end=stop))
    h = tr.fit(X, y, epochs=epochs, batch_size=16, seed=5, callbacks=cbs)
    return tr, h


@pytest.mark.parametrize("interrupt_at", [9, 12])  # 6 steps per epoch: in epoch 2, and after its last step
def test_resume_after_interrupt_is_exact(tmp_path, interrupt_at):
    pytest.importorskip("safetensors")
    straight, h_straight = _run(tmp_path / "a", 4)
    first, h_first = _run(tmp_path / "b", 4, interrupt_at=interrupt_at)
    assert "interrupted" in h_first.stop_reason and len(h_first.epoch) == 1
    resumed, h = _run(tmp_path / "b", 4)                           # a new Trainer resumes from the backup
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(to_np(p), to_np(q))
    assert h.history["loss"][0] == h_straight.history["loss"][0] and len(h.epoch) == 4
    # the interrupted epoch's loss is the mean over all its steps, before and after the resume
    np.testing.assert_allclose(h.history["loss"], h_straight.history["loss"], rtol=1e-6)


def test_backup_with_a_malformed_epoch_loss_is_refused(tmp_path):
    pytest.importorskip("safetensors")
    from xpnet import checkpoint
    _run(tmp_path / "b", 4, interrupt_at=9)
    path = tmp_path / "b" / "backup" / "backup.safetensors"
    tr = make(seed=3)
    tr.loader = None
    info = checkpoint.load(path, tr.model)
    meta = dict(info["metadata"], epoch_loss=["x", 3])
    checkpoint.save(tmp_path / "bad.safetensors", tr.model, metadata=meta)
    before = [to_np(p).copy() for p in tr.model.parameters()]
    with pytest.raises(checkpoint.CheckpointError, match="epoch_loss"):
        tr.restore(tmp_path / "bad.safetensors")
    for p, q in zip(before, tr.model.parameters()):
        np.testing.assert_array_equal(p, to_np(q))


def test_metrics_against_numpy(bk):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4)).astype(np.float32)
    target = rng.integers(0, 4, 50)
    out, tgt = xn.tensor(logits), xn.tensor(target)
    pred = logits.argmax(1)
    cm = np.zeros((4, 4), int)
    for t, p in zip(target, pred):
        cm[t, p] += 1
    m = {M.__name__: M(4) for M in (ConfusionMatrix, Precision, Recall, F1Score)}
    acc, top2 = Accuracy(), TopKAccuracy(2)
    for metric in (*m.values(), acc, top2):
        metric.update(out[:20], tgt[:20])
        metric.update(out[20:], tgt[20:])
    np.testing.assert_array_equal(m["ConfusionMatrix"].compute(), cm)
    assert acc.compute() == pytest.approx((pred == target).mean())
    top2_ref = np.mean([t in np.argsort(-row)[:2] for row, t in zip(logits, target)])
    assert top2.compute() == pytest.approx(top2_ref)
    tp = np.diag(cm)
    prec = np.nan_to_num(tp / cm.sum(0)).mean()
    rec = np.nan_to_num(tp / cm.sum(1)).mean()
    f1 = np.nan_to_num(2 * tp / (cm.sum(0) + cm.sum(1))).mean()
    assert m["Precision"].compute() == pytest.approx(prec)
    assert m["Recall"].compute() == pytest.approx(rec)
    assert m["F1Score"].compute() == pytest.approx(f1)


def test_regression_metrics(bk):
    p = np.array([1.0, 2.0, 4.0], np.float32)
    t = np.array([1.0, 3.0, 3.0], np.float32)
    mse, mae, r2 = MeanSquaredError(), MeanAbsoluteError(), R2Score()
    for m in (mse, mae, r2):
        m.update(xn.tensor(p), xn.tensor(t))
    assert mse.compute() == pytest.approx(2 / 3) and mae.compute() == pytest.approx(2 / 3)
    assert r2.compute() == pytest.approx(1 - 2 / np.sum((t - t.mean()) ** 2))


def test_bad_metric_and_loss_names():
    with pytest.raises(ValueError, match="unknown metric 'acuracy'"):
        make().__class__(nn.Linear(2, 2), "cross_entropy", None, metrics=["acuracy"])
    with pytest.raises(ValueError, match="unknown loss 'xent'"):
        xn.Trainer(nn.Linear(2, 2), "xent", None)
    with pytest.raises(ValueError, match="needs the number of classes"):
        xn.Trainer(nn.Linear(2, 2), "cross_entropy", None, metrics=["f1"])


def test_monitor_missing_lists_the_logs():
    X, y = blobs(32)
    tr = make()
    with pytest.raises(ValueError, match="monitor 'val_loss' will not be in the logs.*loss, accuracy.*validation_data"):
        tr.fit(X, y, epochs=1, callbacks=[EarlyStopping()])
    assert tr.global_step == 0  # refused before the first step


def test_confusion_matrix_metric_goes_to_results_not_logs():
    X, y = blobs(60)
    tr = make()
    tr.metrics.append(ConfusionMatrix(3))
    h = tr.fit(X, y, epochs=1, batch_size=20, validation_data=(X, y))
    assert "confusion_matrix" not in h.history
    assert tr.results["confusion_matrix"].sum() == 60


def test_lr_range_test_finds_a_rate_and_puts_the_model_back():
    X, y = blobs(200)
    tr = make(lr=0.05)
    before = {k: to_np(v).copy() for k, v in tr.model.state_dict().items()}
    lrs, losses, suggestion = tr.lr_range_test(X, y, start_lr=1e-5, end_lr=100.0, num_steps=80, batch_size=16)
    assert lrs[0] == pytest.approx(1e-5) and len(lrs) == len(losses) <= 80
    assert 1e-5 < suggestion < 100.0
    assert min(losses) < losses[0]
    for k, v in tr.model.state_dict().items():
        np.testing.assert_array_equal(to_np(v), before[k])
    assert tr.optimizer.param_groups[0]["lr"] == 0.05
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        tr.lr_range_test(X, y, start_lr=1.0, end_lr=0.1)


def test_ctrl_c_stops_after_the_current_step_and_keeps_history(tmp_path):
    import os
    import signal
    X, y = blobs(96)
    tr = make()
    steps = []

    def on_batch_end(batch, logs):
        steps.append(tr.global_step)
        if tr.global_step == 8:  # in epoch 2 (6 steps per epoch)
            os.kill(os.getpid(), signal.SIGINT)

    h = tr.fit(X, y, epochs=5, batch_size=16, callbacks=[LambdaCallback(on_train_batch_end=on_batch_end),
                                                          BackupAndRestore(tmp_path / "bk", delete_checkpoint=False)])
    assert steps[-1] == 8 and "interrupted" in h.stop_reason
    assert len(h.epoch) == 1 and (tmp_path / "bk" / "backup.safetensors").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
