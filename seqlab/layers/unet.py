"""U-Net blocks (Ronneberger et al. 2015), with ``"same"`` padding.

``DoubleConv``
    ``y = act(BN(conv3x3(act(BN(conv3x3(x))))))`` (two
    :class:`seqlab.layers.conv.ConvBlock` s), then dropout if asked: one
    encoder level, or the bottleneck.
``UNetDecoderBlock``
    one decoder level: ``u = up(x)`` doubles the resolution (a 2x2
    transposed convolution of stride 2, or bilinear upsampling and a 2x2
    convolution -- the paper's "up-convolution"), ``y = DoubleConv([skip, u])``
    on the concatenation with the encoder's feature map of the same
    resolution. The concatenation is U-Net's bridge: the decoder gets back the
    fine detail the pooling threw away.
"""

from __future__ import annotations

import keras

from seqlab.layers.conv import ConvBlock

UPSAMPLINGS = ("transpose", "bilinear")


@keras.saving.register_keras_serializable(package="seqlab")
class DoubleConv(keras.layers.Layer):
    """Two 3x3 ``ConvBlock`` s of ``filters`` channels (``same`` padding), then dropout.

    Args:
        filters: channels of both convolutions.
        batch_norm: batch norm before each activation.
        activation: the activation of both convolutions.
        dropout: dropout rate on the output, in ``[0, 1)``.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``[B, H, W, C]``.
        training: batch statistics and dropout (``True``) or inference.

    Returns:
        ``[B, H, W, filters]``.

    Example:

    >>> import numpy as np
    >>> layer = DoubleConv(8)
    >>> tuple(layer(np.zeros((2, 16, 16, 3), "float32")).shape)
    (2, 16, 16, 8)
    >>> layer.count_params()         # 3*3*3*8 + 3*3*8*8 conv weights, 2 * 4*8 norm values
    856
    """

    def __init__(self, filters: int, batch_norm: bool = True, activation="relu",
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"DoubleConv: dropout must be in [0, 1), got {dropout!r}")
        self.filters = int(filters)
        self.batch_norm = bool(batch_norm)
        self.activation = keras.activations.get(activation)
        self.dropout = float(dropout)
        common = dict(batch_norm=self.batch_norm, activation=self.activation,
                      dtype=self.dtype_policy)
        self.conv1 = ConvBlock(self.filters, 3, name="conv1", **common)
        self.conv2 = ConvBlock(self.filters, 3, name="conv2", **common)
        self.drop = keras.layers.Dropout(self.dropout, name="dropout") if self.dropout else None

    def build(self, input_shape):
        self.conv1.build(input_shape)
        self.conv2.build(self.conv1.compute_output_shape(input_shape))
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: input_shape[-1]})

    def call(self, inputs, training=None):
        x = self.conv2(self.conv1(inputs, training=training), training=training)
        if self.drop is not None:
            x = self.drop(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "batch_norm": self.batch_norm,
            "activation": keras.activations.serialize(self.activation),
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package="seqlab")
class UNetDecoderBlock(keras.layers.Layer):
    """``y = DoubleConv(concat([skip, up(x)]))``: one U-Net decoder level.

    Args:
        filters: channels of the upsampled map and of the output.
        upsampling: ``"transpose"`` (``Conv2DTranspose(filters, 2, strides=2)``)
            or ``"bilinear"`` (``UpSampling2D(2, "bilinear")`` then
            ``Conv2D(filters, 2, padding="same")``).
        batch_norm: batch norm in the ``DoubleConv``.
        activation: activation of the ``DoubleConv``.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``[x, skip]``: ``x`` ``[B, H, W, C]`` from the level below,
            ``skip`` ``[B, 2H, 2W, C']`` from the encoder.
        training: batch statistics (``True``) or moving averages.

    Returns:
        ``[B, 2H, 2W, filters]``.

    Example:

    >>> import numpy as np
    >>> block = UNetDecoderBlock(4)
    >>> x, skip = np.zeros((1, 4, 4, 8), "float32"), np.zeros((1, 8, 8, 4), "float32")
    >>> tuple(block([x, skip]).shape)
    (1, 8, 8, 4)
    """

    def __init__(self, filters: int, upsampling: str = "transpose", batch_norm: bool = True,
                 activation="relu", **kwargs):
        super().__init__(**kwargs)
        if upsampling not in UPSAMPLINGS:
            raise ValueError(
                f"UNetDecoderBlock: upsampling must be one of {UPSAMPLINGS}, got {upsampling!r}"
            )
        self.filters = int(filters)
        self.upsampling = upsampling
        self.batch_norm = bool(batch_norm)
        self.activation = keras.activations.get(activation)
        if upsampling == "transpose":
            self.up = keras.layers.Conv2DTranspose(
                self.filters, 2, strides=2, dtype=self.dtype_policy, name="up"
            )
            self.resize = None
        else:
            self.resize = keras.layers.UpSampling2D(
                2, interpolation="bilinear", dtype=self.dtype_policy, name="resize"
            )
            self.up = keras.layers.Conv2D(
                self.filters, 2, padding="same", dtype=self.dtype_policy, name="up"
            )
        self.concat = keras.layers.Concatenate(dtype=self.dtype_policy, name="concat")
        self.conv = DoubleConv(self.filters, batch_norm=self.batch_norm,
                               activation=self.activation, dtype=self.dtype_policy, name="conv")

    def build(self, input_shape):
        x_shape, skip_shape = input_shape
        if self.resize is not None:
            self.resize.build(x_shape)
            x_shape = self.resize.compute_output_shape(x_shape)
        self.up.build(x_shape)
        self.conv.build((*skip_shape[:-1], skip_shape[-1] + self.filters))

    def call(self, inputs, training=None):
        x, skip = inputs
        if self.resize is not None:
            x = self.resize(x)
        x = self.up(x)
        return self.conv(self.concat([skip, x]), training=training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[1][:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "upsampling": self.upsampling,
            "batch_norm": self.batch_norm,
            "activation": keras.activations.serialize(self.activation),
        }
