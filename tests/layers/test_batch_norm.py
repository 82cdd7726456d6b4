"""seqlab.layers.BatchNorm: Keras' BatchNormalization with TensorFlow's fused kernel.

References: the equations in NumPy (forward, the closed-form backward, the
moving averages) and ``keras.layers.BatchNormalization`` with the same
weights, step for step; the fused op must be in the traced training graph
exactly where the docstring says it is.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlab.layers import BasicResidualBlock, BatchNorm, ConvBlock
from seqlab.models import build_mlp, build_unet

RNG = np.random.default_rng(0)


def numpy_batch_norm(x, gamma, beta, eps, g):
    """Forward, backward (``g = dL/dy``) and batch statistics of training-mode BN."""
    axes = tuple(range(x.ndim - 1))
    n = x.size // x.shape[-1]
    mean, var = x.mean(axes), x.var(axes)  # biased, as the equations
    inv = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mean) * inv
    y = x_hat * gamma + beta
    # dx = gamma inv / n (n g - sum g - x_hat sum(g x_hat)), the closed form
    dx = gamma * inv / n * (n * g - g.sum(axes) - x_hat * (g * x_hat).sum(axes))
    return y, dx, (g * x_hat).sum(axes), g.sum(axes), mean, var


def _pair(momentum=0.9, epsilon=1e-3, **kwargs):
    return (BatchNorm(momentum=momentum, epsilon=epsilon, **kwargs),
            keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, **kwargs))


def _step(layer, x, g):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, "float32") * g)
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    return y.numpy(), [v.numpy() for v in grads]


@pytest.mark.parametrize("shape", [(16, 5), (4, 7, 5), (4, 6, 6, 5), (2, 3, 4, 4, 5)])
@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False)])
def test_three_training_steps_equal_the_equations_and_keras_layer(shape, center, scale):
    ours, ref = _pair(center=center, scale=scale)
    for layer in (ours, ref):
        layer.build(shape)
    if scale:
        gamma = RNG.normal(1.0, 0.5, shape[-1]).astype("float32")
        ours.gamma.assign(gamma), ref.gamma.assign(gamma)
    if center:
        beta = RNG.normal(0.0, 0.5, shape[-1]).astype("float32")
        ours.beta.assign(beta), ref.beta.assign(beta)
    moving_mean, moving_var = np.zeros(shape[-1]), np.ones(shape[-1])
    for _ in range(3):
        x = RNG.normal(2.0, 3.0, shape).astype("float32")
        g = RNG.normal(size=shape).astype("float32")
        y, grads = _step(ours, x, g)
        y_ref, grads_ref = _step(ref, x, g)
        y_np, dx_np, dgamma_np, dbeta_np, mean, var = numpy_batch_norm(
            x.astype("float64"), ours.gamma.numpy() if scale else 1.0,
            ours.beta.numpy() if center else 0.0, 1e-3, g.astype("float64"))
        moving_mean = 0.9 * moving_mean + 0.1 * mean
        moving_var = 0.9 * moving_var + 0.1 * var
        np.testing.assert_allclose(y, y_np, atol=2e-5)
        np.testing.assert_allclose(y, y_ref, atol=2e-5)
        np.testing.assert_allclose(grads[0], dx_np, atol=2e-5)
        np.testing.assert_allclose(grads[0], grads_ref[0], atol=2e-5)
        expected = ([dgamma_np] if scale else []) + ([dbeta_np] if center else [])
        for got, want, keras_grad in zip(grads[1:], expected, grads_ref[1:]):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
            np.testing.assert_allclose(got, keras_grad, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(ours.moving_mean.numpy(), moving_mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ours.moving_variance.numpy(), moving_var, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ours.moving_variance.numpy(), ref.moving_variance.numpy(), rtol=1e-6)
    x = RNG.normal(2.0, 3.0, shape).astype("float32")  # inference: the moving statistics
    np.testing.assert_allclose(ours(x, training=False), ref(x, training=False), atol=1e-5)


def _op_types(layer, shape, dtype="float32", jit_compile=False, **call_kwargs):
    layer.build(shape)
    fn = tf.function(lambda x: layer(x, **call_kwargs), jit_compile=jit_compile)
    graph = fn.get_concrete_function(tf.TensorSpec(shape, dtype)).graph
    return {op.type for op in graph.get_operations()}


def test_the_fused_kernel_is_traced_in_training_and_nowhere_the_docstring_excludes():
    shape = (8, 4, 4, 3)
    assert "FusedBatchNormV3" in _op_types(BatchNorm(), shape, training=True)
    assert "FusedBatchNormV3" in _op_types(BatchNorm(), (8, 3), training=True)
    assert "FusedBatchNormV3" not in _op_types(keras.layers.BatchNormalization(), shape, training=True)
    excluded = {
        "inference": _op_types(BatchNorm(), shape, training=False),
        "frozen": _op_types(BatchNorm(trainable=False), shape, training=True),
        "float64": _op_types(BatchNorm(dtype="float64"), shape, "float64", training=True),
        "renorm": _op_types(BatchNorm(renorm=True), shape, training=True),
        "channels first": _op_types(BatchNorm(axis=1), shape, training=True),
        "tiny epsilon": _op_types(BatchNorm(epsilon=1e-6), shape, training=True),
        "XLA": _op_types(BatchNorm(), shape, jit_compile=True, training=True),
    }
    for case, ops in excluded.items():
        assert "FusedBatchNormV3" not in ops, case


def test_the_fallbacks_are_keras_own_numbers():
    x = RNG.normal(1.0, 2.0, (6, 4, 4, 3)).astype("float32")
    for kwargs in ({"axis": 1}, {"epsilon": 1e-6}, {"renorm": True}):
        ours, ref = _pair(**kwargs)
        np.testing.assert_allclose(ours(x, training=True), ref(x, training=True), atol=1e-5, err_msg=str(kwargs))
        np.testing.assert_allclose(ours.moving_variance, ref.moving_variance, atol=1e-6, err_msg=str(kwargs))


def test_a_batch_of_one_gives_zero_variance_not_nan():
    ours, ref = _pair()
    x = RNG.normal(size=(1, 4)).astype("float32")
    np.testing.assert_allclose(ours(x, training=True), ref(x, training=True), atol=1e-6)
    assert np.isfinite(ours.moving_variance.numpy()).all()
    np.testing.assert_allclose(ours.moving_variance, ref.moving_variance, atol=1e-7)


def test_mixed_bfloat16_keeps_float32_statistics_and_bfloat16_outputs():
    ours, ref = (BatchNorm(dtype="mixed_bfloat16"),
                 keras.layers.BatchNormalization(dtype="mixed_bfloat16"))
    x = tf.cast(RNG.normal(1.0, 2.0, (8, 4, 4, 3)), "bfloat16")
    y, y_ref = ours(x, training=True), ref(x, training=True)
    assert y.dtype == tf.bfloat16 and ours.moving_mean.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y, "float32"), tf.cast(y_ref, "float32"), atol=2e-2)
    np.testing.assert_allclose(ours.moving_mean, ref.moving_mean, atol=1e-6)


def test_a_model_fits_saves_and_reloads_with_equal_outputs(tmp_path):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = BatchNorm(momentum=0.8)(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x)))
    model.compile("adam", "mse")
    xs, ys = RNG.normal(size=(32, 6, 6, 2)).astype("float32"), RNG.normal(size=(32, 1)).astype("float32")
    model.fit(xs, ys, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "bn.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[2], BatchNorm) and loaded.layers[2].momentum == 0.8
    np.testing.assert_allclose(loaded.predict(xs, verbose=0), model.predict(xs, verbose=0), atol=1e-6)


def test_the_vision_blocks_and_builders_normalise_with_it():
    def batch_norms(model_or_layer):
        return [layer for layer in model_or_layer._flatten_layers()
                if isinstance(layer, keras.layers.BatchNormalization)]

    block = ConvBlock(4, batch_norm=True)
    block.build((None, 8, 8, 3))
    residual = BasicResidualBlock(8, strides=2)
    residual.build((None, 8, 8, 4))
    mlp = build_mlp((4, 4, 1), 3, hidden_units=(4,), batch_norm=True)
    unet = build_unet((16, 16, 1), 1, depth=1, base_filters=2)
    for owner in (block, residual, mlp, unet):
        norms = batch_norms(owner)
        assert norms and all(isinstance(n, BatchNorm) for n in norms), owner
