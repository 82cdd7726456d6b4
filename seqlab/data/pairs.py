"""Parallel text (translation pairs): reading, subword vocabularies, encoding.

The corpus is one file per split and language, line ``i`` of the source file
being the translation of line ``i`` of the target file:

    $SEQLAB_DATA_DIR/multi30k/{train,val,test_2016_flickr}.{de,en}.gz

(plain files without ``.gz`` are read too). Every line must decode as UTF-8;
the two sides of a split must have as many lines. Either failure is a
:class:`~seqlab.errors.DataError` naming the file (and the line, or both
counts).

Token ids of a :class:`SubwordVocab` put the specials first, the same in
every vocabulary:

    0 <pad>   1 <bos>   2 <eos>   3 <unk>   4... BPE pieces

The pieces come from seqlab's byte-level BPE
(:class:`~seqlab.data.tokenizers.BPETokenizer`), trained on the training split
only: one vocabulary over both languages (``shared``, what lets a model tie
source and target embeddings) or one per language. Every line is encoded with
a leading space, so a sentence's first word is the same piece as the word in
mid-sentence (`` Ein`` and ``Ein`` would otherwise be two pieces);
:meth:`SubwordVocab.decode` removes it again.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
from pathlib import Path

import numpy as np

from seqlab.data.corpora import resolve_data_dir
from seqlab.data.tokenizers import UNK, BPETokenizer
from seqlab.errors import ConfigError, DataError, DataNotFoundError

log = logging.getLogger(__name__)

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIALS = (PAD, BOS, EOS)  # then the BPE's own <unk> (its id 0 -> 3)
SPLITS = ("train", "validation", "test")

#: Known parallel corpora: split -> file stem, and the language pair.
CORPORA = {
    "multi30k": {
        "files": {"train": "train", "validation": "val", "test": "test_2016_flickr"},
        "languages": ("de", "en"),
    },
}
VOCABULARIES = ("shared", "separate")
LENGTH_POLICIES = ("filter", "truncate")


# ----------------------------------------------------------------------- reading
def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (gzip if the name ends in ``.gz``), without newlines.

    Raises:
        DataError: a line that is not UTF-8, naming the file and the line (from 1).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    lines = []
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}, line {number}: not UTF-8 ({err.reason} at byte {err.start}: "
                    f"{raw[max(err.start - 10, 0): err.start + 10]!r}); re-encode the file as UTF-8"
                ) from None
            lines.append(line.rstrip("\r\n"))
    return lines


@dataclasses.dataclass(frozen=True)
class ParallelCorpus:
    """Sentence pairs of the splits ``train``, ``validation`` and ``test``.

    ``source[split][i]`` translates to ``target[split][i]``.
    """

    name: str
    source_lang: str
    target_lang: str
    source: dict[str, list[str]]
    target: dict[str, list[str]]
    folder: Path

    def size(self, split: str) -> int:
        return len(self.source[split])


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def load_parallel_corpus(
    name: str = "multi30k",
    *,
    source_lang: str = "de",
    target_lang: str = "en",
    path: str | None = None,
    data_dir: str | None = None,
    limit: int | None = None,
) -> ParallelCorpus:
    """Read the three splits of corpus ``name`` from ``path`` or ``$SEQLAB_DATA_DIR/<name>``.

    Args:
        name: a key of :data:`CORPORA`.
        source_lang, target_lang: the translation direction (``de`` -> ``en``).
        path: the corpus folder; None: ``$SEQLAB_DATA_DIR/<name>``.
        data_dir: overrides ``$SEQLAB_DATA_DIR``.
        limit: keep the first ``limit`` pairs of every split (quick runs).

    Raises:
        DataNotFoundError: a file is missing (the message names the folder,
            the file and ``SEQLAB_DATA_DIR``).
        DataError: the two sides of a split differ in length, or a line is
            not UTF-8.
    """
    if name not in CORPORA:
        raise ConfigError(f"unknown parallel corpus data.name={name!r}; known: {sorted(CORPORA)}")
    spec = CORPORA[name]
    languages = spec["languages"]
    for key, lang in (("source_lang", source_lang), ("target_lang", target_lang)):
        if lang not in languages:
            raise ConfigError(f"data.{key}={lang!r} is not a language of {name}; choose one of {list(languages)}")
    if source_lang == target_lang:
        raise ConfigError(f"data.source_lang and data.target_lang are both {source_lang!r}; pick two languages")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ConfigError(f"data.limit must be a positive integer or null, got {limit!r}")
    if path:
        folder = Path(path).expanduser().resolve()
    else:
        root = resolve_data_dir(data_dir)
        if root is None:
            raise DataNotFoundError(
                f"corpus {name!r} not found: data.path and $SEQLAB_DATA_DIR are both unset. "
                f"Fix: set SEQLAB_DATA_DIR to a folder holding {name}/ (e.g. SEQLAB_DATA_DIR=../shared/data) "
                "or pass data.path=<folder>"
            )
        folder = root / name
    source, target = {}, {}
    for split, stem in spec["files"].items():
        sides = {}
        for lang in (source_lang, target_lang):
            file = _find(folder, f"{stem}.{lang}")
            if file is None:
                raise DataNotFoundError(
                    f"corpus {name!r}: {folder / f'{stem}.{lang}.gz'} not found (nor without .gz). "
                    f"Fix: set SEQLAB_DATA_DIR to a folder holding {name}/ (e.g. SEQLAB_DATA_DIR=../shared/data) "
                    "or pass data.path=<folder>"
                )
            sides[lang] = (file, read_lines(file))
        (src_file, src), (tgt_file, tgt) = sides[source_lang], sides[target_lang]
        if len(src) != len(tgt):
            raise DataError(
                f"corpus {name!r}, split {split}: {src_file} has {len(src)} lines but {tgt_file} has "
                f"{len(tgt)}; line i of one must translate line i of the other (fix or replace the files)"
            )
        if limit is not None:
            src, tgt = src[:limit], tgt[:limit]
        source[split], target[split] = src, tgt
    return ParallelCorpus(name, source_lang, target_lang, source, target, folder)


# --------------------------------------------------------------------- vocabulary
class SubwordVocab:
    """Byte-level BPE pieces behind the specials ``<pad>=0, <bos>=1, <eos>=2, <unk>=3``.

    Args:
        bpe: a fitted :class:`~seqlab.data.tokenizers.BPETokenizer`; its
            ``<unk>`` (id 0) becomes id 3, its piece ``i`` becomes ``i + 3``.

    Example:

    >>> vocab = SubwordVocab.fit(["ein Hund", "a dog", "ein Hund läuft"], vocab_size=24)
    >>> ids = vocab.encode("ein Hund")
    >>> bool((ids >= 4).all()), vocab.decode([*ids, vocab.eos_id, 9])
    (True, 'ein Hund')
    """

    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID
    offset = len(SPECIALS)

    def __init__(self, bpe: BPETokenizer):
        if bpe.unk_id != 0:
            raise ConfigError(f"SubwordVocab needs a BPE whose <unk> is id 0, got {bpe.unk_id}")
        self.bpe = bpe

    @classmethod
    def fit(cls, lines: list[str], vocab_size: int, min_frequency: int = 2) -> SubwordVocab:
        """Train the BPE on ``lines`` to ``vocab_size`` ids in all (the 4 specials included)."""
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= cls.offset + 1:
            raise ConfigError(
                f"data.vocab_size={vocab_size!r} must be an integer > {cls.offset + 1} "
                f"(the {cls.offset + 1} specials <pad>, <bos>, <eos>, <unk> and at least one piece)"
            )
        text = "\n".join(" " + line for line in lines)
        try:
            bpe = BPETokenizer.fit(text, vocab_size=vocab_size - cls.offset, min_frequency=min_frequency)
        except ConfigError as err:
            import re

            only = re.search(r"gives only (\d+) tokens", str(err))
            most = f"; use data.vocab_size <= {int(only.group(1)) + cls.offset}" if only else ""
            least = re.search(r"vocab_size >= (\d+)", str(err))
            most += f"; use data.vocab_size >= {int(least.group(1)) + cls.offset}" if least else ""
            raise ConfigError(
                f"data.vocab_size={vocab_size} does not fit this training text (min_frequency="
                f"{min_frequency}){most}. BPE: {err}"
            ) from None
        return cls(bpe)

    @property
    def vocab_size(self) -> int:
        return self.bpe.vocab_size + self.offset

    def encode_batch(self, lines: list[str]) -> list[np.ndarray]:
        """The piece ids of every line (no ``<bos>``/``<eos>``), int32."""
        encodings = self.bpe.hf.encode_batch([" " + line for line in lines])
        return [np.asarray(e.ids, dtype=np.int32) + self.offset for e in encodings]

    def encode(self, line: str) -> np.ndarray:
        return self.encode_batch([line])[0]

    def decode(self, ids) -> str:
        """Text of ``ids`` up to the first ``<eos>``; ``<pad>`` and ``<bos>`` are dropped."""
        pieces = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if i == self.eos_id:
                break
            if i >= self.unk_id:
                pieces.append(i - self.offset)
        text = self.bpe.decode(pieces) if pieces else ""
        return text[1:] if text.startswith(" ") else text

    def decode_batch(self, rows) -> list[str]:
        return [self.decode(row) for row in rows]

    def oov_rate(self, lines: list[str]) -> float:
        """Share of the pieces of ``lines`` that are ``<unk>`` (characters never seen in training)."""
        ids = self.encode_batch(lines)
        total = sum(row.size for row in ids)
        return float(sum(int((row == self.unk_id).sum()) for row in ids) / total) if total else 0.0

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {"kind": "subword_vocab", "specials": [*SPECIALS, UNK], "bpe": self.bpe.to_config()}
        path.write_text(json.dumps(config, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> SubwordVocab:
        config = json.loads(Path(path).read_text())
        if config.get("kind") != "subword_vocab":
            raise ConfigError(f"{path} is not a SubwordVocab file (kind {config.get('kind')!r})")
        return cls(BPETokenizer.from_config(config["bpe"]))


def fit_vocabularies(
    corpus: ParallelCorpus, vocabulary: str = "shared", vocab_size: int = 8000, min_frequency: int = 2
) -> tuple[SubwordVocab, SubwordVocab]:
    """``(source_vocab, target_vocab)`` trained on the training split only.

    ``vocabulary="shared"``: one BPE over both sides (the same object twice);
    ``"separate"``: one per language, each of ``vocab_size``.
    """
    if vocabulary not in VOCABULARIES:
        raise ConfigError(f"data.vocabulary={vocabulary!r} is unknown; choose one of {list(VOCABULARIES)}")
    src, tgt = corpus.source["train"], corpus.target["train"]
    if vocabulary == "shared":
        vocab = SubwordVocab.fit([*src, *tgt], vocab_size, min_frequency)
        return vocab, vocab
    return SubwordVocab.fit(src, vocab_size, min_frequency), SubwordVocab.fit(tgt, vocab_size, min_frequency)


# ----------------------------------------------------------------------- encoding
@dataclasses.dataclass
class EncodedPairs:
    """One split as model sequences (each a 1-D int32 array, no padding).

    ``source``: pieces + ``<eos>``; ``target_in``: ``<bos>`` + pieces;
    ``target_out``: pieces + ``<eos>`` (``target_in`` shifted by one).
    ``index``: the corpus line of each pair (filtering drops lines).
    """

    source: list[np.ndarray]
    target_in: list[np.ndarray]
    target_out: list[np.ndarray]
    index: np.ndarray
    truncated: int = 0
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.source)

    def source_lengths(self) -> np.ndarray:
        return np.array([s.size for s in self.source], dtype=np.int64)

    def target_lengths(self) -> np.ndarray:
        return np.array([t.size for t in self.target_in], dtype=np.int64)


def encode_pairs(
    source_vocab: SubwordVocab,
    target_vocab: SubwordVocab,
    source_lines: list[str],
    target_lines: list[str],
    *,
    max_source_len: int,
    max_target_len: int,
    policy: str = "truncate",
) -> EncodedPairs:
    """Encode aligned lines; a pair longer than the maxima is cut or dropped.

    Lengths count what the model sees: ``len(source)`` (pieces + ``<eos>``)
    ``<= max_source_len`` and ``len(target_in)`` (``<bos>`` + pieces)
    ``<= max_target_len``. ``policy="truncate"`` cuts the pieces (the
    ``<eos>`` stays); ``"filter"`` drops the pair (training only: validation
    and test are never filtered, or the test score would skip sentences).
    """
    if policy not in LENGTH_POLICIES:
        raise ConfigError(f"data.length_policy={policy!r} is unknown; choose one of {list(LENGTH_POLICIES)}")
    for key, value in (("max_source_len", max_source_len), ("max_target_len", max_target_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ConfigError(f"data.{key} must be an integer >= 2, got {value!r}")
    eos, bos = np.array([EOS_ID], np.int32), np.array([BOS_ID], np.int32)
    out = EncodedPairs([], [], [], np.zeros(0, np.int64))
    kept = []
    src_ids = source_vocab.encode_batch(source_lines)
    tgt_ids = target_vocab.encode_batch(target_lines)
    for i, (s, t) in enumerate(zip(src_ids, tgt_ids, strict=True)):
        too_long = s.size + 1 > max_source_len or t.size + 1 > max_target_len
        if too_long:
            if policy == "filter":
                out.dropped += 1
                continue
            out.truncated += 1
            s, t = s[: max_source_len - 1], t[: max_target_len - 1]
        out.source.append(np.concatenate([s, eos]))
        out.target_in.append(np.concatenate([bos, t]))
        out.target_out.append(np.concatenate([t, eos]))
        kept.append(i)
    out.index = np.asarray(kept, dtype=np.int64)
    return out
