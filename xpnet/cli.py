"""The ``xpnet`` command.

    xpnet train                     # digits, MLP, best device, 95%+ test accuracy
    xpnet train --model cnn --epochs 15 --backend torch
    xpnet backends                  # what runs on this machine
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

DATASETS = ("digits", "iris", "moons", "spirals", "mnist", "fashion")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam", "adagrad", "lion")


def _load(args):
    """(X_train, y_train, X_test, y_test, image_shape) as NumPy arrays."""
    from . import data
    if args.dataset in ("mnist", "fashion"):
        if not args.data_dir:
            raise SystemExit(f"--dataset {args.dataset} reads IDX files from a folder: pass --data-dir PATH "
                             "(add --download to fetch them there first)")
        kind = "mnist" if args.dataset == "mnist" else "fashion"
        Xtr, ytr = data.load_mnist(args.data_dir, train=True, kind=kind, download=args.download)
        Xte, yte = data.load_mnist(args.data_dir, train=False, kind=kind, download=args.download)
        Xtr, Xte = Xtr.reshape(len(Xtr), -1) / 255.0, Xte.reshape(len(Xte), -1) / 255.0
        return Xtr.astype("float32"), ytr, Xte.astype("float32"), yte, (1, 28, 28)
    if args.dataset == "digits":
        X, y = data.load_digits()
        X, shape = X / 16.0, (1, 8, 8)
    elif args.dataset == "iris":
        X, y = data.load_iris()
        shape = None
    elif args.dataset == "moons":
        X, y = data.make_moons(1000, noise=0.2, seed=args.seed)
        shape = None
    else:
        X, y = data.make_spirals(300, 3, noise=0.2, seed=args.seed)
        shape = None
    Xtr, Xte, ytr, yte = data.train_test_split(X, y, test_size=0.2, seed=args.seed, stratify=y)
    if shape is None:  # tabular: standardize with the training statistics
        mean, std = Xtr.mean(axis=0), Xtr.std(axis=0) + 1e-8
        Xtr, Xte = (Xtr - mean) / std, (Xte - mean) / std
    return Xtr.astype("float32"), ytr, Xte.astype("float32"), yte, shape


def build_model(kind, n_features, n_classes, image_shape=None, hidden=128):
    """An MLP (``mlp``) or a small CNN (``cnn``, for image data)."""
    from . import nn
    if kind == "mlp":
        return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                             nn.Linear(hidden, n_classes))
    if image_shape is None:
        raise SystemExit("--model cnn needs image data (digits, mnist, fashion)")
    c, h, w = image_shape
    return nn.Sequential(
        nn.Unflatten(1, image_shape),
        nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * (h // 2) * (w // 2), hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


def train(args) -> dict:
    import xpnet as xn
    from . import optim
    from .train import ModelCheckpoint, CSVLogger
    xn.manual_seed(args.seed)
    Xtr, ytr, Xte, yte, shape = _load(args)
    n_classes = int(max(ytr.max(), yte.max())) + 1
    model = build_model(args.model, Xtr.shape[1], n_classes, shape, args.hidden)
    opt_cls = {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD, "rmsprop": optim.RMSprop,
               "nadam": optim.NAdam, "adagrad": optim.Adagrad, "lion": optim.Lion}[args.optimizer]
    kwargs = {"momentum": 0.9} if args.optimizer == "sgd" else {}
    optimizer = opt_cls(model.parameters(), lr=args.lr, **kwargs)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trainer = xn.Trainer(model, "cross_entropy", optimizer, metrics=["accuracy"], backend=args.backend,
                         device=args.device, verbose=args.verbose)
    history = trainer.fit(Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, validation_data=(Xte, yte),
                          seed=args.seed, callbacks=[ModelCheckpoint(out / "best.safetensors", monitor="val_accuracy",
                                                                     save_best_only=True),
                                                     CSVLogger(out / "history.csv")])
    trainer.save_checkpoint(out / "last.safetensors", epoch=trainer.epoch)
    result = trainer.evaluate(Xte, yte)
    if not trainer.parallel.is_writer:  # under a launcher rank 0 alone prints and writes
        return result
    print(f"Test accuracy: {result['accuracy'] * 100:.2f}% (loss {result['loss']:.4f}) on {len(yte)} samples")
    try:
        from .plot import plot_history
        png = plot_history(history, out / "curves.png")
        print(f"Curves: {png}")
    except ImportError as e:
        print(f"No curves: {e}")
    print(f"Checkpoints: {out / 'best.safetensors'}, {out / 'last.safetensors'}")
    (out / "result.json").write_text(json.dumps({"test": result, "history": history.history}, indent=1))
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xpnet", description="xpnet: one deep-learning codebase for NumPy, CuPy, "
                                "PyTorch, JAX and array-api-strict.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a classifier (default: an MLP on the built-in 8x8 digits)",
                       description="Train a classifier on the best available device and write a checkpoint, "
                                   "the history (CSV, JSON) and a curves PNG to --out.")
    t.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits (built in, 8x8), iris (built in), moons / spirals (synthetic), "
                        "mnist / fashion (IDX files in --data-dir)")
    t.add_argument("--data-dir", help="folder with MNIST / Fashion-MNIST IDX files")
    t.add_argument("--download", action="store_true", help="download MNIST / Fashion-MNIST into --data-dir first")
    t.add_argument("--model", choices=("mlp", "cnn"), default="mlp", help="mlp, or cnn for image data")
    t.add_argument("--hidden", type=int, default=128, help="hidden units (default 128)")
    t.add_argument("--epochs", type=int, default=20, help="passes over the training set (default 20)")
    t.add_argument("--batch-size", type=int, default=32, help="samples per step (default 32)")
    t.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="default adam (sgd uses momentum 0.9)")
    t.add_argument("--backend", default=None, choices=(None, "numpy", "cupy", "torch", "jax", "array_api_strict"),
                   help="array library (default: cupy on a CUDA GPU, else numpy)")
    t.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    t.add_argument("--seed", type=int, default=0, help="random seed (weights, data split and order)")
    t.add_argument("--out", default="runs/xpnet", help="output folder (default runs/xpnet)")
    t.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="0 silent, 1 progress, 2 a line per epoch")
    sub.add_parser("backends", help="list the backends and whether they run here")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.command == "backends":
        from .backend import available_backends
        for name, why in available_backends().items():
            print(f"{name:<18} {'available' if why is None else why}")
        return 0
    from .backend import BackendUnavailable
    try:
        train(args)
    except BackendUnavailable as e:
        print(f"xpnet train: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
