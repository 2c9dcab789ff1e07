"""``backend.add_slices`` (col2im's primitive) against its portable version, and the
convolution paths built on it: unfold/fold in every layout (K at any axis, trailing axes),
strided convolutions with bias and groups, double backprop."""

import numpy as np
import pytest

import xpnet as xn
import xpnet.nn.functional as F
from xpnet import backend as B
from xpnet.nn.functional import conv as C
from conftest import to_np

RNG = np.random.default_rng(1)
JAX_SUBSET = "JAX compiles each new operation shape eagerly (~0.1 s each): a subset of the conv cases runs on JAX"

E = Ellipsis
S = slice
ADD_CASES = {
    # name: (shape, [(index, value shape)])
    "conv1d_k3_s2": ((2, 3, 9, 4), [((S(None), S(None), S(j, j + 7, 2), E), (2, 3, 4, 4)) for j in range(3)]),
    "overlap_first_in_phase_last": ((2, 9), [((S(None), S(2, 9, 2)), (2, 4)), ((S(None), S(0, 7, 2)), (2, 4)),
                                             ((S(None), S(1, 8, 2)), (2, 4))]),
    "2d_strides_dilation": ((1, 2, 7, 8), [((S(None), S(None), S(i, i + 5, 2), S(j, j + 7, 3)), (1, 2, 3, 3))
                                           for i in (0, 2, 1) for j in (0, 1)]),
    "mixed_steps": ((3, 10), [((S(None), S(0, 10, 2)), (3, 5)), ((S(None), S(None)), (3, 10)),
                              ((S(None), S(1, 10, 3)), (3, 3)), ((S(None), S(2, 10, 2)), (3, 4))]),
    "short_index_and_defaults": ((4, 3, 2), [((S(1, None),), (3, 3, 2)), ((S(None, 3), S(0, 3, 2)), (3, 2, 2)),
                                             ((E, S(1, 2)), (4, 3, 1))]),
}


def _reference(shape, pieces):
    z = np.zeros(shape)
    for index, value in pieces:
        z[index] += value
    return z


@pytest.mark.parametrize("case", sorted(ADD_CASES))
def test_add_slices_fast_path_equals_portable(bk, case):
    shape, spec = ADD_CASES[case]
    host = [(index, RNG.standard_normal(vs)) for index, vs in spec]
    pieces = [(index, bk.xp.asarray(v, device=bk.device)) for index, v in host]
    fast, portable = to_np(B.add_slices(shape, pieces)), to_np(B.add_slices_portable(shape, pieces))
    want = _reference(shape, host)
    np.testing.assert_allclose(fast, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(portable, want, rtol=1e-12, atol=1e-12)


def test_add_slices_keeps_dtype_and_takes_empty_pieces(bk):
    v = bk.xp.ones((2, 0), dtype=bk.xp.float32, device=bk.device)
    w = bk.xp.ones((2, 2), dtype=bk.xp.float32, device=bk.device)
    for fn in (B.add_slices, B.add_slices_portable):
        z = fn((2, 5), [((S(None), S(5, 9)), v), ((S(None), S(1, 4, 2)), w)])
        assert z.dtype == bk.xp.float32
        np.testing.assert_array_equal(to_np(z), [[0, 1, 0, 1, 0]] * 2)


def test_add_slices_portable_names_a_bad_index(bk):
    v = bk.xp.ones((2, 3), device=bk.device)
    with pytest.raises(ValueError, match="positive steps"):
        B.add_slices_portable((2, 5), [((S(None), S(0, 5, 2)), bk.xp.ones((2, 2), device=bk.device))])
    with pytest.raises(ValueError, match="positive steps"):
        B.add_slices_portable((2, 5), [((S(None), 1), v)])


@pytest.mark.parametrize("nd,axis,trail", [(1, 1, ()), (1, 2, ()), (1, 3, (2,)), (2, 2, ()), (2, 4, (3,)),
                                           (2, 1, (2,))])
def test_unfold_and_fold_are_adjoint_in_every_layout(bk, nd, axis, trail):
    """<unfold(x), c> == <x, fold(c)> for K stacked at ``axis`` and extra trailing axes."""
    size, kernel, stride, dilation, lo, hi = ((9, 7), (3, 2), (2, 3), (1, 2), (1, 0), (1, 2))
    geo = C.Geometry.sliding(size[:nd], kernel[:nd], stride[:nd], dilation[:nd], lo[:nd], hi[:nd], "test")
    xp = bk.xp
    x = RNG.standard_normal((2, 3, *size[:nd], *trail))
    u = C._unfold(xp, xp.asarray(x, device=bk.device), geo, axis)
    c = RNG.standard_normal(tuple(u.shape))
    f = C._fold(xp, xp.asarray(c, device=bk.device), geo, axis)
    assert tuple(f.shape) == x.shape
    assert float(np.sum(to_np(u) * c)) == pytest.approx(float(np.sum(x * to_np(f))), rel=1e-12)


def t64(a, requires_grad=False):
    return xn.tensor(a, dtype="float64", requires_grad=requires_grad)


@pytest.mark.parametrize("xs,ws,kw", [
    ((2, 1, 9), (3, 1, 3), dict(stride=2, padding=1)),  # one input channel
    ((1, 4, 7), (4, 1, 3), dict(stride=2, padding=1, groups=4)),  # depthwise: one channel per group
    ((2, 4, 7), (6, 2, 3), dict(stride=2, padding=2, groups=2)),
    ((1, 1, 5, 6), (2, 1, 2, 3), dict(stride=(2, 1), padding=1)),
])
def test_conv_with_bias_gradgradcheck(bk, xs, ws, kw):
    if bk.name == "jax" and xs != (2, 1, 9):
        pytest.skip(JAX_SUBSET)
    fn = F.conv1d if len(xs) == 3 else F.conv2d
    x, w, b = t64(RNG.standard_normal(xs)), t64(RNG.standard_normal(ws)), t64(RNG.standard_normal(ws[0]))
    assert xn.gradcheck(lambda x, w, b: fn(x, w, b, **kw), x, w, b)
    assert xn.gradgradcheck(lambda x, w, b: fn(x, w, b, **kw) ** 2, x, w, b)


def test_cnn1d_layers_match_torch(bk):
    """The benchmark's stack: stride-2 convolutions from one channel, ReLU between, float64."""
    torch = pytest.importorskip("torch")
    if bk.name == "jax":
        pytest.skip(JAX_SUBSET)
    x = RNG.standard_normal((4, 1, 40))
    ws = [RNG.standard_normal(s) * 0.3 for s in ((5, 1, 5), (5, 5, 3), (5, 5, 3))]
    bs = [RNG.standard_normal(5) for _ in ws]
    gy = RNG.standard_normal((4, 5, 5))

    def run(conv, relu, tensor):
        h = tensor(x)
        params = [tensor(a) for a in ws + bs]
        for w, b in zip(params[:3], params[3:]):
            h = relu(conv(h, w, b, stride=2, padding=1))
        (h * tensor(gy)).sum().backward()
        return [to_np(h)] + [to_np(p.grad) for p in params]

    got = run(F.conv1d, F.relu, lambda a: t64(a, requires_grad=True))
    want = run(torch.nn.functional.conv1d, torch.relu,
               lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)
