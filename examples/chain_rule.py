"""Backpropagation through z = x * y, x = 2w + 3b, y = 2b + 1.

At w = 3, b = 4: z = 162, dz/dw = 18 and dz/db = 63, from backward().
Then the gradients are used to move z to a target (150): each step splits
the error dz between w and b, dw = (dz / 2) / (dz/dw), db = (dz / 2) / (dz/db),
and the gradients are recomputed at the new point, because they change.

    python examples/chain_rule.py [--target 150]
"""

import argparse

import xpnet as xn


def forward(w, b):
    x = 2 * w + 3 * b
    y = 2 * b + 1
    return x * y


def gradients(w0, b0):
    """z, dz/dw and dz/db at (w0, b0), by backward()."""
    w = xn.tensor(w0, dtype="float64", requires_grad=True)
    b = xn.tensor(b0, dtype="float64", requires_grad=True)
    z = forward(w, b)
    z.backward()
    return z.item(), w.grad.item(), b.grad.item()


def reach(target=150.0, w=3.0, b=4.0, tol=1e-5, max_steps=20):
    """Move (w, b) until z is within ``tol`` of ``target``; returns the steps taken."""
    steps = []
    for _ in range(max_steps):
        z, dw, db = gradients(w, b)
        steps.append((w, b, z, dw, db))
        delta = z - target
        if abs(delta) < tol:
            break
        w, b = w - delta / 2 / dw, b - delta / 2 / db
    return steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", type=float, default=150.0)
    args = p.parse_args(argv)
    z, dw, db = gradients(3.0, 4.0)
    print(f"w = 3, b = 4: z = {z:g}, dz/dw = {dw:g}, dz/db = {db:g}")
    steps = reach(args.target)
    for i, (w, b, z, dw, db) in enumerate(steps):
        print(f"step {i}: w = {w:.6f}, b = {b:.6f}, z = {z:.6f}, dz/dw = {dw:.4f}, dz/db = {db:.4f}")
    return steps


if __name__ == "__main__":
    main()
