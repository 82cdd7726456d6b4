"""build_mlp: forward and backward pass equal the chain-rule equations in NumPy (float64);
batch norm, dropout, training, saving, bad input."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlab.errors import ConfigError
from seqlab.models.mlp import build_mlp

ACTIVATIONS = {  # f, f'
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(z.dtype)),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
}


@pytest.fixture
def float64():
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_floatx(floatx)
    keras.config.set_dtype_policy(policy)


def _numpy_forward_backward(x, y_onehot, weights, f, df):
    """The chain rule by hand for E = mean_b CE(softmax(z_{L+1}), y).

    z_l = a_{l-1} W_l + b_l, a_l = f(z_l) (a_0 = flattened x, no f on the logits);
    delta_{L+1} = (softmax(z_{L+1}) - y) / B; dE/dW_l = a_{l-1}^T delta_l;
    dE/db_l = sum_b delta_l; delta_{l-1} = (delta_l W_l^T) * f'(z_{l-1}).
    """
    a = [x.reshape(len(x), -1)]
    zs = []
    for i, (w, b) in enumerate(weights):
        z = a[-1] @ w + b
        zs.append(z)
        a.append(z if i == len(weights) - 1 else f(z))
    logits = a[-1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    loss = -np.mean(np.sum(y_onehot * np.log(p), axis=1))
    delta = (p - y_onehot) / len(x)
    grads = [None] * len(weights)
    for i in reversed(range(len(weights))):
        w, _ = weights[i]
        grads[i] = (a[i].T @ delta, delta.sum(axis=0))
        back = delta @ w.T
        delta = back * df(zs[i - 1]) if i > 0 else back
    return logits, loss, grads, delta.reshape(x.shape)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_forward_and_backward_equal_the_chain_rule(float64, activation):
    keras.utils.set_random_seed(0)
    model = build_mlp((3, 4, 2), 5, hidden_units=[7, 6], activation=activation)
    assert model.weights[0].dtype == "float64"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3, 4, 2))
    labels = rng.integers(0, 5, size=8)
    y = np.eye(5)[labels]
    dense = [model.get_layer(n) for n in ("dense_0", "dense_1", "logits")]
    for layer in dense:  # non-zero biases, so db is tested too
        layer.bias.assign(rng.normal(size=layer.bias.shape))
    weights = [(np.asarray(d.kernel), np.asarray(d.bias)) for d in dense]

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        logits = model(xt)
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)(y, logits)
    variables = [v for d in dense for v in (d.kernel, d.bias)]
    *grads, dx = tape.gradient(loss, [*variables, xt])

    f, df = ACTIVATIONS[activation]
    want_logits, want_loss, want_grads, want_dx = _numpy_forward_backward(x, y, weights, f, df)
    np.testing.assert_allclose(np.asarray(logits), want_logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(float(loss), want_loss, rtol=1e-6, atol=1e-6)
    flat_want = [g for pair in want_grads for g in pair]
    for got, want, var in zip(grads, flat_want, variables, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6, err_msg=var.path)
    np.testing.assert_allclose(np.asarray(dx), want_dx, rtol=1e-6, atol=1e-6)


def test_batch_norm_and_dropout_layers():
    model = build_mlp((4, 4, 1), 3, hidden_units=[5], batch_norm=True, dropout=0.5)
    assert [layer.name for layer in model.layers] == [
        "images", "flatten", "dense_0", "bn_0", "act_0", "dropout_0", "logits",
    ]
    assert not model.get_layer("dense_0").use_bias
    x = np.random.default_rng(1).normal(size=(6, 4, 4, 1)).astype("float32")
    # Inference: dropout off, BN on its moving statistics (mean 0, variance 1 at the start).
    h = x.reshape(6, -1) @ np.asarray(model.get_layer("dense_0").kernel)
    h = np.maximum(h / np.sqrt(1 + 1e-3), 0.0)
    logits = model.get_layer("logits")
    want = h @ np.asarray(logits.kernel) + np.asarray(logits.bias)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


def test_training_reduces_the_loss_and_the_model_reloads(tmp_path):
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 6, 6, 1)).astype("float32")
    y = (x[:, :3].mean(axis=(1, 2, 3)) > 0).astype("int32") + 2 * (x[:, :, :3].mean(axis=(1, 2, 3)) > 0)
    model = build_mlp((6, 6, 1), 4, hidden_units=[16], batch_norm=True, dropout=0.1)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(1e-2), loss)
    before = float(loss(y, model(x)))
    model.fit(x, y, batch_size=32, epochs=10, verbose=0)
    assert float(loss(y, model(x))) < 0.7 * before
    model.save(tmp_path / "mlp.keras")
    restored = keras.saving.load_model(tmp_path / "mlp.keras")
    np.testing.assert_allclose(np.asarray(restored(x)), np.asarray(model(x)), rtol=1e-6, atol=1e-6)


def test_bad_input_names_the_value():
    with pytest.raises(ConfigError, match=r"input_shape must be \(height, width, channels\).*\(28, 28\)"):
        build_mlp((28, 28), 10)
    with pytest.raises(ConfigError, match="model.hidden_units must be a positive integer, got 0"):
        build_mlp((28, 28, 1), 10, hidden_units=[32, 0])
    with pytest.raises(ConfigError, match="model.num_classes must be a positive integer, got 0"):
        build_mlp((28, 28, 1), 0)
    with pytest.raises(ConfigError, match="model.dropout must be in \\[0, 1\\), got 1.0"):
        build_mlp((28, 28, 1), 10, dropout=1.0)
    with pytest.raises(ConfigError, match="unknown Keras activation 'relu6x'"):
        build_mlp((28, 28, 1), 10, activation="relu6x")
    model = build_mlp((4, 4, 3), 2, hidden_units=[3])
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 48"):
        model(np.zeros((1, 4, 4, 1), "float32"))  # a grayscale batch for an RGB model
