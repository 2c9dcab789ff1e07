"""Step capture and replay: ``xpnet.compile(fn)`` records a training step's array
operations once (:mod:`.trace`) as a :class:`Program` over slots (:mod:`.program`)
and replays it: plainly on NumPy and PyTorch, under ``jax.jit`` on JAX, as a CUDA graph
on CuPy and torch CUDA (:mod:`.graphs`)."""

from .api import Compiled, CompileError, CompileWarning, compile
from .program import Program
from .trace import Unreplayable

__all__ = ["compile", "Compiled", "CompileError", "CompileWarning", "Program", "Unreplayable"]
