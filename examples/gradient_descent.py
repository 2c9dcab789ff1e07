"""Gradient descent on J(x) = x^2 from x0 = 1.2 with learning rate 0.3.

Each step computes J, asks autodiff for dJ/dx and moves against it:
x <- x - lr * dJ/dx.  The iterates are 0.48, 0.192, 0.0768, 0.03072 ...
With matplotlib installed, the path on the curve is saved as a PNG.

    python examples/gradient_descent.py [--steps 4] [--lr 0.3] [--out out/examples]
"""

import argparse
import pathlib

import xpnet as xn


def descend(x0=1.2, lr=0.3, steps=4):
    """The path [(x, J(x)), ...] of ``steps`` gradient-descent steps from ``x0``."""
    x = xn.tensor(x0, dtype="float64", requires_grad=True)
    path = [(x.item(), x.item() ** 2)]
    for _ in range(steps):
        J = x ** 2
        J.backward()
        x = xn.tensor(x.item() - lr * x.grad.item(), dtype="float64", requires_grad=True)
        path.append((x.item(), x.item() ** 2))
    return path


def plot(path, filename):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'xpnet[plot]')")
        return None
    xs = [i / 100 for i in range(-130, 131)]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(xs, [v * v for v in xs], label="J(x) = x²")
    ax.plot([p[0] for p in path], [p[1] for p in path], "o-", color="tab:red", label="gradient descent")
    ax.set_xlabel("x"), ax.set_ylabel("J(x)"), ax.legend(), ax.set_title("Gradient descent, lr = 0.3")
    fig.tight_layout()
    fig.savefig(filename, dpi=100)
    plt.close(fig)
    return filename


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.3)
    p.add_argument("--out", default="out/examples")
    args = p.parse_args(argv)
    path = descend(lr=args.lr, steps=args.steps)
    for i, (x, J) in enumerate(path):
        print(f"step {i}: x = {x:.6g}, J = {J:.6g}")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = plot(path, out / "gradient_descent.png")
    if png:
        print(f"plot: {png}")
    return path


if __name__ == "__main__":
    main()
