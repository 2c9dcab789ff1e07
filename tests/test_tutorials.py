"""The tutorial examples (examples/*.py) run with small settings; their key numbers are checked."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(f"tutorial_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def has_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def assert_pngs(folder, *names):
    if has_matplotlib():
        for name in names:
            assert (folder / name).stat().st_size > 1000, name


# ------------------------------------------------------------------ basics

def test_basics_regression_epochs_batches_iterations(tmp_path, capsys):
    r = load("basics_regression").main(["--epochs", "20", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "200 samples, batch size 20 -> 10 iterations per epoch; 20 epochs -> 10 x 20 = 200 iterations" in out
    assert r["iterations_per_epoch"] == 10 and r["iterations"] == 200
    assert r["w"] == pytest.approx(2.0, abs=0.1) and r["b"] == pytest.approx(3.0, abs=0.1)
    assert r["losses"][-1] < 0.1 and r["losses"][-1] < r["losses"][0] / 2  # noise variance: 0.04
    assert_pngs(tmp_path, "basics_regression.png")


def test_basics_regression_last_batch_is_smaller(tmp_path):
    r = load("basics_regression").main(["--epochs", "3", "--batch-size", "32", "--out", str(tmp_path)])
    assert r["iterations_per_epoch"] == 7 and r["iterations"] == 21  # 200 = 6 x 32 + 8


# ------------------------------------------------------------------ gradient-descent variants

def test_gd_variants_all_converge_and_sgd_is_noisiest(tmp_path):
    r = load("gd_variants").main(["--samples", "100", "--epochs", "30", "--out", str(tmp_path)])
    batch, mini, sgd = r["batch"], r["mini-batch"], r["stochastic"]
    assert (batch["updates"], mini["updates"], sgd["updates"]) == (30, 4 * 30, 100 * 30)
    starts = {v["per_epoch"][0] for v in r.values()}
    assert len(starts) == 1  # the same initial weights
    for v in r.values():
        assert v["per_epoch"][-1] < 0.2 and v["per_epoch"][-1] < v["per_epoch"][0] / 20
        assert v["w"] == pytest.approx(2.0, abs=0.2) and v["b"] == pytest.approx(3.0, abs=0.2)
    assert sgd["roughness"] > mini["roughness"] > batch["roughness"]
    assert sgd["roughness"] > 3 * mini["roughness"]
    assert_pngs(tmp_path, "gd_variants.png")


# ------------------------------------------------------------------ learning rate

def test_learning_rate_choices_schedules_and_range_test(tmp_path, capsys):
    r = load("learning_rate").main(["--epochs", "8", "--steps", "60", "--out", str(tmp_path)])
    rates = r["rates"]
    small, right = rates["too small"]["losses"], rates["about right"]["losses"]
    osc, div = rates["too large: oscillates"], rates["too large: diverges"]["losses"]
    assert right[-1] < 0.02 < small[-1]
    assert small[-1] > 0.2 * small[0]                       # slow: most of the loss is left
    assert div[-1] > 1000 * div[0]                          # diverges
    errors = np.array(osc["biases"][:10]) - 3.0
    assert np.all(errors[1:] * errors[:-1] < 0)             # b jumps across 3 every step
    assert osc["losses"][-1] < osc["losses"][0]             # ... but still converges, slowly

    sched = r["schedules"]
    assert sched["constant"]["lr"] == [0.2] * 8
    assert sched["StepLR"]["lr"] == pytest.approx([0.2 * 0.3 ** (i // 2) for i in range(8)])  # step_size 8 // 4
    plateau = sched["ReduceLROnPlateau"]["lr"]
    assert plateau[-1] < 0.2 and all(b <= a for a, b in zip(plateau, plateau[1:]))
    for h in sched.values():
        assert h["val_accuracy"][-1] > 0.85

    lrs, losses, s = r["lrs"], r["losses"], r["suggested_lr"]
    assert len(lrs) == len(losses) <= 60 and all(b > a for a, b in zip(lrs, lrs[1:]))
    assert 1e-3 < s < 2.0 and lrs[0] <= s <= lrs[-1]
    assert min(losses) < losses[0] / 2
    assert f"suggested lr (steepest descent): {s:.3g}" in capsys.readouterr().out
    assert_pngs(tmp_path, "learning_rate_compare.png", "learning_rate_schedules.png", "lr_range_test.png")


# ------------------------------------------------------------------ losses

def test_loss_functions_mae_mse_sums(tmp_path, capsys):
    ex = load("loss_functions")
    r = ex.main(["--out", str(tmp_path)])
    assert r["sums"] == [(3.0, 5.0), (4.0, 8.0)]  # exactly
    assert ex.mae_mse([1.0, 2.0, 3.0], reduction="mean") == pytest.approx((1.0, 5 / 3))
    out = capsys.readouterr().out
    assert "MAE sum 3, MSE sum 5" in out and "MAE sum 4, MSE sum 8" in out
    assert "MAE x 1.33, MSE x 1.60" in out

    w, b = r["path"][-1]
    assert (w, b) == (pytest.approx(2.0, abs=0.1), pytest.approx(3.0, abs=0.1))
    assert r["path"][0] == (-1.0, -1.0) and len(r["path"]) == 41

    a, ce1, ce0 = r["cross_entropy"]
    np.testing.assert_allclose(ce1, -np.log(a), rtol=1e-12)
    np.testing.assert_allclose(ce0, -np.log(1 - a), rtol=1e-12)

    assert r["missing"] == []  # every loss class of xpnet.nn has a row
    for name, (value, check) in r["table"].items():
        assert value == pytest.approx(check, rel=1e-9, abs=1e-12), name
    assert r["table"]["MSELoss"][0] == pytest.approx(0.375) and r["table"]["HingeLoss"][0] == pytest.approx(1.125)
    assert r["table"]["CrossEntropyLoss"][0] == pytest.approx(r["table"]["NLLLoss"][0])
    assert r["table"]["BCELoss"][0] == pytest.approx(r["table"]["BCEWithLogitsLoss"][0])
    assert_pngs(tmp_path, "loss_surface.png", "cross_entropy.png")


# ------------------------------------------------------------------ activations

def test_activation_derivatives_softmax_and_vanishing_gradients(tmp_path):
    r = load("activations").main(["--out", str(tmp_path)])
    for name, (x, y, grad, formula) in r["derivatives"].items():
        np.testing.assert_allclose(grad, formula, rtol=0, atol=1e-12, err_msg=name)
    sig = r["derivatives"]["sigmoid"]
    assert sig[2][2] == pytest.approx(0.25) and np.all(sig[2] <= 0.25)  # at x = 0, the maximum
    assert r["derivatives"]["relu"][2].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    s, jac, formula = r["softmax"]
    assert s.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(jac, formula, atol=1e-12)
    norms = r["grad_norms"]
    assert len(norms["sigmoid"]) == len(norms["relu"]) == 10
    assert norms["sigmoid"][0] < 1e-3 * norms["relu"][0]           # vanished at the first layer
    assert norms["sigmoid"][0] < 1e-3 * norms["sigmoid"][-1]       # ... relative to the last
    assert norms["relu"][0] > 0.1 * norms["relu"][-1]              # ReLU keeps it
    assert_pngs(tmp_path, "activations.png", "vanishing_gradients.png")


# ------------------------------------------------------------------ backprop by hand

def test_hand_backprop_matches_backward(capsys):
    ex = load("hand_backprop")
    r = ex.main([])
    w7_hand, w7_auto = r["w7"]
    assert abs(w7_hand - w7_auto) < 1e-6
    h, y_hat = r["hand"]["h"], r["hand"]["y_hat"]
    assert w7_hand == pytest.approx((y_hat[0] - 0.0) * y_hat[0] * (1 - y_hat[0]) * h[0], rel=1e-12)
    assert r["max_difference"] < 1e-6
    assert r["hand"]["loss"] == pytest.approx(r["autograd"]["loss"], rel=1e-12)
    assert r["loss_after_step"] < r["hand"]["loss"]
    out = capsys.readouterr().out
    assert f"{w7_hand:.10f} by hand" in out and "from backward()" in out
    # the hand derivation is not a copy of autograd: other weights give other numbers, still matching
    other = ex.by_hand(w1=[[0.5, -0.5, 0.1], [0.3, 0.2, -0.4]])
    auto = ex.by_autograd(w1=[[0.5, -0.5, 0.1], [0.3, 0.2, -0.4]])
    assert ex.max_difference(other["dW1"], auto["dW1"]) < 1e-6
    assert abs(other["dW2"][0][0] - w7_hand) > 1e-3


# ------------------------------------------------------------------ digits CNN

def test_digits_cnn_reaches_90_percent(tmp_path, capsys):
    r = load("digits_cnn").main(["--epochs", "5", "--channels", "8", "--lr", "0.01", "--out", str(tmp_path)])
    assert r["accuracy"] >= 0.9
    cm = r["confusion"]
    assert cm.shape == (10, 10) and cm.sum() == 450
    assert np.trace(cm) / cm.sum() == pytest.approx(r["accuracy"])
    assert len(r["history"]["val_accuracy"]) == 5
    out = capsys.readouterr().out
    assert "training on numpy / cpu" in out or "Training on" in out
    assert_pngs(tmp_path, "digits_cnn_history.png", "digits_cnn_confusion.png")


def test_digits_cnn_backend_option_gives_the_same_numbers(tmp_path):
    from xpnet import backend as B
    if B.available_backends().get("array_api_strict") is not None:
        pytest.skip("array_api_strict is not installed")
    ex = load("digits_cnn")
    args = ["--epochs", "1", "--channels", "4", "--out", str(tmp_path)]
    a = ex.main(args + ["--backend", "numpy"])
    b = ex.main(args + ["--backend", "array_api_strict"])
    assert (a["backend"], b["backend"]) == ("numpy", "array_api_strict")
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    assert b["accuracy"] == pytest.approx(a["accuracy"], abs=1 / 450)


# ------------------------------------------------------------------ without matplotlib

@pytest.mark.parametrize("name, args", [
    ("basics_regression", ["--epochs", "2"]),
    ("loss_functions", []),
    ("activations", ["--depth", "3"]),
    ("digits_cnn", ["--epochs", "1", "--channels", "4"]),
])
def test_examples_run_without_matplotlib(name, args, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    load(name).main(args + ["--out", str(tmp_path)])
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.png"))
