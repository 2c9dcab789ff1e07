"""RNN, GRU, LSTM and their cells: PyTorch parity (outputs and every gradient),
gradient checks, parameter layout and bad input, on every backend."""

import math

import numpy as np
import pytest

import xpnet as xn
from xpnet import nn
from conftest import to_np

RNG = np.random.default_rng(0)
TOL = {"float64": dict(rtol=1e-8, atol=1e-10), "float32": dict(rtol=1e-4, atol=1e-5)}


def _torch_module(torch, cls, kwargs, dtype):
    torch.manual_seed(0)
    return getattr(torch.nn, cls)(**kwargs).to(getattr(torch, dtype))


def _xpnet_module(cls, kwargs, dtype, tm):
    m = getattr(nn, cls)(**kwargs, dtype=dtype)
    m.load_state_dict(tm.state_dict())
    return m


def _run_both(torch, cls, kwargs, dtype, x, states, train=False):
    """Forward + backward of sum(output * w) + sum(state * w') in torch and xpnet; returns
    (torch outputs, torch grads, xpnet outputs, xpnet grads) as NumPy, grads keyed by name."""
    tm = _torch_module(torch, cls, kwargs, dtype)
    m = _xpnet_module(cls, kwargs, dtype, tm)
    tm.train(train), m.train(train)
    t_in = [torch.tensor(a, dtype=getattr(torch, dtype), requires_grad=True) for a in [x] + states]
    x_in = [xn.tensor(a, dtype=dtype, requires_grad=True) for a in [x] + states]

    def call(mod, ins):
        hx = None if len(ins) == 1 else (ins[1] if len(ins) == 2 else tuple(ins[1:]))
        out, h = mod(ins[0], hx)
        return [out] + (list(h) if isinstance(h, tuple) else [h])

    t_out, x_out = call(tm, t_in), call(m, x_in)
    weights = [RNG.uniform(0.5, 1.5, size=tuple(o.shape)) for o in t_out]
    sum(((o * torch.tensor(w, dtype=o.dtype)).sum() for o, w in zip(t_out, weights))).backward()
    sum(((o * xn.tensor(w, dtype=dtype)).sum() for o, w in zip(x_out, weights)), 0.0).backward()
    t_grads = {f"input{i}": a.grad.numpy() for i, a in enumerate(t_in)}
    t_grads.update({n: p.grad.numpy() for n, p in tm.named_parameters()})
    x_grads = {f"input{i}": to_np(a.grad) for i, a in enumerate(x_in)}
    x_grads.update({n: to_np(p.grad) for n, p in m.named_parameters()})
    return ([o.detach().numpy() for o in t_out], t_grads, [to_np(o) for o in x_out], x_grads)


def _assert_parity(torch, cls, kwargs, dtype, x, states):
    t_out, t_grads, x_out, x_grads = _run_both(torch, cls, kwargs, dtype, x, states)
    assert len(t_out) == len(x_out)
    for a, b in zip(t_out, x_out):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, **TOL[dtype])
    assert t_grads.keys() == x_grads.keys()
    for name in t_grads:
        np.testing.assert_allclose(x_grads[name], t_grads[name], err_msg=name, **TOL[dtype])


def _states(cls, kwargs, batch, with_state):
    if not with_state:
        return []
    D = 2 if kwargs.get("bidirectional") else 1
    L = kwargs.get("num_layers", 1)
    H, P = kwargs["hidden_size"], kwargs.get("proj_size", 0) or kwargs["hidden_size"]
    lead = (D * L,) + ((batch,) if batch else ())
    h = RNG.uniform(-1, 1, size=lead + (P,))
    return [h, RNG.uniform(-1, 1, size=lead + (H,))] if cls == "LSTM" else [h]


CLASSES = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("GRU", {}), ("LSTM", {})]
CONFIGS = [  # num_layers, batch_first, bidirectional, initial state
    (1, True, False, True),
    (2, False, True, False),
    (2, True, True, True),
]
IN, H, N, L = 3, 4, 2, 5  # one set of sizes everywhere: JAX compiles each op once per shape


@pytest.mark.parametrize("cls,extra", CLASSES, ids=["rnn_tanh", "rnn_relu", "gru", "lstm"])
@pytest.mark.parametrize("layers,batch_first,bidir,state", CONFIGS,
                         ids=["1layer_batch_first_h0", "2layer_bidir", "2layer_bidir_batch_first_h0"])
def test_matches_torch_float64(bk, cls, extra, layers, batch_first, bidir, state):
    torch = pytest.importorskip("torch")
    kwargs = dict(input_size=IN, hidden_size=H, num_layers=layers, batch_first=batch_first,
                  bidirectional=bidir, **extra)
    x = RNG.normal(size=(N, L, IN) if batch_first else (L, N, IN))  # L > 4: the halving split of time
    _assert_parity(torch, cls, kwargs, "float64", x, _states(cls, kwargs, N, state))


def test_matches_torch_float32(bk):
    torch = pytest.importorskip("torch")
    kwargs = dict(input_size=IN, hidden_size=H)
    x = RNG.normal(size=(L, N, IN))
    _assert_parity(torch, "LSTM", kwargs, "float32", x, _states("LSTM", kwargs, N, True))


@pytest.mark.parametrize("cls,kwargs,state", [
    ("LSTM", dict(proj_size=2, num_layers=2, bidirectional=True), True),
    ("LSTM", dict(proj_size=2), False),
    ("GRU", dict(bias=False, num_layers=2), True),
    ("LSTM", dict(bias=False, batch_first=True), False),
], ids=["lstm_proj_bidir_h0", "lstm_proj", "gru_no_bias_h0", "lstm_no_bias"])
def test_matches_torch_variants(bk, cls, kwargs, state):
    torch = pytest.importorskip("torch")
    kwargs = dict(input_size=IN, hidden_size=H, **kwargs)
    x = RNG.normal(size=(N, L, IN) if kwargs.get("batch_first") else (L, N, IN))
    _assert_parity(torch, cls, kwargs, "float64", x, _states(cls, kwargs, N, state))


@pytest.mark.parametrize("state", [False, True], ids=["zeros", "h0"])
def test_unbatched_matches_torch(bk, state):
    torch = pytest.importorskip("torch")
    kwargs = dict(input_size=IN, hidden_size=H)
    x = RNG.normal(size=(L, IN))
    _assert_parity(torch, "LSTM", kwargs, "float64", x, _states("LSTM", kwargs, None, state))


def test_state_dict_layout_matches_torch(bk):
    torch = pytest.importorskip("torch")
    for cls, kw in [("RNN", {}), ("GRU", dict(bias=False)), ("LSTM", dict(proj_size=3)),
                    ("LSTM", dict(num_layers=3, bidirectional=True))]:
        kwargs = {"input_size": 5, "hidden_size": 4, "num_layers": 2, **kw}
        t = {k: tuple(v.shape) for k, v in getattr(torch.nn, cls)(**kwargs).state_dict().items()}
        x = {k: tuple(v.shape) for k, v in getattr(nn, cls)(**kwargs).state_dict().items()}
        assert list(x) == list(t)
        assert x == t


@pytest.mark.parametrize("cls", ["RNN", "GRU", "LSTM", "RNNCell", "GRUCell", "LSTMCell"])
def test_default_init(bk, cls):
    m = getattr(nn, cls)(3, 16)
    bound = 1 / math.sqrt(16)
    for name, p in m.named_parameters():
        v = to_np(p)
        assert v.dtype == np.float32, name
        assert np.all(np.abs(v) <= bound + 1e-7), name
        assert np.abs(v).max() > bound / 2, name  # drawn, not left at zero


@pytest.mark.parametrize("cls,torch_cls,extra", [
    ("RNNCell", "RNNCell", {}), ("RNNCell", "RNNCell", {"nonlinearity": "relu"}),
    ("GRUCell", "GRUCell", {}), ("LSTMCell", "LSTMCell", {}), ("GRUCell", "GRUCell", {"bias": False}),
], ids=["rnn_tanh", "rnn_relu", "gru", "lstm", "gru_no_bias"])
@pytest.mark.parametrize("state", [False, True], ids=["zeros", "h0"])
def test_cells_match_torch(bk, cls, torch_cls, extra, state):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = getattr(torch.nn, torch_cls)(IN, H, **extra).double()
    m = getattr(nn, cls)(IN, H, **extra, dtype="float64")
    m.load_state_dict(tm.state_dict())
    x = RNG.normal(size=(N, IN))
    states = [RNG.normal(size=(N, H)) for _ in range(2 if cls == "LSTMCell" else 1)] if state else []
    t_in = [torch.tensor(a, requires_grad=True) for a in [x] + states]
    x_in = [xn.tensor(a, dtype="float64", requires_grad=True) for a in [x] + states]
    hx = lambda ins: None if len(ins) == 1 else (ins[1] if len(ins) == 2 else tuple(ins[1:]))  # noqa: E731
    t_out, x_out = tm(t_in[0], hx(t_in)), m(x_in[0], hx(x_in))
    t_out = list(t_out) if isinstance(t_out, tuple) else [t_out]
    x_out = list(x_out) if isinstance(x_out, tuple) else [x_out]
    ws = [RNG.uniform(0.5, 1.5, size=tuple(o.shape)) for o in t_out]
    sum((o * torch.tensor(w)).sum() for o, w in zip(t_out, ws)).backward()
    sum(((o * xn.tensor(w, dtype="float64")).sum() for o, w in zip(x_out, ws)), 0.0).backward()
    for a, b in zip(t_out, x_out):
        np.testing.assert_allclose(to_np(b), a.detach().numpy(), **TOL["float64"])
    for a, b in zip(t_in, x_in):
        np.testing.assert_allclose(to_np(b.grad), a.grad.numpy(), **TOL["float64"])
    tp = dict(tm.named_parameters())
    for n, p in m.named_parameters():
        np.testing.assert_allclose(to_np(p.grad), tp[n].grad.numpy(), err_msg=n, **TOL["float64"])


def _with_params(module, names):
    """f(x, h..., *params) that runs ``module`` with the given tensors as its parameters."""
    def f(*args):
        ins = args[:len(args) - len(names)]
        for n, p in zip(names, args[len(ins):]):
            module._parameters[n] = p
        out = module(ins[0], None if len(ins) == 1 else (ins[1] if len(ins) == 2 else tuple(ins[1:])))
        if isinstance(out, tuple):  # (output, h_n) / (output, (h_n, c_n)) / (h, c)
            flat = []
            for o in out:
                flat.extend(o if isinstance(o, tuple) else [o])
            return xn.concat([xn.reshape(o, (-1,)) for o in flat])
        return out
    return f


@pytest.mark.parametrize("cls", ["RNNCell", "GRUCell", "LSTMCell"])
def test_cells_gradcheck(bk, cls):
    m = getattr(nn, cls)(IN, H, dtype="float64")
    names = ["weight_hh", "bias_hh"]  # the input side is one linear, checked in every parity test
    params = [xn.tensor(to_np(getattr(m, n)), dtype="float64") for n in names]
    states = [RNG.normal(size=(N, H)) for _ in range(2 if cls == "LSTMCell" else 1)]
    xn.gradcheck(_with_params(m, names), RNG.normal(size=(N, IN)), *states, *params)


def test_gru_cell_gradgradcheck(bk):
    m = nn.GRUCell(IN, H, dtype="float64")
    xn.gradgradcheck(lambda x, h: m(x, h), RNG.normal(size=(N, IN)), RNG.normal(size=(N, H)))


@pytest.mark.parametrize("cls", ["RNN", "GRU", "LSTM"])
def test_sequence_gradcheck(bk, cls):
    m = getattr(nn, cls)(IN, H, dtype="float64")
    states = [RNG.normal(size=(1, N, H)) for _ in range(2 if cls == "LSTM" else 1)]
    xn.gradcheck(_with_params(m, []), RNG.normal(size=(L, N, IN)), *states)


def test_sequence_gradgradcheck_bidirectional_lstm(bk):
    """Grad of grad through the fused recurrence (it re-runs the elementary steps), both directions."""
    m = nn.LSTM(2, 2, bidirectional=True, dtype="float64")
    xn.gradgradcheck(lambda x: m(x)[0], RNG.normal(size=(3, 1, 2)))


@pytest.mark.parametrize("cls", ["RNN", "GRU", "LSTM"])
def test_one_graph_node_per_layer_and_direction(bk, cls):
    """The recurrence of a layer and direction is one operation (RecurrentScan), not one per step."""
    from xpnet.nn.recurrent_scan import RecurrentScan
    m = getattr(nn, cls)(IN, H, bidirectional=True)
    out, _ = m(xn.tensor(RNG.normal(size=(L, N, IN)), dtype="float32"))
    seen, stack = {}, [out.creator]
    while stack:
        f = stack.pop()
        if f is None or id(f) in seen:
            continue
        seen[id(f)] = f
        stack += [x.creator for x in f.inputs if isinstance(x, xn.Tensor)]
    scans = [f for f in seen.values() if isinstance(f, RecurrentScan)]
    assert sorted(f.reverse for f in scans) == [False, True]
    assert len(seen) < 12  # linear, scan (x2), slices, concat: nothing per time step


def test_unbatched_cell_matches_batched(bk):
    m = nn.LSTMCell(IN, H, dtype="float64")
    x, h, c = RNG.normal(size=(IN,)), RNG.normal(size=(H,)), RNG.normal(size=(H,))
    one = m(xn.tensor(x, dtype="float64"), (xn.tensor(h, dtype="float64"), xn.tensor(c, dtype="float64")))
    two = m(xn.tensor(x[None], dtype="float64"),
            (xn.tensor(h[None], dtype="float64"), xn.tensor(c[None], dtype="float64")))
    for a, b in zip(one, two):
        assert a.shape == (H,)
        np.testing.assert_allclose(to_np(a), to_np(b)[0], rtol=1e-12)
    assert m(xn.tensor(x, dtype="float64"))[0].shape == (H,)


def test_no_grad_forward_matches(bk):
    m = nn.LSTM(IN, H, num_layers=2, bidirectional=True, dtype="float64")
    x = xn.tensor(RNG.normal(size=(L, N, IN)), dtype="float64")
    out, (h, c) = m(x)
    with xn.no_grad():
        out2, (h2, c2) = m(x)
    assert not out2.requires_grad
    np.testing.assert_array_equal(to_np(out2), to_np(out))
    np.testing.assert_array_equal(to_np(c2), to_np(c))


def test_dropout_between_layers(bk):
    x = xn.tensor(RNG.normal(size=(L, N, IN)), dtype="float64", requires_grad=True)
    m = nn.GRU(IN, H, num_layers=2, dropout=0.5, dtype="float64")
    eval_out = to_np(m.eval()(x)[0])
    np.testing.assert_array_equal(to_np(m(x)[0]), eval_out)  # eval: deterministic, no dropout
    m.train()
    xn.manual_seed(3)
    out = m(x)[0]
    assert not np.allclose(to_np(out), eval_out)
    xn.manual_seed(3)
    np.testing.assert_array_equal(to_np(m(x)[0]), to_np(out))  # the seed fixes the mask
    out.sum().backward()
    assert np.all(np.isfinite(to_np(x.grad))) and np.any(to_np(x.grad) != 0)
    one = nn.GRU(IN, H, num_layers=1, dropout=0.5, dtype="float64")  # no layer to drop between
    np.testing.assert_array_equal(to_np(one(x)[0]), to_np(one.eval()(x)[0]))


def test_float32_default_and_backend(bk):
    m = nn.LSTM(IN, H)
    out, (h, c) = m(xn.tensor(RNG.normal(size=(L, N, IN)), dtype="float32"))
    assert out.backend.name == bk.name and str(out.dtype).endswith("float32")
    assert out.shape == (L, N, H) and h.shape == (1, N, H) and c.shape == (1, N, H)


def test_repr():
    assert repr(nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)) == \
        "LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)"
    assert repr(nn.RNN(3, 4, nonlinearity="relu")) == "RNN(3, 4, nonlinearity='relu')"


# ---------------------------------------------------------------- bad input

def _zeros(*shape):
    return xn.tensor(np.zeros(shape), dtype="float32")


def test_wrong_input_size(bk):
    m = nn.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"LSTM\(3, 4\): input has 5 features .*expected input_size=3"):
        m(_zeros(2, 1, 5))
    with pytest.raises(ValueError, match=r"input has shape \(2, 1, 3, 1\), expected 3-D"):
        m(_zeros(2, 1, 3, 1))
    with pytest.raises(ValueError, match="the sequence is empty"):
        nn.GRU(3, 4, batch_first=True)(_zeros(2, 0, 3))
    with pytest.raises(ValueError, match=r"GRUCell\(3, 4\): input has 2 features"):
        nn.GRUCell(3, 4)(_zeros(2, 2))


def test_wrong_hx_shape(bk):
    x = _zeros(5, 2, 3)
    with pytest.raises(ValueError, match=r"GRU\(3, 4, num_layers=2\): hx has shape \(1, 2, 4\), expected \(2, 2, 4\)"):
        nn.GRU(3, 4, num_layers=2)(x, _zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"c_0 has shape \(2, 2, 3\), expected \(2, 2, 4\)"):
        nn.LSTM(3, 4, bidirectional=True)(x, (_zeros(2, 2, 4), _zeros(2, 2, 3)))
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h_0, c_0\)"):
        nn.LSTM(3, 4)(x, _zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"hx has shape \(1, 2, 4\), expected \(1, 4\)"):
        nn.RNN(3, 4)(_zeros(5, 3), _zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"LSTMCell\(3, 4\): c_0 has shape \(2, 5\), expected \(2, 4\)"):
        nn.LSTMCell(3, 4)(_zeros(2, 3), (_zeros(2, 4), _zeros(2, 5)))


def test_wrong_dtype(bk):
    with pytest.raises(TypeError, match="input is float64 but the parameters are float32"):
        nn.RNN(3, 4)(xn.tensor(np.zeros((5, 2, 3)), dtype="float64"))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="unknown nonlinearity 'sigmoid'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        nn.RNNCell(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\]"):
        nn.LSTM(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match="proj_size 4 must be smaller than hidden_size 4"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="hidden_size must be an integer >= 1"):
        nn.GRU(3, 0)
