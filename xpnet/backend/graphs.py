"""CUDA graphs: the library calls that capture a replayed step once and launch it (CuPy,
torch CUDA).  Everything else about a graphed replay (static buffers, device scalars,
fallback) lives in :mod:`xpnet.compile.graphs`, which also holds the CPU emulation.

An engine has three methods:

- ``capture(warm, body)``: ``warm()`` runs once eagerly on the capture stream (lazy
  initialization: cuBLAS handles, compiled kernels, per-stream workspaces), then ``body()``
  is captured on that stream, its kernels recorded but not run; returns ``(graph, outs)``,
  ``outs`` being ``body()``'s result, whose buffers the graph fills at every launch;
- ``launch(graph)``: run the captured kernels on the current stream;
- ``write(buf, values)``: copy host numbers into the 1-d device buffer ``buf`` without
  waiting for the device (the device scalars read by the graph).

What each library allows (from CuPy's ``cupy/cuda/stream.pyx`` and PyTorch's
``torch/cuda/graphs.py`` and their documentation): capture only on a non-default stream;
no synchronous device-to-host transfer during the capture (a function that needs one
fails, and the capture is invalidated); the graph launches on any stream.  CuPy captures
in the relaxed mode by default, because its memory pool may call ``cudaMalloc``; it has no
capture on ROCm (HIP).  Memory allocated during the capture must stay reserved for the
graph: torch gives each graph a private pool; here CuPy captures allocate from a
``cupy.cuda.MemoryPool`` used only by captures (``using_allocator``; see :class:`CupyGraphs`).
Warm-up and capture run on the same stream (libraries cache handles per stream).
Not verified on hardware in this work (no GPU was lent): see docs/benchmarks.md.
"""

from __future__ import annotations

from . import select

__all__ = ["engine"]


def engine(backend):
    """``(engine, None)`` for a backend whose arrays live on a CUDA device, else
    ``(None, reason)`` (a sentence naming the backend)."""
    dev = select.device_name(backend.device)
    if backend.name == "cupy":
        import cupy
        if getattr(cupy.cuda.runtime, "is_hip", False):
            return None, "CuPy on ROCm (HIP) has no stream capture"
        return CupyGraphs(), None
    if backend.name == "torch" and dev.startswith("cuda"):
        return TorchGraphs(backend.device), None
    return None, f"{select.describe(backend)} has no CUDA graphs"


_CUPY_POOLS: dict = {}  # device id -> the memory pool of every capture on it, kept for the process


class CupyGraphs:
    """Capture with ``cupy.cuda.Stream.begin_capture``/``end_capture``, launch ``Graph.launch``.

    Captures allocate from a pool used by nothing else, so that no later allocation gets
    memory a graph writes into.  It lives as long as the process: an array made by a
    capture (a gradient the step left in ``p.grad``) may outlive its graph, and in older CuPy
    versions (``PooledMemory`` holding its pool by a weak reference only) a pool's memory
    goes with the pool, whatever still points into it.  Each engine
    captures on its own stream, and CuPy's pool hands a block freed on one stream only to
    that stream, so two graphs never share their temporaries."""

    name = "cupy"

    def __init__(self):
        import cupy
        self.cupy = cupy
        self.stream = cupy.cuda.Stream(non_blocking=True)
        dev = cupy.cuda.Device().id
        if dev not in _CUPY_POOLS:
            _CUPY_POOLS[dev] = cupy.cuda.MemoryPool()
        self.pool = _CUPY_POOLS[dev]

    def capture(self, warm, body):
        cp = self.cupy
        current, s = cp.cuda.get_current_stream(), self.stream
        s.wait_event(current.record())  # the side stream sees the work queued before
        with s:
            warm()
            with cp.cuda.using_allocator(self.pool.malloc):
                s.begin_capture()
                try:
                    outs = body()
                except BaseException:
                    try:
                        s.end_capture()  # an invalidated capture still has to end
                    except Exception:
                        pass
                    raise
                graph = s.end_capture()
        current.wait_event(s.record())
        return graph, outs

    def launch(self, graph):
        graph.launch(stream=self.cupy.cuda.get_current_stream())

    def write(self, buf, values):
        import numpy as np
        # an asynchronous copy from pageable memory: staged at once, no wait for the device
        buf.set(np.asarray(values, dtype=buf.dtype), stream=self.cupy.cuda.get_current_stream())


class TorchGraphs:
    """Capture with ``torch.cuda.graph`` (a private memory pool per graph), launch ``replay()``.

    ``divides_by_reciprocal``: on CUDA, torch computes ``x / v`` for a host number ``v`` as
    ``x * (1 / v)``, the reciprocal in the operation's float type
    (``aten/src/ATen/native/cuda/BinaryDivTrueKernel.cu``), while a division by a device
    scalar divides; a graph does the former to give eager's numbers."""

    name = "torch"
    divides_by_reciprocal = True

    def __init__(self, device):
        import torch
        self.torch = torch
        self.stream = torch.cuda.Stream(device)

    def capture(self, warm, body):
        torch = self.torch
        s = self.stream
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            warm()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        # thread_local: a data-loading thread's own CUDA calls do not invalidate the capture
        with torch.cuda.graph(graph, stream=s, capture_error_mode="thread_local"):
            outs = body()
        return graph, outs

    def launch(self, graph):
        graph.replay()

    def write(self, buf, values):
        # non_blocking from pageable memory: a cudaMemcpyAsync without a stream synchronization
        buf.copy_(self.torch.tensor(values, dtype=buf.dtype), non_blocking=True)
