"""Bad arguments raise a ValueError naming the value and the fix."""

from __future__ import annotations

import keras
import pytest

from seqlab.layers import (
    CELLS,
    GRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    PeepholeLSTMCell,
    Recurrent,
    SimpleRNNCell,
    get_cell,
    recurrent_stack,
)

CELL_CLASSES = [SimpleRNNCell, LSTMCell, GRUCell, PeepholeLSTMCell, LayerNormLSTMCell]


@pytest.mark.parametrize("cls", CELL_CLASSES)
@pytest.mark.parametrize("units", [0, -3, 2.5, "8", True])
def test_bad_units(cls, units):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: units must be a positive integer, got {units!r}"):
        cls(units)


@pytest.mark.parametrize("cls", CELL_CLASSES)
@pytest.mark.parametrize("key", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "lots"])
def test_bad_dropout(cls, key, rate):
    with pytest.raises(ValueError, match=rf"{key} must be a float in \[0, 1\), got {rate!r}; use 0.0"):
        cls(4, **{key: rate})


@pytest.mark.parametrize("cls", CELL_CLASSES)
@pytest.mark.parametrize("key", ["activation", "recurrent_activation"])
def test_unknown_activation(cls, key):
    with pytest.raises(ValueError, match=rf"unknown {key} 'tanhh'; use a Keras activation name"):
        cls(4, **{key: "tanhh"})


def test_unknown_cell_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown cell 'lstmm'") as err:
        get_cell("lstmm", 4)
    for name in CELLS:
        assert name in str(err.value)


def test_recurrent_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"implementation must be one of .*got 'cudnn'"):
        Recurrent(LSTMCell(3), implementation="cudnn")
    with pytest.raises(ValueError, match="has no 'input_projection'.*keras.layers.RNN"):
        Recurrent(keras.layers.LSTMCell(3))
    layer = Recurrent(LSTMCell(3))
    with pytest.raises(ValueError, match=r"2 state\(s\).*got initial_state with 1"):
        layer(keras.ops.zeros((2, 4, 3)), initial_state=[keras.ops.zeros((2, 3))])
    with pytest.raises(ValueError, match="stateful=True needs a static batch size"):
        Recurrent(LSTMCell(3), stateful=True)(keras.Input((4, 3)))
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        LayerNormLSTMCell(3, epsilon=0)


def test_recurrent_stack_rejects_bad_arguments():
    x = keras.Input((None, 3))
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        recurrent_stack(x, units=4, bidirectional=True, merge_mode="max")
    with pytest.raises(ValueError, match="num_layers must be a positive integer, got 0"):
        recurrent_stack(x, units=4, num_layers=0)
    with pytest.raises(ValueError, match=r"dropout_between must be in \[0, 1\), got 1.0"):
        recurrent_stack(x, units=4, dropout_between=1.0)
    with pytest.raises(ValueError, match=r"input_dropout must be in \[0, 1\), got -0.1"):
        recurrent_stack(x, units=4, input_dropout=-0.1)
    with pytest.raises(ValueError, match="unknown cell 'rnn'"):
        recurrent_stack(x, cell="rnn", units=4)
    with pytest.raises(ValueError, match="mapping with a 'name' key"):
        recurrent_stack(x, cell={"units": 3}, units=4)
    with pytest.raises(ValueError, match="LSTMCell: dropout must be"):
        recurrent_stack(x, cell="lstm", units=4, cell_options={"dropout": 2})
