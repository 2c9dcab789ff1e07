"""Recurrent training step: xpnet (eager, and compiled when available) against PyTorch eager.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 python backends/bench_rnn.py [--repeats 15]

The model is MNIST-1D's recurrent baseline: a bidirectional GRU(1, 6) reading a
sequence of 40 steps (batch 100, batch_first), the two final hidden states
concatenated into Linear(12, 10), softmax cross-entropy, Adam (lr 1e-3); float32,
the same initial weights and batch for every contender.  One step is forward,
backward, ``optimizer.step()``.  Contenders take turns in every repeat
(harness.interleaved); medians and the ratios to PyTorch eager are printed.
Targets (issue 15): xpnet eager within 1.5x of PyTorch eager, compiled at most 0.8x.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import harness  # noqa: E402

import xpnet as xn  # noqa: E402
from xpnet import nn, optim  # noqa: E402
from xpnet.nn import functional as F  # noqa: E402

STEPS, BATCH, HIDDEN, CLASSES = 40, 100, 6, 10


class GRUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(1, HIDDEN, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * HIDDEN, CLASSES)

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(xn.concat([h[0, ...], h[1, ...]], -1))


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(BATCH, STEPS, 1)).astype(np.float32), rng.integers(0, CLASSES, size=BATCH)


def xpnet_step(X, Y, compiled=False):
    with xn.using("numpy"):
        xn.manual_seed(0)
        model = GRUNet()
        opt = optim.Adam(model.parameters(), lr=1e-3)
        x, y = xn.tensor(X), xn.tensor(Y)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    fn = xn.compile(step) if compiled else step
    return (lambda: fn(x, y)), model


def torch_step(X, Y, init):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(1, HIDDEN, batch_first=True, bidirectional=True)
            self.head = torch.nn.Linear(2 * HIDDEN, CLASSES)

        def forward(self, x):
            _, h = self.gru(x)
            return self.head(torch.cat([h[0], h[1]], -1))

    model = Net()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in init.items()})
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(X), torch.from_numpy(Y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--number", type=int, default=20)
    args = p.parse_args(argv)
    X, Y = data()
    contenders = {}
    eager, model = xpnet_step(X, Y)
    contenders["xpnet eager"] = eager
    if hasattr(xn, "compile"):
        contenders["xpnet compiled"] = xpnet_step(X, Y, compiled=True)[0]
    try:
        import torch
        init = {k: xn.backend.to_numpy(v).copy() for k, v in model.state_dict().items()}
        contenders["torch eager"] = torch_step(X, Y, init)
        threads = f"torch threads {torch.get_num_threads()}"
    except ImportError:
        threads = "torch not installed"
    threads += "".join(f", {k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                       if k in os.environ)
    t = harness.interleaved(contenders, repeats=args.repeats, number=args.number)
    print(f"machine: {harness.machine()}\nversions: {harness.versions('numpy', 'torch', 'xpnet')}; {threads}")
    print(f"bidirectional GRU(1, {HIDDEN}), {STEPS} steps, batch {BATCH}, Adam; median of "
          f"{args.repeats} x {args.number} steps")
    ref = t.get("torch eager")
    for name, s in t.items():
        ratio = f"  {s / ref:.2f}x torch eager" if ref else ""
        print(f"  {name:15s} {s * 1e3:8.3f} ms/step{ratio}")
    return t


if __name__ == "__main__":
    main()
