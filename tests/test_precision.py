"""xpnet.set_float32_matmul_precision: PyTorch's switch, applied to every backend that has one
(torch, JAX, CuPy), now and when a backend is loaded later; the device line and the benchmark
say when TF32 is allowed."""

import os
import pathlib
import sys
import types

import numpy as np
import pytest

import xpnet as xn
from xpnet import backend as B
from xpnet.train.trainer import _pick_backend

from conftest import to_np


@pytest.fixture(autouse=True)
def default_precision():
    """Every test starts and ends at the default, with every loaded library back on it."""
    xn.set_float32_matmul_precision("highest")
    yield
    for name in ("torch", "jax"):  # a test may have taken one off xpnet's list
        if name in sys.modules and name not in B._precision_applied:
            B._load(name)
    xn.set_float32_matmul_precision("highest")


@pytest.mark.parametrize("precision", ["high", "medium", "highest"])
def test_round_trip(precision):
    xn.set_float32_matmul_precision(precision)
    assert xn.get_float32_matmul_precision() == precision


def test_invalid_value_names_the_allowed_ones_and_changes_nothing():
    torch = pytest.importorskip("torch")
    B.get_backend("torch")
    xn.set_float32_matmul_precision("high")
    for bad in ("fast", "HIGH", "tf32", None):
        with pytest.raises(ValueError, match=r"'highest', 'high', 'medium'"):
            xn.set_float32_matmul_precision(bad)
        assert xn.get_float32_matmul_precision() == "high" and torch.get_float32_matmul_precision() == "high"


def test_torch_follows():
    torch = pytest.importorskip("torch")
    B.get_backend("torch")
    for precision in ("high", "medium", "highest"):
        xn.set_float32_matmul_precision(precision)
        assert torch.get_float32_matmul_precision() == precision


def test_jax_follows():
    jax = pytest.importorskip("jax")
    B.get_backend("jax")
    for precision, value in (("high", "tensorfloat32"), ("medium", "bfloat16"), ("highest", "float32")):
        xn.set_float32_matmul_precision(precision)
        assert jax.config.jax_default_matmul_precision == value


@pytest.mark.parametrize("name,read", [
    ("torch", lambda: sys.modules["torch"].get_float32_matmul_precision()),
    ("jax", lambda: {"float32": "highest", "tensorfloat32": "high", "bfloat16": "medium", None: None}[
        sys.modules["jax"].config.jax_default_matmul_precision]),
])
def test_a_backend_loaded_later_gets_the_setting(name, read):
    pytest.importorskip(name)
    B.get_backend(name)
    # as if xpnet had not loaded the library yet, which has its own default
    B._precision_applied.pop(name)
    if name == "torch":
        sys.modules["torch"].set_float32_matmul_precision("highest")
    else:
        sys.modules["jax"].config.update("jax_default_matmul_precision", None)
    before = read()
    xn.set_float32_matmul_precision("high")
    assert read() == before != "high"  # not loaded: left alone
    B._load(name)
    assert read() == "high" and B._precision_applied[name] == "high"


class FakeLinalg(types.ModuleType):
    """Stands in for cupy._core._routines_linalg (no GPU here): records set_compute_type."""
    COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_TF32 = 1, 7

    def __init__(self):
        super().__init__("cupy._core._routines_linalg")
        self.calls = []

    def set_compute_type(self, dtype, compute_type):
        self.calls.append((np.dtype(dtype), compute_type))


def test_cupy_compute_type(monkeypatch):
    """The CuPy path, against a stand-in for its linalg module: float32 gets COMPUTE_TYPE_TF32 for
    "high" and "medium" (CuPy has no bfloat16 mode for float32) and COMPUTE_TYPE_DEFAULT for "highest"."""
    fake = FakeLinalg()
    monkeypatch.setitem(sys.modules, "cupy._core._routines_linalg", fake)
    monkeypatch.setitem(B._precision_applied, "cupy", "highest")
    for precision in ("high", "medium", "highest"):
        xn.set_float32_matmul_precision(precision)
    assert fake.calls == [(np.dtype("float32"), 7), (np.dtype("float32"), 7), (np.dtype("float32"), 1)]


def test_cupy_without_set_compute_type_falls_back_to_cupy_tf32(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy._core._routines_linalg", None)  # import fails
    monkeypatch.setitem(sys.modules, "cupy._core._gpu._routines_linalg", None)
    monkeypatch.setenv("CUPY_TF32", "0")
    B._set_cupy_precision("high")
    assert os.environ["CUPY_TF32"] == "1"


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_numpy_has_nothing_to_switch(name):
    """NumPy's float32 matmul is full precision whatever the setting: the same bits."""
    bk = B.get_backend(name)
    rng = np.random.default_rng(0)
    a = bk.asarray(rng.normal(size=(32, 48)).astype(np.float32))
    b = bk.asarray(rng.normal(size=(48, 16)).astype(np.float32))
    results = []
    for precision in ("highest", "high", "medium"):
        xn.set_float32_matmul_precision(precision)
        results.append(to_np(a @ b))
    assert results[0].dtype == np.float32
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_device_line_mentions_tf32_on_a_gpu_only():
    torch = pytest.importorskip("torch")
    gpu = B.Backend("torch", B.get_backend("torch").xp, torch.device("cuda", 0))  # described, never run
    cpu = B.get_backend("torch")
    assert B.matmul_precision_note(gpu) == ""
    xn.set_float32_matmul_precision("high")
    line = _pick_backend(None, gpu)[1]
    assert line.startswith("Training on torch / cuda:0") and "TF32 allowed" in line and "'high'" in line
    assert "TF32" not in _pick_backend(None, cpu)[1]
    model = xn.nn.Linear(2, 2)
    assert "TF32" not in xn.Trainer(model, "mse", xn.optim.SGD(model.parameters(), lr=0.1), backend="numpy").device_line
    assert B.matmul_precision_note(B.Backend("numpy", np, "cpu")) == ""


# ------------------------------------------------------------------ the benchmark

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "backends"))
import bench  # noqa: E402


@pytest.mark.parametrize("flag,precision", [([], "highest"), (["--tf32"], "high")])
def test_bench_records_the_precision_and_puts_it_back(flag, precision, capsys):
    xn.set_float32_matmul_precision("medium")  # the caller's setting
    result = bench.main(["--device", "cpu", "--workloads", "mlp_small", "--repeats", "1", "--number", "1", *flag])
    assert result["float32_matmul_precision"] == precision and result["args"]["tf32"] == bool(flag)
    assert f"float32 matmul precision: {precision}" in capsys.readouterr().out
    assert xn.get_float32_matmul_precision() == "medium"
