"""seqlab's Keras layers (cells, recurrent stacks, attention, ...)."""

from seqlab.layers.cells import (
    GRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    PeepholeLSTMCell,
    RecurrentCell,
    SimpleRNNCell,
)
from seqlab.layers.encoding import OneHot
from seqlab.layers.pooling import LastTimeStep
from seqlab.layers.recurrent import Recurrent
from seqlab.layers.registry import CELLS, get_cell
from seqlab.layers.regularization import LockedDropout, OutputBias
from seqlab.layers.stacks import recurrent_layer, recurrent_stack, split_cell_spec

__all__ = [
    "CELLS",
    "GRUCell",
    "LSTMCell",
    "LastTimeStep",
    "LayerNormLSTMCell",
    "LockedDropout",
    "OneHot",
    "OutputBias",
    "PeepholeLSTMCell",
    "Recurrent",
    "RecurrentCell",
    "SimpleRNNCell",
    "get_cell",
    "recurrent_layer",
    "recurrent_stack",
    "split_cell_spec",
]
