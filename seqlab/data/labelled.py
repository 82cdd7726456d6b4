"""Labelled sequences from plain files: sentiment, spam, surnames, first names.

Four tasks, one builder each, all returning a :class:`DataBundle`:

``build_rt_polarity_data`` (many-to-one, words)
    Pang & Lee's sentence polarity v1.0: ``rt-polarity.pos`` / ``.neg``,
    5,331 lines each, **Windows-1252**, lower-cased and pre-tokenised (split
    on whitespace). No official split: stratified ``num_folds``-fold
    cross-validation; ``data.fold`` is the test fold, ``validation_fraction``
    of the other folds is held out for validation, the rest trains. The folds
    depend on ``split_seed`` only, so the children of
    ``seqlab-train -m experiment=sentiment_rnn data.fold=range(10)`` share
    them whatever ``trainer.seed`` is.

``build_sms_spam_data`` (many-to-one, words)
    ``SMSSpamCollection``: ``label<TAB>message``, 4,827 ham / 747 spam lines
    with 403 exact duplicates (same label and message). The duplicates are
    removed **before** the split (5,171 distinct messages), else a message
    can sit in train and test at once. Stratified train / validation / test
    by ``split_fractions``. Test is scored with accuracy and the spam class's
    precision, recall and F1 (scikit-learn).

``build_names_data`` (characters; ``task: classify | generate``)
    18 ``<Language>.txt`` files, 20,074 lines. Lines are stripped and the 24
    ``To The First Page`` lines of ``Russian.txt`` (web-page debris) dropped
    (20,050 left). The split is by **distinct name**: every occurrence of a
    name, in any language, lands in the same split, so no name is in two
    splits (the data holds 2,059 in-file repeats and 465 names in several
    languages). With ``deduplicate`` each (name, language) pair counts once
    (18,013 pairs, 17,451 distinct names; Russian is then 51.9 % rather than
    the 46.9 % of the raw lines). ``classify``: language classification
    from characters. ``generate``: a language-conditioned character LM
    (``model_kwargs`` gives ``num_conditions``); test reports the loss per
    character and samples names per language: the share that are new (not a
    training name) and, with ``classifier_path`` (a ``.keras`` classifier
    trained with ``task=classify`` and the same split), the share the
    classifier assigns to the requested language.

``build_makemore_data`` (characters, unconditioned LM)
    Karpathy's ``names.txt``: 32,033 lower-case first names (29,494
    distinct). Split by distinct name (``test_size`` and ``validation_size``
    distinct names, each with its repeats, as makemore holds out 1,000 names
    for test), so none leaks. Test
    reports the loss per character (nats, the end token included).

Encoding and batching, shared by the tasks (and :mod:`seqlab.data.tagging`):
id 0 is padding everywhere; a :class:`Vocabulary` is fitted on the training
split only; batches are bucketed by length (``bucket_width``): every batch is
cut to its longest sequence rounded up to a multiple of ``bucket_width``, so
there are few distinct shapes (a fused recurrent kernel compiles once per
length). Training batches are reshuffled every epoch from ``seed``; the
number of batches is exact (``steps_per_epoch``).

Character LM sequences are ``<s> c_1 ... c_n`` -> ``c_1 ... c_n </s>`` with
one boundary token for both ends (id 1, as makemore's ``.``); padded target
positions carry sample weight 0.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from seqlab.data.bundle import DataBundle
from seqlab.data.corpora import resolve_data_dir
from seqlab.errors import ConfigError, DataError, DataNotFoundError
from seqlab.training.context import RunCallback

log = logging.getLogger(__name__)

PAD = "<pad>"
UNK = "<unk>"
BOUNDARY = "<s>"  # start and end of a name in the character LMs
NAMES_TASKS = ("classify", "generate")
NAMES_NOISE = "To The First Page"


# ----------------------------------------------------------------- reading
def data_folder(name: str, path: str | None, files: Sequence[str]) -> Path:
    """``path`` if given, else ``$SEQLAB_DATA_DIR/<name>``, checked to hold ``files``.

    Raises:
        DataNotFoundError: naming ``SEQLAB_DATA_DIR``, the folder tried and the
            missing files.
    """
    root = resolve_data_dir()
    if path:
        folder = Path(path).expanduser().resolve()
    elif root is not None:
        folder = root / name
    else:
        raise DataNotFoundError(
            f"dataset {name!r}: data.path and $SEQLAB_DATA_DIR are both unset. Fix: set "
            f"SEQLAB_DATA_DIR to a folder holding {name}/ (e.g. SEQLAB_DATA_DIR=../shared/data) "
            f"or pass data.path=<folder with {', '.join(files)}>"
        )
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise DataNotFoundError(
            f"dataset {name!r}: {folder} lacks {', '.join(missing)}. Fix: set SEQLAB_DATA_DIR to "
            f"a folder holding {name}/ (see shared/data/README.md) or pass data.path=<folder>"
        )
    return folder


def read_lines(path: Path, encoding: str) -> list[str]:
    """The lines of ``path`` decoded with ``encoding``, line ends removed.

    Raises:
        DataError: naming the file, the line number and the offending byte
            when a line is not valid ``encoding``.
    """
    raw = Path(path).read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            out.append(line.decode(encoding).rstrip("\r"))
        except UnicodeDecodeError as err:
            raise DataError(
                f"{path}, line {number}: not valid {encoding} (byte {line[err.start]:#04x} at "
                f"column {err.start + 1}: {err.reason}); the file is corrupt or in another encoding"
            ) from None
    return out


def read_rt_polarity(folder: Path) -> tuple[list[str], np.ndarray]:
    """Texts and labels (1 = positive, 0 = negative), positives first.

    Both files are Windows-1252 (cp1252; bytes 0x81, 0x8D, 0x8F, 0x90, 0x9D
    are undefined there and raise).
    """
    pos = read_lines(folder / "rt-polarity.pos", "cp1252")
    neg = read_lines(folder / "rt-polarity.neg", "cp1252")
    return pos + neg, np.array([1] * len(pos) + [0] * len(neg), np.int32)


def read_sms_spam(path: Path) -> list[tuple[str, str]]:
    """``(label, message)`` per line of ``SMSSpamCollection`` (UTF-8).

    Raises:
        DataError: naming file and line for a line without exactly one tab,
            or a label other than ``ham``/``spam``.
    """
    rows = []
    for number, line in enumerate(read_lines(path, "utf-8"), start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(
                f"{path}, line {number}: expected 2 tab-separated fields (label, message), "
                f"got {len(fields)}: {line[:60]!r}"
            )
        if fields[0] not in ("ham", "spam"):
            raise DataError(f"{path}, line {number}: label must be ham or spam, got {fields[0]!r}")
        rows.append((fields[0], fields[1]))
    return rows


def read_names(folder: Path) -> list[tuple[str, str]]:
    """``(line, language)`` for every line of every ``<Language>.txt``, unchanged
    (languages in file-name order)."""
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise DataNotFoundError(f"dataset 'names': no <Language>.txt files in {folder}")
    return [(line, f.stem) for f in files for line in read_lines(f, "utf-8")]


def clean_names(rows: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Strip each name (trailing spaces in Chinese/Korean), drop empty lines
    and the ``To The First Page`` debris (also with a no-break space)."""
    out = []
    for name, language in rows:
        name = name.replace("\u00a0", " ").strip()
        if name and " ".join(name.split()) != NAMES_NOISE:
            out.append((name, language))
    return out


def read_makemore(path: Path) -> list[str]:
    """The names of ``names.txt`` (stripped, no empty items)."""
    return [line.strip() for line in read_lines(path, "utf-8") if line.strip()]


# --------------------------------------------------------------- splitting
def _check_seed(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"data.{key} must be a non-negative integer, got {value!r}")


def kfold_assignment(labels: np.ndarray, num_folds: int, seed: int = 0) -> np.ndarray:
    """The fold (``0 .. num_folds-1``) of every example, stratified by label.

    The examples of each class, in a seeded random order, are dealt round
    robin, continuing from one class to the next: every fold gets each class
    in proportion, and fold sizes differ by at most one.

    Example:

    >>> folds = kfold_assignment(np.array([0, 0, 0, 1, 1, 1, 1]), num_folds=3)
    >>> sorted(np.bincount(folds).tolist())
    [2, 2, 3]
    """
    labels = np.asarray(labels)
    if isinstance(num_folds, bool) or not isinstance(num_folds, int) or num_folds < 2:
        raise ConfigError(f"data.num_folds must be an integer >= 2, got {num_folds!r}")
    if num_folds > labels.size:
        raise ConfigError(f"data.num_folds={num_folds} exceeds the {labels.size} examples")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)])
    folds = np.empty(labels.size, np.int64)
    folds[order] = np.arange(labels.size) % num_folds
    return folds


def stratified_fractions(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Indices of consecutive parts with the given ``fractions`` (the last
    part takes the rest), each class cut in the same proportions."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(np.cumsum(fractions) * idx.size).astype(int)
        for i, piece in enumerate(np.split(idx, cuts)):
            parts[i].append(piece)
    return [np.sort(np.concatenate(p)) for p in parts]


def _check_fractions(key: str, fractions) -> tuple[float, ...]:
    try:
        values = tuple(float(f) for f in fractions)
    except TypeError:
        raise ConfigError(f"data.{key} must be a list of fractions, got {fractions!r}") from None
    if not values or any(f <= 0 for f in values) or sum(values) >= 1:
        raise ConfigError(
            f"data.{key} must be positive fractions summing to less than 1 (the rest is test), "
            f"got {list(fractions)!r}"
        )
    return values


def split_by_group(groups: Sequence[str], fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Indices of train / validation / ... / test parts such that equal
    ``groups`` values (e.g. the same name) always share a part.

    The distinct groups, sorted then seeded-shuffled, are cut by
    ``fractions`` (the last part takes the rest).
    """
    distinct = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(distinct))
    cuts = np.round(np.cumsum(fractions) * len(distinct)).astype(int)
    part_of = {}
    for part, members in enumerate(np.split(order, cuts)):
        for m in members:
            part_of[distinct[m]] = part
    assigned = np.array([part_of[g] for g in groups])
    return [np.flatnonzero(assigned == p) for p in range(len(fractions) + 1)]


# --------------------------------------------------------------- vocabulary
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


# ---------------------------------------------------------------- batching
def pad_ids(sequences: Sequence[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad int sequences with 0 to ``[N, length]`` (default: the
    longest; longer ones are cut). Returns ``(ids, lengths)``; trailing
    dimensions (feature columns ``[L, F]``) are kept."""
    lengths = np.array([min(len(s), length) if length else len(s) for s in sequences], np.int64)
    width = int(length or (lengths.max() if lengths.size else 0))
    first = np.asarray(sequences[0]) if len(sequences) else np.zeros(0, np.int32)
    out = np.zeros((len(sequences), width, *first.shape[1:]), np.int32)
    for i, (s, n) in enumerate(zip(sequences, lengths, strict=True)):
        out[i, :n] = np.asarray(s)[:n]
    return out, lengths


def bucket_batches(
    lengths: np.ndarray, batch_size: int, bucket_width: int, rng: np.random.Generator | None = None
) -> list[np.ndarray]:
    """Example indices of each batch: examples grouped by their length rounded
    up to ``bucket_width``; with ``rng``, shuffled within buckets and the
    batches in random order, else in length order. The number of batches,
    ``sum_b ceil(n_b / batch_size)``, does not depend on ``rng``."""
    keys = np.ceil(np.maximum(lengths, 1) / bucket_width).astype(np.int64)
    batches = []
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        if rng is not None:
            idx = rng.permutation(idx)
        batches += [idx[i : i + batch_size] for i in range(0, idx.size, batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def bucketed_dataset(
    arrays: dict[str, np.ndarray],
    lengths: np.ndarray,
    element: Callable[[dict[str, Any]], tuple],
    *,
    batch_size: int,
    bucket_width: int,
    shuffle: bool,
    seed: int = 0,
    time_keys: Sequence[str] = (),
) -> tuple[tf.data.Dataset, int]:
    """Batches of ``element(batch)`` with the arrays of ``time_keys`` (``[N, L, ...]``)
    cut to the batch's bucket length; ``(dataset, batches per pass)``.

    Training data (``shuffle``) is reshuffled each pass with the seeds
    ``(seed, pass)``, so a run is reproducible.
    """
    if isinstance(bucket_width, bool) or not isinstance(bucket_width, int) or bucket_width < 1:
        raise ConfigError(f"data.bucket_width must be a positive integer, got {bucket_width!r}")
    lengths = np.asarray(lengths)
    width = max((arrays[k].shape[1] for k in time_keys), default=0)
    num_batches = len(bucket_batches(lengths, batch_size, bucket_width))
    passes = [0]

    def generate():
        rng = np.random.default_rng([seed, passes[0]]) if shuffle else None
        passes[0] += 1
        for idx in bucket_batches(lengths, batch_size, bucket_width, rng):
            cut = min(width, int(math.ceil(max(int(lengths[idx].max()), 1) / bucket_width) * bucket_width))
            yield {k: (v[idx, :cut] if k in time_keys else v[idx]) for k, v in arrays.items()}

    signature = {
        k: tf.TensorSpec((None, None, *v.shape[2:]) if k in time_keys else (None, *v.shape[1:]),
                         tf.as_dtype(v.dtype))
        for k, v in arrays.items()
    }
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return ds.map(element, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), num_batches


def _check_batch(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"trainer.batch_size must be a positive integer, got {batch_size!r}")


def _check_max_len(max_len) -> None:
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
        raise ConfigError(f"data.max_len must be a positive integer or null, got {max_len!r}")


# ---------------------------------------------------- sequence classification
def classification_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def classification_metrics() -> list:
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def check_classes(labels: np.ndarray, class_names: Sequence[str], where: str) -> None:
    """A classifier needs at least two classes in its training labels."""
    present = np.unique(labels)
    if present.size < 2:
        only = class_names[int(present[0])] if present.size else "none"
        raise DataError(
            f"{where}: the training labels hold {present.size} class ({only!r}); a classifier "
            f"needs at least two. Check the data files (an empty or missing class file?)"
        )


def classification_scores(
    y_true: np.ndarray, y_pred: np.ndarray, positive: int | None = None
) -> dict[str, float]:
    """Accuracy, and for a binary task the ``positive`` class's precision,
    recall and F1 (scikit-learn; 0 where undefined)."""
    from sklearn.metrics import precision_recall_fscore_support

    scores = {"accuracy": float(np.mean(y_true == y_pred))}
    if positive is not None:
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=[positive], average=None, zero_division=0
        )
        scores.update(precision=float(p[0]), recall=float(r[0]), f1=float(f[0]))
    return scores


def predict_logits(model: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, logits)`` over a ``(x, y)`` dataset, in its order."""
    trues, logits = [], []
    for x, y in dataset:
        trues.append(np.asarray(y))
        logits.append(np.asarray(model.predict_on_batch(x)))
    return np.concatenate(trues), np.concatenate(logits)


def classification_test_scores(model, dataset, positive: int | None = None) -> dict[str, float]:
    """The test scores of a classifier: ``loss`` (mean cross-entropy),
    ``accuracy`` and, for a binary task, the positive class's ``precision``,
    ``recall`` and ``f1``."""
    y_true, logits = predict_logits(model, dataset)
    scores = classification_scores(y_true, logits.argmax(-1), positive)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y_true, logits)
    scores["loss"] = float(np.asarray(loss))
    return scores


def _token_classification_bundle(
    *,
    name: str,
    splits: dict[str, tuple[list[list[str]], np.ndarray]],
    class_names: list[str],
    batch_size: int,
    seed: int,
    min_count: int,
    max_len: int | None,
    bucket_width: int,
    positive: int | None,
    info: dict[str, Any],
    specials: Sequence[str] = (PAD, UNK),
) -> DataBundle:
    """Bundle for ``{split: (token lists, labels)}``: a vocabulary from train,
    bucketed padded batches of ``(tokens [B, T], label [B])``."""
    _check_batch(batch_size)
    _check_max_len(max_len)
    train_tokens, train_labels = splits["train"]
    check_classes(train_labels, class_names, name)
    vocab = Vocabulary.build(train_tokens, min_count=min_count, specials=specials)
    datasets, counts = {}, {}
    for split, (tokens, labels) in splits.items():
        if not tokens:
            datasets[split] = None
            continue
        ids, lengths = pad_ids([vocab.encode(t) if len(t) else np.zeros(0, np.int32) for t in tokens], max_len)
        datasets[split], counts[split] = bucketed_dataset(
            {"tokens": ids, "label": labels.astype(np.int32)}, lengths,
            lambda b: (b["tokens"], b["label"]),
            batch_size=batch_size, bucket_width=bucket_width, shuffle=split == "train",
            seed=seed, time_keys=("tokens",),
        )
    test_labels = splits["test"][1]
    majority = int(np.bincount(train_labels, minlength=len(class_names)).argmax())
    info = {
        **info,
        "num_classes": len(class_names),
        "classes": ",".join(class_names),
        "vocab_size": len(vocab),
        **{f"{split}_size": len(tokens) for split, (tokens, _) in splits.items()},
        "majority_class": class_names[majority],
        "majority_test_accuracy": round(float(np.mean(test_labels == majority)), 6),
    }
    log.info("%s: %s", name, info)
    test = datasets.get("test")

    def evaluate_test(model):
        return classification_test_scores(model, test, positive)

    return DataBundle(
        train=datasets["train"],
        validation=datasets.get("validation"),
        test=test,
        model_kwargs={"vocab_size": len(vocab), "num_classes": len(class_names)},
        loss=classification_loss,
        metrics=classification_metrics,
        steps_per_epoch=counts["train"],
        throughput_unit="sequences",
        items_per_batch=batch_size,
        save_artifacts=lambda folder: [vocab.save(Path(folder) / "vocab.json")],
        evaluate_test=evaluate_test if test is not None else None,
        info=info,
    )


def build_rt_polarity_data(
    *,
    batch_size: int,
    seed: int = 0,
    fold: int = 0,
    num_folds: int = 10,
    split_seed: int = 0,
    validation_fraction: float = 0.1,
    min_count: int = 1,
    max_len: int | None = None,
    bucket_width: int = 8,
    path: str | None = None,
) -> DataBundle:
    """Sentence polarity (rt_polarity), fold ``fold`` of a stratified
    ``num_folds``-fold cross-validation (see the module docstring).

    The model receives ``vocab_size`` and ``num_classes=2`` (0 negative, 1
    positive). Test reports accuracy and the positive class's F1.
    """
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < num_folds:
        raise ConfigError(f"data.fold must be an integer in [0, {num_folds}), got {fold!r}")
    _check_seed("split_seed", split_seed)
    if not 0 <= float(validation_fraction) < 1:
        raise ConfigError(f"data.validation_fraction must be in [0, 1), got {validation_fraction!r}")
    folder = data_folder("rt_polarity", path, ["rt-polarity.pos", "rt-polarity.neg"])
    texts, labels = read_rt_polarity(folder)
    check_classes(labels, ["negative", "positive"], f"rt_polarity ({folder})")
    folds = kfold_assignment(labels, num_folds, split_seed)
    test_idx = np.flatnonzero(folds == fold)
    rest = np.flatnonzero(folds != fold)
    if validation_fraction:
        val_part, train_part = stratified_fractions(labels[rest], [float(validation_fraction)], split_seed + 1)
        train_idx, val_idx = rest[train_part], rest[val_part]
    else:
        train_idx, val_idx = rest, rest[:0]
    tokens = [t.split() for t in texts]
    splits = {
        "train": ([tokens[i] for i in train_idx], labels[train_idx]),
        "validation": ([tokens[i] for i in val_idx], labels[val_idx]),
        "test": ([tokens[i] for i in test_idx], labels[test_idx]),
    }
    return _token_classification_bundle(
        name="rt_polarity", splits=splits, class_names=["negative", "positive"],
        batch_size=batch_size, seed=seed, min_count=min_count, max_len=max_len,
        bucket_width=bucket_width, positive=1,
        info={"task": "rt_polarity", "fold": fold, "num_folds": num_folds, "lines": len(texts)},
    )


_SMS_TOKEN = re.compile(r"[a-z0-9]+(?:['.,:/-][a-z0-9]+)*|[^\sa-z0-9]")


def sms_tokens(message: str) -> list[str]:
    """Lower-cased words (with inner ``'.,:/-``: ``don't``, ``1.50``, urls) and
    single other characters (``£``, ``!``).

    Example:

    >>> sms_tokens("FREE entry!! Txt 87121, £1.50/msg")
    ['free', 'entry', '!', '!', 'txt', '87121', ',', '£', '1.50/msg']
    """
    return _SMS_TOKEN.findall(message.lower())


def sms_spam_splits(
    rows: Sequence[tuple[str, str]], fractions: Sequence[float], seed: int
) -> dict[str, list[tuple[str, str]]]:
    """``{train, validation, test}`` lists of ``(label, message)``: exact
    duplicate lines removed first (the first occurrence kept), then a split
    stratified by label."""
    distinct = list(dict.fromkeys(rows))
    labels = np.array([label == "spam" for label, _ in distinct], np.int32)
    parts = stratified_fractions(labels, fractions, seed)
    return {n: [distinct[i] for i in idx] for n, idx in zip(("train", "validation", "test"), parts, strict=True)}


def build_sms_spam_data(
    *,
    batch_size: int,
    seed: int = 0,
    split_seed: int = 0,
    split_fractions: Sequence[float] = (0.8, 0.1),
    min_count: int = 1,
    max_len: int | None = 100,
    bucket_width: int = 8,
    path: str | None = None,
) -> DataBundle:
    """SMS spam (sms_spam): exact duplicates removed, then a stratified
    train / validation / test split by ``split_fractions`` (test: the rest).

    The model receives ``vocab_size`` and ``num_classes=2`` (0 ham, 1 spam).
    Test reports accuracy and the spam class's precision, recall and F1;
    ``data_info.majority_test_accuracy`` is the all-ham baseline.
    """
    fractions = _check_fractions("split_fractions", split_fractions)
    _check_seed("split_seed", split_seed)
    folder = data_folder("sms_spam", path, ["SMSSpamCollection"])
    rows = read_sms_spam(folder / "SMSSpamCollection")
    labels = np.array([1 if label == "spam" else 0 for label, _ in rows], np.int32)
    check_classes(labels, ["ham", "spam"], f"sms_spam ({folder})")
    parts = sms_spam_splits(rows, fractions, split_seed)
    distinct = sum(len(p) for p in parts.values())
    splits = {
        name: ([sms_tokens(m) for _, m in part], np.array([int(lab == "spam") for lab, _ in part], np.int32))
        for name, part in parts.items()
    }
    return _token_classification_bundle(
        name="sms_spam", splits=splits, class_names=["ham", "spam"], batch_size=batch_size,
        seed=seed, min_count=min_count, max_len=max_len, bucket_width=bucket_width, positive=1,
        info={"task": "sms_spam", "lines": len(rows), "duplicates_removed": len(rows) - distinct,
              "majority_all_lines": round(1 - float(np.mean([r[0] == "spam" for r in rows])), 6)},
    )


# ------------------------------------------------------------------- names
def names_splits(
    rows: Sequence[tuple[str, str]], fractions: Sequence[float], seed: int, deduplicate: bool
) -> dict[str, list[tuple[str, str]]]:
    """``{train, validation, test}`` lists of ``(name, language)``, split by
    distinct name (:func:`split_by_group`); ``deduplicate`` keeps each
    (name, language) pair once (first occurrence)."""
    if deduplicate:
        rows = list(dict.fromkeys(rows))
    parts = split_by_group([name for name, _ in rows], fractions, seed)
    return {s: [rows[i] for i in idx] for s, idx in zip(("train", "validation", "test"), parts, strict=True)}


class NameSamples(RunCallback):
    """Writes the names generated at test time to ``samples.txt`` and logs it."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def on_run_end(self):
        if not self.lines or self.context is None:
            return None
        path = self.context.output_dir / "samples.txt"
        path.write_text("\n".join(self.lines) + "\n")
        self.context.log_artifact(path, None)
        return "samples:\n" + "\n".join(self.lines[:20])


def _lm_arrays(names: Sequence[str], vocab: Vocabulary, max_len: int | None) -> tuple[dict, np.ndarray]:
    """``<s> name`` -> ``name </s>`` padded: inputs, targets, weights, lengths."""
    boundary = vocab.index[BOUNDARY]
    seqs = [np.concatenate([[boundary], vocab.encode(n), [boundary]]).astype(np.int32) for n in names]
    inputs, lengths = pad_ids([s[:-1] for s in seqs], max_len)
    targets, _ = pad_ids([s[1:] for s in seqs], max_len)
    weights = (np.arange(inputs.shape[1])[None, :] < lengths[:, None]).astype(np.float32)
    return {"tokens": inputs, "targets": targets, "weights": weights}, lengths


def lm_test_loss(model: keras.Model, dataset: tf.data.Dataset) -> dict[str, float]:
    """Exact loss per character (nats, token-weighted over the whole split),
    its perplexity and bits per character."""
    total = count = 0.0
    for x, y, w in dataset:
        logits = np.asarray(model.predict_on_batch(x), np.float64)
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        nll = -np.take_along_axis(logp, np.asarray(y)[..., None], -1)[..., 0]
        total += float((nll * np.asarray(w)).sum())
        count += float(np.asarray(w).sum())
    loss = total / max(count, 1.0)
    return {"loss": loss, "perplexity": math.exp(loss), "bpc": loss / math.log(2)}


def sample_names(
    model: keras.Model,
    vocab: Vocabulary,
    n: int,
    *,
    conditions: Sequence[int] | None = None,
    temperature: float = 1.0,
    max_len: int = 24,
    seed: int = 0,
) -> list[str]:
    """Names drawn one character at a time until ``</s>`` (at most
    ``max_len`` characters): ``n`` of them, or one per entry of
    ``conditions`` (the condition ids of a conditioned model). All are drawn
    as one batch; the model re-reads the prefix at each step."""
    if temperature <= 0:
        raise ConfigError(f"data.temperature must be positive, got {temperature!r}")
    if conditions is not None:
        conditions = np.asarray(conditions, np.int32)
        n = conditions.size
    rng = np.random.default_rng(seed)
    boundary = vocab.index[BOUNDARY]
    banned = [vocab.index[t] for t in (PAD, UNK) if t in vocab.index]
    prefix = np.full((n, 1), boundary, np.int32)
    done = np.zeros(n, bool)
    for _ in range(max_len):
        x = prefix if conditions is None else {"tokens": prefix, "condition": conditions}
        logits = np.asarray(model.predict_on_batch(x), np.float64)[:, -1] / temperature
        logits[:, banned] = -np.inf
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        # Inverse-CDF draw, one uniform per row.
        nxt = (p.cumsum(-1) < rng.random((n, 1))).sum(-1).clip(0, p.shape[1] - 1).astype(np.int32)
        nxt[done] = 0
        done |= nxt == boundary
        prefix = np.concatenate([prefix, nxt[:, None]], axis=1)
        if done.all():
            break
    names = []
    for row in prefix[:, 1:]:
        chars = []
        for i in row:
            if i in (boundary, 0):
                break
            chars.append(vocab.tokens[i])
        names.append("".join(chars))
    return names


def _char_vocab(names: Iterable[str], specials: Sequence[str]) -> Vocabulary:
    return Vocabulary.build([list(n) for n in names], min_count=1, specials=specials)


def _lm_bundle_parts(splits, vocab, batch_size, seed, bucket_width, conditions=None):
    datasets, counts = {}, {}
    for split, names in splits.items():
        arrays, lengths = _lm_arrays(names, vocab, None)
        if conditions is not None:
            arrays["condition"] = conditions[split]

            def element(b):
                return {"tokens": b["tokens"], "condition": b["condition"]}, b["targets"], b["weights"]
        else:

            def element(b):
                return b["tokens"], b["targets"], b["weights"]

        datasets[split], counts[split] = bucketed_dataset(
            arrays, lengths, element, batch_size=batch_size, bucket_width=bucket_width,
            shuffle=split == "train", seed=seed, time_keys=("tokens", "targets", "weights"),
        )
    return datasets, counts


def _lm_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")


def _lm_metrics():
    from seqlab.metrics import Perplexity

    return [Perplexity(name="perplexity"), keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def build_names_data(
    *,
    batch_size: int,
    seed: int = 0,
    task: str = "classify",
    split_seed: int = 0,
    split_fractions: Sequence[float] = (0.8, 0.1),
    deduplicate: bool = True,
    bucket_width: int = 4,
    samples_per_language: int = 50,
    temperature: float = 1.0,
    classifier_path: str | None = None,
    path: str | None = None,
) -> DataBundle:
    """Surnames by language (names), split by distinct name (see the module docstring).

    ``task="classify"``: characters -> language; the model receives
    ``vocab_size`` and ``num_classes=18``; test reports accuracy beside
    ``data_info.majority_test_accuracy``.

    ``task="generate"``: a language-conditioned character LM; the model
    receives ``vocab_size`` and ``num_conditions=18``; test reports
    ``loss`` (nats per character, ``</s>`` included), ``perplexity``,
    ``bpc`` and, from ``samples_per_language`` names per language at
    ``temperature``, ``new_share`` (not a training name), ``unique_share``
    and, with ``classifier_path``, ``classified_as_requested``.
    """
    if task not in NAMES_TASKS:
        raise ConfigError(f"data.task={task!r} is unknown for names; choose one of {list(NAMES_TASKS)}")
    fractions = _check_fractions("split_fractions", split_fractions)
    _check_seed("split_seed", split_seed)
    _check_batch(batch_size)
    folder = data_folder("names", path, [])
    raw = read_names(folder)
    rows = clean_names(raw)
    languages = sorted({lang for _, lang in rows})
    lang_id = {lang: i for i, lang in enumerate(languages)}
    splits = names_splits(rows, fractions, split_seed, deduplicate)
    info = {"task": f"names_{task}", "lines": len(raw), "clean_lines": len(rows),
            "distinct_names": len({n for n, _ in rows}), "deduplicate": deduplicate}
    if task == "classify":
        return _token_classification_bundle(
            name="names", splits={s: ([list(n) for n, _ in r], np.array([lang_id[g] for _, g in r], np.int32))
                                  for s, r in splits.items()},
            class_names=languages, batch_size=batch_size, seed=seed, min_count=1, max_len=None,
            bucket_width=bucket_width, positive=None, info=info,
        )
    check_classes(np.array([lang_id[g] for _, g in splits["train"]]), languages, "names")
    vocab = _char_vocab((n for n, _ in splits["train"]), (PAD, BOUNDARY, UNK))
    conditions = {s: np.array([lang_id[g] for _, g in r], np.int32) for s, r in splits.items()}
    datasets, counts = _lm_bundle_parts({s: [n for n, _ in r] for s, r in splits.items()}, vocab,
                                        batch_size, seed, bucket_width, conditions)
    train_names = {n for n, _ in splits["train"]}
    samples = NameSamples()
    info.update(vocab_size=len(vocab), num_conditions=len(languages),
                **{f"{s}_size": len(r) for s, r in splits.items()})
    log.info("names (generate): %s", info)

    def evaluate_test(model):
        scores = lm_test_loss(model, datasets["test"])
        requested = np.repeat(np.arange(len(languages)), samples_per_language)
        generated = sample_names(model, vocab, requested.size, conditions=requested,
                                 temperature=temperature, seed=seed)
        for i, lang in enumerate(languages):
            names = generated[i * samples_per_language: (i + 1) * samples_per_language]
            samples.lines.append(f"{lang}: {', '.join(names[:10])}")
        scores["new_share"] = float(np.mean([g not in train_names for g in generated]))
        scores["unique_share"] = len(set(generated)) / len(generated)
        if classifier_path:
            predicted = classify_names(classifier_path, generated,
                                       _char_vocab((n for n, _ in splits["train"]), (PAD, UNK)))
            scores["classified_as_requested"] = float(np.mean(predicted == requested))
        return scores

    return DataBundle(
        train=datasets["train"], validation=datasets["validation"], test=datasets["test"],
        model_kwargs={"vocab_size": len(vocab), "num_conditions": len(languages)},
        loss=_lm_loss, metrics=_lm_metrics, steps_per_epoch=counts["train"],
        throughput_unit="sequences", items_per_batch=batch_size, callbacks=[samples],
        save_artifacts=lambda folder: [vocab.save(Path(folder) / "vocab.json")],
        evaluate_test=evaluate_test, info=info,
    )


def classify_names(classifier_path: str, names: Sequence[str], vocab: Vocabulary) -> np.ndarray:
    """Language ids a saved names classifier (``task=classify``, same split,
    hence the same character vocabulary) predicts for ``names``."""
    path = Path(classifier_path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(
            f"data.classifier_path={classifier_path!r} is not a file; give the .keras model of a "
            "names classifier run (its checkpoints/last.keras) or null"
        )
    classifier = keras.saving.load_model(path, compile=False)
    ids, _ = pad_ids([vocab.encode(list(n)) if n else np.zeros(0, np.int32) for n in names])
    if ids.shape[1] == 0:
        ids = np.zeros((len(names), 1), np.int32)
    return np.asarray(classifier.predict(ids, verbose=0)).argmax(-1)


def build_makemore_data(
    *,
    batch_size: int,
    seed: int = 0,
    split_seed: int = 0,
    test_size: int = 1000,
    validation_size: int = 1000,
    bucket_width: int = 4,
    num_samples: int = 20,
    temperature: float = 1.0,
    path: str | None = None,
) -> DataBundle:
    """US first names (makemore_names) for an unconditioned character LM,
    split by distinct name. The model receives ``vocab_size`` (29: padding,
    the boundary ``<s>``, ``<unk>`` and a-z). Test reports ``loss`` (nats per
    character incl. ``</s>``), ``perplexity``, ``bpc`` and ``new_share`` of
    ``num_samples`` sampled names."""
    _check_seed("split_seed", split_seed)
    _check_batch(batch_size)
    folder = data_folder("makemore_names", path, ["names.txt"])
    names = read_makemore(folder / "names.txt")
    distinct = len(set(names))
    for key, value in (("test_size", test_size), ("validation_size", validation_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"data.{key} must be a positive integer, got {value!r}")
    if test_size + validation_size >= distinct:
        raise ConfigError(
            f"data.test_size + data.validation_size ({test_size + validation_size}) must be below "
            f"the {distinct} distinct names"
        )
    fractions = ((distinct - test_size - validation_size) / distinct, validation_size / distinct)
    parts = split_by_group(names, fractions, split_seed)
    splits = {s: [names[i] for i in idx] for s, idx in zip(("train", "validation", "test"), parts, strict=True)}
    vocab = _char_vocab(splits["train"], (PAD, BOUNDARY, UNK))
    datasets, counts = _lm_bundle_parts(splits, vocab, batch_size, seed, bucket_width)
    train_names = set(splits["train"])
    samples = NameSamples()
    info = {"task": "makemore_names", "names": len(names), "distinct_names": distinct,
            "vocab_size": len(vocab), **{f"{s}_size": len(v) for s, v in splits.items()}}
    log.info("makemore_names: %s", info)

    def evaluate_test(model):
        scores = lm_test_loss(model, datasets["test"])
        generated = sample_names(model, vocab, num_samples, temperature=temperature, seed=seed)
        samples.lines.extend(generated)
        scores["new_share"] = float(np.mean([g not in train_names for g in generated]))
        return scores

    return DataBundle(
        train=datasets["train"], validation=datasets["validation"], test=datasets["test"],
        model_kwargs={"vocab_size": len(vocab)}, loss=_lm_loss, metrics=_lm_metrics,
        steps_per_epoch=counts["train"], throughput_unit="sequences", items_per_batch=batch_size,
        callbacks=[samples], save_artifacts=lambda folder: [vocab.save(Path(folder) / "vocab.json")],
        evaluate_test=evaluate_test, info=info,
    )
