"""Learning-rate schedulers: 50 steps against torch.optim.lr_scheduler (get_last_lr and
momentum), state dicts, and bad input."""

import math
import warnings

import numpy as np
import pytest

import xpnet as xn
from xpnet import optim
from xpnet.nn import Parameter
from xpnet.optim import lr_scheduler as S

STEPS = 50


def _xopt(cls=optim.SGD, **kw):
    ps = [Parameter(xn.tensor(np.ones(2), dtype="float64")) for _ in range(2)]
    return cls([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.01}], lr=0.1, **kw)


def _topt(torch, name="SGD", **kw):
    ps = [torch.nn.Parameter(torch.ones(2, dtype=torch.float64)) for _ in range(2)]
    return getattr(torch.optim, name)([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.01}], lr=0.1, **kw)


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum") for g in opt.param_groups]


def _compare(bk, make, steps=STEPS, opt="SGD", opt_kw=None, metrics=None):
    """Build the same schedule on an xpnet and a torch optimizer and compare every step."""
    torch = pytest.importorskip("torch")
    opt_kw = opt_kw or {}
    xo, to = _xopt(getattr(optim, opt), **opt_kw), _topt(torch, opt, **opt_kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xs, ts = make(S, xo), make(torch.optim.lr_scheduler, to)
        lrs = set()
        for t in range(steps + 1):
            assert xs.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-16), t
            assert [g["lr"] for g in xo.param_groups] == pytest.approx([g["lr"] for g in to.param_groups],
                                                                       rel=1e-12, abs=1e-16)
            assert _momenta(xo) == pytest.approx(_momenta(to), rel=1e-12), t
            lrs.add(round(xs.get_last_lr()[0], 12))
            if t == steps:
                break
            to.step()
            if metrics is None:
                xs.step()
                ts.step()
            else:
                xs.step(metrics(t, bk))
                ts.step(float(metrics(t, None)))
    assert len(lrs) >= 2  # the schedule did something
    return xs


SCHEDULES = {
    "StepLR": lambda s, o: s.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda s, o: s.MultiStepLR(o, milestones=[5, 12, 12, 30], gamma=0.3),
    "ExponentialLR": lambda s, o: s.ExponentialLR(o, gamma=0.95),
    "CosineAnnealingLR": lambda s, o: s.CosineAnnealingLR(o, T_max=20, eta_min=0.001),
    "LinearLR": lambda s, o: s.LinearLR(o),
    "LinearLR-decay": lambda s, o: s.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=30),
    "ConstantLR": lambda s, o: s.ConstantLR(o, factor=0.5, total_iters=4),
    "PolynomialLR": lambda s, o: s.PolynomialLR(o, total_iters=30, power=2.0),
    "LambdaLR": lambda s, o: s.LambdaLR(o, lambda e: 0.9 ** e),
    "LambdaLR-per-group": lambda s, o: s.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: 0.97 ** e]),
    "MultiplicativeLR": lambda s, o: s.MultiplicativeLR(o, lambda e: 0.96),
    "CosineAnnealingWarmRestarts": lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.01),
    "OneCycleLR": lambda s, o: s.OneCycleLR(o, max_lr=[1.0, 0.1], total_steps=50),
    "OneCycleLR-linear-3phase": lambda s, o: s.OneCycleLR(
        o, max_lr=0.5, epochs=10, steps_per_epoch=6, pct_start=0.25, anneal_strategy="linear",
        three_phase=True, div_factor=10.0, final_div_factor=100.0, base_momentum=0.8, max_momentum=0.9),
    "SequentialLR-warmup-cosine": lambda s, o: s.SequentialLR(
        o, [s.LinearLR(o, start_factor=0.1, total_iters=5), s.CosineAnnealingLR(o, T_max=45)], milestones=[5]),
    "SequentialLR-three": lambda s, o: s.SequentialLR(
        o, [s.ConstantLR(o, factor=0.5, total_iters=10), s.ExponentialLR(o, gamma=0.9),
            s.StepLR(o, step_size=4, gamma=0.5)], milestones=[8, 20]),
    "ChainedScheduler": lambda s, o: s.ChainedScheduler(
        [s.ConstantLR(o, factor=0.1, total_iters=2), s.ExponentialLR(o, gamma=0.9)]),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_matches_torch(bk, name):
    _compare(bk, SCHEDULES[name])


@pytest.mark.parametrize("opt,kw", [("SGD", dict(momentum=0.9)), ("Adam", {}), ("RMSprop", {})])
def test_one_cycle_cycles_momentum(bk, opt, kw):
    xs = _compare(bk, SCHEDULES["OneCycleLR"], steps=49, opt=opt, opt_kw=kw)
    assert _momenta(xs.optimizer) == pytest.approx([0.95, 0.95])  # back to max_momentum at the end


def _plateau_metric(t, bk):
    """Falls, stalls, falls a little, stalls: as a float, a 0-d tensor or a 0-d raw array."""
    v = 10.0 / (1 + t) if t < 10 else (1.0 if t < 25 else 1.0 - 1e-3 * (t - 24) if t < 30 else 0.995)
    if bk is None or t % 3 == 0:
        return v
    x = xn.tensor(v, dtype="float64")
    return x if t % 3 == 1 else x.data


PLATEAU = {
    "default": dict(patience=3),
    "cooldown-abs": dict(patience=2, cooldown=3, threshold=1e-2, threshold_mode="abs", factor=0.5),
    "max-mode": dict(mode="max", patience=1, factor=0.7),
    "min_lr-list": dict(patience=1, factor=0.5, min_lr=[0.02, 0.001], eps=1e-9),
}


@pytest.mark.parametrize("case", list(PLATEAU))
def test_reduce_on_plateau(bk, case):
    kw = PLATEAU[case]
    _compare(bk, lambda s, o: s.ReduceLROnPlateau(o, **kw), metrics=_plateau_metric)


def test_closed_form_step_epoch(bk):
    torch = pytest.importorskip("torch")
    xo, to = _xopt(), _topt(torch)
    xs, ts = S.StepLR(xo, step_size=3, gamma=0.5), torch.optim.lr_scheduler.StepLR(to, step_size=3, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in (4, 10, 2):
            xs.step(e)
            ts.step(e)
            assert xs.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)


@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR", "OneCycleLR", "SequentialLR-warmup-cosine",
                                  "LambdaLR", "CosineAnnealingWarmRestarts"])
def test_state_dict_resume(bk, name):
    make = SCHEDULES[name]
    o1 = _xopt(momentum=0.9)
    s1 = make(S, o1)
    for _ in range(12):
        o1.step()
        s1.step()
    saved_opt, saved = o1.state_dict(), s1.state_dict()
    assert "optimizer" not in saved
    o2 = _xopt(momentum=0.9)
    s2 = make(S, o2)
    o2.load_state_dict(saved_opt)
    s2.load_state_dict(saved)
    assert s2.get_last_lr() == s1.get_last_lr()
    for _ in range(20):
        s1.step()
        s2.step()
        assert s2.get_last_lr() == pytest.approx(s1.get_last_lr(), rel=1e-14)
        assert _momenta(o2) == pytest.approx(_momenta(o1), rel=1e-14)


def test_plateau_state_dict(bk):
    o1, o2 = _xopt(), _xopt()
    s1, s2 = S.ReduceLROnPlateau(o1, patience=1), S.ReduceLROnPlateau(o2, patience=1)
    for t in range(8):
        s1.step(_plateau_metric(t + 10, None))
    o2.load_state_dict(o1.state_dict())
    s2.load_state_dict(s1.state_dict())
    for t in range(8, 20):
        s1.step(_plateau_metric(t + 10, None))
        s2.step(_plateau_metric(t + 10, None))
        assert s2.get_last_lr() == s1.get_last_lr() and s1.best == s2.best


def test_initial_lr_and_resume(bk):
    o = _xopt()
    S.ExponentialLR(o, gamma=0.5)
    assert [g["initial_lr"] for g in o.param_groups] == [0.1, 0.01]
    fresh = _xopt()
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(fresh, step_size=2, last_epoch=5)
    s = S.StepLR(o, step_size=2, last_epoch=5)
    assert s.last_epoch == 6


def test_bad_arguments(bk):
    o = _xopt()
    with pytest.raises(TypeError, match="Optimizer"):
        S.StepLR(object(), step_size=2)
    with pytest.raises(ValueError, match="total_steps"):
        S.OneCycleLR(o, max_lr=0.1)
    with pytest.raises(ValueError, match="anneal_strategy"):
        S.OneCycleLR(o, max_lr=0.1, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="max_lr has 3 values"):
        S.OneCycleLR(o, max_lr=[0.1, 0.2, 0.3], total_steps=10)
    with pytest.raises(ValueError, match="neither momentum nor betas"):
        S.OneCycleLR(_xopt(optim.Adagrad), max_lr=0.1, total_steps=10)
    s = S.OneCycleLR(_xopt(), max_lr=0.1, total_steps=3)
    for _ in range(3):
        s.step()
    with pytest.raises(ValueError, match="tried to step 4 times"):
        s.step()
    with pytest.raises(ValueError, match="factor should be < 1.0"):
        S.ReduceLROnPlateau(o, factor=1.5)
    with pytest.raises(ValueError, match="mode"):
        S.ReduceLROnPlateau(o, mode="lowest")
    with pytest.raises(ValueError, match="lr_lambda has 3 values"):
        S.LambdaLR(o, [lambda e: 1.0] * 3)
    with pytest.raises(ValueError, match="milestone"):
        S.SequentialLR(o, [S.ConstantLR(o), S.ExponentialLR(o, 0.9)], milestones=[])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        S.SequentialLR(o, [S.ConstantLR(o), S.ReduceLROnPlateau(o)], milestones=[3])
    with pytest.raises(ValueError, match="another optimizer"):
        S.ChainedScheduler([S.ConstantLR(o), S.ExponentialLR(_xopt(), 0.9)])
    with pytest.raises(ValueError, match="start_factor"):
        S.LinearLR(o, start_factor=0.0)


def test_cosine_closed_form_values(bk):
    o = _xopt()
    s = S.CosineAnnealingLR(o, T_max=10, eta_min=0.0)
    for e in range(1, 11):
        s.step()
        assert s.get_last_lr()[0] == pytest.approx(0.05 * (1 + math.cos(math.pi * e / 10)), abs=1e-14)
