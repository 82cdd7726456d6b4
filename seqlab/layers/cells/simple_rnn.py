"""The vanilla (Elman) recurrent cell."""

from __future__ import annotations

import keras
from keras import ops

from seqlab.layers.cells.base import RecurrentCell


@keras.saving.register_keras_serializable(package="seqlab")
class SimpleRNNCell(RecurrentCell):
    r"""Vanilla (Elman) recurrent cell.

    .. math::

        h_t = \phi(x_t W_{xh} + h_{t-1} W_{hh} + b)

    with ``phi = activation`` (default ``tanh``). Weights: ``kernel`` =
    W_xh ``[D, H]``, ``recurrent_kernel`` = W_hh ``[H, H]``, ``bias`` ``[H]``,
    as in ``keras.layers.SimpleRNNCell``. One state, ``h``; the output is ``h``.
    ``recurrent_activation`` is not used (accepted for a uniform interface).
    Arguments, call arguments and return value: see :class:`RecurrentCell`.

    Example:

    >>> import numpy as np
    >>> from seqlab.layers import SimpleRNNCell
    >>> cell = SimpleRNNCell(4)
    >>> out, states = cell(np.ones((2, 3), "float32"), [np.zeros((2, 4), "float32")])
    >>> out.shape, len(states)
    (TensorShape([2, 4]), 1)
    """

    gates = 1
    num_states = 1
    fused_kind = "simple_rnn"

    def recurrent_step(self, projected, states, recurrent_dropout_mask=None):
        h_prev = states[0]
        z = projected + ops.matmul(
            self._recurrent_input(h_prev, recurrent_dropout_mask), self.recurrent_kernel
        )
        h = self.activation(z) if self.activation is not None else z
        return h, [h]
