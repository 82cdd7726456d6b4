"""build_cnn against a NumPy forward pass and a plain-Keras build with copied weights;
stage shapes, training, saving, bad input."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.models.cnn import build_cnn
from tests.layers.test_conv import xcorr2d


def _pool(x, size, kind):
    b, h, w, c = x.shape
    oh, ow = h // size, w // size
    windows = x[:, :oh * size, :ow * size].reshape(b, oh, size, ow, size, c)
    return windows.max(axis=(2, 4)) if kind == "max" else windows.mean(axis=(2, 4))


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_forward_equals_numpy(pooling):
    keras.utils.set_random_seed(0)
    model = build_cnn((9, 8, 2), 3, filters=[3, 4], kernel_size=[3, 2], padding="valid",
                      pooling=pooling, dense_units=[5], activation="tanh")
    rng = np.random.default_rng(0)
    for var in model.weights:
        var.assign(0.5 * rng.normal(size=var.shape))
    x = rng.normal(size=(2, 9, 8, 2)).astype("float32")

    def conv(name, a):
        layer = model.get_layer(name).conv
        return np.tanh(xcorr2d(a, layer.kernel, layer.bias))

    def dense(name, a):
        layer = model.get_layer(name)
        return a @ np.asarray(layer.kernel, np.float64) + np.asarray(layer.bias, np.float64)

    a = _pool(conv("conv_0", x), 2, pooling)   # 9x8 -> 7x6 -> 3x3
    a = _pool(conv("conv_1", a), 2, pooling)   # 3x3 -> 2x2 -> 1x1
    want = dense("logits", np.tanh(dense("dense_0", a.reshape(2, -1))))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


def test_equals_plain_keras_layers_with_copied_weights():
    """Batch norm, strides, two convs per stage, global pooling and dropout against the same
    network written with keras.layers, as a Keras user would."""
    keras.utils.set_random_seed(1)
    kwargs = dict(filters=[4, 6], kernel_size=3, strides=[2, 1], convs_per_stage=2,
                  pooling="avg", dense_units=[8], dropout=0.3, batch_norm=True,
                  activation="relu", global_pool=True)
    model = build_cnn((16, 12, 3), 5, **kwargs)
    L = keras.layers
    inputs = keras.Input((16, 12, 3))
    x = inputs
    for filters, stride in ((4, 2), (6, 1)):
        for j in range(2):
            x = L.Conv2D(filters, 3, strides=stride if j == 0 else 1, padding="same",
                         use_bias=False)(x)
            x = L.BatchNormalization()(x)
            x = L.ReLU()(x)
        x = L.AveragePooling2D(2)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(8, activation="relu")(L.Dropout(0.3)(x))
    reference = keras.Model(inputs, L.Dense(5)(L.Dropout(0.3)(x)))
    assert reference.count_params() == model.count_params()
    rng = np.random.default_rng(1)
    values = [rng.uniform(0.5, 1.5, w.shape) if "variance" in w.path else rng.normal(size=w.shape)
              for w in model.weights]
    model.set_weights(values)
    reference.set_weights(values)
    x = rng.normal(size=(3, 16, 12, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), reference.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_layer_names_and_stage_shapes():
    model = build_cnn((28, 28, 1), 10, filters=[8, 16, 32], convs_per_stage=2, pooling="max",
                      dense_units=[])
    names = [layer.name for layer in model.layers]
    assert names == ["images", "conv_0_0", "conv_0_1", "pool_0", "conv_1_0", "conv_1_1",
                     "pool_1", "conv_2_0", "conv_2_1", "pool_2", "flatten", "logits"]
    # 28 -> 14 -> 7 -> 3 (floor), channels 8, 16, 32.
    assert [model.get_layer(f"pool_{s}").output.shape[1:] for s in range(3)] == [
        (14, 14, 8), (7, 7, 16), (3, 3, 32)]
    no_pool = build_cnn((28, 28, 1), 10, filters=[8], strides=2, pooling=None, dense_units=[])
    assert no_pool.get_layer("conv_0").output.shape[1:] == (14, 14, 8)


def test_training_reduces_the_loss_and_the_model_reloads(tmp_path):
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, size=64)
    x = rng.normal(scale=0.3, size=(64, 8, 8, 1)).astype("float32")
    x[labels == 1, :, 3:5, 0] += 1.0  # class 1: a vertical bar
    x[labels == 0, 3:5, :, 0] += 1.0  # class 0: a horizontal bar
    model = build_cnn((8, 8, 1), 2, filters=[4], dense_units=[8], batch_norm=True, dropout=0.1)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(1e-2), loss)
    before = float(loss(labels, model(x)))
    model.fit(x, labels, batch_size=32, epochs=8, verbose=0)
    assert float(loss(labels, model(x))) < 0.5 * before
    model.save(tmp_path / "cnn.keras")
    restored = keras.saving.load_model(tmp_path / "cnn.keras")
    np.testing.assert_allclose(np.asarray(restored(x)), np.asarray(model(x)), rtol=1e-6, atol=1e-6)


def test_bad_input_names_the_value():
    with pytest.raises(ConfigError, match="28x28 input shrinks to nothing at pool_4"):
        build_cnn((28, 28, 1), 10, filters=[4] * 5)  # 28, 14, 7, 3, 1, 0
    with pytest.raises(ConfigError, match="shrinks to nothing at conv_1"):
        build_cnn((8, 8, 1), 10, filters=[4, 4], kernel_size=5, padding="valid", pooling=None)
    with pytest.raises(ConfigError, match=r"model.kernel_size must be one integer or one per stage "
                                          r"\(2\), got \[3, 3, 3\]"):
        build_cnn((28, 28, 1), 10, filters=[4, 8], kernel_size=[3, 3, 3])
    with pytest.raises(ConfigError, match="model.pooling must be one of .* got 'median'"):
        build_cnn((28, 28, 1), 10, pooling="median")
    with pytest.raises(ConfigError, match="model.padding must be one of .* got 'full'"):
        build_cnn((28, 28, 1), 10, padding="full")
    with pytest.raises(ConfigError, match="model.filters must be a positive integer, got -8"):
        build_cnn((28, 28, 1), 10, filters=[4, -8])
    with pytest.raises(ConfigError, match=r"input_shape .* got \(28, 28, 0\)"):
        build_cnn((28, 28, 0), 10)
    model = build_cnn((8, 8, 3), 2, filters=[4], dense_units=[])
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        model(np.zeros((1, 8, 8, 1), "float32"))  # a grayscale batch for an RGB model
