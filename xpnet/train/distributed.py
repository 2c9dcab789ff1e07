"""What the Trainer does differently under a launcher (mpiexec, torchrun); nothing in one process.

One object per Trainer, :class:`DataParallel`, holds every distributed decision so that the
Trainer only calls it at a few points: the device per local rank, the DDP wrapper, sharded
loaders, global losses and metrics, rank-0-only output, and the barrier after a save.
"""

from __future__ import annotations

import contextlib

from .. import backend as B
from .. import distributed as dist
from ..distributed.launch import detect

__all__ = ["DataParallel"]


class DataParallel:
    """``world``, ``rank`` and the helpers the Trainer calls.  ``is_writer`` is True on rank 0
    (and in a single process): only it prints, writes checkpoints and logs."""

    def __init__(self, backend, device):
        self.launch = detect()
        self.ddp = None
        if self.launch.kind is None:
            self.engine, self.world, self.rank, self.backend = None, 1, 0, backend
            return
        # One GPU per process: a CUDA device left to "auto"/"cuda" becomes cuda:<local rank>.
        if B.device_name(backend.device) != "cpu" and str(device) in ("auto", "None", "cuda") \
                and self.launch.local_rank > 0:
            backend = B.get_backend(backend.name, f"cuda:{self.launch.local_rank}")
        self.backend = backend
        self.engine = dist.init(backend)
        self.world, self.rank = self.engine.world_size, self.engine.rank

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def note(self) -> str:
        return (f" (rank {self.rank} of {self.world}, {self.engine.name}, batch_size per process)"
                if self.active else "")

    def wrap(self, model):
        """The module the training step calls: a DistributedDataParallel around ``model``
        (or ``model`` itself when it already is one, or in a single process)."""
        if not self.active:
            return model
        if isinstance(model, dist.DistributedDataParallel):
            self.ddp = model
        else:
            self.ddp = dist.DistributedDataParallel(model)
        return self.ddp

    def no_sync(self, skip: bool):
        """No gradient averaging for this backward (an accumulation step that does not update)."""
        return self.ddp.no_sync() if skip and self.ddp is not None else contextlib.nullcontext()

    def shard(self, loader):
        """Give ``loader`` this rank's shard (unless it already has one), with rank 0's seed."""
        if not self.active or loader.num_replicas is not None:
            return loader
        loader.num_replicas, loader.rank = self.world, self.rank
        seed = B.as_array([loader.seed], dtype="int64", backend=B.get_backend("numpy"))
        seed = int(B.to_numpy(self.engine.broadcast(seed, 0))[0])
        if seed != loader.seed and getattr(loader, "_resume", None) is None:
            loader.seed = seed
            loader.set_epoch(loader.epoch)
        return loader

    def mean(self, x):
        """The mean over ranks of array ``x`` (floating), ``x`` itself in one process."""
        return self.engine.all_reduce(x, "sum") / self.world if self.active else x

    def sum_number(self, v):
        """The sum over ranks of the Python number ``v``."""
        if not self.active:
            return v
        a = B.as_array([v], dtype="float64" if isinstance(v, float) else "int64", backend=B.get_backend("numpy"))
        return type(v)(B.to_numpy(self.engine.all_reduce(a, "sum"))[0])

    @contextlib.contextmanager
    def global_metrics(self, metrics):
        """Inside, every metric's state is the sum of every rank's (so ``compute()`` gives the
        global value: accuracy over all samples, F1 from the summed confusion matrix)."""
        if not self.active:
            yield
            return
        saved = [m.state for m in metrics]
        for m in metrics:
            if m.state is not None:
                m.state = tuple(self.sum_number(v) if isinstance(v, (int, float)) else
                                self.engine.all_reduce(v, "sum") for v in m.state)
        try:
            yield
        finally:
            for m, s in zip(metrics, saved):
                m.state = s

    def callbacks(self, callbacks):
        """The callbacks this rank runs: those marked ``rank_zero_only`` (file writers such
        as CSVLogger) run on rank 0 alone."""
        if not self.active or self.is_writer:
            return list(callbacks)
        return [cb for cb in callbacks if not getattr(cb, "rank_zero_only", False)]

    def after_save(self):
        """Every rank waits here until rank 0 has written the file."""
        if self.active:
            self.engine.barrier()
