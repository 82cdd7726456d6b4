"""Vocabulary: fitted on training tokens, unknown tokens encode to <unk>."""

from __future__ import annotations

from seqlab.data.vocabulary import PAD, UNK, Vocabulary


def test_vocabulary_comes_from_training_tokens():
    vocab = Vocabulary.build([["b", "a", "b"], ["c"]], min_count=2)
    assert vocab.tokens == [PAD, UNK, "b"]
    assert vocab.encode(["b", "a", "zzz"]).tolist() == [2, 1, 1]
