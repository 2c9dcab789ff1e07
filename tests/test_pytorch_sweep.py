"""PyTorch's own sample inputs (``op_db`` of ``torch.testing._internal.common_methods_invocations``)
for every op xpnet has, in float64: outputs and the gradients of every differentiable input
compared with PyTorch's.  A sample passes, or its (op, kind) is in :data:`KNOWN` with the
deliberate reason (the same table is in docs/pytorch-differences.md, "Numerical edge cases
(sweep)").  Runs on NumPy (the numbers are the same code on every backend; the backend
tests cover the rest).  Skips cleanly without torch or expecttest.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import xpnet as xn
from xpnet import backend as B

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")  # common_methods_invocations imports it
F = xn.nn.functional


class Unsupported(Exception):
    """A sample uses an argument form xpnet does not take (a documented difference)."""


# ------------------------------------------------------------------ argument adapters


def _axis_keep(args, kw, axis_default=None):
    """PyTorch's (dim, keepdim) from positional or keyword arguments."""
    args = list(args)
    axis = kw.pop("dim", args.pop(0) if args else axis_default)
    keep = kw.pop("keepdim", args.pop(0) if args else False)
    if args or kw:
        raise Unsupported(f"arguments {args} {sorted(kw)}")
    return (tuple(axis) if isinstance(axis, list) else axis), keep


def _reduction(fn):
    def call(x, *args, **kw):
        axis, keep = _axis_keep(args, kw)
        if isinstance(axis, tuple) and len(axis) == 0:
            raise Unsupported("dim=() (PyTorch: all axes)")
        return fn(x, axis, keep)
    return call


def _var(fn):
    def call(x, *args, **kw):
        args = list(args)
        if args and isinstance(args[0], bool):  # var(x, unbiased)
            kw["unbiased"] = args.pop(0)
        if args:
            kw.setdefault("dim", args.pop(0))
        if args and isinstance(args[0], bool) and "unbiased" not in kw and "correction" not in kw:
            kw["unbiased"] = args.pop(0)
        if args:
            kw.setdefault("keepdim", args.pop(0))
        correction, unbiased = kw.pop("correction", None), kw.pop("unbiased", None)
        axis, keep = _axis_keep([], kw)
        return fn(x, axis, correction, keep, unbiased=unbiased)
    return call


def _max_min(fn, arg):
    def call(x, *args, **kw):
        if args and hasattr(args[0], "shape"):  # the binary form
            return (xn.maximum if fn is xn.max else xn.minimum)(x, args[0])
        if not args and not kw:
            return fn(x)
        axis, keep = _axis_keep(args, kw)
        return fn(x, axis, keep), arg(x, axis, keep)
    return call


def _plain(fn, allowed=()):
    def call(*args, **kw):
        extra = set(kw) - set(allowed)
        if extra:
            raise Unsupported(f"keyword {sorted(extra)}")
        return fn(*args, **kw)
    return call


def _no_legacy(fn, allowed):
    """A loss: ``size_average``/``reduce`` (legacy) are not taken."""
    return _plain(fn, allowed)


def _softmax(fn):
    def call(x, dim=None, dtype=None, **kw):
        if kw:
            raise Unsupported(f"keyword {sorted(kw)}")
        return fn(x, dim, dtype=None if dtype is None else B.dtype_name(dtype))
    return call


def _pad(x, pad, mode="constant", value=None):
    if mode != "constant":
        raise Unsupported(f"mode {mode!r} (issue 16)")
    nd = len(x.shape)
    widths = [(0, 0)] * nd
    for i in range(len(pad) // 2):
        widths[nd - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return xn.pad(x, widths, 0.0 if value is None else value)


def _where(x, cond, other):
    return xn.where(cond, x, other)


def _take(x, index):
    return xn.reshape(xn.take(xn.reshape(x, (-1,)), xn.reshape(index, (-1,)), 0), tuple(index.shape))


def _take_along_dim(x, index, dim=None):
    if dim is None:
        return xn.take_along_axis(xn.reshape(x, (-1,)), xn.reshape(index, (-1,)), 0)
    return xn.take_along_axis(x, index, dim)


def _expand(x, *shape):
    return x.expand(*shape)


def _squeeze(x, dim=None):
    return xn.squeeze(x, tuple(dim) if isinstance(dim, list) else dim)


def _cat(tensors, dim=0):
    return xn.concat(list(tensors), dim)


def _stack(tensors, dim=0):
    return xn.stack(list(tensors), dim)


def _embedding(weight, idx, padding_idx=None, **kw):  # op_db's sample: the weight first
    if any(v not in (None, False, 2.0) for v in kw.values()):
        raise Unsupported(f"keyword {sorted(kw)}")
    return F.embedding(idx, weight, padding_idx)


def _clamp(x, min=None, max=None):
    return xn.clip(x, min, max)


def _flatten(x, start_dim=0, end_dim=-1):
    return xn.flatten(x, start_dim, end_dim)


def _reshape(x, *shape):
    return xn.reshape(x, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)


def _permute(x, *dims):
    return xn.permute(x, dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims)


# torch op name (with ".variant") -> xpnet callable taking the sample's input, args and kwargs
OPS = {
    "abs": xn.abs, "exp": xn.exp, "log": xn.log, "log1p": xn.log1p, "expm1": xn.expm1, "sqrt": xn.sqrt,
    "sin": xn.sin, "cos": xn.cos, "neg": xn.neg, "square": xn.square, "tanh": xn.tanh, "sigmoid": xn.sigmoid,
    "erf": F.activation.erf,
    "add": xn.add, "sub": xn.sub, "mul": xn.mul, "div.no_rounding_mode": xn.div,
    "div.trunc_rounding": xn.div, "div.floor_rounding": xn.div, "pow": xn.pow,
    "maximum": xn.maximum, "minimum": xn.minimum, "max.binary": xn.maximum, "min.binary": xn.minimum,
    "clamp": _clamp, "where": _where,
    "matmul": xn.matmul, "mm": xn.matmul, "bmm": xn.matmul, "mv": xn.matmul,
    "sum": _reduction(xn.sum), "mean": _reduction(xn.mean), "amax": _reduction(xn.max),
    "amin": _reduction(xn.min), "logsumexp": _reduction(xn.logsumexp),
    "max.reduction_no_dim": xn.max, "min.reduction_no_dim": xn.min,
    "max.reduction_with_dim": _max_min(xn.max, xn.argmax), "min.reduction_with_dim": _max_min(xn.min, xn.argmin),
    "argmax": _reduction(xn.argmax), "argmin": _reduction(xn.argmin),
    "var": _var(xn.var), "var.unbiased": _var(xn.var), "std": _var(xn.std), "std.unbiased": _var(xn.std),
    "reshape": _reshape, "view": _reshape, "flatten": _flatten, "permute": _permute, "transpose": xn.transpose,
    "unsqueeze": xn.unsqueeze, "squeeze": _squeeze, "squeeze.multiple": _squeeze, "expand": _expand,
    "broadcast_to": xn.broadcast_to, "cat": _cat, "stack": _stack,
    "__getitem__": lambda x, key: x[key], "take": _take, "take_along_dim": _take_along_dim,
    "gather": lambda x, dim, index, sparse_grad=False: xn.gather(x, dim, index),
    "index_select": lambda x, dim, index: xn.take(x, index, dim),
    "softmax": _softmax(F.softmax), "softmax.with_dtype": _softmax(F.softmax),
    "log_softmax": _softmax(F.log_softmax), "log_softmax.with_dtype": _softmax(F.log_softmax),
    "nn.functional.pad.constant": _pad,
    "nn.functional.relu": _plain(F.relu if hasattr(F, "relu") else xn.relu, ("inplace",)),
    "nn.functional.leaky_relu": _plain(xn.leaky_relu, ("negative_slope", "inplace")),
    "nn.functional.elu": _plain(F.elu, ("alpha", "inplace")),
    "nn.functional.gelu": _plain(F.gelu, ("approximate",)),
    "nn.functional.silu": _plain(F.silu, ("inplace",)),
    "nn.functional.softplus": _plain(F.softplus, ("beta", "threshold")),
    "nn.functional.hardtanh": _plain(F.hardtanh, ("min_val", "max_val", "inplace")),
    "nn.functional.linear": F.linear,
    "nn.functional.conv1d": F.conv1d, "nn.functional.conv2d": F.conv2d,
    "nn.functional.conv_transpose1d": F.conv_transpose1d, "nn.functional.conv_transpose2d": F.conv_transpose2d,
    "nn.functional.unfold": F.unfold,
    "nn.functional.max_pool1d": F.max_pool1d, "nn.functional.max_pool2d": F.max_pool2d,
    "nn.functional.avg_pool1d": F.avg_pool1d, "nn.functional.avg_pool2d": F.avg_pool2d,
    "nn.functional.adaptive_avg_pool1d": F.adaptive_avg_pool1d,
    "nn.functional.adaptive_avg_pool2d": F.adaptive_avg_pool2d,
    "nn.functional.adaptive_max_pool1d": F.adaptive_max_pool1d,
    "nn.functional.adaptive_max_pool2d": F.adaptive_max_pool2d,
    "nn.functional.adaptive_max_pool3d": F.adaptive_max_pool3d,
    "nn.functional.grid_sample": F.grid_sample,
    "nn.functional.embedding": _embedding,
    "nn.functional.layer_norm": F.layer_norm, "nn.functional.group_norm": F.group_norm,
    "nn.functional.batch_norm": F.batch_norm, "nn.functional.batch_norm.without_cudnn": F.batch_norm,
    "nn.functional.scaled_dot_product_attention": _plain(
        F.scaled_dot_product_attention, ("attn_mask", "dropout_p", "is_causal", "scale")),
    "nn.functional.mse_loss": _no_legacy(F.mse_loss, ("reduction",)),
    "nn.functional.l1_loss": _no_legacy(F.l1_loss, ("reduction",)),
    "nn.functional.huber_loss": _no_legacy(F.huber_loss, ("reduction", "delta")),
    "nn.functional.smooth_l1_loss": _no_legacy(F.smooth_l1_loss, ("reduction", "beta")),
    "nn.functional.binary_cross_entropy": _no_legacy(F.binary_cross_entropy, ("weight", "reduction")),
    "nn.functional.binary_cross_entropy_with_logits": _no_legacy(
        F.binary_cross_entropy_with_logits, ("weight", "reduction", "pos_weight")),
    "nn.functional.cross_entropy": _no_legacy(
        F.cross_entropy, ("weight", "ignore_index", "reduction", "label_smoothing")),
    "nn.functional.nll_loss": _no_legacy(F.nll_loss, ("weight", "ignore_index", "reduction")),
    "nn.functional.kl_div": _no_legacy(F.kl_div, ("reduction", "log_target")),
}

# op -> {start of the kind of failure: the deliberate reason}.  A failing sample whose kind (what
# run_sample reports: "unsupported: ...", "error: <type>: ...", "value...", "gradient") starts with
# one of its op's prefixes is a documented difference, not a failure.  Mirrored in
# docs/pytorch-differences.md, "Numerical edge cases (sweep)".
_EMPTY_DIMS = ("dim=() reduces every axis in PyTorch (a legacy rule); xpnet follows the Array API, where "
               "axis=() is a tuple of no axes: pass axis=None to reduce them all")
KNOWN = {
    "sum": {"unsupported: dim=()": _EMPTY_DIMS},
    "mean": {"unsupported: dim=()": _EMPTY_DIMS},
    "amax": {"unsupported: dim=()": _EMPTY_DIMS},
    "amin": {"unsupported: dim=()": _EMPTY_DIMS},
    "cat": {"error: ValueError: concat": "PyTorch's legacy rule skips 1-D empty tensors of shape (0,) in cat "
                                         "whatever the other shapes; xpnet requires matching ranks (Array API)"},
    "nn.functional.batch_norm": {"error: ValueError: batch_norm: input must have at least 2 dimensions":
                                 "a 1-D input of shape (0,): no channel axis; xpnet needs (N, C, ...)"},
    "nn.functional.scaled_dot_product_attention": {"value": "dropout_p > 0 draws a random mask: xpnet's "
                                                            "generator is not PyTorch's, so values differ"},
}


def known(name, kind, table=None):
    """The documented reason why ``name`` fails a sample of ``kind``, or None."""
    table = KNOWN if table is None else table
    return next((why for start, why in table.get(name, {}).items() if kind.startswith(start)), None)


# ------------------------------------------------------------------ running one sample


def _to_xn(v, pairs):
    if isinstance(v, torch.Tensor):
        a = v.detach().cpu()
        rg = bool(v.requires_grad and a.is_floating_point())
        t = xn.tensor(a.numpy().copy(), dtype=B.dtype_name(a.numpy().dtype), requires_grad=rg)
        tt = a.clone().requires_grad_(rg)
        if rg:
            pairs.append((tt, t))
        return t, tt
    if isinstance(v, (list, tuple)) and not isinstance(v, torch.Size):
        got = [_to_xn(e, pairs) for e in v]
        return type(v)(g[0] for g in got), type(v)(g[1] for g in got)
    if isinstance(v, dict):
        got = {k: _to_xn(e, pairs) for k, e in v.items()}
        return {k: g[0] for k, g in got.items()}, {k: g[1] for k, g in got.items()}
    return v, v


def _outputs(y):
    """The output tensors of an op or module, nested tuples flattened."""
    if isinstance(y, (tuple, list)):
        return [o for e in y for o in _outputs(e)]
    return [y]


def run_sample(op, fn, sample):
    """``"pass"``, ``"torch-error"``, or a kind of failure (see :data:`KNOWN`)."""
    pairs = []
    x_in, t_in = _to_xn(sample.input, pairs)
    x_args, t_args = _to_xn(tuple(sample.args), pairs)
    x_kw, t_kw = _to_xn(dict(sample.kwargs), pairs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = op.op(t_in, *t_args, **t_kw)
    except Exception:
        return "torch-error"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = fn(x_in, *x_args, **x_kw)
    except Unsupported as e:
        return f"unsupported: {e}"
    except Exception as e:
        return f"error: {type(e).__name__}: {str(e)[:80]}"
    return _compare(got, want, pairs)


def _compare(got, want, pairs):
    """``"pass"`` or the kind of failure, for outputs ``got``/``want`` and the (torch, xpnet) leaves
    whose gradients to compare (a weighted sum of the outputs is differentiated)."""
    want_o, got_o = _outputs(want), _outputs(got)
    if len(want_o) != len(got_o):
        return "value: number of outputs"
    for a, b in zip(got_o, want_o):
        a = B.to_numpy(a.data if isinstance(a, xn.Tensor) else a)
        b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
        if a.shape != b.shape:
            return f"value: shape {a.shape} != {b.shape}"
        if not np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=1e-7, atol=1e-7, equal_nan=True):
            return "value"
    rng = np.random.default_rng(0)
    t_loss = x_loss = None
    for a, b in zip(got_o, want_o):
        if isinstance(b, torch.Tensor) and b.requires_grad and b.is_floating_point() and isinstance(a, xn.Tensor):
            w = rng.uniform(0.5, 1.5, size=tuple(b.shape))
            tl, xl = (b * torch.tensor(w, dtype=b.dtype)).sum(), (a * xn.tensor(w, dtype="float64")).sum()
            t_loss, x_loss = (tl, xl) if t_loss is None else (t_loss + tl, x_loss + xl)
    if t_loss is None or not pairs:
        return "pass"
    t_loss.backward()
    try:
        x_loss.backward()
    except Exception as e:
        return f"error in backward: {type(e).__name__}: {str(e)[:80]}"
    for tt, t in pairs:
        gw, gg = tt.grad, t.grad
        if gw is None and gg is None:
            continue
        gw = np.zeros(tuple(tt.shape)) if gw is None else gw.numpy()
        gg = np.zeros(t.shape) if gg is None else B.to_numpy(gg.data)
        if gg.shape != gw.shape or not np.allclose(gg, gw, rtol=1e-6, atol=1e-7, equal_nan=True):
            return "gradient"
    return "pass"


def run_module_sample(info, xcls, mi, training):
    """One ``module_db`` sample: the same constructor arguments, PyTorch's initial weights loaded
    into xpnet's module (same names and layouts), outputs and gradients of inputs and parameters."""
    pairs = []
    cx, ct = _to_xn(tuple(mi.constructor_input.args), [])
    kx, kt = _to_xn(dict(mi.constructor_input.kwargs), [])
    kx.pop("device", None)  # PyTorch's device="cpu" (xpnet's is backend=; the backend in use here)
    fx, ft = _to_xn(tuple(mi.forward_input.args), pairs)
    fkx, fkt = _to_xn(dict(mi.forward_input.kwargs), pairs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(0)
            m = info.module_cls(*ct, **kt).to(torch.float64)
            m.train(training)
            want = m(*ft, **fkt)
    except Exception:
        return "torch-error"
    try:
        xm = xcls(*cx, **kx).double()
    except Exception as e:
        return f"unsupported: constructor {type(e).__name__}: {str(e)[:60]}"
    xm.train(training)
    try:
        xm.load_state_dict({k: v.detach().numpy().copy() for k, v in m.state_dict().items()})
    except Exception as e:
        return f"error: state_dict {type(e).__name__}: {str(e)[:60]}"
    params = dict(xm.named_parameters())
    for name, p in m.named_parameters():
        if name in params:
            pairs.append((p, params[name]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = xm(*fx, **fkx)
    except Exception as e:
        return f"error: {type(e).__name__}: {str(e)[:80]}"
    return _compare(got, want, pairs)


def module_sweep():
    """``{module name: {kind: count}}`` over ``module_db`` for every module xpnet has (float64, CPU)."""
    from torch.testing._internal.common_modules import module_db
    results = {}
    with xn.using("numpy"):
        for info in module_db:
            name = info.module_cls.__name__
            xcls = getattr(xn.nn, name, None)
            if xcls is None or name in MODULES_LEFT_OUT:
                continue
            counts = results.setdefault(name, {})
            for training in ((True, False) if info.train_and_eval_differ else (True,)):
                samples = [mi for mi in info.module_inputs_func(info, device="cpu", dtype=torch.float64,
                                                                requires_grad=True, training=training)
                           if mi.forward_input is not None]
                for mi in samples[::1 if FULL else -(-len(samples) // MAX_MODULE_SAMPLES)]:
                    kind = run_module_sample(info, xcls, mi, training)
                    counts[kind] = counts.get(kind, 0) + 1
    return results


# name -> why the module sweep does not run it (tests/torch_samples.py runs their module_db samples instead)
_LAZY = ("lazy: the parameters exist only after the first call, so PyTorch's initial weights cannot be "
         "loaded before it")
MODULES_LEFT_OUT = {name: _LAZY for name in ("LazyLinear", "LazyConv1d", "LazyConv2d", "LazyConv3d",
                                             "LazyConvTranspose1d", "LazyConvTranspose2d", "LazyConvTranspose3d")}
MODULES_LEFT_OUT["TransformerEncoder"] = MODULES_LEFT_OUT["TransformerDecoder"] = MODULES_LEFT_OUT["Transformer"] = (
    "the samples pass a PyTorch layer object to the constructor")
_TORCH_ACTIVATION = "the sample passes PyTorch's own function as activation= (xpnet takes a string or its own)"
KNOWN_MODULES = {  # as KNOWN, for module_db
    "CTCLoss": {"gradient": "the gradient is the exact one with respect to log_probs; PyTorch's assumes a "
                            "log_softmax came before it (the two agree on the logits: tests/test_losses_more.py)"},
    "TransformerEncoderLayer": {"error: TypeError: gelu()": _TORCH_ACTIVATION},
    "TransformerDecoderLayer": {"error: TypeError: gelu()": _TORCH_ACTIVATION},
}


def _op_name(op):
    return op.name + ("." + op.variant_test_name if op.variant_test_name else "")


MAX_SAMPLES = 300  # an op with more samples runs an evenly spaced subset (the time limit of the suite)
MAX_MODULE_SAMPLES = 150  # the same for a module (LinearCrossEntropyLoss has 857: every 6th)
FULL = os.environ.get("XPNET_FULL_SAMPLES", "") == "1"  # every sample (docs/pytorch-differences.md: the last full run)


def sweep():
    """``{op name: {kind: count}}`` over every sample of every mapped op (float64, CPU)."""
    from torch.testing._internal.common_methods_invocations import op_db
    results = {}
    with xn.using("numpy"):
        for op in op_db:
            name = _op_name(op)
            fn = OPS.get(name)
            if fn is None or torch.float64 not in op.supported_dtypes("cpu"):
                continue
            counts = results.setdefault(name, {})
            samples = list(op.sample_inputs("cpu", torch.float64, requires_grad=op.supports_autograd))
            step = 1 if FULL else -(-len(samples) // MAX_SAMPLES)  # max_pool1d/2d have 864 and 1440: every 3rd/5th
            for sample in samples[::step]:
                kind = run_sample(op, fn, sample)
                counts[kind] = counts.get(kind, 0) + 1
    return results


def _check(results, table, what, least_ops, least_samples):
    failures, documented, passed = [], 0, 0
    for name, counts in sorted(results.items()):
        for kind, n in counts.items():
            if kind == "pass":
                passed += n
            elif kind == "torch-error":
                continue
            elif known(name, kind, table):
                documented += n
            else:
                failures.append(f"{name}: {n} x {kind}")
    print(f"\npytorch {what} sweep: {passed} samples pass, {documented} documented differences, "
          f"over {len(results)} {what}s")
    assert len(results) >= least_ops, f"only {len(results)} {what}s mapped"
    assert passed >= least_samples
    assert not failures, "\n".join(failures)


def test_pytorch_op_db_sweep():
    _check(sweep(), KNOWN, "op", 95, 1300)


def test_pytorch_module_db_sweep():
    _check(module_sweep(), KNOWN_MODULES, "module", 40, 590)
