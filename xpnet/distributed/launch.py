"""Which launcher started this process, read from the environment (no library is imported).

- ``mpiexec``/``mpirun``/``srun`` (MPICH/Hydra, Open MPI, Intel MPI, Slurm with PMI):
  ``PMI_RANK``/``PMI_SIZE``, ``OMPI_COMM_WORLD_RANK``/``OMPI_COMM_WORLD_SIZE``, ``PMIX_RANK``;
- ``torchrun`` / ``python -m torch.distributed.run``: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``
  with ``MASTER_ADDR`` (or ``TORCHELASTIC_RUN_ID``);
- neither, or an MPI launcher that started one process: one process (rank 0 of 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Launch", "detect"]

_MPI_RANK = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")
_MPI_SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
_MPI_LOCAL = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK")


@dataclass(frozen=True)
class Launch:
    """``kind`` is ``"mpi"``, ``"torchrun"`` or ``None`` (no launcher); ``rank``, ``world_size``
    and ``local_rank`` as the launcher set them (0, 1, 0 without one; -1 where it does not say)."""

    kind: str | None
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def _first(env, names):
    for n in names:
        if env.get(n, "") != "":
            return int(env[n])
    return None


def detect(env=None) -> Launch:
    """The :class:`Launch` described by ``env`` (default ``os.environ``).  torchrun's
    variables win over MPI's (torchrun may itself run inside an MPI or Slurm job)."""
    env = os.environ if env is None else env
    if env.get("TORCHELASTIC_RUN_ID") or ("RANK" in env and "WORLD_SIZE" in env and "MASTER_ADDR" in env):
        return Launch("torchrun", int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
                      int(env.get("LOCAL_RANK", 0)))
    rank = _first(env, _MPI_RANK)
    if rank is not None:
        size = _first(env, _MPI_SIZE)
        if size == 1:  # one task (e.g. `srun python train.py` in a Slurm job): no job to join
            return Launch(None)
        local = _first(env, _MPI_LOCAL)
        return Launch("mpi", rank, size if size is not None else -1, local if local is not None else -1)
    return Launch(None)
