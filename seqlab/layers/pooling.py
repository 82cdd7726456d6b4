"""Layers that reduce a sequence over time.

``LastTimeStep``
    ``[B, T, H] -> [B, H]``: the last time step, so a model can keep a
    recurrent layer's full hidden sequence in its graph (gradient diagnostics
    split the model there) and still read out the final state.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="seqlab")
class LastTimeStep(keras.layers.Layer):
    """``[B, T, H] -> [B, H]``: the last time step of a sequence.

    The step at index ``T - 1`` of every sequence, whatever its Keras mask
    (right-padded sequences should be read out otherwise). No weights.

    Args:
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: a ``[B, T, H]`` tensor.

    Returns:
        ``inputs[:, -1, :]``, shape ``[B, H]``.

    Example:

    >>> import numpy as np
    >>> x = np.arange(12, dtype="float32").reshape(2, 3, 2)
    >>> np.asarray(LastTimeStep()(x)).tolist()
    [[4.0, 5.0], [10.0, 11.0]]
    """

    def call(self, inputs):
        return inputs[:, -1, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])
