"""trainer.remat: recomputed blocks give the gradients of the plain model (to
1e-6, dropout on), leave evaluation alone, and the trainer key runs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlab.errors import ConfigError
from seqlab.experiment import run
from seqlab.models import build_rnn_lm
from seqlab.models.transformer import build_transformer_lm
from seqlab.training.remat import rematerialize
from tests.e2e.helpers import all_runs, compose_cfg, store_client

TOKENS = np.random.default_rng(0).integers(0, 11, size=(4, 12)).astype("int32")
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _deep_lstm(stateful=True):
    # 3 fused LSTM layers, dropout between layers and inside the cell (the
    # recomputation must draw the masks the forward pass drew) and carried
    # states (it must start from the states the forward pass started from).
    cell = {"name": "lstm", "dropout": 0.2, "recurrent_dropout": 0.2}
    return build_rnn_lm(vocab_size=11, embedding_dim=8, hidden_size=16, num_layers=3, cell=cell, dropout=0.2,
                        stateful=stateful, batch_size=4 if stateful else None)


def _transformer_lm():
    return build_transformer_lm(vocab_size=11, max_length=12, d_model=16, num_heads=2, num_layers=2, dropout=0.1)


def _gradients(build, remat: bool, graph: bool, steps: int = 2):
    """Loss and gradients of ``steps`` training calls (the second one starts
    from the random and recurrent states the first left)."""
    keras.utils.set_random_seed(3)
    model = build()
    if remat:
        rematerialize(model)

    def step():
        with tf.GradientTape() as tape:
            loss = LOSS(TOKENS, model(TOKENS, training=True))
        return loss, tape.gradient(loss, model.trainable_variables)

    if graph:
        step = tf.function(step)

    results = []
    for _ in range(steps):
        loss, grads = step()
        results.append((float(loss), [np.asarray(tf.convert_to_tensor(g)) for g in grads]))
    return results, model


# Graph mode is how fit runs (and how the variable reads and writes are
# ordered there); the recurrent stack runs eagerly here only because tracing
# its fused kernels twice costs ~20 s (a remat fit of one runs in the e2e test).
@pytest.mark.parametrize("build, graph", [(_deep_lstm, False), (_transformer_lm, True)],
                         ids=["stateful_lstm_3_layers_eager", "transformer_lm_graph"])
def test_remat_gradients_equal_the_plain_ones(build, graph):
    plain, plain_model = _gradients(build, remat=False, graph=graph)
    remat, remat_model = _gradients(build, remat=True, graph=graph)
    for (loss_a, grads_a), (loss_b, grads_b) in zip(plain, remat):
        assert loss_a == pytest.approx(loss_b, abs=1e-6)
        assert len(grads_a) == len(grads_b) == len(plain_model.trainable_variables)
        for a, b in zip(grads_a, grads_b):
            np.testing.assert_allclose(b, a, atol=1e-6, rtol=1e-6)
    # the non-trainable states (seeds, carried RNN states) end where the plain model's do
    for a, b in zip(plain_model.non_trainable_variables, remat_model.non_trainable_variables):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))


def test_remat_wraps_outermost_blocks_once_and_leaves_inference_alone():
    model = _deep_lstm(stateful=False)
    before = np.asarray(model(TOKENS, training=False))
    assert rematerialize(model) == ["rnn_0", "rnn_1", "rnn_2"]
    assert rematerialize(model) == ["rnn_0", "rnn_1", "rnn_2"]  # idempotent
    np.testing.assert_allclose(np.asarray(model(TOKENS, training=False)), before, atol=1e-6)
    bidirectional = keras.Sequential([
        keras.Input((5, 3)),
        keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True), name="bi"),
    ])
    assert rematerialize(bidirectional) == ["bi"]  # not its two directions again


def test_a_model_without_blocks_is_a_clear_error():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="mlp")
    with pytest.raises(ConfigError, match="trainer.remat=true: model 'mlp' has no recurrent"):
        rematerialize(model)


@pytest.mark.parametrize("override, key", [
    ("trainer.remat=maybe", "trainer.remat"),
    ("optimizer.learning_rate=0", "optimizer.learning_rate"),
    ("optimizer.learning_rate=-0.001", "optimizer.learning_rate"),
])
def test_bad_remat_and_learning_rate_fail_before_a_run_opens(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key):
        run(compose_cfg(tmp_path, override), output_dir=tmp_path / "out")
    assert all_runs(store_client(tmp_path)) == []


# A remat run through the trainer: tests/data/test_curriculum.py's end-to-end run sets trainer.remat=true.
