"""Layers that encode token ids as vectors without trainable weights.

``OneHot``
    ``int [B, T] -> float [B, T, depth]`` one-hot encoding.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqlab")
class OneHot(keras.layers.Layer):
    """``int [B, T] -> float [B, T, depth]`` one-hot encoding (no weights).

    Args:
        depth: the number of token ids (the width of the output).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: integer token ids ``[B, T]`` (any shape); ids outside
            ``[0, depth)`` give all-zero vectors.

    Returns:
        A ``[B, T, depth]`` tensor of the layer's compute dtype.

    Example:

    >>> import numpy as np
    >>> np.asarray(OneHot(3)(np.array([[0, 2]]))).tolist()
    [[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]
    """

    def __init__(self, depth: int, **kwargs):
        super().__init__(**kwargs)
        self.depth = int(depth)

    def call(self, inputs):
        return ops.one_hot(ops.cast(inputs, "int32"), self.depth, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.depth)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth}
