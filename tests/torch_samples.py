"""Run an xpnet module on PyTorch's own test samples (``module_db``) and compare with PyTorch.

``check_module_db(name)`` builds ``torch.nn.<name>`` and ``xpnet.nn.<name>`` from each sample's
constructor arguments, copies the PyTorch state into xpnet, runs both forward on the sample
inputs, back-propagates the same random weights, and compares the outputs and the gradients of
every input and parameter (float64).  PyTorch's samples come from
``torch.testing._internal.common_modules`` (it needs the ``expecttest`` package; the test is
skipped cleanly without it).

To stay within the suite's time, a test may compare an evenly spaced subset of a long sample
list (``step``) or its first samples (``max_samples``, on the slow backends).  Setting
``XPNET_FULL_SAMPLES=1`` runs every sample wherever a subset is taken, e.g.
``XPNET_FULL_SAMPLES=1 XPNET_TEST_BACKENDS=numpy python -m pytest tests/test_transformer.py``;
docs/pytorch-differences.md records the last full run.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn as nn
import xpnet.nn.functional as F
from conftest import to_np

_DB = {}
FULL = os.environ.get("XPNET_FULL_SAMPLES", "") == "1"


def subset(samples, max_samples=None, step=1):
    """Every ``step``-th sample, at most ``max_samples`` of them (all with ``XPNET_FULL_SAMPLES=1``)."""
    return list(samples) if FULL else list(samples)[::step][:max_samples]


def module_info(name):
    torch = pytest.importorskip("torch")
    pytest.importorskip("expecttest")
    if not _DB:
        from torch.testing._internal.common_modules import module_db
        _DB.update({m.module_cls.__name__: m for m in module_db})
    if name not in _DB:
        pytest.skip(f"PyTorch has no module_db samples for {name}")
    return torch, _DB[name]


def to_xpnet(v, grad=False):
    """A PyTorch constructor or forward argument in xpnet's terms."""
    import torch
    if isinstance(v, torch.Tensor):
        if v.dtype.is_floating_point:
            return xn.tensor(v.detach().numpy(), dtype=str(v.dtype).split(".")[1],
                             requires_grad=grad and v.requires_grad)
        if v.dtype == torch.bool:
            return xn.tensor(v.numpy(), dtype="bool")
        return xn.tensor(v.numpy(), dtype="int64")
    if isinstance(v, torch.dtype):
        return str(v).split(".")[1]
    if isinstance(v, (tuple, list)):
        return type(v)(to_xpnet(a, grad) for a in v)
    if isinstance(v, dict):
        return {k: to_xpnet(a, grad) for k, a in v.items()}
    if callable(v) and getattr(torch.nn.functional, getattr(v, "__name__", ""), None) is v:
        return getattr(F, v.__name__)
    if isinstance(v, (torch.nn.TransformerEncoderLayer, torch.nn.TransformerDecoderLayer)):
        act = v.activation  # a function of torch.nn.functional, or a module
        act = getattr(F, act.__name__) if not isinstance(act, torch.nn.Module) else to_xpnet(act)
        return getattr(nn, type(v).__name__)(
            v.self_attn.embed_dim, v.self_attn.num_heads, v.linear1.out_features, v.dropout.p, act,
            v.norm1.eps, v.self_attn.batch_first, v.norm_first, v.linear1.bias is not None)
    if isinstance(v, torch.nn.LayerNorm):
        return nn.LayerNorm(v.normalized_shape, v.eps, v.elementwise_affine, bias=v.bias is not None)
    if isinstance(v, torch.nn.Module):
        return getattr(nn, type(v).__name__)()
    return v


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in _flat(o)]
    return [out]


def _leaves(args, acc):
    if isinstance(args, (tuple, list)):
        for a in args:
            _leaves(a, acc)
    elif isinstance(args, dict):
        for a in args.values():
            _leaves(a, acc)
    else:
        acc.append(args)
    return acc


def _prepared(prep, torch, fargs, xargs):
    """``prep`` applied to the first forward argument on both sides (see check_module_db)."""
    if prep is None:
        return fargs, xargs
    return ((prep(torch.nn.functional, fargs[0]), *fargs[1:]), (prep(F, xargs[0]), *xargs[1:]))


def check_module_db(name, max_samples=None, rtol=1e-7, atol=1e-9, trainings=None, skip=(), prep=None, step=1):
    """Compare ``xpnet.nn.<name>`` with ``torch.nn.<name>`` on PyTorch's samples (float64).

    ``prep(functional, x)``, when given, is applied to the first input on both sides before the
    module (e.g. a log_softmax), so that gradients are compared with respect to its input.

    ``skip``: sample descriptions left out (each with a reason in the caller).  ``step`` and
    ``max_samples``: see :func:`subset`.  Returns the number of samples compared, so that a
    test can assert that some were."""
    torch, info = module_info(name)
    modes = trainings if trainings is not None else ([True, False] if info.train_and_eval_differ else [True])
    count = 0
    for training in modes:
        samples = info.module_inputs_func(info, device="cpu", dtype=torch.float64, requires_grad=True,
                                          training=training)
        samples = [s for s in samples if s.desc not in skip and not _empty(s.forward_input.args, torch)]
        for s in subset(samples, max_samples, step):
            cargs, ckw = s.constructor_input.args, dict(s.constructor_input.kwargs)
            ckw.pop("device", None)
            torch.manual_seed(0)
            tm = info.module_cls(*cargs, **ckw).to(torch.float64)
            tm.train(training)
            xm = getattr(nn, name)(*to_xpnet(cargs), **to_xpnet(ckw))
            xm.to("float64")
            xm.train(training)
            compare_modules(tm, xm, s.forward_input.args, s.forward_input.kwargs, rtol, atol, prep,
                            f"{name} [{s.desc}] training={training}")
            count += 1
    return count


def compare_modules(tm, xm, fargs, fkw, rtol=1e-7, atol=1e-9, prep=None, desc=""):
    """Run PyTorch's module ``tm`` and xpnet's ``xm`` on the same inputs (PyTorch tensors: floating
    ones that require gradients are differentiated), PyTorch's state loaded into xpnet's, and
    compare the outputs and the gradients of every input and parameter.  A lazy module is
    materialized by this first call on both sides: the class it becomes and its parameter
    shapes must be PyTorch's, and its initial values within PyTorch's initialization bound
    (kaiming_uniform(a=sqrt(5)): |w| <= 1/sqrt(fan_in))."""
    import torch
    lazy = type(xm).__name__.startswith("Lazy")
    xargs, xkw = to_xpnet(fargs, grad=True), to_xpnet(fkw, grad=True)
    pf, px = _prepared(prep, torch, fargs, xargs)
    ty = tm(*pf, **fkw)  # first: a lazy module makes its parameters here
    if len(tm.state_dict()):
        xm(*px, **xkw)  # the same for xpnet (lazy shapes), then PyTorch's values
        if lazy:
            assert type(xm).__name__ == type(tm).__name__, f"{desc}: became {type(xm).__name__}, PyTorch's {type(tm).__name__}"
            shapes = {k: tuple(v.shape) for k, v in xm.state_dict().items()}
            assert shapes == {k: tuple(v.shape) for k, v in tm.state_dict().items()}, f"{desc}: shapes {shapes}"
            w = to_np(xm.weight)
            bound = 1.0 / np.sqrt(torch.nn.init._calculate_fan_in_and_fan_out(tm.weight)[0])
            assert np.abs(w).max() <= bound and (w.size < 8 or np.abs(w).max() > bound / 4), f"{desc}: initial weight"
        xm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    y = xm(*px, **xkw)
    touts, xouts = _flat(ty), _flat(y)
    assert len(touts) == len(xouts), f"{desc}: {len(xouts)} outputs, PyTorch has {len(touts)}"
    rng = np.random.default_rng(0)
    tloss, xloss = 0.0, 0.0
    for t, x in zip(touts, xouts):
        if t is None:
            assert x is None, desc
            continue
        np.testing.assert_allclose(to_np(x), t.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"{desc}: output")
        if t.dtype.is_floating_point and t.requires_grad:
            w = rng.uniform(0.5, 1.5, size=tuple(t.shape))
            tloss = tloss + (t * torch.tensor(w)).sum()
            xloss = xloss + (x * xn.tensor(w, dtype="float64")).sum()
    if isinstance(tloss, float):
        return
    tins = [a for a in _leaves((fargs, fkw), []) if isinstance(a, torch.Tensor) and a.requires_grad]
    xins = [a for a in _leaves((xargs, xkw), []) if isinstance(a, xn.Tensor) and a.requires_grad]
    tparams = dict(tm.named_parameters())
    xparams = dict(xm.named_parameters())
    assert sorted(tparams) == sorted(xparams), f"{desc}: parameters {sorted(xparams)} vs {sorted(tparams)}"
    tgrads = torch.autograd.grad(tloss, tins + list(tparams.values()), allow_unused=True)
    xgrads = xn.autograd.grad(xloss, xins + [xparams[k] for k in tparams], allow_unused=True)
    names = [f"input {i}" for i in range(len(tins))] + list(tparams)
    for n, tg, xg in zip(names, tgrads, xgrads):
        if tg is None:
            assert xg is None or np.all(to_np(xg) == 0), f"{desc}: gradient of {n}"
            continue
        np.testing.assert_allclose(to_np(xg), tg.numpy(), rtol=rtol, atol=atol, err_msg=f"{desc}: gradient of {n}")


def _empty(args, torch):
    """Samples with a zero-size tensor are left out: xpnet does not promise empty tensors
    (docs/pytorch-differences.md)."""
    return any(isinstance(a, torch.Tensor) and a.numel() == 0 for a in _leaves(args, []))


_OPS = {}


def op_samples(name, variant="", dtype="float64", grad_samples=True):
    """PyTorch's ``op_db`` samples (float64, requiring gradients) of ``torch.<name>``."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("expecttest")
    if not _OPS:
        from torch.testing._internal.common_methods_invocations import op_db
        _OPS.update({(o.name, o.variant_test_name): o for o in op_db})
    if (name, variant) not in _OPS:
        pytest.skip(f"PyTorch has no op_db samples for {name} {variant}")
    op = _OPS[(name, variant)]
    dt = getattr(torch, dtype)
    samples = list(op.sample_inputs("cpu", dt, requires_grad=grad_samples and dt.is_floating_point))
    if not grad_samples and dt.is_floating_point:  # the fuller set made for forward tests, made to need gradients
        for s in samples:
            for a in _leaves([s.input, s.args, s.kwargs], []):
                if isinstance(a, torch.Tensor) and a.dtype.is_floating_point:
                    a.requires_grad_(True)
    return torch, op, samples


def check_op_db(name, fn, variant="", max_samples=None, rtol=1e-7, atol=1e-9, skip=None, dtype="float64",
                prep=None, grad_samples=True, step=1):
    """Compare ``fn`` (xpnet's form of ``torch.<name>``) with PyTorch on every ``op_db`` sample:
    the output and the gradient of every floating input (samples made in ``dtype``: an integer
    one for integer operations).  ``prep`` as in :func:`check_module_db`.  ``grad_samples=False``
    takes the samples PyTorch makes for forward tests (some ops have more there) and makes
    their floating tensors require gradients.  ``skip(sample)`` true leaves a sample
    out.  ``step``, ``max_samples``: see :func:`subset`.  Returns the number compared."""
    torch, op, samples = op_samples(name, variant, dtype, grad_samples)
    count = 0
    samples = [s for s in samples if not (skip is not None and skip(s)) and not _empty([s.input, *s.args], torch)]
    for s in subset(samples, max_samples, step):
        targs = [s.input, *s.args]
        xargs, xkw = to_xpnet(targs, grad=True), to_xpnet(s.kwargs, grad=True)
        pt, px = _prepared(prep, torch, targs, xargs)
        ty = op.op(*pt, **s.kwargs)
        y = fn(*px, **xkw)
        desc = f"{name} {variant} sample {count} (input {tuple(s.input.shape)}, args {s.args!r:.80}, {s.kwargs!r:.80})"
        touts, xouts = _flat(ty), _flat(y)
        assert len(touts) == len(xouts), desc
        tloss, xloss, rng = 0.0, 0.0, np.random.default_rng(0)
        for t, x in zip(touts, xouts):
            np.testing.assert_allclose(to_np(x), t.detach().numpy(), rtol=rtol, atol=atol, err_msg=desc)
            if t.dtype.is_floating_point and t.requires_grad:
                w = rng.uniform(0.5, 1.5, size=tuple(t.shape))
                tloss = tloss + (t * torch.tensor(w)).sum()
                xloss = xloss + (x * xn.tensor(w, dtype="float64")).sum()
        count += 1
        if isinstance(tloss, float):
            continue
        tins = [a for a in _leaves((targs, s.kwargs), []) if isinstance(a, torch.Tensor) and a.requires_grad]
        xins = [a for a in _leaves((xargs, xkw), []) if isinstance(a, xn.Tensor) and a.requires_grad]
        tgrads = torch.autograd.grad(tloss, tins, allow_unused=True)
        xgrads = (xn.autograd.grad(xloss, xins, allow_unused=True) if xloss.requires_grad
                  else [None] * len(xins))  # constant in its inputs (e.g. a p=0 norm)
        for i, (tg, xg) in enumerate(zip(tgrads, xgrads)):
            if tg is None:
                assert xg is None or np.all(to_np(xg) == 0), f"{desc}: gradient of input {i}"
                continue
            np.testing.assert_allclose(0.0 if xg is None else to_np(xg), tg.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"{desc}: gradient of input {i}")
    return count
