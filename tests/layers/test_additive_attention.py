"""Additive (Bahdanau) attention against a NumPy implementation of its equations;
padded source positions at exactly zero weight; the attention decoder's loop
against its own step run by hand; serialization."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.layers import AttentionDecoder, BahdanauAttention


def _numpy_attention(query, value, mask, w_q, w_k, b, v):
    """e_ij = v^T tanh(W_q s_i + W_k h_j + b); alpha = softmax_j over real j (0 elsewhere); c = alpha H."""
    keys = value @ w_k + b  # [B, S, A]
    q = query @ w_q  # [B, T, A]
    scores = np.tanh(q[:, :, None, :] + keys[:, None, :, :]) @ v  # [B, T, S, 1]
    scores = scores[..., 0]
    alpha = np.zeros_like(scores)
    for b_, row_mask in enumerate(mask):
        real = scores[b_][:, row_mask]
        e = np.exp(real - real.max(-1, keepdims=True))
        alpha[b_][:, row_mask] = e / e.sum(-1, keepdims=True)
    return alpha @ value, alpha


def _setup(seed=0):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(3, 4, 6)).astype("float32")
    value = rng.normal(size=(3, 7, 5)).astype("float32")
    mask = np.ones((3, 7), bool)
    mask[1, 4:] = False
    mask[2, 1:] = False
    layer = BahdanauAttention(8)
    layer(query, value, value_mask=mask)
    # A non-zero bias, so that the test sees it.
    layer.key_bias.assign(rng.normal(size=8).astype("float32"))
    weights = [np.asarray(w) for w in (layer.query_kernel, layer.key_kernel, layer.key_bias, layer.score_vector)]
    return layer, query, value, mask, weights


def test_equals_numpy_equations_for_many_queries_and_one():
    layer, query, value, mask, weights = _setup()
    expected_context, expected_alpha = _numpy_attention(query, value, mask, *weights)
    context, alpha = layer(query, value, value_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(np.asarray(context), expected_context, atol=1e-5)
    np.testing.assert_allclose(np.asarray(alpha), expected_alpha, atol=1e-6)
    # One query per row (a decoder step), with the keys precomputed once.
    keys = layer.project_keys(value)
    for t in range(query.shape[1]):
        context_t, alpha_t = layer(query[:, t], value, value_mask=mask, keys=keys, return_attention_scores=True)
        np.testing.assert_allclose(np.asarray(context_t), expected_context[:, t], atol=1e-5)
        np.testing.assert_allclose(np.asarray(alpha_t), expected_alpha[:, t], atol=1e-6)


def test_padded_positions_get_exactly_zero_weight_and_change_nothing():
    layer, query, value, mask, _ = _setup(1)
    context, alpha = (np.asarray(a) for a in layer(query, value, value_mask=mask, return_attention_scores=True))
    assert np.all(alpha[~np.broadcast_to(mask[:, None, :], alpha.shape)] == 0.0)
    np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-6)
    # Anything under the padding (huge values included) leaves the output unchanged.
    noisy = value.copy()
    noisy[~mask] = 1e4
    np.testing.assert_allclose(np.asarray(layer(query, noisy, value_mask=mask)), context, atol=1e-5)
    # A row with no real position: zeros, not NaN.
    empty = np.zeros_like(mask)
    context, alpha = layer(query, value, value_mask=empty, return_attention_scores=True)
    assert np.all(np.asarray(alpha) == 0.0) and np.all(np.asarray(context) == 0.0)


def test_gradients_reach_every_weight_and_config_round_trips():
    layer, query, value, mask, _ = _setup(2)
    import tensorflow as tf

    with tf.GradientTape() as tape:
        out = layer(query, value, value_mask=mask)
        loss = tf.reduce_sum(out**2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == 4 and all(g is not None and np.all(np.isfinite(g)) and np.any(g != 0) for g in grads)
    clone = BahdanauAttention.from_config(layer.get_config())
    clone(query, value)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(query, value, value_mask=mask)), np.asarray(out), atol=1e-6)
    with pytest.raises(ValueError, match="units must be a positive integer, got 0"):
        BahdanauAttention(0)


@pytest.mark.parametrize(("cell", "layers"), [("lstm", 2), ("gru", 1)])
def test_decoder_loop_equals_its_step_by_hand(cell, layers):
    """The compiled loop over the target = the step called position by position, with the
    context of step i from the top layer's state at i - 1."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(2, 5, 4)).astype("float32")
    memory = rng.normal(size=(2, 6, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0], [1] * 6], bool)
    decoder = AttentionDecoder(cell, units=7, num_layers=layers, attention_units=5)
    initial = [rng.normal(size=(2, 7)).astype("float32") for _ in decoder.state_size]
    out, alpha = decoder(inputs, memory, initial_state=initial, memory_mask=mask, return_attention_scores=True)
    assert tuple(out.shape) == (2, 5, 10) and tuple(alpha.shape) == (2, 5, 6)
    keys = decoder.project_memory(memory)
    states = initial
    for t in range(inputs.shape[1]):
        o_t, a_t, states = decoder.step(decoder.input_projection(inputs[:, t]), states, memory, keys, mask)
        np.testing.assert_allclose(np.asarray(o_t), np.asarray(out)[:, t], atol=1e-5)
        np.testing.assert_allclose(np.asarray(a_t), np.asarray(alpha)[:, t], atol=1e-6)
    assert np.all(np.asarray(alpha)[0, :, 4:] == 0.0)
    clone = AttentionDecoder.from_config(decoder.get_config())
    assert (clone.state_size, clone.num_layers) == (decoder.state_size, layers)


def test_decoder_refuses_what_its_loop_cannot_do():
    with pytest.raises(ValueError, match="'keras_lstm' is a Keras built-in layer: use 'lstm'"):
        AttentionDecoder("keras_lstm", units=4)
    with pytest.raises(ValueError, match="recurrent_dropout=0.2 is not applied inside the attention loop"):
        AttentionDecoder({"name": "gru", "recurrent_dropout": 0.2}, units=4)
