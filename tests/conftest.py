"""The backend fixture: every numerical test runs on every available backend."""

import os

import pytest

import xpnet
from xpnet import backend as B


def _torch_cuda() -> list:
    """``["torch:cuda"]`` where PyTorch sees a GPU (torch's default device is the CPU)."""
    try:
        B.get_backend("torch:cuda")
    except (B.BackendUnavailable, ImportError):
        return []
    return ["torch:cuda"]


# numpy and array_api_strict always; torch and jax when installed; cupy and torch:cuda when a GPU answers.
AVAILABLE = [name for name, why in B.available_backends().items() if why is None] + _torch_cuda()
# XPNET_TEST_BACKENDS=numpy,torch narrows a local run (CI leaves it unset: every available backend).
if os.environ.get("XPNET_TEST_BACKENDS"):
    AVAILABLE = [n for n in AVAILABLE if n in os.environ["XPNET_TEST_BACKENDS"].split(",")]


def pytest_report_header(config):
    lines = []
    for name, why in B.available_backends().items():
        lines.append(f"xpnet backend {name}: {'available' if why is None else 'skipped: ' + why}")
    return lines


@pytest.fixture(params=AVAILABLE)
def bk(request):
    """The backend under test, made current for the test's duration."""
    with xpnet.using(request.param) as b:
        yield b


@pytest.fixture(autouse=True)
def no_pending_checks():
    """A check deferred on an accelerator that a test left unread does not fail the next test."""
    yield
    B._pending_checks.clear()


@pytest.fixture
def xp(bk):
    return bk.xp


def to_np(x):
    """NumPy copy of a tensor or array, for assertions."""
    if isinstance(x, xpnet.Tensor):
        x = x.data
    return B.to_numpy(x)
