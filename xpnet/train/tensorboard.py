"""The ``TensorBoard`` callback: Keras's name, arguments and event layout, written by tensorboardX.

Event files go to ``log_dir/train`` and ``log_dir/validation`` (Keras's two runs), with
Keras's tags: ``epoch_loss``, ``epoch_<metric>`` (each run), ``epoch_learning_rate``
(train), ``batch_loss`` every ``update_freq`` steps when that is a number, and with
``histogram_freq`` a histogram of every parameter (its state-dict name) every that many
epochs.  ``tensorboard --logdir log_dir`` shows them.  Needs ``pip install 'xpnet[tensorboard]'``
(tensorboardX; the writer is a well-kept library, not a protobuf encoder of our own).
"""

from __future__ import annotations

import os

from .. import backend as B
from .callbacks import Callback

__all__ = ["TensorBoard"]


class TensorBoard(Callback):
    """Write loss, metrics, learning rate (and weight histograms) for TensorBoard.

    ``update_freq``: ``"epoch"`` (the default) writes once per epoch; a number ``n`` also
    writes ``batch_loss`` every ``n`` optimizer steps (each a device-to-host read of the loss);
    ``"batch"`` is ``1``.  ``histogram_freq``: every that many epochs (0: never) a histogram of
    each parameter.  Other Keras arguments (``write_graph``, ``write_images``, ``profile_batch``,
    ``embeddings_freq``, ...) are accepted and ignored.  Raises ImportError naming the extra to
    install when tensorboardX is missing; ValueError for a bad ``update_freq``/``histogram_freq``.
    Under a launcher only rank 0 writes.
    """

    rank_zero_only = True

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive number of steps, "
                             f"got {update_freq!r}")
        if not (isinstance(histogram_freq, int) and histogram_freq >= 0):
            raise ValueError(f"TensorBoard: histogram_freq must be a non-negative int, got {histogram_freq!r}")
        self.log_dir, self.histogram_freq, self.update_freq = os.fspath(log_dir), histogram_freq, update_freq
        self.writers = None

    def on_train_begin(self, logs=None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            raise ImportError(f"TensorBoard callback: tensorboardX is not installed ({e}): "
                              "pip install 'xpnet[tensorboard]'") from None
        self.writers = {run: SummaryWriter(os.path.join(self.log_dir, run)) for run in ("train", "validation")}

    def on_train_batch_end(self, batch, logs=None):
        step = self.trainer.global_step
        loss = (logs or {}).get("loss")
        if self.update_freq != "epoch" and loss is not None and step % self.update_freq == 0:
            value = loss.item() if hasattr(loss, "item") else loss
            self.writers["train"].add_scalar("batch_loss", float(value), step)

    def on_epoch_end(self, epoch, logs=None):
        train, val = self.writers["train"], self.writers["validation"]
        for name, value in (logs or {}).items():
            if not isinstance(value, (int, float)):
                continue
            if name == "lr":
                train.add_scalar("epoch_learning_rate", value, epoch)
            elif name.startswith("val_"):
                val.add_scalar("epoch_" + name[4:], value, epoch)
            else:
                train.add_scalar("epoch_" + name, value, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            for name, p in self.model.named_parameters():
                train.add_histogram(name, B.to_numpy(p.data).astype("float32"), epoch)
        train.flush()
        val.flush()

    def on_train_end(self, logs=None):
        if self.writers:
            for w in self.writers.values():
                w.close()
            self.writers = None
