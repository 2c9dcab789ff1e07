"""Data-parallel training across processes, GPUs and hosts (PyTorch's names).

Run the same script under a launcher and every process trains on its own shard of the
data; gradients are averaged by the engine that the array library already speaks:

    mpiexec -n 4 python -m mpi4py train.py            # NumPy / JAX / array-api-strict: MPI;
                                                      # CuPy: NCCL (bootstrapped over MPI)
    torchrun --nproc_per_node 4 train.py              # torch.distributed (gloo CPU, nccl CUDA)
    python train.py                                   # one process: rank 0 of 1

:func:`init` (idempotent; the Trainer calls it) reads the launcher from the environment
(:mod:`.launch`) and opens the engine (:mod:`.engines`).  Collectives take a Tensor (its
``.data`` is replaced by the result, as PyTorch's in-place collectives) or a raw array (a new
array is returned).  :class:`DistributedDataParallel` averages gradients after ``backward()``;
:class:`SyncBatchNorm` takes batch statistics over every rank.
"""

from __future__ import annotations

import sys
import time

from .. import backend as B
from ..autograd.tensor import Tensor
from .engines import OPS, Engine, LocalEngine
from .launch import Launch, detect

__all__ = ["init", "is_initialized", "get_rank", "get_world_size", "get_local_rank", "engine", "barrier",
           "all_reduce", "broadcast", "all_gather", "destroy_process_group", "DistributedDataParallel",
           "SyncBatchNorm", "Launch", "detect"]

_state = {"engine": None, "excepthook": None}


def init(backend=None) -> Engine:
    """Open the engine for this job (once; later calls return the same engine).

    ``backend`` (a name or :class:`~xpnet.backend.Backend`, default the current one) picks
    the engine under an MPI launcher: NCCL for ``cupy``, MPI otherwise; under torchrun
    the engine is torch.distributed.  Without a launcher this is a :class:`LocalEngine`
    (rank 0 of 1).  With more than one process it also gives every rank its own dropout
    stream (:func:`xpnet.backend.set_process_stream`) and makes an uncaught exception on
    any rank end the whole job (``MPI_Abort``; torchrun stops the other workers itself)
    instead of leaving the others waiting in a collective.

    Raises ImportError (naming what to install) when the launcher's library is missing.
    """
    if _state["engine"] is not None:
        return _state["engine"]
    if backend is not None and not isinstance(backend, B.Backend):
        backend = B.get_backend(backend)
    from .engines import create
    eng = create(detect(), backend or B.current_backend())
    _state["engine"] = eng
    if eng.world_size > 1:
        B.set_process_stream(eng.rank)
        _install_excepthook(eng)
    return eng


def _install_excepthook(eng):
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        sys.stderr.write(f"xpnet.distributed: rank {eng.rank} failed: ending the job\n")
        sys.stderr.flush()
        sys.stdout.flush()
        time.sleep(0.5)  # let the launcher forward the traceback before the job is torn down
        eng.abort(1)

    _state["excepthook"] = previous
    sys.excepthook = hook


def is_initialized() -> bool:
    """Whether :func:`init` has run in this process."""
    return _state["engine"] is not None


def engine() -> Engine:
    """The engine (opened by :func:`init` on first use)."""
    return _state["engine"] or init()


def destroy_process_group():
    """Close the engine; a later :func:`init` opens a new one.  The dropout stream and the
    exception hook go back to those of a single process."""
    eng, _state["engine"] = _state["engine"], None
    if eng is not None:
        eng.shutdown()
    if _state["excepthook"] is not None:
        sys.excepthook, _state["excepthook"] = _state["excepthook"], None
    B.set_process_stream(0)


def get_rank() -> int:
    """This process's rank in ``[0, world_size)``; 0 without a launcher."""
    return engine().rank


def get_world_size() -> int:
    """The number of processes in the job; 1 without a launcher."""
    return engine().world_size


def get_local_rank() -> int:
    """This process's rank among the processes of its host (the GPU it should use)."""
    return engine().local_rank


def barrier():
    """Wait until every process has reached this call."""
    engine().barrier()


def _raw(x, what):
    if isinstance(x, Tensor):
        return x.data
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x
    raise TypeError(f"xpnet.distributed.{what}: expected a Tensor or an array, got {type(x).__name__}")


def _result(x, array):
    if isinstance(x, Tensor):
        x.data = array
        return x
    return array


def all_reduce(tensor, op: str = "sum"):
    """Reduce ``tensor`` element-wise over all ranks: ``op`` is ``"sum"``, ``"mean"``, ``"max"``
    or ``"min"``.  A Tensor gets the result as its new ``.data`` (and is returned); an array
    gives a new array.  Every rank must call it with the same shape and dtype.

    Raises ValueError for an unknown op, TypeError for ``"mean"`` of an integer or boolean array.
    """
    x = _raw(tensor, "all_reduce")
    if op not in (*OPS, "mean"):
        raise ValueError(f"xpnet.distributed.all_reduce: op={op!r}: expected one of 'sum', 'mean', 'max', 'min'")
    xp = B.namespace_of(x)
    if op == "mean" and not xp.isdtype(x.dtype, ("real floating", "complex floating")):
        raise TypeError(f"xpnet.distributed.all_reduce: op='mean' needs a floating dtype, got {x.dtype}: "
                        "use op='sum' and divide, or cast first")
    eng = engine()
    if eng.world_size == 1:
        return _result(tensor, x)
    out = eng.all_reduce(x, "sum" if op == "mean" else op)
    if op == "mean":
        out = out / eng.world_size
    return _result(tensor, out)


def broadcast(tensor, src: int = 0):
    """Give every rank the values of rank ``src``'s ``tensor`` (same shape and dtype on every
    rank).  A Tensor gets them as its new ``.data``; an array gives a new array."""
    x = _raw(tensor, "broadcast")
    eng = engine()
    if not 0 <= src < eng.world_size:
        raise ValueError(f"xpnet.distributed.broadcast: src={src} is not a rank of a job of {eng.world_size}")
    return _result(tensor, eng.broadcast(x, src))


def all_gather(tensor) -> list:
    """Every rank's ``tensor`` (same shape and dtype on every rank), in rank order: a list of
    Tensors for a Tensor, of arrays for an array."""
    x = _raw(tensor, "all_gather")
    parts = engine().all_gather(x)
    return [Tensor(p) for p in parts] if isinstance(tensor, Tensor) else parts


from .ddp import DistributedDataParallel  # noqa: E402
from .sync_batchnorm import SyncBatchNorm  # noqa: E402
