"""build_rnn_lm's regularisation options: weight tying, locked dropout, uniform init, stateful."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlab.errors import ConfigError
from seqlab.layers import LockedDropout
from seqlab.models import build_rnn_lm


def test_tied_weights_are_one_variable_that_gets_gradient_from_both_uses():
    vocab, width = 17, 8
    tied = build_rnn_lm(vocab, width, width, tie_weights=True)
    untied = build_rnn_lm(vocab, width, width)
    # untied: embedding, 3 LSTM, Dense kernel + bias; tied: the Dense kernel is gone
    assert len(untied.trainable_variables) - len(tied.trainable_variables) == 1
    assert untied.count_params() - tied.count_params() == width * vocab
    (embedding,) = [v for v in tied.trainable_variables if v.path.startswith("embedding")]
    assert tuple(embedding.shape) == (vocab, width)

    tokens = np.array([[1, 2, 3, 4]], dtype="int32")
    targets = np.array([[2, 3, 4, 5]], dtype="int32")
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def grad(model, stop_input_side):
        with tf.GradientTape() as tape:
            x = model.get_layer("embedding")(tokens)
            if stop_input_side:
                x = tf.stop_gradient(x)
            for layer in model.layers[2:]:
                if layer.name == "logits":
                    x = layer(model.get_layer("embedding")(x, reverse=True))
                else:
                    x = layer(x)
            loss = loss_fn(targets, x)
        return tf.convert_to_tensor(tape.gradient(loss, embedding)).numpy()

    both = grad(tied, stop_input_side=False)
    output_only = grad(tied, stop_input_side=True)
    # The output use touches every row; the input use adds to the rows of the input tokens only.
    assert np.abs(output_only[10]).sum() > 0
    input_part = both - output_only
    assert np.abs(input_part[[1, 2, 3, 4]]).sum() > 0
    np.testing.assert_allclose(input_part[[0, 5, 6, 10]], 0.0, atol=1e-7)


def test_tied_model_logits_use_the_embedding_matrix_and_survive_save_load(tmp_path):
    model = build_rnn_lm(11, 6, 6, tie_weights=True, name="tied")
    emb = model.get_layer("embedding").embeddings.numpy()
    x = np.array([[1, 2, 3]], dtype="int32")
    logits = model(x).numpy()
    # Recompute the head by hand from the last hidden states.
    hidden = keras.Model(model.input, model.get_layer("rnn_0").output)(x).numpy()
    bias = model.get_layer("logits").bias.numpy()
    np.testing.assert_allclose(logits, hidden @ emb.T + bias, rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "tied.keras")
    again = keras.models.load_model(tmp_path / "tied.keras")
    np.testing.assert_allclose(again(x).numpy(), logits, rtol=1e-6)
    assert len(again.trainable_variables) == len(model.trainable_variables)


def test_tying_with_unequal_widths_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"tie_weights=true needs model.embedding_dim == model.hidden_size.*64.*128"):
        build_rnn_lm(50, 64, 128, tie_weights=True)


def test_locked_dropout_uses_one_mask_per_sequence_over_time():
    layer = LockedDropout(0.5, seed=3)
    x = np.ones((4, 9, 16), dtype="float32")
    y = layer(x, training=True).numpy()
    # Same mask at every time step; different across sequences; inverted scaling.
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1], y.shape))
    assert not np.array_equal(y[0, 0], y[1, 0])
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert 0.2 < (y == 0).mean() < 0.8
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)


def test_variational_dropout_and_rates_are_wired_into_the_model():
    model = build_rnn_lm(20, 8, 8, num_layers=2, dropout=0.3, embedding_dropout=0.1,
                         output_dropout=0.4, variational_dropout=True)
    rates = {layer.name: layer.rate for layer in model.layers if isinstance(layer, LockedDropout)}
    assert rates == {"dropout_0": 0.1, "dropout_1": 0.3, "dropout_out": 0.4}
    plain = build_rnn_lm(20, 8, 8, num_layers=2, dropout=0.3)
    assert {layer.name for layer in plain.layers if isinstance(layer, keras.layers.Dropout)} == {
        "dropout_0", "dropout_1", "dropout_out"}
    with pytest.raises(ConfigError, match="model.output_dropout must be in"):
        build_rnn_lm(20, 8, 8, output_dropout=1.0)


def test_init_scale_makes_every_weight_uniform_in_range():
    model = build_rnn_lm(300, 40, 40, num_layers=2, init_scale=0.05, cell={"name": "lstm", "unit_forget_bias": False})
    for w in model.weights:
        v = w.numpy()
        if w.path.endswith("lstm_cell/bias"):
            np.testing.assert_array_equal(v, 0.0)  # forget bias 0
            continue
        assert np.abs(v).max() <= 0.05
        assert np.abs(v).max() > 0.04, w.path  # really spread over the range
        assert abs(v.mean()) < 0.01


def test_stateful_model_has_a_fixed_batch_and_needs_a_batch_size():
    model = build_rnn_lm(10, 4, 4, stateful=True, batch_size=3)
    assert model.input_shape == (3, None)
    assert all(getattr(layer, "stateful", False) for layer in model.layers if layer.name.startswith("rnn"))
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        build_rnn_lm(10, 4, 4, stateful=True)
