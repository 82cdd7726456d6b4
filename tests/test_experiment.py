"""The core's small decisions: which models count as recurrent or convolutional,
and what jit_compile=auto picks (graph mode on a CPU; on a GPU XLA but for
recurrent models)."""

import keras
import pytest

from seqlab.experiment import is_recurrent, resolve_jit
from seqlab.models import build_rnn_lm
from seqlab.walk import walk_layers


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
def test_auto_jit_is_graph_mode_on_cpu_and_xla_on_gpu_but_for_recurrent_models(
        make, recurrent, convolutional, monkeypatch):
    import seqlab.experiment

    model = make()
    assert is_recurrent(model) is recurrent
    # the convolutions sit inside the residual blocks: the walk finds them there
    assert any(isinstance(layer, keras.layers.Conv2D) for layer in walk_layers(model)) is convolutional
    monkeypatch.setattr(seqlab.experiment, "_has_gpu", lambda: False)
    assert resolve_jit("auto", model) is False
    monkeypatch.setattr(seqlab.experiment, "_has_gpu", lambda: True)
    assert resolve_jit("auto", model) is (not recurrent)
    assert resolve_jit(True, model) is True and resolve_jit(False, model) is False
