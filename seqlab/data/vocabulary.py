"""Tokens <-> ids: :class:`Vocabulary`, the special tokens first (by default
``<pad>`` = 0, id 0 being padding everywhere, and ``<unk>`` = 1, the id of
every token it has not seen).

A vocabulary is fitted on the training split only (:meth:`Vocabulary.build`)
and saved beside the model as ``vocab.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from seqlab.errors import ConfigError, DataError

PAD = "<pad>"
UNK = "<unk>"


class Vocabulary:
    """Tokens <-> ids with the special tokens first: ``<pad>`` = 0, ``<unk>`` = 1.

    Built from training sequences only (:meth:`build`): tokens seen at least
    ``min_count`` times, most frequent first (ties in sorted order), at most
    ``max_size`` ids in all. Unknown tokens encode to ``<unk>``.

    Example:

    >>> v = Vocabulary.build([["a", "b", "a"], ["c"]], min_count=1)
    >>> v.tokens
    ['<pad>', '<unk>', 'a', 'b', 'c']
    >>> v.encode(["a", "z"]).tolist()
    [2, 1]
    """

    def __init__(self, tokens: Sequence[str], specials: Sequence[str] = (PAD, UNK)):
        self.tokens = list(tokens)
        self.specials = list(specials)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise DataError("Vocabulary: duplicate tokens")
        self.unk_id = self.index.get(UNK, -1)

    @classmethod
    def build(
        cls,
        sequences: Iterable[Sequence[str]],
        min_count: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (PAD, UNK),
    ) -> Vocabulary:
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ConfigError(f"data.min_count must be a positive integer, got {min_count!r}")
        counts = Counter(t for seq in sequences for t in seq)
        for s in specials:
            counts.pop(s, None)
        kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max(0, int(max_size) - len(specials))]
        return cls([*specials, *kept], specials)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        if self.unk_id < 0:
            try:
                return np.array([self.index[t] for t in tokens], np.int32)
            except KeyError as err:
                raise DataError(f"token {err.args[0]!r} is not in the vocabulary (no <unk>)") from None
        return np.array([self.index.get(t, self.unk_id) for t in tokens], np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps({"tokens": self.tokens, "specials": self.specials}, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        config = json.loads(Path(path).read_text())
        return cls(config["tokens"], config["specials"])
