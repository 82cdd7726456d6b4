"""trainer.precision: mixed bfloat16/float16 through the fused kernels and a whole run."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlab.errors import ConfigError
from seqlab.experiment import run
from seqlab.layers import GRUCell, LSTMCell, Recurrent, SimpleRNNCell
from seqlab.models import build_rnn_lm
from seqlab.training.precision import precision_policy
from tests.e2e.helpers import all_runs, compose_cfg, store_client

# Stated tolerance: bfloat16 keeps 8 mantissa bits (relative rounding 2^-9 ~ 0.002);
# outputs in (-1, 1) after 128 steps of bfloat16 state stay within 0.03 of float32
# (measured max ~0.012), and the error does not grow along the sequence.
OUTPUT_ATOL = 0.03


def _outputs_and_grads(cell_class, x, weights=None):
    layer = Recurrent(cell_class(32), return_sequences=True)
    layer(x[:, :2])
    if weights is not None:
        layer.set_weights(weights)
    xt = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = tf.cast(layer(xt), "float32")
        loss = tf.reduce_sum(y**2)
    return layer, y.numpy(), tape.gradient(loss, layer.trainable_weights)


@pytest.mark.parametrize("cell_class", [LSTMCell, GRUCell, SimpleRNNCell])
def test_fused_kernels_under_mixed_bfloat16_match_float32(cell_class):
    x = np.random.default_rng(0).normal(size=(4, 128, 8)).astype("float32")
    keras.utils.set_random_seed(0)
    ref, y32, g32 = _outputs_and_grads(cell_class, x)
    with precision_policy("mixed_bfloat16"):
        layer, y16, g16 = _outputs_and_grads(cell_class, x, ref.get_weights())
    assert layer.execution_path == "fast" and layer.compute_dtype == "bfloat16"
    assert layer.variable_dtype == "float32"  # the weights stay float32
    np.testing.assert_allclose(y16, y32, atol=OUTPUT_ATOL)
    # no drift: the last steps are no worse than the first ones
    assert np.abs(y16 - y32)[:, -16:].mean() < 2 * np.abs(y16 - y32)[:, :16].mean() + 1e-3
    for a, b in zip(g16, g32):
        a, b = np.asarray(tf.cast(a, "float32")), np.asarray(b)
        assert np.linalg.norm(a - b) <= 0.05 * np.linalg.norm(b)


def test_the_policy_is_set_for_the_block_and_restored():
    assert keras.config.dtype_policy().name == "float32"
    with precision_policy("mixed_float16"):
        model = build_rnn_lm(vocab_size=11, embedding_dim=8, hidden_size=8)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # float16 needs it
        assert model.get_layer("logits").compute_dtype == "float32"
        assert model(np.zeros((1, 3), "int32")).dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"


def test_bad_precision_fails_before_a_run_opens(tmp_path):
    with pytest.raises(ConfigError, match="trainer.precision must be one of float32, mixed_bfloat16, "
                                          "mixed_float16, got 'bf16'"):
        run(compose_cfg(tmp_path, "trainer.precision=bf16"), output_dir=tmp_path / "out")
    assert all_runs(store_client(tmp_path)) == []


@pytest.mark.slow
def test_a_mixed_bfloat16_run_trains_like_float32(tmp_path, data_dir):
    losses = {}
    for precision in ("float32", "mixed_bfloat16"):
        cfg = compose_cfg(tmp_path / precision, f"trainer.precision={precision}", "tracking.log_model=false",
                          "trainer.steps_per_epoch=12", "trainer.test=false")
        losses[precision] = run(cfg, output_dir=tmp_path / precision / "out")["val_loss"]
        assert keras.config.dtype_policy().name == "float32"  # nothing leaks into the next run
    (r,) = all_runs(store_client(tmp_path / "mixed_bfloat16"))
    assert r.data.params["trainer.precision"] == "mixed_bfloat16"
    # one short epoch from the same initial weights: the same loss to bfloat16 rounding
    assert losses["mixed_bfloat16"] == pytest.approx(losses["float32"], abs=0.05)
