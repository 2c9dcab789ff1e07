"""Activation functions, their derivatives, and why deep sigmoid networks stop learning.

Without a non-linear activation between them, stacked linear layers collapse
into one linear map.  The classic choices, with their derivatives:

* sigmoid  s(x) = 1 / (1 + e^-x), output in (0, 1), s'(x) = s (1 - s) <= 1/4;
* tanh     t(x), output in (-1, 1), t'(x) = 1 - t^2 <= 1 (a centred sigmoid);
* ReLU     max(0, x), derivative 1 for x > 0 and 0 for x < 0 (and, by
  convention, 0 at x = 0); cheap, and it does not shrink what passes;
* leaky ReLU  x for x > 0 else p x (p = 0.01): a small slope instead of 0,
  so a unit that is "off" still gets some gradient;
* softmax  s_i = e^z_i / sum_j e^z_j turns scores into probabilities that
  sum to 1; its derivative is a matrix, ds_i/dz_j = s_i ([i = j] - s_j).

Here the derivatives are not typed in: they come from ``backward()`` and are
printed next to the formulas above.

Vanishing gradients: backpropagation multiplies, layer by layer, the
weights and the activation's derivative.  A sigmoid's derivative is at most
1/4, so after 10 sigmoid layers the gradient reaching the first layer is tiny
compared with the last one's, and the first layers barely learn.  A ReLU
passes the gradient unchanged where it is active.  Two 10-layer stacks with the
same weights, differing only in the activation, show it.

    python examples/activations.py [--depth 10] [--out out/examples]
"""

import argparse
import pathlib

import numpy as np

import xpnet as xn
import xpnet.plot
from xpnet import nn
from xpnet.nn import functional as F
from xpnet.plot import plot_activations

POINTS = (-2.0, -0.5, 0.0, 0.5, 2.0)

# name -> (function, derivative by the formula, from the output y and the input x)
ACTIVATIONS = {
    "sigmoid": (F.sigmoid, lambda y, x: y * (1 - y)),
    "tanh": (F.tanh, lambda y, x: 1 - y * y),
    "relu": (F.relu, lambda y, x: (x > 0).astype(float)),
    "leaky_relu": (F.leaky_relu, lambda y, x: np.where(x > 0, 1.0, 0.01)),
}


def derivatives(points=POINTS):
    """``{name: (x, f(x), f'(x) from backward(), f'(x) from the formula)}`` as NumPy arrays."""
    out = {}
    for name, (f, formula) in ACTIVATIONS.items():
        x = xn.tensor(list(points), dtype="float64", requires_grad=True)
        y = f(x)
        y.sum().backward()  # elementwise: d(sum y)/dx_i = f'(x_i)
        xs, ys = np.array(points), y.numpy()
        out[name] = (xs, ys, x.grad.numpy(), formula(ys, xs))
    return out


def softmax_jacobian(z=(1.0, 2.0, 3.0)):
    """The softmax, its Jacobian row by row from ``backward()``, and by the formula diag(s) - s s^T."""
    rows = []
    for i in range(len(z)):
        zt = xn.tensor(list(z), dtype="float64", requires_grad=True)
        s = F.softmax(zt, dim=0)
        s[i].backward()  # row i: ds_i/dz_j
        rows.append(zt.grad.numpy())
    s = s.numpy()
    return s, np.stack(rows), np.diag(s) - np.outer(s, s)


def softmax_x_vs_0(x):
    """The first output of softmax over the two scores [x, 0]: for two classes
    softmax is the sigmoid, e^x / (e^x + e^0) = 1 / (1 + e^-x)."""
    return F.softmax(xn.stack([x, x * 0.0], axis=-1), dim=-1)[..., 0]


def deep_stack(activation, weights):
    layers = []
    for w in weights:
        lin = nn.Linear(w.shape[1], w.shape[0])
        lin.load_state_dict({"weight": w, "bias": np.zeros(w.shape[0], np.float32)})
        layers += [lin, activation()]
    return nn.Sequential(*layers[:-1])  # no activation after the last layer


def gradient_norms(depth=10, width=32, batch=64, seed=0):
    """The norm of dloss/dW for every layer (first layer first) of a sigmoid and a ReLU
    stack with the same weights (He-normal, std sqrt(2 / width)), on the same batch."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0.0, np.sqrt(2.0 / width), size=(width, width)).astype(np.float32) for _ in range(depth)]
    x = xn.tensor(rng.normal(size=(batch, width)))
    target = xn.tensor(rng.normal(size=(batch, width)))
    norms = {}
    for name, activation in (("sigmoid", nn.Sigmoid), ("relu", nn.ReLU)):
        model = deep_stack(activation, weights)
        F.mse_loss(model(x), target).backward()
        norms[name] = [float(np.linalg.norm(m.weight.grad.numpy())) for m in model if isinstance(m, nn.Linear)]
    return norms


def plot_norms(norms, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name, v in norms.items():
        ax.plot(range(1, len(v) + 1), v, "o-", label=name)
    ax.set_yscale("log"), ax.set_xlabel("layer (1 = next to the input)"), ax.set_ylabel("|dloss/dW|")
    ax.set_title(f"gradient norm per layer, {len(next(iter(norms.values())))} layers"), ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/examples")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plots = xpnet.plot.available()

    print("derivatives from backward() and from the formula")
    ders = derivatives()
    for name, (xs, ys, grad, formula) in ders.items():
        print(f"  {name}")
        for x, y, g, f in zip(xs, ys, grad, formula):
            print(f"    x = {x:5.1f}: f(x) = {y:8.5f}   f'(x): backward {g:8.5f}, formula {f:8.5f}")
    s, jac, jac_formula = softmax_jacobian()
    print(f"  softmax([1, 2, 3]) = {np.round(s, 5).tolist()} (sums to {s.sum():.6f})")
    x0 = xn.tensor(list(POINTS), dtype="float64")
    two = np.abs(softmax_x_vs_0(x0).numpy() - F.sigmoid(x0).numpy()).max()
    print(f"  softmax over [x, 0] equals sigmoid(x): largest difference {two:.1e}")
    print("  its Jacobian ds_i/dz_j from backward(), row by row (formula: diag(s) - s s^T):")
    for row, frow in zip(jac, jac_formula):
        print("    " + "  ".join(f"{v:8.5f}" for v in row) + "    |" + "  ".join(f"{v:8.5f}" for v in frow))
    if plots:
        png = plot_activations(out / "activations.png", names=[*ACTIVATIONS, softmax_x_vs_0])
        print(f"  plot: {png}")

    print(f"vanishing gradients: {args.depth} layers of Linear(32, 32), same weights, batch of 64")
    norms = gradient_norms(args.depth, seed=args.seed)
    print(f"  {'layer':>5} {'sigmoid':>12} {'relu':>12}")
    for i, (a, b) in enumerate(zip(norms["sigmoid"], norms["relu"]), start=1):
        print(f"  {i:5d} {a:12.3e} {b:12.3e}")
    for name, v in norms.items():
        print(f"  {name}: first layer / last layer = {v[0] / v[-1]:.3e}")
    print(f"  first layer, sigmoid / relu = {norms['sigmoid'][0] / norms['relu'][0]:.3e}")
    if plots:
        print(f"  plot: {plot_norms(norms, out / 'vanishing_gradients.png')}")
    return {"derivatives": ders, "softmax": (s, jac, jac_formula), "grad_norms": norms}


if __name__ == "__main__":
    main()
