"""Convolutional classifier: conv stages, then a dense head.

    images [B, H, W, C]
      --stage s = 0..S-1: conv_s (ConvBlock: Conv2D -> [BN] -> act) x convs_per_stage
                           --pool_s (max | avg, pool_size, stride pool_size)-->
      --flatten | global_pool--> [dropout] --dense_0--> [dropout] ... --logits--> [B, num_classes]

Each stage learns ``filters[s]`` local detectors (weight sharing: the same
kernel at every position) and pooling halves the resolution, so later stages
see larger parts of the image with more channels; the head maps the last
feature map to class logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from seqlab.errors import ConfigError
from seqlab.layers.conv import ConvBlock
from seqlab.models._checks import check_positive, check_rate
from seqlab.models._vision import (
    POOLINGS,
    check_activation,
    check_choice,
    check_num_classes,
    image_input,
    int_tuple,
    logits_dtype,
    per_stage,
)


def _conv_size(n: int, kernel: int, stride: int, padding: str) -> int:
    return -(-n // stride) if padding == "same" else (n - kernel) // stride + 1


def build_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    filters: Sequence[int] = (32, 64),
    kernel_size: int | Sequence[int] = 3,
    strides: int | Sequence[int] = 1,
    padding: str = "same",
    convs_per_stage: int = 1,
    pooling: str | None = "max",
    pool_size: int = 2,
    dense_units: Sequence[int] = (128,),
    dropout: float = 0.0,
    batch_norm: bool = False,
    activation: str = "relu",
    global_pool: bool = False,
    name: str = "cnn",
) -> keras.Model:
    """Images ``[B, H, W, C]`` -> logits ``[B, num_classes]`` through conv stages and a head.

    Layers: ``images``; per stage ``s``: ``conv_s`` (``conv_s_j`` for
    ``convs_per_stage > 1``; each a :class:`seqlab.layers.conv.ConvBlock`)
    and ``pool_s``; then ``flatten`` (or ``global_pool``), ``dense_i`` and
    ``logits``, with ``dropout_i`` before each of them when ``dropout > 0``.
    The defaults are those of ``conf/model/cnn.yaml``.

    Args:
        input_shape: ``(H, W, C)`` of the images (the data bundle supplies it).
        num_classes: width of the logits.
        filters: output channels of each stage's convolutions (one per stage).
        kernel_size: kernel size of every stage, or one per stage.
        strides: stride of each stage's first convolution, or one per stage.
        padding: ``"same"`` or ``"valid"``.
        convs_per_stage: convolutions before each pooling (VGG-style: 2).
        pooling: ``"max"``, ``"avg"`` or ``None`` (no pooling).
        pool_size: pooling window and stride.
        dense_units: units of the hidden dense layers of the head.
        dropout: dropout rate before each dense layer of the head.
        batch_norm: batch norm between each convolution and its activation.
        activation: activation of the convolutions and hidden dense layers.
        global_pool: average over all positions instead of flattening.
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` from ``images`` to logits (no softmax).

    Raises:
        ConfigError: (a ``ValueError``) naming the bad value, also when the
            stages shrink the image to nothing.

    Example:

    >>> model = build_cnn((28, 28, 1), 10, filters=[8, 16], dense_units=[32])
    >>> [layer.name for layer in model.layers]
    ['images', 'conv_0', 'pool_0', 'conv_1', 'pool_1', 'flatten', 'dense_0', 'logits']
    >>> model.get_layer("pool_1").output.shape      # 28 -> 14 -> 7
    (None, 7, 7, 16)
    """
    num_classes = check_num_classes(num_classes)
    widths = int_tuple("filters", filters)
    stages = len(widths)
    kernels = per_stage("kernel_size", kernel_size, stages)
    stride_list = per_stage("strides", strides, stages)
    check_choice("padding", padding, ("same", "valid"))
    check_positive(convs_per_stage=convs_per_stage, pool_size=pool_size)
    if pooling is not None:
        check_choice("pooling", pooling, (*POOLINGS, None))
    units = int_tuple("dense_units", dense_units)
    check_rate("dropout", dropout)
    check_activation("activation", activation)
    inputs = image_input(input_shape, allow_unknown_size=global_pool)

    size = list(input_shape[:2])
    x = inputs
    for s in range(stages):
        for j in range(convs_per_stage):
            stride = stride_list[s] if j == 0 else 1
            if size[0] is not None:
                size = [_conv_size(n, kernels[s], stride, padding) for n in size]
            layer_name = f"conv_{s}" if convs_per_stage == 1 else f"conv_{s}_{j}"
            _check_size(size, input_shape, layer_name)
            x = ConvBlock(
                widths[s], kernels[s], strides=stride, padding=padding, activation=activation,
                batch_norm=batch_norm, name=layer_name,
            )(x)
        if pooling is not None:
            if size[0] is not None:
                size = [(n - pool_size) // pool_size + 1 for n in size]
            _check_size(size, input_shape, f"pool_{s}")
            pool = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
            x = pool(pool_size, name=f"pool_{s}")(x)

    if global_pool:
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
    for i, n in enumerate(units):
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
        x = keras.layers.Dense(n, activation=activation, name=f"dense_{i}")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name=f"dropout_{len(units)}")(x)
    logits = keras.layers.Dense(num_classes, name="logits", dtype=logits_dtype())(x)
    return keras.Model(inputs, logits, name=name)


def _check_size(size, input_shape, layer_name: str) -> None:
    if size[0] is not None and min(size) < 1:
        raise ConfigError(
            f"model: the {input_shape[0]}x{input_shape[1]} input shrinks to nothing at "
            f"{layer_name}; use fewer stages (model.filters), smaller strides/pool_size, "
            "padding='same' or larger images"
        )
