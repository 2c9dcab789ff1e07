"""Float32 matrix-product precision (TF32), with PyTorch's names, for every library."""

from __future__ import annotations

import importlib
import os

import numpy as np

MATMUL_PRECISIONS = ("highest", "high", "medium")
_matmul_precision = "highest"
_precision_applied: dict = {}  # library -> the precision last applied to it (libraries loaded by the selector)
_JAX_PRECISION = {"highest": "float32", "high": "tensorfloat32", "medium": "bfloat16"}


def set_float32_matmul_precision(precision: str):
    """Allow faster, less precise float32 matrix products, with PyTorch's names and meaning:

    - ``"highest"`` (the default): full float32 products;
    - ``"high"``: TensorFloat32 allowed (NVIDIA GPUs from Ampere on), or the library's equivalent;
    - ``"medium"``: bfloat16 products allowed where the library has them, else as ``"high"``.

    Applies to every loaded backend and to those loaded later: torch
    (``torch.set_float32_matmul_precision``; xpnet's convolutions are matrix products), JAX
    (``jax_default_matmul_precision`` ``"float32"``/``"tensorfloat32"``/``"bfloat16"``), CuPy (the
    cuBLAS compute type of float32, as ``CUPY_TF32=1`` does; CuPy has no bfloat16 mode for float32,
    so ``"medium"`` is ``"high"``).  It replaces those libraries' own defaults (JAX allows TF32 on
    GPUs by default).  NumPy and array_api_strict have no switch: their float32 is always full
    precision (so is JAX's on the CPU; torch's ``"medium"`` lets oneDNN use bfloat16 on CPUs that
    have it).
    """
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"set_float32_matmul_precision: unknown precision {precision!r}: "
                         f"expected one of {', '.join(map(repr, MATMUL_PRECISIONS))}")
    global _matmul_precision
    _matmul_precision = precision
    for name in list(_precision_applied):
        apply_matmul_precision(name)


def get_float32_matmul_precision() -> str:
    """The float32 matmul precision in force: ``"highest"``, ``"high"`` or ``"medium"``."""
    return _matmul_precision


def apply_matmul_precision(name: str):
    """Give library ``name`` (just imported by the selector) the current precision, once."""
    precision = _matmul_precision
    if _precision_applied.get(name) == precision:
        return
    if name == "torch":
        import torch
        torch.set_float32_matmul_precision(precision)  # xpnet's convolutions are matmuls: no cuDNN flag
    elif name == "jax":
        import jax
        jax.config.update("jax_default_matmul_precision", _JAX_PRECISION[precision])
    elif name == "cupy":
        _set_cupy_precision(precision)
    _precision_applied[name] = precision


def _set_cupy_precision(precision: str):
    """CuPy's cuBLAS compute type for float32 (``set_compute_type``; its ``CUPY_TF32`` variable is
    read only before the first float32 matmul).  Ampere or later, else CuPy warns and keeps float32."""
    for module in ("cupy._core._routines_linalg", "cupy._core._gpu._routines_linalg"):
        try:
            linalg = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(linalg, "set_compute_type"):
            tf32 = precision != "highest"
            # CuPy's enum: COMPUTE_TYPE_DEFAULT = 1, COMPUTE_TYPE_TF32 = 7
            kind = getattr(linalg, "COMPUTE_TYPE_TF32", 7) if tf32 else getattr(linalg, "COMPUTE_TYPE_DEFAULT", 1)
            linalg.set_compute_type(np.float32, kind)
            return
    os.environ["CUPY_TF32"] = "1" if precision != "highest" else "0"

