"""The same training on every backend, side by side.

    python backends/compare.py [--model mlp|cnn|gru] [--steps 100] [--batch-size 64]
                               [--dtype float32|float64] [--json results.json]

Every available backend (numpy, array_api_strict, torch on cpu and cuda, jax,
cupy) trains the same model from the same initial weights (one seed, drawn on
the host) on the same batches of the built-in 8x8 digits with Adam.  The
table shows the final training loss, the test accuracy, the largest
parameter difference from the NumPy run (relative to the largest parameter)
and the time per step.  Backends that cannot run here are listed with the
reason.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import harness  # noqa: E402

import xpnet as xn  # noqa: E402
from xpnet import nn, optim  # noqa: E402
from xpnet.backend import BackendUnavailable, get_backend, to_numpy  # noqa: E402
from xpnet.data import DataLoader, ArrayDataset, load_digits, train_test_split  # noqa: E402
from xpnet.nn import functional as F  # noqa: E402

CANDIDATES = [("numpy", None), ("array_api_strict", None), ("torch", "cpu"), ("torch", "cuda"),
              ("jax", None), ("cupy", None)]


class GRUClassifier(nn.Module):
    """Rows of an 8x8 digit as 8 time steps of 8 features -> GRU -> Linear."""

    def __init__(self, hidden=32, dtype=None):
        super().__init__()
        self.gru = nn.GRU(8, hidden, batch_first=True, dtype=dtype)
        self.head = nn.Linear(hidden, 10, dtype=dtype)

    def forward(self, x):
        out, h = self.gru(x.reshape((x.shape[0], 8, 8)))
        return self.head(h[0])


def build(model: str, dtype: str):
    if model == "mlp":
        return nn.Sequential(nn.Linear(64, 128, dtype=dtype), nn.ReLU(), nn.Linear(128, 10, dtype=dtype))
    if model == "cnn":
        return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1, dtype=dtype), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 16, 10, dtype=dtype))
    if model == "gru":
        return GRUClassifier(dtype=dtype)
    raise SystemExit(f"unknown model {model!r}: expected mlp, cnn or gru")


def train_on(backend, model_name, steps, batch_size, dtype, seed=0):
    """Train on one backend; returns the row of the table and the final parameters (NumPy)."""
    X, y = load_digits()
    Xtr, Xte, ytr, yte = train_test_split((X / 16.0).astype(dtype), y, test_size=0.2, seed=seed)
    with xn.using(backend):
        xn.manual_seed(seed)
        model = build(model_name, dtype)
        opt = optim.Adam(model.parameters(), lr=1e-3)
        loader = DataLoader(ArrayDataset(Xtr, ytr), batch_size=batch_size, shuffle=True, seed=seed)
        batches = iter(())
        step, loss, t0 = 0, None, None
        while step < steps:
            try:
                xb, yb = next(batches)
            except StopIteration:
                batches = iter(loader)
                continue
            if step == 1:  # the first step pays one-time costs (compilation, allocation)
                to_numpy(loss.data)
                t0 = time.perf_counter()
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        final = float(to_numpy(loss.data))  # waits for the device
        per_step = (time.perf_counter() - t0) / max(steps - 1, 1)
        model.eval()
        with xn.no_grad():
            pred = to_numpy(model(xn.tensor(Xte)).data).argmax(axis=1)
        params = {k: to_numpy(v).astype(np.float64) for k, v in model.state_dict().items()}
    return {"loss": final, "accuracy": float((pred == yte).mean()), "ms_per_step": per_step * 1e3}, params


def compare(model="mlp", steps=100, batch_size=64, dtype="float32", candidates=CANDIDATES):
    rows, reference = [], None
    for name, device in candidates:
        label = name if device is None else f"{name}:{device}"
        try:
            b = get_backend(name, device)
        except BackendUnavailable as e:
            rows.append({"backend": label, "device": device or "-", "skipped": str(e)})
            continue
        try:
            row, params = train_on(b, model, steps, batch_size, dtype)
        except Exception as e:  # a backend that fails is reported, not hidden
            rows.append({"backend": label, "device": xn.backend.device_name(b.device), "skipped": f"failed: {e!r}"})
            continue
        if reference is None:
            reference = params
        scale = max(float(np.abs(p).max()) for p in reference.values())
        row["max_param_diff"] = max(float(np.abs(params[k] - reference[k]).max()) for k in reference) / scale
        rows.append({"backend": label, "device": xn.backend.device_name(b.device), **row})
    return rows


def table(rows) -> str:
    head = f"{'backend':<18} {'device':<8} {'train loss':>11} {'test acc':>9} {'max param diff':>15} {'ms/step':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['backend']:<18} {r['device']:<8} skipped: {r['skipped']}")
        else:
            lines.append(f"{r['backend']:<18} {r['device']:<8} {r['loss']:>11.6f} {r['accuracy']:>9.4f} "
                         f"{r['max_param_diff']:>15.2e} {r['ms_per_step']:>9.2f}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("mlp", "cnn", "gru"), default="mlp")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--json", help="also write the table as JSON to this file")
    args = p.parse_args(argv)
    print(f"machine: {harness.machine()}")
    print(f"model {args.model}, {args.steps} steps of Adam, batch {args.batch_size}, {args.dtype}\n")
    rows = compare(args.model, args.steps, args.batch_size, args.dtype)
    print(table(rows))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"args": vars(args), "machine": harness.machine(),
                                                       "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
