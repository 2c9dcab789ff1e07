"""xpnet.distributed: the single-process API here, and real 2-process jobs under both launchers
(``mpiexec -n 2 python -m mpi4py`` for NumPy and array-api-strict, ``python -m torch.distributed.run
--nproc_per_node 2`` for torch) running tests/distributed_worker.py."""

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import xpnet as xn
import xpnet.distributed as dist
from xpnet import nn
from xpnet.autograd import register_backward_end_hook
from xpnet.data import ArrayDataset, DataLoader
from xpnet.distributed.launch import detect

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distributed_worker.py"
ALL = ["collectives", "equivalence", "unused_and_no_sync", "sync_batchnorm", "loader_uneven", "trainer", "cli"]


# ---------------------------------------------------------------- one process
def test_launcher_detection():
    assert detect({}).kind is None and detect({}).world_size == 1
    mpich = detect({"PMI_RANK": "1", "PMI_SIZE": "4", "MPI_LOCALRANKID": "1"})
    assert (mpich.kind, mpich.rank, mpich.world_size, mpich.local_rank) == ("mpi", 1, 4, 1)
    assert detect({"PMI_RANK": "0", "PMI_SIZE": "1"}).kind is None  # one task: no MPI needed
    ompi = detect({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_RANK": "3"})
    assert (ompi.kind, ompi.rank, ompi.world_size, ompi.local_rank) == ("mpi", 3, 8, 3)
    tr = detect({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0", "MASTER_ADDR": "h", "TORCHELASTIC_RUN_ID": "x",
                 "PMI_RANK": "0"})
    assert (tr.kind, tr.rank, tr.world_size, tr.local_rank) == ("torchrun", 2, 4, 0)


def test_single_process_collectives(bk, xp):
    eng = dist.init()
    assert dist.is_initialized() and dist.init() is eng
    assert (dist.get_rank(), dist.get_world_size(), dist.get_local_rank()) == (0, 1, 0)
    t = xn.tensor(np.array([1.0, 2.0]), dtype="float32", backend=bk)
    assert dist.all_reduce(t, op="mean") is t and np.array_equal(xn.backend.to_numpy(t.data), [1.0, 2.0])
    assert [xn.backend.to_numpy(p.data).tolist() for p in dist.all_gather(t)] == [[1.0, 2.0]]
    assert dist.broadcast(t) is t
    dist.barrier()
    with pytest.raises(ValueError, match="op='prod'"):
        dist.all_reduce(t, op="prod")
    with pytest.raises(TypeError, match="floating dtype"):
        dist.all_reduce(xp.asarray([1, 2], device=bk.device), op="mean")
    with pytest.raises(ValueError, match="src=1"):
        dist.broadcast(t, src=1)
    with pytest.raises(TypeError, match="Tensor or an array"):
        dist.all_reduce([1.0])


def test_backward_end_hook(bk):
    calls = []
    handle = register_backward_end_hook(lambda leaves: calls.append(leaves))
    try:
        w = xn.tensor(np.array([1.0, 2.0]), dtype="float64", backend=bk, requires_grad=True)
        unused = xn.tensor(np.array([1.0]), dtype="float64", backend=bk, requires_grad=True)
        (w * w).sum().backward()
        assert len(calls) == 1 and len(calls[0]) == 1 and calls[0][0] is w and unused.grad is None
        xn.autograd.grad((w * w).sum(), w)  # autograd.grad touches no .grad: no call
        assert len(calls) == 1
    finally:
        handle.remove()
    (w * w).sum().backward()
    assert len(calls) == 1
    with pytest.raises(TypeError, match="callable"):
        register_backward_end_hook(3)


def test_sharded_loader_is_a_slice_of_the_big_batch(bk):
    """W ranks x batch B see, at every step, the samples of one process with batch W*B."""
    X = np.arange(24.0)
    big = [xn.backend.to_numpy(b[0].data) for b in DataLoader(ArrayDataset(X), 6, shuffle=True, seed=4, backend=bk)]
    shards = [[xn.backend.to_numpy(b[0].data) for b in
               DataLoader(ArrayDataset(X), 2, shuffle=True, seed=4, num_replicas=3, rank=r, backend=bk)]
              for r in range(3)]
    for k, batch in enumerate(big):
        assert sorted(np.concatenate([s[k] for s in shards]).tolist()) == sorted(batch.tolist())
    # uneven: 7 samples on 2 ranks: padded by wrapping (4 each) or cut (3 each)
    for drop_last, per_rank in ((False, 4), (True, 3)):
        parts = [np.concatenate([xn.backend.to_numpy(b[0].data) for b in DataLoader(
            ArrayDataset(np.arange(7.0)), 3, shuffle=True, seed=1, num_replicas=2, rank=r, drop_last=drop_last,
            backend=bk)] or [np.zeros(0)]) for r in range(2)]
        assert [len(p) for p in parts] == [per_rank] * 2
        assert len(set(np.concatenate(parts).tolist())) == (7 if not drop_last else 6)
    for bad in ({"num_replicas": 2}, {"num_replicas": 2, "rank": 2}, {"num_replicas": 0, "rank": 0}):
        with pytest.raises(ValueError, match="num_replicas"):
            DataLoader(ArrayDataset(X), 2, **bad)
    # a saved position (rank 0's, in a checkpoint) resumes every rank; another world size does not
    saved = DataLoader(ArrayDataset(X), 2, shuffle=True, seed=4, num_replicas=3, rank=0, backend=bk)
    it = iter(saved)
    next(it)
    other = DataLoader(ArrayDataset(X), 2, shuffle=True, seed=4, num_replicas=3, rank=2, backend=bk)
    other.load_state_dict(saved.state_dict())
    assert [xn.backend.to_numpy(b[0].data).tolist() for b in other] == [s.tolist() for s in shards[2][1:]]
    with pytest.raises(ValueError, match="num_replicas"):
        DataLoader(ArrayDataset(X), 2, shuffle=True, num_replicas=2, rank=1).load_state_dict(saved.state_dict())


def test_ddp_and_sync_batchnorm_in_one_process(bk):
    xn.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3, dtype="float64", backend=bk), nn.BatchNorm1d(3, dtype="float64", backend=bk))
    ref = nn.Sequential(nn.Linear(4, 3, dtype="float64", backend=bk), nn.BatchNorm1d(3, dtype="float64", backend=bk))
    ref.load_state_dict(model.state_dict())
    sync = dist.SyncBatchNorm.convert_sync_batchnorm(model)
    assert type(sync[1]).__name__ == "SyncBatchNorm" and sync[1].weight is list(model.parameters())[2]
    ddp = dist.DistributedDataParallel(sync)
    assert list(ddp.state_dict())[0] == "module.0.weight"
    x = xn.tensor(np.random.default_rng(0).normal(size=(5, 4)), dtype="float64", backend=bk)
    (ddp(x) ** 2).sum().backward()
    (ref(x) ** 2).sum().backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(xn.backend.to_numpy(p.grad.data), xn.backend.to_numpy(q.grad.data), rtol=1e-12)
    with pytest.raises(TypeError, match="xpnet Module"):
        dist.DistributedDataParallel(lambda x: x)
    with pytest.raises(ValueError, match="bucket_cap_mb"):
        dist.DistributedDataParallel(ref, bucket_cap_mb=0)


def test_process_stream_changes_dropout_masks_only(bk):
    try:
        xn.manual_seed(0)
        a = xn.backend.to_numpy(xn.default_generator().bernoulli((64,), 0.5, backend=bk))
        xn.backend.set_process_stream(1)
        xn.manual_seed(0)
        b = xn.backend.to_numpy(xn.default_generator().bernoulli((64,), 0.5, backend=bk))
        assert not np.array_equal(a, b)
        with pytest.raises(ValueError, match="non-negative int"):
            xn.backend.set_process_stream(-1)
    finally:
        xn.backend.set_process_stream(0)


# ---------------------------------------------------------------- real launchers
def _have_mpi():
    if importlib.util.find_spec("mpi4py") is None or shutil.which("mpiexec") is None:
        pytest.skip("mpi4py and an mpiexec are not installed: pip install 'xpnet[mpi]'")


def _have_torch():
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (torch.distributed runs the torch engine)")


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        env.pop(k, None)
    return env


def _mpi(*args, m_mpi4py=True):
    return [shutil.which("mpiexec"), "-n", "2", sys.executable, *(["-m", "mpi4py"] if m_mpi4py else []),
            *map(str, args)]


def _torchrun(*args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            *map(str, args)]


def _launch(cmd, timeout=180):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return p, time.perf_counter() - t0


def _check_job(p, out, scenarios):
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    for name in scenarios:
        for r in (0, 1):
            assert (out / f"ok-{name}-{r}").exists(), f"{name} did not pass on rank {r}"
    if "trainer" in scenarios:  # rank 1 ran the same callbacks with its own file names: nothing written
        assert (out / "best-0.safetensors").exists() and (out / "log-0.csv").exists()
        assert not (out / "best-1.safetensors").exists() and not (out / "log-1.csv").exists()
        assert len((out / "log-0.csv").read_text().splitlines()) >= 2
    if "cli" in scenarios:
        assert (out / "cli" / "result.json").exists() and (out / "cli" / "last.safetensors").exists()
        assert p.stdout.count("Test accuracy of the last weights") == 1, "only rank 0 prints"


def test_mpi_numpy_two_ranks(tmp_path):
    _have_mpi()
    p, _ = _launch(_mpi(WORKER, "numpy", tmp_path, *ALL))
    _check_job(p, tmp_path, ALL)
    assert "rank 0 of 2, mpi" in p.stdout


def test_mpi_array_api_strict_two_ranks(tmp_path):
    """Arrays without a buffer of their own go through a host copy."""
    _have_mpi()
    pytest.importorskip("array_api_strict")
    scenarios = ["collectives", "equivalence", "sync_batchnorm"]
    p, _ = _launch(_mpi(WORKER, "array_api_strict", tmp_path, *scenarios))
    _check_job(p, tmp_path, scenarios)


def test_mpi_xpnet_train_command(tmp_path):
    _have_mpi()
    p, _ = _launch(_mpi("-m", "xpnet.cli", "train", "--dataset", "iris", "--epochs", "2", "--out", tmp_path,
                        "--verbose", "2"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("Test accuracy of the last weights") == 1 and "(rank 0 of 2, mpi" in p.stdout
    assert (tmp_path / "best.safetensors").exists() and (tmp_path / "history.csv").exists()


@pytest.mark.parametrize("m_mpi4py", [True, False], ids=["python -m mpi4py", "xpnet's own hook"])
def test_mpi_failing_rank_ends_the_job(tmp_path, m_mpi4py):
    _have_mpi()
    p, seconds = _launch(_mpi(WORKER, "numpy", tmp_path, "fail", m_mpi4py=m_mpi4py), timeout=120)
    assert p.returncode != 0 and "boom on rank 1" in p.stderr
    assert seconds < 60, f"the job took {seconds:.0f} s to end after a rank failed"


def test_torchrun_torch_two_ranks(tmp_path):
    _have_torch()
    p, _ = _launch(_torchrun(WORKER, "torch", tmp_path, *ALL), timeout=300)
    _check_job(p, tmp_path, ALL)
    assert "rank 0 of 2, torch.distributed" in p.stdout


def test_torchrun_failing_rank_ends_the_job(tmp_path):
    _have_torch()
    p, seconds = _launch(_torchrun(WORKER, "numpy", tmp_path, "fail"), timeout=180)
    assert p.returncode != 0 and "boom on rank 1" in p.stdout + p.stderr
    assert seconds < 90, f"the job took {seconds:.0f} s to end after a rank failed"
