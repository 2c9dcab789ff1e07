"""Callbacks with Keras's names and behaviour.

A callback gets ``on_train_begin/end``, ``on_epoch_begin/end(epoch, logs)``
and ``on_train_batch_begin/end(batch, logs)``; ``self.trainer`` is set
before training starts.  Epoch ``logs`` hold floats (``loss``, metrics,
``val_*``, ``lr``); batch logs hold the loss as a device tensor, so that no
callback forces a device-to-host transfer per step unless it asks for one.
"""

from __future__ import annotations

import csv
import math
import os
import pathlib
import re
import string

from .. import backend as B

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau",
           "LearningRateScheduler", "TerminateOnNaN", "CSVLogger", "BackupAndRestore", "LambdaCallback"]


class Callback:
    trainer = None
    rank_zero_only = False  # True: under a launcher only rank 0 runs it (callbacks that write files)

    def set_trainer(self, trainer):
        self.trainer = trainer

    @property
    def model(self):
        return self.trainer.model

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass


class History(Callback):
    """What ``fit`` returns: ``history[name]`` is the list of per-epoch values."""

    def __init__(self):
        self.history, self.epoch = {}, []
        self.stop_reason = None

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self):
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


def _mode(mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if any(k in monitor for k in ("acc", "f1", "precision", "recall", "r2")) else "min"
    return mode


def _logged(callback, logs):
    """The value ``callback.monitor`` from the epoch logs, or a KeyError that lists what is there."""
    value = (logs or {}).get(callback.monitor)
    if value is None:
        raise KeyError(f"{type(callback).__name__}: monitored value {callback.monitor!r} is not in the logs "
                       f"(available: {', '.join(sorted(logs or {}))}); pass validation_data for 'val_*'")
    return value


def _check_monitor(callback):
    """Before the first step: ValueError unless ``callback.monitor`` is among the logs that this
    ``fit`` will produce (``trainer.log_names``)."""
    names = getattr(callback.trainer, "log_names", None)
    if names is None or callback.monitor in names:
        return
    hint = "; pass validation_data for 'val_*' values" if callback.monitor.startswith("val_") else ""
    raise ValueError(f"{type(callback).__name__}: monitor {callback.monitor!r} will not be in the logs of this fit "
                     f"(they hold {', '.join(names)}){hint}")


def _check_template(callback, template: str):
    """Before the first step: ValueError unless the file-name ``template`` formats with ``epoch``
    and the logs that this ``fit`` will produce."""
    names = getattr(callback.trainer, "log_names", None)
    if names is None:
        return
    where = f"{type(callback).__name__}: filepath {template!r}"
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise ValueError(f"{where} is not a valid template ({e}); write braces as {{{{ and }}}}") from None
    for field in fields:
        root = re.split(r"[.\[]", field, maxsplit=1)[0]
        if root not in ("epoch", *names):
            raise ValueError(f"{where} names {{{field}}}, which will not be in the logs of this fit: "
                             f"use epoch or {', '.join(names)}")
    try:
        template.format(epoch=1, **{k: 0.5 for k in names})
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as e:
        raise ValueError(f"{where} cannot be formatted with the epoch and the logs: {e}") from None


def _refused(callback, error):
    """A save refused for non-finite weights: stop training, keep the last good files."""
    callback.trainer.bad_loss = True  # no later backup overwrites or deletes the last good one
    callback.trainer.stop(str(error))


class _Monitor(Callback):
    """Shared by callbacks that watch one logged value for improvement."""

    def __init__(self, monitor, mode, min_delta):
        self.monitor, self.mode, self.min_delta = monitor, _mode(mode, monitor), abs(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf

    def _value(self, logs):
        return _logged(self, logs)

    def _improved(self, value) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; optionally put back
    the best weights seen."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        self.patience, self.baseline = patience, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch

    def on_train_begin(self, logs=None):
        _check_monitor(self)
        self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, None, None, None
        self.best = math.inf if self.mode == "min" else -math.inf
        if self.baseline is not None:
            self.best = self.baseline

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.start_from_epoch:
            return
        value = self._value(logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: B.to_numpy(v).copy() for k, v in self.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop(f"early stopping: {self.monitor} did not improve for {self.wait} epochs")

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch is not None:
            self.model.load_state_dict(self.best_weights)
            self.trainer.log(f"Restored the weights of the best epoch ({self.best_epoch + 1}: "
                             f"{self.monitor} = {self.best:.4g})")


def _finite(logs) -> bool:
    return all(math.isfinite(v) for v in (logs or {}).values() if isinstance(v, float))


class ModelCheckpoint(_Monitor):
    """Save after every epoch, or only when ``monitor`` improves (``save_best_only``).

    ``filepath`` may hold ``{epoch}`` and log names (``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``).
    A full checkpoint (weights, optimizer, scheduler, RNG) is written unless
    ``save_weights_only``; missing folders are created.  The template and (with
    ``save_best_only``) the monitor are checked against the logs of ``fit`` before
    its first step (ValueError).  Non-finite weights are never written: after an
    epoch with a non-finite loss nothing is saved, and weights that hold NaN or
    infinity stop training with the reason (the last good file is kept).
    """

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, save_weights_only=False,
                 mode="auto", min_delta=0.0):
        super().__init__(monitor, mode, min_delta)
        self.filepath, self.save_best_only, self.save_weights_only = str(filepath), save_best_only, save_weights_only
        self.last_saved = None

    def on_train_begin(self, logs=None):
        if self.save_best_only:
            _check_monitor(self)
        _check_template(self, self.filepath)

    def on_epoch_end(self, epoch, logs=None):
        from ..checkpoint import NonFiniteWeightsError
        if not _finite(logs):
            return
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
        path = self.filepath.format(epoch=epoch + 1, **(logs or {}))
        try:
            self.trainer.save_checkpoint(path, epoch=epoch + 1, weights_only=self.save_weights_only)
        except NonFiniteWeightsError as e:
            return _refused(self, e)
        if self.save_best_only:
            self.best = value
        self.last_saved = path


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved by ``min_delta``
    for ``patience`` epochs (Keras's counting), through :class:`xpnet.optim.lr_scheduler.ReduceLROnPlateau`."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1, got {factor}")
        self.monitor, self.mode = monitor, _mode(mode, monitor)
        self.options = dict(factor=factor, patience=max(patience - 1, 0), threshold=abs(min_delta),
                            threshold_mode="abs", cooldown=cooldown, min_lr=min_lr)

    def on_train_begin(self, logs=None):
        _check_monitor(self)
        from ..optim.lr_scheduler import ReduceLROnPlateau as Plateau
        self.scheduler = Plateau(self.trainer.optimizer, mode=self.mode, **self.options)

    def on_epoch_end(self, epoch, logs=None):
        self.scheduler.step(_logged(self, logs))


class LearningRateScheduler(Callback):
    """Step a scheduler from :mod:`xpnet.optim.lr_scheduler` every epoch (or every step with
    ``interval="step"``), or set ``lr = schedule(epoch, lr)`` as in Keras."""

    def __init__(self, schedule, interval="epoch", monitor="val_loss"):
        if interval not in ("epoch", "step"):
            raise ValueError(f"interval must be 'epoch' or 'step', got {interval!r}")
        self.schedule, self.interval, self.monitor = schedule, interval, monitor

    def _is_scheduler(self):
        return hasattr(self.schedule, "step") and hasattr(self.schedule, "optimizer")

    def on_train_begin(self, logs=None):
        if self.interval == "epoch" and type(self.schedule).__name__ == "ReduceLROnPlateau":
            _check_monitor(self)

    def on_epoch_begin(self, epoch, logs=None):
        if not self._is_scheduler():
            for group in self.trainer.optimizer.param_groups:
                group["lr"] = float(self.schedule(epoch, group["lr"]))

    def on_train_batch_end(self, batch, logs=None):
        if self.interval == "step" and self._is_scheduler():
            self.schedule.step()

    def on_epoch_end(self, epoch, logs=None):
        if self.interval == "epoch" and self._is_scheduler():
            if type(self.schedule).__name__ == "ReduceLROnPlateau":
                self.schedule.step((logs or {})[self.monitor])
            else:
                self.schedule.step()


class TerminateOnNaN(Callback):
    """Check the loss after every step (one device-to-host read per step) and stop at the first
    non-finite value.  Without it the trainer checks at every log interval."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        parallel = getattr(self.trainer, "parallel", None)
        if loss is not None and parallel is not None and parallel.active:  # every rank decides on the mean
            loss = type(loss)(parallel.mean(loss.data))
        if loss is not None and not math.isfinite(float(loss.item() if hasattr(loss, "item") else loss)):
            self.trainer.nonfinite(batch, float(loss.item()))


class CSVLogger(Callback):
    """One row per epoch of the epoch logs, written (and flushed) as each epoch ends (on rank 0
    alone under a launcher)."""

    rank_zero_only = True

    def __init__(self, filename, separator=",", append=False):
        self.filename, self.separator, self.append = str(filename), separator, append

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer, self.keys, self.header_done = None, None, exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self.writer = csv.writer(self.file, delimiter=self.separator)
            if not self.header_done:
                self.writer.writerow(["epoch", *self.keys])
        self.writer.writerow([epoch, *(logs.get(k, "") for k in self.keys)])
        self.file.flush()

    def on_train_end(self, logs=None):
        self.file.close()


class BackupAndRestore(Callback):
    """Keep a resumable backup in ``backup_dir``: after each epoch (or every ``save_freq`` steps)
    and when training is interrupted (Ctrl-C).  A new ``fit`` with the same callback resumes
    from it exactly (weights, optimizer, scheduler, RNG and data order); a run that finishes
    deletes it unless ``delete_checkpoint=False``."""

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"save_freq must be 'epoch' or a positive number of steps, got {save_freq!r}")
        self.dir = pathlib.Path(backup_dir)
        self.save_freq, self.delete_checkpoint = save_freq, delete_checkpoint

    @property
    def path(self):
        return self.dir / "backup.safetensors"

    def on_train_begin(self, logs=None):
        if self.path.exists():
            self.trainer.restore(self.path)

    def _save(self, epoch):
        from ..checkpoint import NonFiniteWeightsError
        if not self.trainer.bad_loss:
            try:
                self.trainer.save_checkpoint(self.path, epoch=epoch, resumable=True)
            except NonFiniteWeightsError as e:
                _refused(self, e)

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq != "epoch" and self.trainer.global_step % self.save_freq == 0:
            self._save(self.trainer.epoch)  # mid-epoch: the loader remembers the position

    def on_epoch_end(self, epoch, logs=None):
        if _finite(logs):
            self._save(epoch + 1)

    def on_train_end(self, logs=None):
        if self.trainer.interrupted:
            self._save(self.trainer.epoch)
        elif self.delete_checkpoint and not self.trainer.bad_loss and self.path.exists():
            self.path.unlink(missing_ok=True)  # several ranks may get here
            try:  # the folder too, when nothing else is in it (Keras removes it)
                self.dir.rmdir()
            except OSError:
                pass


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, **hooks):
        names = {"on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
                 "on_train_batch_begin", "on_train_batch_end"}
        unknown = set(hooks) - names
        if unknown:
            raise TypeError(f"LambdaCallback: unknown hooks {sorted(unknown)}; expected some of {sorted(names)}")
        for name, fn in hooks.items():
            if fn is not None:
                setattr(self, name, fn)
