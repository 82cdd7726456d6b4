"""SMS spam (sms_spam): ham / spam classification of word sequences.

``build_sms_spam_data`` (many-to-one, words)
    ``SMSSpamCollection``: ``label<TAB>message``, 4,827 ham / 747 spam lines
    with 403 exact duplicates (same label and message). The duplicates are
    removed **before** the split (5,171 distinct messages), else a message
    can sit in train and test at once. Stratified train / validation / test
    by ``split_fractions``. Test is scored with accuracy and the spam class's
    precision, recall and F1 (scikit-learn).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqlab.data.bundle import DataBundle
from seqlab.data.classification import check_classes, token_classification_bundle
from seqlab.data.files import data_folder, read_lines
from seqlab.data.splits import _check_fractions, _check_seed, stratified_fractions
from seqlab.errors import DataError


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
    return token_classification_bundle(
        name="sms_spam", splits=splits, class_names=["ham", "spam"], batch_size=batch_size,
        seed=seed, min_count=min_count, max_len=max_len, bucket_width=bucket_width, positive=1,
        info={"task": "sms_spam", "lines": len(rows), "duplicates_removed": len(rows) - distinct,
              "majority_all_lines": round(1 - float(np.mean([r[0] == "spam" for r in rows])), 6)},
    )
