"""xpnet.compile's CUDA-graph replay (xpnet/compile/graphs.py).

On the CPU the graph protocol runs emulated (``cuda_graphs="emulate"``): the same static
buffers, device scalars, copies in and back, and outputs written in place at each
"launch"; a graphed step must give the eager step's numbers bitwise.  On a GPU (CuPy,
torch CUDA: ``ci/gpu.sh tests``) the real capture runs, within float32 rounding of eager."""

import contextlib
import warnings

import numpy as np
import pytest

import xpnet as xn
from xpnet import nn, optim
from xpnet.compile import CompileError, CompileWarning, graphs
from xpnet.nn import functional as F
from conftest import AVAILABLE, to_np

RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 4)).astype("float32")
Y = RNG.integers(0, 3, size=6)
STEPS = 6  # eager, trace, first graphed call (eager device part + capture), then 3 launches


@pytest.fixture
def cpu_bk(bk):
    if bk.name == "jax":
        pytest.skip("JAX replays under jax.jit; its arrays cannot be written in place")
    return bk


def _mlp(dropout=0.0, bn=False):
    layers = [nn.Linear(4, 8)] + ([nn.BatchNorm1d(8)] if bn else []) + [nn.ReLU()]
    layers += [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(*layers, nn.Linear(8, 3))


def _train(make, graphs_mode, batches=None, steps=STEPS, between=None, clip=None):
    """Losses (kept as tensors until the end) and final state; eager when graphs_mode is 'eager'."""
    xn.manual_seed(0)
    model, opt, sched = make()

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        return loss
    f = step if graphs_mode == "eager" else xn.compile(step, cuda_graphs=graphs_mode)
    losses = []
    for i, (xb, yb) in enumerate(batches or [(X, Y)] * steps):
        losses.append(f(xn.tensor(xb), xn.tensor(yb)))  # held, read at the end: copies, not graph buffers
        if sched is not None:
            sched.step()
        if between is not None:
            between(i, model)
    out = [to_np(l) for l in losses] + [to_np(v) for v in model.state_dict().values()]
    out += [to_np(v) for s in opt.state.values() for v in s.values() if hasattr(v, "shape")]
    return out, f


def _same(a, b, exact=True):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        if exact:
            np.testing.assert_array_equal(v, u)
        else:
            np.testing.assert_allclose(v, u, rtol=2e-5, atol=1e-6)


CASES = {
    "sgd_momentum": lambda: ((m := _mlp()), optim.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3), None),
    "adam_steplr": lambda: ((m := _mlp()), (o := optim.Adam(m.parameters(), lr=0.05, amsgrad=True)),
                            optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5)),
    "adamw_foreach_dropout": lambda: ((m := _mlp(dropout=0.5)), optim.AdamW(m.parameters(), lr=1e-2, foreach=True),
                                      None),
    "sgd_batchnorm": lambda: ((m := _mlp(bn=True)), optim.SGD(m.parameters(), lr=0.1, momentum=0.5, weight_decay=1e-3), None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_emulated_graph_equals_eager_bitwise(cpu_bk, case):
    """Every step after the capture is a launch on the static buffers; the numbers are eager's."""
    eager, _ = _train(CASES[case], "eager", clip=1.0)
    graphed, f = _train(CASES[case], "emulate", clip=1.0)
    assert isinstance(f.runner, graphs.GraphedStep) and f.runner.plain is None
    assert f.runner.launches == STEPS - 3
    _same(eager, graphed)


def test_conv_net_with_adam(cpu_bk):
    """A 1-D convolution (im2col, col2im sums) under the emulated graph: eager's numbers."""
    make = lambda: ((m := nn.Sequential(nn.Conv1d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),  # noqa: E731
                                        nn.Linear(8, 3))), optim.Adam(m.parameters(), lr=1e-2), None)
    batches = [(X[:, None, :], Y)] * STEPS
    eager, _ = _train(make, "eager", batches=batches)
    graphed, f = _train(make, "emulate", batches=batches)
    assert f.runner.launches == STEPS - 3
    _same(eager, graphed)


def test_changing_host_numbers_are_device_scalars(cpu_bk):
    """The learning rate, Adam's bias corrections and the dropout keys are written into device
    scalars before each launch: without that the scheduler's change and fresh masks would be lost."""
    make = lambda: ((m := _mlp(dropout=0.5)), (o := optim.Adam(m.parameters(), lr=0.05)),  # noqa: E731
                    optim.lr_scheduler.ExponentialLR(o, gamma=0.5))
    eager, _ = _train(make, "eager")
    graphed, f = _train(make, "emulate")
    _same(eager, graphed)
    dtypes = {str(buf.dtype) for buf, _ in f.runner._scalars}
    assert any("float32" in d for d in dtypes) and any("int32" in d for d in dtypes)  # numbers and keys
    assert sum(buf.shape[0] for buf, _ in f.runner._scalars) >= 3


def test_accumulation_with_a_constant_made_in_the_step(cpu_bk):
    """Two micro-batches accumulate into .grad inside the step; ``xn.tensor(0.0)`` (an array made
    from host data) is made before each launch and copied into its buffer."""
    def run(mode):
        xn.manual_seed(0)
        m = _mlp()
        opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)

        def step(x, y):
            opt.zero_grad()
            total = xn.tensor(0.0)
            for part in (slice(0, 3), slice(3, 6)):
                loss = F.cross_entropy(m(x[part]), y[part]) / 2
                loss.backward()
                total = total + loss.detach()
            nn.utils.clip_grad_norm_(m.parameters(), 0.05)
            opt.step()
            return total
        f = step if mode == "eager" else xn.compile(step, cuda_graphs=mode)
        out = [f(xn.tensor(X), xn.tensor(Y)) for _ in range(STEPS)]
        return [to_np(v) for v in out] + [to_np(p.data) for p in m.parameters()], f
    eager, _ = run("eager")
    graphed, f = run("emulate")
    _same(eager, graphed)
    assert f.runner.launches == STEPS - 3 and f.runner._copy_in  # the batch and the made constant


def test_state_is_updated_in_place(cpu_bk):
    """After the capture a parameter keeps its buffer (the graph writes into it)."""
    xn.manual_seed(0)
    m = _mlp()
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        return loss
    f = xn.compile(step, cuda_graphs="emulate")
    ids = []
    for _ in range(STEPS):
        f(xn.tensor(X), xn.tensor(Y))
        ids.append([id(p.data) for p in m.parameters()])
    assert ids[2] == ids[3] == ids[4] == ids[5]
    assert f.runner.launches == 3


def test_replaced_state_is_copied_into_its_buffer(cpu_bk):
    """A parameter replaced between calls (a reload) is copied into the graph's buffer."""
    new = {}

    def between(i, model):
        if i == 3:
            w = model[0].weight
            new["w"] = xn.tensor(np.full(tuple(w.shape), 0.01, dtype="float32")).data
            w.data = new["w"]
    make = CASES["sgd_momentum"]
    eager, _ = _train(make, "eager", between=between)
    graphed, f = _train(make, "emulate", between=between)
    _same(eager, graphed)
    assert f.runner.launches == STEPS - 3


def test_new_batch_shape_makes_a_new_graph(cpu_bk, monkeypatch):
    made = []
    real = graphs.runner

    def recording(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]
    monkeypatch.setattr(graphs, "runner", recording)
    small = (X[:3], Y[:3])
    batches = [(X, Y)] * 4 + [small] * 4 + [(X, Y), small]
    make = CASES["adam_steplr"]
    eager, _ = _train(make, "eager", batches=batches)
    graphed, f = _train(make, "emulate", batches=batches)
    _same(eager, graphed)
    assert len(f.cache) == 2 and len(made) == 2
    assert [r.launches for r in made] == [2, 2]  # each: after its capture, 1 launch, then 1 more later


def test_failed_capture_falls_back_to_the_plain_replay(cpu_bk, monkeypatch):
    def fail(self, warm, body):
        raise RuntimeError("operation not permitted when stream is capturing")
    monkeypatch.setattr(graphs.Emulated, "capture", fail)
    make = CASES["sgd_momentum"]
    eager, _ = _train(make, "eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graphed, f = _train(make, "emulate")
    msgs = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
    assert len(msgs) == 1 and "without a CUDA graph" in msgs[0] and "stream is capturing" in msgs[0]
    assert f.runner.plain is not None and f.runner.launches == 0
    _same(eager, graphed)
    with pytest.raises(CompileError, match="stream is capturing"):
        xn.manual_seed(0)
        m = make()[0]
        g = xn.compile(lambda x: m(x).sum(), cuda_graphs=True, state=[m])
        monkeypatch.setattr(graphs.B.graphs, "engine", lambda b: (graphs.Emulated(b), None))
        for _ in range(3):
            g(xn.tensor(X))


def test_unsupported_use_of_a_host_number_replays_plainly(cpu_bk):
    """A learning rate passed to an operation other than arithmetic (here clip) cannot be a device
    scalar: the step replays without a graph, with a warning naming the operation."""
    xn.manual_seed(0)

    def run(mode):
        xn.manual_seed(0)
        m = _mlp()
        opt = optim.SGD(m.parameters(), lr=0.1)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            lr = opt.param_groups[0]["lr"]
            for p in m.parameters():
                p.data = xn.backend.clip(p.data - lr * p.grad.data, -lr, lr)
            return loss
        f = step if mode == "eager" else xn.compile(step, cuda_graphs=mode, state=[m, opt])
        out = [to_np(f(xn.tensor(X), xn.tensor(Y))) for _ in range(4)]
        return out + [to_np(p.data) for p in m.parameters()], f
    eager, _ = run("eager")
    with pytest.warns(CompileWarning, match="B.clip takes a host number"):
        graphed, f = run("emulate")
    assert not isinstance(f.runner, graphs.GraphedStep)
    _same(eager, graphed)


def test_options(cpu_bk):
    m = _mlp()
    with pytest.raises(ValueError, match="cuda_graphs"):
        xn.compile(lambda x: m(x), cuda_graphs="yes")
    if cpu_bk.name == "numpy":
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the default on the CPU: plain, silently
            f = xn.compile(lambda x: m(x), state=[m])
            for _ in range(3):
                f(xn.tensor(X))
        assert not isinstance(f.runner, graphs.GraphedStep)
        g = xn.compile(lambda x: m(x), state=[m], cuda_graphs=True)
        g(xn.tensor(X))
        with pytest.raises(CompileError, match="has no CUDA graphs"):
            g(xn.tensor(X))


def test_reciprocal_is_the_float32_division():
    """torch on CUDA divides by a host number v as a product with 1/float32(v) computed in
    float32; graphs.reciprocal gives that number from Python floats."""
    vs = np.concatenate([RNG.uniform(1e-4, 10.0, 2000), 1 - 0.999 ** np.arange(1, 500), [1.0, 3.0, 0.1, 1e-8]])
    got = np.array([graphs.reciprocal(float(v), "float32") for v in vs]).astype(np.float32)
    want = np.float32(1.0) / vs.astype(np.float32)
    np.testing.assert_array_equal(got, want)
    assert graphs.reciprocal(3.0, "float64") == 1.0 / 3.0


def test_divisions_by_host_numbers_become_products_where_the_library_does_so(cpu_bk, monkeypatch):
    """With an engine that divides by host numbers as torch on CUDA does, Adam's divisors are
    written as reciprocals and their divisions run as products (here on the CPU, whose eager
    division divides: within an ulp)."""
    monkeypatch.setattr(graphs.Emulated, "divides_by_reciprocal", True, raising=False)
    make = CASES["adam_steplr"]
    eager, _ = _train(make, "eager")
    graphed, f = _train(make, "emulate")
    assert f.runner._recip and all(p.reciprocal == (p.divisor in f.runner._recip) for p in f.runner._probes)
    assert any(p.reciprocal for p in f.runner._probes)
    _same(eager, graphed, exact=False)


def test_the_torch_calls_of_the_engine_exist():
    """xpnet/backend/graphs.py's torch engine needs a GPU to run; here, that the calls it makes
    exist with the arguments it passes (a guard against API drift, checked without a GPU)."""
    import inspect
    torch = pytest.importorskip("torch")
    params = inspect.signature(torch.cuda.graph).parameters
    assert "stream" in params and "capture_error_mode" in params
    for name in ("CUDAGraph", "Stream", "stream", "current_stream", "get_sync_debug_mode", "set_sync_debug_mode"):
        assert hasattr(torch.cuda, name), name
    assert hasattr(torch.cuda.CUDAGraph, "replay") and hasattr(torch.cuda.Stream, "wait_stream")


# ------------------------------------------------------------------ on a GPU (ci/gpu.sh)

GPU = [n for n in AVAILABLE if n in ("cupy", "torch:cuda")]


@pytest.fixture(params=GPU or [pytest.param(None, marks=pytest.mark.skip(reason="no CUDA backend (CuPy or torch:cuda)"))])
def gpu_bk(request):
    with xn.using(request.param) as b:
        yield b


@contextlib.contextmanager
def _no_host_syncs(b):
    """A synchronizing call inside fails: ``cupyx.allow_synchronize(False)`` (CuPy's reads back),
    ``torch.cuda.set_sync_debug_mode("error")`` (torch's)."""
    if b.name == "cupy":
        import cupyx
        if not hasattr(cupyx, "allow_synchronize"):
            pytest.skip("this CuPy has no cupyx.allow_synchronize")
        with cupyx.allow_synchronize(False):
            yield
        return
    import torch
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(old)


@pytest.mark.parametrize("case", list(CASES))
def test_cuda_graph_equals_eager(gpu_bk, case):
    """The real capture (cuda_graphs=True raises if it fails): eager's numbers (bitwise
    expected, float32 rounding allowed)."""
    eager, _ = _train(CASES[case], "eager", clip=1.0)
    graphed, f = _train(CASES[case], True, clip=1.0)
    assert isinstance(f.runner, graphs.GraphedStep) and f.runner.plain is None
    assert f.runner.launches == STEPS - 3
    _same(eager, graphed, exact=False)


def test_cuda_graph_steps_do_not_wait_for_the_device(gpu_bk):
    """After the capture a step (scalars written, batch copied, one launch, loss copied out)
    makes no synchronizing call."""
    xn.manual_seed(0)
    m, opt, sched = CASES["adam_steplr"]()

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        return loss
    f = xn.compile(step, cuda_graphs=True)
    x, y = xn.tensor(X), xn.tensor(Y)
    for _ in range(3):
        f(x, y)
        sched.step()
    losses = []
    with _no_host_syncs(gpu_bk):
        for _ in range(5):
            losses.append(f(x, y))
            sched.step()
    assert f.runner.launches == 5
    assert np.all(np.isfinite([float(to_np(v)) for v in losses]))


def test_graphs_where_available_on_cuda(gpu_bk):
    """``xpnet.compile(step, cuda_graphs=None)`` on CUDA arrays replays as a graph."""
    eager, _ = _train(CASES["sgd_momentum"], "eager")
    graphed, f = _train(CASES["sgd_momentum"], None)
    assert isinstance(f.runner, graphs.GraphedStep) and f.runner.plain is None and f.runner.launches == STEPS - 3
    _same(eager, graphed, exact=False)
