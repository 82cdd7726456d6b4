"""The encoder-decoder Transformer: masks and causality as invariances, weight tying
against a NumPy projection, the parameter count by hand, serialization, bad
settings, and a tiny reversal task learned end to end."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.generation.seq2seq import translate
from seqlab.models.transformer_seq2seq import Seq2SeqParts, build_transformer_seq2seq

SMALL = {"d_model": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 24, "init_std": 0.3}


def _model(**kwargs):
    keras.utils.set_random_seed(0)
    return build_transformer_seq2seq(20, 25, max_source_len=12, max_target_len=10, **{**SMALL, **kwargs})


def _inputs():
    source = np.array([[5, 6, 7, 2, 0, 0], [8, 9, 10, 11, 12, 2]], "int32")
    target = np.array([[1, 4, 5, 6], [1, 7, 7, 8]], "int32")
    return source, target


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rope"])
def test_source_padding_is_invisible_and_the_target_is_causal(position):
    model = _model(position=position, norm_first=position != "rope")
    source, target = _inputs()
    logits = np.asarray(model({"source": source, "target_in": target}))
    assert logits.shape == (2, 4, 25) and logits.dtype == np.float32
    # More padding, or different ids under the padding, changes nothing.
    wider = np.concatenate([source, np.zeros((2, 3), "int32")], axis=1)
    np.testing.assert_allclose(np.asarray(model({"source": wider, "target_in": target})), logits, atol=1e-5)
    # Changing target tokens after position t leaves positions <= t unchanged ...
    changed = target.copy()
    changed[:, 2:] = [[13, 14], [15, 16]]
    after = np.asarray(model({"source": source, "target_in": changed}))
    np.testing.assert_allclose(after[:, :2], logits[:, :2], atol=1e-5)
    assert not np.allclose(after[:, 2:], logits[:, 2:], atol=1e-3)
    # ... while every position sees the whole (unpadded) source.
    other = source.copy()
    other[0, 2] = 17
    moved = np.asarray(model({"source": other, "target_in": target}))
    assert not np.allclose(moved[0, 0], logits[0, 0], atol=1e-3)
    np.testing.assert_allclose(moved[1], logits[1], atol=1e-5)


def test_tied_output_is_the_target_embedding_transposed_plus_bias():
    model = _model(tie_weights=True)
    source, target = _inputs()
    hidden = keras.Model(model.inputs, model.get_layer("decoder_norm").output)
    h = np.asarray(hidden({"source": source, "target_in": target}))
    table = np.asarray(model.get_layer("target_embedding").embeddings)
    bias = np.asarray(model.get_layer("logits").weights[0])
    expected = h @ table.T + bias
    np.testing.assert_allclose(np.asarray(model({"source": source, "target_in": target})), expected, atol=1e-4)


def _blocks_params(d, ff, cross):
    attention = 4 * d * d + 4 * d  # fused QKV kernel + bias, output kernel + bias
    ffn = d * ff + ff + ff * d + d
    norms = (3 if cross else 2) * 2 * d
    return attention * (2 if cross else 1) + ffn + norms


@pytest.mark.parametrize(("tie", "share"), [(False, False), (True, False), (True, True)])
def test_parameter_count_by_hand(tie, share):
    d, ff, v_src, v_tgt, s_len, t_len = 16, 24, 25, 25, 12, 10
    keras.utils.set_random_seed(0)
    model = build_transformer_seq2seq(v_src, v_tgt, max_source_len=s_len, max_target_len=t_len,
                                      tie_weights=tie, share_embeddings=share, shared_vocabulary=True,
                                      **{**SMALL, "num_layers": 2})
    embeddings = v_tgt * d if share else (v_src + v_tgt) * d
    positions = (s_len + t_len) * d
    blocks = 2 * _blocks_params(d, ff, False) + 2 * _blocks_params(d, ff, True)
    final_norms = 2 * 2 * d
    output = v_tgt if tie else d * v_tgt + v_tgt
    assert model.count_params() == embeddings + positions + blocks + final_norms + output
    assert [n for n in ("embedding", "source_embedding") if n in {layer.name for layer in model.layers}] == (
        ["embedding"] if share else ["source_embedding"])


def test_serialization_round_trip_keeps_outputs_and_decoding_parts(tmp_path):
    model = _model(num_encoder_layers=2, num_decoder_layers=1)
    source, target = _inputs()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded({"source": source, "target_in": target})),
                               np.asarray(model({"source": source, "target_in": target})), atol=1e-6)
    parts = Seq2SeqParts.from_model(loaded)
    assert (len(parts.encoder_blocks), len(parts.decoder_blocks), parts.tied) == (2, 1, True)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="model.share_embeddings=true needs one vocabulary.*separate vocab"):
        build_transformer_seq2seq(20, 20, share_embeddings=True, shared_vocabulary=False, **SMALL)
    with pytest.raises(ConfigError, match="different vocabulary sizes.*source 20, target 25"):
        build_transformer_seq2seq(20, 25, share_embeddings=True, **SMALL)
    with pytest.raises(ConfigError, match="model.d_model=16 is not divisible by model.num_heads=3"):
        build_transformer_seq2seq(20, 20, **{**SMALL, "num_heads": 3})
    with pytest.raises(ConfigError, match="model.pad_id must be 0"):
        build_transformer_seq2seq(20, 20, pad_id=1, **SMALL)
    with pytest.raises(ConfigError, match="model.position must be one of"):
        build_transformer_seq2seq(20, 20, position="absolute", **SMALL)
    with pytest.raises(ConfigError, match="is not a build_transformer_seq2seq model"):
        Seq2SeqParts.from_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))


def _reverse_task(n, rng, low=4, high=14, lengths=(3, 7)):
    """Sources of 3-7 symbols; the target is the source reversed (pad 0, bos 1, eos 2)."""
    sources, targets = [], []
    for _ in range(n):
        seq = rng.integers(low, high, size=rng.integers(lengths[0], lengths[1] + 1))
        sources.append(np.array([*seq, 2], "int32"))
        targets.append(seq[::-1].astype("int32"))
    return sources, targets


def _pad(rows, width):
    out = np.zeros((len(rows), width), "int32")
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def test_learns_to_reverse_short_sequences():
    """> 95 % of held-out sequences reversed exactly (greedy, cached decoding) after a short run."""
    rng = np.random.default_rng(0)
    sources, targets = _reverse_task(4096, rng)
    x = {
        "source": _pad(sources, 8),
        "target_in": _pad([[1, *t] for t in targets], 8),
    }
    y = _pad([[*t, 2] for t in targets], 8)
    weights = (y != 0).astype("float32")
    keras.utils.set_random_seed(0)
    model = build_transformer_seq2seq(14, 14, max_source_len=8, max_target_len=8, d_model=32, num_heads=4,
                                      num_layers=1, ff_dim=64, dropout=0.0, init_std=0.05)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,  # graph mode traces in a fraction of XLA's compile time on CPU
    )
    model.fit(x, y, sample_weight=weights, batch_size=64, epochs=6, verbose=0)
    test_sources, test_targets = _reverse_task(200, np.random.default_rng(1))
    out = translate(model, test_sources, max_new_tokens=8, batch_size=100)
    exact = np.mean([o.tolist() == t.tolist() for o, t in zip(out, test_targets, strict=True)])
    assert exact > 0.95, f"only {exact:.1%} reversed exactly"
