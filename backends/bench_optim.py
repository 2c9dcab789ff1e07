"""One optimizer step: the loop over parameters against ``foreach=True`` (one update over all
of them concatenated), next to ``torch.optim`` with and without ``foreach`` on the same device.

    python backends/bench_optim.py [--backends numpy,torch,torch:cuda] [--models mlp_small,...] [--repeats 15]
                                   [--markdown FILE]

The parameters are those of the benchmark models (bench.py) plus a deep MLP with many
small parameters; the gradients are fixed, so only ``optimizer.step()`` is timed.
Contenders take turns in every repeat (harness.interleaved); medians are printed.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import harness  # noqa: E402

import xpnet as xn  # noqa: E402
from xpnet import backend as B  # noqa: E402
from xpnet import optim  # noqa: E402
from xpnet.nn import Parameter  # noqa: E402

MODELS = {  # name -> parameter shapes (PyTorch's layout)
    "mlp_small": [(100, 40), (100,), (100, 100), (100,), (10, 100), (10,)],
    "mlp_784": [(512, 784), (512,), (512, 512), (512,), (10, 512), (10,)],
    "deep_mlp_24x256": [s for _ in range(24) for s in ((256, 256), (256,))],
}
OPTIMIZERS = {"SGD": dict(lr=0.01), "SGD momentum": dict(lr=0.01, momentum=0.9), "Adam": dict(lr=1e-3)}


def _shapes_and_grads(model, seed=0):
    rng = np.random.default_rng(seed)
    shapes = MODELS[model]
    return ([rng.normal(size=s).astype(np.float32) for s in shapes],
            [rng.normal(size=s).astype(np.float32) for s in shapes])


def xpnet_step(backend, model, opt_name, foreach):
    init, grads = _shapes_and_grads(model)
    with xn.using(backend):
        params = [Parameter(xn.tensor(a)) for a in init]
        for p, g in zip(params, grads):
            p.grad = xn.tensor(g)
    cls = optim.SGD if opt_name.startswith("SGD") else optim.Adam
    return cls(params, foreach=foreach, **OPTIMIZERS[opt_name]).step


def torch_step(device, model, opt_name, foreach):
    import torch
    init, grads = _shapes_and_grads(model)
    params = [torch.nn.Parameter(torch.from_numpy(a).to(device)) for a in init]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g).to(device)
    cls = torch.optim.SGD if opt_name.startswith("SGD") else torch.optim.Adam
    return cls(params, foreach=foreach, **OPTIMIZERS[opt_name]).step


def _sync(backend):
    if backend.name == "cupy":
        import cupy
        return cupy.cuda.Device().synchronize
    if backend.name == "torch" and B.device_name(backend.device).startswith("cuda"):
        import torch
        return torch.cuda.synchronize
    return None


def measure(backend, repeats, models=tuple(MODELS)):
    rows = []
    sync = _sync(backend)
    device = B.device_name(backend.device)
    for model in models:
        for opt_name in OPTIMIZERS:
            contenders = {"loop": xpnet_step(backend, model, opt_name, False),
                          "foreach": xpnet_step(backend, model, opt_name, True)}
            if backend.name in ("torch", "cupy") and B.available_backends().get("torch") is None:
                tdev = "cuda" if device.startswith("cuda") else "cpu"
                contenders["torch loop"] = torch_step(tdev, model, opt_name, False)
                contenders["torch foreach"] = torch_step(tdev, model, opt_name, True)
                if sync is None and tdev == "cuda":
                    import torch
                    sync = torch.cuda.synchronize
            t = harness.interleaved(contenders, repeats=repeats, number=20, sync=sync)
            rows.append((f"{backend.name} / {device}", model, opt_name, t))
    return rows


def table(rows, markdown=False) -> str:
    head = ["backend", "parameters", "optimizer", "loop (us)", "foreach (us)", "foreach / loop",
            "torch loop (us)", "torch foreach (us)"]
    lines = []
    for be, model, opt_name, t in rows:
        us = {k: f"{v * 1e6:.1f}" for k, v in t.items()}
        lines.append([be, f"{model} ({len(MODELS[model])})", opt_name, us["loop"], us["foreach"],
                      f"{t['foreach'] / t['loop']:.2f}x", us.get("torch loop", "-"), us.get("torch foreach", "-")])
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        return "\n".join(out + ["| " + " | ".join(r) + " |" for r in lines])
    widths = [max(len(str(r[i])) for r in [head] + lines) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [head] + lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="numpy,torch,cupy",
                    help="comma-separated names or name:device (torch:cuda); unavailable ones are skipped "
                         "with the reason")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--markdown", help="also write the table as Markdown to this file")
    args = ap.parse_args(argv)
    models = args.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}: expected some of {', '.join(MODELS)}")
    print(harness.machine())
    print(harness.versions("numpy", "torch", "cupy"))
    rows = []
    for name in args.backends.split(","):  # a name, or name:device (torch:cuda)
        try:
            backend = B.get_backend(name)
        except B.BackendUnavailable as e:
            print(f"{name}: skipped ({e})")
            continue
        rows += measure(backend, args.repeats, models)
    print(table(rows))
    if args.markdown:
        pathlib.Path(args.markdown).write_text(table(rows, markdown=True) + "\n")


if __name__ == "__main__":
    main()
