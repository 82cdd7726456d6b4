"""The GRU cell, both reset-gate placements."""

from __future__ import annotations

import keras
from keras import ops

from seqlab.layers.cells.base import RecurrentCell


@keras.saving.register_keras_serializable(package="seqlab")
class GRUCell(RecurrentCell):
    r"""Gated recurrent unit (Cho et al. 2014), both placements of the reset gate.

    .. math::

        z_t &= \sigma(x_t W_z + h_{t-1} U_z + b_z) \\
        r_t &= \sigma(x_t W_r + h_{t-1} U_r + b_r) \\
        \tilde h_t &= \tanh(x_t W_h + r_t \odot (h_{t-1} U_h + b^{rec}_h) + b_h)
            \quad \text{reset\_after=True (cuDNN, Keras default)} \\
        \tilde h_t &= \tanh(x_t W_h + (r_t \odot h_{t-1}) U_h + b_h)
            \quad \text{reset\_after=False (Cho et al. 2014)} \\
        h_t &= z_t \odot h_{t-1} + (1 - z_t) \odot \tilde h_t

    The update convention is the Keras/Cho one, so Keras weights carry over
    directly. The other common form, ``h_t = (1 - z_t) h_{t-1} + z_t h~_t``
    (e.g. PyTorch docs, some textbooks), is the same cell with ``z -> 1 - z``
    (negate the z-block of the weights and biases).

    Weights as ``keras.layers.GRUCell``: ``kernel [D, 3H]``,
    ``recurrent_kernel [H, 3H]`` in gate order z, r, h; ``bias`` is ``[3H]``
    for ``reset_after=False`` and ``[2, 3H]`` (input bias, recurrent bias) for
    ``reset_after=True``. One state ``h``; output ``h``.

    Args:
        units: ``H``.
        reset_after: where the reset gate acts (see above; default True).
        **kwargs: as :class:`RecurrentCell`.

    Call arguments and return value: see :class:`RecurrentCell`.

    Example:

    >>> from seqlab.layers import GRUCell
    >>> for reset_after in (True, False):
    ...     cell = GRUCell(4, reset_after=reset_after)
    ...     cell.build((None, 3))
    ...     print(reset_after, cell.bias.shape)
    True (2, 12)
    False (12,)
    """

    gates = 3
    num_states = 1
    fused_kind = "gru"

    def __init__(self, units, reset_after=True, **kwargs):
        self.reset_after = bool(reset_after)
        super().__init__(units, **kwargs)

    def _bias_shape(self):
        h3 = 3 * self.units
        return (2, h3) if self.reset_after else (h3,)

    def _input_bias(self):
        return self.bias[0] if self.reset_after else self.bias

    def recurrent_step(self, projected, states, recurrent_dropout_mask=None):
        h_prev = states[0]
        hu = self.units
        h_in = self._recurrent_input(h_prev, recurrent_dropout_mask)
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        if self.reset_after:
            inner = ops.matmul(h_in, self.recurrent_kernel)
            if self.use_bias:
                inner = inner + self.bias[1]
            r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            pre_h = x_h + r * r_h
        else:
            inner = ops.matmul(h_in, self.recurrent_kernel[:, : 2 * hu])
            r_z, r_r = ops.split(inner, 2, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            pre_h = x_h + ops.matmul(r * h_in, self.recurrent_kernel[:, 2 * hu :])
        hh = self.activation(pre_h) if self.activation is not None else pre_h
        h = z * h_prev + (1.0 - z) * hh
        return h, [h]

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}
