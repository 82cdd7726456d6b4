"""Names and makemore names: counts equal shared/data/README.md, splits by distinct name
keep every name in one split, the LM test loss and sampler are exact."""

from __future__ import annotations

import math
from collections import Counter

import keras
import numpy as np
import pytest

from seqlab.data.names import (
    BOUNDARY,
    balanced_accuracy,
    build_makemore_data,
    build_names_data,
    clean_names,
    lm_test_loss,
    names_splits,
    read_makemore,
    read_names,
    sample_names,
)
from seqlab.data.vocabulary import PAD, UNK, Vocabulary
from seqlab.errors import ConfigError
from seqlab.models.rnn_sequence import build_rnn_conditioned_lm


def test_names_counts_and_split_by_distinct_name(data_dir):
    raw = read_names(data_dir / "names")
    assert len(raw) == 20_074
    per_language = Counter(lang for _, lang in raw)
    assert len(per_language) == 18
    assert (per_language["Arabic"], per_language["Russian"], per_language["Vietnamese"]) == (2000, 9408, 73)
    assert len({n for n, lang in raw if lang == "Arabic"}) == 108
    rows = clean_names(raw)
    assert len(rows) == 20_050  # the 24 'To The First Page' lines dropped
    for deduplicate in (True, False):
        splits = names_splits(rows, (0.8, 0.1), seed=0, deduplicate=deduplicate)
        names = [{n for n, _ in part} for part in splits.values()]
        assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
        assert sum(map(len, splits.values())) == (len(set(rows)) if deduplicate else len(rows))


def test_names_bundles_and_unknown_task(data_dir):
    classify = build_names_data(batch_size=64)
    assert classify.model_kwargs["num_classes"] == 18
    assert classify.info["majority_class"] == "Russian"
    assert 0.45 < classify.info["majority_test_accuracy"] < 0.56
    generate = build_names_data(batch_size=64, task="generate")
    assert generate.model_kwargs["num_conditions"] == 18
    (x, y, w), = generate.train.take(1)
    assert set(x) == {"tokens", "condition"}
    tokens, y, w = np.asarray(x["tokens"]), np.asarray(y), np.asarray(w)
    assert np.all(tokens[:, 0] == 1)  # every name starts with <s>
    np.testing.assert_array_equal(tokens[:, 1:] * w[:, 1:], y[:, :-1] * w[:, 1:])  # shifted by one
    with pytest.raises(ConfigError, match="data.task='translate' is unknown for names"):
        build_names_data(batch_size=64, task="translate")


def test_makemore_counts_and_split(data_dir, tmp_path):
    names = read_makemore(data_dir / "makemore_names" / "names.txt")
    assert len(names) == 32_033 and len(set(names)) == 29_494
    bundle = build_makemore_data(batch_size=64)
    assert bundle.model_kwargs == {"vocab_size": 29}
    info = bundle.info
    assert info["train_size"] + info["validation_size"] + info["test_size"] == 32_033
    (path,) = bundle.save_artifacts(tmp_path)
    vocab = Vocabulary.load(path)
    assert vocab.tokens[:3] == [PAD, BOUNDARY, UNK] and sorted(vocab.tokens[3:]) == list("abcdefghijklmnopqrstuvwxyz")

    def decode(split):
        return {"".join(vocab.decode(row[1:][row[1:] > 2])) for x, _, _ in split for row in np.asarray(x)}

    test_names = decode(bundle.test)
    assert len(test_names) == 1000  # distinct names, each with its repeats
    assert test_names <= set(names)
    assert not test_names & decode(bundle.train)
    with pytest.raises(ConfigError, match="must be below"):
        build_makemore_data(batch_size=64, test_size=20_000, validation_size=10_000)


def _constant_lm(logits_row):
    tokens = keras.Input((None,), dtype="int32")
    one = keras.ops.ones_like(keras.ops.cast(tokens, "float32"))[..., None]
    return keras.Model(tokens, one * np.asarray(logits_row, "float32")[None, None, :])


def test_lm_test_loss_is_the_token_weighted_cross_entropy():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    model = _constant_lm(logits)
    import tensorflow as tf

    x = np.array([[1, 2, 3], [1, 3, 0]], "int32")
    y = np.array([[2, 3, 1], [3, 1, 0]], "int32")
    w = np.array([[1, 1, 1], [1, 1, 0]], "float32")
    scores = lm_test_loss(model, tf.data.Dataset.from_tensor_slices((x, y, w)).batch(1))
    want = -np.mean(np.log([0.3, 0.4, 0.2, 0.4, 0.2]))
    assert scores["loss"] == pytest.approx(want, rel=1e-6)
    assert scores["bpc"] == pytest.approx(want / math.log(2), rel=1e-6)


def test_sampled_names_follow_the_model_distribution():
    vocab = Vocabulary([PAD, BOUNDARY, UNK, "a", "b"], [PAD, BOUNDARY, UNK])
    # One draw per name: the end (p 0.5), 'a' (0.375) or 'b' (0.125); <pad>/<unk> never.
    model = _constant_lm(np.log([1e-9, 0.5, 1e-9, 0.375, 0.125]))
    names = sample_names(model, vocab, 2000, max_len=1, seed=0)
    counts = Counter(names)
    assert set(counts) <= {"", "a", "b"}
    assert counts["a"] / 2000 == pytest.approx(0.375, abs=0.04)
    assert counts[""] / 2000 == pytest.approx(0.5, abs=0.04)


def test_generator_scores_sit_beside_the_classifier_ceiling(data_dir, tmp_path):
    # A classifier that always answers language 0 (Arabic): every generated Arabic name counts,
    # and on real test names it is right for one language in 18, whatever the class sizes.
    classify = build_names_data(batch_size=64)
    chars = keras.Input((None,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(100, 1)(chars))
    bias = np.eye(18, dtype="float32")[0]
    always_0 = keras.layers.Dense(18, kernel_initializer="zeros",
                                  bias_initializer=keras.initializers.Constant(bias))(pooled)
    classifier = keras.Model(chars, always_0)
    classifier.save(tmp_path / "classifier.keras")
    generate = build_names_data(batch_size=64, task="generate", samples_per_language=2,
                                classifier_path=str(tmp_path / "classifier.keras"))
    lm = build_rnn_conditioned_lm(vocab_size=generate.model_kwargs["vocab_size"], num_conditions=18,
                                  hidden_size=4, conditioning="every_step")
    scores = generate.evaluate_test(lm)
    assert scores["classified_as_requested"] == pytest.approx(1 / 18)
    assert scores["classifier_balanced_accuracy"] == pytest.approx(1 / 18)
    assert classify.model_kwargs["num_classes"] == 18


def test_balanced_accuracy_weights_every_class_equally():
    labels = np.array([0] * 8 + [1, 1])
    assert balanced_accuracy(labels, np.zeros(10)) == 0.5
    assert balanced_accuracy(labels, labels) == 1.0
