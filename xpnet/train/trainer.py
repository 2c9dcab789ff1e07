"""The Trainer: Keras's ``fit``/``evaluate``/``predict`` over PyTorch-style models.

The training step stays on the device: losses and metrics are accumulated
there and read back once per log interval (for the progress line and the
non-finite check) and once per epoch.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
import traceback
import warnings

from .. import backend as B
from ..amp import GradScaler, autocast
from ..autograd import Tensor, no_grad
from ..autograd.functions import concat
from ..data import ArrayDataset, DataLoader
from .callbacks import Callback, History
from .distributed import DataParallel
from .metrics import get_metric
from .progress import Progress

__all__ = ["Trainer", "NonFiniteLoss"]


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite."""


def _pick_backend(device, backend):
    """The Backend to train on and the one-line announcement of it."""
    if backend is None and device in (None, "auto"):
        b = B.get_backend("auto")
        if b.name == "numpy":
            return b, "CUDA not available: training on numpy / cpu"
        return b, f"Training on {B.describe(b)}{B.matmul_precision_note(b)}"
    if isinstance(backend, B.Backend):
        b = backend
    else:
        name = backend or ("cupy" if str(device).startswith("cuda") else "numpy")
        b = B.get_backend(name, None if device in (None, "auto") else device)
    return b, f"Training on {B.describe(b)}{B.matmul_precision_note(b)}"


def _loss_fn(loss):
    """A loss given as a callable or by name (PyTorch's and Keras's names; the cross entropies
    take logits, as PyTorch's: a model ends with Linear, not Softmax)."""
    if loss is None or callable(loss):
        return loss
    from ..nn import functional as F
    table = {"cross_entropy": F.cross_entropy, "categorical_crossentropy": F.cross_entropy,
             "sparse_categorical_crossentropy": F.cross_entropy, "mse": F.mse_loss, "mean_squared_error": F.mse_loss,
             "mae": F.l1_loss, "mean_absolute_error": F.l1_loss, "l1": F.l1_loss,
             "bce": F.binary_cross_entropy, "binary_crossentropy": F.binary_cross_entropy_with_logits,
             "bce_with_logits": F.binary_cross_entropy_with_logits, "nll": F.nll_loss, "huber": F.huber_loss,
             "smooth_l1": F.smooth_l1_loss, "kl_div": F.kl_div, "hinge": F.hinge_loss}
    if loss not in table:
        raise ValueError(f"unknown loss {loss!r}: pass a callable or one of {', '.join(table)}")
    return table[loss]


_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad",
               "adadelta": "Adadelta", "nadam": "NAdam", "lion": "Lion"}


def _optimizer(optimizer, model):
    """An optimizer given as an object or by name (Keras's habit): the class's defaults, PyTorch's."""
    if not isinstance(optimizer, str):
        return optimizer
    from .. import optim
    name = _OPTIMIZERS.get(optimizer.lower())
    if name is None:
        raise ValueError(f"unknown optimizer {optimizer!r}: pass an optimizer or one of {', '.join(_OPTIMIZERS)}")
    return getattr(optim, name)(model.parameters())


def _check_history(meta):
    """Refuse a checkpoint whose saved History or running epoch loss is malformed (before
    anything is loaded)."""
    meta = meta or {}
    history, epochs = meta.get("history", {}), meta.get("history_epochs", [])
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        raise ValueError("metadata 'history' is not a dict of lists of per-epoch values")
    if not isinstance(epochs, list) or not all(type(e) is int for e in epochs):
        raise ValueError("metadata 'history_epochs' is not a list of epoch numbers")
    loss = meta.get("epoch_loss", [0.0, 0])
    if (not isinstance(loss, list) or len(loss) != 2 or type(loss[1]) is not int or loss[1] < 0
            or not isinstance(loss[0], (int, float)) or isinstance(loss[0], bool)):
        raise ValueError("metadata 'epoch_loss' is not [sum of the epoch's step losses, number of steps]")


def _precision(precision):
    """Lightning's spelling: "32-true" (or 32, "32"), "16-mixed" (autocast to float16 and a
    GradScaler), "bf16-mixed" (autocast to bfloat16) -> (name, autocast dtype, scaler)."""
    p = str(precision)
    if p in ("32", "32-true"):
        return "32-true", None, None
    if p == "16-mixed":
        return p, "float16", GradScaler()
    if p == "bf16-mixed":
        return p, "bfloat16", None
    raise ValueError(f"Trainer: precision={precision!r} is not supported: expected '32-true', '16-mixed' or "
                     "'bf16-mixed'")



class _EpochLoss:
    """The running sum of an epoch's step losses: ``pending`` device scalars not read back yet,
    ``total`` and ``count`` of those read.  ``mean`` is NaN before any step (an epoch resumed
    after its last step from an older backup without the sum)."""

    def __init__(self, total: float = 0.0, count: int = 0):
        self.pending, self.total, self.count = [], total, count

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan


class Trainer:
    """Trains ``model`` with ``loss`` and ``optimizer`` on the best device.

    ``device="auto"`` picks CuPy on a CUDA GPU when there is one, else NumPy;
    ``backend``/``device`` name one explicitly (``backend="torch", device="cuda"``).
    The model is moved there.  ``loss`` is a callable or a name (``"cross_entropy"`` or
    ``"categorical_crossentropy"``, ``"mse"``, ``"mae"``, ``"binary_crossentropy"``, ...);
    ``optimizer`` an optimizer or a name (``"adam"``, ``"sgd"``, ``"adamw"``, ``"rmsprop"``, ...)
    made with the class's defaults (PyTorch's: SGD's lr is 1e-3).  Without loss and optimizer
    the Trainer serves :meth:`predict` (``fit`` needs both, ``evaluate`` the loss).  ``metrics`` are names (``"accuracy"``, ``"top5"``,
    ``"f1"``, ``"mse"``, ...) or Metric objects.  ``scheduler`` (from
    :mod:`xpnet.optim.lr_scheduler`) steps every epoch (``scheduler_interval="step"``:
    every optimizer step; ReduceLROnPlateau gets ``val_loss``, else ``loss``).
    ``clip_grad_norm`` clips before each update; ``accumulate`` sums the gradients
    of that many batches per update.  ``compile=True`` runs the training step (forward,
    backward, clipping, update) and the evaluation step through :func:`xpnet.compile`:
    recorded once per batch shape, then replayed (the same numbers; see there).
    ``precision`` (Lightning's spelling): ``"32-true"``; ``"16-mixed"`` runs the forward under
    ``xpnet.autocast(float16)`` with a :class:`xpnet.GradScaler` (``scaler``, default
    ``GradScaler()``; its state goes in checkpoints); ``"bf16-mixed"`` under
    ``autocast(bfloat16)`` without a scaler.  ValueError for another precision, or a ``scaler``
    with a precision that has none.

    When a step runs out of memory, ``fit``/``evaluate``/``predict``/``lr_range_test`` raise
    :class:`xpnet.OutOfMemoryError` (a MemoryError) saying what to try, from the library's error.
    No checkpoint is written for the failed step; the weights and optimizer state are those of
    the last completed update (the gradients, also those accumulated for an unfinished update,
    are dropped), unless the memory ran out inside the optimizer's update itself, which the
    message then says.

    Under a launcher (``mpiexec -n N python -m mpi4py``, ``torchrun``) the same code trains
    data-parallel (:mod:`xpnet.train.distributed`): the model is wrapped in
    DistributedDataParallel, training and validation data are sharded (``batch_size`` is
    per process), logged losses and metrics are global, a non-finite loss stops every rank,
    and only rank 0 prints and writes files (the others wait at a barrier after a save).
    """

    def __init__(self, model, loss=None, optimizer=None, metrics=(), *, device="auto", backend=None, scheduler=None,
                 scheduler_interval="epoch", clip_grad_norm=None, accumulate=1, num_classes=None, verbose=1,
                 compile=False, precision="32-true", scaler=None):
        if accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {accumulate}")
        self.precision, self._autocast, self.scaler = _precision(precision)
        if scaler is not None:
            if self.scaler is None:
                raise ValueError(f"Trainer: a scaler is used with precision='16-mixed' only, got "
                                 f"precision={self.precision!r}")
            if not isinstance(scaler, GradScaler):
                raise TypeError(f"Trainer: scaler must be an xpnet.GradScaler, got {type(scaler).__name__}")
            self.scaler = scaler
        self.backend, self.device_line = _pick_backend(device, backend)
        self.parallel = DataParallel(self.backend, device)  # under a launcher: one device per process
        if self.parallel.backend is not self.backend:
            self.backend, self.device_line = self.parallel.backend, f"Training on {B.describe(self.parallel.backend)}"
        self.device_line += self.parallel.note()
        self.model = model.to(self.backend)
        self._module = self.parallel.wrap(self.model)  # what the step calls: the model, or its DDP wrapper
        self.loss_fn = _loss_fn(loss)
        self.optimizer = _optimizer(optimizer, self.model)
        self.metrics = [get_metric(m, num_classes) for m in metrics]
        self.scheduler, self.scheduler_interval = scheduler, scheduler_interval
        self.clip_grad_norm, self.accumulate = clip_grad_norm, accumulate
        self.verbose = verbose if self.parallel.is_writer else 0
        self.epoch, self.global_step, self.step_in_epoch = 0, 0, 0
        self._running, self._resumed_loss = None, (0.0, 0)  # the current epoch's loss (_EpochLoss)
        self.history = History()
        self.loader = None  # the training DataLoader of the latest fit
        self.results = {}  # the latest non-scalar metric values, e.g. a confusion matrix
        self.stop_reason = None
        self.interrupted = self.bad_loss = False
        self._announced = False
        self._updating = False  # inside optimizer.step(): an error there may leave it half done
        self._window = None  # the number of batches in the current accumulation window (set by fit)
        self._compiled = None
        if compile and self.parallel.active:
            warnings.warn("Trainer(compile=True) under a launcher: the steps run eagerly (the gradient "
                          "all-reduce of several processes is not recorded by xpnet.compile yet)", stacklevel=2)
        elif compile and self.precision != "32-true":
            warnings.warn(f"Trainer(compile=True, precision={self.precision!r}): the steps run eagerly (mixed "
                          "precision is not recorded by xpnet.compile yet)", stacklevel=2)
        elif compile:
            from ..compile import compile as _compile
            roots = [r for r in (self.model, self.optimizer) if r is not None] + (
                [self.loss_fn] if hasattr(self.loss_fn, "parameters") else [])
            self._compiled = (_compile(self._traced_train_step, state=roots),
                              _compile(self._traced_eval_step, state=roots))

    # ------------------------------------------------------------------ data
    def _loader(self, x, y=None, batch_size=32, shuffle=False, seed=None):
        if isinstance(x, DataLoader):
            loader = x
        else:
            dataset = x if y is None and hasattr(x, "__getitem__") and hasattr(x, "__len__") and not hasattr(x, "shape") \
                else ArrayDataset(x, y) if y is not None else ArrayDataset(x)
            loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed)
        if loader.backend is None:
            loader.backend = self.backend
        return loader

    @staticmethod
    def _split(batch):
        if isinstance(batch, Tensor):
            return batch, None
        if len(batch) == 1:
            return batch[0], None
        return batch[0], batch[1]

    # ------------------------------------------------------------------ messages
    def log(self, message: str):
        if self.verbose:
            print(message, flush=True)

    def stop(self, reason: str):
        """Ask ``fit`` to stop after the current epoch (callbacks use it)."""
        self.stop_reason = reason

    def nonfinite(self, step: int, value: float):
        """Stop at once: the loss of ``step`` (in this epoch) was ``value``."""
        self.bad_loss = True
        self.stop_reason = (f"non-finite loss ({value}) at epoch {self.epoch + 1}, step {step + 1}: "
                            "training stopped; weights after that step were not saved")
        raise NonFiniteLoss(self.stop_reason)

    # ------------------------------------------------------------------ the step
    def _update(self):
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # before clipping
        if self.clip_grad_norm is not None:
            from ..nn.utils import clip_grad_norm_
            clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        self._updating = True
        if self.scaler is None:
            self.optimizer.step()
        else:  # precision="16-mixed": skip a step with inf/NaN gradients, then adapt the scale
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self._updating = False
        self.optimizer.zero_grad()
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()

    def _traced_train_step(self, x, y, update: bool, window: int):
        """The part of :meth:`train_step` that ``compile=True`` records and replays (``window``: the
        batches of this update window, a Python value: the short last window of an epoch is its own trace)."""
        out = self.model(x)
        loss = self.loss_fn(out, y) if y is not None else self.loss_fn(out)
        (loss * (1.0 / window) if window > 1 else loss).backward()
        if update:
            if self.clip_grad_norm is not None:
                from ..nn.utils import clip_grad_norm_
                clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad()
        return loss, out

    def _traced_eval_step(self, x, y):
        out = self.model(x)
        return out, (self.loss_fn(out, y) if y is not None else self.loss_fn(out))

    def train_step(self, x, y, last: bool):
        """Forward, backward and (every ``accumulate`` batches, or at the end) an update.
        Returns the loss tensor (on the device) and the outputs."""
        if self._compiled is not None:
            self.step_in_epoch += 1
            update = self.step_in_epoch % self.accumulate == 0 or last
            loss, out = self._compiled[0](x, y, update, self._window or self.accumulate)
            if update and self.scheduler is not None and self.scheduler_interval == "step":
                self.scheduler.step()
            self.global_step += 1
            return loss, out
        update = (self.step_in_epoch + 1) % self.accumulate == 0 or last
        with self.parallel.no_sync(not update):  # gradients are averaged over ranks on updates only
            with autocast(dtype=self._autocast or "bfloat16", enabled=self._autocast is not None):
                out = self._module(x)
                loss = self.loss_fn(out, y) if y is not None else self.loss_fn(out)
            scaled = loss if self.scaler is None else self.scaler.scale(loss)
            # the mean over the batches of an update window; the last window of an epoch may be shorter
            window = self._window or self.accumulate
            (scaled * (1.0 / window) if window > 1 else scaled).backward()
        self.step_in_epoch += 1
        if update:
            self._update()
        self.global_step += 1
        return loss, out

    # ------------------------------------------------------------------ fit
    def fit(self, x, y=None, *, epochs=1, batch_size=32, validation_data=None, validation_split=0.0, callbacks=(),
            shuffle=True, seed=None, initial_epoch=0, log_every=None):
        """Train for ``epochs`` epochs and return the :class:`History`.

        ``x`` is an array (with targets ``y``), a Dataset or a DataLoader;
        ``validation_data`` is ``(x_val, y_val)``, a Dataset or a DataLoader.
        ``validation_split`` (arrays only, as Keras) holds out that fraction of ``x``/``y``,
        the last samples before any shuffling, for validation; ``validation_data`` wins
        when both are given.
        ``log_every`` steps (default: about 20 times per epoch) the loss is
        read back to update the progress line and checked for NaN/Inf.
        Ctrl-C stops after the current step; the History so far is kept.
        """
        if self.optimizer is None or self.loss_fn is None:
            raise ValueError("fit needs a loss and an optimizer: Trainer(model, loss, optimizer), e.g. "
                             "Trainer(model, 'cross_entropy', 'adam')")
        if validation_split and validation_data is None:
            x, y, validation_data = self._split_off(x, y, validation_split)
        loader = self.parallel.shard(self._loader(x, y, batch_size, shuffle, seed))
        val_loader = None
        if validation_data is not None:
            val_loader = self.parallel.shard(self._loader(*validation_data, batch_size=batch_size) if isinstance(
                validation_data, tuple) else self._loader(validation_data, batch_size=batch_size))
        if initial_epoch and loader.epoch != initial_epoch and getattr(loader, "_resume", None) is None:
            loader.set_epoch(initial_epoch)  # the data order that epoch has in an uninterrupted run
        self.loader, self.epoch = loader, initial_epoch
        self.stop_reason, self.interrupted, self.bad_loss = None, False, False
        progress = Progress(self.verbose, epochs)
        names = ("loss", *(m.name for m in self.metrics))  # the epoch logs, for callbacks to check up front
        self.log_names = (*names, *(f"val_{k}" for k in names if val_loader is not None), "lr")
        cbs = [self.history, *self.parallel.callbacks(callbacks)]  # file writers on rank 0 only
        for cb in cbs:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances, got {type(cb).__name__}")
            cb.set_trainer(self)
        if not self._announced:
            self.log(self.device_line)
            self._announced = True
        restore_sigint = self._catch_sigint()
        logs = {}
        try:
            with self._out_of_memory("fit", loader, on_error=lambda: self._abandon_step(progress)), \
                    B.using(self.backend):
                for cb in cbs:
                    cb.on_train_begin()
                while self.epoch < epochs and self.stop_reason is None and not self.interrupted:
                    logs = self._epoch(loader, val_loader, cbs, progress, log_every)
                    if logs is None:
                        break
                    self.epoch += 1
        finally:
            restore_sigint()
        if self.interrupted and self.stop_reason is None:
            self.stop_reason = f"interrupted (Ctrl-C) in epoch {self.epoch + 1}"
        for cb in cbs:
            cb.on_train_end(logs)
        self.history.stop_reason = self.stop_reason
        if self.stop_reason:
            self.log(f"Stopped: {self.stop_reason}")
        return self.history

    @staticmethod
    def _split_off(x, y, fraction):
        """Keras's ``validation_split``: the last ``fraction`` of the samples, before shuffling."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation_split must be in (0, 1), got {fraction}")
        if not hasattr(x, "shape") or (y is not None and not hasattr(y, "shape")):
            raise ValueError("validation_split needs arrays x and y (as Keras): for a Dataset or a DataLoader "
                             "pass validation_data instead")
        n = x.shape[0]
        at = int(math.ceil(n * (1.0 - fraction)))  # Keras's split point
        if at == 0 or at == n:
            raise ValueError(f"validation_split={fraction} of {n} samples leaves no "
                             f"{'training' if at == 0 else 'validation'} samples")
        return x[:at], (None if y is None else y[:at]), ((x[at:], y[at:]) if y is not None else (x[at:],))

    def _epoch(self, loader, val_loader, cbs, progress, log_every):
        epoch = self.epoch
        for cb in cbs:
            cb.on_epoch_begin(epoch)
        self.model.train()
        for m in self.metrics:
            m.reset()
        n_batches = len(loader)
        every = log_every or max(1, n_batches // 20)
        resume = getattr(loader, "_resume", None)  # set when a checkpoint restored the loader mid-epoch
        start_step = self.step_in_epoch = resume[1] if resume else 0
        progress.start_epoch(epoch, n_batches, start_step)
        # the epoch's loss so far: a mid-epoch backup carries it, so the resumed epoch's mean covers every step
        running = self._running = _EpochLoss(*(self._resumed_loss if resume else (0.0, 0)))
        self._resumed_loss, t0 = (0.0, 0), time.perf_counter()
        try:
            for i, batch in enumerate(loader, start=start_step):
                xb, yb = self._split(batch)
                for cb in cbs:
                    cb.on_train_batch_begin(i)
                self._window = min(self.accumulate, n_batches - i // self.accumulate * self.accumulate)
                loss, out = self.train_step(xb, yb, last=i == n_batches - 1)
                running.pending.append(loss.data)
                with no_grad():
                    for m in self.metrics:
                        m.update(out, yb)
                for cb in cbs:
                    cb.on_train_batch_end(i, {"loss": loss})
                if len(running.pending) >= every or i == n_batches - 1 or self.interrupted:
                    self._drain(running, i)
                    progress.update(i + 1, running.mean, time.perf_counter() - t0)
                if self.interrupted:
                    break
        except NonFiniteLoss:
            progress.close()
            return None
        if self.interrupted:
            progress.close()
            return None
        logs = {"loss": running.mean, **self._scalars(self.metrics)}
        if val_loader is not None:
            logs.update({f"val_{k}": v for k, v in self.evaluate(val_loader, _step="fit (validation)").items()})
        logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            if type(self.scheduler).__name__ == "ReduceLROnPlateau":
                self.scheduler.step(logs.get("val_loss", logs["loss"]))
            else:
                self.scheduler.step()
        progress.end_epoch(logs, time.perf_counter() - t0)
        for cb in cbs:
            cb.on_epoch_end(epoch, logs)
        return logs

    def _drain(self, running, last_step):
        """Read the pending losses back in one transfer into ``running``; stop at the first
        non-finite one."""
        if not running.pending:
            return
        xp = self.backend.xp
        values = B.to_numpy(self.parallel.mean(xp.stack([xp.reshape(v, ()) for v in running.pending]))).tolist()
        running.pending = []
        first = last_step - len(values) + 1
        for k, v in enumerate(values):
            if not math.isfinite(v):
                self.nonfinite(first + k, v)
        running.total, running.count = running.total + sum(values), running.count + len(values)

    def _catch_sigint(self):
        """Turn Ctrl-C into 'stop after this step' while fit runs (main thread only)."""
        if threading.current_thread() is not threading.main_thread() or self.parallel.active:
            return lambda: None  # under a launcher Ctrl-C ends the job (ranks would stop at different steps)

        def handler(signum, frame):
            if self.interrupted:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self.interrupted = True
            print("\nInterrupted: stopping after the current step (Ctrl-C again to abort)", file=sys.stderr)

        previous = signal.signal(signal.SIGINT, handler)
        return lambda: signal.signal(signal.SIGINT, previous)

    # ------------------------------------------------------------------ out of memory
    @contextlib.contextmanager
    def _out_of_memory(self, step: str, loader, on_error=None):
        """Turn an array library's out-of-memory error in the block into :class:`xpnet.OutOfMemoryError`
        (saying what to try) after ``on_error()``.  The failed step's locals are dropped from the
        traceback first, so that its arrays are freed (a retry in this process can use the memory)."""
        try:
            yield
        except Exception as e:
            if not B.is_out_of_memory(e):
                raise
            cause = e
            while cause is not None:
                traceback.clear_frames(cause.__traceback__)
                cause = cause.__cause__
            nested = isinstance(e, B.OutOfMemoryError)  # raised by a nested step (validation inside fit)
            message = None if nested else self._out_of_memory_message(step, loader, e)
            if on_error is not None:
                on_error()
            if nested:
                raise
            raise B.OutOfMemoryError(message) from e

    def _out_of_memory_message(self, step: str, loader, error) -> str:
        bs = loader.batch_size or len(loader.dataset)
        half = bs // 2
        gpu = B.device_name(self.backend.device) != "cpu"
        tries = [f"batch_size={half}"] if half else []
        if step == "fit" and half:
            acc = self.accumulate * 2
            tries.append(f"batch_size={half} with Trainer(accumulate={acc}) for an effective batch of {half * acc} "
                         f"(now {bs * self.accumulate})")
        tries += ["a smaller model", "float16/bfloat16 weights (model.to('bfloat16')) where the backend supports them",
                  "freeing GPU memory that other processes hold (nvidia-smi lists them)" if gpu
                  else "freeing host memory that other programs hold"]
        if step != "fit":
            state = "nothing was changed"
        elif self._updating:
            if any(self.optimizer._foreach(g, g["params"][0].data) for g in self.optimizer.param_groups
                   if g["params"]):
                tries.insert(0, "the optimizer with foreach=False (its one-pass update holds a second copy "
                                "of the parameters and their state)")
            state = ("it ran out inside the optimizer update, so some parameters may already be updated: "
                     "reload the last checkpoint before going on")
        else:
            state = "the weights and optimizer state are those of the last completed update (gradients cleared)"
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        return (f"{step} ran out of memory on {B.describe(self.backend)} with batch_size={bs} "
                f"({type(error).__name__}: {first}). Try {'; or '.join(tries)}. "
                f"No checkpoint was written for the failed step; {state}.")

    def _abandon_step(self, progress):
        """After an out-of-memory error in ``fit``: end the progress line, drop the gradients."""
        progress.close()
        self.optimizer.zero_grad()
        self._updating = False
        self.stop_reason = f"out of memory in epoch {self.epoch + 1}"

    # ------------------------------------------------------------------ evaluate / predict
    def evaluate(self, x, y=None, *, batch_size=256, _step="evaluate"):
        """Mean loss and metrics over ``x`` (no gradients, eval mode) as a dict of Python floats."""
        if self.loss_fn is None:
            raise ValueError("evaluate needs a loss: Trainer(model, loss, ...), e.g. Trainer(model, 'cross_entropy')")
        loader = self.parallel.shard(self._loader(x, y, batch_size))
        metrics = [type(m)(m.num_classes) if hasattr(m, "num_classes") else (
            type(m)(m.k) if hasattr(m, "k") else type(m)()) for m in self.metrics]
        self.model.eval()
        total, n = None, 0
        try:
            with self._out_of_memory(_step, loader), B.using(self.backend), no_grad():
                for batch in loader:
                    xb, yb = self._split(batch)
                    if self._compiled is not None:
                        out, loss = self._compiled[1](xb, yb)
                    else:
                        out = self.model(xb)
                        loss = self.loss_fn(out, yb) if yb is not None else self.loss_fn(out)
                    size = xb.shape[0]
                    total = loss.data * size if total is None else total + loss.data * size
                    n += size
                    for m in metrics:
                        m.update(out, yb)
        finally:
            self.model.train()
        if self.parallel.active:  # the sums over every rank's shard
            total = self.parallel.mean(total) * self.parallel.world
            n = self.parallel.sum_number(n)
        logs = {"loss": float(B.to_numpy(total)) / max(n, 1)}
        logs.update(self._scalars(metrics))
        return logs

    def _scalars(self, metrics) -> dict:
        """Scalar metric values for the logs; others (a confusion matrix) go to ``self.results``."""
        out = {}
        with self.parallel.global_metrics(metrics):
            values = [m.compute() for m in metrics]
        for m, value in zip(metrics, values):
            if isinstance(value, (int, float)):
                out[m.name] = float(value)
            else:
                self.results[m.name] = value
        return out

    def predict(self, x, *, batch_size=256):
        """The model's outputs for ``x``, concatenated over batches (eval mode, no gradients), as a
        NumPy array on the host (as Keras; one device-to-host copy at the end)."""
        loader = self._loader(x, None, batch_size)
        self.model.eval()
        try:
            with self._out_of_memory("predict", loader), B.using(self.backend), no_grad():
                outs = [self.model(self._split(batch)[0]) for batch in loader]
                out = concat(outs, axis=0) if len(outs) > 1 else outs[0]
                return B.to_numpy(out.data if isinstance(out, Tensor) else out)
        finally:
            self.model.train()

    # ------------------------------------------------------------------ learning-rate range test
    def lr_range_test(self, x, y=None, *, start_lr=1e-7, end_lr=10.0, num_steps=100, batch_size=32, seed=0,
                      diverge=4.0):
        """Train ``num_steps`` mini-batches with the learning rate growing geometrically from
        ``start_lr`` to ``end_lr`` and record the loss (as fastai's and Lightning's LR finder).
        Stops once the loss is non-finite or ``diverge`` times its minimum.  The model and the
        optimizer are put back as they were.  Returns ``(lrs, losses, suggested_lr)``; plot it
        with :func:`xpnet.plot.plot_lr_range`.  Reads the loss every step (it must see the
        divergence): a diagnostic, not a training loop."""
        from ..plot import suggest_lr
        if not 0 < start_lr < end_lr:
            raise ValueError(f"lr_range_test: need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
        saved_model = {k: B.to_numpy(v).copy() for k, v in self.model.state_dict().items()}
        saved_opt = self.optimizer.state_dict()
        saved_lrs = [g["lr"] for g in self.optimizer.param_groups]
        loader = self._loader(x, y, batch_size, shuffle=True, seed=seed)
        factor = (end_lr / start_lr) ** (1.0 / max(num_steps - 1, 1))
        lrs, losses, batches = [], [], iter(())
        try:
            with self._out_of_memory("lr_range_test", loader), B.using(self.backend):
                self.model.train()
                for i in range(num_steps):
                    lr = start_lr * factor ** i
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    try:
                        batch = next(batches)
                    except StopIteration:
                        batches = iter(loader)
                        batch = next(batches)
                    xb, yb = self._split(batch)
                    loss = self.loss_fn(self.model(xb), yb) if yb is not None else self.loss_fn(self.model(xb))
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()
                    value = float(loss.item())
                    lrs.append(lr)
                    losses.append(value)
                    if not math.isfinite(value) or value > diverge * min(losses):
                        break
        finally:
            self.model.load_state_dict(saved_model)
            self.optimizer.load_state_dict(saved_opt)
            for group, lr in zip(self.optimizer.param_groups, saved_lrs):
                group["lr"] = lr
            self.optimizer.zero_grad()
        return lrs, losses, suggest_lr(lrs, losses)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path, epoch, weights_only=False, resumable=False):
        """Write the model (and unless ``weights_only`` the optimizer, scheduler, GradScaler
        (``precision="16-mixed"``), RNG and history; with ``resumable`` the data order too) to
        ``path`` atomically.  ``epoch`` is
        the number of finished epochs, i.e. the epoch to run next."""
        from .. import checkpoint
        result, running = None, self._running
        mid_epoch = resumable and not weights_only and running is not None and epoch == self.epoch
        if mid_epoch:  # every rank: the read-back averages the losses over the ranks (a collective)
            self._drain(running, self.step_in_epoch - 1)
        try:
            if self.parallel.is_writer:  # under a launcher rank 0 writes; every rank waits for the file
                if weights_only:
                    result = checkpoint.save_weights(path, self.model)
                else:
                    meta = {"history": self.history.history, "history_epochs": self.history.epoch}
                    if mid_epoch:
                        meta["epoch_loss"] = [running.total, running.count]
                    result = checkpoint.save(path, self.model, self.optimizer, self.scheduler, epoch=epoch,
                                             step=self.global_step, loader=self.loader if resumable else None,
                                             metadata=meta, scaler=self.scaler)
        finally:
            self.parallel.after_save()  # also when the save failed, so that no rank is left waiting
        return result

    def restore(self, path):
        """Load a checkpoint written by :meth:`save_checkpoint` and continue from it (with
        ``precision="16-mixed"`` the GradScaler's scale and growth tracker too: a file without
        them is a CheckpointError, and nothing is changed)."""
        from .. import checkpoint
        info = checkpoint.load(path, self.model, self.optimizer, self.scheduler, loader=self.loader,
                               check=_check_history, scaler=self.scaler)
        self.epoch = info["epoch"] or 0
        self.global_step = info["step"] or 0
        meta = info.get("metadata") or {}
        self.history.history = {k: list(v) for k, v in meta.get("history", {}).items()}
        self.history.epoch = list(meta.get("history_epochs", []))
        total, count = meta.get("epoch_loss", (0.0, 0))
        self._resumed_loss = (float(total), int(count))
        self.log(f"Resumed from {path}: epoch {self.epoch + 1}, step {self.global_step}")
        return info
