"""A training step on an accelerator reads nothing back to the host and copies nothing from it.

Exercised on NumPy with its device taken for a GPU (``device_name`` says ``cuda:0``), so the
accelerator paths run: deferred input checks, dropout masks made on the device, foreach.
Counted: reads back to the host (``backend.arrays._host_copy``, under every read) and arrays made
from host data (``asarray`` of non-arrays, ``full``), each a synchronization on a GPU."""

import numpy as np
import pytest

import xpnet as xn
from xpnet import backend as B
from xpnet import nn, optim
from xpnet.nn import functional as F


def _models():
    return {
        "mlp": (lambda: nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Dropout(0.2), nn.LayerNorm(16),
                                      nn.Linear(16, 16), nn.ELU(), nn.Linear(16, 3)), (6, 8), "float"),
        "cnn": (lambda: nn.Sequential(nn.Unflatten(1, (1, 8)), nn.Conv1d(1, 4, 3, padding=1), nn.BatchNorm1d(4),
                                      nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Dropout(0.1), nn.Linear(16, 3)),
                (6, 8), "float"),
        "gru": (lambda: nn.Sequential(nn.Embedding(10, 8), nn.GRU(8, 8, batch_first=True, dropout=0.0),
                                      _Last(), nn.Linear(8, 3)), (6, 5), "int"),
    }


class _Last(nn.Module):
    def forward(self, out):
        return out[0][:, -1, :]


@pytest.mark.parametrize("name", ["mlp", "cnn", "gru"])
def test_a_training_step_does_not_synchronize(name, monkeypatch):
    make, shape, kind = _models()[name]
    rng = np.random.default_rng(0)
    with xn.using("numpy"):
        xn.manual_seed(0)
        model = make()
        x = xn.tensor(rng.normal(size=shape).astype(np.float32) if kind == "float" else rng.integers(0, 10, shape))
        y = xn.tensor(rng.integers(0, 3, shape[0]))
        opt = optim.AdamW(model.parameters(), lr=1e-3, foreach=True)

        def step():
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return loss

        step()  # first step: optimizer state and caches are made
        monkeypatch.setattr(B, "device_name", lambda d: "cuda:0")
        monkeypatch.setattr(B.select, "device_name", lambda d: "cuda:0")
        events = []
        xp = B.get_backend("numpy").xp
        real_copy, real_asarray, real_full = B._host_copy, xp.asarray, xp.full
        monkeypatch.setattr(B.arrays, "_host_copy", lambda a: events.append("read") or real_copy(a))
        # on NumPy host data and device arrays look alike: every asarray counts (the step needs none)
        monkeypatch.setattr(xp, "asarray", lambda a, *args, **kw: events.append(f"asarray of {type(a).__name__}")
                            or real_asarray(a, *args, **kw))
        monkeypatch.setattr(xp, "full", lambda *a, **kw: events.append("full") or real_full(*a, **kw))
        for _ in range(3):
            loss = step()
    B._pending_checks.clear()
    assert events == []
    assert np.isfinite(B.to_numpy(loss.data))
