"""Sentence polarity: counts equal shared/data/README.md, fold bundles partition the corpus,
corrupt files and a one-class label set give one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from seqlab.data.sentiment import build_rt_polarity_data, read_rt_polarity
from seqlab.errors import ConfigError, DataError


def test_rt_polarity_counts_and_encoding(data_dir):
    texts, labels = read_rt_polarity(data_dir / "rt_polarity")
    assert np.bincount(labels).tolist() == [5331, 5331]
    assert sum(len(t.split()) for t, y in zip(texts, labels) if y == 1) == 112_442
    assert sum(len(t.split()) for t, y in zip(texts, labels) if y == 0) == 111_625
    # cp1252 dashes decode to the real characters, not to C1 controls.
    assert any("\u2013" in t or "\u2014" in t for t in texts)
    assert not any("\x96" in t or "\x97" in t for t in texts)


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
