"""Communication engines behind one small interface.

An engine moves raw arrays (never Tensors) between the processes of one job:
``all_reduce(x, op)`` (``op`` ``"sum"``, ``"max"`` or ``"min"``), ``broadcast(x, src)``,
``all_gather(x)`` (a list, one array per rank, in rank order) and ``barrier()``.  Each
returns new arrays on the input's library and device and leaves its input unchanged.
Everything above this interface (DDP, the sharded loader, SyncBatchNorm, the Trainer)
is engine-agnostic.

- :class:`LocalEngine`: one process; every collective is the identity.
- :mod:`.mpi`: MPI through mpi4py, for NumPy (zero-copy buffers), JAX, array-api-strict
  and CPU torch (host copies).
- :mod:`.nccl`: NCCL through ``cupy.cuda.nccl`` for CuPy arrays (the unique id is
  broadcast over MPI, as ChainerMN's ``pure_nccl`` communicator does).
- :mod:`.torch_dist`: ``torch.distributed`` (gloo for CPU tensors, nccl for CUDA tensors).

Only :mod:`.nccl` and :mod:`.torch_dist` import a concrete array library; the purity
test (tests/test_purity.py) allows exactly those two files.
"""

from __future__ import annotations

import os

__all__ = ["Engine", "LocalEngine", "OPS", "create"]

OPS = ("sum", "max", "min")


class Engine:
    """The interface.  ``rank``, ``world_size``, ``local_rank`` describe this process."""

    name = "engine"
    rank, world_size, local_rank = 0, 1, 0

    def all_reduce(self, x, op: str = "sum"):
        raise NotImplementedError

    def broadcast(self, x, src: int = 0):
        raise NotImplementedError

    def all_gather(self, x) -> list:
        raise NotImplementedError

    def barrier(self):
        raise NotImplementedError

    def abort(self, code: int = 1):
        """End every process of the job now (a failing rank must not leave the others waiting)."""
        os._exit(code)

    def shutdown(self):
        """Release the engine's resources (the process group); collectives fail afterwards."""

    def __repr__(self):
        return f"{type(self).__name__}(rank={self.rank}, world_size={self.world_size}, local_rank={self.local_rank})"


class LocalEngine(Engine):
    """One process (no launcher): rank 0 of 1; collectives return their input."""

    name = "local"

    def all_reduce(self, x, op="sum"):
        return x

    def broadcast(self, x, src=0):
        return x

    def all_gather(self, x):
        return [x]

    def barrier(self):
        pass


def create(launch, backend) -> Engine:
    """The engine for a :class:`~xpnet.distributed.launch.Launch` and the array library of
    ``backend``: torchrun -> torch.distributed; MPI launcher -> NCCL for CuPy, else MPI;
    no launcher -> :class:`LocalEngine`."""
    if launch.kind is None:
        return LocalEngine()
    if launch.kind == "torchrun":
        from .torch_dist import TorchEngine
        return TorchEngine(launch, backend)
    if backend is not None and backend.name == "cupy":
        from .nccl import NcclEngine
        return NcclEngine(device=backend.device)
    from .mpi import MpiEngine
    return MpiEngine()
