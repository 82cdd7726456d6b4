"""The core's small decisions: which models count as recurrent for jit_compile=auto."""

import keras
import pytest

from seqlab.experiment import is_recurrent, resolve_jit
from seqlab.models import build_rnn_lm


def _dense():
    x = keras.Input((4,))
    return keras.Model(x, keras.layers.Dense(2)(x))


def _nested_bidirectional_keras_gru():
    x = keras.Input((None, 3))
    inner = keras.Sequential([keras.layers.Bidirectional(keras.layers.GRU(2))])
    return keras.Model(x, inner(x))


@pytest.mark.parametrize(
    "make, recurrent",
    [(lambda: build_rnn_lm(11, 4, 6), True), (_nested_bidirectional_keras_gru, True), (_dense, False)],
)
def test_auto_jit_is_graph_mode_for_recurrent_models_and_xla_otherwise(make, recurrent):
    model = make()
    assert is_recurrent(model) is recurrent
    assert resolve_jit("auto", model) is (not recurrent)
    assert resolve_jit(True, model) is True and resolve_jit(False, model) is False
