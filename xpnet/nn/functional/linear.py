"""``linear``: x @ W.T + b as one fused operation."""

from __future__ import annotations

from ...autograd.functions import _matmul, flatten, reshape, sum
from ...autograd.tensor import Function
from ...autograd.autocast_state import to_low

__all__ = ["linear", "bilinear"]


class Linear(Function):
    """y = x @ W.T + b with W of shape (out, in), as PyTorch lays it out."""

    def forward(self, xp, x, w, b=None):
        # the operator reaches the library directly; xp.matmul promotes mixed dtypes
        y = x @ w.mT if x.dtype == w.dtype else xp.matmul(x, w.mT)
        return y if b is None else y + b

    def backward(self, g, y, x, w, b=None):
        # matmul and .mT work on raw arrays (plain backward) and on tensors (create_graph)
        gx = _matmul(g, w) if self.needs[0] else None
        gw = gb = None
        if self.needs[1]:
            if len(x.shape) == 1:  # one sample: an outer product
                g2, x2 = reshape(g, (1, -1)), reshape(x, (1, -1))
            else:
                g2, x2 = (g, x) if len(x.shape) == 2 else (flatten(g, 0, -2), flatten(x, 0, -2))
            gw = _matmul(g2.mT, x2)
        if b is not None and self.needs[2]:
            gb = sum(g, tuple(range(len(g.shape) - 1))) if len(g.shape) > 1 else g
        return gx, gw, gb


def linear(x, weight, bias=None):
    """``x @ weight.T + bias`` for ``x`` of shape (..., in) and ``weight`` (out, in) (in the
    low precision under ``xpnet.autocast``)."""
    x, weight, bias = to_low(x, weight, bias)
    return Linear()(x, weight) if bias is None else Linear()(x, weight, bias)


def bilinear(input1, input2, weight, bias=None):
    """y_o = x1^T W_o x2 + b_o for x1 (..., in1), x2 (..., in2), ``weight`` (out, in1, in2) and
    ``bias`` (out,): one matrix product with W laid out (in1, out * in2), then a product with x2
    and a sum over in2 (as ``torch.nn.functional.bilinear``).  Not cast under ``xpnet.autocast``
    (float32 inputs give float32, as PyTorch's autocast, which lists bilinear among the ops that
    run in the widest input dtype)."""
    from ...autograd.functions import _shape, permute
    from ...autograd.tensor import _raw
    ws, s1, s2 = _shape(_raw(weight)), _shape(_raw(input1)), _shape(_raw(input2))
    if len(ws) != 3 or s1[-1:] != ws[1:2] or s2[-1:] != ws[2:3] or s1[:-1] != s2[:-1]:
        raise ValueError(f"bilinear: expected input1 (..., {ws[1:2]}), input2 (..., {ws[2:3]}) with the same "
                         f"leading shape and weight (out, in1, in2): got {s1}, {s2} and weight {ws}")
    out, in1, in2 = ws
    t = _matmul(input1, reshape(permute(weight, (1, 0, 2)), (in1, out * in2)))
    y = sum(reshape(t, s1[:-1] + (out, in2)) * reshape(input2, s2[:-1] + (1, in2)), -1)
    return y if bias is None else y + bias
