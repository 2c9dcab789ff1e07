"""The backend selector, transfers, random numbers and the helpers the standard lacks."""

import os
import subprocess
import sys

import numpy as np
import pytest

import xpnet as xn
from xpnet import backend as B

from conftest import AVAILABLE, to_np


def test_use_and_using_set_the_current_backend():
    before = xn.current_backend()
    with xn.using("array_api_strict") as b:
        assert xn.current_backend() is b
        assert b.name == "array_api_strict" and B.device_name(b.device) == "cpu"
        t = xn.tensor([1.0, 2.0])
        assert t.backend.name == "array_api_strict"
    assert xn.current_backend() is before


def test_use_returns_backend_with_name_xp_device():
    b = xn.get_backend("numpy")
    assert (b.name, B.device_name(b.device)) == ("numpy", "cpu")
    assert b.xp.__name__.endswith("numpy")


def test_environment_variable_picks_the_starting_backend():
    code = "import xpnet; b = xpnet.current_backend(); print(b.name)"
    env = dict(os.environ, XPNET_BACKEND="array_api_strict")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "array_api_strict"


def test_auto_picks_numpy_without_a_gpu():
    if B.cuda_available():
        pytest.skip("a CUDA device answers here: auto means cupy")
    assert xn.get_backend("auto").name == "numpy"


def test_unknown_backend_names_the_choices():
    with pytest.raises(xn.BackendUnavailable, match="unknown backend 'tensorflow': expected one of numpy"):
        xn.use("tensorflow")


def test_unavailable_backend_says_cause_and_fix():
    if "cupy" in AVAILABLE:
        pytest.skip("cupy works here")
    with pytest.raises(xn.BackendUnavailable, match=r"(not installed.*pip install 'xpnet\[gpu\]')|(no CUDA device)"):
        xn.use("cupy")


def test_cpu_only_backend_refuses_cuda():
    with pytest.raises(xn.BackendUnavailable, match="numpy runs on 'cpu' only"):
        xn.use("numpy", device="cuda")


def test_torch_cuda_without_gpu_is_explained():
    pytest.importorskip("torch")
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(xn.BackendUnavailable, match="CUDA is not available"):
        xn.use("torch", device="cuda")


@pytest.mark.parametrize("src", AVAILABLE)
@pytest.mark.parametrize("dst", AVAILABLE)
def test_transfer_between_backends_keeps_values_and_dtype(src, dst):
    a = xn.get_backend(src).asarray([[1.5, -2.0], [3.0, 4.25]], "float64")
    b = B.transfer(a, xn.get_backend(dst))
    assert B.namespace_of(b) is xn.get_backend(dst).xp
    assert B.dtype_name(b.dtype) == "float64"
    np.testing.assert_array_equal(to_np(b), [[1.5, -2.0], [3.0, 4.25]])


def test_tensor_to_moves_backend(bk):
    t = xn.tensor([1.0, 2.0], requires_grad=True)
    moved = t.to("numpy")
    assert moved.backend.name == "numpy" and moved.requires_grad
    np.testing.assert_array_equal(moved.numpy(), [1.0, 2.0])


def test_tensor_defaults_follow_pytorch(bk):
    assert B.dtype_name(xn.tensor(1.0).dtype) == "float32"
    assert B.dtype_name(xn.tensor([1, 2]).dtype) == "int64"
    assert B.dtype_name(xn.tensor([True]).dtype) == "bool"
    assert B.dtype_name(xn.tensor([1, 2], dtype="float64").dtype) == "float64"
    assert B.dtype_name(xn.tensor(np.ones(2, np.float64)).dtype) == "float64"
    assert xn.tensor(np.ones(2)).backend.name == bk.name


def test_tensor_rejects_strings():
    with pytest.raises(TypeError, match="cannot make an array from list data"):
        xn.tensor(["a", "b"])


def test_seeded_numbers_are_the_same_on_every_backend():
    draws = {}
    for name in AVAILABLE:
        with xn.using(name):
            g = xn.manual_seed(7)
            draws[name] = [to_np(g.normal((3, 2))), to_np(g.uniform((4,), -1, 1)),
                           to_np(g.integers(0, 10, (5,))), to_np(g.permutation(6)), to_np(g.bernoulli((8,), 0.5))]
    ref = draws["numpy"]
    for name, d in draws.items():
        for a, b in zip(ref, d):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_random_bits_are_the_same_on_every_backend_and_uniform(bk):
    """The device-side generator behind dropout: identical bits everywhere, and the 24-bit
    values look uniform and independent (bit balance, buckets, neighbours, successive keys)."""
    keys, next_keys = (tuple(int(k) for k in ks) for ks in np.random.default_rng(0).integers(-2**31, 2**31, (2, 2)))
    ref = B.random_bits((400, 250), keys, B.get_backend("numpy"))
    for bits in (B.random_bits((400, 250), keys, bk), B.random_bits_portable((400, 250), keys, bk)):
        assert B.device_name(B.array_api_compat.device(bits)) == B.device_name(bk.device)
        assert B.namespace_of(bits) is B.namespace_of(bk.xp.zeros(1, device=bk.device))
        assert bits.dtype == bk.xp.int32
        np.testing.assert_array_equal(to_np(bits), ref)
    v = ref.ravel().astype(np.int64)
    assert v.min() >= 0 and v.max() < 2**24
    n = v.size
    for k in range(24):  # every bit is a fair coin: within 5 standard deviations
        assert abs(((v >> k) & 1).mean() - 0.5) < 5 * 0.5 / n ** 0.5, k
    counts = np.bincount(v >> 16, minlength=256)  # chi-square over 256 buckets, 255 dof
    chi2 = ((counts - n / 256) ** 2 / (n / 256)).sum()
    assert chi2 < 255 + 6 * (2 * 255) ** 0.5
    u = v / 2**24
    other = B.random_bits((n,), next_keys, B.get_backend("numpy")).astype(np.int64) / 2**24
    for a, b in [(u[:-1], u[1:]), (u, other)]:  # neighbours; the next key
        assert abs(np.corrcoef(a, b)[0, 1]) < 5 / n ** 0.5
    assert not np.array_equal(np.sort(u), np.sort(other))


def test_bernoulli_is_made_on_the_device(bk):
    """A dropout mask takes two keys from the host generator and nothing else from the host."""
    g = B.Generator(3)
    calls = []

    class Host:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(np.random.default_rng(3), name)

    g.host = Host()
    mask = g.bernoulli((50, 40), 0.25, backend=bk)
    assert calls == ["integers"]
    assert B.namespace_of(mask) is B.namespace_of(bk.xp.zeros(1, device=bk.device))
    assert abs(to_np(mask).mean() - 0.25) < 0.03
    assert to_np(g.bernoulli((7,), 1.0, backend=bk)).all() and not to_np(g.bernoulli((7,), 0.0, backend=bk)).any()
    for bits in (B.random_bits, B.random_bits_portable):
        with pytest.raises(ValueError, match="at most 2\\*\\*31 - 1"):
            bits((2**16, 2**15), (1, 2), bk)


def test_clip_and_sign_fast_paths_equal_portable(bk):
    """backend.clip/sign (the library's, or on CuPy the versions without masked assignment,
    which would sync) against the portable ones and NumPy, NaN and one-sided limits included."""
    xp = bk.xp
    v = np.array([-3.5, -1.0, -0.0, 0.0, 0.25, 2.0, np.nan, np.inf, -np.inf])
    for dtype in ("float32", "float64"):
        x = xp.asarray(v.astype(dtype), device=bk.device)
        for lo, hi in [(-1.0, 1.0), (None, 0.0), (0.5, None)]:
            ref = np.clip(v.astype(dtype), lo, hi)
            for out in (B.clip(x, lo, hi), B.clip_portable(x, lo, hi)):
                assert out.dtype == x.dtype
                np.testing.assert_array_equal(to_np(out), ref)
        for out in (B.sign(x), B.sign_portable(x)):
            assert out.dtype == x.dtype
            np.testing.assert_array_equal(to_np(out), np.sign(v.astype(dtype)))
    i = xp.asarray(np.array([-4, 0, 3, 9]), device=bk.device)
    for out in (B.clip(i, 0, 5), B.clip_portable(i, 0, 5)):
        assert out.dtype == i.dtype
        np.testing.assert_array_equal(to_np(out), [0, 0, 3, 5])
    for out in (B.sign(i), B.sign_portable(i)):
        np.testing.assert_array_equal(to_np(out), [-1, 0, 1, 1])


def test_generator_state_round_trip():
    g = xn.Generator(3)
    state = g.get_state()
    first = to_np(g.normal((4,), backend=xn.get_backend("numpy")))
    g.set_state(state)
    np.testing.assert_array_equal(first, to_np(g.normal((4,), backend=xn.get_backend("numpy"))))


def test_scatter_add_fast_path_equals_portable(bk):
    xp = bk.xp
    values = xp.asarray(np.arange(12.0).reshape(6, 2), device=bk.device)
    index = xp.asarray(np.array([0, 2, 0, 3, 2, 0]), device=bk.device)
    fast = to_np(B.scatter_add(values, index, 5))
    portable = to_np(B.scatter_add_portable(values, index, 5))
    np.testing.assert_array_equal(fast, portable)
    np.testing.assert_array_equal(fast[0], [0 + 4 + 10, 1 + 5 + 11])
    np.testing.assert_array_equal(fast[1], [0, 0])


def test_pad_and_index_zeros_set(bk):
    xp = bk.xp
    x = xp.asarray(np.ones((2, 2)), device=bk.device)
    np.testing.assert_array_equal(to_np(B.pad(x, ((1, 0), (0, 2)), 5.0)),
                                  [[5, 5, 5, 5], [1, 1, 5, 5], [1, 1, 5, 5]])
    z = to_np(B.index_zeros_set((3, 4), (slice(1, 3), slice(0, 2)), x))
    assert z.sum() == 4 and z[1:, :2].sum() == 4


def test_assign_writes_or_rebinds(bk):
    xp = bk.xp
    x = xp.asarray(np.zeros(3), device=bk.device)
    y = B.assign(x, xp.asarray(np.arange(3.0), device=bk.device))
    np.testing.assert_array_equal(to_np(y), [0, 1, 2])


def test_check_indices_names_the_bad_index(bk):
    idx = bk.xp.asarray(np.array([0, 5, 2]), device=bk.device)
    with pytest.raises(IndexError, match="index 5 is out of range: expected 0 <= index < 4"):
        B.check_indices(idx, 4, "labels")
        B.flush_checks()  # deferred on an accelerator: raised at the next read
    B.check_indices(idx, 6, "labels")


def test_one_backend_object_per_library_and_device(bk):
    """However the device is spelled ("torch", "torch:cpu"; "cuda", "cuda:0"), a library and
    device give one Backend, the one that arrays report: so ``tensor.backend is bk`` holds."""
    spelled = B.device_name(bk.device)
    assert xn.get_backend(bk.name, spelled) is bk
    assert xn.get_backend(f"{bk.name}:{spelled}") is bk
    assert xn.tensor([1.0]).backend is bk
    assert B.backend_of(bk.xp.zeros(2, device=bk.device)) is bk


def test_available_backends_gives_reasons():
    avail = xn.available_backends()
    assert avail["numpy"] is None and avail["array_api_strict"] is None
    for name, why in avail.items():
        assert why is None or isinstance(why, str) and len(why) > 10


def test_erf_fast_path_equals_portable(bk):
    import math
    xs = np.linspace(-6, 6, 121)
    x = bk.xp.asarray(xs, device=bk.device)
    fast, portable = to_np(B.erf(x)), to_np(B.erf_portable(x))
    np.testing.assert_allclose(fast, portable, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(portable, [math.erf(v) for v in xs], rtol=1e-14, atol=1e-15)


def test_a_host_array_read_leaves_deferred_checks_queued():
    """Moving host data (a batch to the GPU, say) reads nothing from the device, so the queued
    checks stay queued: no synchronization; the next read of device data runs them."""
    def check(v):
        raise IndexError(f"index {int(v)} is out of range")

    B._pending_checks.append((np.array([7.0]), check))
    np.testing.assert_array_equal(B.to_numpy(np.ones(2)), [1.0, 1.0])
    assert len(B._pending_checks) == 1
    with pytest.raises(IndexError, match="index 7"):
        B.flush_checks()
    assert not B._pending_checks


def test_index_checks_on_an_accelerator_are_deferred_to_the_next_read(monkeypatch):
    """Exercised on NumPy by pretending its device is a GPU: the check is queued, the
    indices are clipped, and the error comes at the next read back to the host."""
    b = xn.get_backend("numpy")
    monkeypatch.setattr(B, "device_name", lambda d: "cuda:0")
    monkeypatch.setattr(B.select, "device_name", lambda d: "cuda:0")
    idx = b.xp.asarray(np.array([0, 7, 2]))
    safe = B.check_indices(idx, 5, "labels")
    np.testing.assert_array_equal(safe, [0, 4, 2])
    assert len(B._pending_checks) == 1
    with pytest.raises(IndexError, match="labels: index 7 is out of range: expected 0 <= index < 5"):
        B.to_numpy(b.xp.asarray([1.0]))
    assert not B._pending_checks
    B.check_indices(b.xp.asarray(np.array([1, 2])), 5, "labels")
    B.to_numpy(b.xp.asarray([1.0]))  # a good check raises nothing
    with pytest.raises(IndexError, match="index -1"):
        B.check_indices(b.xp.asarray(np.array([-1])), 5, "labels", defer=False)
