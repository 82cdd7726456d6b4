"""Recorded gradient norms vs tf.GradientTape, and what clipping does to the update."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlab.diagnostics import GradientNormMonitor, GradientNormRecorder
from seqlab.models.rnn_sequence import build_rnn_regressor


def _model_and_batch(seed=0, cell="lstm"):
    keras.utils.set_random_seed(seed)
    model = build_rnn_regressor(input_dim=2, hidden_size=6, cell=cell)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, 7, 2)).astype("float32")
    y = (3.0 + rng.normal(size=(8, 1))).astype("float32")  # far from 0: large gradients
    return model, x, y


def _tape_grads(model, x, y):
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(y, model(x, training=True))
    return model.trainable_variables, tape.gradient(loss, model.trainable_variables)


@pytest.mark.parametrize("cell", ["simple_rnn", "gru"])
def test_per_layer_and_global_norms_equal_tape_gradients(cell):
    model, x, y = _model_and_batch(cell=cell)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    variables, grads = _tape_grads(model, x, y)  # same weights, same batch, before the step
    want_groups = {}
    for v, g in zip(variables, grads, strict=True):
        group = v.path.split("/")[0]
        want_groups[group] = want_groups.get(group, 0.0) + float(np.sum(np.square(g.numpy())))
    monitor = GradientNormMonitor(every_n_steps=1)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, callbacks=[monitor], verbose=0)
    step, logged = monitor.history[0]
    assert step == 1
    assert set(want_groups) == {"rnn_0", "output"}
    for group, sq in want_groups.items():
        np.testing.assert_allclose(logged[f"grad_norm/{group}"], np.sqrt(sq), rtol=1e-5)
    want_global = np.sqrt(sum(want_groups.values()))
    np.testing.assert_allclose(logged["grad_norm/global"], want_global, rtol=1e-5)
    # no clipping configured: the update uses the raw gradient
    np.testing.assert_allclose(logged["grad_norm/global_clipped"], want_global, rtol=1e-5)
    assert logged["grad_norm/clipped_fraction"] == 0.0


def _flat(model):
    return np.concatenate([np.ravel(v.numpy()) for v in model.trainable_variables])


@pytest.mark.parametrize("clipnorm", [None, 0.05])
def test_clipping_bounds_the_applied_update(clipnorm):
    model, x, y = _model_and_batch(seed=1)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0, global_clipnorm=clipnorm), loss="mse")
    _, grads = _tape_grads(model, x, y)
    raw = float(np.sqrt(sum(np.sum(np.square(g.numpy())) for g in grads)))
    before = _flat(model)
    monitor = GradientNormMonitor(every_n_steps=1)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, callbacks=[monitor], verbose=0)
    update = float(np.linalg.norm(_flat(model) - before))  # SGD, lr 1: ||delta theta|| = ||applied grad||
    logged = monitor.history[0][1]
    np.testing.assert_allclose(logged["grad_norm/global"], raw, rtol=1e-5)
    np.testing.assert_allclose(logged["grad_norm/global_clipped"], update, rtol=1e-4)
    if clipnorm is None:
        np.testing.assert_allclose(update, raw, rtol=1e-4)
        assert logged["grad_norm/clipped_fraction"] == 0.0
    else:
        assert raw > 10 * clipnorm  # the case where clipping acts
        assert update <= clipnorm * (1 + 1e-5)
        np.testing.assert_allclose(update, clipnorm, rtol=1e-4)
        assert logged["grad_norm/clipped_fraction"] == 1.0


def test_clipped_fraction_counts_steps_since_last_log():
    model, x, y = _model_and_batch(seed=2, cell="simple_rnn")
    # threshold between the norms of the two batches: one of every two steps is clipped
    x2, y2 = x * 0.0, np.zeros_like(y)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0, global_clipnorm=1e-3), loss="mse")
    recorder = GradientNormRecorder(model.optimizer, model.trainable_variables)
    with recorder:
        model.make_train_function(force=True)
        for xb, yb in [(x, y), (x2, y2), (x, y), (x2, y2)]:
            model.train_on_batch(xb, yb)
        out = recorder.read()
    assert out["grad_norm/clipped_fraction"] == 0.5
    assert out["grad_norm/global"] == pytest.approx(0.0, abs=1e-6)  # last batch: zero target, zero input -> only bias grad 0
    assert recorder.read()["grad_norm/clipped_fraction"] == 0.0  # reset after a read
