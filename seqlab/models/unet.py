"""U-Net (Ronneberger et al. 2015) with ``same`` padding: output resolution = input resolution.

    images [B, H, W, C]
      --enc_0 (DoubleConv, f)--> s_0 --pool_0--> --enc_1 (2f)--> s_1 --pool_1--> ...
      --enc_{d-1} (2^{d-1} f)--> s_{d-1} --pool_{d-1}-->
      --bottleneck (DoubleConv, 2^d f)-->
      --dec_{d-1}([x, s_{d-1}])--> ... --dec_0([x, s_0])--> [B, H, W, f]
      --logits (1x1 conv)--> [B, H, W, num_classes]    (num_classes = 1: one binary logit)

The encoder halves the resolution ``depth`` times and doubles the channels;
the decoder (:class:`seqlab.layers.unet.UNetDecoderBlock`) doubles it back
and concatenates the encoder map ``s_l`` of the same resolution -- the
bridge that hands the decoder the detail pooling lost. ``dropout`` acts on
the deepest encoder map and on the bottleneck, as in zhixuhao/unet.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from seqlab.errors import ConfigError
from seqlab.layers.unet import UPSAMPLINGS, DoubleConv, UNetDecoderBlock
from seqlab.models._checks import check_positive, check_rate
from seqlab.models._vision import check_choice, check_num_classes, image_input, logits_dtype


def check_unet_size(input_shape: Sequence[int], depth: int) -> None:
    """ConfigError unless height and width are divisible by ``2**depth``, naming the nearest sizes.

    Example:

    >>> check_unet_size((96, 128, 1), depth=4)
    >>> check_unet_size((100, 128, 1), depth=4)
    Traceback (most recent call last):
    ...
    seqlab.errors.ConfigError: U-Net with model.depth=4 needs height and width divisible by 2**4 = 16, got height 100 (nearest valid: 96 or 112); crop or pad the images to such a size, or lower model.depth
    """
    step = 2**depth

    def nearest(n: int) -> str:
        lower = n // step * step
        return f"{lower} or {lower + step}" if lower else str(step)

    bad = [
        f"{axis} {n} (nearest valid: {nearest(n)})"
        for axis, n in zip(("height", "width"), input_shape[:2], strict=True)
        if n % step
    ]
    if bad:
        raise ConfigError(
            f"U-Net with model.depth={depth} needs height and width divisible by 2**{depth} = "
            f"{step}, got {', '.join(bad)}; crop or pad the images to such a size, or lower "
            "model.depth"
        )


def build_unet(
    input_shape: Sequence[int],
    num_classes: int = 1,
    depth: int = 4,
    base_filters: int = 64,
    batch_norm: bool = True,
    dropout: float = 0.0,
    upsampling: str = "transpose",
    name: str = "unet",
) -> keras.Model:
    """Images ``[B, H, W, C]`` -> per-pixel logits ``[B, H, W, num_classes]``.

    Layers: ``images``; ``enc_l`` (:class:`seqlab.layers.unet.DoubleConv` of
    ``base_filters * 2**l`` channels) and ``pool_l`` for ``l < depth``;
    ``bottleneck``; ``dec_l`` (:class:`seqlab.layers.unet.UNetDecoderBlock`)
    from ``depth - 1`` down to 0; ``logits`` (1x1 convolution, linear). The
    defaults are those of ``conf/model/unet.yaml``.

    Args:
        input_shape: ``(H, W, C)``; ``H`` and ``W`` divisible by ``2**depth``.
        num_classes: 1 for one binary logit per pixel (sigmoid loss), or the
            number of classes (one logit per class and pixel, softmax loss).
        depth: poolings in the encoder (4 in the paper).
        base_filters: channels of the first level (64 in the paper), doubled
            at every level below.
        batch_norm: batch norm after every convolution.
        dropout: dropout rate on the deepest encoder map and the bottleneck.
        upsampling: ``"transpose"`` (2x2 transposed convolution) or
            ``"bilinear"`` (bilinear resize and a 2x2 convolution).
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` from ``images`` to logits (no sigmoid or
        softmax).

    Raises:
        ConfigError: (a ``ValueError``) naming the bad value; for a size not
            divisible by ``2**depth`` also the nearest valid sizes.

    Example:

    >>> model = build_unet((64, 48, 1), depth=2, base_filters=4)
    >>> [layer.name for layer in model.layers if layer.weights]
    ['enc_0', 'enc_1', 'bottleneck', 'dec_1', 'dec_0', 'logits']
    >>> model.output.shape
    (None, 64, 48, 1)
    """
    num_classes = check_num_classes(num_classes)
    check_positive(depth=depth, base_filters=base_filters)
    check_rate("dropout", dropout)
    check_choice("upsampling", upsampling, UPSAMPLINGS)
    inputs = image_input(input_shape)
    check_unet_size(input_shape, depth)

    x, skips = inputs, []
    for level in range(depth):
        deepest = level == depth - 1
        x = DoubleConv(
            base_filters * 2**level, batch_norm=batch_norm, dropout=dropout if deepest else 0.0,
            name=f"enc_{level}",
        )(x)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{level}")(x)
    x = DoubleConv(base_filters * 2**depth, batch_norm=batch_norm, dropout=dropout,
                   name="bottleneck")(x)
    for level in reversed(range(depth)):
        x = UNetDecoderBlock(
            base_filters * 2**level, upsampling=upsampling, batch_norm=batch_norm,
            name=f"dec_{level}",
        )([x, skips[level]])
    logits = keras.layers.Conv2D(num_classes, 1, name="logits", dtype=logits_dtype())(x)
    return keras.Model(inputs, logits, name=name)
