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
    with pytest.raises(ValueError, match="16-mixed"):
        xn.Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), precision="bf16-mixed",
                   scaler=xn.GradScaler())
    with pytest.raises(TypeError, match="GradScaler"):
        xn.Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), precision="16-mixed",
                   scaler={"init_scale": 2.0})


# ------------------------------------------------------------------ the scaler in checkpoints

def _mixed_trainer(bk, scaler_kw):
    xn.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    scaler = xn.GradScaler(**scaler_kw)  # a small growth_interval: the scale moves within the test
    trainer = xn.Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.01), backend=bk,
                         precision="16-mixed", scaler=scaler, verbose=0)
    assert trainer.scaler is scaler
    return trainer


def _mixed_data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((48, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")


class _StopAt(xn.train.Callback):
    """Records the scale after every step; stops training (as Ctrl-C does) after global step ``step``."""

    def __init__(self, step=None):
        self.step, self.scales = step, {}

    def on_train_batch_end(self, batch, logs=None):
        self.scales[self.trainer.global_step] = self.trainer.scaler.get_scale()
        if self.trainer.global_step == self.step:
            self.trainer.interrupted = True


@pytest.mark.parametrize("interrupt_at", [9, 15])  # in the second and the third epoch (6 steps each)
def test_trainer_resume_restores_the_scaler(bk, tmp_path, interrupt_at):
    """An interrupted 16-mixed run resumed from its backup takes the steps, with the scales, of a run
    never interrupted, and ends with its scale, growth tracker, weights and epoch losses (a fresh
    scaler would start again at init_scale)."""
    if bk.name in ("array_api_strict", "jax"):
        pytest.skip(f"{bk.name}: float16 training is covered on numpy and torch (jax compiles every shape)")
    kw = dict(init_scale=2.0 ** 20, growth_interval=3)  # 2**20 overflows float16 gradients: skips and backoffs
    x, y = _mixed_data()
    fit = dict(epochs=3, batch_size=8, seed=0)
    straight, record = _mixed_trainer(bk, kw), _StopAt()
    want = straight.fit(x, y, callbacks=[record], **fit).history["loss"]
    assert len(set(record.scales.values())) >= 3  # the scale backs off and grows during the run

    backup = xn.train.BackupAndRestore(tmp_path / "backup")
    first = _mixed_trainer(bk, kw)
    first.fit(x, y, callbacks=[backup, _StopAt(interrupt_at)], **fit)
    assert first.interrupted and backup.path.exists()
    assert first.scaler.get_scale() == record.scales[interrupt_at] != kw["init_scale"]  # restoring it matters

    resumed, after = _mixed_trainer(bk, kw), _StopAt()
    assert resumed.scaler.get_scale() == kw["init_scale"]
    got = resumed.fit(x, y, callbacks=[backup, after], **fit).history["loss"]
    assert after.scales == {s: v for s, v in record.scales.items() if s > interrupt_at}
    assert resumed.scaler.state_dict() == straight.scaler.state_dict()
    stopped_in = (interrupt_at - 1) // 6  # that epoch's mean loss covers only the steps after the resume
    assert len(got) == len(want) and got[:stopped_in] == want[:stopped_in]  # from the saved history
    assert got[stopped_in + 1:] == want[stopped_in + 1:]
    for p, q in zip(resumed.model.parameters(), straight.model.parameters()):
        np.testing.assert_array_equal(to_np(p), to_np(q))


class _FakeScaler:
    def __init__(self, state):
        self.state = state

    def state_dict(self):
        return self.state


GOOD = {"scale": 512.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 100, "_growth_tracker": 7}


@pytest.mark.parametrize("bad, why", [
    (None, "no GradScaler state"),
    ({}, "empty"),
    ({**GOOD, "scale": -1.0}, "scale is -1.0"),
    ({**GOOD, "scale": math.inf}, "scale is inf"),
    ({**GOOD, "scale": "big"}, "scale is 'big'"),
    ({k: v for k, v in GOOD.items() if k != "_growth_tracker"}, "missing _growth_tracker"),
    ({**GOOD, "growth_factor": 1.0}, "growth_factor is 1.0"),
    ({**GOOD, "backoff_factor": 1.5}, "backoff_factor is 1.5"),
    ({**GOOD, "growth_interval": 2.5}, "growth_interval is 2.5"),
    ({**GOOD, "_growth_tracker": 100}, "_growth_tracker is 100"),
    ([1, 2], "expected a dict"),
])
def test_checkpoint_refuses_a_missing_or_bad_scaler_state(tmp_path, bad, why):
    m = nn.Linear(3, 2)
    path = tmp_path / "c.safetensors"
    xn.save(path, m, scaler=None if bad is None else _FakeScaler(bad))
    target, scaler = nn.Linear(3, 2), xn.GradScaler(init_scale=64.0)
    before, state = to_np(target.weight).copy(), scaler.state_dict()
    with pytest.raises(xn.CheckpointError, match=why) as e:
        xn.load(path, target, scaler=scaler)
    assert str(path) in str(e.value)
    np.testing.assert_array_equal(to_np(target.weight), before)  # nothing changed
    assert scaler.state_dict() == state


def test_checkpoint_round_trip_and_torch_state(tmp_path):
    torch = pytest.importorskip("torch")
    m = nn.Linear(3, 2)
    path = tmp_path / "c.safetensors"
    xn.save(path, m, scaler=_FakeScaler(dict(GOOD)))
    scaler = xn.GradScaler()
    xn.load(path, nn.Linear(3, 2), scaler=scaler)
    assert scaler.state_dict() == GOOD and scaler.get_scale() == 512.0
    xn.load(path, nn.Linear(3, 2))  # without a scaler the state is left in the file
    off = xn.GradScaler(enabled=False)
    xn.load(tmp_path / "c.safetensors", nn.Linear(3, 2), scaler=off)  # a disabled scaler has nothing to restore
    assert off.state_dict() == {}
    # PyTorch's GradScaler reads xpnet's state dict and the other way round (the same keys)
    ts = torch.amp.GradScaler("cpu")
    ts.load_state_dict(scaler.state_dict())
    assert ts.state_dict() == GOOD
    back = xn.GradScaler()
    back.load_state_dict(ts.state_dict())
    assert back.state_dict() == GOOD
    with pytest.raises(RuntimeError, match="empty"):
        back.load_state_dict({})
    with pytest.raises(ValueError, match="backoff_factor"):
        back.load_state_dict({**GOOD, "scale": 4.0, "backoff_factor": 0.0})
    assert back.state_dict() == GOOD  # the refused state changed nothing


def test_cli_precision_16_mixed_resumes_the_scaler(tmp_path, monkeypatch):
    """``xpnet train --precision 16-mixed``: the scaler state goes in the checkpoints; a run stopped
    in its second epoch and continued with ``--resume`` ends as the uninterrupted run."""
    import json

    from safetensors import safe_open

    from xpnet import cli
    args = ["train", "--dataset", "iris", "--epochs", "3", "--hidden", "16", "--precision", "16-mixed",
            "--verbose", "0"]
    assert cli.main([*args, "--out", str(tmp_path / "straight")]) == 0
    step = xn.Trainer.train_step

    def stop_at_7(self, *a, **k):
        out = step(self, *a, **k)
        if self.global_step == 7:
            self.interrupted = True
        return out

    monkeypatch.setattr(xn.Trainer, "train_step", stop_at_7)
    stopped = tmp_path / "stopped"
    assert cli.main([*args, "--out", str(stopped)]) == cli.INTERRUPTED
    with safe_open(str(stopped / "backup" / "backup.safetensors"), "np") as f:
        assert json.loads(f.metadata()["scaler"])["scale"] == 65536.0
    monkeypatch.setattr(xn.Trainer, "train_step", step)
    assert cli.main(["train", "--resume", str(stopped), "--verbose", "0"]) == 0
    files = [safe_open(str(tmp_path / run / "last.safetensors"), "np") for run in ("straight", "stopped")]
    assert files[0].metadata()["scaler"] == files[1].metadata()["scaler"]
    for k in files[0].keys():
        np.testing.assert_array_equal(files[0].get_tensor(k), files[1].get_tensor(k), err_msg=k)


# ------------------------------------------------------------------ autocast: every matrix-product entry point

def _autocast_cases(xn_F, tF):
    """name -> (xpnet function, torch function, input shapes): the entry points of PyTorch's autocast
    op lists that xpnet has (the ``@`` operator both ways, matmul, linear, the convolutions, prelu,
    scaled_dot_product_attention), and bilinear, which PyTorch's autocast leaves in float32."""
    return {
        "a @ b": (lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 5), (5, 4)]),
        "a @ b (1-D)": (lambda a, b: a @ b, lambda a, b: a @ b, [(5,), (5,)]),
        "b.__rmatmul__(a)": (lambda a, b: b.__rmatmul__(a), lambda a, b: b.__rmatmul__(a), [(3, 5), (5, 2)]),
        "a.matmul(b)": (lambda a, b: a.matmul(b), lambda a, b: a.matmul(b), [(4, 5), (2, 5, 3)]),
        "xn.matmul": (xn.matmul, _torch().matmul, [(3, 5), (5, 2)]),
        "linear": (xn_F.linear, tF.linear, [(2, 5), (3, 5), (3,)]),
        "conv1d": (xn_F.conv1d, tF.conv1d, [(1, 2, 7), (3, 2, 3), (3,)]),
        "conv2d": (xn_F.conv2d, tF.conv2d, [(1, 2, 5, 5), (3, 2, 3, 3), (3,)]),
        "conv3d": (xn_F.conv3d, tF.conv3d, [(1, 2, 4, 4, 4), (2, 2, 2, 2, 2), (2,)]),
        "conv_transpose1d": (xn_F.conv_transpose1d, tF.conv_transpose1d, [(1, 2, 5), (2, 3, 3), (3,)]),
        "conv_transpose2d": (xn_F.conv_transpose2d, tF.conv_transpose2d, [(1, 2, 4, 4), (2, 3, 3, 3), (3,)]),
        "conv_transpose3d": (xn_F.conv_transpose3d, tF.conv_transpose3d, [(1, 2, 3, 3, 3), (2, 2, 2, 2, 2), (2,)]),
        "prelu": (xn_F.prelu, tF.prelu, [(2, 3, 4), (3,)]),
        "scaled_dot_product_attention": (xn_F.scaled_dot_product_attention, tF.scaled_dot_product_attention,
                                         [(1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8)]),
        "bilinear": (xn_F.bilinear, tF.bilinear, [(2, 3), (2, 4), (5, 3, 4), (5,)]),
    }


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_autocast_entry_points_follow_torch(bk, dtype):
    """Under autocast each entry point gives PyTorch's output dtype (torch.autocast on the CPU), values
    close to PyTorch's, and float32 gradients for float32 inputs."""
    torch = _torch()
    if (dtype == "bfloat16" and bk.name not in ("torch", "jax")) or bk.name == "array_api_strict":
        pytest.skip(f"{bk.name} has no {dtype} arrays")
    if bk.name == "jax" and dtype == "float16":
        pytest.skip("jax: bfloat16 covers it (each shape compiles)")
    from xpnet.nn import functional as F
    rng = np.random.default_rng(0)
    tdtype = getattr(torch, dtype)
    for name, (fx, ft, shapes) in _autocast_cases(F, torch.nn.functional).items():
        if bk.name == "jax" and name not in ("a @ b", "b.__rmatmul__(a)", "linear", "bilinear"):
            continue  # jax: a few (each shape compiles)
        arrays = [rng.uniform(-1, 1, s).astype("float32") for s in shapes]
        tins = [torch.tensor(a, requires_grad=True) for a in arrays]
        with torch.autocast("cpu", dtype=tdtype):
            want = ft(*tins)
        want.float().sum().backward()
        xins = [xn.tensor(a, requires_grad=True) for a in arrays]
        if name == "b.__rmatmul__(a)":
            xins[0] = xn.tensor(arrays[0]).data  # a raw array on the left
        with xn.autocast(dtype=dtype):
            got = fx(*xins)
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], name
        np.testing.assert_allclose(to_np(got.astype("float32")), want.detach().float().numpy(),
                                   atol=0.03 * float(want.detach().abs().max()), err_msg=name)
        got.astype("float32").sum().backward()
        for x, t in zip(xins, tins):
            if isinstance(x, xn.Tensor):
                assert str(x.grad.dtype).endswith("float32"), name
                np.testing.assert_allclose(to_np(x.grad), t.grad.numpy(), atol=0.03 * float(t.grad.abs().max()) + 1e-3,
                                           err_msg=name)


def test_autocast_leaves_float64_integers_and_constant_products(bk):
    """As PyTorch's autocast: float64 and integer operands are not cast; interpolation, adaptive
    average pooling and embedding_bag (products with constant matrices) keep their input's dtype."""
    if bk.name not in ("torch", "jax"):
        pytest.skip("bfloat16 on torch and jax")
    from xpnet.nn import functional as F
    a = xn.tensor(np.ones((2, 3)))
    i = xn.tensor(np.ones((2, 2), dtype="int64"))
    x = xn.tensor(np.ones((1, 2, 4, 4), dtype="float32"))
    w = xn.tensor(np.ones((5, 3), dtype="float32"))
    with xn.autocast(dtype="bfloat16"):
        assert str((a @ a.T).dtype).endswith("float64") and str(F.linear(a, a).dtype).endswith("float64")
        assert str((i @ i).dtype).endswith("int64")
        assert str(F.interpolate(x, scale_factor=2, mode="bilinear").dtype).endswith("float32")
        assert str(F.adaptive_avg_pool2d(x, 3).dtype).endswith("float32")
        assert str(F.embedding_bag(xn.tensor(np.array([[0, 1]])), w).dtype).endswith("float32")
        assert str((x @ x).dtype).endswith("bfloat16")


def test_autocast_losses_follow_torch(bk):
    """Under autocast, low-precision inputs give each loss PyTorch's result dtype (float32 for those of
    its autocast lists; the input's for multilabel_soft_margin, triplet_margin_with_distance and
    gaussian_nll), and values close to PyTorch's."""
    torch = _torch()
    if bk.name != "torch":
        pytest.skip("bfloat16 on torch (jax has it too, but each loss compiles; the casts are backend-neutral)")
    from xpnet.nn import functional as F
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    y = np.array([1.0, -1.0, 1.0, -1.0])
    yi, ml = np.array([0, 1, 2, 1]), np.array([[0, 1, -1], [2, -1, 0], [1, -1, 0], [0, -1, 0]])
    lp = np.log(rng.dirichlet(np.ones(4), size=(5, 1)))
    cases = {  # name -> (call with the functional module and a converter of floats to bfloat16 tensors)
        "cosine_embedding_loss": lambda f, t: f.cosine_embedding_loss(t(a), t(b), t(y)),
        "margin_ranking_loss": lambda f, t: f.margin_ranking_loss(t(a[:, 0]), t(b[:, 0]), t(y)),
        "hinge_embedding_loss": lambda f, t: f.hinge_embedding_loss(t(a[:, 0]), t(y)),
        "multi_margin_loss": lambda f, t: f.multi_margin_loss(t(a), t(yi)),
        "multilabel_margin_loss": lambda f, t: f.multilabel_margin_loss(t(a), t(ml)),
        "multilabel_soft_margin_loss": lambda f, t: f.multilabel_soft_margin_loss(t(a), t((b > 0) * 1.0)),
        "soft_margin_loss": lambda f, t: f.soft_margin_loss(t(a[:, 0]), t(y)),
        "triplet_margin_loss": lambda f, t: f.triplet_margin_loss(t(a), t(b), t(2 * a)),
        "triplet_margin_with_distance_loss": lambda f, t: f.triplet_margin_with_distance_loss(t(a), t(b), t(2 * a)),
        "gaussian_nll_loss": lambda f, t: f.gaussian_nll_loss(t(a), t(b), t(np.ones((4, 3)))),
        "poisson_nll_loss": lambda f, t: f.poisson_nll_loss(t(a), t(np.abs(b))),
        "kl_div": lambda f, t: f.kl_div(t(a), t(np.abs(b)), reduction="batchmean"),
        "ctc_loss": lambda f, t: f.ctc_loss(t(lp), t(np.array([[1, 2]])), [5], [2]),
    }

    def tt(v):
        return torch.tensor(v) if v.dtype.kind == "i" else torch.tensor(v, dtype=torch.bfloat16)

    def xt(v):
        return xn.tensor(v) if v.dtype.kind == "i" else xn.tensor(v, dtype="bfloat16")

    for name, call in cases.items():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            want = call(torch.nn.functional, tt)
        with xn.autocast(dtype="bfloat16"):
            got = call(F, xt)
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], name
        np.testing.assert_allclose(float(got.astype("float32").item()), float(want.float()), rtol=0.03, atol=0.02,
                                   err_msg=name)
