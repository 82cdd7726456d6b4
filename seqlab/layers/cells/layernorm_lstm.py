"""The layer-normalised LSTM cell."""

from __future__ import annotations

import keras
from keras import ops

from seqlab.layers.cells.lstm import LSTMCell


@keras.saving.register_keras_serializable(package="seqlab")
class LayerNormLSTMCell(LSTMCell):
    r"""LSTM with layer normalisation of the gate pre-activations and the cell
    (Ba, Kiros & Hinton 2016, in the per-gate form of TF-Addons' cell).

    .. math::

        a_t &= x_t W + h_{t-1} U \qquad \text{(4 blocks i, f, c, o)} \\
        [\hat a_i, \hat a_f, \hat a_c, \hat a_o] &=
            \gamma \odot \mathrm{LN}_{\text{per block}}(a_t) + b \\
        i_t, f_t, o_t &= \sigma(\hat a_i), \sigma(\hat a_f), \sigma(\hat a_o); \quad
            g_t = \tanh(\hat a_c) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(\gamma_c \odot \mathrm{LN}(c_t) + \beta_c)

    with ``LN(v) = (v - mean(v)) / sqrt(var(v) + epsilon)`` over the ``H``
    units of each block. The state carries the un-normalised ``c_t``.

    Why: the gate pre-activations of a plain LSTM drift in scale as the
    weights grow or the sequence gets long, pushing the sigmoids and tanh
    into saturation (vanishing gradients) or making the cell blow up.
    Normalising every block per step keeps them in the responsive range
    whatever the scale of ``W``, ``U`` and the inputs, which makes training
    stabler and tolerant of larger learning rates, and usually faster to
    converge (Ba et al. 2016). The bias ``b`` plays the role of LayerNorm's
    beta (so ``forget_bias`` still applies); ``gate_gamma [4H]`` (ones),
    ``cell_gamma [H]`` (ones), ``cell_beta [H]`` (zeros) are the extra
    weights. The input projection ``x W`` is still hoisted out of the loop;
    the bias is added after the normalisation, inside the step. There is no
    fused kernel for this cell: ``Recurrent`` runs it on the generic path.

    Args:
        units: ``H``.
        epsilon: the LayerNorm variance epsilon (> 0).
        **kwargs: as :class:`LSTMCell` (``forget_bias`` applies to ``b``).

    Call arguments and return value: see :class:`RecurrentCell` (states
    ``[h, c]``, ``c`` un-normalised).

    Example:

    >>> import numpy as np
    >>> from seqlab.layers import LayerNormLSTMCell, Recurrent
    >>> layer = Recurrent(LayerNormLSTMCell(4))
    >>> layer(np.ones((2, 5, 3), "float32")).shape, layer.execution_path
    (TensorShape([2, 4]), 'generic')
    """

    fused_kind = None  # the normalisations have no fused kernel

    def __init__(self, units, epsilon=1e-3, **kwargs):
        self.epsilon = float(epsilon)
        if not self.epsilon > 0:
            raise ValueError(
                f"LayerNormLSTMCell: epsilon must be > 0, got {epsilon!r}; use e.g. 1e-3."
            )
        super().__init__(units, **kwargs)

    def build_extra(self):
        self.gate_gamma = self.add_weight(
            shape=(4 * self.units,), name="gate_gamma", initializer="ones"
        )
        self.cell_gamma = self.add_weight(
            shape=(self.units,), name="cell_gamma", initializer="ones"
        )
        self.cell_beta = self.add_weight(
            shape=(self.units,), name="cell_beta", initializer="zeros"
        )

    def _input_bias(self):
        return None  # the bias is LayerNorm's beta, added after normalising

    def _norm(self, v):
        mean = ops.mean(v, axis=-1, keepdims=True)
        centred = v - mean
        var = ops.mean(ops.square(centred), axis=-1, keepdims=True)
        return centred * ops.rsqrt(var + self.epsilon)

    def recurrent_step(self, projected, states, recurrent_dropout_mask=None):
        h_prev, c_prev = states[0], states[1]
        hu = self.units
        a = projected + ops.matmul(
            self._recurrent_input(h_prev, recurrent_dropout_mask), self.recurrent_kernel
        )
        a = ops.reshape(self._norm(ops.reshape(a, (-1, 4, hu))), (-1, 4 * hu))
        a = a * self.gate_gamma
        if self.use_bias:
            a = a + self.bias
        zi, zf, zc, zo = ops.split(a, 4, axis=-1)
        i = self.recurrent_activation(zi)
        f = self.recurrent_activation(zf)
        c = f * c_prev + i * self.activation(zc)
        o = self.recurrent_activation(zo)
        h = o * self.activation(self._norm(c) * self.cell_gamma + self.cell_beta)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
