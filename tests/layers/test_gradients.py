"""Gradients of every cell (through Recurrent, generic path) vs central finite differences, float64."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import tensorflow as tf  # the gradient tape is the point here

from tests.layers.helpers import CELL_NAMES, make_layer, random_mask


@pytest.mark.parametrize("name", CELL_NAMES)
def test_gradients_match_finite_differences(name):
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # stable across runs
    B, T, D, H = 2, 4, 2, 3
    x = rng.standard_normal((B, T, D))
    mask = random_mask(rng, B, T)
    mask[1, 2] = False  # a hole: the carried state must pass the gradient through
    layer, _ = make_layer(
        name, H, x, rng, dtype="float64", return_sequences=True, return_state=True
    )
    probe = rng.standard_normal((B, T, H))
    probes = [rng.standard_normal((B, H)) for _ in layer.state_size]
    xt = tf.constant(x)
    mask_t = tf.constant(mask)

    @tf.function  # reads the variables at run time; traced once
    def loss_fn(inputs):
        out, *states = layer(inputs, mask=mask_t)
        total = tf.reduce_sum(out * probe)
        for s, p in zip(states, probes):
            total += tf.reduce_sum(tf.tanh(s) * p)
        return total

    variables = list(layer.cell.trainable_variables)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = loss_fn(xt)
    grads = tape.gradient(loss, variables + [xt])
    assert all(g is not None for g in grads)

    eps = 1e-6
    for var, grad in zip(variables, grads[:-1]):
        base = np.array(var.numpy())
        numeric = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            for sign in (1, -1):
                pert = base.copy()
                pert[idx] += sign * eps
                var.assign(pert)
                numeric[idx] += sign * float(loss_fn(xt)) / (2 * eps)
        var.assign(base)
        np.testing.assert_allclose(np.asarray(grad), numeric, atol=1e-6, rtol=1e-5,
                                   err_msg=f"d loss / d {var.name}")

    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        for sign in (1, -1):
            pert = x.copy()
            pert[idx] += sign * eps
            numeric[idx] += sign * float(loss_fn(tf.constant(pert))) / (2 * eps)
    np.testing.assert_allclose(np.asarray(grads[-1]), numeric, atol=1e-6, rtol=1e-5,
                               err_msg="d loss / d inputs")
