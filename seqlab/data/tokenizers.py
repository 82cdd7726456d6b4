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


EOS = "<eos>"


class WordTokenizer(Tokenizer):
    """Word-level vocabulary in the Mikolov PTB convention.

    Text is split into words on whitespace (``split="whitespace"``, PTB's own
    tokenisation) or into runs of word characters and single punctuation marks
    (``split="punctuation"``). Every newline becomes an ``<eos>`` token. The
    vocabulary holds ``<unk>`` (id 0), ``<eos>`` (id 1, when ``eos``) and the
    most frequent training words (ties broken alphabetically), up to
    ``max_vocab`` types in all (null = every training word). A training text
    that already contains ``<unk>`` (PTB does) keeps it as the same type, so
    PTB's vocabulary comes out as exactly 10,000 types.

    ``decode`` joins words with spaces and turns ``<eos>`` back into newlines.
    """

    kind = "word"
    SPLITS = ("whitespace", "punctuation")

    def __init__(self, words: list[str], *, split: str = "whitespace", eos: bool = True, lowercase: bool = False):
        if split not in self.SPLITS:
            raise ConfigError(
                f"data.tokenizer_options.split={split!r} is unknown; choose one of {list(self.SPLITS)}"
            )
        specials = [UNK, EOS] if eos else [UNK]
        if list(words[: len(specials)]) != specials:
            raise ConfigError(f"WordTokenizer: the vocabulary must start with {specials}")
        if len(set(words)) != len(words):
            raise ConfigError("WordTokenizer: the vocabulary has duplicates")
        self.words = list(words)
        self.split = split
        self.eos = bool(eos)
        self.lowercase = bool(lowercase)
        self._index = {w: i for i, w in enumerate(self.words)}
        self.unk_id = 0
        self.eos_id = 1 if self.eos else None

    # -- text -> words ---------------------------------------------------
    def words_of(self, text: str) -> list[str]:
        """The token strings of ``text`` (``<eos>`` for every newline)."""
        import re

        if self.lowercase:
            text = text.lower()
        pattern = re.compile(r"\S+") if self.split == "whitespace" else re.compile(r"\w+|[^\w\s]")
        lines = text.split("\n")
        out: list[str] = []
        for i, line in enumerate(lines):
            out.extend(pattern.findall(line))
            if self.eos and i < len(lines) - 1:
                out.append(EOS)
        return out

    @classmethod
    def fit(
        cls,
        text: str,
        max_vocab: int | None = None,
        split: str = "whitespace",
        eos: bool = True,
        lowercase: bool = False,
        **options,
    ) -> WordTokenizer:
        if options:
            raise ConfigError(
                f"WordTokenizer: unknown data.tokenizer_options {sorted(options)}; "
                "known: max_vocab, split, eos, lowercase"
            )
        specials = [UNK, EOS] if eos else [UNK]
        if max_vocab is not None and (
            not isinstance(max_vocab, int) or isinstance(max_vocab, bool) or max_vocab < len(specials)
        ):
            raise ConfigError(
                f"data.tokenizer_options.max_vocab={max_vocab!r} is too small: the vocabulary needs "
                f"at least {len(specials)} types ({', '.join(specials)}); use a cap >= {len(specials)} "
                "or null for every training word"
            )
        probe = cls(specials, split=split, eos=eos, lowercase=lowercase)
        words = probe.words_of(text)
        if not [w for w in words if w != EOS]:
            raise DataError("cannot fit a word vocabulary on training text without words")
        from collections import Counter

        counts = Counter(w for w in words if w not in specials)
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        if max_vocab is not None:
            ranked = ranked[: max_vocab - len(specials)]
        return cls(specials + ranked, split=split, eos=eos, lowercase=lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> np.ndarray:
        index = self._index
        return np.fromiter((index.get(w, 0) for w in self.words_of(text)), dtype=np.int32)

    def decode(self, ids) -> str:
        ids = np.asarray(ids).reshape(-1)
        lines, line = [], []
        for i in ids.tolist():
            word = self.words[i] if 0 <= i < len(self.words) else UNK
            if self.eos and i == self.eos_id:
                lines.append(" ".join(line))
                line = []
            else:
                line.append(word)
        return "\n".join([*lines, " ".join(line)])

    def oov_rate(self, text: str) -> float:
        """Share of the words of ``text`` outside the vocabulary (a literal
        ``<unk>`` in the text, as in PTB, is a known type, not an OOV)."""
        words = self.words_of(text)
        if not words:
            return 0.0
        return sum(w not in self._index for w in words) / len(words)

    def to_config(self) -> dict:
        return {"words": self.words, "split": self.split, "eos": self.eos, "lowercase": self.lowercase}

    @classmethod
    def from_config(cls, config: dict) -> WordTokenizer:
        return cls(config["words"], split=config["split"], eos=config["eos"], lowercase=config["lowercase"])


class BPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2 style) trained with Hugging Face ``tokenizers``.

    Trained on the training split only, to ``vocab_size`` types including
    ``<unk>`` (id 0). Byte-level pre-tokenisation keeps spaces and newlines,
    so ``decode(encode(text)) == text`` for any text whose characters were
    seen in training; characters never seen in training become ``<unk>``
    (counted by :meth:`oov_rate`).
    """

    kind = "bpe"

    def __init__(self, hf_tokenizer):
        self.hf = hf_tokenizer
        unk = self.hf.token_to_id(UNK)
        if unk is None:
            raise ConfigError("BPETokenizer: the tokenizer has no <unk> token")
        self.unk_id = unk

    @classmethod
    def fit(
        cls, text: str, vocab_size: int = 1000, min_frequency: int = 2, **options
    ) -> BPETokenizer:
        if options:
            raise ConfigError(
                f"BPETokenizer: unknown data.tokenizer_options {sorted(options)}; "
                "known: vocab_size, min_frequency"
            )
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 2:
            raise ConfigError(
                f"data.tokenizer_options.vocab_size={vocab_size!r} must be an integer >= 2"
            )
        if not text:
            raise DataError("cannot fit a BPE vocabulary on empty training text")
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        hf = HFTokenizer(models.BPE(unk_token=UNK))
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=int(min_frequency),
            special_tokens=[UNK],
            show_progress=False,
        )
        # Chunks of lines, so the trainer counts words in parallel; the
        # byte-level pre-tokeniser never merges across a newline anyway.
        lines = text.splitlines(keepends=True)
        chunks = ["".join(lines[i : i + 1000]) for i in range(0, len(lines), 1000)]
        hf.train_from_iterator(chunks, trainer=trainer)
        got = hf.get_vocab_size()
        if got < vocab_size:
            raise ConfigError(
                f"data.tokenizer_options.vocab_size={vocab_size} is larger than this training text "
                f"allows: its alphabet plus every merge seen at least min_frequency={min_frequency} "
                f"times gives only {got} tokens; use vocab_size <= {got} (or lower min_frequency, "
                "or train on more text)"
            )
        if got > vocab_size:
            raise ConfigError(
                f"data.tokenizer_options.vocab_size={vocab_size} is smaller than the training "
                f"alphabet: {got} base tokens (incl. <unk>) are needed before any merge; use "
                f"vocab_size >= {got}"
            )
        return cls(hf)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.hf.encode(text).ids, dtype=np.int32)

    def decode(self, ids) -> str:
        ids = np.asarray(ids).reshape(-1).tolist()
        return self.hf.decode(ids, skip_special_tokens=False)

    def to_config(self) -> dict:
        return {"tokenizer": json.loads(self.hf.to_str())}

    @classmethod
    def from_config(cls, config: dict) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        return cls(HFTokenizer.from_str(json.dumps(config["tokenizer"])))
