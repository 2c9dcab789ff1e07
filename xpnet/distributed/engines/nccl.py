"""The NCCL engine for CuPy arrays: ``cupy.cuda.nccl`` with the unique id broadcast over MPI
(ChainerMN's ``pure_nccl`` communicator does the same).  Collectives are queued on the current
CUDA stream, so a training step makes no host synchronization; the reduced buffer is ready for
the kernels that follow on that stream.  Arrays that are not CuPy's go over MPI (the parent).

UNVERIFIED (never run: no GPU here): written from CuPy's API (``nccl.get_unique_id``,
``nccl.NcclCommunicator(ndev, uid, rank)``, ``allReduce/bcast/allGather(sendptr, recvptr, count,
dtype, [op,] stream_ptr)``, signatures checked against cupy/cuda/nccl.pyx); the command that
checks it on two GPUs is in docs/distributed.md.

This module imports cupy: it is one of the two engine files the purity test allows.
"""

from __future__ import annotations

import cupy
from cupy.cuda import nccl

from .mpi import MpiEngine

__all__ = ["NcclEngine"]

# ncclDataType_t / ncclRedOp_t values (nccl.h), where CuPy lacks a constant.
_DTYPES = {"int8": ("NCCL_INT8", 0), "uint8": ("NCCL_UINT8", 1), "int32": ("NCCL_INT32", 2),
           "uint32": ("NCCL_UINT32", 3), "int64": ("NCCL_INT64", 4), "uint64": ("NCCL_UINT64", 5),
           "float16": ("NCCL_FLOAT16", 6), "float32": ("NCCL_FLOAT32", 7), "float64": ("NCCL_FLOAT64", 8),
           "bfloat16": ("NCCL_BFLOAT16", 9), "bool": ("NCCL_UINT8", 1)}
_OPS = {"sum": ("NCCL_SUM", 0), "max": ("NCCL_MAX", 2), "min": ("NCCL_MIN", 3)}


def _const(pair):
    return getattr(nccl, pair[0], pair[1])


class NcclEngine(MpiEngine):
    name = "nccl"

    def __init__(self, comm=None, device=None):
        """``device``: the cupy.cuda.Device of this rank's arrays (default: GPU ``local_rank``)."""
        super().__init__(comm)
        if device is None:
            device = cupy.cuda.Device(self.local_rank % cupy.cuda.runtime.getDeviceCount())
        device.use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.comm.bcast(uid, root=0)
        self.nccl = nccl.NcclCommunicator(self.world_size, uid, self.rank)

    @staticmethod
    def _dtype(x):
        name = str(x.dtype)
        if name not in _DTYPES:
            raise TypeError(f"NCCL engine: arrays of dtype {name} cannot be communicated; "
                            f"expected one of {', '.join(_DTYPES)}")
        return _const(_DTYPES[name])

    @staticmethod
    def _stream():
        return cupy.cuda.get_current_stream().ptr

    def all_reduce(self, x, op="sum"):
        if not isinstance(x, cupy.ndarray):
            return super().all_reduce(x, op)
        if x.dtype == cupy.bool_ and op == "sum":
            raise TypeError("NCCL engine: a sum of booleans is ambiguous: cast to an integer dtype first")
        x = cupy.ascontiguousarray(x)
        out = cupy.empty_like(x)
        self.nccl.allReduce(x.data.ptr, out.data.ptr, x.size, self._dtype(x), _const(_OPS[op]), self._stream())
        return out

    def broadcast(self, x, src=0):
        if not isinstance(x, cupy.ndarray):
            return super().broadcast(x, src)
        buf = cupy.ascontiguousarray(x) if self.rank == src else cupy.empty_like(x, order="C")
        self.nccl.bcast(buf.data.ptr, buf.size, self._dtype(buf), src, self._stream())
        return x if self.rank == src else buf

    def all_gather(self, x):
        if not isinstance(x, cupy.ndarray):
            return super().all_gather(x)
        x = cupy.ascontiguousarray(x)
        out = cupy.empty((self.world_size, *x.shape), dtype=x.dtype)
        self.nccl.allGather(x.data.ptr, out.data.ptr, x.size, self._dtype(x), self._stream())
        return [out[i] for i in range(self.world_size)]

    def barrier(self):
        cupy.cuda.get_current_stream().synchronize()
        super().barrier()

    def shutdown(self):
        comm, self.nccl = self.nccl, None
        if comm is not None:
            comm.destroy()
