"""seqlab.layers.attention against the equations (NumPy) and keras.layers.MultiHeadAttention.

References: a NumPy implementation of scaled dot-product attention
(``softmax(Q K^T / sqrt(d_k) + mask) V``) and Keras' own multi-head attention
with the same weights copied in (its Q/K/V kernels ``[d, H, d_head]`` are
the blocks of seqlab's fused ``[d, 3 d]`` kernel). Tolerance 1e-5.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlab.layers.attention import MultiHeadAttention, scaled_dot_product_attention

ATOL = 1e-5


def np_attention(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    scores = scores - scores.max(-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(-1, keepdims=True)
    return weights @ v, weights


def random(rng, *shape):
    return rng.normal(size=shape).astype("float32")


def paired(rng, d=8, heads=2, cross_dim=None, use_bias=True):
    """A seqlab MultiHeadAttention and a Keras one with the same random weights."""
    ref = keras.layers.MultiHeadAttention(heads, d // heads, use_bias=use_bias)
    mine = MultiHeadAttention(heads, use_bias=use_bias)
    x = random(rng, 1, 3, d)
    c = None if cross_dim is None else random(rng, 1, 4, cross_dim)
    ref(x, x if c is None else c)
    mine(x) if c is None else mine(x, c)
    for w in ref.weights:
        w.assign(0.4 * rng.normal(size=w.shape).astype("float32"))
    q, k, v, o = ref._query_dense, ref._key_dense, ref._value_dense, ref._output_dense

    def flat(layer, attr):
        return np.asarray(getattr(layer, attr)).reshape(
            np.asarray(getattr(layer, attr)).shape[0], -1
        )

    if c is None:
        mine.qkv_kernel.assign(
            np.concatenate([flat(q, "kernel"), flat(k, "kernel"), flat(v, "kernel")], 1)
        )
        if use_bias:
            mine.qkv_bias.assign(np.concatenate([np.ravel(lay.bias) for lay in (q, k, v)]))
    else:
        mine.q_kernel.assign(flat(q, "kernel"))
        mine.kv_kernel.assign(np.concatenate([flat(k, "kernel"), flat(v, "kernel")], 1))
        if use_bias:
            mine.q_bias.assign(np.ravel(q.bias))
            mine.kv_bias.assign(np.concatenate([np.ravel(k.bias), np.ravel(v.bias)]))
    mine.out_kernel.assign(np.asarray(o.kernel).reshape(-1, d))
    if use_bias:
        mine.out_bias.assign(np.asarray(o.bias))
    return mine, ref


# -- scaled dot-product attention --------------------------------------------------------


def test_scaled_dot_product_attention_equals_the_equations():
    rng = np.random.default_rng(0)
    q, k, v = random(rng, 2, 3, 5, 4), random(rng, 2, 3, 7, 4), random(rng, 2, 3, 7, 6)
    mask = rng.random((2, 1, 5, 7)) > 0.3
    mask[..., 0] = True
    for m in (None, mask):
        want_out, want_w = np_attention(q, k, v, m)
        out, w = scaled_dot_product_attention(q, k, v, mask=m, return_weights=True)
        np.testing.assert_allclose(out, want_out, atol=ATOL)
        np.testing.assert_allclose(w, want_w, atol=ATOL)
    assert np.all(np.asarray(w)[~np.broadcast_to(mask, w.shape)] == 0.0)  # masked keys: exactly 0


def test_attention_dropout_only_in_training():
    rng = np.random.default_rng(1)
    q, k, v = random(rng, 1, 4, 4), random(rng, 1, 6, 4), random(rng, 1, 6, 4)
    seed = keras.random.SeedGenerator(3)
    plain = scaled_dot_product_attention(q, k, v)
    same = scaled_dot_product_attention(
        q, k, v, dropout_rate=0.5, training=False, seed_generator=seed
    )
    dropped = scaled_dot_product_attention(
        q, k, v, dropout_rate=0.5, training=True, seed_generator=seed
    )
    np.testing.assert_allclose(same, plain, atol=ATOL)
    assert not np.allclose(dropped, plain, atol=1e-3)


# -- multi-head attention vs Keras --------------------------------------------------------


@pytest.mark.parametrize("case", ["plain", "causal", "padding", "no_bias"])
def test_self_attention_equals_keras_with_copied_weights(case):
    rng = np.random.default_rng(2)
    mine, ref = paired(rng, d=12, heads=3, use_bias=case != "no_bias")
    x = random(rng, 3, 6, 12)
    if case == "padding":
        valid = np.arange(6)[None, :] < np.array([[6], [4], [2]])
        got = np.asarray(mine(x, query_mask=valid))
        want = np.asarray(ref(x, x, value_mask=valid))
        # Padded queries are not masked by seqlab (nothing reads them): compare valid rows.
        np.testing.assert_allclose(got[valid], want[valid], atol=ATOL)
        return
    causal = case == "causal"
    np.testing.assert_allclose(
        mine(x, use_causal_mask=causal), ref(x, x, use_causal_mask=causal), atol=ATOL
    )


def test_cross_attention_equals_keras_with_copied_weights():
    rng = np.random.default_rng(3)
    mine, ref = paired(rng, d=8, heads=2, cross_dim=5)
    x, memory = random(rng, 2, 3, 8), random(rng, 2, 7, 5)
    valid = np.arange(7)[None, :] < np.array([[7], [3]])
    np.testing.assert_allclose(mine(x, memory), ref(x, memory), atol=ATOL)
    np.testing.assert_allclose(
        mine(x, memory, context_mask=valid), ref(x, memory, value_mask=valid), atol=ATOL
    )
    # Keys/values projected once and passed back in: the same output.
    kv = mine.project_context(memory)
    assert tuple(kv.shape) == (2, 2, 2, 7, 4)
    np.testing.assert_allclose(
        mine(x, context_kv=kv, context_mask=valid), mine(x, memory, context_mask=valid), atol=ATOL
    )


def test_gradients_equal_keras():
    rng = np.random.default_rng(4)
    mine, ref = paired(rng, d=8, heads=2)
    x = tf.constant(random(rng, 2, 5, 8))

    def grad(fn):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(fn(x)))
        return tape.gradient(loss, x)

    np.testing.assert_allclose(
        grad(lambda t: mine(t, use_causal_mask=True)),
        grad(lambda t: ref(t, t, use_causal_mask=True)),
        atol=ATOL,
    )


def test_multi_head_attention_equals_numpy_heads():
    """Per head: the NumPy equations on the head's slice of Q, K, V; then W_o."""
    rng = np.random.default_rng(5)
    layer = MultiHeadAttention(2, causal=True)
    x = random(rng, 1, 4, 6)
    out, weights = layer(x, return_weights=True)
    qkv = x @ np.asarray(layer.qkv_kernel) + np.asarray(layer.qkv_bias)
    q, k, v = np.split(qkv, 3, axis=-1)
    heads = lambda a: a.reshape(1, 4, 2, 3).transpose(0, 2, 1, 3)  # noqa: E731
    want, want_w = np_attention(heads(q), heads(k), heads(v), np.tril(np.ones((4, 4), bool)))
    want = want.transpose(0, 2, 1, 3).reshape(1, 4, 6) @ np.asarray(layer.out_kernel) + np.asarray(
        layer.out_bias
    )
    np.testing.assert_allclose(out, want, atol=ATOL)
    np.testing.assert_allclose(weights, want_w, atol=ATOL)


# -- masks -------------------------------------------------------------------------------


def test_padding_from_an_embedding_mask_propagates():
    """Embedding(mask_zero=True) -> attention: padded keys get zero weight, and
    what stands at padded positions does not change the valid outputs."""
    rng = np.random.default_rng(6)
    embedding = keras.layers.Embedding(20, 8, mask_zero=True)
    layer = MultiHeadAttention(2)
    tokens = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 1]])
    x = embedding(tokens)
    _, weights = layer(x, return_weights=True)
    assert np.all(np.asarray(weights)[0, :, :, 3:] == 0.0)
    assert np.all(np.asarray(weights)[1] > 0.0)
    # Padded queries do not affect the others: change the padded rows' inputs.
    out = np.asarray(layer(x))
    x2 = np.asarray(x).copy()
    x2[0, 3:] = random(rng, 2, 8)
    out2 = np.asarray(layer(x2, query_mask=tokens != 0))
    np.testing.assert_allclose(out2[0, :3], out[0, :3], atol=ATOL)


def test_explicit_attention_mask_combines_with_causal():
    rng = np.random.default_rng(7)
    layer = MultiHeadAttention(2, causal=True)
    x = random(rng, 2, 4, 8)
    block = np.ones((2, 4, 4), bool)
    block[:, :, 0] = False
    block[:, 0, 0] = True  # keep one key for the first query
    _, w = layer(x, attention_mask=block, return_weights=True)
    w = np.asarray(w)
    assert np.all(w[:, :, 1:, 0] == 0) and np.all(np.triu(np.ones((4, 4)), 1)[None, None] * w == 0)


# -- KV cache ----------------------------------------------------------------------------


@pytest.mark.parametrize("rotary", [False, True])
def test_cache_token_by_token_equals_the_full_causal_pass(rotary):
    rng = np.random.default_rng(8)
    layer = MultiHeadAttention(2, causal=True, rotary=rotary)
    x = random(rng, 2, 6, 8)
    full = np.asarray(layer(x))
    cache = layer.init_cache(2, max_length=8)
    assert tuple(cache.shape) == (2, 2, 2, 8, 4)
    outs = []
    for t in range(6):
        out, cache = layer(x[:, t : t + 1], cache=cache, cache_index=t)
        outs.append(np.asarray(out))
    np.testing.assert_allclose(np.concatenate(outs, 1), full, atol=ATOL)
    # A prefill of 4 positions, then 2 single steps: the same.
    cache = layer.init_cache(2, max_length=8)
    first, cache = layer(x[:, :4], cache=cache, cache_index=0)
    np.testing.assert_allclose(first, full[:, :4], atol=ATOL)
    for t in (4, 5):
        out, cache = layer(x[:, t : t + 1], cache=cache, cache_index=t)
        np.testing.assert_allclose(out, full[:, t : t + 1], atol=ATOL)


def test_cache_runs_compiled_with_a_tensor_index():
    rng = np.random.default_rng(9)
    layer = MultiHeadAttention(2, causal=True)
    x = random(rng, 1, 5, 8)
    full = np.asarray(layer(x))

    @tf.function(jit_compile=True)
    def step(token, cache, index):
        return layer(token, cache=cache, cache_index=index)

    cache = layer.init_cache(1, max_length=5)
    for t in range(5):
        out, cache = step(x[:, t : t + 1], cache, tf.constant(t))
    np.testing.assert_allclose(out, full[:, 4:5], atol=ATOL)


# -- errors ------------------------------------------------------------------------------


def test_d_model_not_divisible_by_heads_names_both():
    with pytest.raises(ValueError, match=r"d_model=10 is not divisible by num_heads=4"):
        MultiHeadAttention(4, d_model=10)
    layer = MultiHeadAttention(3)
    with pytest.raises(ValueError, match=r"d_model=8 is not divisible by num_heads=3"):
        layer(np.zeros((1, 2, 8), "float32"))


def test_mask_of_the_wrong_shape_is_named():
    layer = MultiHeadAttention(2)
    x = np.zeros((2, 5, 8), "float32")
    with pytest.raises(
        ValueError, match=r"attention_mask must have shape \[\?, 5, 5\], got \(2, 5, 4\)"
    ):
        layer(x, attention_mask=np.ones((2, 5, 4), bool))
    with pytest.raises(
        ValueError, match=r"key padding mask must have shape \[\?, 5\], got \(2, 6\)"
    ):
        layer(x, query_mask=np.ones((2, 6), bool))


def test_cache_fed_out_of_order_or_past_its_end():
    layer = MultiHeadAttention(2, d_model=8, causal=True)  # d_model given: a cache before building
    x = np.ones((1, 1, 8), "float32")
    cache = layer.init_cache(1, max_length=4)
    _, cache = layer(x, cache=cache, cache_index=0)
    with pytest.raises(
        ValueError, match=r"out of order: cache_index=3 but position 2 was never written"
    ):
        layer(x, cache=cache, cache_index=3)
    with pytest.raises(
        ValueError, match=r"cache_index=4 with 1 new position\(s\) does not fit a cache of length 4"
    ):
        layer(x, cache=cache, cache_index=4)


def test_self_and_cross_misuse():
    layer = MultiHeadAttention(2)
    layer(np.zeros((1, 2, 8), "float32"))
    with pytest.raises(ValueError, match="built for self-attention"):
        layer(np.zeros((1, 2, 8), "float32"), np.zeros((1, 3, 8), "float32"))
    cross = MultiHeadAttention(2)
    cross(np.zeros((1, 2, 8), "float32"), np.zeros((1, 3, 4), "float32"))
    with pytest.raises(ValueError, match="cross-attention layer: pass context"):
        cross(np.zeros((1, 2, 8), "float32"))


# -- serialization -----------------------------------------------------------------------


def test_save_and_reload_in_a_model(tmp_path):
    rng = np.random.default_rng(10)
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(9, 8, mask_zero=True)(tokens)
    y = MultiHeadAttention(2, causal=True, rotary=True, dropout=0.1, name="self")(x)
    memory = keras.Input((None, 6))
    y = MultiHeadAttention(4, d_model=12, name="cross")(y, memory)
    model = keras.Model([tokens, memory], y)
    ids = rng.integers(0, 9, (2, 5))
    mem = random(rng, 2, 3, 6)
    want = np.asarray(model([ids, mem]))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded([ids, mem]), want, atol=1e-6)
    assert loaded.get_layer("cross").get_config()["d_model"] == 12
