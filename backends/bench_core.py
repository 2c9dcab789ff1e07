"""The engine's overhead on NumPy: one op with backward, and one MLP training step.

    python backends/bench_core.py [--repeats 15]

1. A Tensor op (multiply, forward + backward) against the same work done on raw
   NumPy arrays, for a small and a medium array.
2. One training step (forward, backward, plain SGD update) of a 40-100-100-10
   ReLU MLP with softmax cross-entropy on a batch of 100, against the same step
   written by hand in NumPy.  Target: within 1.3x of the hand-written step.

Contenders take turns in every repeat (see harness.interleaved); the medians
and their ratio are printed.
"""

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import harness  # noqa: E402

import xpnet as xn  # noqa: E402
from xpnet import nn  # noqa: E402
from xpnet.nn import functional as F  # noqa: E402


def op_contenders(n):
    rng = np.random.default_rng(0)
    a_np, b_np = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
    a, b = xn.Tensor(a_np, requires_grad=True), xn.Tensor(b_np, requires_grad=True)
    ones = np.ones(n, np.float32)

    def tensor_op():
        a.grad = b.grad = None
        y = a * b
        y.backward(ones)

    def raw_op():
        y = a_np * b_np  # noqa: F841
        ga, gb = ones * b_np, ones * a_np  # noqa: F841

    return {"xpnet": tensor_op, "numpy": raw_op}


def mlp_contenders(batch=100, sizes=(40, 100, 100, 10), lr=0.01):
    xn.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch, sizes[0])).astype(np.float32)
    Y = rng.integers(0, sizes[-1], size=batch)
    with xn.using("numpy"):
        model = nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.ReLU(), nn.Linear(sizes[1], sizes[2]),
                              nn.ReLU(), nn.Linear(sizes[2], sizes[3]))
    params = list(model.parameters())
    x, y = xn.Tensor(X), xn.Tensor(Y)

    def xpnet_step():
        loss = F.cross_entropy(model(x), y)
        for p in params:
            p.grad = None
        loss.backward()
        for p in params:
            p.data -= lr * p.grad.data

    Ws = [np.array(p.data) for p in params[0::2]]
    bs = [np.array(p.data) for p in params[1::2]]
    onehot = (Y[:, None] == np.arange(sizes[-1])[None, :]).astype(np.float32)

    def numpy_step():
        h1 = np.maximum(X @ Ws[0].T + bs[0], 0)
        h2 = np.maximum(h1 @ Ws[1].T + bs[1], 0)
        z = h2 @ Ws[2].T + bs[2]
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(batch), Y]))  # noqa: F841
        g = (p - onehot) / batch
        gW2, gb2 = g.T @ h2, g.sum(0)
        g = (g @ Ws[2]) * (h2 > 0)
        gW1, gb1 = g.T @ h1, g.sum(0)
        g = (g @ Ws[1]) * (h1 > 0)
        gW0, gb0 = g.T @ X, g.sum(0)
        for W, gW in zip(Ws, (gW0, gW1, gW2)):
            W -= lr * gW
        for b, gb in zip(bs, (gb0, gb1, gb2)):
            b -= lr * gb

    return {"xpnet": xpnet_step, "numpy": numpy_step}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    print(f"machine: {harness.machine()}")
    print(f"versions: {harness.versions('numpy', 'xpnet')}")
    rows = []
    for n in (100, 100_000):
        t = harness.interleaved(op_contenders(n), repeats=args.repeats, number=200 if n < 1000 else 20)
        rows.append((f"multiply + backward, {n:,} floats", t["xpnet"], t["numpy"]))
    t = harness.interleaved(mlp_contenders(), repeats=args.repeats, number=50)
    rows.append(("MLP 40-100-100-10 step, batch 100", t["xpnet"], t["numpy"]))
    print(f"{'workload':<38} {'xpnet':>10} {'numpy':>10} {'ratio':>7}")
    for name, a, b in rows:
        print(f"{name:<38} {a * 1e6:>8.1f}us {b * 1e6:>8.1f}us {a / b:>6.2f}x")
    return rows


if __name__ == "__main__":
    main()
