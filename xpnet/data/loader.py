"""DataLoader: batches of a dataset, reshuffled every epoch, repeatable on every backend."""

from __future__ import annotations

import copy

import numpy as np

from .. import backend as B
from ..autograd.tensor import Tensor
from .dataset import ArrayDataset

__all__ = ["DataLoader", "default_collate"]


def _resolve_backend(backend):
    if backend is None or isinstance(backend, B.Backend):
        return backend
    return B.get_backend(backend)


class DataLoader:
    """Iterate over ``dataset`` in batches of xpnet Tensors, as in PyTorch.

    ``batch_size=None`` gives the whole set as one batch (batch gradient
    descent), ``1`` one sample per step (SGD), ``n`` mini-batches of ``n``
    (the last one smaller unless ``drop_last``).  One pass of ``for batch in
    loader`` (an epoch) visits every sample once; ``len(loader)`` is the
    number of batches.

    With ``shuffle=True`` the order is a permutation drawn on the host by a
    NumPy generator seeded with ``seed`` (drawn from xpnet's default generator
    when ``None``, so :func:`xpnet.manual_seed` governs it), so a seed gives
    the same batches on every backend; the generator advances once per epoch,
    so epochs differ but repeat run to run.  :meth:`state_dict` and
    :meth:`load_state_dict` save and restore the position (epoch, batch and
    generator state) so that a resumed run sees the same batches.

    Batches land on ``backend`` (a name or :class:`~xpnet.backend.Backend`;
    default: the current backend when iteration starts).  An
    :class:`ArrayDataset` is moved there once and each batch is one
    ``xp.take`` per array (a slice when not shuffling); it yields a tuple with
    one Tensor per array.  Any other dataset is indexed sample by sample and
    the samples are stacked by :func:`default_collate`.

    ``num_replicas`` and ``rank`` shard the data for data-parallel training with
    ``torch.utils.data.DistributedSampler``'s semantics: each epoch one order is
    drawn from the shared ``seed`` (the same on every rank), padded by wrapping
    around to a multiple of ``num_replicas`` (with ``drop_last``: cut to one),
    and rank ``r`` takes ``order[r::num_replicas]``; every rank then has the same
    number of batches, and W ranks with batch B see at each step the samples that
    one process with batch W*B sees.  ``set_epoch`` and the state dict work per
    rank.  The Trainer sets both under a launcher.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None, backend=None,
                 num_replicas=None, rank=None):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader needs a dataset with __len__ and __getitem__, got "
                            f"{type(dataset).__name__}: wrap arrays as ArrayDataset(X, y)")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size={batch_size!r}: expected a positive int, "
                             "or None for the whole dataset in one batch")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"DataLoader: seed={seed!r}: expected a non-negative int or None")
        self.num_replicas, self.rank = _check_shard(num_replicas, rank)
        self.dataset = dataset
        self.batch_size = None if batch_size is None else int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.backend = _resolve_backend(backend)
        if seed is None:
            seed = int(B.default_generator().host.integers(2**63)) if self.shuffle else 0
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self.epoch = 0            # index of the epoch in progress, or of the next one
        self._progress = None     # (generator state at the epoch's start, batches yielded) during an epoch
        self._resume = None       # (generator state, first batch) set by load_state_dict
        self._on_device = None    # (backend, arrays) for an ArrayDataset

    # ------------------------------------------------------------------ sizes
    def _shard_size(self):
        """Samples per rank: len(dataset) without sharding."""
        n, w = len(self.dataset), self.num_replicas
        if w is None:
            return n
        return n // w if self.drop_last else -(-n // w)

    def _shard(self, order, n):
        """This rank's sample indices (a host array) from the epoch's ``order`` (None: in order)."""
        order = np.arange(n) if order is None else order
        w, m = self.num_replicas, self._shard_size()
        if n and m * w > n:  # pad by wrapping around (repeating as often as needed)
            order = np.resize(order, m * w)
        return order[: m * w][self.rank::w]

    def _sizes(self):
        n = self._shard_size()
        bs = n if self.batch_size is None else self.batch_size
        if n == 0:
            return n, max(bs, 1), 0
        return n, bs, (n // bs if self.drop_last else -(-n // bs))

    def __len__(self) -> int:
        return self._sizes()[2]

    # -------------------------------------------------------------- iteration
    def __iter__(self):
        n, bs, nb = self._sizes()
        if self._resume is not None:
            state, start = self._resume
            self._resume = None
            self._rng.bit_generator.state = state
        else:
            start = 0
        epoch_state = copy.deepcopy(self._rng.bit_generator.state)
        order = self._rng.permutation(len(self.dataset)) if self.shuffle else None  # drawn even when empty
        if self.num_replicas is not None:
            order = self._shard(order, len(self.dataset))
        b = self.backend or B.current_backend()
        self._progress = [epoch_state, start]
        if isinstance(self.dataset, ArrayDataset):
            batches = self._array_batches(b, order, n, bs, start, nb)
        else:
            batches = self._sample_batches(b, order, n, bs, start, nb)
        for k, batch in batches:
            self._progress[1] = k + 1
            yield batch
        self._progress = None
        self.epoch += 1

    def _array_batches(self, b, order, n, bs, start, nb):
        if self._on_device is None or self._on_device[0] is not b:
            self._on_device = (b, tuple(B.transfer(a, b) for a in self.dataset.arrays))
        arrays = self._on_device[1]
        xp = b.xp
        index = None if order is None else B.as_array(order, backend=b)  # int64; one copy per epoch
        for k in range(start, nb):
            lo, hi = k * bs, min((k + 1) * bs, n)
            if index is None:
                parts = tuple(a[lo:hi, ...] for a in arrays)
            else:
                idx = index[lo:hi]
                parts = tuple(xp.take(a, idx, axis=0) for a in arrays)
            yield k, tuple(Tensor(p) for p in parts)

    def _sample_batches(self, b, order, n, bs, start, nb):
        for k in range(start, nb):
            lo, hi = k * bs, min((k + 1) * bs, n)
            ids = range(lo, hi) if order is None else order[lo:hi]
            yield k, default_collate([self.dataset[int(i)] for i in ids], backend=b)

    # ----------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        """The loader's position: ``epoch``, ``batch`` (batches of that epoch
        already yielded) and the host generator's state at the epoch's start."""
        if self._progress is not None:
            state, batch = self._progress
        else:
            state, batch = self._rng.bit_generator.state, 0
        return {"seed": self.seed, "epoch": self.epoch, "batch": batch,
                "rng_state": copy.deepcopy(state), "num_samples": len(self.dataset),
                "batch_size": self.batch_size, "shuffle": self.shuffle, "drop_last": self.drop_last,
                **({} if self.num_replicas is None else {"num_replicas": self.num_replicas})}

    def set_epoch(self, epoch: int):
        """Stand at the start of ``epoch``: the next pass gives the order that a loader with
        the same seed gives in that epoch (so a run restarted at epoch k sees the same data)."""
        if epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be >= 0, got {epoch}")
        self._rng = np.random.default_rng(self.seed)
        n = len(self.dataset)
        for _ in range(epoch):
            if self.shuffle:
                self._rng.permutation(n)
        self.epoch, self._progress, self._resume = int(epoch), None, None

    def check_state_dict(self, state: dict):
        """Raise ValueError/KeyError/TypeError if :meth:`load_state_dict` would refuse ``state``;
        changes nothing."""
        name = "DataLoader.load_state_dict"
        if not isinstance(state, dict):
            raise TypeError(f"{name}: expected a dict from DataLoader.state_dict(), got {type(state).__name__}")
        missing = {"epoch", "batch", "rng_state"} - set(state)
        if missing:
            raise KeyError(f"{name}: missing keys {sorted(missing)}: expected a dict from DataLoader.state_dict()")
        for key in ("epoch", "batch", "seed"):
            if key in state and (type(state[key]) is not int or state[key] < 0):
                raise ValueError(f"{name}: {key} is {state[key]!r}: expected a whole number >= 0")
        # the position is the same on every rank (one order per epoch): rank 0's state resumes any rank
        for key in ("num_samples", "batch_size", "shuffle", "drop_last", "num_replicas"):
            mine = len(self.dataset) if key == "num_samples" else getattr(self, key)
            if key in state and state[key] != mine:
                raise ValueError(f"{name}: the saved loader had {key}={state[key]!r}, "
                                 f"this one has {key}={mine!r}: resuming would give different batches")
        if not 0 <= state["batch"] <= len(self):
            raise ValueError(f"{name}: batch {state['batch']} is out of range for {len(self)} batches per epoch")
        try:  # the generator's own checks, on a scratch generator
            type(self._rng.bit_generator)().state = copy.deepcopy(state["rng_state"])
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"{name}: invalid generator state ({type(e).__name__}: {e})") from None

    def load_state_dict(self, state: dict):
        """Continue from a :meth:`state_dict`: the next iteration yields the
        batches the saved loader would have yielded next.  Everything is checked
        first (:meth:`check_state_dict`); a refused state changes nothing."""
        self.check_state_dict(state)
        self.seed = int(state.get("seed", self.seed))
        self.epoch = int(state["epoch"])
        self._rng.bit_generator.state = copy.deepcopy(state["rng_state"])
        self._progress = None
        self._resume = (copy.deepcopy(state["rng_state"]), int(state["batch"]))

    def __repr__(self):
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, batches={len(self)})")


def _check_shard(num_replicas, rank):
    """(num_replicas, rank), checked: both None (no sharding), or 0 <= rank < num_replicas."""
    if num_replicas is None and rank is None:
        return None, None
    def _int(v):
        return not isinstance(v, bool) and isinstance(v, (int, np.integer))
    if not (_int(num_replicas) and _int(rank) and num_replicas >= 1 and 0 <= rank < num_replicas):
        raise ValueError(f"DataLoader: num_replicas={num_replicas!r}, rank={rank!r}: expected both None, or "
                         "ints with num_replicas >= 1 and 0 <= rank < num_replicas")
    return int(num_replicas), int(rank)


def default_collate(samples, backend=None):
    """Stack a list of samples into a batch of Tensors on ``backend``.

    Samples are arrays (any backend), Tensors or numbers, or tuples, lists or
    dicts of them (the structure is kept).  Python floats become float32 and
    ints int64; arrays keep their dtype.  Anything else (strings, ...) is
    returned as a list.
    """
    b = _resolve_backend(backend) or B.current_backend()
    first = samples[0]
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples], b) for k in first}
    if isinstance(first, (tuple, list)):
        sizes = {len(s) for s in samples}
        if len(sizes) > 1:
            raise ValueError(f"default_collate: samples have different numbers of fields {sorted(sizes)}: "
                             "expected every sample to have the same structure")
        fields = [default_collate(list(f), b) for f in zip(*samples)]
        return tuple(fields) if isinstance(first, tuple) else fields
    if isinstance(first, (bool, int, float)) and not isinstance(first, np.generic):
        return Tensor(B.as_array(list(samples), backend=b))
    if isinstance(first, Tensor) or isinstance(first, np.generic) or B.array_api_compat.is_array_api_obj(first):
        host = [B.to_numpy(s.data if isinstance(s, Tensor) else s) for s in samples]
        shapes = {h.shape for h in host}
        if len(shapes) > 1:
            raise ValueError(f"default_collate: samples have different shapes {sorted(shapes)}: "
                             "expected equal shapes to stack into a batch")
        return Tensor(B.transfer(np.stack(host), b))
    return list(samples)
