"""Forward pass, loss, backward pass, update: training y = 2x + 3 by hand.

Every training loop repeats the same four steps:

1. forward pass: the model predicts ``y_hat = w * x + b`` for a batch of inputs;
2. loss: one number says how wrong the predictions are, here the mean squared
   error ``mean((y_hat - y)^2)``;
3. backward pass: ``loss.backward()`` applies the chain rule from the loss back
   to the parameters and leaves ``dloss/dw`` in ``w.grad`` and ``dloss/db`` in
   ``b.grad``;
4. update (gradient descent): each parameter takes a small step against its
   gradient, ``w <- w - lr * dloss/dw``, and the gradients are cleared.

The data are 200 points of y = 2x + 3 plus noise.  They are not used all at
once: a *batch* of ``batch_size`` samples gives one update, an *iteration*;
an *epoch* is one pass over the whole training set.  With 200 samples and
batches of 20 an epoch is 200 / 20 = 10 iterations, and N epochs are 10N
iterations.  After training, w and b are close to 2 and 3.

    python examples/basics_regression.py [--epochs 30] [--batch-size 20] [--lr 0.1] [--out out/examples]
"""

import argparse
import math
import pathlib

import numpy as np

import xpnet as xn
from xpnet.data import ArrayDataset, DataLoader

TRUE_W, TRUE_B = 2.0, 3.0


def make_data(n=200, noise=0.2, seed=0):
    """``n`` points of y = 2x + 3 + noise, x uniform in [-1, 1], as float32 arrays (n, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 1))
    y = TRUE_W * x + TRUE_B + rng.normal(0.0, noise, size=(n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def train(x, y, epochs=30, batch_size=20, lr=0.1, seed=0):
    """Mini-batch gradient descent on raw tensors ``w`` and ``b``.

    Returns the learned ``w`` and ``b``, the loss over the whole set after
    each epoch and the number of iterations (updates) made.
    """
    w = xn.tensor(0.0, requires_grad=True)  # float32, the default
    b = xn.tensor(0.0, requires_grad=True)
    loader = DataLoader(ArrayDataset(x, y), batch_size=batch_size, shuffle=True, seed=seed)
    X, Y = xn.tensor(x), xn.tensor(y)
    epoch_losses, iterations = [], 0
    for _ in range(epochs):
        for xb, yb in loader:                      # one batch -> one iteration
            y_hat = w * xb + b                     # 1. forward pass
            loss = ((y_hat - yb) ** 2).mean()      # 2. loss
            loss.backward()                        # 3. backward pass: w.grad, b.grad
            w.data = w.data - lr * w.grad.data     # 4. update the raw arrays (not recorded)
            b.data = b.data - lr * b.grad.data
            w.grad = b.grad = None                 # else the next backward() adds to them
            iterations += 1
        with xn.no_grad():
            epoch_losses.append(((w * X + b - Y) ** 2).mean().item())
    return w.item(), b.item(), epoch_losses, iterations


def plot(x, y, w, b, epoch_losses, filename):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'xpnet[plot]')")
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8))
    ax1.scatter(x[:, 0], y[:, 0], s=8, alpha=0.5, label="data")
    xs = np.array([-1.0, 1.0])
    ax1.plot(xs, TRUE_W * xs + TRUE_B, "k--", label="y = 2x + 3")
    ax1.plot(xs, w * xs + b, color="tab:red", label=f"learned: {w:.3f}x + {b:.3f}")
    ax1.set_xlabel("x"), ax1.set_ylabel("y"), ax1.legend(), ax1.set_title("fit")
    ax2.plot(range(1, len(epoch_losses) + 1), epoch_losses, "o-", markersize=3)
    ax2.set_yscale("log"), ax2.set_xlabel("epoch"), ax2.set_ylabel("MSE over all samples")
    ax2.set_title("loss after each epoch")
    fig.tight_layout()
    fig.savefig(filename, dpi=100)
    plt.close(fig)
    return filename


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/examples")
    args = p.parse_args(argv)

    x, y = make_data(args.samples, seed=args.seed)
    per_epoch = math.ceil(args.samples / args.batch_size)
    print(f"{args.samples} samples, batch size {args.batch_size} -> {per_epoch} iterations per epoch; "
          f"{args.epochs} epochs -> {per_epoch} x {args.epochs} = {per_epoch * args.epochs} iterations")
    w, b, losses, iterations = train(x, y, args.epochs, args.batch_size, args.lr, args.seed)
    for e in sorted({0, len(losses) // 2, len(losses) - 1}):
        print(f"epoch {e + 1:3d}: loss {losses[e]:.5f}")
    print(f"iterations made: {iterations}")
    print(f"learned w = {w:.4f} (true {TRUE_W}), b = {b:.4f} (true {TRUE_B})")

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = plot(x, y, w, b, losses, out / "basics_regression.png")
    if png:
        print(f"plot: {png}")
    return {"w": w, "b": b, "losses": losses, "iterations": iterations, "iterations_per_epoch": per_epoch}


if __name__ == "__main__":
    main()
