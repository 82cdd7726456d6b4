"""Sequence classification: loss, metrics, test scores, and the bundle of a
classifier over token sequences.

:func:`token_classification_bundle` turns ``{split: (token lists, labels)}``
into a :class:`DataBundle`: a :class:`Vocabulary` fitted on train, bucketed
batches of ``(tokens [B, T], label [B])``, the majority-class baseline in
``info`` and test scored by :func:`classification_test_scores` (loss,
accuracy and, for a binary task, the positive class's precision, recall and
F1). Used by :mod:`seqlab.data.sentiment`, :mod:`seqlab.data.spam` and
:mod:`seqlab.data.names` (``task=classify``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from seqlab.data.batching import _check_batch, _check_max_len, bucketed_dataset, pad_ids
from seqlab.data.bundle import DataBundle
from seqlab.data.vocabulary import PAD, UNK, Vocabulary
from seqlab.errors import DataError

log = logging.getLogger(__name__)


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


def token_classification_bundle(
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
