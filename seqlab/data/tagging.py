"""CoNLL-2000 chunking data for aligned many-to-many tagging (POS tags or chunks).

``train.txt.gz`` / ``test.txt.gz``: one token per line, ``word POS chunk``
separated by single spaces, a blank line after every sentence; 8,936 train
and 2,012 test sentences (211,727 / 47,377 tokens). Chunk tags are IOB2
over 11 chunk types. There is no development split: ``validation_fraction``
of the training sentences (seeded by ``split_seed``) is held out.

Tasks (``data.task``):

``pos``
    words -> POS tags (44 in train). Test: token accuracy.
``chunk``
    words (and, with ``input_pos``, the POS column) -> IOB2 chunk tags.
    The POS column of CoNLL-2000 was produced by the Brill tagger and is part
    of the shared task's input, so using it is the standard setting (the
    93.48 F1 of the best shared-task system used it). Test: chunk F1 with
    ``seqeval`` (conlleval-compatible: a chunk counts when its type and both
    boundaries match) beside the token accuracy.

Words: a vocabulary of the training words seen at least ``min_count``
times. Rarer and unseen words map to an *unknown-word signature*
(:func:`word_signature`: capitalisation, digits, hyphen, common suffix, as
the Berkeley parser's ``UNK-`` classes) when ``unk_signatures``, else to
``<unk>``; training sentences thus teach the model what an unseen word of
each shape looks like. Tags: ids from the training tags, 0 = padding.
``I-LST`` occurs only in test (2 tokens): the model cannot predict it, those
tokens count as errors in the test accuracy and seqeval sees the gold tag.

Batches: ``(tokens [B, T], tags [B, T], weights [B, T])`` with weights 0 on
padding; with ``input_pos`` the inputs are ``{"tokens", "features"
[B, T, 1]}``. Bucketed by length as in :mod:`seqlab.data.batching`.
"""

from __future__ import annotations

import gzip
import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqlab.data.batching import _check_batch, bucket_batches, bucketed_dataset, pad_ids
from seqlab.data.bundle import DataBundle
from seqlab.data.files import data_folder
from seqlab.data.splits import _check_seed
from seqlab.data.vocabulary import PAD, UNK, Vocabulary
from seqlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)

TASKS = ("pos", "chunk")
COLUMNS = ("word", "pos", "chunk")
SUFFIXES = ("ing", "ed", "ly", "ion", "ity", "ment", "ness", "er", "est", "al", "ive", "ble",
            "ous", "ic", "ful", "less", "s", "y")
_DIGIT = re.compile(r"\d")

Sentence = tuple[list[str], list[str], list[str]]


def read_conll(path: Path) -> list[Sentence]:
    """Sentences of a CoNLL-2000 file (``.gz`` or plain, ASCII/UTF-8) as
    ``(words, pos, chunks)``; a blank line ends a sentence (the last one may
    lack it).

    Raises:
        DataError: naming file and line for a line without exactly three
            space-separated fields, or bytes that are not UTF-8.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    sentences: list[Sentence] = []
    current: Sentence = ([], [], [])
    with opener(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}, line {number}: not valid UTF-8 (byte {raw[err.start]:#04x} at column "
                    f"{err.start + 1}); the file is corrupt"
                ) from None
            if not line.strip():
                if current[0]:
                    sentences.append(current)
                    current = ([], [], [])
                continue
            fields = line.split()
            if len(fields) != 3:
                raise DataError(
                    f"{path}, line {number}: expected 3 space-separated fields (word POS chunk), "
                    f"got {len(fields)}: {line[:60]!r}"
                )
            for column, value in zip(current, fields, strict=True):
                column.append(value)
    if current[0]:
        sentences.append(current)
    return sentences


def word_signature(word: str) -> str:
    """The unknown-word class of ``word``: ``<unk>`` plus its shape.

    Example:

    >>> word_signature("Reconsidering"), word_signature("1.5-million"), word_signature("acme")
    ('<unk-Cap-ing>', '<unk-lc-num-dash>', '<unk-lc>')
    """
    if word.isupper() and any(c.isalpha() for c in word):
        parts = ["CAPS"]
    elif word[:1].isupper():
        parts = ["Cap"]
    elif any(c.isalpha() for c in word):
        parts = ["lc"]
    else:
        parts = ["sym"]
    if _DIGIT.search(word):
        parts.append("num")
    if "-" in word:
        parts.append("dash")
    lower = word.lower()
    if not _DIGIT.search(word):
        for suffix in SUFFIXES:
            if lower.endswith(suffix) and len(lower) > len(suffix) + 2:
                parts.append(suffix)
                break
    return "<unk-" + "-".join(parts) + ">"


class WordMapper:
    """Training words seen at least ``min_count`` times keep their own id;
    the others become :func:`word_signature` (or ``<unk>``)."""

    def __init__(self, train_words: Sequence[Sequence[str]], min_count: int, signatures: bool):
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ConfigError(f"data.min_count must be a positive integer, got {min_count!r}")
        counts = Counter(w for sent in train_words for w in sent)
        self.known = {w for w, n in counts.items() if n >= min_count}
        self.signatures = signatures
        mapped = [self.map(sent) for sent in train_words]
        self.vocab = Vocabulary.build(mapped, min_count=1)

    def map(self, words: Sequence[str]) -> list[str]:
        if self.signatures:
            return [w if w in self.known else word_signature(w) for w in words]
        return [w if w in self.known else UNK for w in words]

    def encode(self, words: Sequence[str]) -> np.ndarray:
        return self.vocab.encode(self.map(words))


def tagging_loss():
    # mean_with_sample_weight: the mean over real tokens, not over B x T slots.
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")


def tagging_metrics() -> list:
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


class TagSequences(list):
    """Predicted tag strings per sentence, with the mean token cross-entropy as ``loss``."""

    loss: float = math.nan


def tag_sequences(model: keras.Model, dataset: tf.data.Dataset, tags: Vocabulary) -> TagSequences:
    """The predicted tag strings of every sentence of ``dataset``, in its order
    (the padding class is never predicted), and their mean cross-entropy
    over the real tokens (``.loss``; a tag unseen in training has id 0)."""
    out = TagSequences()
    nll = count = 0.0
    for x, y, w in dataset:
        logits = np.array(model.predict_on_batch(x), np.float64)
        shifted = logits - logits.max(-1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        w = np.asarray(w)
        nll -= float((np.take_along_axis(logp, np.asarray(y)[..., None], -1)[..., 0] * w).sum())
        count += float(w.sum())
        logits[..., 0] = -np.inf
        pred = logits.argmax(-1)
        lengths = w.sum(-1).astype(int)
        out += [tags.decode(row[:n]) for row, n in zip(pred, lengths, strict=True)]
    out.loss = nll / max(count, 1.0)
    return out


def chunk_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """Chunk precision, recall and F1 (0..1, not percent) by ``seqeval`` in
    its default, conlleval-compatible mode (0 where undefined)."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    return {
        "chunk_precision": float(precision_score(gold, predicted, zero_division=0)),
        "chunk_recall": float(recall_score(gold, predicted, zero_division=0)),
        "chunk_f1": float(f1_score(gold, predicted, zero_division=0)),
    }


def build_conll2000_data(
    *,
    batch_size: int,
    seed: int = 0,
    task: str = "chunk",
    input_pos: bool | None = None,
    split_seed: int = 0,
    validation_fraction: float = 0.1,
    min_count: int = 2,
    unk_signatures: bool = True,
    bucket_width: int = 8,
    path: str | None = None,
) -> DataBundle:
    """CoNLL-2000 as a tagging task (see the module docstring).

    ``input_pos``: feed the POS column as a per-token feature; None: true
    for ``chunk``, false for ``pos``. The model receives ``vocab_size``,
    ``num_classes`` (the tags incl. padding 0) and, with ``input_pos``,
    ``feature_vocab_sizes=[POS ids]``.
    Test (``evaluate_test``): ``accuracy`` over every test token (``loss``
    too) and, for ``task=chunk``, ``chunk_precision``, ``chunk_recall``,
    ``chunk_f1`` (seqeval).
    """
    if task not in TASKS:
        raise ConfigError(f"data.task={task!r} is unknown for conll2000; choose one of {list(TASKS)}")
    if input_pos is None:
        input_pos = task == "chunk"
    if task == "pos" and input_pos:
        raise ConfigError(
            "data.input_pos=true gives the model the POS column, which data.task=pos must predict; "
            "set data.input_pos=false for the POS task"
        )
    _check_batch(batch_size)
    _check_seed("split_seed", split_seed)
    if not 0 <= float(validation_fraction) < 1:
        raise ConfigError(f"data.validation_fraction must be in [0, 1), got {validation_fraction!r}")
    folder = data_folder("conll2000", path, ["train.txt.gz", "test.txt.gz"])
    train_all = read_conll(folder / "train.txt.gz")
    test = read_conll(folder / "test.txt.gz")
    order = np.random.default_rng(split_seed).permutation(len(train_all))
    n_val = int(round(float(validation_fraction) * len(train_all)))
    splits = {
        "train": [train_all[i] for i in sorted(order[n_val:])],
        "validation": [train_all[i] for i in sorted(order[:n_val])],
        "test": test,
    }
    target = COLUMNS.index(task)
    words = WordMapper([s[0] for s in splits["train"]], min_count, unk_signatures)
    tags = Vocabulary.build([s[target] for s in splits["train"]], specials=(PAD,))
    if len(tags) < 3:
        raise DataError(f"conll2000 ({folder}): the training {task} tags hold one class; need two or more")
    pos_vocab = Vocabulary.build([s[1] for s in splits["train"]]) if input_pos else None

    datasets, counts, gold = {}, {}, {}
    for split, sentences in splits.items():
        if not sentences:
            datasets[split] = None
            continue
        ids, lengths = pad_ids([words.encode(s[0]) for s in sentences])
        labels = [np.array([tags.index.get(t, 0) for t in s[target]], np.int32) for s in sentences]
        y, _ = pad_ids(labels)
        weights = (np.arange(ids.shape[1])[None, :] < lengths[:, None]).astype(np.float32)
        arrays = {"tokens": ids, "tags": y, "weights": weights}
        if pos_vocab is not None:
            arrays["features"] = pad_ids([pos_vocab.encode(s[1])[:, None] for s in sentences])[0]

            def element(b):
                return {"tokens": b["tokens"], "features": b["features"]}, b["tags"], b["weights"]
        else:

            def element(b):
                return b["tokens"], b["tags"], b["weights"]

        datasets[split], counts[split] = bucketed_dataset(
            arrays, lengths, element, batch_size=batch_size, bucket_width=bucket_width,
            shuffle=split == "train", seed=seed, time_keys=tuple(arrays),
        )
        if split == "test":
            # The evaluation order of bucketed_dataset (no shuffle): by bucket, then index.
            order_test = np.concatenate(bucket_batches(lengths, batch_size, bucket_width))
            gold[split] = [sentences[i][target] for i in order_test]

    test_tokens = sum(len(s[0]) for s in splits["test"])
    unseen = sum(t not in tags.index for s in splits["test"] for t in s[target])
    oov = sum(w not in words.known for s in splits["test"] for w in s[0])
    info = {
        "task": f"conll2000_{task}",
        "input_pos": bool(input_pos),
        **{f"{s}_sentences": len(v) for s, v in splits.items()},
        "train_tokens": sum(len(s[0]) for s in splits["train"]),
        "test_tokens": test_tokens,
        "vocab_size": len(words.vocab),
        "num_tags": len(tags) - 1,
        "test_oov_rate": round(oov / max(test_tokens, 1), 6),
        "test_tokens_with_unseen_tag": unseen,
    }
    if task == "chunk":
        outside = sum(t == "O" for s in splits["test"] for t in s[2])
        info["all_O_test_accuracy"] = round(outside / max(test_tokens, 1), 6)
    else:
        # The classic POS baseline: every training word's most frequent tag, NN for unseen.
        info["most_frequent_tag_test_accuracy"] = round(
            _most_frequent_tag_accuracy(splits["train"], splits["test"]), 6
        )
    log.info("conll2000: %s", info)
    test_ds = datasets["test"]

    def evaluate_test(model):
        predicted = tag_sequences(model, test_ds, tags)
        gold_tags = gold["test"]
        correct = sum(p == g for ps, gs in zip(predicted, gold_tags, strict=True)
                      for p, g in zip(ps, gs, strict=True))
        total = sum(len(g) for g in gold_tags)
        scores = {"accuracy": correct / total}
        scores["loss"] = predicted.loss
        if task == "chunk":
            scores.update(chunk_scores(gold_tags, predicted))
        return scores

    model_kwargs = {"vocab_size": len(words.vocab), "num_classes": len(tags)}
    if pos_vocab is not None:
        model_kwargs["feature_vocab_sizes"] = [len(pos_vocab)]

    def save(folder: Path) -> list[Path]:
        folder = Path(folder)
        paths = [words.vocab.save(folder / "vocab.json"), tags.save(folder / "tags.json")]
        if pos_vocab is not None:
            paths.append(pos_vocab.save(folder / "pos_vocab.json"))
        return paths

    return DataBundle(
        train=datasets["train"],
        validation=datasets["validation"],
        test=test_ds,
        model_kwargs=model_kwargs,
        loss=tagging_loss,
        metrics=tagging_metrics,
        steps_per_epoch=counts["train"],
        throughput_unit="sentences",
        items_per_batch=batch_size,
        save_artifacts=save,
        evaluate_test=evaluate_test,
        info=info,
    )


def _most_frequent_tag_accuracy(train: list[Sentence], test: list[Sentence]) -> float:
    by_word: dict[str, Counter] = {}
    for words, pos, _ in train:
        for w, t in zip(words, pos, strict=True):
            by_word.setdefault(w, Counter())[t] += 1
    best = {w: c.most_common(1)[0][0] for w, c in by_word.items()}
    pairs = [(best.get(w, "NN"), t) for words, pos, _ in test for w, t in zip(words, pos, strict=True)]
    return float(np.mean([p == t for p, t in pairs]))
