"""backends/bench.py: the hand-written floor computes xpnet's gradients and updates, and the
benchmark's main runs and reports its table (tiny repeats; speed itself is not tested)."""

import dataclasses
import json
import pathlib
import sys

import numpy as np
import pytest

import xpnet as xn
from xpnet import backend as B
from xpnet.nn import functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "backends"))
import bench  # noqa: E402
import harness  # noqa: E402


@pytest.mark.parametrize("name", ["mlp_small", "cnn1d"])
def test_floor_gradients_match_xpnet(name):
    w = dataclasses.replace(bench.WORKLOADS[name], batch=5)
    X, Y = bench.make_data(w, "float64", seed=1)
    with xn.using("numpy"):
        xn.manual_seed(3)
        model = bench.xpnet_model(w, "float64")
        loss = F.cross_entropy(model(xn.tensor(X)), xn.tensor(Y))
        loss.backward()
    params = [np.array(v) for v in model.state_dict().values()]
    onehot = (Y[:, None] == np.arange(10)).astype(np.float64)
    if w.kind == "cnn":
        X = X.transpose(0, 2, 1)  # the floor's conv is channels-last
    floor_loss, grads = (bench.mlp_grads if w.kind == "mlp" else bench.cnn_grads)(np, params, X, onehot)
    np.testing.assert_allclose(floor_loss, B.to_numpy(loss.data), rtol=1e-12)
    for p, g in zip(model.parameters(), grads):
        assert g.shape == p.shape
        np.testing.assert_allclose(g, B.to_numpy(p.grad.data), rtol=1e-9, atol=1e-12)


def test_contenders_take_the_same_steps():
    """Three steps of Adam on the CNN: xpnet, torch (if installed) and the floor agree."""
    w = dataclasses.replace(bench.WORKLOADS["cnn1d"], batch=6)
    cs, skipped = bench.build(w, "cpu", B.get_backend("numpy"), dtype="float64")
    assert {"xpnet", "floor"} <= set(cs) and set(cs) | set(skipped) == {"xpnet", "torch", "floor"}
    before = [p.copy() for p in cs["floor"].params()]
    for c in cs.values():
        for _ in range(3):
            c.step()
    want = cs["floor"].params()
    assert max(float(np.abs(a - b).max()) for a, b in zip(want, before)) > 1e-4  # the floor did move
    for name, c in cs.items():
        for a, b in zip(c.params(), want):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=name)


def test_count_host_reads_counts_each_read_once():
    t = xn.tensor([2.0])
    original = B.to_numpy
    with bench.count_host_reads() as reads:
        float(t)  # __float__ -> item -> numpy -> to_numpy: one read
        B.to_numpy(t.data)
        _ = t * 3  # no read
    assert reads["n"] == 2
    assert B.to_numpy is original and float(t) == 2.0


def test_interleaved_syncs_before_each_clock_reading():
    calls = {"a": 0, "sync": 0}

    def sync():
        calls["sync"] += 1

    t = harness.interleaved({"a": lambda: calls.__setitem__("a", calls["a"] + 1)},
                            repeats=3, number=2, warmup=1, sync={"a": sync})
    assert calls == {"a": 7, "sync": 4} and t["a"] >= 0


def test_main_smoke(tmp_path, capsys):
    js, md = tmp_path / "b.json", tmp_path / "b.md"
    result = bench.main(["--device", "cpu", "--workloads", "mlp_small,mlp_wide", "--repeats", "2",
                         "--number", "1", "--json", str(js), "--markdown", str(md)])
    small, wide = result["rows"]
    assert wide["workload"] == "mlp_wide" and "GPU only" in wide["note"]
    assert small["workload"] == "mlp_small" and small["repeats"] == 2 and small["number"] == 1
    assert {"xpnet", "floor"} <= set(small["ms"]) and all(v > 0 for v in small["ms"].values())
    assert small["xpnet/floor"] == pytest.approx(small["ms"]["xpnet"] / small["ms"]["floor"])
    assert ("xpnet/torch" in small) == ("torch" in small["ms"])
    assert small["host_reads_per_step"] <= 1  # at most cross_entropy's label range check
    assert small["max_param_diff"] < 1e-5 and small["rss_growth_mb"] >= 0
    assert json.loads(js.read_text())["rows"][0]["ms"] == small["ms"]
    text = md.read_text()
    assert text.startswith("### Training step, cpu") and "| mlp_small |" in text and "| workload |" in text
    assert "mlp_wide" in capsys.readouterr().out


def test_unknown_workload_is_named():
    with pytest.raises(SystemExit, match="unknown workload.*nope.*expected"):
        bench.main(["--device", "cpu", "--workloads", "nope"])


def test_bench_optim_smoke(tmp_path, capsys):
    import bench_optim
    md = tmp_path / "o.md"
    bench_optim.main(["--backends", "numpy,array_api_strict", "--models", "mlp_small", "--repeats", "1",
                      "--markdown", str(md)])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "mlp_small (6)" in line]
    assert len(rows) == 2 * len(bench_optim.OPTIMIZERS), out
    assert md.read_text().count("| mlp_small (6) |") == len(rows)
    with pytest.raises(SystemExit):
        bench_optim.main(["--models", "nope"])
    assert "unknown model(s) nope" in capsys.readouterr().err
