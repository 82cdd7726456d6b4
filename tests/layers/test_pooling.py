"""Pooling layers against NumPy, with masks; their registered names survive the move
into seqlab.layers.pooling, so saved models still load."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.layers import LastTimeStep, MaskedGlobalMaxPooling1D, MaskedMeanPooling


def test_masked_max_pooling_equals_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], bool)
    got = np.asarray(MaskedGlobalMaxPooling1D()(x, mask=mask))
    want = np.stack([x[0, :2].max(0), x[1].max(0), np.zeros(4)])
    np.testing.assert_allclose(got, want)


def test_masked_mean_pooling_equals_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], bool)
    got = np.asarray(MaskedMeanPooling()(x, mask=mask))
    want = np.stack([x[0, :2].mean(0), x[1].mean(0), np.zeros(4)])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layer", [LastTimeStep, MaskedGlobalMaxPooling1D, MaskedMeanPooling])
def test_registered_under_the_seqlab_package(layer):
    assert keras.saving.get_registered_name(layer) == f"seqlab>{layer.__name__}"
    assert keras.saving.get_registered_object(f"seqlab>{layer.__name__}") is layer
