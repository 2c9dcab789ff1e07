"""The `xpnet` command: a sound experiment (validation carved from the training data, test once),
result.json, argument checks, clear failures, Ctrl-C and --resume (bitwise), silence, threads."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import xpnet
from xpnet import cli

FAST = ["--hidden", "32", "--batch-size", "64"]


def run_cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "xpnet.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, **kw)


def test_train_digits_mlp_writes_its_outputs(tmp_path, capsys):
    result = cli.main(["train", "--epochs", "8", "--verbose", "2", "--out", str(tmp_path)])
    assert result == 0
    out = capsys.readouterr().out
    assert "training on numpy / cpu" in out or "Training on" in out
    assert "Test accuracy:" in out and "best weights (epoch" in out and "Test accuracy of the last weights" in out
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["test_best"]["accuracy"] >= 0.93 and "accuracy" in saved["test_last"]
    # validation carved from the training data: 1437 training digits -> 1293 + 144, the 360 test digits apart
    assert saved["samples"] == {"train": 1293, "val": 144, "test": 360}
    assert saved["best_epoch"] == 1 + int(np.argmax(saved["history"]["val_accuracy"]))
    assert saved["val_best"] == max(saved["history"]["val_accuracy"])
    assert saved["options"]["epochs"] == 8 and saved["options"]["val_split"] == 0.1 and saved["seed"] == 0
    assert saved["backend"] == "numpy" and saved["device"] == "numpy / cpu"
    assert saved["versions"]["xpnet"] == xpnet.__version__ and saved["versions"]["numpy"] == np.__version__
    assert saved["finished"] and not saved["interrupted"] and saved["wall_time_s"] > 0
    assert saved["blas_threads"].startswith(("capped at", "set by the user"))
    for name in ("best.safetensors", "last.safetensors", "history.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert not (tmp_path / "backup").exists()
    pytest.importorskip("matplotlib")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_the_validation_split_is_an_option(tmp_path):
    assert cli.main(["train", "--dataset", "iris", "--epochs", "1", "--val-split", "0.25", "--verbose", "0",
                     "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "result.json").read_text())["samples"] == {"train": 90, "val": 30, "test": 30}


BAD_ARGS = {
    "--epochs 0": (["--epochs", "0"], "--epochs: '0': expected a whole number > 0"),
    "--epochs -3": (["--epochs", "-3"], "--epochs"),
    "--epochs two": (["--epochs", "two"], "--epochs: 'two' is not a whole number"),
    "--batch-size 0": (["--batch-size", "0"], "--batch-size"),
    "--hidden 0": (["--hidden", "0"], "--hidden"),
    "--lr 0": (["--lr", "0"], "--lr: '0': expected a number > 0"),
    "--lr -1e-3": (["--lr", "-1e-3"], "--lr"),
    "--lr nan": (["--lr", "nan"], "--lr"),
    "--val-split 1": (["--val-split", "1"], "--val-split.*between 0 and 1"),
    "--backend None": (["--backend", "None"], "--backend: invalid choice: 'None'"),
    "--model cnn on iris": (["--model", "cnn", "--dataset", "iris"], "--model cnn needs image data"),
    "--dataset mnist without a folder": (["--dataset", "mnist"], "--data-dir"),
}


@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_arguments_are_usage_errors(case, tmp_path, capsys):
    extra, message = BAD_ARGS[case]
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as err:
        cli.main(["train", *extra, "--out", str(out)])
    assert err.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("usage:") and "Traceback" not in stderr
    assert __import__("re").search(message, stderr), stderr
    assert not out.exists()


def test_data_and_download_failures_are_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "a" / "b"
    assert cli.main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train-images-idx3-ubyte" in err and "--download" in err
    assert not (tmp_path / "a").exists()

    import urllib.error

    from xpnet.data import readers

    def offline(url, timeout=None):
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(readers.urllib.request, "urlopen", offline)
    assert cli.main(["train", "--dataset", "fashion", "--download", "--data-dir", str(tmp_path / "data"),
                     "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot download http" in err and "Name or service not known" in err
    assert not (tmp_path / "a").exists() and not any((tmp_path / "data").glob("*.part"))

    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + bytes(20))
    (tmp_path / "data" / "train-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01" + bytes(4))
    assert cli.main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train-images-idx3-ubyte: 8 extra bytes" in err
    assert not (tmp_path / "a").exists()


def test_unavailable_backend_is_one_clear_line(tmp_path, capsys):
    code = cli.main(["train", "--epochs", "1", "--backend", "cupy", "--out", str(tmp_path / "run")])
    if code == 0:
        pytest.skip("cupy runs here")
    assert code == 2
    assert "xpnet train: " in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_help_and_version():
    out = run_cli("train", "--help").stdout
    for option in ("--dataset", "--model", "--epochs", "--batch-size", "--lr", "--optimizer", "--backend",
                   "--device", "--seed", "--out", "--val-split", "--resume", "physical cores", "OMP_NUM_THREADS"):
        assert option in out, option
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"xpnet {xpnet.__version__}"


def test_verbose_0_prints_nothing(tmp_path):
    done = run_cli("train", "--dataset", "iris", "--epochs", "2", "--verbose", "0", "--out", tmp_path)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    assert json.loads((tmp_path / "result.json").read_text())["finished"]


def test_threads_are_capped_unless_the_user_set_them(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    for var in cli._THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    n = cli.physical_cores()
    assert 1 <= n <= os.cpu_count()
    with threadpoolctl.threadpool_limits(limits=None):  # restored afterwards
        assert cli.cap_threads() == f"capped at {n} (physical cores)"
        assert all(pool["num_threads"] <= n for pool in threadpoolctl.threadpool_info())
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert cli.cap_threads() == "set by the user: OPENBLAS_NUM_THREADS=1"


def _weights(path):
    from safetensors.numpy import load_file
    return {k: v for k, v in load_file(str(path)).items() if not k.startswith("extra.")}


def test_ctrl_c_then_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    """A real SIGINT in the third epoch; `--resume` continues from the backup; last.safetensors is
    bitwise that of a run never interrupted."""
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    args = ["train", "--epochs", "4", *FAST, "--verbose", "2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "xpnet.cli", *args, "--out", str(stopped)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("Epoch 2/"):
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert f"xpnet train --resume {stopped}" in err
    saved = json.loads((stopped / "result.json").read_text())
    assert saved["interrupted"] and not saved["finished"] and "test_best" not in saved
    assert (stopped / "backup" / "backup.safetensors").exists() and not (stopped / "last.safetensors").exists()

    again = run_cli("train", "--out", stopped, "--epochs", "4")   # a fresh run would overwrite it: refused
    assert again.returncode == 2 and f"--resume {stopped}" in again.stderr
    mixed = run_cli("train", "--resume", stopped, "--epochs", "9")
    assert mixed.returncode == 2 and "drop --epochs" in mixed.stderr

    resumed = run_cli("train", "--resume", stopped, "--verbose", "0", timeout=300)
    assert resumed.returncode == 0 and resumed.stdout == "", resumed.stderr
    assert run_cli(*args, "--out", straight, timeout=300).returncode == 0
    want, got = _weights(straight / "last.safetensors"), _weights(stopped / "last.safetensors")
    assert want.keys() == got.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    final = json.loads((stopped / "result.json").read_text())
    assert final["finished"] and final["resumed"] and not final["interrupted"]
    assert len(final["history"]["loss"]) == 4 and final["options"]["epochs"] == 4
    assert not (stopped / "backup").exists()
    nothing = run_cli("train", "--resume", stopped)
    assert nothing.returncode == 2 and "nothing to resume" in nothing.stderr
    assert run_cli("train", "--resume", tmp_path / "nowhere").returncode == 2
