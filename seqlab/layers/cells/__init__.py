"""Recurrent cells written from their equations.

Every cell is a ``keras.layers.Layer`` with the standard Keras cell API
(``state_size``, ``output_size``, ``call(x_t, states, training)``,
``get_initial_state``), so it runs inside ``keras.layers.RNN``; and a split
API that lets :class:`seqlab.layers.Recurrent` hoist the input projection out
of the time loop:

``cell.input_projection(x)``
    ``x @ kernel (+ input bias)`` for any leading shape: ``[B, T, D] -> [B, T, G*H]``
    in one batched matmul for all time steps.
``cell.recurrent_step(p_t, states, recurrent_dropout_mask=None)``
    the rest of one step given the projected input ``p_t`` ``[B, G*H]``:
    returns ``(output, new_states)``.

``call`` is ``recurrent_step(input_projection(x_t * input_mask), states)``.

Weights are laid out as Keras lays out its cells (``kernel [D, G*H]``,
``recurrent_kernel [H, G*H]``, ``bias``; gate order i, f, c, o for the LSTMs,
z, r, h for the GRU), so weights copied from ``keras.layers.LSTMCell`` /
``GRUCell`` / ``SimpleRNNCell`` give identical results.

Dropout is variational (Gal & Ghahramani 2016), as in Keras: one input mask
and one recurrent mask per sequence, reused at every step. One input mask is
shared by all gates (so the input projection stays one matmul), and the
recurrent mask multiplies ``h_{t-1}`` before ``recurrent_kernel``.

Only ``keras.ops`` is used here, so the cells run on any Keras backend.
"""

from seqlab.layers.cells.base import RecurrentCell
from seqlab.layers.cells.gru import GRUCell
from seqlab.layers.cells.layernorm_lstm import LayerNormLSTMCell
from seqlab.layers.cells.lstm import LSTMCell
from seqlab.layers.cells.peephole_lstm import PeepholeLSTMCell
from seqlab.layers.cells.simple_rnn import SimpleRNNCell

__all__ = [
    "RecurrentCell",
    "SimpleRNNCell",
    "LSTMCell",
    "GRUCell",
    "PeepholeLSTMCell",
    "LayerNormLSTMCell",
]
