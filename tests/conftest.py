"""The backend fixture: every numerical test runs on every available backend."""

import pytest

import xpnet
from xpnet import backend as B

# numpy and array_api_strict always; torch and jax when installed; cupy when a GPU answers.
AVAILABLE = [name for name, why in B.available_backends().items() if why is None]


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


@pytest.fixture
def xp(bk):
    return bk.xp


def to_np(x):
    """NumPy copy of a tensor or array, for assertions."""
    if isinstance(x, xpnet.Tensor):
        x = x.data
    return B.to_numpy(x)
