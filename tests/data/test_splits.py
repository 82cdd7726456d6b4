"""Splits: folds are disjoint, stratified and cover the data; group splits keep every
group in one part; the docstring examples run."""

from __future__ import annotations

import numpy as np
import pytest

from seqlab.data.splits import kfold_assignment, split_by_group
from seqlab.errors import ConfigError


def test_folds_are_disjoint_stratified_and_cover_the_data():
    labels = np.repeat([0, 1, 2], [53, 40, 7])
    folds = kfold_assignment(labels, num_folds=10, seed=3)
    test_sets = [set(np.flatnonzero(folds == k)) for k in range(10)]
    assert set().union(*test_sets) == set(range(labels.size))
    assert sum(len(s) for s in test_sets) == labels.size  # disjoint
    assert max(map(len, test_sets)) - min(map(len, test_sets)) <= 1
    for c, n in enumerate(np.bincount(labels)):
        per_fold = [int(np.sum(labels[list(s)] == c)) for s in test_sets]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == n
    assert np.array_equal(folds, kfold_assignment(labels, num_folds=10, seed=3))
    with pytest.raises(ConfigError, match="num_folds"):
        kfold_assignment(labels, num_folds=1)


def test_split_by_group_keeps_groups_together():
    groups = ["a", "b", "a", "c", "d", "b", "e", "a"]
    parts = split_by_group(groups, (0.4, 0.2), seed=1)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(groups)))
    owners = {}
    for p, idx in enumerate(parts):
        for i in idx:
            assert owners.setdefault(groups[i], p) == p
