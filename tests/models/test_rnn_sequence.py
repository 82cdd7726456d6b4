"""build_rnn_regressor / build_rnn_tagger vs a NumPy forward pass; cell options; saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.models.rnn_sequence import build_rnn_regressor, build_rnn_tagger


def _numpy_simple_rnn(x, cell):
    W, U, b = (np.asarray(v, np.float64) for v in (cell.kernel, cell.recurrent_kernel, cell.bias))
    h = np.zeros((x.shape[0], U.shape[0]))
    hs = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ W + h @ U + b)
        hs.append(h)
    return np.stack(hs, axis=1)


def test_regressor_is_dense_of_the_last_hidden_state():
    keras.utils.set_random_seed(0)
    model = build_rnn_regressor(input_dim=3, output_dim=2, hidden_size=5, num_layers=2, cell="simple_rnn")
    x = np.random.default_rng(0).normal(size=(4, 7, 3)).astype("float32")
    h = _numpy_simple_rnn(x.astype(np.float64), model.get_layer("rnn_0").cell)
    h = _numpy_simple_rnn(h, model.get_layer("rnn_1").cell)
    dense = model.get_layer("output")
    want = h[:, -1] @ np.asarray(dense.kernel, np.float64) + np.asarray(dense.bias, np.float64)
    got = model.predict(x, verbose=0)
    assert got.shape == (4, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_tagger_one_hot_equals_feature_input():
    keras.utils.set_random_seed(1)
    tokens = np.random.default_rng(1).integers(0, 6, size=(3, 9)).astype("int32")
    by_token = build_rnn_tagger(num_classes=4, vocab_size=6, hidden_size=5, cell="gru")
    by_feature = build_rnn_tagger(num_classes=4, input_dim=6, hidden_size=5, cell="gru")
    by_feature.set_weights(by_token.get_weights())
    logits = by_token.predict(tokens, verbose=0)
    assert logits.shape == (3, 9, 4)
    np.testing.assert_allclose(logits, by_feature.predict(np.eye(6, dtype="float32")[tokens], verbose=0),
                               rtol=1e-6, atol=1e-6)
    embedded = build_rnn_tagger(num_classes=4, vocab_size=6, embedding_dim=3, hidden_size=5)
    assert embedded.get_layer("embedding").output_dim == 3


def test_cell_options_reach_the_cell():
    model = build_rnn_regressor(
        input_dim=2, hidden_size=4, cell={"name": "simple_rnn", "recurrent_initializer": "identity"}
    )
    np.testing.assert_array_equal(np.asarray(model.get_layer("rnn_0").cell.recurrent_kernel), np.eye(4))
    for forget, want in ((True, 1.0), (False, 0.0)):
        model = build_rnn_regressor(input_dim=2, hidden_size=4, cell={"name": "lstm", "unit_forget_bias": forget})
        bias = np.asarray(model.get_layer("rnn_0").cell.bias)
        np.testing.assert_array_equal(bias[4:8], want)  # gate order i, f, c, o
        np.testing.assert_array_equal(bias[:4], 0.0)


def test_save_and_load_round_trip(tmp_path):
    x = np.random.default_rng(2).normal(size=(2, 5, 2)).astype("float32")
    model = build_rnn_regressor(input_dim=2, hidden_size=3, cell="lstm")
    model.save(tmp_path / "r.keras")
    restored = keras.saving.load_model(tmp_path / "r.keras")
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    tagger = build_rnn_tagger(num_classes=3, vocab_size=5, hidden_size=3)
    tagger.save(tmp_path / "t.keras")
    tokens = np.array([[1, 2, 3, 4]], "int32")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "t.keras").predict(tokens, verbose=0),
                               tagger.predict(tokens, verbose=0), rtol=1e-6)


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="hidden_size"):
        build_rnn_regressor(input_dim=2, hidden_size=0)
    with pytest.raises(ConfigError, match="exactly one of vocab_size"):
        build_rnn_tagger(num_classes=3, vocab_size=4, input_dim=4)
    with pytest.raises(ConfigError, match="unknown model.cell"):
        build_rnn_regressor(input_dim=2, cell="nope")
