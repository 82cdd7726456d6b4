"""seqlab cells with weights copied from / to Keras built-ins give the same outputs (1e-5)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.layers import GRUCell, LSTMCell, Recurrent, SimpleRNNCell
from tests.layers.helpers import random_mask

CASES = {
    "lstm": (lambda h: keras.layers.LSTM(h, return_sequences=True, return_state=True),
             lambda h: LSTMCell(h)),
    "gru_reset_after": (
        lambda h: keras.layers.GRU(h, reset_after=True, return_sequences=True, return_state=True),
        lambda h: GRUCell(h, reset_after=True)),
    "gru_reset_before": (
        lambda h: keras.layers.GRU(h, reset_after=False, return_sequences=True, return_state=True),
        lambda h: GRUCell(h, reset_after=False)),
    "simple_rnn": (
        lambda h: keras.layers.SimpleRNN(h, return_sequences=True, return_state=True),
        lambda h: SimpleRNNCell(h)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("masked", [False, True])
def test_matches_keras_builtin_with_copied_weights(case, masked):
    make_keras, make_cell = CASES[case]
    rng = np.random.default_rng(5)
    B, T, D, H = 4, 7, 5, 6
    x = rng.standard_normal((B, T, D)).astype("float32")
    mask = random_mask(rng, B, T) if masked else None
    ref = make_keras(H)
    ref.build(x.shape)
    # random (not initial) weights, incl. biases, so every block is exercised
    ref.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in ref.get_weights()])
    cell = make_cell(H)
    ours = Recurrent(cell, return_sequences=True, return_state=True, implementation="generic")
    ours.build(x.shape)
    assert [tuple(w.shape) for w in cell.weights] == [tuple(w.shape) for w in ref.weights]
    assert [w.name for w in cell.weights] == [w.name for w in ref.cell.weights]
    cell.set_weights(ref.get_weights())
    want = ref(x, mask=mask)
    got = ours(x, mask=mask)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-5)


def test_weights_carry_back_into_keras():
    """seqlab LSTM weights load into keras.layers.LSTM (checkpoint compatibility both ways)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    ours = Recurrent(LSTMCell(4), return_sequences=True)
    ours.build(x.shape)
    ours.set_weights([rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()])
    ref = keras.layers.LSTM(4, return_sequences=True)
    ref.build(x.shape)
    ref.set_weights(ours.get_weights())
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), atol=1e-5)


def test_forget_bias_initialisation():
    cell = LSTMCell(3, forget_bias=1.0)
    cell.build((None, 2))
    np.testing.assert_array_equal(np.asarray(cell.bias), [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    cell = LSTMCell(3, forget_bias=0.0)
    cell.build((None, 2))
    np.testing.assert_array_equal(np.asarray(cell.bias), np.zeros(12))
    # Keras' boolean spelling is accepted (Keras cell configs load)
    assert LSTMCell(3, unit_forget_bias=False).forget_bias == 0.0
