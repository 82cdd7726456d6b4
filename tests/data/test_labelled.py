"""Labelled-sequence data: counts equal shared/data/README.md, folds are disjoint and
cover the data, duplicate-aware splits keep every item in one split, corrupt files
and bad settings give one clear error."""

from __future__ import annotations

import math
from collections import Counter

import keras
import numpy as np
import pytest

from seqlab.data.labelled import (
    BOUNDARY,
    PAD,
    UNK,
    Vocabulary,
    bucket_batches,
    build_makemore_data,
    build_names_data,
    build_rt_polarity_data,
    build_sms_spam_data,
    classification_scores,
    clean_names,
    data_folder,
    kfold_assignment,
    lm_test_loss,
    names_splits,
    read_makemore,
    read_names,
    read_rt_polarity,
    read_sms_spam,
    sample_names,
    sms_spam_splits,
    split_by_group,
)
from seqlab.errors import ConfigError, DataError, DataNotFoundError


def test_rt_polarity_counts_and_encoding(data_dir):
    texts, labels = read_rt_polarity(data_dir / "rt_polarity")
    assert np.bincount(labels).tolist() == [5331, 5331]
    assert sum(len(t.split()) for t, y in zip(texts, labels) if y == 1) == 112_442
    assert sum(len(t.split()) for t, y in zip(texts, labels) if y == 0) == 111_625
    # cp1252 dashes decode to the real characters, not to C1 controls.
    assert any("\u2013" in t or "\u2014" in t for t in texts)
    assert not any("\x96" in t or "\x97" in t for t in texts)


def test_folds_are_disjoint_stratified_and_cover_the_data():
    labels = np.repeat([0, 1, 2], [53, 40, 7])
    folds = kfold_assignment(labels, num_folds=10, seed=3)
    test_sets = [set(np.flatnonzero(folds == k)) for k in range(10)]
    assert set().union(*test_sets) == set(range(labels.size))
    assert sum(len(s) for s in test_sets) == labels.size  # disjoint
    assert max(map(len, test_sets)) - min(map(len, test_sets)) <= 1
    for c, n in enumerate(np.bincount(labels)):
        per_fold = [int(np.sum(labels[list(s)] == c)) for s in test_sets]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == n
    assert np.array_equal(folds, kfold_assignment(labels, num_folds=10, seed=3))
    with pytest.raises(ConfigError, match="num_folds"):
        kfold_assignment(labels, num_folds=1)


def _test_texts(bundle):
    return [tuple(row[row > 0]) for x, _ in bundle.test for row in np.asarray(x)]


def test_rt_polarity_fold_bundles_partition_the_corpus(data_dir):
    sizes, tests = [], []
    for fold in (0, 9):
        bundle = build_rt_polarity_data(batch_size=256, fold=fold)
        info = bundle.info
        sizes.append(info["train_size"] + info["validation_size"] + info["test_size"])
        assert info["test_size"] in (1066, 1067) and info["majority_test_accuracy"] == pytest.approx(0.5, abs=0.01)
        tests.append(set(_test_texts(bundle)))
    assert sizes == [10662, 10662]
    assert not tests[0] & tests[1]
    # The folds follow data.split_seed, not the training seed.
    assert set(_test_texts(build_rt_polarity_data(batch_size=256, fold=9, seed=5))) == tests[1]
    with pytest.raises(ConfigError, match=r"data.fold must be an integer in \[0, 10\), got 10"):
        build_rt_polarity_data(batch_size=8, fold=10)


def test_corrupt_encoding_names_file_and_line(tmp_path):
    folder = tmp_path / "rt"
    folder.mkdir()
    (folder / "rt-polarity.pos").write_bytes(b"good\nfine\nbad \x81 byte\n")
    (folder / "rt-polarity.neg").write_bytes(b"meh\n")
    with pytest.raises(DataError, match=r"rt-polarity.pos, line 3: not valid cp1252 \(byte 0x81"):
        build_rt_polarity_data(batch_size=2, path=str(folder))


def test_a_label_set_with_one_class_is_an_error(tmp_path):
    folder = tmp_path / "rt"
    folder.mkdir()
    (folder / "rt-polarity.pos").write_text("".join(f"good film {i}\n" for i in range(30)))
    (folder / "rt-polarity.neg").write_text("")
    with pytest.raises(DataError, match="1 class .*'positive'.* at least two"):
        build_rt_polarity_data(batch_size=2, path=str(folder))


def test_missing_data_names_the_folder(tmp_path):
    with pytest.raises(DataNotFoundError, match="lacks rt-polarity.pos.*SEQLAB_DATA_DIR"):
        data_folder("rt_polarity", str(tmp_path), ["rt-polarity.pos"])


def test_sms_counts_and_dedup_before_split(data_dir):
    rows = read_sms_spam(data_dir / "sms_spam" / "SMSSpamCollection")
    assert len(rows) == 5574
    assert Counter(label for label, _ in rows) == {"ham": 4827, "spam": 747}
    splits = sms_spam_splits(rows, (0.8, 0.1), seed=0)
    items = [set(part) for part in splits.values()]
    assert sum(map(len, items)) == 5171 == len(set(rows))
    assert not (items[0] & items[1] or items[0] & items[2] or items[1] & items[2])
    messages = [{m for _, m in part} for part in splits.values()]
    assert not messages[0] & messages[2]
    spam_share = [np.mean([lab == "spam" for lab, _ in part]) for part in splits.values()]
    assert max(spam_share) - min(spam_share) < 0.01
    bundle = build_sms_spam_data(batch_size=64)
    assert bundle.info["duplicates_removed"] == 403
    assert bundle.info["majority_all_lines"] == pytest.approx(0.866, abs=5e-4)
    assert bundle.model_kwargs["num_classes"] == 2


def test_sms_line_without_a_tab(tmp_path):
    path = tmp_path / "SMSSpamCollection"
    path.write_text("ham\tok\nspam no tab here\n")
    with pytest.raises(DataError, match=r"SMSSpamCollection, line 2: expected 2 tab-separated fields"):
        read_sms_spam(path)


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


def test_split_by_group_keeps_groups_together():
    groups = ["a", "b", "a", "c", "d", "b", "e", "a"]
    parts = split_by_group(groups, (0.4, 0.2), seed=1)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(groups)))
    owners = {}
    for p, idx in enumerate(parts):
        for i in idx:
            assert owners.setdefault(groups[i], p) == p


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


def test_vocabulary_comes_from_training_tokens():
    vocab = Vocabulary.build([["b", "a", "b"], ["c"]], min_count=2)
    assert vocab.tokens == [PAD, UNK, "b"]
    assert vocab.encode(["b", "a", "zzz"]).tolist() == [2, 1, 1]


def test_bucket_batches_cover_every_example_once():
    lengths = np.random.default_rng(0).integers(1, 40, size=103)
    for rng in (None, np.random.default_rng(1)):
        batches = bucket_batches(lengths, batch_size=8, bucket_width=8, rng=rng)
        assert sorted(np.concatenate(batches).tolist()) == list(range(103))
        assert all(len({math.ceil(n / 8) for n in lengths[b]}) == 1 for b in batches)
    keys = np.ceil(lengths / 8)
    assert len(batches) == sum(math.ceil(n / 8) for n in Counter(keys).values())


def test_classification_scores_equal_a_hand_count():
    y = np.array([1, 1, 0, 0, 1, 0])
    p = np.array([1, 0, 0, 1, 1, 0])
    tp, fp, fn = 2, 1, 1
    scores = classification_scores(y, p, positive=1)
    assert scores == pytest.approx({"accuracy": 4 / 6, "precision": tp / (tp + fp), "recall": tp / (tp + fn),
                                    "f1": 2 * tp / (2 * tp + fp + fn)})


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


@pytest.mark.parametrize("module", ["labelled", "tagging", "timeseries", "baselines"])
def test_docstring_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"seqlab.data.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
