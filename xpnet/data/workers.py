"""Worker processes for :class:`~xpnet.data.DataLoader` (``num_workers > 0``), as PyTorch's.

Each worker holds the dataset: inherited with ``fork`` (the platform's default start method
on Linux before Python 3.14, as PyTorch uses it), pickled with ``spawn``/``forkserver`` (then
the dataset must be picklable and the script guarded by ``if __name__ == "__main__":``).
JAX warns that ``fork`` of its multithreaded process may deadlock: a worker runs only the
dataset's ``__getitem__`` (NumPy), no JAX; pass ``multiprocessing_context="spawn"`` to be safe
and loads the samples of whole batches: batch ``k`` goes to worker ``k % num_workers``, the
main process receives the samples, puts the batches back in order and collates them (arrays
are made on the target device only in the main process: no device work in a child).
Each worker reseeds xpnet's default generator with a seed of its own (derived from the
loader's seed, the epoch and the worker's index, as PyTorch's ``base_seed + worker_id``), then
calls ``worker_init_fn(worker_id)``.
"""

from __future__ import annotations

import multiprocessing
import queue
import traceback

from .. import backend as B


def _worker_loop(dataset, tasks, results, worker_id, seed, worker_init_fn):
    B.manual_seed(seed)
    if worker_init_fn is not None:
        worker_init_fn(worker_id)
    while True:
        task = tasks.get()
        if task is None:
            return
        k, ids = task
        try:
            results.put((k, [dataset[i] for i in ids], None))
        except Exception as e:  # sent back and raised in the main process
            results.put((k, None, (type(e), f"Caught {type(e).__name__} in DataLoader worker process "
                                             f"{worker_id}.\nOriginal {traceback.format_exc()}")))


def load_in_workers(dataset, batches, num_workers, seeds, context=None, worker_init_fn=None, prefetch=2):
    """Yield ``(k, samples)`` for ``batches`` (an ordered list of ``(k, indices)``), loaded by
    ``num_workers`` processes with at most ``prefetch`` batches per worker in flight.
    An exception in ``dataset[i]`` is raised here (same type where it can be rebuilt, with the
    worker's traceback in the message); a worker that dies raises RuntimeError.  The workers
    end when the iteration ends or is abandoned."""
    ctx = multiprocessing.get_context(context)
    tasks = [ctx.Queue() for _ in range(num_workers)]
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker_loop, args=(dataset, tasks[w], results, w, seeds[w], worker_init_fn),
                         daemon=True) for w in range(num_workers)]
    for p in procs:
        p.start()
    pending, sent, done = {}, 0, 0
    try:
        def send():
            nonlocal sent
            if sent < len(batches):
                k, ids = batches[sent]
                tasks[sent % num_workers].put((k, [int(i) for i in ids]))
                sent += 1

        for _ in range(num_workers * prefetch):
            send()
        for k, _ in batches:
            while k not in pending:
                try:
                    kk, samples, error = results.get(timeout=1.0)
                except queue.Empty:
                    dead = [p for p in procs if not p.is_alive()]
                    if dead:
                        raise RuntimeError(f"DataLoader worker (pid {dead[0].pid}) exited unexpectedly with exit "
                                           f"code {dead[0].exitcode}") from None
                    continue
                pending[kk] = (samples, error)
            samples, error = pending.pop(k)
            if error is not None:
                kind, message = error
                try:
                    exc = kind(message)
                except Exception:
                    exc = RuntimeError(message)
                raise exc
            send()
            done += 1
            yield k, samples
    finally:
        for q in tasks:
            q.put(None)
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join()
        for q in [*tasks, results]:
            q.close()
            q.cancel_join_thread()
