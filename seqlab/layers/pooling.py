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
    """``[B, T, H] -> [B, H]``: the last time step of a sequence."""

    def call(self, inputs):
        return inputs[:, -1, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])
