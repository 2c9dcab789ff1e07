"""Training-step speed: xpnet against PyTorch eager and a hand-written floor.

    python backends/bench.py [--device cpu|cuda] [--backend numpy|cupy|torch|jax]
                             [--workloads mlp_small,cnn1d,...] [--repeats 21] [--number N] [--tf32]
                             [--markdown section.md] [--json results.json]

Every workload is one training step (forward, backward, optimizer update) of
the same float32 model from the same initial weights on one fixed batch, run by
three contenders on the chosen device:

- ``xpnet``: the framework on ``--backend`` (numpy on the CPU, cupy on CUDA);
- ``torch``: PyTorch eager with ``torch.optim`` (weights loaded via state_dict);
- ``floor``: the step written by hand in NumPy (CuPy on CUDA), once against a
  module ``xp``: the floor any framework on that library can reach.

Contenders take turns in every repeat (harness.interleaved; on a GPU the clock
is read after a device synchronize).  Reported per workload: median ms/step,
the ratios xpnet/floor and xpnet/torch, host reads (device->host syncs) per
xpnet step, the growth of the process's peak RSS during the workload, the
GPU memory each contender allocated in its first steps (CuPy pool / torch
allocator), and the largest parameter difference from the floor after those
first steps (a check that the contenders do the same work).
On CUDA, every contender computes float32 matmuls (and PyTorch's cuDNN convolutions) in full
float32, CuPy's default; ``--tf32`` allows TensorFloat32 in all of them
(``xpnet.set_float32_matmul_precision("high")``, which the torch contender follows too).
A workload that runs out of memory is reported as skipped, with the error.

Threads: NumPy's BLAS and PyTorch each start a pool of threads; on a loaded
machine they fight for the cores and the numbers mean little.  Pin them alike,
e.g. ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1`` (set
before Python starts); the output records these settings.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import gc
import json
import math
import os
import pathlib
import resource
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import harness  # noqa: E402
from floor import cnn_grads, floor_step, mlp_grads  # noqa: E402,F401  (bench.mlp_grads: tests use them)

import xpnet as xn  # noqa: E402
from xpnet import backend as B  # noqa: E402
from xpnet import nn, optim  # noqa: E402
from xpnet.nn import functional as F  # noqa: E402

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
PROBE_STEPS = 3  # steps of every contender for the sync count and the GPU memory


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # "mlp" or "cnn"
    batch: int
    opt: str  # "sgd" (lr 0.01) or "adam" (lr 1e-3)
    sizes: tuple = ()  # MLP layer widths
    gpu_only: bool = False

    @property
    def lr(self) -> float:
        return 0.01 if self.opt == "sgd" else 1e-3

    def describe(self) -> str:
        if self.kind == "mlp":
            model = "MLP " + "-".join(map(str, self.sizes)) + " ReLU"
        else:
            model = f"Conv1d(1->25,k5,s2,p1)-Conv1d(25->25,k3,s2,p1)x2 ReLU, Linear(125->10), length {CNN_LENGTH}"
        return f"{model}, batch {self.batch}, cross-entropy, {'SGD' if self.opt == 'sgd' else 'Adam'}"


CNN_LENGTH = 40
CNN_CONVS = ((1, 25, 5), (25, 25, 3), (25, 25, 3))  # (in, out, kernel), all stride 2, padding 1
WORKLOADS = {w.name: w for w in (
    Workload("mlp_small", "mlp", 100, "sgd", (40, 100, 100, 10)),
    Workload("cnn1d", "cnn", 100, "adam"),
    Workload("mlp_784_b128", "mlp", 128, "sgd", (784, 512, 512, 10)),
    Workload("mlp_784_b1024", "mlp", 1024, "sgd", (784, 512, 512, 10)),
    Workload("mlp_wide", "mlp", 4096, "sgd", (4096, 4096, 4096, 10), gpu_only=True),
)}


def make_data(w: Workload, dtype="float32", seed=0):
    """The fixed batch ``(X, Y)`` as NumPy arrays."""
    rng = np.random.default_rng(seed)
    shape = (w.batch, w.sizes[0]) if w.kind == "mlp" else (w.batch, 1, CNN_LENGTH)
    return rng.normal(size=shape).astype(dtype), rng.integers(0, 10, size=w.batch)


# ------------------------------------------------------------- contenders

@dataclasses.dataclass
class Contender:
    step: object  # one training step
    sync: object  # waits for the device (a no-op on the CPU)
    params: object  # -> list of NumPy arrays in state-dict order
    lib: str  # "numpy", "cupy", "torch" or "jax": whose allocator it uses


def _nosync():
    pass


def xpnet_model(w: Workload, dtype="float32"):
    if w.kind == "mlp":
        layers = []
        for a, b in zip(w.sizes[:-1], w.sizes[1:]):
            layers += [nn.Linear(a, b, dtype=dtype), nn.ReLU()]
        return nn.Sequential(*layers[:-1])
    layers = []
    for cin, cout, k in CNN_CONVS:
        layers += [nn.Conv1d(cin, cout, k, stride=2, padding=1, dtype=dtype), nn.ReLU()]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(125, 10, dtype=dtype))


def torch_model(w: Workload):
    import torch
    tnn = torch.nn
    layers = []
    if w.kind == "mlp":
        for a, b in zip(w.sizes[:-1], w.sizes[1:]):
            layers += [tnn.Linear(a, b), tnn.ReLU()]
        return tnn.Sequential(*layers[:-1])
    for cin, cout, k in CNN_CONVS:
        layers += [tnn.Conv1d(cin, cout, k, stride=2, padding=1), tnn.ReLU()]
    return tnn.Sequential(*layers, tnn.Flatten(), tnn.Linear(125, 10))


def xpnet_contender(w, backend, X, Y, dtype):
    """The xpnet step on ``backend``; returns the contender and the initial weights (NumPy)."""
    with xn.using(backend):
        xn.manual_seed(0)
        model = xpnet_model(w, dtype)
        x, y = xn.tensor(X), xn.tensor(Y)
        opt = optim.SGD(model.parameters(), lr=w.lr) if w.opt == "sgd" else optim.Adam(model.parameters(), lr=w.lr)
    params = list(model.parameters())

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    sync, lib = _nosync, backend.name
    if lib == "cupy":
        import cupy
        sync = cupy.cuda.Device().synchronize
    elif lib == "torch" and B.device_name(backend.device).startswith("cuda"):
        import torch
        sync = torch.cuda.synchronize
    elif lib == "jax":  # asynchronous dispatch, on the CPU too
        def sync():
            for p in params:
                p.data.block_until_ready()
    init = {k: B.to_numpy(v).copy() for k, v in model.state_dict().items()}
    return Contender(step, sync, lambda: [B.to_numpy(v) for v in model.state_dict().values()], lib), init


def torch_contender(w, device, init, X, Y):
    import torch
    dev = torch.device(device)
    model = torch_model(w).to(device=dev, dtype=torch.from_numpy(X[:0]).dtype)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in init.items()})
    x, y = torch.from_numpy(X).to(dev), torch.from_numpy(Y).to(dev)
    opt = (torch.optim.SGD if w.opt == "sgd" else torch.optim.Adam)(model.parameters(), lr=w.lr)
    loss_fn = torch.nn.functional.cross_entropy

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    sync = _nosync
    if dev.type == "cuda":  # xpnet's float32 matmul precision: full float32 unless --tf32 (cuDNN too)
        precision = xn.get_float32_matmul_precision()
        torch.set_float32_matmul_precision(precision)
        torch.backends.cudnn.allow_tf32 = precision != "highest"
        sync = torch.cuda.synchronize
    return Contender(step, sync, lambda: [v.detach().cpu().numpy() for v in model.state_dict().values()], "torch")


def floor_contender(w, xp, init, X, Y):
    params = [xp.asarray(v.copy()) for v in init.values()]
    onehot = xp.asarray((Y[:, None] == np.arange(10)[None, :]).astype(X.dtype))
    if w.kind == "cnn":  # channels last inside the floor (converted once, outside the step)
        X = np.ascontiguousarray(X.transpose(0, 2, 1))
    step = floor_step(xp, w, params, xp.asarray(X), onehot)
    if xp is np:
        return Contender(step, _nosync, lambda: params, "numpy")
    return Contender(step, xp.cuda.Device().synchronize, lambda: [p.get() for p in params], "cupy")


def build(w: Workload, device: str, backend, dtype="float32"):
    """``({name: Contender}, {name: reason skipped})`` for workload ``w`` on ``device``."""
    X, Y = make_data(w, dtype)
    skipped = {}
    xc, init = xpnet_contender(w, backend, X, Y, dtype)
    out = {"xpnet": xc}
    try:
        import torch
        if device == "cuda" and not torch.cuda.is_available():
            raise ImportError("this torch build has no CUDA")
        out["torch"] = torch_contender(w, device, init, X, Y)
    except ImportError as e:
        skipped["torch"] = f"torch unavailable: {e}"
    if device == "cpu":
        out["floor"] = floor_contender(w, np, init, X, Y)
    else:
        try:
            import cupy
            out["floor"] = floor_contender(w, cupy, init, X, Y)
        except ImportError as e:
            skipped["floor"] = f"cupy unavailable: {e}"
    return out, skipped


# ------------------------------------------------------------ measurements

@contextlib.contextmanager
def count_host_reads():
    """Count reads back to the host: ``xpnet.backend.to_numpy`` and ``_host_copy`` (which
    input checks use on the CPU), ``index_bounds`` when it reads (CPU only) and the Tensor
    conversions (``item``, ``__float__``, ...); nested calls count once.  On an accelerator
    input checks are deferred and read nothing."""
    counter = {"n": 0, "depth": 0}
    # each where it is defined (calls inside the backend) and where the rest of xpnet finds it (B.name)
    targets = [(mod, name) for name, home in (("to_numpy", B.arrays), ("_host_copy", B.arrays),
                                              ("index_bounds", B.checks)) for mod in (B, home)] + [
        (xn.Tensor, n) for n in ("item", "__float__", "__int__", "__bool__", "tolist", "numpy") if n in vars(xn.Tensor)]
    saved = [(obj, name, getattr(obj, name)) for obj, name in targets]

    def wrap(fn):
        def counted(*args, **kwargs):
            outer = counter["depth"] == 0
            counter["depth"] += 1
            try:
                out = fn(*args, **kwargs)
            finally:
                counter["depth"] -= 1
            counter["n"] += outer and not (fn.__name__ == "index_bounds" and out is None)  # None: nothing read
            return out
        return counted

    for obj, name, fn in saved:
        setattr(obj, name, wrap(fn))
    try:
        yield counter
    finally:
        for obj, name, fn in saved:
            setattr(obj, name, fn)


class GpuMemory:
    """Bytes newly allocated on the GPU while a contender runs (CuPy pool or torch allocator)."""

    def __init__(self, lib):
        self.lib = lib

    def __enter__(self):
        if self.lib == "cupy":
            import cupy
            cupy.cuda.Device().synchronize()
            self.pool = cupy.get_default_memory_pool()
            self.pool.free_all_blocks()
            self.base = self.pool.total_bytes()
        elif self.lib == "torch":
            import torch
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        return self

    def __exit__(self, *exc):
        self.peak = None
        if self.lib == "cupy":
            import cupy
            cupy.cuda.Device().synchronize()
            self.peak = self.pool.total_bytes() - self.base
        elif self.lib == "torch":
            import torch
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base


def peak_rss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def run_workload(w: Workload, device: str, backend, repeats: int, number=None, target=0.05):
    """Measure one workload; returns a row (dict) of the results, or a row with a note when
    the workload ran out of memory (the memory the libraries cache is given back then)."""
    try:
        return _measure_workload(w, device, backend, repeats, number, target)
    except Exception as e:
        if not B.is_out_of_memory(e):
            raise
        error = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
    gc.collect()
    if "cupy" in sys.modules and device == "cuda":
        sys.modules["cupy"].get_default_memory_pool().free_all_blocks()
    if "torch" in sys.modules and device == "cuda":
        sys.modules["torch"].cuda.empty_cache()
    return {"workload": w.name, "note": f"skipped: out of memory ({error})", "error": error}


def _measure_workload(w: Workload, device: str, backend, repeats: int, number, target):
    rss0 = peak_rss_bytes()
    cs, skipped = build(w, device, backend)
    row = {"workload": w.name, "description": w.describe(), "skipped": skipped}
    # probe: PROBE_STEPS steps of every contender from the same weights, then compare the weights
    gpu_peak = {}
    for name, c in cs.items():
        mem = GpuMemory(c.lib if device == "cuda" else None)
        with mem, count_host_reads() as reads:
            for _ in range(PROBE_STEPS):
                c.step()
            c.sync()
        if name == "xpnet":
            row["host_reads_per_step"] = reads["n"] / PROBE_STEPS
        if mem.peak is not None:
            gpu_peak[name] = mem.peak
    ref = cs.get("floor") or cs.get("torch")
    if ref is not None:
        want = [np.asarray(p, np.float64) for p in ref.params()]
        scale = max(float(np.abs(p).max()) for p in want)
        row["max_param_diff"] = max(
            float(np.abs(np.asarray(a, np.float64) - b).max()) / scale
            for c in cs.values() if c is not ref for a, b in zip(c.params(), want))
    if number is None:  # about `target` seconds per sample for the fastest contender
        fastest = math.inf
        for c in cs.values():
            for _ in range(3):
                c.sync()
                t0 = time.perf_counter()
                c.step()
                c.sync()
                fastest = min(fastest, time.perf_counter() - t0)
        number = max(1, round(target / fastest))
    t = harness.interleaved({n: c.step for n, c in cs.items()}, repeats=repeats, number=number,
                            sync={n: c.sync for n, c in cs.items()})
    row.update(number=number, repeats=repeats, ms={n: s * 1e3 for n, s in t.items()})
    for other in ("floor", "torch"):
        if other in t:
            row[f"xpnet/{other}"] = t["xpnet"] / t[other]
    row["rss_growth_mb"] = (peak_rss_bytes() - rss0) / 2 ** 20
    if device == "cuda":
        row["gpu_alloc_mb"] = {n: b / 2 ** 20 for n, b in gpu_peak.items()}
        try:
            import cupy
            pool = cupy.get_default_memory_pool()
            row["cupy_pool_mb"] = {"used": pool.used_bytes() / 2 ** 20, "total": pool.total_bytes() / 2 ** 20}
        except ImportError:
            pass
    return row


# ------------------------------------------------------------------ output

NAMES = ("xpnet", "torch", "floor")


def _f(v, fmt):
    return "-" if v is None else format(v, fmt)


def table(rows, markdown=False) -> str:
    gpu = any("gpu_alloc_mb" in r for r in rows)
    head = ["workload", "xpnet ms", "torch ms", "floor ms", "xpnet/floor", "xpnet/torch", "host reads/step",
            "peak RSS +MB", "param diff"]
    if gpu:
        head += ["GPU MB xpnet/torch/floor"]
    lines = []
    for r in rows:
        if "note" in r:
            cells = [r["workload"], r["note"]] + [""] * (len(head) - 2)
        else:
            ms = r["ms"]
            cells = [r["workload"]] + [_f(ms.get(n), ".3f") for n in NAMES] + [
                _f(r.get("xpnet/floor"), ".2f") + "x" * ("xpnet/floor" in r),
                _f(r.get("xpnet/torch"), ".2f") + "x" * ("xpnet/torch" in r),
                _f(r.get("host_reads_per_step"), ".1f"),
                _f(r["rss_growth_mb"], ".1f"), _f(r.get("max_param_diff"), ".1e")]
            if gpu:
                g = r.get("gpu_alloc_mb", {})
                cells.append("/".join(_f(g.get(n), ".0f") for n in NAMES))
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
        return "\n".join(out)
    notes_ = {id(c) for c, r in zip(lines, rows) if "note" in r}
    widths = [max([len(head[i])] + [len(c[i]) for c in lines if id(c) not in notes_]) for i in range(len(head))]
    fmt = lambda cells: "  ".join(c.ljust(wd) if i == 0 else c.rjust(wd)  # noqa: E731
                                  for i, (c, wd) in enumerate(zip(cells, widths)))
    text = [fmt(head), "-" * len(fmt(head))]
    for cells in lines:
        text.append(f"{cells[0].ljust(widths[0])}  {cells[1]}" if id(cells) in notes_ else fmt(cells))
    return "\n".join(text)


def notes(result) -> list:
    """Lines under the table: workloads, skips, sync and memory remarks."""
    out = [f"{r['workload']}: {r['description']} (median of {r['repeats']} x {r['number']} steps)"
           for r in result["rows"] if "note" not in r]
    for r in result["rows"]:
        for name, why in r.get("skipped", {}).items():
            out.append(f"{r['workload']}: {name} skipped: {why}")
        if "cupy_pool_mb" in r:
            p = r["cupy_pool_mb"]
            out.append(f"{r['workload']}: CuPy pool after the workload: {p['used']:.0f} MB used, "
                       f"{p['total']:.0f} MB held")
    out.append("host reads/step: reads back to the host per xpnet step (xpnet.backend.to_numpy/_host_copy, "
               "Tensor.item/float/...); on the CPU cross_entropy's label range check is one such read (no device "
               "involved); on an accelerator it is queued on the device and read at the next log interval")
    out.append("peak RSS +MB: growth of the process's peak resident memory during the workload (all contenders); "
               f"param diff: largest parameter difference from the floor after {PROBE_STEPS} steps, "
               "relative to the largest parameter")
    if result["device"] == "cuda":
        out.append("GPU MB: memory each contender allocated during its first steps (CuPy pool or torch allocator)")
    return out


def markdown(result) -> str:
    lines = [f"### Training step, {result['device']} ({result['date']})", "",
             f"- machine: {result['machine']}", f"- versions: {result['versions']}",
             f"- xpnet backend: {result['backend']}; threads: {result['threads']}", "",
             table(result["rows"], markdown=True), ""]
    lines += [f"- {n}" for n in notes(result)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: cuda if CuPy finds a GPU, else cpu")
    p.add_argument("--backend", default=None, help="xpnet's backend (default: numpy on cpu, cupy on cuda)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated, from: " + ", ".join(WORKLOADS))
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--number", type=int, default=None,
                   help="steps per sample (default: about 50 ms for the fastest contender)")
    p.add_argument("--markdown", help="write a Markdown section for docs/benchmarks.md to this file")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--tf32", action="store_true",
                   help="allow TensorFloat32 in float32 matmuls on the GPU (xpnet and torch alike)")
    args = p.parse_args(argv)
    precision = xn.get_float32_matmul_precision()
    xn.set_float32_matmul_precision("high" if args.tf32 else "highest")
    try:
        return _main(args)
    finally:
        xn.set_float32_matmul_precision(precision)


def _main(args):
    device = args.device or ("cuda" if B.cuda_available() else "cpu")
    backend_name = args.backend or ("cupy" if device == "cuda" else "numpy")
    try:
        backend = B.get_backend(backend_name, None if backend_name == "numpy" else device)
    except B.BackendUnavailable as e:
        raise SystemExit(f"xpnet backend {backend_name!r} on {device}: {e}")
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {', '.join(unknown)}: expected some of {', '.join(WORKLOADS)}")
    libs = ["numpy", "xpnet", "torch"] + (["cupy"] if device == "cuda" or backend_name == "cupy" else []) + (
        ["jax"] if backend_name == "jax" else [])
    result = {"date": datetime.date.today().isoformat(), "machine": harness.machine(),
              "versions": harness.versions(*libs), "device": device,
              "backend": B.describe(backend) + B.matmul_precision_note(backend),
              "float32_matmul_precision": xn.get_float32_matmul_precision(), "args": vars(args), "rows": []}
    threads = [f"{k}={os.environ[k]}" for k in THREAD_VARS if k in os.environ]
    with contextlib.suppress(ImportError):
        import torch
        threads.insert(0, f"torch threads {torch.get_num_threads()}")
    result["threads"] = ", ".join(threads) or "library defaults"
    print(f"machine: {result['machine']}\nversions: {result['versions']}\n"
          f"device: {device}, xpnet backend: {result['backend']}; threads: {result['threads']}; "
          f"float32 matmul precision: {result['float32_matmul_precision']}\n", flush=True)
    for w in (WORKLOADS["mlp_small"], WORKLOADS["cnn1d"]):  # one-time library set-up, not counted below
        for c in build(dataclasses.replace(w, batch=2), device, backend)[0].values():
            c.step()
            c.sync()
    for name in names:
        w = WORKLOADS[name]
        if w.gpu_only and device != "cuda":
            result["rows"].append({"workload": name, "note": "skipped: GPU only (run with --device cuda)"})
            continue
        with xn.using(backend):
            result["rows"].append(run_workload(w, device, backend, args.repeats, args.number))
    print(table(result["rows"]))
    for line in notes(result):
        print("  " + line)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(markdown(result))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
