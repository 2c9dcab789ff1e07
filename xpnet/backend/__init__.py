"""The one place that knows concrete array libraries.

Everything outside this package calls only the Array API standard through a namespace
``xp``, plus the few helpers re-exported here (``from xpnet import backend as B``;
``B.scatter_add``, ``B.to_numpy``, ...).  One module per job:

- :mod:`.precision`: float32 matmul precision (TF32);
- :mod:`.select`: the libraries, devices, :class:`Backend`, and the current one
  (:func:`use`, :func:`using`, ``XPNET_BACKEND``);
- :mod:`.dtypes`: dtype names and their NumPy equivalents across libraries;
- :mod:`.arrays`: making, moving and reading back arrays of any library;
- :mod:`.ops`: the operations the standard lacks, each fast path beside its portable version;
- :mod:`.special`: the error function;
- :mod:`.checks`: input checks deferred on accelerators (no synchronization per step);
- :mod:`.random`: the seeded generator and counter-based bits made on the device;
- :mod:`.memory`: out-of-memory errors;
- :mod:`.jit`: ``jax.jit`` for replayed steps (:mod:`xpnet.compile`);
- :mod:`.graphs`: CUDA graphs (CuPy, torch CUDA) for replayed steps.

A module imports only those above it in this list, except for the
convenience :meth:`Backend.asarray`, which calls :func:`.arrays.as_array` at call time.
"""

import array_api_compat  # noqa: F401  (B.array_api_compat: the compat layer, for device())

from . import arrays, checks, dtypes, graphs, jit, memory, ops, precision, random, select, special  # noqa: F401
from .arrays import (_host_copy, _pending_checks, as_array, backend_of, flush_checks,  # noqa: F401
                     namespace_of, on_host, to_numpy, transfer)
from .checks import check_indices, index_bounds, require  # noqa: F401
from .dtypes import DTYPE_ALIASES, DTYPES, DType, dtype_name, dtype_name_or_none, isdtype, numpy_dtype, resolve_dtype  # noqa: F401
from .jit import device_key, jit as jit_compile, traceable  # noqa: F401
from .memory import OutOfMemoryError, is_out_of_memory  # noqa: F401
from .ops import (add_slices, add_slices_portable, assign, clip, clip_portable, index_zeros_set,  # noqa: F401
                  pad, scatter_add, scatter_add_portable, sign, sign_portable)
from .precision import (MATMUL_PRECISIONS, _precision_applied, _set_cupy_precision,  # noqa: F401
                        get_float32_matmul_precision, set_float32_matmul_precision)
from .random import (Generator, default_generator, manual_seed, random_bits, random_bits_portable,  # noqa: F401
                     set_process_stream)
from .select import (API_VERSION, NAMES, Backend, BackendUnavailable, _load, available_backends, library,  # noqa: F401
                     cuda_available, current_backend, describe, device_name, get_backend,
                     matmul_precision_note, on_device, use, using)
from .special import erf, erf_portable  # noqa: F401
