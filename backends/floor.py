"""The floor: a training step written by hand against a NumPy-like module ``xp`` (NumPy or CuPy),
the speed any framework on that library can reach.  ``backends/bench.py`` races xpnet and
PyTorch against it; ``tests/test_bench.py`` checks its gradients against xpnet's."""

from __future__ import annotations

import math


def softmax_xent(xp, z, onehot):
    """Mean softmax cross-entropy of logits ``z`` and its gradient."""
    n = z.shape[0]
    z = z - z.max(axis=1, keepdims=True)
    e = xp.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = xp.log(s).mean() - (z * onehot).sum() / n
    return loss, (e / s - onehot) / n


def mlp_grads(xp, params, X, onehot):
    """Loss and gradients (state-dict order) of a ReLU MLP ``params = [W0, b0, W1, b1, ...]``."""
    Ws, bs = params[0::2], params[1::2]
    hs = [X]
    for W, b in zip(Ws[:-1], bs[:-1]):
        hs.append(xp.maximum(hs[-1] @ W.T + b, 0))
    loss, g = softmax_xent(xp, hs[-1] @ Ws[-1].T + bs[-1], onehot)
    grads = [None] * len(params)
    for i in reversed(range(len(Ws))):
        grads[2 * i], grads[2 * i + 1] = g.T @ hs[i], g.sum(axis=0)
        if i:
            g = (g @ Ws[i]) * (hs[i] > 0)
    return loss, grads


def conv1d_forward(xp, x, W, b, stride, pad):
    """``(y, cols)`` for channels-last ``x`` (N, L, C) and PyTorch's ``W`` (O, C, k): im2col
    by one strided slice per kernel offset, then one matmul; ``y`` is (N, Lo, O)."""
    N, L, C = x.shape
    O, _, k = W.shape
    xpad = xp.pad(x, ((0, 0), (pad, pad), (0, 0)))
    Lo = (L + 2 * pad - k) // stride + 1
    span = stride * (Lo - 1) + 1
    cols = xp.concatenate([xpad[:, j:j + span:stride, :] for j in range(k)], axis=2).reshape(N * Lo, k * C)
    y = cols @ W.transpose(0, 2, 1).reshape(O, k * C).T + b
    return y.reshape(N, Lo, O), cols


def conv1d_backward(xp, g, x_shape, W, cols, stride, pad, need_input=True):
    """``(gx, gW, gb)`` of :func:`conv1d_forward`; col2im adds the shifted slices back."""
    N, L, C = x_shape
    O, _, k = W.shape
    Lo = g.shape[1]
    g2 = g.reshape(N * Lo, O)
    gW, gb = (g2.T @ cols).reshape(O, k, C).transpose(0, 2, 1), g2.sum(axis=0)
    if not need_input:
        return None, gW, gb
    gcols = (g2 @ W.transpose(0, 2, 1).reshape(O, k * C)).reshape(N, Lo, k, C)
    span = stride * (Lo - 1) + 1
    gx = xp.zeros((N, L + 2 * pad, C), dtype=g.dtype)
    for j in range(k):
        gx[:, j:j + span:stride, :] += gcols[:, :, j, :]
    return gx[:, pad:pad + L, :], gW, gb


def cnn_grads(xp, params, X, onehot):
    """Loss and gradients of the cnn1d model on channels-last ``X`` (N, L, 1)."""
    h, cache, n_convs = X, [], len(params) // 2 - 1
    for i in range(n_convs):
        z, cols = conv1d_forward(xp, h, params[2 * i], params[2 * i + 1], 2, 1)
        cache.append((h.shape, cols, z))
        h = xp.maximum(z, 0)
    flat = h.transpose(0, 2, 1).reshape(h.shape[0], -1)  # PyTorch's Flatten order: (N, C, L)
    W, b = params[-2], params[-1]
    loss, g = softmax_xent(xp, flat @ W.T + b, onehot)
    grads = [None] * len(params)
    grads[-2], grads[-1] = g.T @ flat, g.sum(axis=0)
    N, Lo, C = h.shape
    g = (g @ W).reshape(N, C, Lo).transpose(0, 2, 1)
    for i in reversed(range(n_convs)):
        shape, cols, z = cache[i]
        g, grads[2 * i], grads[2 * i + 1] = conv1d_backward(xp, g * (z > 0), shape, params[2 * i], cols, 2, 1,
                                                            need_input=i > 0)
    return loss, grads


def floor_step(xp, w, params, X, onehot):
    """The hand-written training step of workload ``w`` (its ``kind``, ``opt`` and ``lr``) on arrays of
    ``xp`` (updates ``params`` in place)."""
    grads_of = mlp_grads if w.kind == "mlp" else cnn_grads
    lr = w.lr
    if w.opt == "sgd":
        def step():
            _, grads = grads_of(xp, params, X, onehot)
            for p, g in zip(params, grads):
                p -= lr * g
        return step
    b1, b2, eps = 0.9, 0.999, 1e-8
    m = [xp.zeros_like(p) for p in params]
    v = [xp.zeros_like(p) for p in params]
    t = [0]

    def step():
        _, grads = grads_of(xp, params, X, onehot)
        t[0] += 1
        step_size, bc2 = lr / (1 - b1 ** t[0]), math.sqrt(1 - b2 ** t[0])
        for p, g, m_, v_ in zip(params, grads, m, v):
            m_ += (1 - b1) * (g - m_)
            v_ *= b2
            v_ += (1 - b2) * (g * g)
            p -= step_size * (m_ / (xp.sqrt(v_) / bc2 + eps))
    return step
