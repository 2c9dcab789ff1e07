"""Prints the Keras 3 reference values of tests/test_keras_habits.py (KERAS): run with Keras 3 installed,
``KERAS_BACKEND=jax python tests/reference/keras_callbacks.py`` (not part of the test suite)."""
import os, json
os.environ["KERAS_BACKEND"] = "jax"
import numpy as np, keras

def model():
    m = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    m.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="mse")
    return m

def run_es(values, **kw):
    m = model(); cb = keras.callbacks.EarlyStopping(monitor="val_loss", **kw); cb.set_model(m)
    cb.on_train_begin(); stopped = None
    for e, v in enumerate(values):
        m.set_weights([np.array([[float(e)]])])  # weight = epoch index
        cb.on_epoch_end(e, {"val_loss": v})
        if m.stop_training: stopped = e; break
    cb.on_train_end()
    return {"stopped": stopped, "weight": float(m.get_weights()[0][0, 0])}

def run_rlr(values, **kw):
    m = model(); cb = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", **kw); cb.set_model(m)
    cb.on_train_begin(); lrs = []
    for e, v in enumerate(values):
        cb.on_epoch_end(e, {"val_loss": v}); lrs.append(float(m.optimizer.learning_rate))
    return lrs

out = {}
flat = [1.0] + [2.0] * 11
out["es_restore_not_stopped"] = run_es([3, 2, 1, 1.5, 1.2], patience=5, restore_best_weights=True)
out["es_restore_stopped"] = run_es([3, 2, 2.5, 2.6, 2.7, 1], patience=2, restore_best_weights=True)
out["es_start_from_epoch"] = run_es([1, 2, 3, 4, 5, 6, 7], patience=1, start_from_epoch=3, restore_best_weights=True)
out["es_baseline"] = run_es([5, 4, 3, 2.5, 2.4, 1.0, 0.9], patience=3, baseline=2.0, restore_best_weights=True)
out["es_baseline_met"] = run_es([5, 1.5, 1.6, 1.7, 1.4, 1.8, 1.9, 2.0], patience=2, baseline=2.0)
out["es_patience0"] = run_es([1, 2, 3], patience=0)
out["es_min_delta"] = run_es([1.0, 0.95, 0.9, 0.85, 0.8], patience=2, min_delta=0.1, restore_best_weights=True)
out["rlr_cooldown"] = run_rlr(flat, patience=2, cooldown=1, factor=0.5)
out["rlr_no_cooldown"] = run_rlr(flat, patience=2, factor=0.5)
out["rlr_min_lr"] = run_rlr(flat, patience=1, cooldown=2, factor=0.1, min_lr=0.005)
out["rlr_improving"] = run_rlr([5, 4, 3.99995, 3.9999, 3, 3, 3, 3], patience=2, factor=0.5, min_delta=1e-4)
print(json.dumps(out))
