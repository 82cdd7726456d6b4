"""Tokenizers: text <-> integer ids, fitted on the training split only.

Every tokenizer has the same small surface, so the rest of seqlab never asks
which one it holds:

- ``fit(text)`` (classmethod) builds the vocabulary from training text;
- ``encode(text) -> np.ndarray[int32]`` and ``decode(ids) -> str``;
- ``vocab_size`` and ``oov_rate(text)`` (share of tokens mapped to ``<unk>``);
- ``save(path)`` / :func:`load_tokenizer` (JSON, logged with the run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np

from seqlab.errors import ConfigError, DataError

UNK = "<unk>"


class Tokenizer:
    """Base class; subclasses register themselves by ``kind``."""

    kind: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Tokenizer]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Tokenizer.registry[cls.kind] = cls

    # -- interface -----------------------------------------------------
    @classmethod
    def fit(cls, text: str, **options) -> Tokenizer:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, text: str) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, ids) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_config(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict) -> Tokenizer:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- shared --------------------------------------------------------
    unk_id: int = 0

    def oov_rate(self, text: str) -> float:
        """Fraction of the tokens of ``text`` that map to ``<unk>``."""
        ids = self.encode(text)
        return float(np.mean(ids == self.unk_id)) if ids.size else 0.0

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"kind": self.kind, **self.to_config()}, ensure_ascii=False))
        return path


class CharTokenizer(Tokenizer):
    """One id per character seen in training; id 0 is ``<unk>`` for the rest.

    The vocabulary is sorted, so the same training text always gives the same
    ids (a checkpoint and its tokenizer stay in step across runs).
    """

    kind = "char"

    def __init__(self, chars: list[str]):
        if len(set(chars)) != len(chars):
            raise ConfigError("CharTokenizer: the character list has duplicates")
        self.chars = list(chars)
        self._index = {c: i + 1 for i, c in enumerate(self.chars)}
        # Lookup table for the common case (code points < 65536) makes encode
        # a vectorised gather instead of a Python loop over 1M characters.
        self._table = np.zeros(0x10000, dtype=np.int32)
        for c, i in self._index.items():
            if ord(c) < 0x10000:
                self._table[ord(c)] = i

    @classmethod
    def fit(cls, text: str, **options) -> CharTokenizer:
        if options:
            raise ConfigError(f"CharTokenizer takes no options, got {sorted(options)}")
        if not text:
            raise DataError("cannot fit a character vocabulary on empty training text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        if codes.size and codes.max() >= 0x10000:
            return np.array([self._index.get(c, 0) for c in text], dtype=np.int32)
        return self._table[codes]

    def decode(self, ids) -> str:
        ids = np.asarray(ids).reshape(-1)
        return "".join(self.chars[i - 1] if 0 < i <= len(self.chars) else "\ufffd" for i in ids)

    def to_config(self) -> dict:
        return {"chars": self.chars}

    @classmethod
    def from_config(cls, config: dict) -> CharTokenizer:
        return cls(config["chars"])


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load any tokenizer saved with :meth:`Tokenizer.save`."""
    config = json.loads(Path(path).read_text())
    kind = config.pop("kind", None)
    if kind not in Tokenizer.registry:
        raise ConfigError(
            f"{path}: unknown tokenizer kind {kind!r}; known: {sorted(Tokenizer.registry)}"
        )
    return Tokenizer.registry[kind].from_config(config)


def build_tokenizer(kind: str, text: str, **options) -> Tokenizer:
    """Fit the tokenizer named ``kind`` (``char``, ...) on training ``text``."""
    if kind not in Tokenizer.registry:
        raise ConfigError(
            f"unknown tokenizer {kind!r} (data.tokenizer); choose one of {sorted(Tokenizer.registry)}"
        )
    return Tokenizer.registry[kind].fit(text, **options)
