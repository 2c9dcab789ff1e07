"""Find x with c = sqrt(ln(x^2)) = 2.13, using the derivative from backward().

From a guess x, compute c, then step x <- x - (c - target) / (dc/dx): the
error is sent back through the chain sqrt <- ln <- square.  The exact answer
is x = exp(2.13^2 / 2) = 9.6645 (the tutorial notes print 9.6653 because of a
rounding slip: ln x = 2.26854 instead of 2.26845).

    python examples/solve_with_derivative.py [--x0 2.0] [--target 2.13]
"""

import argparse

import xpnet as xn


def solve(target=2.13, x0=2.0, tol=1e-6, max_steps=50):
    """The iterates [(x, c), ...] until |c - target| < tol."""
    x = x0
    steps = []
    for _ in range(max_steps):
        t = xn.tensor(x, dtype="float64", requires_grad=True)
        c = xn.sqrt(xn.log(t ** 2))
        c.backward()
        steps.append((x, c.item()))
        if abs(c.item() - target) < tol:
            break
        x = x - (c.item() - target) / t.grad.item()
    return steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--x0", type=float, default=2.0)
    p.add_argument("--target", type=float, default=2.13)
    args = p.parse_args(argv)
    steps = solve(args.target, args.x0)
    for i, (x, c) in enumerate(steps):
        print(f"iteration {i}: x = {x:.6f}, c = {c:.6f}")
    print(f"x = {steps[-1][0]:.4f}")
    return steps


if __name__ == "__main__":
    main()
