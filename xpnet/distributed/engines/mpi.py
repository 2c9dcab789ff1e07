"""The MPI engine (mpi4py): NumPy arrays are passed to MPI as buffers, with no copy and no
pickling; arrays of other libraries (JAX, array-api-strict, CPU torch) make a host copy there
and back.  ``python -m mpi4py`` (or the excepthook that :func:`xpnet.distributed.init`
installs) turns an uncaught error on one rank into ``MPI_Abort`` for the whole job."""

from __future__ import annotations

from ... import backend as B
from . import Engine

__all__ = ["MpiEngine", "require_mpi4py"]


def require_mpi4py():
    """mpi4py's ``MPI`` module, or ImportError saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("xpnet.distributed: this process was started by an MPI launcher (mpiexec) but mpi4py "
                          f"is not importable ({e}): pip install \"xpnet[mpi]\" (mpi4py and MPICH), "
                          "or pip install mpi4py against the site's MPI") from e
    return MPI


class MpiEngine(Engine):
    name = "mpi"

    def __init__(self, comm=None):
        MPI = require_mpi4py()
        self.MPI = MPI
        self.comm = comm or MPI.COMM_WORLD
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = node.Get_rank()
        node.Free()
        self._ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    @staticmethod
    def _host(x):
        """(a C-contiguous NumPy array with x's values, x's Backend when a copy back is needed)."""
        b = B.backend_of(x)
        if b.name == "numpy":
            if not x.flags["C_CONTIGUOUS"]:
                x = b.xp.asarray(x, copy=True)  # a C-ordered copy
            return x, None
        return B.to_numpy(x), b

    @staticmethod
    def _back(h, b):
        return h if b is None else B.transfer(h, b)

    def all_reduce(self, x, op="sum"):
        h, b = self._host(x)
        out = B.get_backend("numpy").xp.empty_like(h)
        self.comm.Allreduce(h, out, op=self._ops[op])
        return self._back(out, b)

    def broadcast(self, x, src=0):
        h, b = self._host(x)
        buf = h if self.rank == src else B.get_backend("numpy").xp.empty_like(h)
        self.comm.Bcast(buf, root=src)
        return x if self.rank == src else self._back(buf, b)

    def all_gather(self, x):
        h, b = self._host(x)
        out = B.get_backend("numpy").xp.empty((self.world_size, *h.shape), dtype=h.dtype)
        self.comm.Allgather(h, out)
        return [self._back(out[i, ...], b) for i in range(self.world_size)]

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code=1):
        self.comm.Abort(code)
