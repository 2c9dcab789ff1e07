"""The ``xpnet`` command.

    xpnet train                     # digits, MLP, best device, 95%+ test accuracy
    xpnet train --model cnn --epochs 15 --backend torch
    xpnet train --resume runs/xpnet # continue a run stopped with Ctrl-C
    xpnet backends                  # what runs on this machine

``xpnet train`` is one experiment: a validation split is carved from the
training data (``--val-split``), the best checkpoint is chosen on it, and the
test set is evaluated once at the end, for the best weights (and the last,
labelled).  ``result.json`` records the options, seed, backend, device,
library versions, wall time and figures.  Exit status: 0 done, 1 a failure
(data, download, checkpoint, ...), 2 a usage error, 130 interrupted (Ctrl-C;
the message says how to resume).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

DATASETS = ("digits", "iris", "moons", "spirals", "mnist", "fashion")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam", "adagrad", "lion")
BACKENDS = ("numpy", "cupy", "torch", "jax", "array_api_strict")
IMAGES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion": (1, 28, 28)}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class Failure(Exception):
    """A failure to report as one line (exit status 1)."""


# ------------------------------------------------------------------ threads

def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads counted once)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        try:
            cores.add(pathlib.Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
                      .read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def cap_threads() -> str:
    """Cap the BLAS and OpenMP thread pools at the number of physical cores (PyTorch's practice), unless
    one of the usual variables (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, ...) is set.
    Returns what was done, for result.json.  Call after the array library is imported."""
    given = [v for v in _THREAD_VARS if os.environ.get(v)]
    if given:
        return "set by the user: " + ", ".join(f"{v}={os.environ[v]}" for v in given)
    n = physical_cores()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "not capped (threadpoolctl is not installed)"
    threadpool_limits(limits=n)  # stays in force for the process
    return f"capped at {n} (physical cores)"


# ------------------------------------------------------------------ arguments

def _positive(kind, what):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r}: expected a {what} > 0")
        return value
    return parse


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a fraction between 0 and 1 (exclusive)")
    return value


# ------------------------------------------------------------------ data

def _load(args):
    """(X_train, y_train, X_test, y_test) as NumPy arrays; images flattened."""
    from . import data
    if args.dataset in ("mnist", "fashion"):
        kind = "mnist" if args.dataset == "mnist" else "fashion"
        try:
            Xtr, ytr = data.load_mnist(args.data_dir, train=True, kind=kind, download=args.download)
            Xte, yte = data.load_mnist(args.data_dir, train=False, kind=kind, download=args.download)
        except FileNotFoundError as e:
            hint = "" if args.download else "; or add --download to fetch them"
            raise Failure(f"{e}{hint}") from None
        return Xtr.reshape(len(Xtr), -1), ytr, Xte.reshape(len(Xte), -1), yte
    if args.dataset == "digits":
        X, y = data.load_digits()
        X = X / 16.0
    elif args.dataset == "iris":
        X, y = data.load_iris()
    elif args.dataset == "moons":
        X, y = data.make_moons(1000, noise=0.2, seed=args.seed)
    else:
        X, y = data.make_spirals(300, 3, noise=0.2, seed=args.seed)
    Xtr, Xte, ytr, yte = data.train_test_split(X, y, test_size=0.2, seed=args.seed, stratify=y)
    return Xtr, ytr, Xte, yte


def splits(args):
    """``{"train": (X, y), "val": (X, y), "test": (X, y)}``, float32 features: the validation split
    is carved from the training data (stratified); tabular data is standardized with the statistics
    of the training part alone."""
    from . import data
    Xtr, ytr, Xte, yte = _load(args)
    Xtr, Xva, ytr, yva = data.train_test_split(Xtr, ytr, test_size=args.val_split, seed=args.seed, stratify=ytr)
    if args.dataset not in IMAGES:
        mean, std = Xtr.mean(axis=0), Xtr.std(axis=0) + 1e-8
        Xtr, Xva, Xte = (Xtr - mean) / std, (Xva - mean) / std, (Xte - mean) / std
    return {"train": (Xtr.astype("float32"), ytr), "val": (Xva.astype("float32"), yva),
            "test": (Xte.astype("float32"), yte)}


def build_model(kind, n_features, n_classes, image_shape=None, hidden=128):
    """An MLP (``mlp``) or a small CNN (``cnn``, for image data)."""
    from . import nn
    if kind == "mlp":
        return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                             nn.Linear(hidden, n_classes))
    if image_shape is None:
        raise ValueError("--model cnn needs image data (digits, mnist, fashion)")
    c, h, w = image_shape
    return nn.Sequential(
        nn.Unflatten(1, image_shape),
        nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * (h // 2) * (w // 2), hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


# ------------------------------------------------------------------ the experiment

def _versions(backend) -> dict:
    from importlib import metadata

    import xpnet
    out = {"python": platform.python_version(), "xpnet": xpnet.__version__}
    names = ["numpy", "safetensors", "threadpoolctl"]
    lib = {"torch": "torch", "jax": "jax", "cupy": "cupy", "array_api_strict": "array-api-strict"}.get(backend)
    names += [lib] if lib else []
    if backend == "cupy":
        names = names[:-1] + [d.metadata["Name"] for d in metadata.distributions()
                              if (d.metadata["Name"] or "").startswith("cupy")][:1]
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _write_result(out: pathlib.Path, result: dict):
    tmp = out / ".result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, out / "result.json")


def train(args) -> dict:
    """Run the experiment that ``args`` describes into ``args.out``; returns what result.json holds."""
    import xpnet as xn
    from . import backend as B
    from . import optim
    from .train import BackupAndRestore, CSVLogger, ModelCheckpoint
    say = print if args.verbose else (lambda *a, **k: None)
    out = pathlib.Path(args.out)
    backup = BackupAndRestore(out / "backup")
    previous = {}
    if args.resume:
        previous = json.loads((out / "result.json").read_text())
    start = time.perf_counter()

    xn.manual_seed(args.seed)
    parts = splits(args)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = parts["train"], parts["val"], parts["test"]
    n_classes = int(max(ytr.max(), yva.max(), yte.max())) + 1
    model = build_model(args.model, Xtr.shape[1], n_classes, IMAGES.get(args.dataset), args.hidden)
    opt_cls = {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD, "rmsprop": optim.RMSprop,
               "nadam": optim.NAdam, "adagrad": optim.Adagrad, "lion": optim.Lion}[args.optimizer]
    kwargs = {"momentum": 0.9} if args.optimizer == "sgd" else {}
    optimizer = opt_cls(model.parameters(), lr=args.lr, **kwargs)
    trainer = xn.Trainer(model, "cross_entropy", optimizer, metrics=["accuracy"], backend=args.backend,
                         device=args.device, verbose=args.verbose, compile=args.compile,
                         precision=args.precision)
    if not trainer.parallel.is_writer:  # under a launcher (mpiexec, torchrun) rank 0 alone prints and writes
        say = lambda *a, **k: None  # noqa: E731
    write = _write_result if trainer.parallel.is_writer else (lambda out, result: None)
    threads = cap_threads()
    result = {"options": {k: v for k, v in vars(args).items() if k not in ("command", "resume")},
              "seed": args.seed, "backend": trainer.backend.name, "device": B.describe(trainer.backend),
              "versions": _versions(trainer.backend.name), "blas_threads": threads,
              "samples": {k: len(v[1]) for k, v in parts.items()}, "finished": False, "interrupted": False,
              "resumed": bool(args.resume), "history": previous.get("history", {})}
    out.mkdir(parents=True, exist_ok=True)
    write(out, result)  # the options, so that --resume works even after a crash

    best = ModelCheckpoint(out / "best.safetensors", monitor="val_accuracy", save_best_only=True)
    earlier = previous.get("history", {}).get("val_accuracy")
    if args.resume and earlier:
        best.best = max(earlier)  # the best of the epochs before the interruption
    history = trainer.fit(Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, validation_data=(Xva, yva),
                          seed=args.seed, callbacks=[best, CSVLogger(out / "history.csv", append=bool(args.resume)),
                                                     backup])
    wall = time.perf_counter() - start + previous.get("wall_time_s", 0.0)
    result.update(history=history.history, stop_reason=history.stop_reason, epochs_run=len(history.history.get(
        "loss", [])), wall_time_s=round(wall, 3))
    if trainer.interrupted:
        result["interrupted"] = True
        write(out, result)
        print(f"Interrupted in epoch {trainer.epoch + 1}: the run is saved in {backup.path}. "
              f"Resume it with: xpnet train --resume {out}", file=sys.stderr)
        return result
    from .checkpoint import NonFiniteWeightsError
    try:
        trainer.save_checkpoint(out / "last.safetensors", epoch=trainer.epoch)
    except NonFiniteWeightsError as e:
        say(f"No last.safetensors: {e}")
    last = trainer.evaluate(Xte, yte)
    result["test_last"] = last
    if (out / "best.safetensors").exists():
        from .checkpoint import load_weights
        load_weights(out / "best.safetensors", model)
        val_acc = history.history.get("val_accuracy", [])
        result["best_epoch"] = (val_acc.index(max(val_acc)) + 1) if val_acc else None
        result["val_best"] = max(val_acc) if val_acc else None
        result["test_best"] = test = trainer.evaluate(Xte, yte)
        say(f"Test accuracy: {test['accuracy'] * 100:.2f}% (loss {test['loss']:.4f}) on {len(yte)} samples, "
            f"best weights (epoch {result['best_epoch']}, validation accuracy {result['val_best'] * 100:.2f}%)")
    say(f"Test accuracy of the last weights: {last['accuracy'] * 100:.2f}% (loss {last['loss']:.4f})")
    result["finished"] = True
    if trainer.parallel.is_writer:
        try:
            from .plot import plot_history
            png = plot_history(history, out / "curves.png")
            say(f"Curves: {png}")
        except ImportError as e:
            say(f"No curves: {e}")
    say(f"Outputs: {out} (best.safetensors, last.safetensors, history.csv, result.json)")
    write(out, result)
    return result


# ------------------------------------------------------------------ the command

def parser() -> argparse.ArgumentParser:
    import xpnet
    p = argparse.ArgumentParser(prog="xpnet", description="xpnet: one deep-learning codebase for NumPy, CuPy, "
                                "PyTorch, JAX and array-api-strict.")
    p.add_argument("--version", action="version", version=f"xpnet {xpnet.__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser(
        "train", help="train a classifier (default: an MLP on the built-in 8x8 digits)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a classifier on the best available device. A validation split is carved from the "
                    "training data (--val-split) and picks best.safetensors; the test set is evaluated once, at "
                    "the end, for the best weights (and the last). Writes best/last checkpoints, history.csv, "
                    "result.json (options, seed, backend, device, library versions, wall time, figures) and "
                    "curves.png to --out.",
        epilog="Ctrl-C stops after the current step and saves the run; `xpnet train --resume DIR` continues it "
               "(bitwise the same weights as an uninterrupted run on the CPU).\n"
               "Threads: the BLAS and OpenMP pools are capped at the number of physical cores (threadpoolctl), "
               "unless OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS or the like is set.\n"
               "Exit status: 0 done, 1 failure, 2 usage error, 130 interrupted.")
    t.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits (built in, 8x8), iris (built in), moons / spirals (synthetic), "
                        "mnist / fashion (IDX files in --data-dir)")
    t.add_argument("--data-dir", help="folder with MNIST / Fashion-MNIST IDX files")
    t.add_argument("--download", action="store_true", help="download MNIST / Fashion-MNIST into --data-dir first")
    t.add_argument("--model", choices=("mlp", "cnn"), default="mlp", help="mlp, or cnn for image data")
    t.add_argument("--hidden", type=_positive(int, "whole number"), default=128, help="hidden units (default 128)")
    t.add_argument("--epochs", type=_positive(int, "whole number"), default=20,
                   help="passes over the training set (default 20)")
    t.add_argument("--batch-size", type=_positive(int, "whole number"), default=32,
                   help="samples per step (default 32)")
    t.add_argument("--lr", type=_positive(float, "number"), default=1e-3, help="learning rate (default 1e-3)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="default adam (sgd uses momentum 0.9)")
    t.add_argument("--val-split", type=_fraction, default=0.1,
                   help="share of the training data held out for validation (default 0.1)")
    t.add_argument("--backend", default=None, choices=BACKENDS,
                   help="array library (default: cupy on a CUDA GPU, else numpy)")
    t.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    t.add_argument("--seed", type=int, default=0, help="random seed (weights, data split and order)")
    t.add_argument("--out", default="runs/xpnet", help="output folder (default runs/xpnet)")
    t.add_argument("--precision", choices=("32-true", "16-mixed", "bf16-mixed"), default="32-true",
                   help="32-true (default); 16-mixed: autocast to float16 with a GradScaler (saved in the "
                        "checkpoints, restored by --resume); bf16-mixed: autocast to bfloat16 (Lightning's names)")
    t.add_argument("--compile", action="store_true",
                   help="record the training step once and replay it (xpnet.compile): faster, same numbers")
    t.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                   help="0 silent, 1 progress, 2 a line per epoch")
    t.add_argument("--resume", metavar="DIR",
                   help="continue the interrupted run in DIR with its own options (only --verbose may be given)")
    sub.add_parser("backends", help="list the backends and whether they run here")
    return p


def _check(p: argparse.ArgumentParser, args):
    """Usage errors that argparse's types cannot see; resolves --resume into the run's options."""
    if args.resume:
        defaults = vars(p.parse_args(["train"]))
        given = {k: v for k, v in vars(args).items() if k not in ("command", "resume", "verbose")
                 and v != defaults[k]}
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            p.error(f"--resume continues a run with its own options: drop {flags}")
        run = pathlib.Path(args.resume)
        try:
            saved = json.loads((run / "result.json").read_text())["options"]
        except (OSError, ValueError, KeyError, TypeError):
            p.error(f"--resume {run}: no run to resume there (expected {run / 'result.json'} of an xpnet train run)")
        if not (run / "backup" / "backup.safetensors").exists():
            p.error(f"--resume {run}: nothing to resume ({run / 'backup' / 'backup.safetensors'} is missing: "
                    "the run finished, or stopped before its first epoch ended)")
        verbose = args.verbose
        vars(args).update(saved)
        args.out, args.verbose = str(run), verbose
        return
    out = pathlib.Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"--out {out}: is a file, expected a folder")
    if (out / "backup" / "backup.safetensors").exists():
        p.error(f"--out {out} holds an interrupted run: continue it with --resume {out}, or pick another --out "
                f"(or delete {out / 'backup'})")
    if args.model == "cnn" and args.dataset not in IMAGES:
        p.error(f"--model cnn needs image data (digits, mnist, fashion), not --dataset {args.dataset}")
    if args.dataset in ("mnist", "fashion") and not args.data_dir:
        p.error(f"--dataset {args.dataset} reads IDX files from a folder: pass --data-dir PATH "
                "(add --download to fetch them there first)")


def _made(out: pathlib.Path):
    """The folders that ``out.mkdir(parents=True)`` would create, outermost first."""
    made = []
    for d in (out, *out.parents):
        if d.exists():
            break
        made.append(d)
    return made[::-1]


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.command == "backends":
        from .backend import available_backends
        for name, why in available_backends().items():
            print(f"{name:<18} {'available' if why is None else why}")
        return 0
    _check(p, args)
    from .backend import BackendUnavailable
    from .checkpoint import CheckpointError
    from .data import DataFileError
    new_folders = _made(pathlib.Path(args.out))
    try:
        return _exit_code(train(args))
    except BackendUnavailable as e:
        print(f"xpnet train: {e}", file=sys.stderr)
        return 2
    except (Failure, DataFileError, CheckpointError, OSError, MemoryError) as e:
        print(f"xpnet train: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # outside fit, or a second Ctrl-C
        backup = pathlib.Path(args.out) / "backup" / "backup.safetensors"
        hint = f": resume with xpnet train --resume {args.out}" if backup.exists() else ""
        print(f"xpnet train: interrupted{hint}", file=sys.stderr)
        return INTERRUPTED
    finally:
        for d in reversed(new_folders):  # no empty output folder left behind
            try:
                d.rmdir()
            except OSError:
                break


def _exit_code(result) -> int:
    return INTERRUPTED if result.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
