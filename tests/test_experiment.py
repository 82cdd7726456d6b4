"""The core's small decisions: which models count as recurrent or convolutional
for jit_compile=auto (graph mode for both on CPU, XLA for the rest)."""

import keras
import pytest

from seqlab.experiment import is_convolutional, is_recurrent, resolve_jit
from seqlab.models import build_rnn_lm


def _dense():
    x = keras.Input((4,))
    return keras.Model(x, keras.layers.Dense(2)(x))


def _nested_bidirectional_keras_gru():
    x = keras.Input((None, 3))
    inner = keras.Sequential([keras.layers.Bidirectional(keras.layers.GRU(2))])
    return keras.Model(x, inner(x))


def _resnet():
    from seqlab.models.resnet import build_resnet

    return build_resnet((8, 8, 1), 3, depth=8)


@pytest.mark.parametrize(
    "make, recurrent, convolutional",
    [(lambda: build_rnn_lm(11, 4, 6), True, False), (_nested_bidirectional_keras_gru, True, False),
     (_dense, False, False), (_resnet, False, True)],
)
def test_auto_jit_is_graph_mode_for_recurrent_and_conv_models_and_xla_otherwise(make, recurrent, convolutional):
    model = make()
    assert is_recurrent(model) is recurrent
    # the convolutions sit inside the residual blocks: the walk finds them there
    assert is_convolutional(model) is convolutional
    assert resolve_jit("auto", model) is not (recurrent or convolutional)
    assert resolve_jit(True, model) is True and resolve_jit(False, model) is False
