"""Mixed precision: xpnet.GradScaler against torch.amp.GradScaler (the same scales, skipped steps
and parameters over steps with finite and non-finite gradients; unscale_; state_dict), and
xpnet.autocast (low-precision matrix products, float32 norms and losses, float32 gradients) on
the CPU backends that have float16 (numpy, torch, jax) and bfloat16 (torch, jax)."""

import math

import numpy as np
import pytest

import xpnet as xn
from xpnet import nn, optim
from conftest import to_np

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]])


def _run_xpnet(inputs, **kw):
    m = nn.Linear(3, 1).to("float64")
    m.load_state_dict({"weight": np.array([[0.1, -0.2, 0.3]]), "bias": np.array([0.05])})
    opt = optim.SGD(m.parameters(), lr=0.1)
    scaler = xn.GradScaler(**kw)
    scales, weights = [], []
    for x in inputs:
        opt.zero_grad()
        scaler.scale((m(xn.tensor(x, dtype="float64")) ** 2).mean()).backward()
        scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        weights.append(to_np(m.weight).copy())
    return scales, weights, scaler


def _run_torch(inputs, **kw):
    torch = pytest.importorskip("torch")
    m = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[0.1, -0.2, 0.3]], dtype=torch.float64))
        m.bias.copy_(torch.tensor([0.05], dtype=torch.float64))
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", **kw)
    scales, weights = [], []
    for x in inputs:
        opt.zero_grad()
        scaler.scale((m(torch.tensor(x)) ** 2).mean()).backward()
        scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        weights.append(m.weight.detach().numpy().copy())
    return scales, weights


def test_matches_torch_grad_scaler(bk):
    bad = X.copy()
    bad[0, 0] = math.inf  # an inf gradient: the step is skipped and the scale backs off
    inputs = [X, X, bad, X, X, X]
    kw = dict(init_scale=1024.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=2)
    scales, weights, scaler = _run_xpnet(inputs, **kw)
    tscales, tweights = _run_torch(inputs, **kw)
    assert scales == tscales == [1024.0, 2048.0, 1024.0, 1024.0, 2048.0, 2048.0]
    for w, tw in zip(weights, tweights):
        np.testing.assert_allclose(w, tw, rtol=1e-12)
    np.testing.assert_array_equal(weights[2], weights[1])  # the skipped step changed nothing
    state = scaler.state_dict()
    assert state["scale"] == 2048.0 and state["_growth_tracker"] == 1
    other = xn.GradScaler()
    other.load_state_dict(state)
    assert other.get_scale() == 2048.0


def test_unscale_twice_and_bad_arguments(bk):
    m = nn.Linear(3, 1)
    opt = optim.SGD(m.parameters(), lr=0.1)
    scaler = xn.GradScaler(init_scale=8.0)
    scaler.scale(m(xn.tensor(X, dtype="float32")).sum()).backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already"):
        scaler.unscale_(opt)
    with pytest.raises(ValueError, match="growth_factor"):
        xn.GradScaler(growth_factor=0.5)
    off = xn.GradScaler(enabled=False)
    assert off.scale(3.0) == 3.0 and off.get_scale() == 1.0


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_autocast_low_matmul_float32_loss(bk, dtype):
    if (dtype == "bfloat16" and bk.name not in ("torch", "jax")) or bk.name == "array_api_strict":
        pytest.skip(f"{bk.name} has no {dtype} arrays")
    xn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    x = xn.tensor(X, dtype="float32")
    y = xn.tensor([0, 1], dtype="int64")
    ref = nn.CrossEntropyLoss()(model(x), y)
    with xn.autocast(dtype=dtype):
        h = model[0](x)
        assert str(h.dtype).endswith(dtype)  # the matrix product in the low precision
        assert str(model[1](h).dtype).endswith("float32")  # the norm in float32
        out = model(x)
        loss = nn.CrossEntropyLoss()(out, y)
    assert str(out.dtype).endswith(dtype) and str(loss.dtype).endswith("float32")
    assert abs(loss.item() - ref.item()) < 0.05  # close to the float32 loss
    loss.backward()
    for p in model.parameters():  # float32 parameters get float32 gradients
        assert str(p.grad.dtype).endswith("float32")
    assert str(model[0](x).dtype).endswith("float32")  # off again outside the block
    with pytest.raises(ValueError, match="float16 or bfloat16"):
        xn.autocast(dtype="float64")


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_trainer_precision(bk, precision):
    if bk.name == "array_api_strict" or (precision == "bf16-mixed" and bk.name not in ("torch", "jax")):
        pytest.skip(f"{bk.name} lacks the dtype")
    if bk.name == "jax":
        pytest.skip("jax: the autocast test covers it (each shape compiles)")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    xn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 2))
    trainer = xn.Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.05), backend=bk,
                         precision=precision, clip_grad_norm=1.0, verbose=0)
    history = trainer.fit(x, y, epochs=4, batch_size=16)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert (trainer.scaler is not None) == (precision == "16-mixed")
    assert all(str(p.dtype).endswith("float32") for p in model.parameters())  # master weights stay float32
    with pytest.raises(ValueError, match="precision"):
        xn.Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), precision="8-mixed")
