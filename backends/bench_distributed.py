"""Data-parallel cost: the gradient all-reduce of one training step against the step itself,
for the 784-512-512-10 MLP (669,706 float32 parameters, 2.68 MB of gradients per step).

    mpiexec -n 2 python -m mpi4py backends/bench_distributed.py               # NumPy over MPI
    torchrun --nproc_per_node 2 backends/bench_distributed.py --backend torch  # torch.distributed (gloo)
    mpiexec -n 2 python -m mpi4py backends/bench_distributed.py --backend cupy # CuPy over NCCL (GPUs)

Contenders take turns in every repeat (harness.interleaved), on every rank in the same order
(they contain collectives); rank 0 prints the medians:

- ``step``: zero_grad, forward, backward (DDP averages the gradients), optimizer step;
- ``step, no_sync``: the same with no communication (what one process would do);
- ``all-reduce, bucketed``: ``DistributedDataParallel.reduce_gradients()`` alone (25 MiB buckets:
  one call for this model);
- ``all-reduce, per parameter``: one all-reduce per gradient (6 calls), what buckets avoid.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import harness  # noqa: E402

import xpnet as xn  # noqa: E402
import xpnet.distributed as dist  # noqa: E402
from xpnet import nn, optim  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="numpy", help="numpy, torch, torch:cuda, cupy, jax, array_api_strict")
    p.add_argument("--batch", type=int, default=64, help="samples per rank per step (default 64)")
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--number", type=int, default=10)
    args = p.parse_args(argv)
    name, _, device = args.backend.partition(":")
    if name == "cupy" or device.startswith("cuda"):
        device = f"cuda:{dist.detect().local_rank}"  # one GPU per process
    b = xn.use(name, device or None)
    eng = dist.init(b)
    xn.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    ddp = dist.DistributedDataParallel(model)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(eng.rank)
    x = xn.tensor(rng.normal(size=(args.batch, 784)).astype(np.float32))
    y = xn.tensor(rng.integers(0, 10, size=args.batch))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(ddp(x), y).backward()
        opt.step()

    def step_local():
        with ddp.no_sync():
            step()

    def per_parameter():
        for q in model.parameters():
            q.grad.data = eng.all_reduce(q.grad.data, "sum") / eng.world_size

    sync = None
    if b.name == "cupy":
        sync = lambda: b.xp.cuda.get_current_stream().synchronize()  # noqa: E731
    elif b.name == "torch" and xn.backend.device_name(b.device) != "cpu":
        import torch
        sync = torch.cuda.synchronize
    step()
    t = harness.interleaved({"step": step, "step, no_sync": step_local, "all-reduce, bucketed": ddp.reduce_gradients,
                             "all-reduce, per parameter": per_parameter},
                            repeats=args.repeats, number=args.number, warmup=2, sync=sync)
    if eng.rank == 0:
        nbytes = sum(int(np.prod(q.shape)) * 4 for q in model.parameters())
        print(f"{harness.machine()}; {eng.world_size} ranks, engine {eng.name}, backend {b.name}, "
              f"batch {args.batch} per rank, gradients {nbytes / 1e6:.2f} MB")
        for name, s in t.items():
            print(f"{name:<28} {s * 1e3:8.2f} ms   {s / t['step'] * 100:5.1f}% of a step")
        ar = t["all-reduce, bucketed"]
        print(f"all-reduce bus bandwidth (2(n-1)/n x bytes / time): {2 * (eng.world_size - 1) / eng.world_size * nbytes / ar / 1e9:.2f} GB/s")


if __name__ == "__main__":
    main()
