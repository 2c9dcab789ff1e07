"""Run by tests/test_distributed.py under a launcher (mpiexec -n 2 python -m mpi4py, or
python -m torch.distributed.run --nproc_per_node 2): ``python distributed_worker.py BACKEND OUT SCENARIO...``.

Every rank runs the same scenarios; a failed check raises (the launcher then ends the job with
a non-zero status).  Each rank writes ``OUT/ok-<scenario>-<rank>`` when a scenario passes.
"""

import pathlib
import sys

import numpy as np

import xpnet as xn
import xpnet.distributed as dist
from xpnet import nn, optim
from xpnet.data import ArrayDataset, DataLoader

NAME, OUT = sys.argv[1], pathlib.Path(sys.argv[2])
# one GPU per process: "cupy" and "torch:cuda" run on cuda:<local rank>
DEVICE = f"cuda:{dist.detect().local_rank}" if NAME in ("cupy", "torch:cuda") else None
BACKEND = xn.get_backend(NAME.split(":")[0], DEVICE)
B_PER_RANK = 4


def data(n=32, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, classes, size=n)


def mlp(seed=0, bn=False):
    xn.manual_seed(seed)
    layers = [nn.Linear(6, 8, dtype="float64")]
    if bn:
        layers.append(nn.BatchNorm1d(8, dtype="float64"))
    layers += [nn.Tanh(), nn.Linear(8, 3, dtype="float64")]
    return nn.Sequential(*layers)


def flat(model):
    return np.concatenate([xn.backend.to_numpy(p.data).ravel() for p in model.parameters()])


def gathered(x):
    """Every rank's copy of host array ``x`` (float64)."""
    a = xn.backend.as_array(x, dtype="float64")
    return [xn.backend.to_numpy(p) for p in dist.all_gather(a)]


def same_on_every_rank(x, what):
    parts = gathered(x)
    assert all(np.array_equal(parts[0], p) for p in parts), f"{what} differs between ranks"


def collectives():
    r, w = dist.get_rank(), dist.get_world_size()
    assert w == 2 and dist.is_initialized() and dist.get_local_rank() in (0, 1)
    t = xn.tensor(np.array([1.0, 2.0]) * (r + 1), dtype="float64")
    assert dist.all_reduce(t) is t and np.array_equal(xn.backend.to_numpy(t.data), [3.0, 6.0])
    m = dist.all_reduce(xn.backend.as_array([r + 1.0, -r], dtype="float64"), op="mean")
    assert np.array_equal(xn.backend.to_numpy(m), [1.5, -0.5])
    for op, want in (("max", [2.0, 0.0]), ("min", [1.0, -1.0])):
        got = dist.all_reduce(xn.backend.as_array([r + 1.0, -r], dtype="float64"), op=op)
        assert np.array_equal(xn.backend.to_numpy(got), want), (op, got)
    b = dist.broadcast(xn.tensor(np.full((2, 2), 10.0 + r), dtype="float32"), src=1)
    assert np.array_equal(xn.backend.to_numpy(b.data), np.full((2, 2), 11.0, np.float32))
    assert str(b.data.dtype).endswith("float32")
    parts = dist.all_gather(xn.tensor(np.arange(3) + 10 * r, dtype="int64"))
    assert [xn.backend.to_numpy(p.data).tolist() for p in parts] == [[0, 1, 2], [10, 11, 12]]
    try:
        dist.all_reduce(xn.backend.as_array([1, 2]), op="mean")
        raise AssertionError("mean of ints did not raise")
    except TypeError:
        pass
    # dropout: one stream per rank (the default generators are seeded alike)
    xn.manual_seed(0)
    mask = nn.functional.dropout(xn.tensor(np.ones(64), dtype="float64"), 0.5, True)
    parts = gathered(xn.backend.to_numpy(mask.data))
    assert not np.array_equal(parts[0], parts[1]), "dropout masks are the same on both ranks"


def equivalence():
    """2 ranks x batch B == one process accumulating the two micro-batches (bitwise), and
    == one process with batch 2B (rtol 1e-12, float64)."""
    X, y = data()
    r = dist.get_rank()
    model = mlp()
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.0005)  # several buckets
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = DataLoader(ArrayDataset(X, y), batch_size=B_PER_RANK, shuffle=True, seed=3, num_replicas=2, rank=r)
    # references, computed on every rank in one process
    ref_acc, ref_big = mlp(), mlp()
    opt_acc = optim.SGD(ref_acc.parameters(), lr=0.1, momentum=0.9)
    opt_big = optim.SGD(ref_big.parameters(), lr=0.1, momentum=0.9)
    shards = [DataLoader(ArrayDataset(X, y), batch_size=B_PER_RANK, shuffle=True, seed=3, num_replicas=2, rank=k)
              for k in range(2)]
    big = DataLoader(ArrayDataset(X, y), batch_size=2 * B_PER_RANK, shuffle=True, seed=3)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(2):
        for (xb, yb), (x0, y0), (x1, y1), (xB, yB) in zip(loader, *shards, big):
            opt.zero_grad()
            loss_fn(ddp(xb), yb).backward()
            opt.step()
            opt_acc.zero_grad()
            for xm, ym in ((x0, y0), (x1, y1)):
                (loss_fn(ref_acc(xm), ym) * 0.5).backward()
            opt_acc.step()
            opt_big.zero_grad()
            loss_fn(ref_big(xB), yB).backward()
            opt_big.step()
    assert np.array_equal(flat(model), flat(ref_acc)), "DDP differs from accumulating the two micro-batches"
    np.testing.assert_allclose(flat(model), flat(ref_big), rtol=1e-12, atol=0)
    same_on_every_rank(flat(model), "DDP weights")


def unused_and_no_sync():
    """A parameter unused on one rank counts as zeros; no_sync accumulates locally."""
    X, y = data()
    r = dist.get_rank()
    model = mlp()
    ddp = dist.DistributedDataParallel(model)
    last = list(model.parameters())[-1]
    out = ddp(xn.tensor(X[r * 4:(r + 1) * 4]))
    hidden = out if r == 0 else out.detach()
    (hidden.sum() + (list(model.parameters())[0] * 0).sum()).backward()  # rank 1: the last layer gets none
    g = xn.backend.to_numpy(last.grad.data)
    np.testing.assert_allclose(g, np.full(3, 4.0 / 2), rtol=0)  # (4 + 0) / 2
    # no_sync: the first backward stays local, the second averages the sum
    model.zero_grad()
    ref = mlp()
    loss_fn = nn.CrossEntropyLoss()
    micro = [(X[k * 4:(k + 1) * 4], y[k * 4:(k + 1) * 4]) for k in range(4)]  # rank r: micro[2r], micro[2r+1]
    with ddp.no_sync():
        loss_fn(ddp(xn.tensor(micro[2 * r][0])), xn.tensor(micro[2 * r][1])).backward()
    local = xn.backend.to_numpy(model[0].weight.grad.data).copy()
    parts = gathered(local)
    assert not np.array_equal(parts[0], parts[1]), "no_sync() communicated"
    loss_fn(ddp(xn.tensor(micro[2 * r + 1][0])), xn.tensor(micro[2 * r + 1][1])).backward()
    for xm, ym in micro:
        (loss_fn(ref(xn.tensor(xm)), xn.tensor(ym)) * 0.5).backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(xn.backend.to_numpy(p.grad.data), xn.backend.to_numpy(q.grad.data), rtol=1e-12)


def sync_batchnorm():
    X, y = data()
    r = dist.get_rank()
    model = dist.SyncBatchNorm.convert_sync_batchnorm(mlp(bn=True))
    assert type(model[1]).__name__ == "SyncBatchNorm"
    ddp = dist.DistributedDataParallel(model)
    ref = mlp(bn=True)
    loss_fn = nn.CrossEntropyLoss()
    idx = np.arange(r * 8, (r + 1) * 8)
    loss_fn(ddp(xn.tensor(X[idx])), xn.tensor(y[idx])).backward()
    loss_fn(ref(xn.tensor(X[:16])), xn.tensor(y[:16])).backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(xn.backend.to_numpy(p.grad.data), xn.backend.to_numpy(q.grad.data), rtol=1e-10,
                                   atol=1e-14)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(xn.backend.to_numpy(getattr(model[1], name).data),
                                   xn.backend.to_numpy(getattr(ref[1], name).data), rtol=1e-12)


def loader_uneven():
    r = dist.get_rank()
    ds = ArrayDataset(np.arange(7.0))
    pad = DataLoader(ds, batch_size=2, shuffle=True, seed=5, num_replicas=2, rank=r)
    cut = DataLoader(ds, batch_size=2, shuffle=True, seed=5, num_replicas=2, rank=r, drop_last=True)
    assert len(pad) == 2 and len(cut) == 1
    mine = np.concatenate([xn.backend.to_numpy(b[0].data) for b in pad])
    parts = gathered(mine)
    assert sorted(set(np.concatenate(parts).tolist())) == list(range(7)) and len(mine) == 4
    # DDP training over the padded shards: every rank makes the same number of steps
    model = mlp()
    ddp = dist.DistributedDataParallel(model)
    opt = optim.SGD(model.parameters(), lr=0.1)
    X, y = data(13)
    for xb, yb in DataLoader(ArrayDataset(X, y), batch_size=3, shuffle=True, seed=0, num_replicas=2, rank=r):
        opt.zero_grad()
        nn.functional.cross_entropy(ddp(xb), yb).backward()
        opt.step()
    same_on_every_rank(flat(model), "weights after an uneven dataset")
    # resume mid-epoch: the state dict restores the rank's position
    pad.set_epoch(1)
    it = iter(pad)
    next(it)
    state = pad.state_dict()
    rest = [xn.backend.to_numpy(b[0].data) for b in it]
    again = DataLoader(ds, batch_size=2, shuffle=True, seed=5, num_replicas=2, rank=r)
    again.load_state_dict(state)
    assert all(np.array_equal(a, xn.backend.to_numpy(b[0].data)) for a, b in zip(rest, again))


def trainer():
    """The Trainer under the launcher: global logs, rank-0-only files, resume on every rank."""
    from xpnet.train import CSVLogger, EarlyStopping, ModelCheckpoint
    X, y = data(64)
    r = dist.get_rank()

    def make():
        model = mlp()
        return model, xn.Trainer(model, "cross_entropy", optim.Adam(model.parameters(), lr=0.01),
                                 metrics=["accuracy"], backend=BACKEND, verbose=2)

    model, t = make()
    h = t.fit(X, y, epochs=3, batch_size=8, seed=1, validation_data=(X[:20], y[:20]),
              callbacks=[ModelCheckpoint(OUT / f"best-{r}.safetensors", monitor="val_loss"),
                         CSVLogger(OUT / f"log-{r}.csv"), EarlyStopping(monitor="loss", patience=0)])
    assert isinstance(t._module, dist.DistributedDataParallel) and t.loader.num_replicas == 2
    assert len(t.loader) == 4  # 64 samples / 2 ranks / batch 8
    same_on_every_rank(flat(model), "Trainer weights")
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        same_on_every_rank(np.array(h.history[key]), f"logged {key}")
    ev = t.evaluate(X, y)
    same_on_every_rank(np.array([ev["loss"], ev["accuracy"]]), "evaluate()")
    t.save_checkpoint(OUT / "two.safetensors", epoch=t.epoch)
    assert (OUT / "two.safetensors").exists()  # every rank sees rank 0's file after the barrier
    # Trainer(accumulate=2), batch 4 per rank: no_sync on the first micro-batch; each update is
    # that of one process with batch 16 (2 ranks x 2 micro-batches x 4)
    acc_model = mlp()
    acc = xn.Trainer(acc_model, "cross_entropy", optim.SGD(acc_model.parameters(), lr=0.1), backend=BACKEND,
                     accumulate=2, verbose=0)
    acc.fit(X, y, epochs=2, batch_size=4, seed=2)
    ref = mlp()
    ref_opt = optim.SGD(ref.parameters(), lr=0.1)
    ref_loader = DataLoader(ArrayDataset(X, y), 16, shuffle=True, seed=2)
    for _ in range(2):
        for xb, yb in ref_loader:
            ref_opt.zero_grad()
            nn.functional.cross_entropy(ref(xb), yb).backward()
            ref_opt.step()
    np.testing.assert_allclose(flat(acc_model), flat(ref), rtol=1e-12, atol=1e-15)
    # resume: 2 epochs, checkpoint, a fresh trainer restores on every rank and runs the third
    m_a, a = make()
    a.fit(X, y, epochs=2, batch_size=8, seed=1)
    a.save_checkpoint(OUT / "resume.safetensors", epoch=a.epoch)
    m_b, b = make()
    b.restore(OUT / "resume.safetensors")
    b.fit(X, y, epochs=3, batch_size=8, seed=1, initial_epoch=b.epoch)
    m_c, c = make()
    c.fit(X, y, epochs=3, batch_size=8, seed=1)
    assert np.array_equal(flat(m_b), flat(m_c)), "resumed run differs from the uninterrupted one"
    # mid-epoch: BackupAndRestore saves rank 0's loader position every 3 steps; the job "dies" at
    # step 6 (of 12); a new fit restores it on every rank and ends where the uninterrupted run ends
    from xpnet.train import BackupAndRestore, LambdaCallback

    class Die(Exception):
        pass

    def die(batch, logs):
        if d.global_step == 6:
            raise Die

    m_d, d = make()
    backup = OUT / "backup"
    try:
        d.fit(X, y, epochs=3, batch_size=8, seed=1, callbacks=[BackupAndRestore(backup, save_freq=3),
                                                               LambdaCallback(on_train_batch_end=die)])
        raise AssertionError("not interrupted")
    except Die:
        pass
    m_e, e = make()
    e.fit(X, y, epochs=3, batch_size=8, seed=1, callbacks=[BackupAndRestore(backup, save_freq=3)])
    assert np.array_equal(flat(m_e), flat(m_c)), "run resumed mid-epoch differs from the uninterrupted one"


def cli():
    from xpnet import cli as xcli
    r = dist.get_rank()
    rc = xcli.main(["train", "--dataset", "iris", "--epochs", "2", "--batch-size", "16", "--out",
                    str(OUT / "cli"), "--verbose", "2", "--backend", BACKEND.name,
                    "--device", "cuda" if DEVICE else "auto"])
    assert rc == 0


def fail():
    """Rank 1 raises in the middle of training; rank 0 would wait in the next collective."""
    from xpnet.train import LambdaCallback
    X, y = data(64)
    model = mlp()
    t = xn.Trainer(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1), backend=BACKEND, verbose=0)

    def boom(batch, logs):
        if dist.get_rank() == 1 and batch == 1:
            raise RuntimeError("boom on rank 1")

    t.fit(X, y, epochs=1000, batch_size=4, callbacks=[LambdaCallback(on_train_batch_end=boom)])


SCENARIOS = {f.__name__: f for f in (collectives, equivalence, unused_and_no_sync, sync_batchnorm, loader_uneven,
                                     trainer, cli, fail)}

if __name__ == "__main__":
    xn.use(BACKEND)
    dist.init(BACKEND)
    assert dist.get_world_size() == 2, "run me under a launcher with 2 processes"
    for name in sys.argv[3:]:
        SCENARIOS[name]()
        (OUT / f"ok-{name}-{dist.get_rank()}").write_text("ok")
        dist.barrier()
