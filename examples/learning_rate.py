"""The learning rate: too small, about right, too large; schedules; the LR range test.

Gradient descent moves every parameter by ``lr * gradient``.

1. Choosing it.  Fit y_hat = w x + b to y = 2x + 3 (x in [-1, 1]) by
   full-batch gradient descent on the MSE.  The loss is a bowl; along b its
   curvature is 2, so each step multiplies the error in b by (1 - 2 lr):
   * too small (0.01): the error shrinks by 2% a step; safe but slow: after
     30 steps most of the loss is still there;
   * about right (0.5): 1 - 2 lr = 0, b is nearly right after one step, the
     loss reaches the noise level in a few steps;
   * too large (0.95): the factor is -0.9: each step jumps over the bottom
     to the other side; b zig-zags around 3 and settles only slowly;
   * far too large (1.1): the factor is -1.2: every jump lands farther out
     than the last, and the loss explodes (diverges).

2. Schedules.  A large rate early makes fast progress; a smaller one later
   lets the weights settle instead of bouncing around the minimum.
   ``StepLR(step_size, gamma)`` multiplies the rate by ``gamma`` every
   ``step_size`` epochs; ``ReduceLROnPlateau(factor, patience)`` does it only
   when the validation loss has not improved for more than ``patience`` epochs.
   Both train a small MLP on the 8x8 digits, next to a constant rate.

3. The LR range test (Leslie Smith; fastai's ``lr_find``).  Train for about
   100 mini-batches while the rate grows exponentially from 1e-5 to 10 and
   record the loss at each step.  At first nothing happens (the rate is too
   small), then the loss falls, and at some point it shoots up (too large).
   A good rate is where the loss falls fastest: ``xpnet.plot.suggest_lr``
   takes the steepest point of the smoothed curve (slope against log lr).

    python examples/learning_rate.py [--epochs 20] [--steps 100] [--out out/examples]
"""

import argparse
import pathlib

import numpy as np

import xpnet as xn
from xpnet import nn
from xpnet.data import load_digits, train_test_split
from xpnet.optim.lr_scheduler import ReduceLROnPlateau, StepLR
from xpnet.plot import available, plot_lr_range, suggest_lr

RATES = (("too small", 0.01), ("about right", 0.5), ("too large: oscillates", 0.95),
         ("too large: diverges", 1.1))


# ---------------------------------------------------------------- 1. choosing the rate

def regression_data(n=100, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 1))
    y = 2.0 * x + 3.0 + rng.normal(0.0, 0.1, size=(n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def gradient_descent(x, y, lr, steps=30):
    """Full-batch gradient descent on ``Linear(1, 1)`` from w = b = 0: the loss
    before each step (and after the last) and the bias after each step."""
    model = nn.Linear(1, 1)
    model.load_state_dict({"weight": np.zeros((1, 1), np.float32), "bias": np.zeros(1, np.float32)})
    opt = xn.optim.SGD(model.parameters(), lr=lr)
    X, Y = xn.tensor(x), xn.tensor(y)
    losses, biases = [], []
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(X), Y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        biases.append(model.bias.item())
    with xn.no_grad():
        losses.append(nn.functional.mse_loss(model(X), Y).item())
    return losses, biases


def plot_rates(runs, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 3.8))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    for name, r in runs.items():
        ax1.plot(r["losses"], "o-", markersize=2, label=f"lr = {r['lr']} ({name})")
        ax2.plot(range(1, len(r["biases"]) + 1), r["biases"], "o-", markersize=2, label=f"lr = {r['lr']}")
    ax1.set_yscale("log"), ax1.set_xlabel("step"), ax1.set_ylabel("MSE"), ax1.legend(fontsize=8)
    ax1.set_title("loss")
    ax2.axhline(3.0, color="k", linestyle="--", linewidth=0.8)
    ax2.set_ylim(-1, 7), ax2.set_xlabel("step"), ax2.set_ylabel("b (true value 3)"), ax2.set_title("bias")
    fig.tight_layout()
    fig.savefig(path)
    return path


# ---------------------------------------------------------------- 2. schedules and 3. range test

def digits(seed=0):
    X, y = load_digits()
    return train_test_split(X / 16.0, y, test_size=0.25, seed=seed, stratify=y)


def mlp():
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def train_with_schedule(data, schedule, epochs, lr=0.2, seed=0):
    """Train the MLP with SGD at ``lr`` under ``schedule`` (None, "step" or "plateau")."""
    Xtr, Xte, ytr, yte = data
    xn.manual_seed(seed)
    model = mlp()
    opt = xn.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = {None: None,
                 "step": lambda: StepLR(opt, step_size=max(1, epochs // 4), gamma=0.3),
                 "plateau": lambda: ReduceLROnPlateau(opt, factor=0.3, patience=1)}[schedule]
    trainer = xn.Trainer(model, "cross_entropy", opt, ["accuracy"], device="cpu",
                         scheduler=scheduler and scheduler(), verbose=0)
    return trainer.fit(Xtr, ytr, epochs=epochs, batch_size=64, validation_data=(Xte, yte), seed=seed).history


def lr_range_test(data, start=1e-5, end=10.0, steps=100, seed=0):
    """Losses of ``steps`` mini-batches with the rate growing from ``start`` to ``end``
    geometrically (Trainer.lr_range_test; the model is put back afterwards)."""
    Xtr, _, ytr, _ = data
    xn.manual_seed(seed)
    model = mlp()
    opt = xn.optim.SGD(model.parameters(), lr=start, momentum=0.9)
    trainer = xn.Trainer(model, "cross_entropy", opt, device="cpu", verbose=0)
    lrs, losses, _ = trainer.lr_range_test(Xtr, ytr, start_lr=start, end_lr=end, num_steps=steps,
                                           batch_size=64, seed=seed)
    return lrs, losses


def plot_schedules(histories, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(13, 3.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for name, h in histories.items():
        epochs = range(1, len(h["lr"]) + 1)
        axes[0].plot(epochs, h["lr"], "o-", markersize=2, label=name)
        axes[1].plot(epochs, h["val_loss"], "o-", markersize=2, label=name)
        axes[2].plot(epochs, h["val_accuracy"], "o-", markersize=2, label=name)
    for ax, title in zip(axes, ("learning rate", "validation loss", "validation accuracy")):
        ax.set_xlabel("epoch"), ax.set_title(title), ax.legend(fontsize=8), ax.grid(True, alpha=0.3)
    axes[0].set_yscale("log"), axes[1].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20, help="epochs of each schedule run")
    p.add_argument("--steps", type=int, default=100, help="steps of the LR range test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/examples")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plots = available()
    result = {}

    print("1. full-batch gradient descent on y = 2x + 3 from w = b = 0, 30 steps")
    x, y = regression_data(seed=args.seed)
    runs = {}
    for name, lr in RATES:
        losses, biases = gradient_descent(x, y, lr)
        runs[name] = {"lr": lr, "losses": losses, "biases": biases}
        print(f"   lr = {lr:<5} {name:<22} loss {losses[0]:.4g} -> {losses[-1]:.4g}   "
              f"b after steps 1-4: {', '.join(f'{v:.3f}' for v in biases[:4])}")
    result["rates"] = runs
    if plots:
        print(f"   plot: {plot_rates(runs, out / 'learning_rate_compare.png')}")

    print(f"2. schedules: MLP on the digits, SGD(lr=0.2, momentum=0.9), {args.epochs} epochs")
    data = digits(args.seed)
    histories = {}
    for name, schedule in (("constant", None), ("StepLR", "step"), ("ReduceLROnPlateau", "plateau")):
        h = train_with_schedule(data, schedule, args.epochs, seed=args.seed)
        histories[name] = h
        print(f"   {name:<18} lr {h['lr'][0]:.3g} -> {h['lr'][-1]:.3g}   final val_loss {h['val_loss'][-1]:.4f}, "
              f"val_accuracy {h['val_accuracy'][-1]:.4f}")
    result["schedules"] = histories
    if plots:
        print(f"   plot: {plot_schedules(histories, out / 'learning_rate_schedules.png')}")

    print(f"3. LR range test: up to {args.steps} mini-batches, lr from 1e-5 to 10")
    lrs, losses = lr_range_test(data, steps=args.steps, seed=args.seed)
    suggested = suggest_lr(lrs, losses)
    print(f"   {len(losses)} steps, lowest loss {min(losses):.4f} at lr {lrs[int(np.argmin(losses))]:.3g}; "
          f"stopped at lr {lrs[-1]:.3g} (loss {losses[-1]:.4g})")
    print(f"   suggested lr (steepest descent): {suggested:.3g}")
    result.update(lrs=lrs, losses=losses, suggested_lr=suggested)
    if plots:
        print(f"   plot: {plot_lr_range(lrs, losses, out / 'lr_range_test.png', suggestion=suggested)}")
    return result


if __name__ == "__main__":
    main()
