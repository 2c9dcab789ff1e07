"""Progress output on a terminal: a tqdm bar per epoch (xpnet.train.progress).

The other tests run without a terminal and so see only the plain lines (test_train.py); here
stdout claims to be a terminal, so the calls xpnet makes into tqdm run (and ci/floors.sh runs
them on tqdm's declared floor)."""

import sys

import numpy as np
import pytest

import xpnet as xn
from xpnet import nn, optim
from xpnet.train.progress import Progress


def test_progress_draws_a_tqdm_bar_on_a_terminal(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    p = Progress(verbose=1, epochs=2)
    p.start_epoch(0, n_batches=4, start=1)
    assert p.bar is not None, "on a terminal verbose=1 draws a tqdm bar"
    for step in (2, 3, 4):
        p.update(step, loss=0.5, seconds=0.01)
    assert p.bar.n == 4
    p.end_epoch({"loss": 0.25, "accuracy": 0.875}, seconds=0.1)
    assert p.bar is None
    captured = capsys.readouterr()
    assert "Epoch 1/2" in captured.err and "4/4" in captured.err
    assert "loss: 0.25 - accuracy: 0.875" in captured.out, "the whole end-of-epoch line follows the bar"
    assert "Epoch 1/2 -" not in captured.out, "the bar replaces the plain line"


def test_fit_on_a_terminal_uses_the_bar(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    with xn.using("numpy"):
        xn.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
        tr = xn.Trainer(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1), verbose=1)
        h = tr.fit(X, y, epochs=2, batch_size=8)
    err = capsys.readouterr().err
    assert len(h.history["loss"]) == 2
    assert "Epoch 2/2" in err and "4/4" in err and "loss:" in err
