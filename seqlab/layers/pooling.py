"""Layers that reduce a sequence over time.

``LastTimeStep``
    ``[B, T, H] -> [B, H]``: the last time step, so a model can keep a
    recurrent layer's full hidden sequence in its graph (gradient diagnostics
    split the model there) and still read out the final state.
``MaskedGlobalMaxPooling1D``
    ``[B, T, H] -> [B, H]``: the maximum over the valid (unmasked) steps (the
    ``max`` pooling of :func:`seqlab.models.build_rnn_classifier`).
``MaskedMeanPooling``
    ``[B, T, d] -> [B, d]``: the mean over the valid steps (the ``mean``
    pooling of the Transformer classifier).

The masked layers consume the Keras mask and return none; registered as
``seqlab>MaskedGlobalMaxPooling1D`` and ``seqlab>MaskedMeanPooling``, as
before they moved here, so saved models load.
"""

from __future__ import annotations

import keras
from keras import ops


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


@keras.saving.register_keras_serializable(package="seqlab")
class MaskedGlobalMaxPooling1D(keras.layers.Layer):
    """``[B, T, H] -> [B, H]``: the maximum over the valid (unmasked) time steps.

    ``y_j = max_{t: mask_t} x_{t, j}``; without a mask, over all steps; a row
    with no valid step gives 0. (``keras.layers.GlobalMaxPooling1D`` ignores
    the mask, so padding would take part in the maximum.)

    Example:

    >>> import numpy as np
    >>> x = np.array([[[1.0], [5.0], [9.0]]], "float32")
    >>> layer = MaskedGlobalMaxPooling1D()
    >>> np.asarray(layer(x, mask=np.array([[True, True, False]]))).tolist()
    [[5.0]]
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return keras.ops.max(inputs, axis=1)
        valid = keras.ops.expand_dims(keras.ops.cast(mask, "bool"), -1)
        lowest = keras.ops.full_like(inputs, -3.0e38 if inputs.dtype == "float32" else -6.0e4)
        pooled = keras.ops.max(keras.ops.where(valid, inputs, lowest), axis=1)
        any_valid = keras.ops.any(valid, axis=1)
        return keras.ops.where(any_valid, pooled, keras.ops.zeros_like(pooled))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


@keras.saving.register_keras_serializable(package="seqlab")
class MaskedMeanPooling(keras.layers.Layer):
    """``[B, T, d] -> [B, d]``: the mean over valid (unmasked) positions.

    Example:

    >>> import numpy as np
    >>> x = np.arange(6, dtype="float32").reshape(1, 3, 2)
    >>> MaskedMeanPooling()(x, mask=np.array([[True, True, False]])).numpy().tolist()
    [[1.0, 2.0]]
    """

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.mean(inputs, axis=1)
        weights = ops.cast(mask, inputs.dtype)[:, :, None]
        return ops.sum(inputs * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])
