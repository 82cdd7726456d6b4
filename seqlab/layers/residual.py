"""Residual blocks (He et al. 2016): ``y = relu(F(x) + shortcut(x))``.

``BasicResidualBlock``
    ``F(x) = BN(conv3x3(relu(BN(conv3x3_s(x)))))``, two 3x3 convolutions of
    ``filters`` channels, the first with stride ``s`` (ResNet-18/34 and the
    CIFAR family ResNet-20/32/44/56/110).
``BottleneckResidualBlock``
    ``F(x) = BN(conv1x1(relu(BN(conv3x3(relu(BN(conv1x1_s(x))))))))``:
    reduce to ``filters`` channels, 3x3 convolution, expand to
    ``expansion * filters`` (ResNet-50/101/152). The stride sits on the first
    1x1 convolution, as in He et al. (2016) and ``keras.applications.ResNet50``.

The shortcut (``shortcut=``):

* ``"projection"`` (He et al.'s option B): the identity ``x`` while the
  branch keeps the shape; a 1x1 convolution of stride ``s`` with batch norm,
  ``BN(conv1x1_s(x))``, exactly when the stride is not 1 or the channels
  change.
* ``"zero_pad"`` (option A, parameter-free, He et al.'s CIFAR experiments):
  the identity, or ``x`` subsampled by the stride (``x[:, ::s, ::s]``) with
  zero channels appended when the shape changes.
* ``False``: no shortcut, ``y = relu(F(x))`` -- the block of the plain twin.

``zero_init_residual=True`` starts the last batch norm's ``gamma`` at zero,
so ``F(x) = 0`` and, with an identity shortcut, ``y = relu(x) = x`` for the
non-negative inputs a ResNet feeds its blocks: every block starts as the
identity (Goyal et al. 2017).
"""

from __future__ import annotations

import keras
from keras import ops

from seqlab.layers.batch_norm import BatchNorm

SHORTCUTS = ("projection", "zero_pad")


def check_shortcut(shortcut):
    """``shortcut`` as stored: ``"projection"``, ``"zero_pad"`` or ``False``; else ValueError."""
    if shortcut is False or shortcut in SHORTCUTS:
        return shortcut
    raise ValueError(
        f"shortcut must be one of {', '.join(map(repr, SHORTCUTS))} or False (no shortcut), "
        f"got {shortcut!r}"
    )


class _ResidualBlock(keras.layers.Layer):
    """What both blocks share: arguments, the shortcut, ``call`` and the config."""

    def __init__(
        self,
        filters: int,
        strides: int = 1,
        shortcut="projection",
        zero_init_residual: bool = False,
        use_bias: bool = False,
        kernel_initializer="he_normal",
        bn_momentum: float = 0.99,
        bn_epsilon: float = 1.001e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)
        if self.filters <= 0 or self.strides <= 0:
            raise ValueError(
                f"{type(self).__name__}: filters and strides must be positive, "
                f"got filters={filters!r}, strides={strides!r}"
            )
        self.shortcut = check_shortcut(shortcut)
        self.zero_init_residual = bool(zero_init_residual)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.has_projection = False  # set in build: a 1x1 conv + BN shortcut exists

    @property
    def out_channels(self) -> int:
        return self.filters

    def _conv(self, filters, kernel_size, strides, name):
        return keras.layers.Conv2D(
            filters, kernel_size, strides=strides, padding="same", use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name=name,
        )

    def _bn(self, name, last=False):
        zero = last and self.zero_init_residual
        return BatchNorm(
            momentum=self.bn_momentum, epsilon=self.bn_epsilon,
            gamma_initializer="zeros" if zero else "ones", dtype=self.dtype_policy, name=name,
        )

    def changes_shape(self, in_channels: int) -> bool:
        """Whether the branch changes the shape: stride > 1 or other channels."""
        return self.strides != 1 or in_channels != self.out_channels

    def _build_shortcut(self, input_shape):
        self.in_channels = int(input_shape[-1])
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: self.in_channels})
        if self.shortcut == "projection" and self.changes_shape(self.in_channels):
            conv = self._conv(self.out_channels, 1, self.strides, "shortcut_conv")
            bn = self._bn("shortcut_bn")
            conv.build(input_shape)
            bn.build(conv.compute_output_shape(input_shape))
            self.shortcut_conv, self.shortcut_bn = conv, bn
            self.has_projection = True

    def _apply_shortcut(self, x, training):
        if self.has_projection:
            return self.shortcut_bn(self.shortcut_conv(x), training=training)
        if self.shortcut == "zero_pad" and self.changes_shape(self.in_channels):
            if self.strides != 1:
                x = x[:, :: self.strides, :: self.strides, :]
            extra = self.out_channels - self.in_channels
            if extra < 0:
                raise ValueError(
                    f"{self.name}: a zero_pad shortcut cannot reduce {self.in_channels} channels "
                    f"to {self.out_channels}; use shortcut='projection'"
                )
            if extra:
                x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]])
        return x

    def call(self, inputs, training=None):
        y = self.residual(inputs, training=training)
        if self.shortcut is not False:
            y = y + self._apply_shortcut(inputs, training)
        return ops.relu(y)

    def compute_output_shape(self, input_shape):
        def down(n):
            return None if n is None else -(-n // self.strides)

        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), self.out_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "strides": self.strides,
            "shortcut": self.shortcut,
            "zero_init_residual": self.zero_init_residual,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
        }


@keras.saving.register_keras_serializable(package="seqlab")
class BasicResidualBlock(_ResidualBlock):
    """``y = relu(F(x) + shortcut(x))``, ``F`` two 3x3 convolutions with batch norm.

    ``F(x) = BN2(conv2(relu(BN1(conv1(x)))))``: ``conv1`` 3x3 with stride
    ``strides`` to ``filters`` channels, ``conv2`` 3x3 keeping them. The
    shortcut is the identity unless the stride or the channels change; then a
    1x1 projection (``shortcut="projection"``) or a zero-padded subsample
    (``"zero_pad"``). ``shortcut=False``: ``y = relu(F(x))`` (plain net).

    Args:
        filters: channels of both convolutions and of the output.
        strides: stride of the first convolution (and of the shortcut).
        shortcut: ``"projection"``, ``"zero_pad"`` or ``False``.
        zero_init_residual: start ``BN2``'s ``gamma`` at zero (the block starts
            as ``relu(shortcut(x))``).
        use_bias: biases in the convolutions (redundant before batch norm;
            ``keras.applications`` keeps them).
        kernel_initializer: the convolutions' initializer (default He normal).
        bn_momentum, bn_epsilon: the batch norms' momentum and epsilon
            (``keras.applications.ResNet50``'s ``epsilon=1.001e-5``).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``[B, H, W, C]``.
        training: batch statistics (``True``) or moving averages in the norms.

    Returns:
        ``[B, ceil(H / s), ceil(W / s), filters]``.

    Example:

    >>> import numpy as np
    >>> same = BasicResidualBlock(8)
    >>> _ = same.build((None, 6, 6, 8))
    >>> same.has_projection                      # same shape: identity shortcut
    False
    >>> down = BasicResidualBlock(16, strides=2)
    >>> tuple(down(np.zeros((1, 6, 6, 8), "float32")).shape)
    (1, 3, 3, 16)
    >>> down.has_projection                      # stride 2, 8 -> 16 channels: projection
    True
    >>> block = BasicResidualBlock(4, zero_init_residual=True)
    >>> x = np.abs(np.random.default_rng(0).normal(size=(2, 5, 5, 4))).astype("float32")
    >>> bool(np.allclose(block(x, training=True), x))    # zero branch: the identity
    True
    """

    def build(self, input_shape):
        self.conv1 = self._conv(self.filters, 3, self.strides, "conv1")
        self.bn1 = self._bn("bn1")
        self.conv2 = self._conv(self.filters, 3, 1, "conv2")
        self.bn2 = self._bn("bn2", last=True)
        shape = input_shape
        for layer in (self.conv1, self.bn1, self.conv2, self.bn2):
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self._build_shortcut(input_shape)

    def residual(self, x, training=None):
        x = ops.relu(self.bn1(self.conv1(x), training=training))
        return self.bn2(self.conv2(x), training=training)


@keras.saving.register_keras_serializable(package="seqlab")
class BottleneckResidualBlock(_ResidualBlock):
    """``y = relu(F(x) + shortcut(x))``, ``F`` a 1x1 -> 3x3 -> 1x1 bottleneck.

    ``F(x) = BN3(conv3(relu(BN2(conv2(relu(BN1(conv1(x))))))))``: ``conv1``
    1x1 with stride ``strides`` to ``filters`` channels, ``conv2`` 3x3,
    ``conv3`` 1x1 to ``expansion * filters`` channels (the output). Shortcut as
    in :class:`BasicResidualBlock`.

    Args:
        filters: the bottleneck's width; the output has ``expansion * filters``.
        strides: stride of the first 1x1 convolution (and of the shortcut).
        expansion: output channels per bottleneck channel (4 in ResNet-50).
        shortcut, zero_init_residual, use_bias, kernel_initializer,
        bn_momentum, bn_epsilon, **kwargs: as in :class:`BasicResidualBlock`
            (``zero_init_residual`` zeroes ``BN3``'s ``gamma``).

    Call arguments:
        inputs: ``[B, H, W, C]``.
        training: batch statistics (``True``) or moving averages in the norms.

    Returns:
        ``[B, ceil(H / s), ceil(W / s), expansion * filters]``.

    Example:

    >>> import numpy as np
    >>> block = BottleneckResidualBlock(4)                 # 16 -> 4 -> 4 -> 16 channels
    >>> tuple(block(np.zeros((1, 8, 8, 16), "float32")).shape)
    (1, 8, 8, 16)
    >>> block.has_projection, block.count_params()   # convs 64 + 144 + 64, norms 4 * (4 + 4 + 16)
    (False, 368)
    >>> wider = BottleneckResidualBlock(4)
    >>> _ = wider.build((None, 8, 8, 8))             # 8 -> 16 channels: projection
    >>> wider.has_projection
    True
    """

    def __init__(self, filters: int, strides: int = 1, expansion: int = 4, **kwargs):
        super().__init__(filters, strides, **kwargs)
        self.expansion = int(expansion)
        if self.expansion <= 0:
            raise ValueError(f"BottleneckResidualBlock: expansion must be positive, got {expansion!r}")

    @property
    def out_channels(self) -> int:
        return self.expansion * self.filters

    def build(self, input_shape):
        self.conv1 = self._conv(self.filters, 1, self.strides, "conv1")
        self.bn1 = self._bn("bn1")
        self.conv2 = self._conv(self.filters, 3, 1, "conv2")
        self.bn2 = self._bn("bn2")
        self.conv3 = self._conv(self.out_channels, 1, 1, "conv3")
        self.bn3 = self._bn("bn3", last=True)
        shape = input_shape
        for layer in (self.conv1, self.bn1, self.conv2, self.bn2, self.conv3, self.bn3):
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self._build_shortcut(input_shape)

    def residual(self, x, training=None):
        x = ops.relu(self.bn1(self.conv1(x), training=training))
        x = ops.relu(self.bn2(self.conv2(x), training=training))
        return self.bn3(self.conv3(x), training=training)

    def get_config(self):
        return {**super().get_config(), "expansion": self.expansion}
