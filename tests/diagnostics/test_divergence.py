"""Exploding detection: a non-finite gradient (loss still finite) or loss stops
training naming the step, keeps the last good checkpoint, and the tracked run
ends FAILED with the reason as a tag."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlab.diagnostics import GradientNormMonitor
from seqlab.errors import TrainingDiverged
from seqlab.training.callbacks import LastGoodCheckpoint, StopOnNonFinite
from seqlab.training.context import RunContext

# Set to 1.0 by the test at the poisoned step: the backward pass of PoisonGradient
# then returns NaN while the forward pass (and so the loss) stays finite.
_POISON = tf.Variable(0.0, trainable=False)


@keras.saving.register_keras_serializable(package="seqlab_tests")
class PoisonGradient(keras.layers.Layer):
    def call(self, x):
        @tf.custom_gradient
        def identity(v):
            def grad(dy):
                return dy * tf.where(_POISON > 0, tf.constant(np.nan, dy.dtype), tf.ones_like(dy))

            return tf.identity(v), grad

        return identity(x)


class _PoisonAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step, self.seen = step, 0

    def on_train_batch_begin(self, batch, logs=None):
        self.seen += 1
        _POISON.assign(1.0 if self.seen == self.step else 0.0)


class _WeightsAtEpochEnd(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.numpy().copy() for w in self.model.weights])


def test_nan_gradient_stops_naming_the_step_and_keeps_checkpoint(tmp_path):
    keras.utils.set_random_seed(0)
    from seqlab.layers import LastTimeStep

    inputs = keras.Input((5, 2))
    h = keras.layers.SimpleRNN(4, return_sequences=True, name="rnn_0")(inputs)
    h = PoisonGradient(name="poison")(h)
    out = keras.layers.Dense(1, name="output")(LastTimeStep(name="last_step")(h))
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 5, 2)).astype("float32")
    y = np.ones((16, 1), "float32")
    checkpoint = LastGoodCheckpoint()
    checkpoint.bind(RunContext(bundle=None, output_dir=tmp_path))
    monitor = GradientNormMonitor(every_n_steps=100)
    snapshots = _WeightsAtEpochEnd()
    losses = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: losses.append(float(logs["loss"])))
    # 4 steps per epoch; the gradient of step 10 (epoch 3) is NaN
    with pytest.raises(TrainingDiverged, match=r"gradient became non-finite .* at step 10\b"):
        model.fit(x, y, batch_size=4, epochs=5, shuffle=False, verbose=0,
                  callbacks=[_PoisonAt(10), record, StopOnNonFinite(), monitor, checkpoint, snapshots])
    _POISON.assign(0.0)
    # the loss of step 10 was finite: only the gradient check could name this step
    assert len(losses) == 10 and np.isfinite(losses).all()
    assert checkpoint.saved_epochs == [0, 1]
    restored = keras.saving.load_model(tmp_path / "checkpoints" / "last.keras")
    for got, want in zip(restored.weights, snapshots.weights[1], strict=True):
        np.testing.assert_array_equal(got.numpy(), want)
        assert np.isfinite(got.numpy()).all()
    # the live model took the NaN update: the checkpoint is what is left to use
    assert not all(np.isfinite(w.numpy()).all() for w in model.trainable_weights)


@pytest.mark.slow
def test_diverging_run_is_failed_with_reason(tmp_path):
    """A real composed run (experiment=adding) with a learning rate that blows up."""
    from hydra import compose, initialize_config_dir
    from mlflow.tracking import MlflowClient

    from seqlab.cli import CONFIG_DIR
    from seqlab.experiment import run

    overrides = [
        "experiment=adding",
        "model/cell=simple_rnn",
        "model.hidden_size=8",
        "data.length=20",
        "data.train_size=64",
        "data.validation_size=16",
        "data.test_size=16",
        "trainer.batch_size=16",
        "trainer.epochs=3",
        "trainer.clipnorm=null",
        "optimizer=sgd",
        "optimizer.learning_rate=1e12",
        "callbacks.grad_norms.every_n_steps=1",
        "callbacks.spectrum.every_n_steps=1",
        "tracking.experiment_name=diverge",
        f"tracking.store_dir={tmp_path / 'mlruns'}",
        "trainer.verbose=0",
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with pytest.raises(TrainingDiverged, match=r"at step \d+"):
        run(cfg, output_dir=tmp_path / "out")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("diverge")
    (r,) = client.search_runs([exp.experiment_id])
    assert r.info.status == "FAILED"
    assert "TrainingDiverged" in r.data.tags["failure_reason"]
    assert "step" in r.data.tags["failure_reason"]
    # the diagnostics logged before the failure stay
    history = client.get_metric_history(r.info.run_id, "grad_norm/global")
    assert history and history[0].step == 1
    assert "spectral_radius/rnn_0" in r.data.metrics
