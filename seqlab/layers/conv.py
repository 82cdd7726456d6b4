"""The convolution block of the vision builders: ``Conv2D -> [BatchNorm] -> activation``.

A 2-D convolution layer computes, for every output position ``(i, j)`` and
output channel ``k`` (channels last, stride ``s``, a ``kh x kw`` kernel ``W``),
the *cross-correlation* (no kernel flip, as in every deep-learning library)

    z[i, j, k] = b[k] + sum_{u < kh, v < kw, c} x[s*i + u, s*j + v, c] * W[u, v, c, k]

of the input, zero-padded first when ``padding="same"``. Output size along
one axis of size ``n``: ``floor((n - k) / s) + 1`` for ``"valid"`` (no
padding), ``ceil(n / s)`` for ``"same"`` (``k - 1`` zeros in all, the extra
one after, as TensorFlow pads). The block then normalises (optional batch
norm, ``(z - mean) / sqrt(var + eps) * gamma + beta`` per channel) and applies
the activation: ``y = act(BN(z))``.

The block is made of ``keras.layers.Conv2D`` and seqlab's
:class:`~seqlab.layers.batch_norm.BatchNorm` (Keras' batch norm with
TensorFlow's fused kernel in training); it only groups them under one name
(``stem``, ``conv_0``, ...) so that per-layer diagnostics
(``grad_norm/<layer>``) see one entry per block.
"""

from __future__ import annotations

import keras

from seqlab.layers.batch_norm import BatchNorm


@keras.saving.register_keras_serializable(package="seqlab")
class ConvBlock(keras.layers.Layer):
    """``y = activation(BN(Conv2D(x)))``, batch norm optional.

    Args:
        filters: output channels ``k``.
        kernel_size: an int or ``(kh, kw)``.
        strides: an int or ``(sh, sw)``.
        padding: ``"same"`` (zero padding, output ``ceil(n / s)``) or
            ``"valid"`` (none, output ``floor((n - k) / s) + 1``).
        activation: a Keras activation name or callable; ``None`` for linear.
        batch_norm: normalise the convolution's output before the activation.
        use_bias: give the convolution a bias; ``None`` (default): only
            without batch norm (BN's ``beta`` makes a bias redundant).
        kernel_initializer: initializer of the kernel (default He normal, for
            ReLU networks).
        bn_momentum, bn_epsilon: the batch norm's moving-average momentum and
            variance epsilon (Keras defaults).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: images ``[B, H, W, C]`` (channels last).
        training: batch statistics (``True``) or moving averages in the norm.

    Returns:
        ``[B, H', W', filters]``.

    Example: the 5x5 image with values 1..25, cross-correlated with the 3x3
    filter whose rows are ``[1, 0, -1]`` (valid padding, stride 1), is ``-6``
    everywhere (each row contributes ``x[j] - x[j + 2] = -2``):

    >>> import numpy as np
    >>> block = ConvBlock(1, 3, padding="valid", activation=None)
    >>> _ = block.build((1, 5, 5, 1))
    >>> block.set_weights([np.tile([1.0, 0.0, -1.0], (3, 1)).reshape(3, 3, 1, 1), np.zeros(1)])
    >>> image = np.arange(1.0, 26.0).reshape(1, 5, 5, 1)
    >>> np.asarray(block(image))[0, :, :, 0].tolist()
    [[-6.0, -6.0, -6.0], [-6.0, -6.0, -6.0], [-6.0, -6.0, -6.0]]
    """

    def __init__(
        self,
        filters: int,
        kernel_size=3,
        strides=1,
        padding: str = "same",
        activation="relu",
        batch_norm: bool = False,
        use_bias: bool | None = None,
        kernel_initializer="he_normal",
        bn_momentum: float = 0.99,
        bn_epsilon: float = 1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if padding not in ("same", "valid"):
            raise ValueError(f"ConvBlock: padding must be 'same' or 'valid', got {padding!r}")
        self.filters = int(filters)
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.activation = keras.activations.get(activation)
        self.batch_norm = bool(batch_norm)
        self.use_bias = (not self.batch_norm) if use_bias is None else bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.conv = keras.layers.Conv2D(
            self.filters, kernel_size, strides=strides, padding=padding, use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name="conv",
        )
        self.bn = (
            BatchNorm(
                momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype_policy,
                name="bn",
            )
            if self.batch_norm
            else None
        )

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: input_shape[-1]})
        if self.bn is not None:
            self.bn.build(self.conv.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        x = self.conv(inputs)
        if self.bn is not None:
            x = self.bn(x, training=training)
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "activation": keras.activations.serialize(self.activation),
            "batch_norm": self.batch_norm,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
        }
