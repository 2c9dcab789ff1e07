"""Resume across processes: N epochs, save, a NEW process loads and trains N more epochs
= 2N epochs straight, bitwise on the CPU for a fixed seed."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("safetensors")

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import xpnet as xn
    from xpnet import nn, optim
    from xpnet.data import make_moons
    from xpnet.train import ModelCheckpoint

    epochs, resume_from, save_to, weights_out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    X, y = make_moons(200, noise=0.2, seed=0)
    xn.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)
    trainer = xn.Trainer(model, "cross_entropy", opt, scheduler=sched, backend="numpy", verbose=0)
    if resume_from != "-":
        trainer.restore(resume_from)
    trainer.fit(X, y, epochs=epochs, batch_size=32, seed=1, initial_epoch=trainer.epoch,
                callbacks=[ModelCheckpoint(save_to, monitor="loss")] if save_to != "-" else [])
    np.savez(weights_out, *[p.numpy() for p in model.parameters()])
""")


def run(tmp_path, *args):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    subprocess.run([sys.executable, str(script), *map(str, args)], check=True, capture_output=True, text=True)


def test_n_epochs_then_n_more_in_a_new_process_equals_2n_straight(tmp_path):
    ck = tmp_path / "ck.safetensors"
    run(tmp_path, 3, "-", ck, tmp_path / "first.npz")        # epochs 1-3, checkpoint after each
    run(tmp_path, 6, ck, "-", tmp_path / "resumed.npz")      # a new process: load, epochs 4-6
    run(tmp_path, 6, "-", "-", tmp_path / "straight.npz")    # 6 epochs in one go
    resumed, straight = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "straight.npz")
    first = np.load(tmp_path / "first.npz")
    for k in straight.files:
        np.testing.assert_array_equal(resumed[k], straight[k])
    assert any(not np.array_equal(first[k], straight[k]) for k in straight.files)
