"""Layer normalisation (Ba et al. 2016) with its gradient in closed form.

Over the last axis, with ``d`` features::

    x_hat = (x - mean(x)) / sqrt(var(x) + epsilon),    y = x_hat * gamma + beta
    dx    = inv (g - mean(g) - x_hat mean(g x_hat))    g = dy gamma, inv = 1 / sqrt(var(x) + epsilon)

:class:`LayerNorm` is the norm of the Transformer blocks
(:mod:`seqlab.layers.transformer`) and models; the closed form is used
outside XLA (:func:`seqlab.layers.xla.compiled_by_xla`).
"""

from __future__ import annotations

import keras
from keras import ops

from seqlab.layers.xla import compiled_by_xla


def _normalize(x, epsilon: float):
    """``(x - mean) / sqrt(var + eps)`` over the last axis, with the gradient
    ``dx = inv (g - mean(g) - x_hat mean(g x_hat))`` written out."""

    @ops.custom_gradient
    def normalize(x):
        mean = ops.mean(x, axis=-1, keepdims=True)
        centered = x - mean
        inv = ops.rsqrt(ops.mean(ops.square(centered), axis=-1, keepdims=True) + epsilon)
        x_hat = centered * inv

        def grad(*args, upstream=None):
            g = args[0] if upstream is None else upstream
            return inv * (
                g
                - ops.mean(g, axis=-1, keepdims=True)
                - x_hat * ops.mean(g * x_hat, axis=-1, keepdims=True)
            )

        return x_hat, grad

    return normalize(x)


@keras.saving.register_keras_serializable(package="seqlab")
class LayerNorm(keras.layers.Layer):
    """Layer normalisation over the last axis (Ba et al. 2016) with its gradient written out::

        y = (x - mean(x)) / sqrt(var(x) + epsilon) * gamma + beta

    The same function and weights (``gamma``, ``beta``) as
    ``keras.layers.LayerNormalization(epsilon=...)``; the backward pass is the
    closed form ``dx = inv (g - mean(g) - x_hat mean(g x_hat))`` with
    ``g = dy gamma``, fewer passes over ``[B, T, d]`` than autodiff through the
    moments. Statistics in float32 under mixed precision. A Keras mask passes through.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2, 3, 8)).astype("float32")
    >>> ref = keras.layers.LayerNormalization(epsilon=1e-5)
    >>> bool(np.allclose(LayerNorm()(x), ref(x), atol=1e-5))
    True
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.supports_masking = True

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="beta")

    def call(self, inputs):
        x = inputs if inputs.dtype == "float32" else ops.cast(inputs, "float32")
        if compiled_by_xla():  # autodiff fuses better there (see compiled_by_xla)
            centered = x - ops.mean(x, axis=-1, keepdims=True)
            variance = ops.mean(ops.square(centered), axis=-1, keepdims=True)
            x_hat = centered * ops.rsqrt(variance + self.epsilon)
        else:
            x_hat = _normalize(x, self.epsilon)
        y = x_hat * ops.cast(self.gamma, "float32") + ops.cast(self.beta, "float32")
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
