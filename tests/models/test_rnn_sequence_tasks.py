"""The sequence-task builders learn tiny synthetic versions of their tasks, mask
padding, and match independent references (NumPy pooling, seasonal naive)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.data.baselines import seasonal_naive, targets
from seqlab.errors import ConfigError
from seqlab.models.rnn_sequence import (
    build_rnn_classifier,
    build_rnn_conditioned_lm,
    build_rnn_forecaster,
    build_rnn_tagger,
)

FAST = {"name": "gru", "compile_loops": False}


def _padded(rng, n, vocab_lo, vocab_hi, max_len=8):
    lengths = rng.integers(3, max_len + 1, size=n)
    x = np.zeros((n, max_len), "int32")
    for i, length in enumerate(lengths):
        x[i, :length] = rng.integers(vocab_lo, vocab_hi, size=length)
    return x, lengths


def test_classifier_separates_two_token_sets():
    rng = np.random.default_rng(0)
    a, _ = _padded(rng, 256, 1, 5)
    b, _ = _padded(rng, 256, 5, 9)
    x = np.concatenate([a, b])
    y = np.repeat([0, 1], 256).astype("int32")
    keras.utils.set_random_seed(0)
    model = build_rnn_classifier(num_classes=2, vocab_size=9, embedding_dim=8, hidden_size=8,
                                 cell=FAST, bidirectional=True, pooling="last")
    model.compile(optimizer=keras.optimizers.Adam(0.02),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=2, shuffle=True, verbose=0)
    test_a, _ = _padded(rng, 64, 1, 5)
    test_b, _ = _padded(rng, 64, 5, 9)
    pred = model.predict(np.concatenate([test_a, test_b]), verbose=0).argmax(-1)
    assert np.mean(pred == np.repeat([0, 1], 64)) > 0.95


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_classifier_pooling_ignores_padding(pooling):
    keras.utils.set_random_seed(1)
    model = build_rnn_classifier(num_classes=3, vocab_size=7, embedding_dim=4, hidden_size=5,
                                 cell="lstm", bidirectional=True, pooling=pooling)
    short = np.array([[3, 1, 6]], "int32")
    padded = np.array([[3, 1, 6, 0, 0, 0, 0]], "int32")
    np.testing.assert_allclose(np.asarray(model(padded)), np.asarray(model(short)), rtol=1e-5, atol=1e-6)


def test_word_dropout_drops_whole_tokens():
    model = build_rnn_classifier(num_classes=2, vocab_size=50, embedding_dim=16, hidden_size=3,
                                 word_dropout=0.5)
    embedded = model.get_layer("embedding")(np.arange(1, 41, dtype="int32")[None])
    dropped = np.asarray(model.get_layer("word_dropout")(embedded, training=True))[0]
    kept = np.any(dropped != 0, axis=-1)
    np.testing.assert_allclose(dropped[kept], 2 * np.asarray(embedded)[0][kept], rtol=1e-6)
    assert 0 < kept.sum() < 40 and np.all(dropped[~kept] == 0)


def test_tagger_learns_a_token_rule_that_needs_the_right_context_with_padding_masked():
    # tag_t = 2 if the NEXT token is large, else 1; the last token gets tag 3.
    rng = np.random.default_rng(3)
    x, lengths = _padded(rng, 512, 1, 9)
    y = np.zeros_like(x)
    for i, length in enumerate(lengths):
        y[i, : length - 1] = np.where(x[i, 1:length] >= 5, 2, 1)
        y[i, length - 1] = 3
    w = (x > 0).astype("float32")
    keras.utils.set_random_seed(3)
    model = build_rnn_tagger(num_classes=4, vocab_size=9, embedding_dim=8, hidden_size=12,
                             cell=FAST, bidirectional=True, mask_zero=True)
    model.compile(optimizer=keras.optimizers.Adam(0.02),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  reduction="mean_with_sample_weight"))
    model.fit(x, y, sample_weight=w, batch_size=64, epochs=4, verbose=0)
    pred = model.predict(x[:128], verbose=0).argmax(-1)
    real = w[:128] > 0
    assert np.mean(pred[real] == y[:128][real]) > 0.95
    # More padding changes nothing at the real steps (the backward direction skips it).
    wider = np.concatenate([x[:4], np.zeros((4, 5), "int32")], axis=1)
    np.testing.assert_allclose(np.asarray(model(wider))[:, :8], np.asarray(model(x[:4])), rtol=1e-4, atol=1e-5)


def test_tagger_features_are_masked_alike():
    keras.utils.set_random_seed(4)
    model = build_rnn_tagger(num_classes=3, vocab_size=6, embedding_dim=4, hidden_size=3, cell="lstm",
                             bidirectional=True, mask_zero=True, feature_vocab_sizes=[5],
                             feature_embedding_dim=2)
    short = {"tokens": np.array([[3, 4, 5]], "int32"), "features": np.array([[[1], [2], [3]]], "int32")}
    padded = {"tokens": np.array([[3, 4, 5, 0, 0]], "int32"),
              "features": np.array([[[1], [2], [3], [0], [0]]], "int32")}
    np.testing.assert_allclose(np.asarray(model(padded))[:, :3], np.asarray(model(short)), rtol=1e-5, atol=1e-6)


def test_forecaster_fits_a_noiseless_sine_better_than_seasonal_naive():
    period, lookback, horizon = 12.5, 25, 5
    y = np.sin(2 * np.pi * np.arange(600) / period)
    origins = np.arange(lookback, 600 - horizon + 1)
    x = y[origins[:, None] + np.arange(-lookback, 0)][..., None].astype("float32")
    t = targets(y, origins, horizon).astype("float32")
    keras.utils.set_random_seed(5)
    model = build_rnn_forecaster(input_dim=1, horizon=horizon, hidden_size=16, cell=FAST)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x[:450], t[:450], batch_size=32, epochs=4, verbose=0)
    test = slice(450, None)
    rnn_mae = np.mean(np.abs(model.predict(x[test], verbose=0) - t[test]))
    naive_mae = np.mean(np.abs(seasonal_naive(y, origins[test], horizon, period=12) - t[test]))
    assert rnn_mae < naive_mae


def test_forecaster_shapes_and_errors():
    assert build_rnn_forecaster(input_dim=3, horizon=4, num_targets=2, hidden_size=3).output.shape == (None, 4, 2)
    with pytest.raises(ConfigError, match="model.horizon must be a positive integer"):
        build_rnn_forecaster(input_dim=3, horizon=0)


def test_conditioned_lm_reads_the_condition_through_the_initial_state():
    # Sequence <s> a a a with a = condition + 2: the first step can only come from the condition.
    rng = np.random.default_rng(6)
    cond = rng.integers(0, 3, size=384).astype("int32")
    tokens = np.concatenate([np.ones((384, 1), "int32"), np.repeat((cond + 2)[:, None], 3, axis=1)], axis=1)
    targets_ = np.concatenate([tokens[:, 1:], np.ones((384, 1), "int32")], axis=1)
    keras.utils.set_random_seed(6)
    model = build_rnn_conditioned_lm(vocab_size=5, num_conditions=3, embedding_dim=4, condition_dim=4,
                                     hidden_size=8, cell=FAST)
    model.compile(optimizer=keras.optimizers.Adam(0.03),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit({"tokens": tokens, "condition": cond}, targets_, batch_size=64, epochs=3, verbose=0)
    first = model.predict({"tokens": tokens[:60, :1], "condition": cond[:60]}, verbose=0)[:, 0].argmax(-1)
    assert np.mean(first == cond[:60] + 2) > 0.95


@pytest.mark.parametrize("conditioning", ["every_step", "both"])
def test_conditioned_lm_reads_the_condition_at_every_step(conditioning):
    # The token to emit at step 3 (of <s> b b b) is condition + 2; the tokens before it say
    # nothing, so the model must still hold the condition there.
    rng = np.random.default_rng(7)
    cond = rng.integers(0, 3, size=384).astype("int32")
    tokens = np.concatenate([np.ones((384, 1), "int32"), np.full((384, 3), 5, "int32")], axis=1)
    targets_ = np.concatenate([np.full((384, 3), 5, "int32"), (cond + 2)[:, None]], axis=1)
    keras.utils.set_random_seed(7)
    model = build_rnn_conditioned_lm(vocab_size=6, num_conditions=3, embedding_dim=4, condition_dim=4,
                                     hidden_size=8, cell=FAST, conditioning=conditioning)
    has_initial = any(layer.name.startswith("initial_state") for layer in model.layers)
    assert has_initial == (conditioning == "both")
    # The recurrent layer's input carries the condition: 4 token + 4 condition features.
    inputs = model.get_layer("rnn_0").input  # a list when initial states come with the sequence
    assert (inputs[0] if isinstance(inputs, list) else inputs).shape[-1] == 8
    model.compile(optimizer=keras.optimizers.Adam(0.03),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit({"tokens": tokens, "condition": cond}, targets_, batch_size=64, epochs=4, verbose=0)
    last = model.predict({"tokens": tokens[:60], "condition": cond[:60]}, verbose=0)[:, 3].argmax(-1)
    assert np.mean(last == cond[:60] + 2) > 0.95


def test_new_builders_save_and_load(tmp_path):
    classifier = build_rnn_classifier(num_classes=2, vocab_size=6, embedding_dim=3, hidden_size=3,
                                      pooling="max", bidirectional=True)
    lm = build_rnn_conditioned_lm(vocab_size=6, num_conditions=2, embedding_dim=3, condition_dim=2,
                                  hidden_size=3, conditioning="both", name="lm_both")
    tokens = np.array([[1, 2, 3, 0]], "int32")
    for model, x in ((classifier, tokens), (lm, {"tokens": tokens, "condition": np.array([1], "int32")})):
        model.save(tmp_path / f"{model.name}.keras")
        restored = keras.saving.load_model(tmp_path / f"{model.name}.keras")
        np.testing.assert_allclose(np.asarray(restored(x)), np.asarray(model(x)), rtol=1e-6)


def test_bad_builder_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="model.pooling must be one of"):
        build_rnn_classifier(num_classes=2, vocab_size=5, pooling="attention")
    with pytest.raises(ConfigError, match="exactly one of vocab_size"):
        build_rnn_classifier(num_classes=2)
    with pytest.raises(ConfigError, match="model.word_dropout must be in"):
        build_rnn_classifier(num_classes=2, vocab_size=5, word_dropout=1.0)
    with pytest.raises(ConfigError, match="mask_zero=true .* needs model.embedding_dim"):
        build_rnn_tagger(num_classes=2, vocab_size=5, mask_zero=True)
    with pytest.raises(ConfigError, match="feature_vocab_sizes"):
        build_rnn_tagger(num_classes=2, vocab_size=5, feature_vocab_sizes=[3])
    with pytest.raises(ConfigError, match="model.dropout must be in"):
        build_rnn_tagger(num_classes=2, vocab_size=5, dropout=1.5)
    with pytest.raises(ConfigError, match="Keras built-in"):
        build_rnn_conditioned_lm(vocab_size=5, num_conditions=2, cell="keras_lstm")
    with pytest.raises(ConfigError, match="model.conditioning must be one of initial_state, every_step, "
                                          "both; got 'each_step'"):
        build_rnn_conditioned_lm(vocab_size=5, num_conditions=2, conditioning="each_step")
