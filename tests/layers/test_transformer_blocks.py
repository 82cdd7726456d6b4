"""Transformer blocks against their equations in NumPy, masks, cache, errors, saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy.special import erf

from seqlab.layers.class_token import ClassToken, FirstToken
from seqlab.layers.pooling import MaskedMeanPooling
from seqlab.layers.transformer import TransformerDecoderBlock, TransformerEncoderBlock

ATOL = 2e-5


def np_ln(x, layer):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + layer.epsilon) * np.asarray(layer.gamma) + np.asarray(
        layer.beta
    )


def np_mha(layer, x, context=None, causal=False, key_mask=None):
    heads, d = layer.num_heads, layer.head_dim * layer.num_heads
    if context is None:
        q, k, v = np.split(x @ np.asarray(layer.qkv_kernel) + np.asarray(layer.qkv_bias), 3, -1)
    else:
        q = x @ np.asarray(layer.q_kernel) + np.asarray(layer.q_bias)
        k, v = np.split(context @ np.asarray(layer.kv_kernel) + np.asarray(layer.kv_bias), 2, -1)

    def split(a):
        return a.reshape(a.shape[0], a.shape[1], heads, -1).transpose(0, 2, 1, 3)

    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    mask = np.ones(scores.shape, bool)
    if causal:
        mask &= np.tril(np.ones(scores.shape[-2:], bool))
    if key_mask is not None:
        mask &= key_mask[:, None, None, :]
    scores = np.where(mask, scores, -np.inf)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    out = (w @ v).transpose(0, 2, 1, 3).reshape(x.shape[0], x.shape[1], d)
    return out @ np.asarray(layer.out_kernel) + np.asarray(layer.out_bias)


def np_ffn(block, x):
    h = x @ np.asarray(block.ffn_in.kernel) + np.asarray(block.ffn_in.bias)
    if block.activation == "relu":
        h = np.maximum(h, 0)
    else:
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
    return h @ np.asarray(block.ffn_out.kernel) + np.asarray(block.ffn_out.bias)


def np_block(block, x, memory=None, key_mask=None, memory_mask=None):
    def sub(x, norm, fn):
        if block.norm_first:
            return x + fn(np_ln(x, norm))
        return np_ln(x + fn(x), norm)

    x = sub(
        x,
        block.attention_norm,
        lambda h: np_mha(block.attention, h, causal=block.causal, key_mask=key_mask),
    )
    if memory is not None:
        x = sub(
            x,
            block.cross_norm,
            lambda h: np_mha(block.cross_attention, h, memory, key_mask=memory_mask),
        )
    return sub(x, block.ffn_norm, lambda h: np_ffn(block, h))


def randomize(layer, rng):
    for w in layer.weights:
        if "gamma" in w.path:
            w.assign(1.0 + 0.2 * rng.normal(size=w.shape).astype("float32"))
        elif "seed" not in w.path:
            w.assign(0.3 * rng.normal(size=w.shape).astype("float32"))


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_encoder_block_equals_the_equations(norm_first, activation):
    rng = np.random.default_rng(0)
    block = TransformerEncoderBlock(2, 12, norm_first=norm_first, activation=activation)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    block(x)
    randomize(block, rng)
    valid = np.arange(5)[None, :] < np.array([[5], [3]])
    np.testing.assert_allclose(block(x), np_block(block, x), atol=ATOL)
    got = np.asarray(block(x, mask=valid))
    np.testing.assert_allclose(got[valid], np_block(block, x, key_mask=valid)[valid], atol=ATOL)


@pytest.mark.parametrize("norm_first", [True, False])
def test_decoder_block_equals_the_equations(norm_first):
    rng = np.random.default_rng(1)
    block = TransformerDecoderBlock(2, 16, norm_first=norm_first)
    x = rng.normal(size=(2, 4, 8)).astype("float32")
    memory = rng.normal(size=(2, 6, 10)).astype("float32")
    block(x, memory)
    randomize(block, rng)
    memory_mask = np.arange(6)[None, :] < np.array([[6], [2]])
    np.testing.assert_allclose(block(x, memory), np_block(block, x, memory), atol=ATOL)
    np.testing.assert_allclose(
        block(x, memory, memory_mask=memory_mask),
        np_block(block, x, memory, memory_mask=memory_mask),
        atol=ATOL,
    )
    assert tuple(block.cross_attention.kv_kernel.shape) == (10, 16)


def test_masks_propagate_through_a_functional_encoder():
    """Embedding(mask_zero=True) -> blocks: the padded tail changes nothing valid."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 8, mask_zero=True)(tokens)
    x = TransformerEncoderBlock(2, 16)(x)
    x = TransformerEncoderBlock(2, 16)(x)
    pooled = MaskedMeanPooling()(x)
    model = keras.Model(tokens, [x, pooled])
    short, padded = np.array([[3, 4, 5]]), np.array([[3, 4, 5, 0, 0, 0]])
    seq_s, pool_s = model(short)
    seq_p, pool_p = model(padded)
    np.testing.assert_allclose(seq_p[:, :3], seq_s, atol=ATOL)
    np.testing.assert_allclose(pool_p, pool_s, atol=ATOL)


def test_decoder_cache_with_projected_memory_equals_the_full_pass():
    rng = np.random.default_rng(2)
    blocks = [TransformerDecoderBlock(2, 16, name=f"b{i}") for i in range(2)]
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    memory = rng.normal(size=(2, 3, 8)).astype("float32")
    memory_mask = np.array([[True, True, True], [True, False, False]])
    full = x
    for block in blocks:
        full = block(full, memory, memory_mask=memory_mask)
    kvs = [block.project_memory(memory) for block in blocks]
    caches = [block.init_cache(2, max_length=5) for block in blocks]
    outs = []
    for t in range(5):
        h = x[:, t : t + 1]
        for i, block in enumerate(blocks):
            h, caches[i] = block(
                h, memory_kv=kvs[i], memory_mask=memory_mask, cache=caches[i], cache_index=t
            )
        outs.append(np.asarray(h))
    np.testing.assert_allclose(np.concatenate(outs, 1), full, atol=ATOL)


def test_causal_encoder_block_with_cache():
    rng = np.random.default_rng(3)
    block = TransformerEncoderBlock(2, 16, causal=True, rotary=True)
    x = rng.normal(size=(1, 4, 8)).astype("float32")
    full = np.asarray(block(x))
    cache = block.init_cache(1, max_length=4)
    for t in range(4):
        out, cache = block(x[:, t : t + 1], cache=cache, cache_index=t)
        np.testing.assert_allclose(out, full[:, t : t + 1], atol=ATOL)


def test_dropout_only_in_training():
    x = np.random.default_rng(4).normal(size=(2, 4, 8)).astype("float32")
    block = TransformerEncoderBlock(2, 16, dropout=0.3, seed=1)
    np.testing.assert_allclose(block(x), block(x, training=False), atol=ATOL)
    assert not np.allclose(block(x, training=True), block(x), atol=1e-3)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="d_model=10 is not divisible by num_heads=4"):
        TransformerEncoderBlock(4, 16, d_model=10)
    with pytest.raises(ValueError, match="activation must be one of gelu, gelu_tanh, relu"):
        TransformerEncoderBlock(2, 16, activation="softmax")
    with pytest.raises(ValueError, match="ff_dim must be a positive integer, got 0"):
        TransformerEncoderBlock(2, 0)
    block = TransformerDecoderBlock(2, 16)
    with pytest.raises(ValueError, match="has cross-attention: pass memory"):
        block(np.zeros((1, 3, 8), "float32"))
    lm_block = TransformerDecoderBlock(2, 16, cross_attention=False)
    with pytest.raises(ValueError, match="takes no memory"):
        lm_block(np.zeros((1, 3, 8), "float32"), np.zeros((1, 2, 8), "float32"))


def test_cls_token_and_pooling_layers():
    x = np.arange(12, dtype="float32").reshape(1, 3, 4)
    cls = ClassToken(initializer="ones")
    y = np.asarray(cls(x))
    np.testing.assert_allclose(y[0, 0], np.ones(4))
    np.testing.assert_allclose(y[0, 1:], x[0])
    mask = cls.compute_mask(x, np.array([[True, False, False]]))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(mask), [[True, True, False, False]])
    np.testing.assert_allclose(FirstToken()(y), np.ones((1, 4)))
    np.testing.assert_allclose(
        MaskedMeanPooling()(x, mask=np.array([[True, True, False]])), [[2, 3, 4, 5]]
    )


def test_blocks_save_and_reload(tmp_path):
    rng = np.random.default_rng(5)
    src = keras.Input((None,), dtype="int32")
    tgt = keras.Input((None,), dtype="int32")
    memory = TransformerEncoderBlock(2, 16, norm_first=False, name="enc")(
        keras.layers.Embedding(12, 8, mask_zero=True)(src)
    )
    y = TransformerDecoderBlock(2, 16, activation="gelu_tanh", name="dec")(
        keras.layers.Embedding(12, 8)(tgt), memory
    )
    model = keras.Model([src, tgt], y)
    inputs = [rng.integers(1, 12, (2, 5)), rng.integers(1, 12, (2, 4))]
    want = np.asarray(model(inputs))
    model.save(tmp_path / "blocks.keras")
    loaded = keras.saving.load_model(tmp_path / "blocks.keras")
    np.testing.assert_allclose(loaded(inputs), want, atol=1e-6)
    assert loaded.get_layer("dec").get_config()["activation"] == "gelu_tanh"


def test_moved_layers_keep_their_registered_names_old_home_and_reload(tmp_path):
    """LayerNorm, ClassToken and FirstToken left transformer.py: registered under the
    same seqlab> names, still importable from it, and a model of them reloads."""
    import seqlab.layers.transformer as old
    from seqlab.layers.activations import gelu
    from seqlab.layers.normalization import LayerNorm
    from seqlab.layers.xla import compiled_by_xla

    for layer in (LayerNorm, ClassToken, FirstToken):
        assert getattr(old, layer.__name__) is layer
        assert keras.saving.get_registered_name(layer) == f"seqlab>{layer.__name__}"
        assert keras.saving.get_registered_object(f"seqlab>{layer.__name__}") is layer
    assert old.gelu is gelu and old.compiled_by_xla is compiled_by_xla
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, FirstToken()(LayerNorm()(ClassToken(initializer="ones")(inputs))))
    x = np.random.default_rng(8).normal(size=(2, 3, 4)).astype("float32")
    model.save(tmp_path / "moved.keras")
    loaded = keras.saving.load_model(tmp_path / "moved.keras")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


def test_gelu_and_its_hand_written_gradient():
    """seqlab's GELU equals Keras' exact GELU; its gradient equals autodiff of Keras'
    and the analytic Phi(x) + x phi(x)."""
    import tensorflow as tf

    from seqlab.layers.activations import gelu

    x = tf.constant(np.linspace(-5, 5, 101).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        mine, ref = gelu(x), keras.activations.gelu(x, approximate=False)
    np.testing.assert_allclose(mine, ref, atol=1e-6)
    grad = np.asarray(tape.gradient(mine, x))
    np.testing.assert_allclose(grad, tape.gradient(ref, x), atol=1e-5)
    xs = np.asarray(x, "float64")
    analytic = 0.5 * (1 + erf(xs / np.sqrt(2))) + xs * np.exp(-0.5 * xs**2) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(grad, analytic, atol=1e-5)


def test_layer_norm_equals_keras_values_and_gradients():
    import tensorflow as tf

    from seqlab.layers.normalization import LayerNorm

    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(1.0, 2.0, size=(3, 4, 8)).astype("float32"))
    mine, ref = LayerNorm(epsilon=1e-5), keras.layers.LayerNormalization(epsilon=1e-5)
    mine.build(x.shape)
    ref.build(x.shape)
    for a, b in ((mine.gamma, ref.gamma), (mine.beta, ref.beta)):
        value = rng.normal(size=a.shape).astype("float32")
        a.assign(value)
        b.assign(value)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_mine, y_ref = mine(x), ref(x)
        l_mine, l_ref = tf.reduce_sum(tf.sin(y_mine)), tf.reduce_sum(tf.sin(y_ref))
    np.testing.assert_allclose(y_mine, y_ref, atol=1e-5)
    for g_mine, g_ref in zip(
        tape.gradient(l_mine, [x, mine.gamma, mine.beta]),
        tape.gradient(l_ref, [x, ref.gamma, ref.beta]),
    ):
        np.testing.assert_allclose(g_mine, g_ref, atol=1e-4)


def test_plain_formulas_under_xla_equal_the_hand_written_gradients():
    """Under XLA the blocks use autodiff of the plain formulas (compiled_by_xla):
    the same values and gradients as the graph-mode hand-written ones."""
    import tensorflow as tf

    from seqlab.layers.xla import compiled_by_xla

    block = TransformerEncoderBlock(2, 16)
    x = tf.constant(np.random.default_rng(7).normal(size=(2, 5, 8)).astype("float32"))
    block(x)
    seen = []

    def grads(x):
        seen.append(compiled_by_xla())
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(block(x)))
        return tape.gradient(loss, [x, *block.trainable_variables])

    graph = tf.function(grads)(x)
    xla = tf.function(grads, jit_compile=True)(x)
    assert seen == [False, True]
    for a, b in zip(graph, xla):
        np.testing.assert_allclose(a, b, atol=1e-4)
