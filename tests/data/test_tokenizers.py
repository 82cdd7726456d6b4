import numpy as np
import pytest

from seqlab.data.tokenizers import CharTokenizer, build_tokenizer, load_tokenizer
from seqlab.errors import ConfigError, DataError


def test_char_vocabulary_comes_from_training_text_only():
    tok = CharTokenizer.fit("hello world")
    assert tok.vocab_size == len(set("hello world")) + 1  # + <unk>
    ids = tok.encode("hold")
    assert ids.dtype == np.int32 and (ids > 0).all()
    assert tok.decode(ids) == "hold"


def test_unknown_characters_map_to_unk_and_count_as_oov():
    tok = CharTokenizer.fit("abc")
    ids = tok.encode("abxc")
    assert ids.tolist()[2] == tok.unk_id == 0
    assert tok.oov_rate("abxc") == pytest.approx(0.25)
    assert tok.decode(ids) == "ab\ufffdc"


def test_non_bmp_characters_take_the_slow_path_correctly():
    tok = CharTokenizer.fit("a😀b")
    assert tok.decode(tok.encode("b😀a")) == "b😀a"


def test_ids_are_stable_and_round_trip_through_save(tmp_path):
    text = "To be, or not to be: that is the question.\n"
    tok = CharTokenizer.fit(text)
    again = load_tokenizer(tok.save(tmp_path / "tok.json"))
    np.testing.assert_array_equal(again.encode(text), tok.encode(text))
    assert again.decode(again.encode(text)) == text
    assert CharTokenizer.fit(text[::-1]).encode(text).tolist() == tok.encode(text).tolist()


def test_bad_tokenizer_inputs_are_clear_errors():
    with pytest.raises(DataError, match="empty training text"):
        CharTokenizer.fit("")
    with pytest.raises(ConfigError, match="unknown tokenizer 'morse'"):
        build_tokenizer("morse", "abc")
