"""CUDA-graphed compiled steps (``xpnet.compile(step, cuda_graphs=True)``) against the plain
replay, eager xpnet, PyTorch eager CUDA and a CUDA-graphed PyTorch step; host syncs per step.

    python backends/bench_graphs.py [--workloads mlp_small,cnn1d] [--repeats 15] [--number 50]
                                    [--json out.json] [--markdown out.md]
    python backends/bench_graphs.py --emulate --repeats 3   # a dry run on the CPU (NumPy, emulated graphs)

Contenders, those the machine has (the workloads, models, initial weights and fixed batch
of ``backends/bench.py``):

- ``xpnet-<lib>``: eager xpnet on CuPy / torch CUDA;
- ``plain-<lib>``: compiled, replayed without a graph (``cuda_graphs=False``);
- ``graph-<lib>``: compiled, one CUDA graph launch per step (``cuda_graphs=True``);
- ``torch``: PyTorch eager CUDA;
- ``torch-graph``: the whole PyTorch step captured by hand in one ``torch.cuda.graph``
  (static batch, ``zero_grad(set_to_none=True)`` before the capture, ``Adam(capturable=True)``),
  as PyTorch's CUDA-graph notes describe.

Contenders take turns in every repeat (harness.interleaved), timed up to a device
synchronize; medians and ratios against ``torch`` are printed.  ``syncs/step``: for torch
contenders the warnings of ``torch.cuda.set_sync_debug_mode("warn")`` per step; for CuPy
ones 0 when the probe steps ran under ``cupyx.allow_synchronize(False)`` without
raising, else ">=1" and what raised; ``reads/step``: xpnet's own reads back to the host
(``bench.count_host_reads``).  Not run on a GPU yet (none lent to this work).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import warnings


sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402
import harness  # noqa: E402

import xpnet as xn  # noqa: E402
from xpnet import backend as B  # noqa: E402
from xpnet import optim  # noqa: E402
from xpnet.nn import functional as F  # noqa: E402

PROBE = 5  # steps run under the sync detectors


def xpnet_compiled(w, backend, X, Y, cuda_graphs):
    """The bench.py xpnet step through ``xpnet.compile(cuda_graphs=...)``; the batch made once."""
    with xn.using(backend):
        xn.manual_seed(0)
        model = bench.xpnet_model(w)
        x, y = xn.tensor(X), xn.tensor(Y)
        opt = optim.SGD(model.parameters(), lr=w.lr) if w.opt == "sgd" else optim.Adam(model.parameters(), lr=w.lr)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    f = xn.compile(step, cuda_graphs=cuda_graphs)
    return (lambda: f(x, y)), _sync_of(backend), f


def _sync_of(backend):
    if backend.name == "cupy":
        import cupy
        return cupy.cuda.Device().synchronize
    if backend.name == "torch" and not B.on_host(backend.xp.zeros(1, device=backend.device)):
        import torch
        return torch.cuda.synchronize
    return bench._nosync


def torch_graphed(w, init, X, Y):
    """The PyTorch step captured whole in a CUDA graph; each call copies the batch in and replays."""
    import torch
    dev = torch.device("cuda")
    model = bench.torch_model(w).to(dev)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in init.items()})
    x, y = torch.from_numpy(X).to(dev), torch.from_numpy(Y).to(dev)
    static_x, static_y = x.clone(), y.clone()
    opt = (torch.optim.SGD(model.parameters(), lr=w.lr) if w.opt == "sgd"
           else torch.optim.Adam(model.parameters(), lr=w.lr, capturable=True))
    loss_fn = torch.nn.functional.cross_entropy
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on the capture stream: optimizer state, handles, workspaces
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(static_x), static_y).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph, stream=side):
        loss_fn(model(static_x), static_y).backward()
        opt.step()

    def step():
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
    return step, torch.cuda.synchronize


def syncs_per_step(lib, fn):
    """Synchronizing calls per step of ``fn`` (see the module's docstring)."""
    if lib == "torch":
        import torch
        old = torch.cuda.get_sync_debug_mode()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                for _ in range(PROBE):
                    fn()
            finally:
                torch.cuda.set_sync_debug_mode(old)
        n = sum("synchroniz" in str(c.message) for c in caught)
        return f"{n / PROBE:g}"
    if lib == "cupy":
        import cupyx
        if not hasattr(cupyx, "allow_synchronize"):
            return "n/a (no cupyx.allow_synchronize)"
        try:
            with cupyx.allow_synchronize(False):
                for _ in range(PROBE):
                    fn()
        except Exception as e:  # cupyx.DeviceSynchronized, or what a sync inside raised
            return f">=1 ({type(e).__name__}: {str(e)[:60]})"
        return "0"
    return "-"


def reads_per_step(fn):
    with bench.count_host_reads() as c:
        for _ in range(PROBE):
            fn()
    return f"{c['n'] / PROBE:g}"


def measure(w, libs, emulate, repeats, number):
    X, Y = bench.make_data(w)
    contenders, syncs, meta = {}, {}, {}
    init = None
    for lib in libs:
        backend = B.get_backend(lib, None if lib != "torch" else "cuda")
        name = "numpy" if emulate else lib.split(":")[0]
        xc, init = bench.xpnet_contender(w, backend, X, Y, "float32")
        contenders[f"xpnet-{name}"], syncs[f"xpnet-{name}"] = xc.step, xc.sync
        for kind, mode in (("plain", False), ("graph", "emulate" if emulate else True)):
            step, sync, f = xpnet_compiled(w, backend, X, Y, mode)
            contenders[f"{kind}-{name}"], syncs[f"{kind}-{name}"] = step, sync
            meta[f"{kind}-{name}"] = f
    if not emulate:
        try:
            tc = bench.torch_contender(w, "cuda", init, X, Y)
            contenders["torch"], syncs["torch"] = tc.step, tc.sync
            contenders["torch-graph"], syncs["torch-graph"] = torch_graphed(w, init, X, Y)
        except (ImportError, AssertionError, RuntimeError) as e:
            print(f"  torch CUDA contenders skipped: {e}")
    for name, fn in contenders.items():  # warm-up: traces, captures
        for _ in range(4):
            fn()
        syncs[name]()
    for name, f in meta.items():
        if hasattr(f, "runner") and name.startswith("graph"):
            r = f.runner
            status = f"{r.launches} launches" if getattr(r, "plain", True) is None else "NO GRAPH (plain replay)"
            print(f"  {name}: {status}")
    probe = {}
    for name, fn in contenders.items():
        lib = "torch" if name.startswith("torch") or name.endswith("torch") else ("cupy" if "cupy" in name else "-")
        probe[name] = (syncs_per_step(lib, fn), reads_per_step(fn) if not name.startswith("torch") else "-")
        syncs[name]()
    t = harness.interleaved(contenders, repeats=repeats, number=number, sync=syncs)
    return t, probe


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="mlp_small,cnn1d")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--number", type=int, default=50)
    p.add_argument("--emulate", action="store_true", help="a dry run on NumPy with the CPU emulation of graphs")
    p.add_argument("--json", help="write the medians and probes to this file")
    p.add_argument("--markdown", help="append a Markdown table to this file")
    args = p.parse_args(argv)
    avail = B.available_backends()
    if args.emulate:
        libs = ["numpy"]
    else:
        libs = [n for n in ("cupy",) if avail.get(n) is None]
        try:
            B.get_backend("torch", "cuda")
            libs.append("torch")
        except Exception:  # noqa: BLE001 -- no torch, or no CUDA for it
            pass
        if not libs:
            print("bench_graphs: no CUDA backend (CuPy or torch with CUDA); --emulate runs the CPU dry run")
            return 2
    print(f"machine: {harness.machine()}\nversions: {harness.versions('numpy', 'torch', 'cupy', 'xpnet')}")
    results, lines = {}, []
    for wname in args.workloads.split(","):
        w = bench.WORKLOADS[wname]
        print(f"{wname}: {w.describe()}")
        t, probe = measure(w, libs, args.emulate, args.repeats, args.number)
        ref = t.get("torch")
        results[wname] = {k: {"ms": v * 1e3, "vs_torch": v / ref if ref else None, "syncs_per_step": probe[k][0],
                              "reads_per_step": probe[k][1]} for k, v in t.items()}
        for k, v in t.items():
            ratio = f"{v / ref:6.2f}x torch" if ref else ""
            print(f"  {k:14s} {v * 1e3:8.3f} ms/step {ratio}  syncs/step {probe[k][0]}  reads/step {probe[k][1]}")
            lines.append(f"| {wname} | {k} | {v * 1e3:.3f} | {f'{v / ref:.2f}x' if ref else '-'} | {probe[k][0]} |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write("\n| workload | contender | ms/step | / torch eager | host syncs/step |\n|---|---|---:|---:|---:|\n")
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
