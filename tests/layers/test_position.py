"""seqlab.layers.position: the sinusoidal formula, the learned table, RoPE's relative property."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.layers.attention import MultiHeadAttention
from seqlab.layers.position import (
    LearnedPositionEmbedding,
    RotaryEmbedding,
    SinusoidalPositionEncoding,
)

ATOL = 1e-5


def vaswani(p: int, i: int, d: int) -> float:
    """PE(p, 2k) = sin(p / 10000^(2k/d)), PE(p, 2k+1) = cos(p / 10000^(2k/d)), written out."""
    k = i // 2
    angle = p / 10000 ** (2 * k / d)
    return np.sin(angle) if i % 2 == 0 else np.cos(angle)


@pytest.mark.parametrize("d", [6, 7, 16])
def test_sinusoidal_equals_the_formula(d):
    layer = SinusoidalPositionEncoding()
    x = np.zeros((1, 50, d), "float32")
    pe = np.asarray(layer(x))[0]
    for p in (0, 1, 7, 49):
        np.testing.assert_allclose(pe[p], [vaswani(p, i, d) for i in range(d)], atol=ATOL)
    # start: the rows of positions start .. start + T - 1, added to the input.
    ones = np.ones((2, 3, d), "float32")
    shifted = np.asarray(layer(ones, start=40))
    np.testing.assert_allclose(shifted[1], 1.0 + pe[40:43], atol=ATOL)


def test_learned_adds_its_table_rows_and_names_a_too_long_sequence():
    rng = np.random.default_rng(0)
    layer = LearnedPositionEmbedding(max_length=6)
    x = rng.normal(size=(2, 4, 3)).astype("float32")
    y = np.asarray(layer(x))
    table = np.asarray(layer.embeddings)
    np.testing.assert_allclose(y, x + table[None, :4], atol=ATOL)
    np.testing.assert_allclose(layer(x[:, :2], start=4), x[:, :2] + table[None, 4:6], atol=ATOL)
    with pytest.raises(
        ValueError, match=r"length 7 \(positions 0\.\.6\) is longer than max_length=6"
    ):
        layer(np.zeros((1, 7, 3), "float32"))
    with pytest.raises(
        ValueError, match=r"length 7 \(positions 5\.\.6\) is longer than max_length=6"
    ):
        layer(np.zeros((1, 2, 3), "float32"), start=5)
    with pytest.raises(ValueError, match="max_length must be a positive integer, got 0"):
        LearnedPositionEmbedding(max_length=0)


def test_position_layers_keep_the_mask():
    tokens = np.array([[1, 2, 0]])
    x = keras.layers.Embedding(5, 4, mask_zero=True)(tokens)
    for layer in (SinusoidalPositionEncoding(), LearnedPositionEmbedding(8)):
        y = layer(x)
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(y._keras_mask), [[True, True, False]]
        )


def test_rope_equals_pairwise_rotations():
    """Feature pairs (j, j + d/2) rotated by p * base^(-2j/d), written out."""
    rng = np.random.default_rng(1)
    d = 8
    x = rng.normal(size=(1, 5, d)).astype("float32")
    y = np.asarray(RotaryEmbedding()(x, start=3))
    for t in range(5):
        p = 3 + t
        for j in range(d // 2):
            angle = p * 10000 ** (-2 * j / d)
            a, b = x[0, t, j], x[0, t, j + d // 2]
            np.testing.assert_allclose(
                [y[0, t, j], y[0, t, j + d // 2]],
                [a * np.cos(angle) - b * np.sin(angle), b * np.cos(angle) + a * np.sin(angle)],
                atol=ATOL,
            )


def test_rope_scores_depend_only_on_the_relative_offset():
    rng = np.random.default_rng(2)
    rope = RotaryEmbedding()
    q = rng.normal(size=(1, 1, 16)).astype("float32")
    k = rng.normal(size=(1, 1, 16)).astype("float32")

    def score(p, s):
        return float(np.sum(np.asarray(rope(q, start=p)) * np.asarray(rope(k, start=s))))

    for offset in (0, 1, 5):
        scores = [score(s + offset, s) for s in (0, 3, 17, 60)]
        np.testing.assert_allclose(scores, scores[0], rtol=1e-4, atol=1e-4)
    assert abs(score(5, 0) - score(6, 0)) > 1e-3  # and they do depend on it
    # Norms are preserved (a rotation).
    np.testing.assert_allclose(np.linalg.norm(rope(q, start=9)), np.linalg.norm(q), rtol=1e-5)


def test_rope_in_attention_shift_invariance():
    """With rotary=True, shifting every position by the same amount (cache_index)
    leaves the attention weights unchanged."""
    rng = np.random.default_rng(3)
    layer = MultiHeadAttention(2, causal=True, rotary=True)
    x = rng.normal(size=(1, 4, 8)).astype("float32")
    _, w0 = layer(x, return_weights=True)
    cache = layer.init_cache(1, max_length=16)
    # Fill positions 0..8 with anything, then the same 4 tokens at 9..12.
    _, cache = layer(rng.normal(size=(1, 9, 8)).astype("float32"), cache=cache, cache_index=0)
    _, w9, _ = layer(
        x, cache=cache, cache_index=9, return_weights=True, attention_mask=_only_own(9, 4, 16)
    )
    np.testing.assert_allclose(np.asarray(w9)[..., 9:13], w0, atol=ATOL)


def _only_own(start, n, length):
    """[1, n, length] bool: the n new queries see only the n new keys."""
    mask = np.zeros((1, n, length), bool)
    mask[:, :, start : start + n] = True
    return mask


def test_rope_rejects_odd_widths():
    with pytest.raises(ValueError, match="even head width"):
        MultiHeadAttention(1, rotary=True)(np.zeros((1, 2, 5), "float32"))


@pytest.mark.parametrize(
    "layer",
    [
        SinusoidalPositionEncoding(max_length=9),
        LearnedPositionEmbedding(9),
        RotaryEmbedding(500.0, max_length=9),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config and again.max_length == 9
