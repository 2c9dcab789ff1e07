"""Backpropagation by hand on a three-class network, checked against backward().

The network: inputs (x1, x2, x3) -> two hidden sigmoid neurons (h1, h2) ->
three sigmoid outputs (y_hat_1, y_hat_2, y_hat_3), no biases.  The weights,
laid out as PyTorch's ``Linear.weight`` (out, in), are numbered row by row:

    hidden  W1 = [[w1, w2, w3],      h_j = sigmoid(sum_i W1[j, i] x_i)
                  [w4, w5, w6]]
    output  W2 = [[w7,  w8],         y_hat_k = sigmoid(sum_j W2[k, j] h_j)
                  [w9,  w10],
                  [w11, w12]]

so w7 connects h1 to y_hat_1.  The label is one-hot, (0, 1, 0): class 2.
The loss is half the squared error, L = 1/2 * sum_k (y_hat_k - y_k)^2.

The chain rule, from the loss back to w7 (sigmoid' = s (1 - s)):

    dL/dw7 = dL/dy_hat_1 * dy_hat_1/dz_1 * dz_1/dw7
           = (y_hat_1 - y_1) * y_hat_1 (1 - y_hat_1) * h1

and likewise dL/dW2[k, j] = delta_k h_j with delta_k = (y_hat_k - y_k) y_hat_k (1 - y_hat_k).
One layer further back, every output neuron that h_j feeds contributes:

    dL/dW1[j, i] = (sum_k delta_k W2[k, j]) * h_j (1 - h_j) * x_i

These are computed by hand (plain Python floats) and compared with the
gradients ``loss.backward()`` leaves in the layers' ``weight.grad`` (float64).
Then one gradient-descent step w <- w - lr * dL/dw lowers the loss.

    python examples/hand_backprop.py [--lr 0.5]
"""

import argparse
import math

import xpnet as xn
from xpnet import nn

X = [1.0, 0.5, -1.0]
Y = [0.0, 1.0, 0.0]
W1 = [[0.1, 0.3, 0.5],
      [-0.2, 0.4, 0.6]]
W2 = [[0.7, -0.8],
      [0.9, 1.0],
      [-1.1, 1.2]]


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def by_hand(x=X, y=Y, w1=W1, w2=W2):
    """Forward pass and gradients with the chain rule, in plain Python."""
    h = [sigmoid(sum(w * xi for w, xi in zip(row, x))) for row in w1]
    y_hat = [sigmoid(sum(w * hj for w, hj in zip(row, h))) for row in w2]
    loss = 0.5 * sum((a - t) ** 2 for a, t in zip(y_hat, y))
    delta = [(a - t) * a * (1 - a) for a, t in zip(y_hat, y)]                 # dL/dz of each output
    g2 = [[d * hj for hj in h] for d in delta]                                 # dL/dW2[k][j]
    back = [sum(delta[k] * w2[k][j] for k in range(len(w2))) for j in range(len(h))]  # dL/dh_j
    delta_h = [b * hj * (1 - hj) for b, hj in zip(back, h)]                    # dL/dz of each hidden neuron
    g1 = [[d * xi for xi in x] for d in delta_h]                               # dL/dW1[j][i]
    return {"h": h, "y_hat": y_hat, "loss": loss, "delta": delta, "dW1": g1, "dW2": g2}


def network(w1=W1, w2=W2):
    model = nn.Sequential(nn.Linear(3, 2, bias=False, dtype="float64"), nn.Sigmoid(),
                          nn.Linear(2, 3, bias=False, dtype="float64"), nn.Sigmoid())
    model.load_state_dict({"0.weight": xn.tensor(w1, dtype="float64"), "2.weight": xn.tensor(w2, dtype="float64")})
    return model


def half_squared_error(y_hat, y):
    return 0.5 * ((y_hat - y) ** 2).sum()


def by_autograd(x=X, y=Y, w1=W1, w2=W2):
    """The same loss and gradients from backward()."""
    model = network(w1, w2)
    loss = half_squared_error(model(xn.tensor([x], dtype="float64")), xn.tensor([y], dtype="float64"))
    loss.backward()
    return {"loss": loss.item(), "dW1": model[0].weight.grad.tolist(), "dW2": model[2].weight.grad.tolist()}


def max_difference(a, b):
    return max(abs(u - v) for ra, rb in zip(a, b) for u, v in zip(ra, rb))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, default=0.5)
    args = p.parse_args(argv)

    hand, auto = by_hand(), by_autograd()
    print(f"input x = {X}, label y = {Y}")
    print(f"hidden h = [{', '.join(f'{v:.6f}' for v in hand['h'])}]")
    print(f"output y_hat = [{', '.join(f'{v:.6f}' for v in hand['y_hat'])}]")
    print(f"loss 1/2 sum (y_hat - y)^2 = {hand['loss']:.8f} (backward: {auto['loss']:.8f})")

    y1, h1 = hand["y_hat"][0], hand["h"][0]
    w7_hand, w7_auto = hand["dW2"][0][0], auto["dW2"][0][0]
    print("dL/dw7 = (y_hat_1 - y_1) * y_hat_1 (1 - y_hat_1) * h1")
    print(f"       = ({y1:.6f} - {Y[0]:g}) * {y1:.6f} * {1 - y1:.6f} * {h1:.6f}")
    print(f"       = {w7_hand:.10f} by hand")
    print(f"         {w7_auto:.10f} from backward()")

    print("all weights (hand | backward):")
    for name, k in (("W2 (w7..w12)", "dW2"), ("W1 (w1..w6)", "dW1")):
        print(f"  dL/d{name}")
        for rh, ra in zip(hand[k], auto[k]):
            print("    " + "  ".join(f"{v: .10f}" for v in rh) + "   |  " + "  ".join(f"{v: .10f}" for v in ra))
    diff = max(max_difference(hand["dW1"], auto["dW1"]), max_difference(hand["dW2"], auto["dW2"]))
    print(f"largest difference: {diff:.2e}")

    new_w1 = [[w - args.lr * g for w, g in zip(rw, rg)] for rw, rg in zip(W1, hand["dW1"])]
    new_w2 = [[w - args.lr * g for w, g in zip(rw, rg)] for rw, rg in zip(W2, hand["dW2"])]
    after = by_hand(w1=new_w1, w2=new_w2)["loss"]
    print(f"one gradient-descent step (lr {args.lr}): w7 {W2[0][0]} -> {new_w2[0][0]:.6f}, "
          f"loss {hand['loss']:.6f} -> {after:.6f}")
    return {"hand": hand, "autograd": auto, "w7": (w7_hand, w7_auto), "max_difference": diff,
            "loss_after_step": after}


if __name__ == "__main__":
    main()
