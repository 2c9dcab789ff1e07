"""What the checkpoint guarantees cost on a ~100 MB model: the SHA-256 digests (at save and at
load) and the non-finite check, against the same save and load without them.

    python backends/bench_checkpoint.py [--mb 100] [--repeats 5] [--dir DIR] [--markdown FILE]

The model is an MLP of float32 Linear layers holding about ``--mb`` megabytes of weights.
"with digests" is xpnet.save_weights / load_weights as shipped; "without" is the same code with
the hash (and, at save, the finite check) replaced by nothing, so the difference is their cost.
The files go to ``--dir`` (default: a temporary folder), fsynced as every save is.
Saves, loads and the bare checks are three groups; within each, contenders take turns in every
repeat (harness.interleaved); medians are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import harness  # noqa: E402

import xpnet as xn  # noqa: E402
from xpnet import checkpoint as ck  # noqa: E402
from xpnet import nn  # noqa: E402


def model_of(mb: float):
    width = int((mb * 2**20 / 4 / 3) ** 0.5)  # three width x width float32 layers
    xn.manual_seed(0)
    with xn.using("numpy"):
        return nn.Sequential(*[nn.Linear(width, width) for _ in range(3)])


@contextlib.contextmanager
def unchecked():
    """Save and load without digests or the finite check (the baseline)."""
    digest, meta_digest, nonfinite = ck._digest, ck._meta_digest, ck._nonfinite
    ck._digest, ck._meta_digest, ck._nonfinite = (lambda a: ""), (lambda m: ""), (lambda *a: None)
    verify, ck._verify = ck._verify, (lambda *a: None)
    try:
        yield
    finally:
        ck._digest, ck._meta_digest, ck._nonfinite, ck._verify = digest, meta_digest, nonfinite, verify


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=100.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args(argv)
    model = model_of(args.mb)
    size = sum(int(np.prod(p.shape)) * 4 for p in model.parameters()) / 2**20
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        checked, plain = pathlib.Path(d) / "checked.safetensors", pathlib.Path(d) / "plain.safetensors"
        ck.save_weights(checked, model)
        with unchecked():
            ck.save_weights(plain, model)
        target = model_of(args.mb)

        def save_plain():
            with unchecked():
                ck.save_weights(plain, model)

        def load_plain():
            with unchecked():
                ck.load_weights(plain, target)

        arrays = {k: np.asarray(v) for k, v in model.state_dict().items()}
        times = {}  # saves, loads and the bare checks each interleaved among themselves
        times.update(harness.interleaved({"save, with digests": lambda: ck.save_weights(checked, model),
                                          "save, without": save_plain}, repeats=args.repeats, number=1, warmup=1))
        times.update(harness.interleaved({"load, verified": lambda: ck.load_weights(checked, target),
                                          "load, unverified": load_plain}, repeats=args.repeats, number=1, warmup=1))
        times.update(harness.interleaved({
            "SHA-256 of every tensor": lambda: [ck._digest(a) for a in arrays.values()],
            "finite check": lambda: ck._nonfinite("x", arrays, list(arrays))}, repeats=args.repeats, number=1,
            warmup=1))
    lines = [f"{time.strftime('%Y-%m-%d')}, {harness.machine()}, {harness.versions('numpy', 'safetensors')}, "
             f"{size:.0f} MB of float32 weights", "", "```",
             f"{'operation':<28}{'median':>10}{'GB/s':>8}"]
    for name, t in times.items():
        lines.append(f"{name:<28}{t * 1e3:>8.0f}ms{size / 1024 / t:>8.2f}")
    lines += [f"{'digest cost at save':<28}{(times['save, with digests'] / times['save, without'] - 1) * 100:>9.0f}%",
              f"{'digest cost at load':<28}{(times['load, verified'] / times['load, unverified'] - 1) * 100:>9.0f}%",
              "```"]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text + "\n")
    return times


if __name__ == "__main__":
    main()
