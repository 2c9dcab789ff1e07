"""The `xpnet` command."""

import json
import subprocess
import sys

import pytest

from xpnet import cli


def test_train_digits_mlp_writes_its_outputs(tmp_path, capsys):
    result = cli.main(["train", "--epochs", "8", "--verbose", "2", "--out", str(tmp_path)])
    assert result == 0
    out = capsys.readouterr().out
    assert "training on numpy / cpu" in out or "Training on" in out
    assert "Test accuracy:" in out
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["test"]["accuracy"] >= 0.93
    for name in ("best.safetensors", "last.safetensors", "history.csv"):
        assert (tmp_path / name).stat().st_size > 0
    pytest.importorskip("matplotlib")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_unavailable_backend_is_one_clear_line(tmp_path, capsys):
    code = cli.main(["train", "--epochs", "1", "--backend", "cupy", "--out", str(tmp_path)])
    if code == 0:
        pytest.skip("cupy runs here")
    assert code == 2
    assert "xpnet train: " in capsys.readouterr().err


def test_help_explains_the_options():
    out = subprocess.run([sys.executable, "-m", "xpnet.cli", "train", "--help"], capture_output=True, text=True).stdout
    for option in ("--dataset", "--model", "--epochs", "--batch-size", "--lr", "--optimizer", "--backend",
                   "--device", "--seed", "--out"):
        assert option in out


def test_mnist_without_a_folder_says_what_to_pass(tmp_path):
    with pytest.raises(SystemExit, match="--data-dir"):
        cli.main(["train", "--dataset", "mnist", "--out", str(tmp_path)])
