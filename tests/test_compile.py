"""xpnet.compile: a replayed step gives the eager step's numbers on every backend
(bitwise where the same calls run in the same order; JAX within rounding, XLA fuses),
re-traces on a new signature, and falls back (or raises) where it cannot replay."""

import warnings

import numpy as np
import pytest

import xpnet as xn
from xpnet import nn, optim
from xpnet.compile import CompileError, CompileWarning
from xpnet.nn import functional as F
from conftest import to_np

RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 4)).astype("float32")
Y = RNG.integers(0, 3, size=6)
STEPS = 4


def _assert_same(bk, a, b):
    for u, v in zip(a, b):
        if bk.name == "jax":
            np.testing.assert_allclose(v, u, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(v, u)


def _run(bk, make, step_of, compiled, batches=None, steps=STEPS, **kw):
    """Losses and final state of ``steps`` steps, eager or compiled, from the same seed."""
    xn.manual_seed(0)
    model, opt, extra = make()
    step = step_of(model, opt, extra)
    f = xn.compile(step, **kw) if compiled else step
    batches = batches or [(X, Y)] * steps
    losses = []
    for xb, yb in batches:
        out = f(xn.tensor(xb), xn.tensor(yb))
        losses.append(to_np(out))
    state = [to_np(v) for v in model.state_dict().values()]
    state += [to_np(v) for s in opt.state.values() for v in s.values() if hasattr(v, "shape")]
    return losses + state, f


def _compare(bk, make, step_of, **kw):
    eager, _ = _run(bk, make, step_of, False, **kw)
    comp, f = _run(bk, make, step_of, True, **kw)
    assert len(eager) == len(comp)
    _assert_same(bk, eager, comp)
    return f


def _mlp(dropout=0.0, bn=False):
    layers = [nn.Linear(4, 8)] + ([nn.BatchNorm1d(8)] if bn else []) + [nn.ReLU()]
    layers += [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(*layers, nn.Linear(8, 3))


def _plain_step(model, opt, extra):
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


OPTIMIZERS = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2)),
    ("NAdam", dict(lr=1e-2)),
    ("RMSprop", dict(lr=1e-2, momentum=0.5, centered=True)),
    ("Adagrad", dict(lr=1e-1, lr_decay=1e-3)),
    ("Adadelta", dict(lr=1.0)),
    ("Lion", dict(lr=1e-3)),
]


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=[n for n, _ in OPTIMIZERS])
def test_every_optimizer_matches_eager(bk, name, kw, foreach):
    if bk.name == "jax" and name not in ("SGD", "Adam"):
        pytest.skip("JAX: two optimizers are enough (each trace compiles with XLA)")

    def make():
        m = _mlp()
        return m, getattr(optim, name)(m.parameters(), foreach=foreach, **kw), None
    f = _compare(bk, make, _plain_step)
    assert f.program is not None and len(f.program) > 10  # it was traced and replayed


def test_scheduler_changes_lr_between_steps(bk):
    """The learning rate is an input of the program: StepLR's change is followed."""
    def make():
        m = _mlp()
        o = optim.Adam(m.parameters(), lr=0.05)
        return m, o, optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5)

    # the scheduler steps outside the compiled function, between calls
    eager = None
    for compiled in (False, True):
        xn.manual_seed(0)
        m, o, s = make()
        f = xn.compile(_plain_step(m, o, None)) if compiled else _plain_step(m, o, None)
        out = []
        for _ in range(STEPS):
            out.append(to_np(f(xn.tensor(X), xn.tensor(Y))))
            s.step()
        out += [to_np(p.data) for p in m.parameters()]
        if compiled:
            _assert_same(bk, eager, out)
            assert any("lr" in label for _, label in f.program.inputs)
        else:
            eager = out


def test_dropout_masks_equal_eager(bk):
    """Fresh keys per replay from the same generator: the masks of a replay equal eager ones."""
    _compare(bk, lambda: ((m := _mlp(dropout=0.5)), optim.SGD(m.parameters(), lr=0.1), None), _plain_step)


def test_dropout_masks_follow_the_process_stream(bk):
    """In a distributed job (here rank 1's stream) replayed masks are that rank's eager masks."""
    try:
        xn.backend.set_process_stream(1)
        _compare(bk, lambda: ((m := _mlp(dropout=0.5)), optim.SGD(m.parameters(), lr=0.1), None), _plain_step)
    finally:
        xn.backend.set_process_stream(0)


def test_batchnorm_running_statistics(bk):
    f = _compare(bk, lambda: ((m := _mlp(bn=True)), optim.SGD(m.parameters(), lr=0.1), None), _plain_step)
    assert any("running_mean" in label for _, label in f.program.outputs)


def test_clipping_and_accumulation(bk):
    """Two micro-batches accumulate into .grad, clip_grad_norm_, one update, inside the step."""
    def step_of(model, opt, extra):
        def step(x, y):
            opt.zero_grad()
            total = xn.tensor(0.0)  # a constant made inside the step
            for part in (slice(0, 3), slice(3, 6)):
                loss = F.cross_entropy(model(x[part]), y[part]) / 2
                loss.backward()
                total = total + loss.detach()
            nn.utils.clip_grad_norm_(model.parameters(), 0.05)
            opt.step()
            return total
        return step
    _compare(bk, lambda: ((m := _mlp()), optim.SGD(m.parameters(), lr=0.1, momentum=0.9), None), step_of)


def test_gru_step_matches_eager(bk):
    if bk.name == "jax":
        pytest.skip("JAX: the recurrent trace is long to compile")
    xs = RNG.normal(size=(6, 5, 2)).astype("float32")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(2, 3, batch_first=True, bidirectional=True)
            self.head = nn.Linear(6, 3)

        def forward(self, x):
            _, h = self.gru(x)
            return self.head(xn.concat([h[0, ...], h[1, ...]], -1))
    _compare(bk, lambda: ((m := Net()), optim.Adam(m.parameters(), lr=1e-2), None), _plain_step,
             batches=[(xs, Y)] * STEPS)


def test_new_batch_shape_retraces(bk):
    """A new signature (batch 3 after batch 6) is traced again; both stay cached."""
    small = (X[:3], Y[:3])
    batches = [(X, Y), (X, Y), (X, Y), small, small, small, (X, Y), small]
    f = _compare(bk, lambda: ((m := _mlp()), optim.SGD(m.parameters(), lr=0.1), None), _plain_step,
                 batches=batches)
    assert len(f.cache) == 2
    assert all(e.replay is not None for e in f.cache.values())


def test_train_and_eval_mode_are_signatures(bk):
    xn.manual_seed(0)
    m = _mlp(dropout=0.5)

    def predict(x):
        return m(x)
    f = xn.compile(predict)
    x = xn.tensor(X)
    m.eval()
    want = to_np(m(x))
    for _ in range(3):
        np.testing.assert_allclose(to_np(f(x)), want, rtol=1e-6)
    m.train()
    f(x)
    assert len(f.cache) == 2


def test_item_inside_falls_back_with_a_warning(bk):
    def make():
        m = _mlp()
        return m, optim.SGD(m.parameters(), lr=0.1), None

    def step_of(model, opt, extra):
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            if loss.item() > 0:  # a host read: cannot be replayed
                opt.step()
            return loss
        return step
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = _compare(bk, make, step_of)
    msgs = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
    assert len(msgs) == 1 and "runs eagerly" in msgs[0] and "test_compile.py" in msgs[0]
    assert f.program is None


def test_item_inside_raises_with_strict(bk):
    xn.manual_seed(0)
    m = _mlp()
    opt = optim.SGD(m.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        return float(loss)
    f = xn.compile(step, strict=True)
    f(xn.tensor(X), xn.tensor(Y))
    before = [to_np(p.data) for p in m.parameters()]
    with pytest.raises(CompileError, match="float"):
        f(xn.tensor(X), xn.tensor(Y))
    for p, b in zip(m.parameters(), before):  # the failed trace left the state as it was
        np.testing.assert_array_equal(to_np(p.data), b)


def _traced_sgd_mlp():
    """An MLP and its compiled SGD step, called three times (eager, trace, replay)."""
    xn.manual_seed(0)
    m = _mlp()
    opt = optim.SGD(m.parameters(), lr=0.1)
    f = xn.compile(_plain_step(m, opt, None))
    for _ in range(3):
        f(xn.tensor(X), xn.tensor(Y))
    return m, f


def test_bad_labels_still_raise(bk):
    """On the host the label range is a guard read before the replay: a bad batch runs eagerly,
    which raises before anything changes (elsewhere a check output of the program)."""
    if bk.name == "jax":
        pytest.skip("one JAX trace less")
    m, f = _traced_sgd_mlp()
    before = [to_np(p.data) for p in m.parameters()]
    with pytest.raises(IndexError, match="out of range"):
        f(xn.tensor(X), xn.tensor(np.where(Y == 0, 7, Y)))
        xn.backend.flush_checks()
    if xn.backend.on_host(m[0].weight.data):
        assert f.program.guards  # the range check is a guard, not an operation of the program
        for p, b in zip(m.parameters(), before):
            np.testing.assert_array_equal(to_np(p.data), b)


def test_ignore_index_after_the_trace(bk):
    """A batch with ignore_index targets after a trace without any: such calls run eagerly (the
    program holds the plain path); after four of them the step is traced again, with the general path."""
    if bk.name == "jax":
        pytest.skip("one JAX trace less")
    ignored = np.where(np.arange(6) % 3 == 0, -100, Y)
    batches = [(X, Y)] * 3 + [(X, ignored), (X, Y)] + [(X, ignored)] * 4 + [(X, Y), (X, ignored)]
    f = _compare(bk, lambda: ((m := _mlp()), optim.SGD(m.parameters(), lr=0.1), None), _plain_step,
                 batches=batches)
    assert f.program is not None and not f.program.guards  # traced again without guards


def test_program_prints_one_line_per_operation(bk):
    if bk.name != "numpy":
        pytest.skip("the printout is the same on every backend")
    m, f = _traced_sgd_mlp()
    text = str(f.program)
    lines = text.splitlines()
    assert sum(1 for line in lines if line.startswith(("  op ", "  host "))) == len(f.program)
    assert "xp.matmul" in text or "matmul" in text
    assert any(line.startswith("  in ") and "arg 0" in line for line in lines)
    assert any(line.startswith("  out ") and "return 0" in line for line in lines)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_trainer_compile_matches_eager(bk, accumulate):
    if bk.name == "jax" and accumulate == 2:
        pytest.skip("one JAX trainer run is enough")
    xs = RNG.normal(size=(40, 4)).astype("float32")
    ys = RNG.integers(0, 3, size=40)
    runs = []
    for compiled in (False, True):
        xn.manual_seed(0)
        m = _mlp(dropout=0.2)
        opt = optim.Adam(m.parameters(), lr=1e-2)
        t = xn.Trainer(m, "cross_entropy", opt, metrics=["accuracy"], backend=bk.name, device=None if bk.name
                       in ("numpy", "array_api_strict") else "cpu", accumulate=accumulate, clip_grad_norm=1.0,
                       verbose=0, compile=compiled)
        h = t.fit(xs, ys, epochs=2, batch_size=12, validation_data=(xs[:10], ys[:10]), seed=0)
        runs.append(([h.history[k][-1] for k in sorted(h.history)], [to_np(p.data) for p in m.parameters()]))
        if compiled:
            assert t._compiled[0].program is not None and t._compiled[1].program is not None
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-5)
    _assert_same(bk, runs[0][1], runs[1][1])


def test_cli_train_compile_gives_the_eager_result(tmp_path):
    import json

    from xpnet import cli
    results = []
    for flag in ([], ["--compile"]):
        out = tmp_path / ("compiled" if flag else "eager")
        assert cli.main(["train", "--epochs", "1", "--verbose", "0", "--out", str(out)] + flag) == 0
        saved = json.loads((out / "result.json").read_text())
        results.append((saved["test_last"], saved["history"]))
    assert results[0] == results[1]


def test_host_random_draw_inside_falls_back(bk):
    """An array made from host data inside the step (here a NumPy draw) cannot be replayed."""
    xn.manual_seed(0)
    m = _mlp()
    opt = optim.SGD(m.parameters(), lr=0.1)
    noise = np.random.default_rng(1)

    def step(x, y):
        opt.zero_grad()
        x = x + xn.tensor(noise.normal(size=x.shape).astype("float32"))
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        return loss
    f = xn.compile(step)
    with pytest.warns(CompileWarning, match="host data"):
        for _ in range(3):
            f(xn.tensor(X), xn.tensor(Y))
    assert f.program is None


def test_keyword_arguments_in_any_order(bk):
    if bk.name != "numpy":
        pytest.skip("argument handling is the same on every backend")
    xn.manual_seed(0)
    m = _mlp()

    def f(x, scale):
        return m(x) * scale
    g = xn.compile(f)
    x, s = xn.tensor(X), xn.tensor(np.full((6, 3), 2.0, "float32"))
    want = to_np(f(x=x, scale=s))
    for _ in range(2):
        g(x=x, scale=s)
    np.testing.assert_array_equal(to_np(g(scale=s, x=x)), want)
    np.testing.assert_array_equal(to_np(g(x=x, scale=s * 0.5)), want * 0.5)


def test_results_outlive_later_replays(bk):
    """The buffers a replay reuses (NumPy ``out=``) never hold a result the caller keeps: the
    losses and gradients returned by earlier steps are unchanged by later ones; the printout
    names the guard and the buffers."""
    if bk.name == "jax":
        pytest.skip("no buffers on JAX")
    xn.manual_seed(0)
    m = _mlp()
    opt = optim.SGD(m.parameters(), lr=0.1)
    f = xn.compile(_plain_step(m, opt, None))
    kept = []
    for i in range(6):
        x = xn.tensor(X * (1 + i))
        loss = f(x, xn.tensor(Y))
        grads = [p.grad.data for p in m.parameters()]
        kept.append(([loss.data] + grads, [np.array(to_np(a)) for a in [loss.data] + grads]))  # copies
    for arrays, copies in kept:
        for a, c in zip(arrays, copies):
            np.testing.assert_array_equal(to_np(a), c)
    text = str(f.program)
    assert "guard %" in text and "max >= 3 is false" in text
    if bk.name == "numpy":
        assert f.program.buffers and "results written into buffers" in text


def test_step_ending_with_zero_grad_returns_no_gradients(bk):
    """zero_grad() at the end of the step: no gradient outlives it, so the program returns none
    (the fast form under jax.jit); the numbers equal eager ones (Adam: on JAX its bias corrections
    are computed inside the jitted function)."""
    def step_of(model, opt, extra):
        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss
        return step
    f = _compare(bk, lambda: ((m := _mlp()), optim.Adam(m.parameters(), lr=1e-2), None), step_of)
    assert not any("grad" in label for _, label in f.program.outputs)


def test_module_replaced_between_calls_is_traced_again(bk):
    """The replay's guards see a layer replaced between calls: the step is traced again and
    follows the new layer as eager code does (bad: updating the old one's arrays)."""
    out = []
    for compiled in (False, True):
        xn.manual_seed(0)
        m = _mlp()
        o = optim.SGD(m.parameters(), lr=0.1)
        f = xn.compile(_plain_step(m, o, None)) if compiled else _plain_step(m, o, None)
        losses = []
        for i in range(6):
            if i == 3:
                setattr(m, "2", nn.Linear(8, 3))  # not in the optimizer: gets gradients, no update
            losses.append(to_np(f(xn.tensor(X), xn.tensor(Y))))
        out.append(losses + [to_np(p.data) for p in m.parameters()] + [to_np(m[2].weight.grad.data)])
    _assert_same(bk, out[0], out[1])
