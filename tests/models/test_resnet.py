"""build_resnet / build_plain_net: published parameter counts, keras.applications.ResNet50
with copied weights, the plain twin, where the projections sit, zero-init, training, saving,
bad input."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.models.resnet import build_plain_net, build_resnet


def _trainable(model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def _cifar_resnet_params(n, width, in_channels, classes, projection=True, bias=False):
    """Trainable parameters of He et al.'s CIFAR ResNet-(6n+2), counted from the architecture:
    3x3 convs (+ bias), BN gamma/beta per channel, 1x1 projections where the width doubles."""
    def conv(k, cin, cout):
        return k * k * cin * cout + (cout if bias else 0)

    total = conv(3, in_channels, width) + 2 * width  # stem
    cin = width
    for stage in range(3):
        c = width * 2**stage
        for _ in range(n):
            total += conv(3, cin, c) + conv(3, c, c) + 4 * c
            if projection and cin != c:
                total += conv(1, cin, c) + 2 * c
            cin = c
    return total + cin * classes + classes


def test_resnet20_has_the_published_0_27_million_parameters():
    model = build_resnet((32, 32, 3), 10, depth=20)
    trainable = _trainable(model)
    # He et al. (2016), table 6: ResNet-20, 0.27 M. Exactly 272,474 trainable (the 2 projection
    # shortcuts included), 274,042 with the BN moving statistics.
    assert trainable == _cifar_resnet_params(3, 16, 3, 10) == 272_474
    assert round(trainable / 1e6, 2) == 0.27
    # Moving mean and variance of 7 norms per width (stem or projection, 6 in the blocks).
    assert model.count_params() == trainable + 2 * 7 * (16 + 32 + 64) == 274_042
    zero_pad = build_resnet((32, 32, 3), 10, depth=20, shortcut="zero_pad")
    assert _trainable(zero_pad) == _cifar_resnet_params(3, 16, 3, 10, projection=False)
    # ResNet-56 with He et al.'s parameter-free shortcuts (option A): 0.85 M in table 6.
    resnet56 = build_resnet((32, 32, 3), 10, depth=56, shortcut="zero_pad")
    assert _trainable(resnet56) == _cifar_resnet_params(9, 16, 3, 10, projection=False)
    assert round(_trainable(resnet56) / 1e6, 2) == 0.85


def _copy_keras_resnet50_weights(reference, model):
    """keras.applications' ``conv{k}_block{b}_{i}_{conv|bn}`` -> our ``stage{k-1}_block{b}``."""
    for layer in reference.layers:
        if not layer.weights:
            continue
        parts = layer.name.split("_")
        if layer.name.startswith("conv1_"):
            target = getattr(model.get_layer("stem"), parts[1])
        elif layer.name == "predictions":
            target = model.get_layer("logits")
        else:
            block = model.get_layer(f"stage{int(parts[0][4:]) - 1}_{parts[1]}")
            sub = "shortcut_" + parts[3] if parts[2] == "0" else parts[3] + parts[2]
            target = getattr(block, sub)
        target.set_weights(layer.get_weights())


def test_resnet50_equals_keras_applications_resnet50():
    """25,636,712 parameters (25.6 M, He et al. table 3), equal to keras.applications.ResNet50,
    and with its weights copied over, its outputs (built at 64x64: the counts do not depend on
    the input size, the forward pass is cheaper)."""
    reference = keras.applications.ResNet50(
        weights=None, input_shape=(64, 64, 3), classes=1000, classifier_activation=None
    )
    model = build_resnet((64, 64, 3), 1000, arch="resnet50")
    assert model.name == "resnet50"
    assert model.count_params() == reference.count_params() == 25_636_712
    assert round(model.count_params() / 1e6, 1) == 25.6
    assert _trainable(model) == _trainable(reference)
    rng = np.random.default_rng(0)
    for var in reference.weights:
        if "variance" in var.path:
            var.assign(rng.uniform(0.5, 1.5, var.shape))
        elif "bn" in var.path:
            var.assign(rng.normal(0.0, 0.1, var.shape) + ("gamma" in var.path))
    _copy_keras_resnet50_weights(reference, model)
    x = rng.normal(size=(2, 64, 64, 3)).astype("float32")
    want = np.asarray(reference(x, training=False))
    got = np.asarray(model(x, training=False))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def _projection_params(cin, cout, bias):
    return cin * cout + (cout if bias else 0) + 4 * cout  # 1x1 conv, BN (incl. moving stats)


@pytest.mark.parametrize(
    ("kwargs", "input_shape", "projections"),
    [
        # CIFAR-style: the width doubles at stages 2 and 3.
        ({"depth": 20}, (32, 32, 3), [(16, 32), (32, 64)]),
        ({"depth": 14, "width": 8}, (16, 16, 1), [(8, 16), (16, 32)]),
        # Bottleneck 9n+2: every stage's first block changes the width (16 -> 64 at stage 1).
        ({"depth": 11, "block": "bottleneck"}, (16, 16, 3), [(16, 64), (64, 128), (128, 256)]),
        # ImageNet-style ResNet-18 (conv biases, as keras.applications).
        ({"arch": "resnet18"}, (32, 32, 3), [(64, 128), (128, 256), (256, 512)]),
    ],
)
def test_plain_twin_differs_only_by_the_projection_shortcuts(kwargs, input_shape, projections):
    resnet = build_resnet(input_shape, 10, **kwargs)
    plain = build_plain_net(input_shape, 10, **kwargs)
    bias = "arch" in kwargs
    expected = sum(_projection_params(cin, cout, bias) for cin, cout in projections)
    assert resnet.count_params() - plain.count_params() == expected
    # Every other weight is shared, path for path and shape for shape.
    shapes = {v.path: tuple(v.shape) for v in resnet.weights}
    plain_shapes = {v.path: tuple(v.shape) for v in plain.weights}
    assert {p: s for p, s in shapes.items() if "/shortcut_" not in p} == plain_shapes
    # Where they sit: exactly the blocks whose stride or width changes.
    blocks = [layer for layer in resnet.layers if "_block" in layer.name]
    with_projection = [b.name for b in blocks if b.has_projection]
    changes = [b.name for b in blocks if b.strides != 1 or b.in_channels != b.out_channels]
    assert with_projection == changes
    assert len(with_projection) == len(projections)
    assert all(layer.shortcut is False for layer in plain.layers if "_block" in layer.name)
    # Parameter-free shortcuts: ResNet and plain net have the same count.
    if "arch" not in kwargs:
        zero_pad = build_resnet(input_shape, 10, shortcut="zero_pad", **kwargs)
        assert zero_pad.count_params() == plain.count_params()


def test_plain_net_is_the_resnet_without_the_additions():
    """Same weights, identity shortcuts subtracted by hand: ResNet block - input = plain block."""
    keras.utils.set_random_seed(3)
    resnet = build_resnet((8, 8, 2), 3, depth=8, width=4, shortcut="zero_pad")
    plain = build_plain_net((8, 8, 2), 3, depth=8, width=4)
    plain.set_weights(resnet.get_weights())
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 2)).astype("float32")
    stem = keras.Model(resnet.input, resnet.get_layer("stem").output)(x)
    r_block, p_block = resnet.get_layer("stage1_block1"), plain.get_layer("stage1_block1")
    f = np.asarray(p_block.residual(stem, training=False))
    np.testing.assert_allclose(np.asarray(r_block(stem)), np.maximum(f + np.asarray(stem), 0),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(p_block(stem)), np.maximum(f, 0), rtol=1e-5, atol=1e-5)


def test_zero_init_residual_makes_identity_blocks():
    model = build_resnet((16, 16, 3), 4, depth=14, width=4, zero_init_residual=True)
    for layer in model.layers:
        if "_block" in layer.name:
            np.testing.assert_array_equal(np.asarray(layer.bn2.gamma), 0.0)
    x = np.random.default_rng(4).normal(size=(2, 16, 16, 3)).astype("float32")
    stem = keras.Model(model.input, model.get_layer("stem").output)
    after = keras.Model(model.input, model.get_layer("stage1_block2").output)
    # Stage 1 keeps the shape: both of its blocks are the identity, in training mode too.
    for training in (False, True):
        np.testing.assert_allclose(np.asarray(after(x, training=training)),
                                   np.asarray(stem(x, training=training)), atol=1e-6)
    # Stage 2's first block changes the shape: relu(projection(x)), not the identity.
    assert model.get_layer("stage2_block1").has_projection


@pytest.mark.parametrize("builder", [build_resnet, build_plain_net])
def test_training_reduces_the_loss_and_the_model_reloads(builder, tmp_path):
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, size=32)
    x = rng.normal(scale=0.3, size=(32, 8, 8, 1)).astype("float32")
    x[labels == 1, :, 3:5, 0] += 1.0
    x[labels == 0, 3:5, :, 0] += 1.0
    model = builder((8, 8, 1), 2, depth=8, width=4)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # The plain twin's blocks are the ResNet's (traced in graph mode just before): eager is
    # enough for it and saves a trace.
    model.compile(keras.optimizers.Adam(1e-2), loss, run_eagerly=builder is build_plain_net)
    # Losses in train mode (batch statistics): the moving averages lag after so few steps.
    before = float(loss(labels, model(x, training=True)))
    model.fit(x, labels, batch_size=16, epochs=6, verbose=0)
    assert float(loss(labels, model(x, training=True))) < 0.5 * before
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    assert restored.name == model.name
    np.testing.assert_allclose(np.asarray(restored(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-5)


def test_bad_input_names_the_value():
    with pytest.raises(ConfigError, match=r"model.depth=21 is not a CIFAR-style ResNet depth: "
                                          r"with basic blocks the depth is 6n \+ 2 \(20, 32, 44, "
                                          r"56, 110, \.\.\.\).*resnet18, resnet34, resnet50"):
        build_resnet((32, 32, 3), 10, depth=21)
    with pytest.raises(ConfigError, match=r"model.depth=32 .* bottleneck blocks the depth is 9n \+ 2"):
        build_plain_net((32, 32, 3), 10, depth=32, block="bottleneck")
    with pytest.raises(ConfigError, match="model.arch='resnet19' is not an ImageNet-style ResNet"):
        build_resnet((32, 32, 3), 10, arch="resnet19")
    with pytest.raises(ConfigError, match="model.block='basic' contradicts model.arch='resnet50'"):
        build_resnet((32, 32, 3), 10, arch="resnet50", block="basic")
    with pytest.raises(ConfigError, match="model.shortcut must be one of .* got 'identity'"):
        build_resnet((32, 32, 3), 10, shortcut="identity")
    with pytest.raises(ConfigError, match="model.zero_init_residual=True .* plain net"):
        build_plain_net((32, 32, 3), 10, zero_init_residual=True)
    with pytest.raises(ConfigError, match="model.width must be a positive integer, got 0"):
        build_resnet((32, 32, 3), 10, width=0)
    with pytest.raises(ConfigError, match=r"input_shape .* got \[32, 32\]"):
        build_resnet([32, 32], 10)
    model = build_resnet((None, None, 3), 2, depth=8, width=2)
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        model(np.zeros((1, 8, 8, 1), "float32"))  # a grayscale batch for an RGB model


def test_mixed_precision_keeps_float32_logits_and_numpy_sizes_pass():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_resnet((np.int64(8), 8, 1), np.int64(3), depth=8, width=2)
    finally:
        keras.config.set_dtype_policy(policy)
    assert model.get_layer("stage2_block1").compute_dtype == "float16"
    assert model.get_layer("stage2_block1").shortcut_conv.compute_dtype == "float16"
    assert model.output.dtype == "float32"  # the loss and softmax stay in float32
    assert model.input.shape == (None, 8, 8, 1) and model.output.shape == (None, 3)
    y = model(np.ones((2, 8, 8, 1), "float32"), training=True)
    assert y.dtype == "float32" and np.isfinite(np.asarray(y)).all()
