"""CoNLL-2000 reader and tagging bundle: counts equal shared/data/README.md, corrupt
lines name file and line, test scoring against independent counts."""

from __future__ import annotations

import gzip
from collections import Counter

import keras
import numpy as np
import pytest

from seqlab.data.tagging import build_conll2000_data, chunk_scores, read_conll, word_signature
from seqlab.data.vocabulary import Vocabulary
from seqlab.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def conll(data_dir_module):
    folder = data_dir_module / "conll2000"
    return read_conll(folder / "train.txt.gz"), read_conll(folder / "test.txt.gz")


@pytest.fixture(scope="module")
def data_dir_module():
    import os
    from pathlib import Path

    path = Path(os.environ.get("SEQLAB_DATA_DIR", ""))
    if not (path / "conll2000" / "train.txt.gz").is_file():
        pytest.skip("conll2000 not found under $SEQLAB_DATA_DIR")
    return path


def test_counts_equal_the_readme(conll):
    train, test = conll
    for sentences, n, tokens, chunks, outside in ((train, 8936, 211_727, 106_978, 27_902),
                                                 (test, 2012, 47_377, 23_852, 6180)):
        assert len(sentences) == n
        assert sum(len(w) for w, _, _ in sentences) == tokens
        tags = Counter(t for _, _, c in sentences for t in c)
        assert sum(v for t, v in tags.items() if t.startswith("B-")) == chunks
        assert tags["O"] == outside
    assert len({t for _, p, _ in train for t in p}) == 44
    assert len({t for _, _, c in train for t in c}) == 22
    assert {t for _, _, c in test for t in c} - {t for _, _, c in train for t in c} == {"I-LST"}


def test_corrupt_lines_name_file_and_line(tmp_path):
    path = tmp_path / "bad.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write("Confidence NN B-NP\nin IN\n")
    with pytest.raises(DataError, match=r"bad.txt.gz, line 2: expected 3 space-separated fields"):
        read_conll(path)
    plain = tmp_path / "bad.txt"
    plain.write_bytes(b"a DT B-NP\n\n\xff NN B-NP\n")
    with pytest.raises(DataError, match=r"bad.txt, line 3: not valid UTF-8"):
        read_conll(plain)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="data.task='ner' is unknown for conll2000"):
        build_conll2000_data(batch_size=8, task="ner")
    with pytest.raises(ConfigError, match="input_pos=false for the POS task"):
        build_conll2000_data(batch_size=8, task="pos", input_pos=True)


def test_word_signatures():
    assert word_signature("Reconsidering") == "<unk-Cap-ing>"
    assert word_signature("IBM") == "<unk-CAPS>"
    assert word_signature("1,234") == "<unk-sym-num>"
    assert word_signature("quickly") == "<unk-lc-ly>"


def test_chunk_scores_count_whole_chunks():
    # gold: NP(0-1), VP(3); predicted: NP(0-1) right, NP(3) wrong type, an extra PP(2).
    gold = [["B-NP", "I-NP", "O", "B-VP"]]
    pred = [["B-NP", "I-NP", "B-PP", "B-NP"]]
    assert chunk_scores(gold, pred) == pytest.approx(
        {"chunk_precision": 1 / 3, "chunk_recall": 1 / 2, "chunk_f1": 2 * (1 / 3 * 1 / 2) / (1 / 3 + 1 / 2)}
    )


def _constant_tagger(num_classes: int, tag_id: int, with_features: bool):
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    logits = keras.layers.Embedding(
        1 << 15, num_classes,
        embeddings_initializer=keras.initializers.Constant(np.eye(num_classes)[tag_id]),
    )(tokens)
    inputs = tokens
    if with_features:
        inputs = {"tokens": tokens, "features": keras.Input((None, 1), dtype="int32", name="features")}
    return keras.Model(inputs, logits)


def test_chunk_bundle_scores_test_in_sentence_order(data_dir_module, conll, tmp_path):
    bundle = build_conll2000_data(batch_size=64, task="chunk")
    info = bundle.info
    assert (info["train_sentences"] + info["validation_sentences"], info["test_sentences"]) == (8936, 2012)
    assert info["test_tokens_with_unseen_tag"] == 2  # I-LST
    assert bundle.model_kwargs["feature_vocab_sizes"] == [46]  # 44 tags + <pad>, <unk>
    (x, y, w), = bundle.train.take(1)
    assert set(x) == {"tokens", "features"}
    w = np.asarray(w)
    np.testing.assert_array_equal(w > 0, np.asarray(x["tokens"]) > 0)  # weights 0 exactly on padding
    paths = bundle.save_artifacts(tmp_path)
    tags = Vocabulary.load(next(p for p in paths if p.name == "tags.json"))
    # A model that always says "O": accuracy = the share of O in test, no chunk found.
    # (Scoring zips every predicted sentence with its gold one, strictly: a sentence
    # out of order would differ in length and raise.)
    model = _constant_tagger(bundle.model_kwargs["num_classes"], tags.index["O"], with_features=True)
    scores = bundle.evaluate_test(model)
    _, test = conll
    outside = sum(t == "O" for _, _, c in test for t in c) / sum(len(c) for _, _, c in test)
    assert scores["accuracy"] == pytest.approx(outside) == pytest.approx(info["all_O_test_accuracy"], abs=1e-6)
    assert scores["chunk_f1"] == 0.0


def test_pos_bundle(data_dir_module, conll, tmp_path):
    bundle = build_conll2000_data(batch_size=64, task="pos", min_count=1, unk_signatures=False)
    assert "feature_vocab_sizes" not in bundle.model_kwargs
    assert bundle.model_kwargs["num_classes"] == 45
    train, test = conll
    never_seen = {w for w, _, _ in test for w in w} - {w for ws, _, _ in train for w in ws}
    assert never_seen  # the OOV words of test map to <unk>
    assert 0.89 < bundle.info["most_frequent_tag_test_accuracy"] < 0.93
    paths = bundle.save_artifacts(tmp_path)
    tags = Vocabulary.load(next(p for p in paths if p.name == "tags.json"))
    model = _constant_tagger(45, tags.index["NN"], with_features=False)
    nn_share = np.mean([t == "NN" for _, p, _ in test for t in p])
    assert bundle.evaluate_test(model)["accuracy"] == pytest.approx(nn_share)
