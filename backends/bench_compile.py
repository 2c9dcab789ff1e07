"""Compiled training steps (``xpnet.compile``) against eager xpnet, the hand-written floor and PyTorch.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        python backends/bench_compile.py [--backend numpy|jax|torch|cupy] [--workloads mlp_small,cnn1d]
                                         [--repeats 15] [--markdown section.md]

The workloads and contenders are those of ``backends/bench.py`` (same models, same
initial weights, same fixed batch), plus ``compiled``: the same xpnet step through
``xpnet.compile`` (traced at the second call, replayed from the third).  On
``--backend jax`` the floor is the step written by hand as one ``jax.jit``
function of (params, batch) with the parameters donated (the MLP only: the CNN
floor writes in place), and ``compiled_zgl`` is the compiled step with ``zero_grad()``
at its end instead of its start (no gradient outlives the step, as in the floor).  Contenders take turns in every repeat
(harness.interleaved); medians and ratios are printed.  Targets (issue 15):
compiled within 1.10x of the NumPy floor, within 1.25x of the hand-written jax.jit step.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402
import harness  # noqa: E402

import xpnet as xn  # noqa: E402
from xpnet import backend as B  # noqa: E402
from xpnet import optim  # noqa: E402
from xpnet.nn import functional as F  # noqa: E402


def compiled_contender(w, backend, X, Y, dtype="float32", zero_grad_last=False):
    """The xpnet step through ``xpnet.compile``; ``zero_grad_last``: ``opt.zero_grad()`` at the end of
    the step instead of the start, so that no gradient outlives the step (nor is returned by it)."""
    with xn.using(backend):
        xn.manual_seed(0)
        model = bench.xpnet_model(w, dtype)
        x, y = xn.tensor(X), xn.tensor(Y)
        opt = optim.SGD(model.parameters(), lr=w.lr) if w.opt == "sgd" else optim.Adam(model.parameters(), lr=w.lr)

    def step(x, y):
        if not zero_grad_last:
            opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if zero_grad_last:
            opt.zero_grad()
        return loss

    f = xn.compile(step)
    sync = bench._nosync
    if backend.name == "jax":
        def sync():
            for p in model.parameters():
                p.data.block_until_ready()
    elif backend.name == "cupy":
        import cupy
        sync = cupy.cuda.Device().synchronize
    elif backend.name == "torch" and not B.on_host(x.data):
        import torch
        sync = torch.cuda.synchronize
    return (lambda: f(x, y)), sync, f


def jax_floor(w, X, Y, init):
    """The MLP step by hand: ``bench.mlp_grads`` on jax.numpy, SGD, one ``jax.jit`` with donation."""
    import jax
    import jax.numpy as jnp
    params = [jnp.asarray(v) for v in init.values()]
    onehot = jnp.asarray((Y[:, None] == np.arange(10)[None, :]).astype(X.dtype))
    x = jnp.asarray(X)
    lr = w.lr

    def sgd(ps, x, onehot):
        _, grads = bench.mlp_grads(jnp, ps, x, onehot)
        return [p - lr * g for p, g in zip(ps, grads)]
    step = jax.jit(sgd, donate_argnums=0)

    state = [params]

    def run():
        state[0] = step(state[0], x, onehot)

    def sync():
        for p in state[0]:
            p.block_until_ready()
    return run, sync


def measure(w, backend, repeats, number):
    X, Y = bench.make_data(w)
    device = "cpu" if B.device_name(backend.device) == "cpu" else "cuda"
    xc, init = bench.xpnet_contender(w, backend, X, Y, "float32")
    contenders = {"xpnet": xc.step}
    syncs = {"xpnet": xc.sync}
    comp, csync, f = compiled_contender(w, backend, X, Y)
    contenders["compiled"], syncs["compiled"] = comp, csync
    if backend.name == "jax":  # also the step that ends with zero_grad(): no gradient returned
        comp2, csync2, _ = compiled_contender(w, backend, X, Y, zero_grad_last=True)
        contenders["compiled_zgl"], syncs["compiled_zgl"] = comp2, csync2
        if w.kind == "mlp" and w.opt == "sgd":
            contenders["floor"], syncs["floor"] = jax_floor(w, X, Y, init)
    elif device == "cpu":
        fl = bench.floor_contender(w, np, init, X, Y)
        contenders["floor"], syncs["floor"] = fl.step, fl.sync
    try:
        tc = bench.torch_contender(w, device, init, X, Y)
        contenders["torch"], syncs["torch"] = tc.step, tc.sync
    except ImportError:
        pass
    for name, fn in contenders.items():  # warm-up: traces, jit compilations
        for _ in range(3):
            fn()
        syncs[name]()
    t = harness.interleaved(contenders, repeats=repeats, number=number, sync=syncs)
    return t, f


def profile(program, f, args, repeats=200):
    """Seconds per step spent in each kind of recorded call (the program run one call at a
    time, timed around each call), summed over its instructions: where a replay's time goes."""
    import time
    from xpnet.compile.trace import Slot
    entry = next(iter(f.cache.values()))
    reads = entry.replay.reads  # the Locations of the state inputs, in the program's order
    env = {}
    for (s, _), loc in zip(program.inputs, reads):
        env[s] = loc.get()
    for (s, _), a in zip(program.inputs[len(reads):], args):
        env[s] = a.data

    def value(t):
        if isinstance(t, Slot):
            return env[t.i]
        if isinstance(t, tuple):
            return tuple(value(x) for x in t)
        if isinstance(t, list):
            return [value(x) for x in t]
        return t
    spent = {}
    buffers = getattr(program, "buffers", {})
    for _ in range(repeats):
        for ins in program.instrs:
            a = [value(x) for x in ins.args]
            kw = {k: value(v) for k, v in ins.kwargs.items()}
            fn = ins.fn
            if ins.outs in buffers:  # as the replay calls it: into the slot's own buffer
                fn, kw["out"] = buffers[ins.outs]
            t0 = time.perf_counter()
            out = fn(*a, **kw)
            spent[ins.name] = spent.get(ins.name, 0.0) + time.perf_counter() - t0
            if isinstance(ins.outs, tuple):
                env.update(zip(ins.outs, out))
            elif ins.outs is not None:
                env[ins.outs] = out
    counts = {}
    for ins in program.instrs:
        counts[ins.name] = counts.get(ins.name, 0) + 1
    return sorted(((v / repeats, counts[k], k) for k, v in spent.items()), reverse=True)


def overhead(w, backend, repeats, number):
    """Interleaved medians of the compiled step (``f(x, y)``), its generated program reading and
    writing the state (no signature, structure guards or Tensor wrapping), the program alone on
    fixed inputs (its results dropped at once) and the floor: how much of the compiled step is the
    calls and how much the machinery around them."""
    X, Y = bench.make_data(w)
    _, init = bench.xpnet_contender(w, backend, X, Y, "float32")
    with xn.using(backend):
        comp, _, f = compiled_contender(w, backend, X, Y)
        for _ in range(4):
            comp()
    entry = next(iter(f.cache.values()))
    run, reads, writes = entry.replay.run, entry.replay.reads, entry.replay.write_locs  # the generated replay's parts
    x, y = xn.tensor(X), xn.tensor(Y)
    vals = [loc.get() for loc in reads] + [x.data, y.data]

    def with_state():  # the program on the current state, its results written back: no signature, no guards
        outs = run(*[loc.get() for loc in reads], x.data, y.data)
        for loc, v in zip(writes, outs):
            loc.set(v)
    contenders = {"compiled": comp, "program + state": with_state, "program only": lambda: run(*vals),
                  "floor": bench.floor_contender(w, np, init, X, Y).step}
    return harness.interleaved(contenders, repeats=repeats, number=number,
                               sync={k: bench._nosync for k in contenders})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="numpy")
    p.add_argument("--device", default=None)
    p.add_argument("--workloads", default="mlp_small,cnn1d")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--number", type=int, default=20)
    p.add_argument("--markdown", help="append a Markdown table to this file")
    p.add_argument("--show-program", action="store_true", help="print the traced program of each workload")
    p.add_argument("--profile", action="store_true", help="print where a replay's time goes, by kind of call")
    p.add_argument("--overhead", action="store_true",
                   help="NumPy: the compiled step against its generated program alone and the floor")
    args = p.parse_args(argv)
    backend = B.get_backend(args.backend, args.device)
    threads = ", ".join(f"{k}={os.environ[k]}" for k in bench.THREAD_VARS if k in os.environ) or "library defaults"
    print(f"machine: {harness.machine()}\nversions: {harness.versions('numpy', 'torch', 'jax', 'xpnet')}\n"
          f"backend: {B.describe(backend)}; threads: {threads}")
    rows = []
    if args.overhead:
        for name in args.workloads.split(","):
            t = overhead(bench.WORKLOADS[name], backend, args.repeats, args.number)
            print(f"{name}: " + ", ".join(f"{k} {v * 1e3:.3f} ms ({v / t['floor']:.2f}x floor)" for k, v in t.items()))
        return rows
    for name in args.workloads.split(","):
        w = bench.WORKLOADS[name]
        with xn.using(backend):
            t, f = measure(w, backend, args.repeats, args.number)
        program = f.program
        if args.show_program:
            print(program)
        if args.profile:
            X, Y = bench.make_data(w)
            with xn.using(backend):
                rows_ = profile(program, f, [xn.tensor(X), xn.tensor(Y)])
            total = sum(r[0] for r in rows_)
            print(f"  where a replay's time goes ({total * 1e6:.0f} us in the calls):")
            for sec, n, op in rows_[:12]:
                print(f"    {op:28s} x{n:<4d} {sec * 1e6:8.1f} us  {sec / total:5.1%}")
        ref = t.get("floor")
        cells = {k: f"{v * 1e3:.3f}" for k, v in t.items()}
        ratios = {f"{k}/floor": f"{v / ref:.2f}x" for k, v in t.items() if ref and k != "floor"}
        if "torch" in t:
            ratios["compiled/torch"] = f"{t['compiled'] / t['torch']:.2f}x"
        rows.append((name, cells, ratios, len(program)))
        print(f"{name} ({w.describe()}; {len(program)} ops in the program): "
              + ", ".join(f"{k} {v} ms" for k, v in cells.items()) + "; " + ", ".join(f"{k} {v}" for k, v in ratios.items()))
    if args.markdown:
        lines = [f"\n| workload ({backend.name}) | " + " | ".join(rows[0][1]) + " | " + " | ".join(rows[0][2]) + " |",
                 "|---" + "|---:" * (len(rows[0][1]) + len(rows[0][2])) + "|"]
        for name, cells, ratios, _ in rows:
            lines.append(f"| {name} | " + " | ".join(cells.values()) + " | " + " | ".join(ratios.values()) + " |")
        with open(args.markdown, "a") as fh:
            fh.write("\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    main()
