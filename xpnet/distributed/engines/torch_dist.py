"""The torch.distributed engine, for jobs started by ``torchrun``.

The process group is made from torchrun's environment (``env://``): ``gloo`` for CPU
tensors and, where CUDA is available, ``nccl`` for CUDA tensors (one group, "cpu:gloo,cuda:nccl").
Torch tensors go to the collective as they are; arrays of other libraries (NumPy under
``xpnet train`` with torchrun, JAX, array-api-strict) make a host copy that torch shares
without copying (``torch.from_numpy``), and come back as arrays of their library.

This module imports torch: it is one of the two engine files the purity test allows.
"""

from __future__ import annotations

import datetime

import torch
import torch.distributed as dist

from ... import backend as B
from . import Engine

__all__ = ["TorchEngine"]


class TorchEngine(Engine):
    name = "torch.distributed"

    def __init__(self, launch, backend=None, timeout_s: float = 1800.0):
        cuda = torch.cuda.is_available()
        if cuda and backend is not None and backend.name == "torch" and B.device_name(backend.device) != "cpu":
            torch.cuda.set_device(B.device_name(backend.device))
        if not dist.is_initialized():
            dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo",
                                    timeout=datetime.timedelta(seconds=timeout_s))
        self.group_backend = dist.get_backend()
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.local_rank = launch.local_rank
        self._ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}

    @staticmethod
    def _tensor(x):
        """(a contiguous torch tensor this engine may overwrite, x's Backend when it is not torch)."""
        if isinstance(x, torch.Tensor):
            return x.clone(memory_format=torch.contiguous_format), None
        b = B.backend_of(x)
        h = B.to_numpy(x)  # a copy of our own, shared with torch below
        return torch.from_numpy(h), b

    @staticmethod
    def _back(t, b):
        return t if b is None else B.transfer(t.numpy(), b)

    def all_reduce(self, x, op="sum"):
        t, b = self._tensor(x)
        dist.all_reduce(t, op=self._ops[op])
        return self._back(t, b)

    def broadcast(self, x, src=0):
        t, b = self._tensor(x)
        dist.broadcast(t, src=src)
        return x if self.rank == src else self._back(t, b)

    def all_gather(self, x):
        t, b = self._tensor(x)
        out = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(out, t)
        return [self._back(o, b) for o in out]

    def barrier(self):
        dist.barrier()

    def shutdown(self):
        if dist.is_initialized():
            dist.destroy_process_group()
