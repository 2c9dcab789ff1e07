"""Issue 16's list, name by name: every module and function it names exists in xpnet.nn,
xpnet.nn.functional or xpnet, with PyTorch's parameter names, order, kinds and defaults
(``inspect.signature`` compared with torch's; the only differences allowed are those of the
tables below, each with its reason); the README's layer list names each; and every module
of PyTorch's ``module_db`` is in xpnet.nn (the count the issue's closing note gives).

Only signatures here: the numbers are compared with PyTorch in the layers' own tests
(``tests/torch_samples.py``, ``tests/test_pytorch_sweep.py``).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import xpnet as xn
from xpnet import nn
from xpnet.nn import functional as F
from conftest import to_np

torch = pytest.importorskip("torch")

# ------------------------------------------------------------------ the names

_3D = "Conv3d ConvTranspose3d MaxPool3d AvgPool3d AdaptiveAvgPool3d BatchNorm3d"
_POOLS = ("AdaptiveMaxPool1d AdaptiveMaxPool2d AdaptiveMaxPool3d LPPool1d LPPool2d LPPool3d MaxUnpool1d MaxUnpool2d "
          "MaxUnpool3d FractionalMaxPool2d FractionalMaxPool3d")
_PADS = " ".join(f"{k}Pad{d}d" for k in ("Zero", "Constant", "Reflection", "Replication", "Circular") for d in (1, 2, 3))
MODULES = (
    "TransformerEncoderLayer TransformerDecoderLayer TransformerEncoder TransformerDecoder Transformer "
    f"{_3D} {_POOLS} {_PADS} "
    "Upsample PixelShuffle PixelUnshuffle ChannelShuffle "
    "InstanceNorm1d InstanceNorm2d InstanceNorm3d RMSNorm LocalResponseNorm "
    "Bilinear CosineSimilarity PairwiseDistance EmbeddingBag "
    "CELU SELU GLU Hardshrink Hardsigmoid Hardswish ReLU6 PReLU RReLU LogSigmoid Mish Softmin Softmax2d Softshrink "
    "Softsign Tanhshrink Threshold "
    "Dropout1d Dropout2d Dropout3d AlphaDropout FeatureAlphaDropout "
    "CosineEmbeddingLoss MarginRankingLoss HingeEmbeddingLoss MultiMarginLoss MultiLabelMarginLoss "
    "MultiLabelSoftMarginLoss SoftMarginLoss TripletMarginLoss TripletMarginWithDistanceLoss GaussianNLLLoss "
    "PoissonNLLLoss CTCLoss "
    "LazyLinear LazyConv1d LazyConv2d LazyConv3d LazyConvTranspose1d LazyConvTranspose2d LazyConvTranspose3d "
    "LinearCrossEntropyLoss"  # not in the issue: the 114th module of PyTorch 2.13's module_db
).split()

# the nn.functional form of each, where PyTorch has one (the issue: "each with its nn.functional form")
FUNCTIONS = (
    "multi_head_attention_forward conv3d conv_transpose3d max_pool3d avg_pool3d adaptive_avg_pool3d "
    "adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d lp_pool1d lp_pool2d lp_pool3d max_unpool1d "
    "max_unpool2d max_unpool3d fractional_max_pool2d fractional_max_pool3d pad interpolate pixel_shuffle "
    "pixel_unshuffle channel_shuffle grid_sample affine_grid instance_norm rms_norm local_response_norm batch_norm "
    "bilinear cosine_similarity pairwise_distance normalize one_hot pdist embedding_bag "
    "celu selu glu hardshrink hardsigmoid hardswish relu6 prelu rrelu logsigmoid mish softmin softshrink softsign "
    "tanhshrink threshold dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout "
    "cosine_embedding_loss margin_ranking_loss hinge_embedding_loss multi_margin_loss multilabel_margin_loss "
    "multilabel_soft_margin_loss soft_margin_loss triplet_margin_loss triplet_margin_with_distance_loss "
    "gaussian_nll_loss poisson_nll_loss ctc_loss linear_cross_entropy"
).split()

TOP_LEVEL = {"autocast": "torch.amp.autocast", "GradScaler": "torch.amp.GradScaler"}

# ------------------------------------------------------------------ the allowed differences
# (the same table is in docs/pytorch-differences.md, "Signatures of the layers")

# a PyTorch parameter -> xpnet's name for it, wherever it occurs
RENAMED = {"device": "backend"}  # xpnet places tensors by backend (and its device): `backend="torch"`, ("cupy", 0)
# PyTorch parameters xpnet does not take, wherever they occur
DROPPED = {
    "size_average": "deprecated in PyTorch for `reduction`",
    "reduce": "deprecated in PyTorch for `reduction`",
    "out": "arrays are immutable in the core (JAX's cannot change): use the returned tensor",
    "_stacklevel": "private (PyTorch's warning depth)",
}  # (a dropped parameter may keep its place, default None, where later ones are positional: it must be None)
# (owner, xpnet parameter) -> why xpnet has a parameter PyTorch lacks (keyword, with a default, after
# PyTorch's): owner is a name of the lists above, "*" for any
EXTRA = {
    ("*", "generator"): "random layers take an xpnet.Generator (PyTorch's draw from the global one)",
    ("multi_head_attention_forward", "name"): "the layer name its errors give (MultiheadAttention passes its own)",
    ("Transformer.generate_square_subsequent_mask", "backend"): "where the mask is made, beside PyTorch's device",
}
# (owner, parameter) -> why the default differs
DEFAULTS = {
    ("autocast", "device_type"): "'cpu' (PyTorch: required): the current backend decides where it runs",
    ("autocast", "dtype"): "'bfloat16', PyTorch's default on the CPU (its None means the device's default)",
}


def _same_default(owner, name, t, x):
    if (owner, name) in DEFAULTS:
        return True
    if callable(t) and isinstance(x, str):  # activation=F.relu in PyTorch, "relu" in xpnet (both accept both)
        return getattr(t, "__name__", None) == x and getattr(F, x, None) is not None
    if t is inspect.Parameter.empty or x is inspect.Parameter.empty:
        return t is x
    return type(t) is type(x) and t == x or (isinstance(t, (int, float)) and not isinstance(t, bool) and t == x)


def _from_doc(f):
    """The signature of a PyTorch builtin, from its docstring's first line ("conv3d(input, weight, ...) -> T")."""
    first = (f.__doc__ or "").strip().splitlines()[0]
    head = first.split("->")[0].strip()
    ns = {}
    exec(f"def {head}: pass", {}, ns)  # noqa: S102  (PyTorch's own docstring)
    return inspect.signature(next(iter(ns.values())))


def torch_signature(owner, obj):
    """PyTorch's signature of a function or of a class's ``__init__`` (``self`` left out)."""
    if inspect.isclass(obj):
        init = obj.__init__
        if init is torch.nn.Module.__init__:  # e.g. LogSigmoid(): no arguments
            return []
        sig = inspect.signature(init)
    else:
        with_indices = getattr(torch.nn.functional, f"{owner}_with_indices", None)
        if with_indices is not None:  # boolean_dispatch(return_indices): (*args, **kwargs)
            obj = with_indices
        try:
            sig = inspect.signature(obj)
        except ValueError:  # a builtin
            sig = _from_doc(obj)
    return [p for p in sig.parameters.values() if p.name != "self"]


def xpnet_signature(obj):
    sig = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    return [p for p in sig.parameters.values() if p.name != "self"]


def compare(owner, tparams, xparams):
    """The differences between the parameter lists not allowed by the tables (empty: none)."""
    problems = []
    kept = {q.name for q in xparams if q.name in DROPPED and q.default is None}  # a place kept, must be None
    want = [p for p in tparams if p.name not in DROPPED or p.name in kept]
    have = list(xparams)
    renamed = {p.name for p in want if p.name in RENAMED and p.name not in {q.name for q in have}}
    for name in renamed:  # (GradScaler keeps PyTorch's device="cuda")
        q = next((q for q in have if q.name == RENAMED[name]), None)
        if q is None:
            problems.append(f"{name} (xpnet: {RENAMED[name]}) missing")
        else:
            have.remove(q)
    want = [p for p in want if p.name not in renamed]
    extra = [q for q in have if q.name not in {p.name for p in want}]
    for q in extra:
        if (owner, q.name) not in EXTRA and ("*", q.name) not in EXTRA:
            problems.append(f"extra parameter {q.name} (not PyTorch's)")
        elif q.default is inspect.Parameter.empty:
            problems.append(f"extra parameter {q.name} has no default")
    have = [q for q in have if q not in extra]
    if [p.name for p in want] != [q.name for q in have]:
        problems.append(f"parameters {[q.name for q in have]}, PyTorch's {[p.name for p in want]}")
        return problems
    after_dropped = {p.name for i, p in enumerate(tparams) if any(d.name in DROPPED for d in tparams[:i])}
    for p, q in zip(want, have):
        if p.name in after_dropped and q.kind == q.KEYWORD_ONLY:
            pass  # after a dropped parameter (size_average, reduce): keyword-only, so that a call by position fails
        elif p.kind != q.kind and not {p.kind, q.kind} <= {p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY}:
            problems.append(f"{p.name}: {q.kind.description}, PyTorch's {p.kind.description}")
        if not _same_default(owner, p.name, p.default, q.default):
            problems.append(f"{p.name}={q.default!r}, PyTorch's {p.default!r}")
    return problems


@pytest.mark.parametrize("name", MODULES)
def test_module_signature(name):
    cls = getattr(nn, name, None)
    assert cls is not None, f"xpnet.nn.{name} is missing"
    problems = compare(name, torch_signature(name, getattr(torch.nn, name)), xpnet_signature(cls))
    assert not problems, f"nn.{name}: " + "; ".join(problems)


@pytest.mark.parametrize("name", MODULES)
def test_module_forward_signature(name):
    """``forward``'s parameters too (a lazy module's forward is the module's it becomes)."""
    tcls, cls = getattr(torch.nn, name), getattr(nn, name)
    cls = getattr(cls, "cls_to_become", None) or cls
    tcls = getattr(tcls, "cls_to_become", None) or tcls
    problems = compare(name, torch_signature(name, tcls.forward), xpnet_signature(cls.forward))
    assert not problems, f"nn.{name}.forward: " + "; ".join(problems)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_signature(name):
    f = getattr(F, name, None)
    assert f is not None, f"xpnet.nn.functional.{name} is missing"
    problems = compare(name, torch_signature(name, getattr(torch.nn.functional, name)), xpnet_signature(f))
    assert not problems, f"F.{name}: " + "; ".join(problems)


def test_top_level_and_static_signatures():
    for name, where in TOP_LEVEL.items():
        obj = getattr(xn, name, None)
        assert obj is not None, f"xpnet.{name} is missing"
        tobj = getattr(torch.amp, where.rsplit(".", 1)[1])
        problems = compare(name, torch_signature(name, tobj), xpnet_signature(obj))
        assert not problems, f"xpnet.{name}: " + "; ".join(problems)
    owner = "Transformer.generate_square_subsequent_mask"
    problems = compare(owner, torch_signature(owner, torch.nn.Transformer.generate_square_subsequent_mask),
                       xpnet_signature(nn.Transformer.generate_square_subsequent_mask))
    assert not problems, f"{owner}: " + "; ".join(problems)
    assert isinstance(inspect.getattr_static(nn.Transformer, "generate_square_subsequent_mask"), staticmethod)


def test_the_comparison_can_fail():
    """The checker itself: a renamed, missing, extra or re-defaulted parameter is reported."""
    def t(input, p=2.0, dim=1, size_average=None, device=None):
        pass

    def x(input, p=2.0, dim=1, backend=None):
        pass
    tp, xp = list(inspect.signature(t).parameters.values()), list(inspect.signature(x).parameters.values())
    assert compare("f", tp, xp) == []

    def wrong(input, q=2.0, dim=0, extra=1):
        pass
    problems = compare("f", tp, list(inspect.signature(wrong).parameters.values()))
    assert any("device" in s for s in problems) and any("extra parameter" in s for s in problems)

    def wrong_default(input, p=3.0, dim=1, backend=None):
        pass
    assert compare("f", tp, list(inspect.signature(wrong_default).parameters.values())) == [
        "p=3.0, PyTorch's 2.0"]


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area"])
def test_interpolate_modes_exist(mode):
    """Each of the issue's modes runs and agrees with PyTorch (one small case: the numbers are
    tested in tests/test_upsampling.py)."""
    nd = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}.get(mode, 2)
    x = np.random.default_rng(0).standard_normal((1, 2) + (3,) * nd)
    kw = {"align_corners": False} if mode in ("linear", "bilinear", "bicubic", "trilinear") else {}
    with xn.using("numpy"):
        y = to_np(F.interpolate(xn.tensor(x, dtype="float64"), scale_factor=2, mode=mode, **kw))
        y2 = to_np(nn.Upsample(scale_factor=2, mode=mode, **kw)(xn.tensor(x, dtype="float64")))
    want = torch.nn.functional.interpolate(torch.tensor(x), scale_factor=2, mode=mode, **kw).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y2, want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ the README's layer list

def readme_layers():
    """The names in the README's "Layers" section, "X1d/2d/3d" and "A, B, each 1d/2d/3d" expanded."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("\n## Layers", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`(?:F\.|xpnet\.|nn\.)?([A-Za-z_][\w.]*)", section))
    for row in re.findall(r"^\|[^|]*\|(.*)\|$", section, flags=re.M):
        row = re.sub(r"\([^)]*\)", "", row)
        each = re.search(r"each ((?:\d+d/?)+)", row)
        for tok in re.split(r"[,;]\s*", row):
            tok = tok.strip().strip("`")
            m = re.fullmatch(r"([A-Za-z]+?)(\d+d(?:/\d+d)*)", tok)
            if m:
                names.update(m.group(1) + s for s in m.group(2).split("/"))
            elif each and re.fullmatch(r"[A-Za-z]+", tok):
                names.update(tok + s for s in each.group(1).split("/"))
            elif tok:
                names.add(tok.split()[-1] if " " in tok else tok)
    return names


def test_readme_lists_every_one():
    names = readme_layers()
    assert {"Conv3d", "ZeroPad1d", "CircularPad3d", "FractionalMaxPool2d"} <= names  # the expansion works
    missing = [n for n in MODULES if n not in names]
    missing += [f"F.{n}" for n in ("multi_head_attention_forward", "interpolate", "grid_sample", "affine_grid",
                                   "normalize", "one_hot", "pdist", "linear_cross_entropy") if n not in names]
    missing += [n for n in ("generate_square_subsequent_mask", "autocast", "GradScaler")
                if not any(n in s for s in names)]
    assert not missing, f"README's layer list lacks {missing}"


# ------------------------------------------------------------------ PyTorch's module_db

def test_every_module_db_module_is_here():
    pytest.importorskip("expecttest")
    from torch.testing._internal.common_modules import module_db
    names = sorted({m.module_cls.__name__ for m in module_db})
    missing = [n for n in names if not hasattr(nn, n)]
    print(f"\nPyTorch {torch.__version__} module_db: {len(names) - len(missing)} of {len(names)} modules in xpnet.nn")
    assert not missing, f"xpnet.nn lacks {missing} of PyTorch's module_db"
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"{len(names)} of the {len(names)} modules" in text, "the README's count of module_db modules"


def test_a_kept_legacy_place_refuses_a_value():
    """PoissonNLLLoss keeps size_average/reduce in their places (eps comes after): a value is refused."""
    with pytest.raises(ValueError, match="size_average and reduce are deprecated"):
        nn.PoissonNLLLoss(True, False, True)
    with pytest.raises(ValueError, match="reduction="):
        F.poisson_nll_loss(xn.tensor([1.0]), xn.tensor([1.0]), reduce=False)
