"""The LSTM cell."""

from __future__ import annotations

import keras
from keras import ops

from seqlab.layers.cells.base import RecurrentCell


@keras.saving.register_keras_serializable(package="seqlab")
class LSTMCell(RecurrentCell):
    r"""Long short-term memory cell (Hochreiter & Schmidhuber 1997, with forget gate).

    .. math::

        i_t &= \sigma(x_t W_i + h_{t-1} U_i + b_i) \\
        f_t &= \sigma(x_t W_f + h_{t-1} U_f + b_f) \\
        g_t &= \tanh(x_t W_c + h_{t-1} U_c + b_c) \\
        o_t &= \sigma(x_t W_o + h_{t-1} U_o + b_o) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t)

    ``sigma = recurrent_activation`` (default sigmoid), ``tanh = activation``.
    Weights as ``keras.layers.LSTMCell``: ``kernel [D, 4H]``,
    ``recurrent_kernel [H, 4H]``, ``bias [4H]``, gate blocks in order
    i, f, c (=g), o. States ``[h, c]``; output ``h``.

    Args:
        units: ``H``.
        forget_bias: added to the forget-gate block of the bias at
            initialisation (default 1.0, Jozefowicz et al. 2015; Keras'
            ``unit_forget_bias=True``). 0 disables it.
        **kwargs: as :class:`RecurrentCell` (and ``keras.layers.LSTMCell``).

    Call arguments and return value: see :class:`RecurrentCell` (states
    ``[h, c]``).

    Example:

    >>> import numpy as np
    >>> from seqlab.layers import LSTMCell, Recurrent
    >>> layer = Recurrent(LSTMCell(8), return_sequences=True)
    >>> layer(np.ones((2, 5, 3), "float32")).shape
    TensorShape([2, 5, 8])
    """

    gates = 4
    num_states = 2
    fused_kind = "lstm"

    def __init__(self, units, forget_bias=1.0, **kwargs):
        # Keras' boolean spelling, accepted so Keras cell configs load.
        unit_forget_bias = kwargs.pop("unit_forget_bias", None)
        if unit_forget_bias is not None:
            forget_bias = 1.0 if unit_forget_bias else 0.0
        self.forget_bias = float(forget_bias)
        super().__init__(units, **kwargs)

    def _bias_init(self, shape, dtype=None):
        bias = self.bias_initializer(shape, dtype=dtype)
        if self.forget_bias:
            h = self.units
            bias = ops.concatenate(
                [bias[:h], bias[h : 2 * h] + self.forget_bias, bias[2 * h :]]
            )
        return bias

    def _gates(self, projected, h_prev, recurrent_dropout_mask):
        z = projected + ops.matmul(
            self._recurrent_input(h_prev, recurrent_dropout_mask), self.recurrent_kernel
        )
        return ops.split(z, 4, axis=-1)

    def recurrent_step(self, projected, states, recurrent_dropout_mask=None):
        h_prev, c_prev = states[0], states[1]
        zi, zf, zc, zo = self._gates(projected, h_prev, recurrent_dropout_mask)
        i = self.recurrent_activation(zi)
        f = self.recurrent_activation(zf)
        c = f * c_prev + i * self.activation(zc)
        o = self.recurrent_activation(zo)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "forget_bias": self.forget_bias}
