"""Word-level and BPE tokenizers, text-file corpora, and their clear errors."""

import gzip
import json

import numpy as np
import pytest

from seqlab.data.corpora import load_corpus, split_local_files, text_files_spec
from seqlab.data.tokenizers import (
    BPETokenizer,
    WordTokenizer,
    build_tokenizer,
    load_tokenizer,
)
from seqlab.errors import ConfigError, DataError

TEXT = "the cat sat on the mat\nthe dog sat\n"


def test_word_vocabulary_is_frequency_ranked_with_unk_and_eos_first():
    tok = WordTokenizer.fit(TEXT)
    # counts: the 3, sat 2, cat/dog/mat/on 1 (ties alphabetical)
    assert tok.words == ["<unk>", "<eos>", "the", "sat", "cat", "dog", "mat", "on"]
    ids = tok.encode("the cat\nsat")
    assert ids.tolist() == [2, 4, 1, 3]
    assert tok.decode(ids) == "the cat\nsat"


def test_word_round_trip_through_json_and_eos_becomes_newline(tmp_path):
    tok = WordTokenizer.fit(TEXT)
    again = load_tokenizer(tok.save(tmp_path / "tok.json"))
    assert isinstance(again, WordTokenizer)
    np.testing.assert_array_equal(again.encode(TEXT), tok.encode(TEXT))
    assert again.decode(again.encode(TEXT)) == TEXT
    # PTB formatting (leading/trailing spaces) is normalised to single spaces.
    assert tok.decode(tok.encode(" the  cat \n")) == "the cat\n"


def test_word_cap_maps_rare_words_to_unk_and_counts_oov():
    tok = WordTokenizer.fit(TEXT, max_vocab=4)  # <unk>, <eos>, the, sat
    assert tok.vocab_size == 4
    ids = tok.encode("the cat sat\n")
    assert ids.tolist() == [2, 0, 3, 1]
    assert tok.decode(ids) == "the <unk> sat\n"
    # 4 tokens (incl. <eos>), one out of vocabulary
    assert tok.oov_rate("the cat sat\n") == pytest.approx(1 / 4)


def test_literal_unk_in_the_text_is_a_known_type_not_an_oov():
    tok = WordTokenizer.fit("a <unk> b\n")
    assert tok.vocab_size == 4  # <unk>, <eos>, a, b
    assert tok.oov_rate("a <unk>\n") == 0.0
    assert tok.oov_rate("a z\n") == pytest.approx(1 / 3)


def test_punctuation_split_separates_marks():
    tok = WordTokenizer.fit("Hello, world! Hello.", split="punctuation", eos=False)
    assert tok.words_of("Hello, world!") == ["Hello", ",", "world", "!"]
    assert tok.decode(tok.encode("Hello, world!")) == "Hello , world !"


def test_ptb_vocabulary_is_exactly_the_standard_10000(data_dir):
    read = lambda split: gzip.open(data_dir / "ptb" / f"ptb.{split}.txt.gz", "rt").read()  # noqa: E731
    train, valid = read("train"), read("valid")
    tok = build_tokenizer("word", train)
    assert tok.vocab_size == 10000
    assert tok.words[:2] == ["<unk>", "<eos>"]
    # Counts from shared/data/README.md (Mikolov splits, <eos> per line).
    assert tok.encode(train).size == 929589
    assert tok.encode(valid).size == 73760
    assert tok.oov_rate(valid) == 0.0


def test_bpe_trains_on_training_text_to_the_requested_size_and_round_trips(tmp_path, data_dir):
    text = (data_dir / "tiny_shakespeare" / "input.txt").read_text()[:60000]
    train, held_out = text[:50000], text[50000:]
    tok = build_tokenizer("bpe", train, vocab_size=300)
    assert isinstance(tok, BPETokenizer) and tok.vocab_size == 300
    ids = tok.encode(held_out)
    assert ids.dtype == np.int32 and ids.max() < 300
    assert ids.size < len(held_out) / 1.5  # merges compress
    assert tok.decode(ids) == held_out  # lossless: spaces and newlines kept
    again = load_tokenizer(tok.save(tmp_path / "bpe.json"))
    np.testing.assert_array_equal(again.encode(held_out), ids)
    json.loads((tmp_path / "bpe.json").read_text())  # plain JSON
    assert tok.oov_rate(held_out) == 0.0


def test_bpe_unseen_characters_are_unk_and_counted_as_oov():
    tok = build_tokenizer("bpe", "abab abab abab\n" * 20, vocab_size=8, min_frequency=1)
    ids = tok.encode("abZ")
    assert ids.tolist()[-1] == tok.unk_id
    assert 0.0 < tok.oov_rate("ab Z") < 1.0


def test_bad_tokenizer_settings_are_clear_errors():
    with pytest.raises(ConfigError, match=r"max_vocab=1 is too small.*>= 2"):
        build_tokenizer("word", TEXT, max_vocab=1)
    with pytest.raises(ConfigError, match=r"vocab_size=5000 is larger than this training text allows.*vocab_size <= \d+"):
        build_tokenizer("bpe", "hello world\n", vocab_size=5000)
    with pytest.raises(ConfigError, match=r"unknown tokenizer 'sentencepiece'.*bpe.*char.*word"):
        build_tokenizer("sentencepiece", TEXT)
    with pytest.raises(ConfigError, match=r"unknown data.tokenizer_options \['vocab_size'\]"):
        build_tokenizer("word", TEXT, vocab_size=10)


def test_text_files_folder_split_by_fractions_and_by_names(tmp_path):
    cache = tmp_path / "cache"
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("0123456789" * 80 + "\n")
    (folder / "b.txt").write_text("abcdefghij" * 19 + "\n")
    (folder / "notes.md").write_text("not text data")
    corpus = load_corpus("text_files", path=str(folder), cache_dir=str(cache), split_fractions=[0.8, 0.1])
    whole = (folder / "a.txt").read_text() + (folder / "b.txt").read_text()
    assert corpus.train + corpus.validation + corpus.test == whole
    assert len(corpus.train) == int(0.8 * len(whole))
    assert abs(len(corpus.validation) - 0.1 * len(whole)) <= 1

    named = tmp_path / "named"
    named.mkdir()
    for split in ("train", "valid", "test"):
        (named / f"{split}.txt").write_text(f"{split} text\n")
    # Named splits: same builder input, checked without a second TFDS prepare.
    spec = text_files_spec(named)
    assert spec.split_files == {"train": ("train.txt",), "validation": ("valid.txt",), "test": ("test.txt",)}
    texts = split_local_files(spec, named)
    assert (texts["train"], texts["validation"], texts["test"]) == ("train text\n", "valid text\n", "test text\n")


def test_text_files_folder_without_text_is_a_clear_error(tmp_path):
    (tmp_path / "readme.md").write_text("hi")
    with pytest.raises(DataError, match=r"data.path=.* holds no text files \(\*.txt"):
        load_corpus("text_files", path=str(tmp_path))
    with pytest.raises(DataError, match="needs data.path"):
        load_corpus("text_files")
    (tmp_path / "x.txt").write_text("some text\n")
    with pytest.raises(DataError, match=r"split_fractions=\[1.2, 0.1\]"):
        load_corpus("text_files", path=str(tmp_path), split_fractions=[1.2, 0.1])
