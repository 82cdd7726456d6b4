"""The LSTM with peephole connections."""

from __future__ import annotations

import keras
from keras import initializers

from seqlab.layers.cells.lstm import LSTMCell


@keras.saving.register_keras_serializable(package="seqlab")
class PeepholeLSTMCell(LSTMCell):
    r"""LSTM with peephole connections (Gers & Schmidhuber 2000).

    The input and forget gates look at the previous cell ``c_{t-1}``, the output
    gate at the new cell ``c_t``, through diagonal (element-wise) weights:

    .. math::

        i_t &= \sigma(x_t W_i + h_{t-1} U_i + p_i \odot c_{t-1} + b_i) \\
        f_t &= \sigma(x_t W_f + h_{t-1} U_f + p_f \odot c_{t-1} + b_f) \\
        g_t &= \tanh(x_t W_c + h_{t-1} U_c + b_c) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        o_t &= \sigma(x_t W_o + h_{t-1} U_o + p_o \odot c_t + b_o) \\
        h_t &= o_t \odot \tanh(c_t)

    Weights: those of :class:`LSTMCell` plus ``input_gate_peephole_weights``,
    ``forget_gate_peephole_weights``, ``output_gate_peephole_weights`` (each
    ``[H]``, the names of TF's former ``PeepholeLSTMCell``), initialised with
    ``peephole_initializer``.

    Args:
        units: ``H``.
        peephole_initializer: initializer of the three peephole vectors.
        **kwargs: as :class:`LSTMCell`.

    Call arguments and return value: see :class:`RecurrentCell` (states
    ``[h, c]``).

    Example:

    >>> from seqlab.layers import PeepholeLSTMCell
    >>> cell = PeepholeLSTMCell(4)
    >>> cell.build((None, 3))
    >>> [w.name for w in cell.weights][3:]
    ['input_gate_peephole_weights', 'forget_gate_peephole_weights', 'output_gate_peephole_weights']
    """

    fused_kind = "peephole_lstm"

    def __init__(self, units, peephole_initializer="glorot_uniform", **kwargs):
        self.peephole_initializer = initializers.get(peephole_initializer)
        super().__init__(units, **kwargs)

    def build_extra(self):
        for gate in ("input", "forget", "output"):
            w = self.add_weight(
                shape=(self.units,),
                name=f"{gate}_gate_peephole_weights",
                initializer=self.peephole_initializer,
            )
            setattr(self, f"{gate}_gate_peephole_weights", w)

    def recurrent_step(self, projected, states, recurrent_dropout_mask=None):
        h_prev, c_prev = states[0], states[1]
        zi, zf, zc, zo = self._gates(projected, h_prev, recurrent_dropout_mask)
        i = self.recurrent_activation(zi + self.input_gate_peephole_weights * c_prev)
        f = self.recurrent_activation(zf + self.forget_gate_peephole_weights * c_prev)
        c = f * c_prev + i * self.activation(zc)
        o = self.recurrent_activation(zo + self.output_gate_peephole_weights * c)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "peephole_initializer": initializers.serialize(self.peephole_initializer),
        }
