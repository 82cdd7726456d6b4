"""Residual blocks against NumPy: y = relu(F(x) + shortcut(x)), projection exactly when the
shape changes, the zero-initialised branch is the identity, finite differences, saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.layers.residual import BasicResidualBlock, BottleneckResidualBlock
from tests.layers.test_conv import batch_norm_inference, xcorr2d

EPS = 1.001e-5


def _randomize(block, rng):
    """Random conv kernels and BN parameters/statistics; returns ``{path-suffix: array}``."""
    values = {}
    for var in block.weights:
        key = var.path.split("/", 1)[1]  # e.g. "conv1/kernel", "bn1/moving_variance"
        shape = tuple(var.shape)
        if key.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = 0.4 * rng.normal(size=shape)
        var.assign(value.astype(var.dtype))
        values[key] = value
    return values


def _bn(z, v, name):
    return batch_norm_inference(
        z, v[f"{name}/gamma"], v[f"{name}/beta"], v[f"{name}/moving_mean"],
        v[f"{name}/moving_variance"], EPS,
    )


def _numpy_block(x, v, kind, stride, shortcut, out_channels):
    relu = lambda a: np.maximum(a, 0.0)  # noqa: E731
    if kind == "basic":
        h = relu(_bn(xcorr2d(x, v["conv1/kernel"], stride=stride, padding="same"), v, "bn1"))
        f = _bn(xcorr2d(h, v["conv2/kernel"], padding="same"), v, "bn2")
    else:
        h = relu(_bn(xcorr2d(x, v["conv1/kernel"], stride=stride, padding="same"), v, "bn1"))
        h = relu(_bn(xcorr2d(h, v["conv2/kernel"], padding="same"), v, "bn2"))
        f = _bn(xcorr2d(h, v["conv3/kernel"], padding="same"), v, "bn3")
    changes = stride != 1 or x.shape[-1] != out_channels
    if shortcut is False:
        return relu(f)
    if shortcut == "projection" and changes:
        s = _bn(xcorr2d(x, v["shortcut_conv/kernel"], stride=stride, padding="same"), v,
                "shortcut_bn")
    elif shortcut == "zero_pad" and changes:
        s = x[:, ::stride, ::stride, :]
        s = np.concatenate([s, np.zeros((*s.shape[:3], out_channels - x.shape[-1]))], axis=-1)
    else:
        s = x
    return relu(f + s)


CASES = [  # kind, in_channels, filters, stride, shortcut
    ("basic", 4, 4, 1, "projection"),
    ("basic", 4, 6, 2, "projection"),
    ("basic", 3, 6, 1, "projection"),
    ("basic", 4, 6, 2, "zero_pad"),
    ("basic", 4, 6, 2, False),
    ("bottleneck", 8, 2, 1, "projection"),
    ("bottleneck", 4, 2, 2, "projection"),
    ("bottleneck", 4, 2, 2, "zero_pad"),
    ("bottleneck", 8, 2, 1, False),
]


def _make(kind, filters, stride, shortcut, **kwargs):
    cls = BasicResidualBlock if kind == "basic" else BottleneckResidualBlock
    return cls(filters, strides=stride, shortcut=shortcut, **kwargs)


@pytest.mark.parametrize(("kind", "cin", "filters", "stride", "shortcut"), CASES)
def test_block_equals_numpy_equations(kind, cin, filters, stride, shortcut):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 5, cin)).astype("float32")
    block = _make(kind, filters, stride, shortcut)
    block.build(x.shape)
    values = _randomize(block, rng)
    want = _numpy_block(x, values, kind, stride, shortcut, block.out_channels)
    got = np.asarray(block(x, training=False))
    assert got.shape == want.shape == (2, *block.compute_output_shape(x.shape)[1:])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("kind", "cin", "filters", "stride", "shortcut"), CASES)
def test_projection_exactly_when_stride_or_width_changes(kind, cin, filters, stride, shortcut):
    block = _make(kind, filters, stride, shortcut)
    block.build((None, 6, 6, cin))
    expansion = 1 if kind == "basic" else 4
    cout = expansion * filters
    changes = stride != 1 or cin != cout
    assert block.has_projection == (shortcut == "projection" and changes)
    # Parameters, counted from the equations (conv kernels, 4 BN values per channel).
    if kind == "basic":
        branch = 9 * cin * filters + 9 * filters * filters + 2 * 4 * filters
    else:
        branch = cin * filters + 9 * filters * filters + filters * cout + 4 * (2 * filters + cout)
    projection = cin * cout + 4 * cout if block.has_projection else 0
    assert block.count_params() == branch + projection
    has_shortcut_weights = any("shortcut" in v.path for v in block.weights)
    assert has_shortcut_weights == block.has_projection


@pytest.mark.parametrize("kind", ["basic", "bottleneck"])
@pytest.mark.parametrize("training", [False, True])
def test_zero_initialised_branch_is_the_identity(kind, training):
    """gamma = 0 in the last norm: F(x) = 0, y = relu(x) = x for the non-negative
    inputs a ResNet feeds its blocks (they come out of a ReLU)."""
    filters = 5 if kind == "basic" else 2
    cout = filters if kind == "basic" else 4 * filters
    x = np.abs(np.random.default_rng(1).normal(size=(3, 6, 6, cout))).astype("float32")
    block = _make(kind, filters, 1, "projection", zero_init_residual=True)
    y = np.asarray(block(x, training=training))
    assert not block.has_projection
    np.testing.assert_array_equal(y, x)
    last = block.bn2 if kind == "basic" else block.bn3
    np.testing.assert_array_equal(np.asarray(last.gamma), 0.0)
    # Without zero init the same block is not the identity (the test can fail).
    other = _make(kind, filters, 1, "projection")
    assert not np.allclose(np.asarray(other(x, training=training)), x)


def test_zero_pad_shortcut_of_a_zeroed_branch_is_subsample_and_pad():
    x = np.abs(np.random.default_rng(2).normal(size=(2, 8, 8, 3))).astype("float32")
    block = BasicResidualBlock(5, strides=2, shortcut="zero_pad", zero_init_residual=True)
    y = np.asarray(block(x))
    want = np.concatenate([x[:, ::2, ::2, :], np.zeros((2, 4, 4, 2), "float32")], axis=-1)
    np.testing.assert_array_equal(y, want)
    with pytest.raises(ValueError, match="cannot reduce 3 channels to 2"):
        BasicResidualBlock(2, shortcut="zero_pad")(x)


def test_input_gradient_equals_finite_differences():
    keras.utils.set_random_seed(3)
    block = BasicResidualBlock(3, strides=2, dtype="float64")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 5, 5, 2))
    block.build(x.shape)
    _randomize(block, rng)
    r = rng.normal(size=(1, *block.compute_output_shape(x.shape)[1:]))

    def objective(a):
        return float(np.sum(np.asarray(block(a, training=False)) * r))

    import tensorflow as tf

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        value = tf.reduce_sum(block(xt, training=False) * r)
    grad = tape.gradient(value, xt).numpy()
    h = 1e-6
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        numeric[idx] = (objective(x + e) - objective(x - e)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_blocks_save_and_reload(tmp_path):
    inputs = keras.Input((8, 8, 4))
    x = BasicResidualBlock(6, strides=2, zero_init_residual=True, name="basic")(inputs)
    x = BottleneckResidualBlock(2, shortcut="zero_pad", name="bottleneck")(x)
    outputs = BasicResidualBlock(8, shortcut=False, name="plain")(x)
    model = keras.Model(inputs, outputs)
    xs = np.random.default_rng(4).normal(size=(2, 8, 8, 4)).astype("float32")
    model(xs, training=True)  # moves the BN statistics
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(restored.predict(xs, verbose=0), model.predict(xs, verbose=0),
                               rtol=1e-6, atol=1e-6)
    for name in ("basic", "bottleneck", "plain"):
        assert restored.get_layer(name).get_config() == model.get_layer(name).get_config()
    assert restored.get_layer("basic").has_projection


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="shortcut must be one of .* got 'identity'"):
        BasicResidualBlock(4, shortcut="identity")
    with pytest.raises(ValueError, match="strides=0"):
        BottleneckResidualBlock(4, strides=0)
    block = BasicResidualBlock(4)
    block.build((None, 8, 8, 4))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4"):
        block(np.zeros((1, 8, 8, 3), "float32"))
