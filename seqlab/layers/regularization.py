"""Regularisation layers for sequence models (plain Keras layers).

``LockedDropout``
    variational ("locked") dropout (Gal & Ghahramani 2016; Merity et al.
    2018): ONE dropout mask per sequence, shared by every time step, instead
    of a fresh mask per step.
``OutputBias``
    a trainable bias over the vocabulary, added after a tied output
    projection (``keras.layers.ReversibleEmbedding(..., reverse=True)``), so a
    weight-tied model keeps the bias an untied ``Dense`` output has.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqlab")
class LockedDropout(keras.layers.Layer):
    """Dropout on ``[B, T, D]`` inputs with one ``[B, 1, D]`` mask per sequence.

    Variational ("locked") dropout: every time step of a sequence loses the
    same units. In training each kept unit is scaled by ``1 / (1 - rate)``
    (inverted dropout); at inference the layer is the identity. A Keras mask
    on the input passes through.

    Args:
        rate: fraction of units to drop, in ``[0, 1)``.
        seed: an int for reproducible masks (``None``: drawn from Keras'
            global seed when the layer is created).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: a ``[B, T, D]`` tensor.
        training: whether to drop (``True``) or pass through (``False`` /
            ``None``).

    Returns:
        A tensor of the input's shape and dtype.

    Example:

    >>> import numpy as np
    >>> layer = LockedDropout(0.5, seed=1)
    >>> y = np.asarray(layer(np.ones((2, 4, 3), "float32"), training=True))
    >>> bool((y == y[:, :1, :]).all())        # the same mask at every time step
    True
    >>> sorted(set(y.ravel().tolist()))       # dropped or scaled by 1 / (1 - rate)
    [0.0, 2.0]
    >>> bool((np.asarray(layer(np.ones((2, 4, 3)))) == 1).all())  # identity at inference
    True
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"LockedDropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        shape = ops.shape(inputs)
        keep = 1.0 - self.rate
        noise = keras.random.uniform((shape[0], 1, shape[2]), seed=self.seed_generator)
        mask = ops.cast(noise < keep, inputs.dtype) / keep
        return inputs * mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="seqlab")
class OutputBias(keras.layers.Layer):
    """``logits + b`` with a trainable ``b`` of the last axis' size.

    The bias that a weight-tied output projection
    (``keras.layers.ReversibleEmbedding(..., reverse=True)``) lacks.

    Args:
        bias_initializer: initializer of ``b`` (a Keras initializer or its
            name).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: a ``[..., V]`` tensor.

    Returns:
        ``inputs + b``, of the input's shape.

    Example:

    >>> import numpy as np
    >>> layer = OutputBias(bias_initializer="ones")
    >>> np.asarray(layer(np.zeros((1, 2, 3), "float32")))[0].tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    >>> layer.count_params()
    3
    """

    def __init__(self, bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        self.bias = self.add_weight(
            shape=(input_shape[-1],), initializer=self.bias_initializer, name="bias"
        )

    def call(self, inputs):
        return inputs + ops.cast(self.bias, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
