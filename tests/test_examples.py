"""The worked examples of backpropagation, run as tests (numbers from the tutorial)."""

import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gradient_descent_iterates(tmp_path, capsys):
    path = load("gradient_descent").main(["--out", str(tmp_path)])
    xs = [x for x, _ in path[1:]]
    Js = [J for _, J in path[1:]]
    assert xs == pytest.approx([0.48, 0.192, 0.0768, 0.03072])
    assert Js == pytest.approx([0.2304, 0.036864, 0.005898, 0.000944], abs=1e-6)
    assert "step 4: x = 0.03072" in capsys.readouterr().out
    pytest.importorskip("matplotlib")
    assert (tmp_path / "gradient_descent.png").stat().st_size > 1000


def test_chain_rule_gradients_and_reaching_the_target(capsys):
    ex = load("chain_rule")
    assert ex.gradients(3.0, 4.0) == (162.0, 18.0, 63.0)
    steps = ex.main(["--target", "150"])
    w, b, z, dw, db = steps[-1]
    assert abs(z - 150) < 1e-5 and len(steps) <= 6
    assert steps[1][3] != 18.0  # the gradients were recomputed at the new point
    assert "z = 162, dz/dw = 18, dz/db = 63" in capsys.readouterr().out


def test_solve_sqrt_ln():
    steps = load("solve_with_derivative").main([])
    x = steps[-1][0]
    assert x == pytest.approx(9.6645, abs=1e-4)
    assert abs(x - 9.6653) < 1e-3  # the tutorial's rounded figure
    assert len(steps) < 10


def test_char_transformer_smoke(capsys):
    """The character-level Transformer example, tiny: the loss falls and it generates text."""
    losses, sample = load("char_transformer").main(
        ["--steps", "12", "--d-model", "16", "--heads", "2", "--layers", "1", "--context", "16", "--batch", "8",
         "--lr", "1e-2", "--generate", "10", "--log-every", "1"])
    assert len(losses) == 12 and all(l == l for _, l in losses)  # no NaN
    assert losses[-1][1] < losses[0][1] - 0.3  # from about ln(52) = 3.95
    assert sample.startswith("Shall I compare thee") and len(sample) == len("Shall I compare thee") + 10
    assert "--- sample ---" in capsys.readouterr().out
