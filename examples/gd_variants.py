"""Batch, stochastic and mini-batch gradient descent on the same problem.

The three differ only in how many samples feed one update:

* batch gradient descent: the whole training set per update
  (``DataLoader(batch_size=None)``): one update per epoch, each along the
  true gradient of the training loss; smooth, but every step costs a full pass
  and big data sets may not fit in memory;
* stochastic gradient descent (SGD): one sample per update
  (``batch_size=1``): many cheap, noisy steps; the loss jumps around from
  sample to sample and the parameters keep wandering near the minimum;
* mini-batch gradient descent: ``batch_size`` samples per update (here 32):
  the noise shrinks with the batch, the batch is one matrix operation on the
  device, and an epoch still gives several updates.  This is what "SGD"
  means in practice in deep learning.

All three start from the same weights, use the same learning rate and run
the same number of epochs on y = 2x + 3 + noise (x uniform in [-2, 2]).
The per-iteration curves show the loss of the batch just used; the
per-epoch curves the loss over the whole training set after each epoch
(epoch 0: before training).  With few epochs batch gradient descent is
still far from the minimum (it has made one update per epoch), while SGD got
close within the first epoch and then jitters around it.

    python examples/gd_variants.py [--epochs 50] [--lr 0.05] [--samples 200] [--out out/examples]
"""

import argparse
import pathlib

import numpy as np

import xpnet as xn
from xpnet import nn
from xpnet.data import ArrayDataset, DataLoader

VARIANTS = (("batch", None), ("mini-batch", 32), ("stochastic", 1))


def make_data(n=200, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, size=(n, 1))
    y = 2.0 * x + 3.0 + rng.normal(0.0, noise, size=(n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def run(x, y, batch_size, init, epochs, lr, seed=0):
    """Train ``Linear(1, 1)`` from the weights ``init``; per-iteration and per-epoch losses."""
    model = nn.Linear(1, 1)
    model.load_state_dict(init)
    opt = xn.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    loader = DataLoader(ArrayDataset(x, y), batch_size=batch_size, shuffle=True, seed=seed)
    X, Y = xn.tensor(x), xn.tensor(y)
    with xn.no_grad():
        per_epoch = [loss_fn(model(X), Y).item()]  # epoch 0: the shared starting point
    per_iter = []
    for _ in range(epochs):
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            per_iter.append(loss.data)  # kept on the device; read once at the end
        with xn.no_grad():
            per_epoch.append(loss_fn(model(X), Y).item())
    per_iter = [float(v) for v in xn.backend.to_numpy(X.xp.stack(per_iter))]
    return {"per_iteration": per_iter, "per_epoch": per_epoch, "updates": len(per_iter),
            "w": model.weight.item(), "b": model.bias.item()}


def roughness(losses):
    """How jumpy a curve is: mean |change| between neighbours over the second half,
    relative to the mean loss there (0 for a smooth, flat curve)."""
    tail = np.asarray(losses[len(losses) // 2:], dtype=np.float64)
    if tail.size < 2:
        return 0.0
    return float(np.mean(np.abs(np.diff(tail))) / np.mean(tail))


def plot(results, filename):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'xpnet[plot]')")
        return None
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (name, r) in zip(axes, results.items()):
        ax.plot(range(1, r["updates"] + 1), r["per_iteration"], linewidth=0.8)
        ax.set_yscale("log"), ax.set_xlabel("iteration"), ax.set_ylabel("batch loss")
        ax.set_title(f"{name}: {r['updates']} updates")
    for name, r in results.items():
        axes[3].plot(range(len(r["per_epoch"])), r["per_epoch"], "o-", markersize=2, label=name)
    axes[3].set_yscale("log"), axes[3].set_xlabel("epoch"), axes[3].set_ylabel("training-set loss")
    axes[3].set_title("per epoch"), axes[3].legend()
    fig.tight_layout()
    fig.savefig(filename, dpi=100)
    plt.close(fig)
    return filename


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/examples")
    args = p.parse_args(argv)

    x, y = make_data(args.samples, seed=args.seed)
    xn.manual_seed(args.seed)
    init = {k: xn.backend.to_numpy(v).copy() for k, v in nn.Linear(1, 1).state_dict().items()}
    results = {}
    for name, bs in VARIANTS:
        r = run(x, y, bs, init, args.epochs, args.lr, args.seed)
        r["roughness"] = roughness(r["per_iteration"])
        results[name] = r
        print(f"{name:>10} (batch_size={bs}): {r['updates']:5d} updates, final loss {r['per_epoch'][-1]:.5f}, "
              f"w = {r['w']:.3f}, b = {r['b']:.3f}, roughness of the per-iteration curve {r['roughness']:.3f}")

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = plot(results, out / "gd_variants.png")
    if png:
        print(f"plot: {png}")
    return results


if __name__ == "__main__":
    main()
