"""Optimizers: 50 steps against torch.optim with identical gradients (float64), param groups,
state-dict round trips, bad input, closures, and an end-to-end regression on every backend."""

import contextlib

import numpy as np
import pytest

import xpnet as xn
from xpnet import nn, optim
from xpnet.nn import Parameter

from conftest import to_np

SHAPES = [(3, 4), (5,), (2, 1, 3)]
STEPS = 50


@contextlib.contextmanager
def torch_float64():
    """torch keeps host scalars (step, NAdam's mu_product) in its default dtype: make it float64."""
    torch = pytest.importorskip("torch")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield torch
    finally:
        torch.set_default_dtype(old)


def _data(seed=0, steps=STEPS):
    rng = np.random.default_rng(seed)
    init = [rng.normal(size=s) for s in SHAPES]
    grads = [[rng.normal(size=s) for s in SHAPES] for _ in range(steps)]
    return init, grads


def _xparams(init):
    return [Parameter(xn.tensor(a, dtype="float64")) for a in init]


def _set_grads(params, grads, t, lib):
    """Parameter 2 gets a gradient on even steps only (so skipping a parameter is tested too)."""
    for i, (p, g) in enumerate(zip(params, grads)):
        if i == 2 and t % 2:
            p.grad = None
        elif lib == "xpnet":
            p.grad = xn.tensor(g, dtype="float64")
        else:
            import torch
            p.grad = torch.tensor(g)


def _run(opt, params, grads, lib, start=0):
    for t, gs in enumerate(grads, start):
        _set_grads(params, gs, t, lib)
        opt.step()


CASES = [
    ("SGD", dict()),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    ("Adagrad", dict(lr=0.1, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, momentum=0.9, alpha=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, eps=1e-6)),
    ("Adam", dict(lr=0.05, amsgrad=True, maximize=True, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.05, amsgrad=True, weight_decay=0.1)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.05, weight_decay=0.1)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.05, betas=(0.8, 0.95), maximize=True)),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_torch(bk, name, kwargs):
    with torch_float64() as torch:
        init, grads = _data()
        xps = _xparams(init)
        tps = [torch.nn.Parameter(torch.tensor(a)) for a in init]
        frozen = Parameter(xn.tensor(init[0], dtype="float64"))  # never gets a gradient
        xo = getattr(optim, name)(xps + [frozen], **kwargs)
        to = getattr(torch.optim, name)(tps, **kwargs)
        _run(xo, xps, grads, "xpnet")
        _run(to, tps, grads, "torch")
    for p, q, a in zip(xps, tps, init):
        assert p.backend is bk and p.dtype == bk.xp.float64
        assert not np.allclose(to_np(p), a)
        np.testing.assert_allclose(to_np(p), q.detach().numpy(), rtol=1e-10, atol=1e-12)
        for key, v in to.state[q].items():
            if isinstance(v, torch.Tensor) and v.ndim > 0:
                np.testing.assert_allclose(to_np(xo.state[p][key]), v.numpy(), rtol=1e-10, atol=1e-12)
            elif key in ("step", "mu_product"):
                assert xo.state[p][key] == pytest.approx(float(v), rel=1e-12)
    np.testing.assert_array_equal(to_np(frozen), init[0])
    assert frozen not in xo.state or not xo.state[frozen]


def _lion_reference(init, grads, lr, betas, weight_decay):
    ps, ms = [a.copy() for a in init], [np.zeros_like(a) for a in init]
    for t, gs in enumerate(grads):
        for i, g in enumerate(gs):
            if i == 2 and t % 2:
                continue
            ps[i] = ps[i] * (1 - lr * weight_decay) - lr * np.sign(betas[0] * ms[i] + (1 - betas[0]) * g)
            ms[i] = betas[1] * ms[i] + (1 - betas[1]) * g
    return ps


@pytest.mark.parametrize("kwargs", [dict(), dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.1)])
def test_lion_matches_reference(bk, kwargs):
    init, grads = _data(1)
    xps = _xparams(init)
    opt = optim.Lion(xps, **kwargs)
    _run(opt, xps, grads, "xpnet")
    full = dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0) | kwargs
    for p, r, a in zip(xps, _lion_reference(init, grads, **full), init):
        assert not np.allclose(to_np(p), a)
        np.testing.assert_allclose(to_np(p), r, rtol=1e-12, atol=1e-14)


def test_param_groups_per_group_lr(bk):
    with torch_float64() as torch:
        init, grads = _data(2)
        xps, tps = _xparams(init), [torch.nn.Parameter(torch.tensor(a)) for a in init]

        def groups(ps):
            return [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.01, "momentum": 0.5}]

        xo = optim.SGD(groups(xps), lr=0.1, momentum=0.9)
        to = torch.optim.SGD(groups(tps), lr=0.1, momentum=0.9)
        assert xo.param_groups[1]["lr"] == 0.01 and xo.param_groups[1]["weight_decay"] == 0.0
        _run(xo, xps, grads, "xpnet")
        _run(to, tps, grads, "torch")
    for p, q in zip(xps, tps):
        np.testing.assert_allclose(to_np(p), q.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_add_param_group_and_named_parameters(bk):
    model = nn.Linear(3, 2, dtype="float64")
    opt = optim.Adam(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    extra = Parameter(xn.tensor([1.0, 2.0], dtype="float64"))
    opt.add_param_group({"params": [("extra", extra)], "lr": 0.5})
    g = opt.param_groups[1]
    assert g["lr"] == 0.5 and g["betas"] == (0.9, 0.999) and g["params"] == [extra]
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [model.weight]})
    extra.grad = xn.tensor([1.0, -1.0], dtype="float64")
    opt.step()
    np.testing.assert_allclose(to_np(extra), [0.5, 2.5], rtol=1e-6)


STATEFUL = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("RMSprop", dict(centered=True, momentum=0.5)),
    ("Adadelta", dict()),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.05)),
    ("NAdam", dict(lr=0.05)),
    ("Lion", dict(lr=0.01)),
]


@pytest.mark.parametrize("name,kwargs", STATEFUL, ids=[n for n, _ in STATEFUL])
def test_state_dict_round_trip(bk, name, kwargs):
    init, grads = _data(3, 30)
    cls = getattr(optim, name)
    xps = _xparams(init)
    opt = cls(xps, **kwargs)
    _run(opt, xps, grads[:10], "xpnet")
    saved = opt.state_dict()
    middle = [to_np(p).copy() for p in xps]
    snapshot = {k: {n: to_np(v).copy() if hasattr(v, "shape") else v for n, v in s.items()}
                for k, s in saved["state"].items()}
    _run(opt, xps, grads[10:], "xpnet", start=10)
    # the saved dict is a snapshot: later steps did not change it
    for k, s in saved["state"].items():
        for n, v in s.items():
            np.testing.assert_array_equal(to_np(v) if hasattr(v, "shape") else v, snapshot[k][n])
    ys = [Parameter(xn.tensor(m, dtype="float64")) for m in middle]
    opt2 = cls(ys, **(kwargs | {"lr": 123.0}))
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == saved["param_groups"][0]["lr"]
    for v in opt2.state[ys[0]].values():
        if hasattr(v, "shape"):
            assert xn.Tensor(v).backend is bk
    _run(opt2, ys, grads[10:], "xpnet", start=10)
    for p, q in zip(xps, ys):
        np.testing.assert_allclose(to_np(q), to_np(p), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.05, amsgrad=True)),
                                         ("NAdam", dict(lr=0.05)), ("RMSprop", dict(centered=True))])
def test_load_torch_state_dict(bk, name, kwargs):
    """A torch.optim state dict (tensors, float step) loads and training continues identically."""
    with torch_float64() as torch:
        init, grads = _data(4, 20)
        tps = [torch.nn.Parameter(torch.tensor(a)) for a in init]
        to = getattr(torch.optim, name)(tps, **kwargs)
        _run(to, tps, grads[:10], "torch")
        xps = _xparams([q.detach().numpy().copy() for q in tps])
        xo = getattr(optim, name)(xps, **kwargs)
        xo.load_state_dict(to.state_dict())
        _run(to, tps, grads[10:], "torch", start=10)
        _run(xo, xps, grads[10:], "xpnet", start=10)
    assert isinstance(xo.state[xps[0]].get("step", 0), int)
    for p, q in zip(xps, tps):
        np.testing.assert_allclose(to_np(p), q.detach().numpy(), rtol=1e-10, atol=1e-12)


def _snapshot(opt):
    sd = opt.state_dict()
    return sd["param_groups"], {k: {n: id(v) for n, v in s.items()} for k, s in sd["state"].items()}


def test_load_state_dict_mismatch_changes_nothing(bk):
    init, grads = _data(5, 3)
    xps = _xparams(init)
    opt = optim.Adam(xps, lr=0.05)
    _run(opt, xps, grads, "xpnet")
    before = _snapshot(opt)
    good = opt.state_dict()

    def bad(change):
        sd = {"state": {k: dict(v) for k, v in good["state"].items()},
              "param_groups": [dict(g) for g in good["param_groups"]]}
        change(sd)
        return sd

    cases = [
        (lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0])), "parameter group"),
        (lambda sd: sd["param_groups"][0].update(params=[0, 1]), "group 0 has 2 parameter"),
        (lambda sd: sd["state"][1].update(exp_avg=np.zeros((4,))), r"state\[1\]\['exp_avg'\] has shape \(4,\)"),
        (lambda sd: sd["state"].update({7: {"step": 1}}), "parameter 7"),
        (lambda sd: sd["param_groups"][0].pop("betas"), "lacks 'betas'"),
        (lambda sd: sd["state"][0].update(step=np.ones(3)), r"state\[0\]\['step'\]"),
        (lambda sd: sd.pop("state"), "'state' and 'param_groups'"),
    ]
    for change, match in cases:
        with pytest.raises(ValueError, match=match):
            opt.load_state_dict(bad(change))
        assert _snapshot(opt) == before
    sgd = optim.SGD(_xparams(init), momentum=0.9)
    with pytest.raises(ValueError, match="lacks"):
        opt.load_state_dict(sgd.state_dict())
    assert _snapshot(opt) == before


def test_closure(bk):
    xn.manual_seed(0)
    model = nn.Linear(3, 1, dtype="float64")
    twin = nn.Linear(3, 1, dtype="float64")
    twin.load_state_dict(model.state_dict())
    x = xn.tensor(np.random.default_rng(0).normal(size=(6, 3)), dtype="float64")
    opt, opt2 = optim.SGD(model.parameters(), lr=0.1), optim.SGD(twin.parameters(), lr=0.1)
    calls = []

    def closure():
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        calls.append(1)
        return loss

    loss = opt.step(closure)
    assert calls and isinstance(loss, xn.Tensor)
    opt2.zero_grad()
    loss2 = (twin(x) ** 2).mean()
    loss2.backward()
    opt2.step()
    np.testing.assert_allclose(to_np(loss), to_np(loss2), rtol=1e-14)
    np.testing.assert_allclose(to_np(model.weight), to_np(twin.weight), rtol=1e-14)
    assert opt.step() is None


def test_zero_grad(bk):
    p = Parameter(xn.tensor([1.0, 2.0], dtype="float64"))
    opt = optim.SGD([p], lr=0.1)
    p.grad = xn.tensor([1.0, 1.0], dtype="float64")
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(to_np(p.grad), [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None


def test_bad_arguments(bk):
    p = Parameter(xn.tensor([1.0, 2.0], dtype="float64"))
    with pytest.raises(ValueError, match="learning rate -1"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(0.9, 1.5))
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(p)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="can only optimize tensors"):
        optim.SGD([p, 3.0])
    with pytest.raises(ValueError, match="twice"):
        optim.SGD([p, p])
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2])
    opt = optim.SGD([p], lr=0.1)
    p.grad = xn.tensor([1.0, 2.0, 3.0], dtype="float64")
    with pytest.raises(ValueError, match=r"float64\(2,\) has a gradient of float64\(3,\)"):
        opt.step()
    np.testing.assert_array_equal(to_np(p), [1.0, 2.0])


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.05))])
def test_linear_regression_converges(bk, name, kwargs):
    """End to end (float32): the parameters are rebound each step, which also works on JAX."""
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(64, 3))
    w, b = np.array([[1.5, -2.0, 0.5]]), np.array([0.3])
    x = xn.tensor(xs, dtype="float32")
    y = xn.tensor(xs @ w.T + b, dtype="float32")
    xn.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = getattr(optim, name)(model.parameters(), **kwargs)
    for _ in range(150):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    assert model.weight.dtype == bk.xp.float32 and model.weight.backend is bk
    assert float(loss) < 1e-4
    np.testing.assert_allclose(to_np(model.weight), w, atol=1e-2)
    np.testing.assert_allclose(to_np(model.bias), b, atol=1e-2)
