"""Classification scores equal a hand count."""

from __future__ import annotations

import numpy as np
import pytest

from seqlab.data.classification import classification_scores


def test_classification_scores_equal_a_hand_count():
    y = np.array([1, 1, 0, 0, 1, 0])
    p = np.array([1, 0, 0, 1, 1, 0])
    tp, fp, fn = 2, 1, 1
    scores = classification_scores(y, p, positive=1)
    assert scores == pytest.approx({"accuracy": 4 / 6, "precision": tp / (tp + fp), "recall": tp / (tp + fn),
                                    "f1": 2 * tp / (2 * tp + fp + fn)})
