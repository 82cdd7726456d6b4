"""Residual networks (He et al. 2016) and their plain twins.

Each block computes ``y = relu(F(x) + x)``: the stacked layers learn the
residual ``F(x) = H(x) - x`` instead of the whole mapping ``H``, and the
identity path carries signal and gradient (``dy/dx = 1 + dF/dx``) through
any depth. The plain twin is the same network with ``y = relu(F(x))``.

CIFAR-style family, by ``depth`` (He et al. 2016, section 4.2)::

    images --stem: 3x3 conv, width--> stage1 (n blocks, width) --> stage2 (n, 2*width, /2)
           --> stage3 (n, 4*width, /2) --avg_pool--> logits

    depth = 6n + 2 with basic blocks (20, 32, 44, 56, 110, ...),
            9n + 2 with bottleneck blocks (outputs 4x wider; 164 = 9*18 + 2).

ImageNet-style family, by ``arch`` (He et al. 2016, table 1)::

    images --stem_pad, stem: 7x7 conv 64 /2--> pool_pad, pool: 3x3 max /2
           --> stage1 (64) --> stage2 (128, /2) --> stage3 (256, /2) --> stage4 (512, /2)
           --avg_pool--> logits

    resnet18: basic [2, 2, 2, 2]     resnet50:  bottleneck [3, 4, 6, 3]
    resnet34: basic [3, 4, 6, 3]     resnet101: bottleneck [3, 4, 23, 3]
                                      resnet152: bottleneck [3, 8, 36, 3]

The ImageNet family follows ``keras.applications.ResNet50`` layer for layer
(convolutions with biases, the stride on the bottleneck's first 1x1
convolution, batch-norm epsilon 1.001e-5, the zero padding of the stem), so
``build_resnet(arch="resnet50")`` has its 25,636,712 parameters and, with
its weights copied over, its outputs.

Blocks are :class:`seqlab.layers.residual.BasicResidualBlock` and
:class:`seqlab.layers.residual.BottleneckResidualBlock`, named
``stage{i}_block{j}`` (from 1), so gradient diagnostics report one norm per
block (``grad_norm/stem`` is the first layer's).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from seqlab.errors import ConfigError
from seqlab.layers.conv import ConvBlock
from seqlab.layers.residual import SHORTCUTS, BasicResidualBlock, BottleneckResidualBlock
from seqlab.models._vision import check_choice, check_num_classes, image_input, logits_dtype

BLOCKS = {"basic": BasicResidualBlock, "bottleneck": BottleneckResidualBlock}
# name -> (block, blocks per stage): He et al. (2016), table 1.
ARCHS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
CIFAR_DEPTHS = (20, 32, 44, 56, 110)  # He et al. (2016), table 6
LAYERS_PER_BLOCK = {"basic": 2, "bottleneck": 3}
BN_EPSILON = 1.001e-5  # keras.applications.ResNet50's


def resnet_plan(depth: int | None = 20, arch: str | None = None, block: str | None = None):
    """``(family, block, blocks per stage)`` for a ``depth`` or an ``arch`` name.

    ``family`` is ``"cifar"`` (by depth: 3 stages of ``n`` blocks) or
    ``"imagenet"`` (by name: 4 stages). ``arch``, when given, takes precedence
    over ``depth``.

    Raises:
        ConfigError: naming the unknown ``arch``, the depth that is not
            ``6n + 2`` (basic) / ``9n + 2`` (bottleneck), or a ``block`` that
            contradicts the ``arch``.

    Example:

    >>> resnet_plan(56)
    ('cifar', 'basic', (9, 9, 9))
    >>> resnet_plan(arch="resnet50")
    ('imagenet', 'bottleneck', (3, 4, 6, 3))
    """
    if block is not None:
        check_choice("block", block, tuple(BLOCKS))
    if arch is not None:
        if arch not in ARCHS:
            raise ConfigError(
                f"model.arch={arch!r} is not an ImageNet-style ResNet; choose one of "
                f"{', '.join(ARCHS)}, or set model.arch=null and model.depth to a CIFAR-style "
                f"depth ({', '.join(map(str, CIFAR_DEPTHS))})"
            )
        arch_block, counts = ARCHS[arch]
        if block is not None and block != arch_block:
            raise ConfigError(
                f"model.block={block!r} contradicts model.arch={arch!r}, which has "
                f"{arch_block} blocks; leave model.block null"
            )
        return "imagenet", arch_block, counts
    block = block or "basic"
    per_block = 3 * LAYERS_PER_BLOCK[block]
    if (
        not isinstance(depth, int)
        or isinstance(depth, bool)
        or depth < per_block + 2
        or (depth - 2) % per_block
    ):
        valid = (
            ", ".join(map(str, CIFAR_DEPTHS))
            if block == "basic"
            else ", ".join(str(per_block * n + 2) for n in (1, 2, 6, 12, 18))
        )
        raise ConfigError(
            f"model.depth={depth!r} is not a CIFAR-style ResNet depth: with {block} blocks the "
            f"depth is {per_block}n + 2 ({valid}, ...); for the ImageNet-style networks set "
            f"model.arch to one of {', '.join(ARCHS)}"
        )
    n = (depth - 2) // per_block
    return "cifar", block, (n, n, n)


def _build(
    input_shape,
    num_classes: int,
    depth,
    arch,
    width: int,
    block,
    zero_init_residual: bool,
    shortcut,
    conv_bias,
    name: str,
) -> keras.Model:
    num_classes = check_num_classes(num_classes)
    if not isinstance(width, int) or isinstance(width, bool) or width <= 0:
        raise ConfigError(f"model.width must be a positive integer, got {width!r}")
    family, block, counts = resnet_plan(depth, arch, block)
    if conv_bias is None:
        conv_bias = family == "imagenet"  # as keras.applications; CIFAR: as He et al.
    block_cls = BLOCKS[block]
    inputs = image_input(input_shape, allow_unknown_size=True)

    if family == "cifar":
        x = ConvBlock(
            width, 3, batch_norm=True, use_bias=conv_bias, bn_epsilon=BN_EPSILON, name="stem"
        )(inputs)
        widths = [width * 2**i for i in range(len(counts))]
    else:
        x = keras.layers.ZeroPadding2D(3, name="stem_pad")(inputs)
        x = ConvBlock(
            64, 7, strides=2, padding="valid", batch_norm=True, use_bias=conv_bias,
            bn_epsilon=BN_EPSILON, name="stem",
        )(x)
        x = keras.layers.ZeroPadding2D(1, name="pool_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="pool")(x)
        widths = [64 * 2**i for i in range(len(counts))]

    for stage, (filters, n) in enumerate(zip(widths, counts, strict=True), start=1):
        for j in range(1, n + 1):
            x = block_cls(
                filters,
                strides=2 if (j == 1 and stage > 1) else 1,
                shortcut=shortcut,
                zero_init_residual=zero_init_residual,
                use_bias=conv_bias,
                name=f"stage{stage}_block{j}",
            )(x)

    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = keras.layers.Dense(num_classes, name="logits", dtype=logits_dtype())(x)
    return keras.Model(inputs, logits, name=name)


def _default_name(prefix: str, depth, arch) -> str:
    return arch.replace("resnet", prefix) if arch else f"{prefix}{depth}"


def build_resnet(
    input_shape: Sequence[int],
    num_classes: int,
    depth: int | None = 20,
    arch: str | None = None,
    width: int = 16,
    block: str | None = None,
    zero_init_residual: bool = False,
    shortcut: str = "projection",
    conv_bias: bool | None = None,
    name: str | None = None,
) -> keras.Model:
    """A ResNet: images ``[B, H, W, C]`` -> logits ``[B, num_classes]``.

    Layers: ``images``, the stem (``stem``; ImageNet-style also ``stem_pad``,
    ``pool_pad``, ``pool``), the residual blocks ``stage{i}_block{j}``,
    ``avg_pool`` and the linear ``logits``. The defaults are those of
    ``conf/model/resnet.yaml``.

    Args:
        input_shape: ``(H, W, C)`` of the images (the data bundle supplies
            it; ``H``, ``W`` may be ``None``).
        num_classes: width of the logits.
        depth: weighted layers of a CIFAR-style ResNet, ``6n + 2`` with basic
            blocks (20, 32, 44, 56, 110), ``9n + 2`` with bottleneck blocks.
        arch: an ImageNet-style ResNet by name (``resnet18``, ``resnet34``,
            ``resnet50``, ``resnet101``, ``resnet152``); takes precedence over
            ``depth``.
        width: channels of the CIFAR-style stem and first stage (doubled at
            each later stage); the ImageNet family always starts at 64.
        block: ``"basic"`` or ``"bottleneck"``; ``None``: the ``arch``'s own,
            basic for the CIFAR family.
        zero_init_residual: start the last batch norm of every residual branch
            at ``gamma = 0``, so every block starts as the identity.
        shortcut: ``"projection"`` (1x1 conv + BN exactly where the stride or
            width changes, identity elsewhere; He et al.'s option B) or
            ``"zero_pad"`` (parameter-free: subsample and zero channels;
            option A, their CIFAR setting).
        conv_bias: biases in the convolutions; ``None``: as the reference of
            the family (``keras.applications`` has them, He et al.'s CIFAR
            networks do not).
        name: the Keras model name (``None``: ``resnet20``, ``resnet50``, ...).

    Returns:
        An uncompiled ``keras.Model`` from ``images`` to logits (no softmax).

    Raises:
        ConfigError: (a ``ValueError``) naming the bad value.

    Example:

    >>> model = build_resnet((32, 32, 3), 10, depth=20)
    >>> model.name, model.count_params()          # 272,474 trainable + BN moving statistics
    ('resnet20', 274042)
    >>> [layer.name for layer in model.layers][:4]
    ['images', 'stem', 'stage1_block1', 'stage1_block2']
    >>> [b.name for b in model.layers if getattr(b, "has_projection", False)]
    ['stage2_block1', 'stage3_block1']
    """
    check_choice("shortcut", shortcut, SHORTCUTS)
    return _build(
        input_shape, num_classes, depth, arch, width, block, zero_init_residual, shortcut,
        conv_bias, name or _default_name("resnet", depth, arch),
    )


def build_plain_net(
    input_shape: Sequence[int],
    num_classes: int,
    depth: int | None = 20,
    arch: str | None = None,
    width: int = 16,
    block: str | None = None,
    zero_init_residual: bool = False,
    shortcut: str = "projection",
    conv_bias: bool | None = None,
    name: str | None = None,
) -> keras.Model:
    """The plain twin of :func:`build_resnet`: the same network, ``y = relu(F(x))``.

    Every layer, width and stride as in ``build_resnet`` with the same
    arguments, but no block adds its input back: the projection shortcuts
    (and their parameters) are gone, everything else is shared. He et al.
    (2016) compare plain-20/56 with ResNet-20/56 (figure 6) and plain-18/34
    with ResNet-18/34 (table 2). The defaults are those of
    ``conf/model/plain_net.yaml``.

    Args:
        input_shape, num_classes, depth, arch, width, block, conv_bias: as in
            :func:`build_resnet`.
        zero_init_residual: must be ``False``: with no shortcut, a zeroed last
            norm would make every block output zero.
        shortcut: accepted so that ``build_resnet``'s arguments pass unchanged;
            a plain net has no shortcut to choose.
        name: the Keras model name (``None``: ``plain20``, ``plain34``, ...).

    Returns:
        An uncompiled ``keras.Model`` from ``images`` to logits (no softmax).

    Raises:
        ConfigError: (a ``ValueError``) naming the bad value.

    Example:

    >>> plain = build_plain_net((32, 32, 3), 10, depth=20)
    >>> plain.name, plain.count_params()          # ResNet-20 less its 2 projections
    ('plain20', 271098)
    """
    check_choice("shortcut", shortcut, SHORTCUTS)
    if zero_init_residual:
        raise ConfigError(
            "model.zero_init_residual=True zeroes the last norm of every block; without "
            "shortcuts the plain net would output zeros: set it to false"
        )
    return _build(
        input_shape, num_classes, depth, arch, width, block, False, False, conv_bias,
        name or _default_name("plain", depth, arch),
    )
