"""A per-sequence vector joined to every step of a sequence.

    BroadcastConcat:  x [B, T, D], v [B, E]  ->  [x_t; v] for every t  ->  [B, T, D + E]

How a condition (a language, a class, an encoder summary) reaches every step
of a recurrence rather than only its initial state: see
:func:`seqlab.models.rnn_sequence.build_rnn_conditioned_lm`.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="seqlab")
class BroadcastConcat(keras.layers.Layer):
    """``[x_t; v]`` at every step ``t``: ``x [B, T, D]`` and ``v [B, E]`` give ``[B, T, D + E]``.

    ``v`` is cast to ``x``'s dtype (a mixed-precision policy keeps both in the
    compute dtype). A Keras mask on ``x`` passes through unchanged.

    Example:

    >>> import numpy as np
    >>> out = BroadcastConcat()(np.zeros((2, 3, 4), "float32"), np.ones((2, 1), "float32"))
    >>> tuple(out.shape), float(out[1, 2, 4])
    ((2, 3, 5), 1.0)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, v):
        steps = keras.ops.shape(x)[1]
        v = keras.ops.repeat(keras.ops.expand_dims(keras.ops.cast(v, x.dtype), 1), steps, axis=1)
        return keras.ops.concatenate([x, v], axis=-1)

    def compute_output_shape(self, x_shape, v_shape):
        width = None if x_shape[-1] is None or v_shape[-1] is None else x_shape[-1] + v_shape[-1]
        return (*x_shape[:-1], width)

    def compute_mask(self, x, v, mask=None):
        return mask
