"""Sentence polarity (rt_polarity): sentiment classification of word sequences.

``build_rt_polarity_data`` (many-to-one, words)
    Pang & Lee's sentence polarity v1.0: ``rt-polarity.pos`` / ``.neg``,
    5,331 lines each, **Windows-1252**, lower-cased and pre-tokenised (split
    on whitespace). No official split: stratified ``num_folds``-fold
    cross-validation; ``data.fold`` is the test fold, ``validation_fraction``
    of the other folds is held out for validation, the rest trains. The folds
    depend on ``split_seed`` only, so the children of
    ``seqlab-train -m experiment=sentiment_rnn data.fold=range(10)`` share
    them whatever ``trainer.seed`` is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqlab.data.bundle import DataBundle
from seqlab.data.classification import check_classes, token_classification_bundle
from seqlab.data.files import data_folder, read_lines
from seqlab.data.splits import _check_seed, kfold_assignment, stratified_fractions
from seqlab.errors import ConfigError


def read_rt_polarity(folder: Path) -> tuple[list[str], np.ndarray]:
    """Texts and labels (1 = positive, 0 = negative), positives first.

    Both files are Windows-1252 (cp1252; bytes 0x81, 0x8D, 0x8F, 0x90, 0x9D
    are undefined there and raise).
    """
    pos = read_lines(folder / "rt-polarity.pos", "cp1252")
    neg = read_lines(folder / "rt-polarity.neg", "cp1252")
    return pos + neg, np.array([1] * len(pos) + [0] * len(neg), np.int32)


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
    return token_classification_bundle(
        name="rt_polarity", splits=splits, class_names=["negative", "positive"],
        batch_size=batch_size, seed=seed, min_count=min_count, max_len=max_len,
        bucket_width=bucket_width, positive=1,
        info={"task": "rt_polarity", "fold": fold, "num_folds": num_folds, "lines": len(texts)},
    )
