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
from . import nn  # noqa: E402,F401
from . import checkpoint, data, optim, train  # noqa: E402,F401
from .checkpoint import load, load_weights, save, save_weights  # noqa: E402,F401
from .train import Trainer  # noqa: E402,F401
from .amp import GradScaler, autocast  # noqa: E402,F401
from .backend import (Backend, BackendUnavailable, Generator, OutOfMemoryError, available_backends,
                      current_backend, default_generator, get_backend, get_float32_matmul_precision, manual_seed,
                      set_float32_matmul_precision, use, using)

__version__ = "0.1.0"
