"""``foreach=True``: one update over all parameters of a group gives the same numbers as the
loop over parameters (the portable path), on every backend and for every optimizer, and
falls back to the loop when the parameters cannot share flat arrays."""

import numpy as np
import pytest

import xpnet as xn
from xpnet import nn, optim
from xpnet.nn import Parameter
from xpnet.optim.foreach import foreach_default

from conftest import to_np
from test_optim import CASES, STATEFUL, _data, _run, _xparams

ALL = CASES + [("Lion", dict()), ("Lion", dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.1, maximize=True))]


def _count_updates(monkeypatch, opt):
    """Record how many parameters each call of ``opt._update_group`` got."""
    calls = []
    update = opt._update_group

    def counted(xp, group, params, grads):
        calls.append(len(params))
        return update(xp, group, params, grads)

    monkeypatch.setattr(opt, "_update_group", counted)
    return calls


def _every_step(opt, params, grads):
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = xn.tensor(g, dtype="float64")
        opt.step()


def _assert_same(a_params, a_opt, b_params, b_opt):
    for p, q in zip(a_params, b_params):
        assert tuple(p.data.shape) == tuple(q.data.shape)
        np.testing.assert_array_equal(to_np(p), to_np(q))
        sa, sb = a_opt.state[p], b_opt.state[q]
        assert sa.keys() == sb.keys()
        for k, v in sa.items():
            if hasattr(v, "shape"):
                assert tuple(v.shape) == tuple(p.data.shape)
                np.testing.assert_array_equal(to_np(v), to_np(sb[k]))
            else:
                assert v == sb[k]


@pytest.mark.parametrize("name,kwargs", ALL, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ALL)])
def test_foreach_matches_loop(bk, name, kwargs, monkeypatch):
    init, grads = _data(7, 20)
    loop_params, fused_params = _xparams(init), _xparams(init)
    loop = getattr(optim, name)(loop_params, foreach=False, **kwargs)
    fused = getattr(optim, name)(fused_params, foreach=True, **kwargs)
    calls = _count_updates(monkeypatch, fused)
    _every_step(loop, loop_params, grads)
    _every_step(fused, fused_params, grads)
    assert calls == [1] * len(grads)  # one update per step over the three parameters
    _assert_same(loop_params, loop, fused_params, fused)
    assert not np.allclose(to_np(fused_params[0]), init[0])


@pytest.mark.parametrize("name,kwargs", STATEFUL, ids=[n for n, _ in STATEFUL])
def test_foreach_falls_back_when_parameters_skip_steps(bk, name, kwargs):
    """Parameter 2 gets a gradient on even steps only: its step count falls behind, so those
    steps go parameter by parameter; the numbers are the loop's all the same."""
    init, grads = _data(8, 12)
    loop_params, fused_params = _xparams(init), _xparams(init)
    loop = getattr(optim, name)(loop_params, foreach=False, **kwargs)
    fused = getattr(optim, name)(fused_params, foreach=True, **kwargs)
    _run(loop, loop_params, grads, "xpnet")
    _run(fused, fused_params, grads, "xpnet")
    _assert_same(loop_params, loop, fused_params, fused)


@pytest.mark.parametrize("name,kwargs", STATEFUL, ids=[n for n, _ in STATEFUL])
def test_foreach_state_dict_round_trip(bk, name, kwargs):
    """A fused optimizer's state dict is a snapshot, loads into a loop optimizer and back,
    and rebinding parameters or state from outside is noticed."""
    init, grads = _data(9, 30)
    cls = getattr(optim, name)
    a_params = _xparams(init)
    a = cls(a_params, foreach=True, **kwargs)
    _every_step(a, a_params, grads[:10])
    saved = a.state_dict()
    frozen = {k: {n: to_np(v).copy() for n, v in s.items() if hasattr(v, "shape")} for k, s in saved["state"].items()}
    middle = [to_np(p).copy() for p in a_params]
    _every_step(a, a_params, grads[10:20])
    for k, s in saved["state"].items():  # later steps did not change the snapshot
        for n, v in frozen[k].items():
            np.testing.assert_array_equal(to_np(s[n]), v)
    b_params = [Parameter(xn.tensor(m, dtype="float64")) for m in middle]
    b = cls(b_params, foreach=False, **kwargs)
    b.load_state_dict(saved)
    _every_step(b, b_params, grads[10:20])
    _assert_same(a_params, a, b_params, b)
    # back into the fused one, and a parameter rebound from outside: both noticed
    a.load_state_dict(b.state_dict())
    replacement = xn.tensor(np.full(init[1].shape, 0.5), dtype="float64")
    a_params[1].data = replacement.data
    b_params[1].data = xn.tensor(np.full(init[1].shape, 0.5), dtype="float64").data
    _every_step(a, a_params, grads[20:])
    _every_step(b, b_params, grads[20:])
    _assert_same(a_params, a, b_params, b)


def test_foreach_mixed_dtypes_fall_back(bk):
    """float32 and float64 parameters in one group cannot share a flat array: the loop runs."""
    init, grads = _data(10, 5)
    params = [Parameter(xn.tensor(init[0], dtype="float32")), *_xparams(init[1:])]
    ref = [Parameter(xn.tensor(init[0], dtype="float32")), *_xparams(init[1:])]
    fused = optim.Adam(params, lr=0.1, foreach=True)
    loop = optim.Adam(ref, lr=0.1, foreach=False)
    for opt, ps in ((fused, params), (loop, ref)):
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = xn.tensor(g, dtype=p.dtype)
            opt.step()
    _assert_same(ref, loop, params, fused)
    assert params[0].dtype == bk.xp.float32


def test_foreach_trains_a_model_like_the_loop(bk):
    """A small MLP, 15 steps of Adam with and without foreach: the same weights."""
    x = xn.tensor(np.random.default_rng(0).normal(size=(16, 4)), dtype="float32")
    y = xn.tensor(np.arange(16) % 3)
    results = []
    for foreach in (False, True):
        xn.manual_seed(1)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
        opt = optim.AdamW(model.parameters(), lr=0.01, foreach=foreach)
        for _ in range(15):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        results.append({k: to_np(v) for k, v in model.state_dict().items()})
    for k, v in results[0].items():
        np.testing.assert_array_equal(results[1][k], v)


def test_foreach_option_in_param_groups_and_old_state_dicts(bk):
    init, grads = _data(11, 3)
    params = _xparams(init)
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["foreach"] is None
    _every_step(opt, params, grads)
    sd = opt.state_dict()
    del sd["param_groups"][0]["foreach"]  # saved before the option existed
    other = optim.SGD(_xparams(init), lr=0.1, momentum=0.9, foreach=True)
    other.load_state_dict(sd)
    assert other.param_groups[0]["foreach"] is True


def test_foreach_default_is_on_for_gpu_arrays_only(bk):
    x = bk.xp.zeros(3, device=bk.device)
    on_gpu = bk.name in ("cupy", "torch") and xn.backend.device_name(bk.device).startswith("cuda")
    assert foreach_default(bk.xp, x) is on_gpu


@pytest.mark.parametrize("name,kwargs", [("Adam", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9))])
def test_foreach_failed_update_changes_nothing_and_recovers(bk, name, kwargs, monkeypatch):
    """An error inside the one-pass update (say, out of memory) leaves every parameter and
    its state as they were; the next step rebuilds the flat arrays and matches the loop."""
    init, grads = _data(12, 4)
    a_params, b_params = _xparams(init), _xparams(init)
    a = getattr(optim, name)(a_params, foreach=True, **kwargs)
    b = getattr(optim, name)(b_params, foreach=False, **kwargs)
    _every_step(a, a_params, grads[:2])
    _every_step(b, b_params, grads[:2])
    before = [to_np(p).copy() for p in a_params]
    update = a._update_group

    def failing(xp, group, params, gs):
        update(xp, group, params, gs)  # state entries rebound, then
        raise MemoryError("out of memory")

    monkeypatch.setattr(a, "_update_group", failing)
    for p, g in zip(a_params, grads[2]):
        p.grad = xn.tensor(g, dtype="float64")
    with pytest.raises(MemoryError):
        a.step()
    monkeypatch.undo()
    for p, x in zip(a_params, before):
        np.testing.assert_array_equal(to_np(p), x)
    _every_step(a, a_params, grads[2:])
    _every_step(b, b_params, grads[2:])
    _assert_same(b_params, b, a_params, a)
