"""The recurrent encoder-decoder: source padding invisible and the target causal,
cached decoding equal to full recomputation (greedy and beam, with and without
attention), the reversal task learned, save/reload, the attention heat map, and
bad settings as clear errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.data.attention_maps import save_attention_maps
from seqlab.errors import ConfigError
from seqlab.generation.rnn_seq2seq import RecurrentCachedStep
from seqlab.generation.seq2seq import beam_decode, greedy_decode, make_seq2seq_step, translate
from seqlab.models.rnn_seq2seq import RnnSeq2SeqParts, attention_weights, build_rnn_seq2seq
from tests.models.test_transformer_seq2seq import _pad, _reverse_task

FAST = {"jit_compile": False}
# Plain graph loops in the encoder: the fused kernels' XLA-compiled loops would be compiled
# again for every traced decoding function (seconds each on 2 cores).
CELL = {"compile_loops": False}
# (attention, cell, bidirectional, layers, tied): both attention kinds, both cells, both
# ways of starting the decoder (the encoder's states as they are, or projected).
VARIANTS = [("none", "lstm", False, 2, False), ("additive", "gru", True, 1, True)]


def _model(attention="additive", cell="gru", bidirectional=True, num_layers=1, tie=False, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = build_rnn_seq2seq(20, 20, cell={"name": cell, **CELL}, attention=attention, bidirectional=bidirectional,
                              num_layers=num_layers, embedding_dim=8, hidden_size=12, dropout=0.1,
                              tie_weights=tie, share_embeddings=tie, shared_vocabulary=True, **kwargs)
    # Sharp logits: well-separated choices, so near-ties cannot blur the comparisons.
    for layer in ("logits", "output_projection"):
        if any(layer == x.name for x in model.layers) and model.get_layer(layer).weights[0].ndim == 2:
            kernel = model.get_layer(layer).weights[0]
            kernel.assign(kernel * 6.0)
    return model


def _inputs():
    source = np.array([[5, 6, 7, 2, 0, 0], [8, 9, 10, 11, 12, 2]], "int32")
    target = np.array([[1, 4, 5, 6], [1, 7, 7, 8]], "int32")
    return source, target


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v[0]}-{v[1]}")
def test_source_padding_is_invisible_and_the_target_is_causal(variant):
    attention, cell, bidirectional, layers, tie = variant
    model = _model(attention, cell, bidirectional, layers, tie)
    source, target = _inputs()
    logits = np.asarray(model({"source": source, "target_in": target}))
    assert logits.shape == (2, 4, 20) and logits.dtype == np.float32
    wider = np.concatenate([source, np.zeros((2, 3), "int32")], axis=1)
    np.testing.assert_allclose(np.asarray(model({"source": wider, "target_in": target})), logits, atol=1e-5)
    changed = target.copy()
    changed[:, 2:] = [[13, 14], [15, 16]]
    after = np.asarray(model({"source": source, "target_in": changed}))
    np.testing.assert_allclose(after[:, :2], logits[:, :2], atol=1e-5)
    assert not np.allclose(after[:, 2:], logits[:, 2:], atol=1e-3)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v[0]}-{v[1]}")
def test_cached_greedy_and_beam_equal_full_recomputation(variant):
    attention, cell, bidirectional, layers, tie = variant
    model = _model(attention, cell, bidirectional, layers, tie)
    assert isinstance(make_seq2seq_step(model), RecurrentCachedStep)
    rng = np.random.default_rng(0)
    source = rng.integers(4, 20, size=(4, 8)).astype("int32")
    for i in range(1, 4):
        source[i, 8 - 2 * i :] = 0
    cached = greedy_decode(model, source, 10, method="cached", **FAST)
    full = greedy_decode(model, source, 10, method="full", **FAST)
    np.testing.assert_array_equal(cached, full)
    tokens_c, score_c, logp_c = beam_decode(model, source, 10, beam_width=3, method="cached", **FAST)
    tokens_f, score_f, logp_f = beam_decode(model, source, 10, beam_width=3, method="full", **FAST)
    np.testing.assert_array_equal(tokens_c, tokens_f)
    np.testing.assert_allclose(score_c, score_f, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logp_c, logp_f, rtol=1e-4, atol=1e-4)


def test_learns_to_reverse_short_sequences():
    """> 95 % of held-out sequences reversed exactly (greedy, cached decoding) after a short run."""
    rng = np.random.default_rng(0)
    sources, targets = _reverse_task(4096, rng)
    x = {"source": _pad(sources, 8), "target_in": _pad([[1, *t] for t in targets], 8)}
    y = _pad([[*t, 2] for t in targets], 8)
    weights = (y != 0).astype("float32")
    keras.utils.set_random_seed(0)
    model = build_rnn_seq2seq(14, 14, cell={"name": "gru", **CELL}, attention="additive", bidirectional=True, embedding_dim=16,
                              hidden_size=48, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), jit_compile=False)
    model.fit(x, y, sample_weight=weights, batch_size=64, epochs=2, verbose=0)
    test_sources, test_targets = _reverse_task(200, np.random.default_rng(1))
    out = translate(model, test_sources, max_new_tokens=8, batch_size=100, **FAST)
    exact = np.mean([o.tolist() == t.tolist() for o, t in zip(out, test_targets, strict=True)])
    assert exact > 0.95, f"only {exact:.1%} reversed exactly"


def test_save_and_reload_give_equal_outputs_and_decoding(tmp_path):
    model = _model("additive", "lstm", True, 2, True)
    source, target = _inputs()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded({"source": source, "target_in": target})),
                               np.asarray(model({"source": source, "target_in": target})), atol=1e-6)
    parts = RnnSeq2SeqParts.from_model(loaded)
    assert (parts.attention, parts.tied, len(parts.encoder_layers), parts.state_counts) == (
        "additive", True, 2, [2, 2])


def test_attention_heat_map_for_a_model_with_attention_only(tmp_path):
    from seqlab.data.pairs import SubwordVocab

    vocab = SubwordVocab.fit(["ein hund läuft", "a dog runs", "zwei katzen"], vocab_size=26)
    model = _model("additive")
    sources = [np.array([5, 6, 7, 2], "int32"), np.array([8, 2], "int32")]
    generated = [np.array([9, 10], "int32"), np.array([11, 12, 13], "int32")]
    weights = np.asarray(attention_weights(model, _pad(sources, 4), _pad([[1, *g] for g in generated], 4)))
    assert weights.shape == (2, 4, 4) and np.all(weights[1, :, 2:] == 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    path = save_attention_maps(model, sources, generated, vocab, vocab, tmp_path / "plots" / "attention.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert save_attention_maps(_model("none", bidirectional=False), sources, generated, vocab, vocab,
                               tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell": "tcn"}, r"unknown model.cell 'tcn'; choose one of \["),
        ({"cell": "keras_gru"}, r"model.cell 'keras_gru' is a Keras built-in: use 'gru'"),
        ({"attention": "dot"}, r"model.attention='dot' is unknown; choose one of \['none', 'additive'\]"),
        ({"hidden_size": 0}, "model.hidden_size must be a positive integer, got 0"),
        ({"attention_units": -4}, "model.attention_units must be a positive integer, got -4"),
        ({"num_layers": 0}, "model.num_layers must be a positive integer, got 0"),
        ({"dropout": 1.0}, r"model.dropout must be in \[0, 1\), got 1.0"),
        ({"cell": {"name": "gru", "recurrent_dropout": 0.3}}, "use model.dropout"),
        ({"pad_id": 1}, "model.pad_id must be 0"),
        ({"share_embeddings": True, "shared_vocabulary": False}, "set data.vocabulary=shared"),
    ],
)
def test_bad_settings_are_one_clear_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_rnn_seq2seq(20, 20, **{"embedding_dim": 4, "hidden_size": 4, **kwargs})


def test_not_an_rnn_seq2seq_model_is_named():
    with pytest.raises(ConfigError, match="is not a build_rnn_seq2seq model: inputs are"):
        RnnSeq2SeqParts.from_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="mlp"))
