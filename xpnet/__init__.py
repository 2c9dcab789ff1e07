"""xpnet: a deep-learning framework written once against the Python Array API.

The same code trains on NumPy, CuPy, PyTorch tensors, JAX arrays and
array-api-strict; :func:`use` picks the backend.
"""

from . import backend
from .autograd import (Function, GradcheckError, Tensor, enable_grad, gradcheck, gradgradcheck,
                       is_grad_enabled, no_grad, set_grad_enabled, tensor, value_and_grad)
from .autograd import grad_of as grad
from .autograd.functions import *  # noqa: F401,F403  (the differentiable operations)
from .autograd.functions import abs, max, min, pow, sum  # noqa: F401  (shadow builtins on purpose)
from .autograd.creation import *  # noqa: F401,F403  (zeros, ones, arange, randn, ... as in PyTorch)
from .backend.dtypes import DType  # noqa: F401
# dtypes by PyTorch's names: xpnet.float32, ..., xpnet.bool (and half, double, long; not float/int,
# which would shadow the builtins)
float16, bfloat16, float32, float64 = (backend.DTYPES[n] for n in ("float16", "bfloat16", "float32", "float64"))
int8, int16, int32, int64, uint8, bool = (backend.DTYPES[n] for n in ("int8", "int16", "int32", "int64", "uint8", "bool"))
complex64, complex128 = backend.DTYPES["complex64"], backend.DTYPES["complex128"]
half, double, long = float16, float64, int64
from . import nn  # noqa: E402,F401
from . import checkpoint, data, optim, train  # noqa: E402,F401
from .checkpoint import CheckpointError, NonFiniteWeightsError, load, load_weights, save, save_weights  # noqa: E402,F401
from .compile import compile  # noqa: E402,F401  (shadows the builtin on purpose, as torch.compile)
from .train import Trainer  # noqa: E402,F401
from .amp import GradScaler, autocast  # noqa: E402,F401
from .backend import (Backend, BackendUnavailable, Generator, OutOfMemoryError, available_backends,
                      current_backend, default_generator, get_backend, get_float32_matmul_precision, manual_seed,
                      set_float32_matmul_precision, use, using)

__version__ = "0.1.0"
