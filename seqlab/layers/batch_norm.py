"""Batch normalisation (Ioffe & Szegedy 2015) through TensorFlow's fused kernel.

Per channel ``c``, over the ``n`` values of the batch in that channel (every
axis but the last: ``n = N*H*W`` for images)::

    mean_c = sum(x[..., c]) / n,    var_c = sum((x[..., c] - mean_c)^2) / n      (biased)
    y      = (x - mean_c) / sqrt(var_c + epsilon) * gamma_c + beta_c
    moving_mean <- momentum * moving_mean + (1 - momentum) * mean_c     (moving_variance alike)

and at inference the moving statistics stand in for the batch ones.

Keras 3's ``BatchNormalization`` writes this with ``ops.moments`` and
``ops.batch_normalization``: about ten elementwise and reduction kernels
over the activation forward, and autodiff's backward through each of them.
TensorFlow has the same function as one op, ``FusedBatchNormV3`` (oneDNN's
batch norm on x86), with one gradient op. :class:`BatchNorm` is
``keras.layers.BatchNormalization`` (same arguments, weights, config and
inference path) with that op in training; whole training steps ran
1.19-1.31x faster than the same networks with Keras' layer on this
project's 2-core CPU (``fashion_cnn`` 1.31, ResNet-20 1.28, ResNet-50 and
U-Net 1.19; ``experiments/vision/bench.py``).

The fused op returns the *unbiased* batch variance (``n / (n - 1)`` times the
one it normalises with); Keras' moving variance averages the biased one, and
so does this layer (the factor is undone), so both layers hold the same
state after the same steps.

Where the fused op does not apply, the layer is Keras' own, unchanged: another
backend, inference (``training=False`` or a frozen layer), a mask, batch
renormalisation, synchronised statistics, a normalised axis other than the
last, ``float64`` (no fused kernel), ``epsilon < 1.001e-5`` (cuDNN's floor,
which ``tf.nn`` enforces on every device), and XLA
(:func:`~seqlab.layers.xla.compiled_by_xla`): there the fused op was no
faster than XLA's own fusion of the plain formulas (a training step of
``fashion_cnn`` 126 against 130 ms, ResNet-20 505 against 482 ms; graph
mode with the fused op ran 3.0x and 2.6x faster than either).
"""

from __future__ import annotations

import keras

from seqlab.layers.xla import compiled_by_xla

# cuDNN's CUDNN_BN_MIN_EPSILON; TensorFlow raises smaller ones to it on every device
_MIN_FUSED_EPSILON = 1.001e-5


@keras.saving.register_keras_serializable(package="seqlab")
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with TensorFlow's fused kernel in training.

    Same arguments, weights (``gamma``, ``beta``, ``moving_mean``,
    ``moving_variance``), outputs and moving statistics as the Keras layer
    (to float32 round-off), so weights copy both ways; only the training
    step is faster. Statistics in float32 under mixed precision, as Keras'.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(2.0, 3.0, size=(8, 4, 4, 3)).astype("float32")
    >>> ours, ref = BatchNorm(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
    >>> y, y_ref = ours(x, training=True), ref(x, training=True)
    >>> bool(np.allclose(y, y_ref, atol=1e-5))
    True
    >>> bool(np.allclose(ours.moving_variance, ref.moving_variance, atol=1e-5))
    True
    """

    def _fused_applies(self, inputs, training, mask) -> bool:
        return bool(
            training
            and self.trainable
            and mask is None
            and keras.backend.backend() == "tensorflow"
            and not self.renorm
            and not self.synchronized
            and self.axis in (-1, len(inputs.shape) - 1)
            and len(inputs.shape) >= 2
            and keras.backend.standardize_dtype(inputs.dtype) != "float64"
            and self.epsilon >= _MIN_FUSED_EPSILON
            and not compiled_by_xla()
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fused_applies(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, "float32")  # statistics in float32, as Keras' layer
        channels = int(x.shape[-1])
        shape = tf.shape(x) if len(x.shape) != 4 else None
        if shape is not None:  # the kernel takes NHWC: the reduced axes flattened into N
            x = tf.reshape(x, [-1, 1, 1, channels])
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        y, mean, unbiased_var, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=tf.constant([], "float32"),
            variance=tf.constant([], "float32"), epsilon=self.epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True,
        )
        n = tf.cast(tf.size(x, out_type=tf.int64) // channels, "float32")  # values per channel
        variance = unbiased_var * (n - 1.0) / tf.maximum(n, 1.0)  # back to Keras' biased variance
        self.moving_mean.assign(
            self.moving_mean * self.momentum + tf.cast(mean, self.moving_mean.dtype) * (1.0 - self.momentum)
        )
        self.moving_variance.assign(
            self.moving_variance * self.momentum
            + tf.cast(variance, self.moving_variance.dtype) * (1.0 - self.momentum)
        )
        if shape is not None:
            y = tf.reshape(y, shape)
        return tf.cast(y, self.compute_dtype)
