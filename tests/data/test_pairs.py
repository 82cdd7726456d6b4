"""Parallel corpora: reading (counts, corrupt files), subword vocabularies, encoding."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from seqlab.data.pairs import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    SubwordVocab,
    encode_pairs,
    fit_vocabularies,
    load_parallel_corpus,
    read_lines,
)
from seqlab.errors import ConfigError, DataError, DataNotFoundError

DE = ["Ein Hund läuft.", "Zwei Männer sitzen.", "Ein Kind spielt im Park.", "Eine Frau liest."]
EN = ["A dog runs.", "Two men sit.", "A child plays in the park.", "A woman reads."]


def _write(folder, stem, lines, *, gz=True, raw=None):
    data = raw if raw is not None else "".join(line + "\n" for line in lines).encode("utf-8")
    path = folder / (f"{stem}.gz" if gz else stem)
    if gz:
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def corpus_dir(tmp_path):
    folder = tmp_path / "multi30k"
    folder.mkdir()
    for stem in ("train", "val", "test_2016_flickr"):
        _write(folder, f"{stem}.de", DE)
        _write(folder, f"{stem}.en", EN)
    return folder


def test_multi30k_counts_are_the_data_readme_figures(data_dir):
    corpus = load_parallel_corpus("multi30k", data_dir=str(data_dir))
    # shared/data/README.md: 29,000 / 1,014 / 1,000 lines, equal on both sides.
    assert {s: corpus.size(s) for s in ("train", "validation", "test")} == {
        "train": 29000, "validation": 1014, "test": 1000}
    assert {s: len(corpus.target[s]) for s in corpus.target} == {"train": 29000, "validation": 1014, "test": 1000}
    # Whitespace word counts from the README: train en 345,020 / de 322,383.
    assert sum(len(line.split()) for line in corpus.target["train"]) == 345020
    assert sum(len(line.split()) for line in corpus.source["train"]) == 322383
    assert corpus.target["test"][0] == "A man in an orange hat starring at something."
    assert (corpus.source_lang, corpus.target_lang) == ("de", "en")


def test_reversed_direction_and_limit(corpus_dir):
    corpus = load_parallel_corpus(path=str(corpus_dir), source_lang="en", target_lang="de", limit=2)
    assert corpus.source["train"] == EN[:2] and corpus.target["test"] == DE[:2]


def test_mismatched_line_counts_name_both_files_and_counts(corpus_dir):
    _write(corpus_dir, "val.en", EN[:3])
    with pytest.raises(DataError, match=r"split validation: .*val\.de\.gz has 4 lines but .*val\.en\.gz has 3"):
        load_parallel_corpus(path=str(corpus_dir))


def test_a_non_utf8_line_names_the_file_and_the_line(corpus_dir):
    raw = b"A dog runs.\nTwo men sit.\n" + "Caf\xe9 au lait.\n".encode("latin-1") + b"A woman.\n"
    _write(corpus_dir, "test_2016_flickr.en", None, raw=raw)
    with pytest.raises(DataError, match=r"test_2016_flickr\.en\.gz, line 3: not UTF-8"):
        load_parallel_corpus(path=str(corpus_dir))


def test_plain_files_are_read_too_and_crlf_is_stripped(tmp_path):
    path = _write(tmp_path, "x.txt", None, gz=False, raw=b"one\r\ntwo\n")
    assert read_lines(path) == ["one", "two"]


def test_missing_files_and_bad_options_are_clear_errors(tmp_path, corpus_dir, monkeypatch):
    (corpus_dir / "train.en.gz").unlink()
    with pytest.raises(DataNotFoundError, match=r"train\.en\.gz not found.*SEQLAB_DATA_DIR"):
        load_parallel_corpus(path=str(corpus_dir))
    monkeypatch.delenv("SEQLAB_DATA_DIR", raising=False)
    with pytest.raises(DataNotFoundError, match="SEQLAB_DATA_DIR are both unset"):
        load_parallel_corpus()
    with pytest.raises(ConfigError, match=r"data.source_lang='fr' is not a language of multi30k"):
        load_parallel_corpus(path=str(corpus_dir), source_lang="fr")
    with pytest.raises(ConfigError, match="data.limit must be a positive integer"):
        load_parallel_corpus(path=str(corpus_dir), limit=0)
    with pytest.raises(ConfigError, match="unknown parallel corpus"):
        load_parallel_corpus("wmt14", path=str(corpus_dir))


def test_subword_vocab_specials_round_trip_and_save(tmp_path):
    vocab = SubwordVocab.fit(DE + EN, vocab_size=60, min_frequency=1)
    assert vocab.vocab_size == 60
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    for line in DE + EN:
        ids = vocab.encode(line)
        assert ids.dtype == np.int32 and ids.min() >= 4  # no specials inside a sentence
        assert vocab.decode(ids) == line
        # decoding stops at <eos>; <bos> and <pad> are dropped
        assert vocab.decode([BOS_ID, *ids, EOS_ID, *ids, PAD_ID]) == line
    # Leading space: a first word and a mid-sentence word are the same piece.
    alone = vocab.encode("Hund")
    np.testing.assert_array_equal(vocab.encode("Ein Hund")[-alone.size :], alone)
    # A character never seen in training is <unk> (byte-level: one per UTF-8 byte of
    # it), counted by oov_rate; the leading space is a known byte.
    assert vocab.encode("Ω").tolist()[1:] == [UNK_ID, UNK_ID]
    assert vocab.oov_rate(["Ω"]) == pytest.approx(2 / 3) and vocab.oov_rate(EN) == 0.0
    again = SubwordVocab.load(vocab.save(tmp_path / "vocab.json"))
    assert [again.encode(x).tolist() for x in DE] == [vocab.encode(x).tolist() for x in DE]
    (tmp_path / "other.json").write_text('{"kind": "bpe"}')
    with pytest.raises(ConfigError, match="not a SubwordVocab file"):
        SubwordVocab.load(tmp_path / "other.json")


def test_vocab_size_errors_name_the_limits():
    with pytest.raises(ConfigError, match=r"data.vocab_size=4 must be an integer > 4"):
        SubwordVocab.fit(EN, vocab_size=4)
    with pytest.raises(ConfigError, match=r"data.vocab_size=5000 does not fit.*use data.vocab_size <= \d+"):
        SubwordVocab.fit(EN, vocab_size=5000)
    with pytest.raises(ConfigError, match=r"data.vocab_size=8 does not fit.*use data.vocab_size >= \d+"):
        SubwordVocab.fit(EN, vocab_size=8)


def test_shared_and_separate_vocabularies(corpus_dir):
    corpus = load_parallel_corpus(path=str(corpus_dir))
    src, tgt = fit_vocabularies(corpus, "shared", 50, min_frequency=1)
    assert src is tgt
    src, tgt = fit_vocabularies(corpus, "separate", 40, min_frequency=1)
    assert src is not tgt and src.vocab_size == tgt.vocab_size == 40
    # each side's pieces come from its own language
    assert src.decode(src.encode(DE[1])) == DE[1] and tgt.decode(tgt.encode(EN[1])) == EN[1]
    with pytest.raises(ConfigError, match="data.vocabulary='both' is unknown"):
        fit_vocabularies(corpus, "both", 40)


def test_encode_pairs_teacher_forcing_layout_and_length_policies():
    vocab = SubwordVocab.fit(DE + EN, vocab_size=60, min_frequency=1)
    pairs = encode_pairs(vocab, vocab, DE, EN, max_source_len=64, max_target_len=64)
    for i, (s, ti, to) in enumerate(zip(pairs.source, pairs.target_in, pairs.target_out, strict=True)):
        pieces_s, pieces_t = vocab.encode(DE[i]), vocab.encode(EN[i])
        np.testing.assert_array_equal(s, [*pieces_s, EOS_ID])
        np.testing.assert_array_equal(ti, [BOS_ID, *pieces_t])
        np.testing.assert_array_equal(to, [*pieces_t, EOS_ID])
        np.testing.assert_array_equal(ti[1:], to[:-1])  # shifted by one
    lengths = [vocab.encode(x).size + 1 for x in EN]
    cut = sorted(lengths)[1]  # two targets fit, two do not
    kept = encode_pairs(vocab, vocab, DE, EN, max_source_len=64, max_target_len=cut, policy="filter")
    assert len(kept) + kept.dropped == 4 and kept.dropped == sum(n > cut for n in lengths)
    assert kept.index.tolist() == [i for i, n in enumerate(lengths) if n <= cut]
    short = encode_pairs(vocab, vocab, DE, EN, max_source_len=3, max_target_len=cut, policy="truncate")
    assert len(short) == 4 and short.truncated == 4
    assert short.source_lengths().max() == 3 and short.target_lengths().max() == cut
    assert all(s[-1] == EOS_ID for s in short.source) and all(t[-1] == EOS_ID for t in short.target_out)
    with pytest.raises(ConfigError, match="data.length_policy='drop' is unknown"):
        encode_pairs(vocab, vocab, DE, EN, max_source_len=8, max_target_len=8, policy="drop")
    with pytest.raises(ConfigError, match="data.max_source_len must be an integer >= 2"):
        encode_pairs(vocab, vocab, DE, EN, max_source_len=1, max_target_len=8)
