"""Seeded splits of labelled examples into train / validation / test.

:func:`kfold_assignment` (stratified k-fold cross-validation),
:func:`stratified_fractions` (consecutive parts by fraction, each class cut
in the same proportions) and :func:`split_by_group` (parts by fraction of the
distinct groups, so equal items, e.g. the same name, never sit in two
splits). Each is a function of its inputs and ``seed`` only: the builders
pass ``data.split_seed``, never the training seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqlab.errors import ConfigError


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
