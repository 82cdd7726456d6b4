"""The ``[CLS]`` token of an encoder classifier (BERT): prepend it, read it back.

:class:`ClassToken` prepends a learned vector to every sequence and extends
the padding mask (the ``[CLS]`` position always valid); after the encoder
blocks :class:`FirstToken` returns that position's state, the input of the
pooled head::

    [B, T, d] -> ClassToken -> [B, 1 + T, d] -> blocks -> FirstToken -> [B, d]

The mean over valid positions instead is
:class:`seqlab.layers.pooling.MaskedMeanPooling`.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqlab")
class ClassToken(keras.layers.Layer):
    """Prepend a learned ``[CLS]`` vector: ``[B, T, d] -> [B, 1 + T, d]``.

    A Keras mask ``[B, T]`` on the input becomes ``[B, 1 + T]`` with the
    ``[CLS]`` position always valid, so attention over padded inputs still
    works (BERT's first token, whose final state the pooled head reads).

    Example:

    >>> import numpy as np
    >>> layer = ClassToken()
    >>> layer(np.zeros((2, 3, 4), "float32")).shape
    TensorShape([2, 4, 4])
    """

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def build(self, input_shape):
        self.token = self.add_weight(
            shape=(input_shape[-1],), initializer=self.initializer, name="token"
        )

    def call(self, inputs):
        token = ops.broadcast_to(
            ops.cast(self.token, inputs.dtype)[None, None, :],
            (ops.shape(inputs)[0], 1, inputs.shape[-1]),
        )
        return ops.concatenate([token, inputs], axis=1)

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        return ops.concatenate([ops.ones_like(mask[:, :1]), mask], axis=1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])

    def get_config(self):
        return {
            **super().get_config(),
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package="seqlab")
class FirstToken(keras.layers.Layer):
    """``[B, T, d] -> [B, d]``: the first position (BERT's ``[CLS]`` output); drops the mask.

    Example:

    >>> import numpy as np
    >>> FirstToken()(np.arange(6, dtype="float32").reshape(1, 3, 2)).numpy().tolist()
    [[0.0, 1.0]]
    """

    def call(self, inputs, mask=None):
        return inputs[:, 0]

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])
