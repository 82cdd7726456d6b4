"""The deep averaging network (the one-to-one baseline of sequence classification)."""

import keras
import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.models import build_averaging_classifier


def _numpy_forward(model, tokens):
    """The module docstring's equations: masked mean of embeddings, ReLU dense, linear logits."""
    e = model.get_layer("embedding").get_weights()[0][tokens]  # [B, T, d]
    valid = (tokens != 0)[:, :, None].astype("float64")
    a = (e * valid).sum(1) / valid.sum(1)
    w1, b1 = model.get_layer("dense_1").get_weights()
    a = np.maximum(a @ w1 + b1, 0.0)
    w, b = model.get_layer("logits").get_weights()
    return a @ w + b


def test_forward_equals_the_equations_and_ignores_padding_and_order():
    keras.utils.set_random_seed(0)
    model = build_averaging_classifier(num_classes=3, vocab_size=9, embedding_dim=5, hidden_units=[4],
                                       dropout=0.5, word_dropout=0.3)
    tokens = np.array([[3, 1, 6, 0, 0], [8, 2, 2, 7, 5]], "int32")
    np.testing.assert_allclose(np.asarray(model(tokens)), _numpy_forward(model, tokens), rtol=1e-5, atol=1e-6)
    shuffled = np.array([[6, 3, 1, 0, 0, 0, 0]], "int32")  # order and trailing padding do not matter
    np.testing.assert_allclose(np.asarray(model(shuffled)), np.asarray(model(tokens[:1])), rtol=1e-5, atol=1e-6)


def test_learns_a_bag_of_words_task_and_reloads(tmp_path):
    rng = np.random.default_rng(0)

    def batch(n):
        # Label 1 when token 7 occurs, anywhere; lengths 2..8, right-padded.
        x = np.zeros((n, 8), "int32")
        y = rng.integers(0, 2, n).astype("int32")
        for i in range(n):
            length = rng.integers(2, 9)
            x[i, :length] = rng.integers(1, 7, length)
            if y[i]:
                x[i, rng.integers(0, length)] = 7
        return x, y

    keras.utils.set_random_seed(0)
    model = build_averaging_classifier(num_classes=2, vocab_size=8, embedding_dim=8, hidden_units=[16],
                                       dropout=0.0, word_dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(0.03),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = batch(1024)
    model.fit(x, y, batch_size=64, epochs=4, verbose=0)
    test_x, test_y = batch(256)
    assert np.mean(model.predict(test_x, verbose=0).argmax(-1) == test_y) > 0.95
    path = tmp_path / "dan.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(again(test_x)), np.asarray(model(test_x)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden_units": [128, 0]}, "model.hidden_units must be positive integers, got [128, 0]"),
        ({"activation": "relux"}, "model.activation='relux' is not a Keras activation"),
        ({"word_dropout": 1.0}, "word_dropout"),
        ({"vocab_size": 0}, "vocab_size"),
    ],
)
def test_bad_settings_are_one_clear_error(kwargs, message):
    args = {"num_classes": 2, "vocab_size": 10, **kwargs}
    with pytest.raises(ConfigError) as err:
        build_averaging_classifier(**args)
    assert message in str(err.value)
