"""clip_grad_norm_ / clip_grad_value_ against torch.nn.utils, on every backend."""

import math

import numpy as np
import pytest

import xpnet as xn
from xpnet.nn import Parameter
from xpnet.nn.utils import clip_grad_norm_, clip_grad_value_, get_total_norm

from conftest import to_np

SHAPES = [(3, 4), (5,), (2, 2, 2)]


def _pair(seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    grads = [rng.normal(size=s) for s in SHAPES]
    xs = [Parameter(xn.tensor(np.zeros(s), dtype=dtype)) for s in SHAPES]
    for p, g in zip(xs, grads):
        p.grad = xn.tensor(g, dtype=dtype)
    return xs, grads


def _torch_params(torch, grads):
    ts = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads]
    for p, g in zip(ts, grads):
        p.grad = torch.tensor(g)
    return ts


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0, 0.5])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(bk, norm_type, max_norm):
    torch = pytest.importorskip("torch")
    xs, grads = _pair()
    ts = _torch_params(torch, grads)
    total = clip_grad_norm_(xs, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(ts, max_norm, norm_type=norm_type)
    assert isinstance(total, xn.Tensor) and total.shape == () and total.backend is bk
    np.testing.assert_allclose(to_np(total), ttotal.numpy(), rtol=1e-12)
    for p, q, g in zip(xs, ts, grads):
        np.testing.assert_allclose(to_np(p.grad), q.grad.numpy(), rtol=1e-12, atol=1e-15)
    new_total = float(get_total_norm([p.grad for p in xs], norm_type))
    if max_norm < float(total):
        assert new_total == pytest.approx(max_norm, rel=1e-5)
    else:
        np.testing.assert_array_equal(to_np(xs[0].grad), grads[0])


def test_clip_grad_value_matches_torch(bk):
    torch = pytest.importorskip("torch")
    xs, grads = _pair(1)
    ts = _torch_params(torch, grads)
    assert clip_grad_value_(xs, 0.7) is None
    torch.nn.utils.clip_grad_value_(ts, 0.7)
    for p, q in zip(xs, ts):
        np.testing.assert_array_equal(to_np(p.grad), q.grad.numpy())
    assert max(float(np.abs(to_np(p.grad)).max()) for p in xs) == 0.7


def test_single_tensor_none_grads_and_float32(bk):
    xs, grads = _pair(2, dtype="float32")
    xs[1].grad = None
    total = clip_grad_norm_(xs, 1.0)
    expected = math.sqrt(sum(float((g.astype(np.float32) ** 2).sum()) for g in (grads[0], grads[2])))
    assert total.dtype == bk.xp.float32
    assert float(total) == pytest.approx(expected, rel=1e-5)
    assert xs[1].grad is None
    one = clip_grad_norm_(xs[0], 1e-3)
    assert float(get_total_norm(xs[0].grad)) == pytest.approx(1e-3, rel=1e-3)
    assert float(one) > 0
    clip_grad_value_(xs[2], 0.1)
    assert float(np.abs(to_np(xs[2].grad)).max()) <= 0.1 + 1e-7
    empty = clip_grad_norm_([Parameter(xn.tensor([1.0]))], 1.0)
    assert float(empty) == 0.0


def test_nonfinite(bk):
    xs, grads = _pair(3)
    xs[0].grad = xn.tensor(np.full(SHAPES[0], np.nan), dtype="float64")
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(xs, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(to_np(xs[1].grad), grads[1])  # nothing was clipped
    assert math.isnan(float(clip_grad_norm_(xs, 1.0)))
