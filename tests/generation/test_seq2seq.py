"""Encoder-decoder decoding: the cached step equals full recomputation, beam search
finds the exhaustive optimum, batching and padding change nothing, and a recurrent
model plugs into the same loops through its own registered step."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.generation import seq2seq
from seqlab.generation.seq2seq import (
    FullRecompute,
    TransformerCachedStep,
    beam_decode,
    greedy_decode,
    make_seq2seq_step,
    register_seq2seq_step,
    strip,
    translate,
)
from seqlab.models.transformer_seq2seq import build_transformer_seq2seq

EOS, PAD, BOS = 2, 0, 1
# Tracing the loops dominates these tests; graph mode traces faster than XLA compiles.
FAST = {"jit_compile": False}


def _model(position="learned", norm_first=True, vocab=30, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    # init_std 0.5: sharp, well-separated logits, so ties cannot blur the comparison.
    options = {"d_model": 16, "num_heads": 2, "num_layers": 2, "ff_dim": 32, "init_std": 0.5, **kwargs}
    return build_transformer_seq2seq(20, vocab, max_source_len=16, max_target_len=16, position=position,
                                     norm_first=norm_first, dropout=0.1, **options)


def _sources(rows=4, width=8, seed=0):
    rng = np.random.default_rng(seed)
    source = rng.integers(4, 20, size=(rows, width)).astype("int32")
    for i in range(1, rows):  # different amounts of padding
        source[i, width - 2 * i :] = PAD
    return source


@pytest.mark.parametrize(("position", "norm_first"), [("learned", True), ("rope", False)])
def test_cached_greedy_and_beam_equal_full_recomputation(position, norm_first):
    model = _model(position, norm_first)
    assert isinstance(make_seq2seq_step(model), TransformerCachedStep)
    source = _sources()
    cached = greedy_decode(model, source, 10, method="cached", **FAST)
    full = greedy_decode(model, source, 10, method="full", **FAST)
    np.testing.assert_array_equal(cached, full)
    tokens_c, score_c, logp_c = beam_decode(model, source, 10, beam_width=3, method="cached", **FAST)
    tokens_f, score_f, logp_f = beam_decode(model, source, 10, beam_width=3, method="full", **FAST)
    np.testing.assert_array_equal(tokens_c, tokens_f)
    np.testing.assert_allclose(score_c, score_f, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logp_c, logp_f, rtol=1e-4, atol=1e-4)


def test_cached_step_logits_equal_the_model_token_by_token():
    """Step by step (no search): every position's logits equal the teacher-forced model's."""
    model = _model("sinusoidal")
    source = _sources(rows=2)
    target = np.array([[BOS, 5, 9, 7, 11], [BOS, 6, 6, 8, 4]], "int32")
    full = np.asarray(model({"source": source, "target_in": target}))
    step = TransformerCachedStep(model)
    memory = step.encode(source)
    state = step.initial_state(memory, target.shape[1])
    for t in range(target.shape[1]):
        logits, state = step(target, t, state, memory)
        np.testing.assert_allclose(np.asarray(logits), full[:, t], atol=1e-4)


def _scores(model, source, sequences, alpha):
    """log P(seq | source) of every sequence by ONE teacher-forced pass, and its
    length-penalised score (NumPy log-softmax, no search involved)."""
    width = max(len(seq) for seq in sequences)
    target_in = np.full((len(sequences), width), PAD, "int32")
    for i, seq in enumerate(sequences):
        target_in[i, : len(seq)] = [BOS, *seq[:-1]]
    sources = np.repeat(source[None], len(sequences), axis=0)
    logits = np.asarray(model({"source": sources, "target_in": target_in}), np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    totals = np.array([sum(logp[i, j, tok] for j, tok in enumerate(seq)) for i, seq in enumerate(sequences)])
    return totals / np.array([len(seq) for seq in sequences]) ** alpha


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_wide_beam_finds_the_exhaustive_optimum(alpha):
    """Vocabulary of 7 (pad and bos never emitted: 5 choices), 3 new tokens at most:
    a beam of 25 keeps every prefix, so it must return the best of all complete
    sequences (ending in <eos>, or cut at the length), scored independently."""
    model = _model(vocab=7, seed=3)
    source = _sources(rows=1)[0]
    choices = [EOS, 3, 4, 5, 6]
    candidates = []
    for n in (1, 2, 3):
        for seq in itertools.product(choices, repeat=n):
            if EOS in seq[:-1] or (n < 3 and seq[-1] != EOS):
                continue  # nothing follows <eos>; only the length cut ends without one
            candidates.append(seq)
    scores = _scores(model, source, candidates, alpha)
    best_score, best = scores.max(), candidates[int(scores.argmax())]
    tokens, score, _ = beam_decode(model, source[None], 3, beam_width=25, length_penalty=alpha,
                                   method="full", **FAST)
    got = list(tokens[0][: list(tokens[0]).index(EOS) + 1] if EOS in tokens[0] else tokens[0])
    assert tuple(got) == best
    assert float(score[0]) == pytest.approx(best_score, abs=1e-4)


def test_beam_of_one_is_greedy_and_pad_bos_are_never_emitted():
    model = _model(seed=5)
    source = _sources()
    greedy = greedy_decode(model, source, 10, **FAST)
    beam, _, _ = beam_decode(model, source, 10, beam_width=1, length_penalty=0.0, **FAST)
    for g, b in zip(greedy, beam, strict=True):
        np.testing.assert_array_equal(strip(g), strip(b))
    assert not np.isin(np.concatenate([strip(g) for g in greedy]), [PAD, BOS]).any()


def test_translate_is_independent_of_batching_padding_and_order():
    model = _model(seed=1)
    rng = np.random.default_rng(7)
    sources = [rng.integers(4, 20, size=n).astype("int32") for n in (3, 9, 5, 1, 7, 4, 12)]
    alone = [strip(greedy_decode(model, s[None], 10, **FAST)[0]) for s in sources]
    batched = translate(model, sources, max_new_tokens=10, batch_size=3, length_multiple=4, **FAST)
    assert [b.tolist() for b in batched] == [a.tolist() for a in alone]
    beams = translate(model, sources, strategy="beam", beam_width=2, max_new_tokens=10, batch_size=4, **FAST)
    alone_beams = [strip(beam_decode(model, s[None], 10, beam_width=2, **FAST)[0][0]) for s in sources]
    assert [b.tolist() for b in beams] == [a.tolist() for a in alone_beams]


def test_bad_decoding_requests_are_clear_errors():
    model = _model()
    with pytest.raises(ConfigError, match="decoding method='kv' is unknown"):
        make_seq2seq_step(model, "kv")
    with pytest.raises(ConfigError, match="decoding.strategy='sample' is unknown"):
        translate(model, [np.array([5])], strategy="sample")
    with pytest.raises(ConfigError, match="source 1 is empty"):
        translate(model, [np.array([5]), np.array([], "int32")])
    with pytest.raises(ConfigError, match=r"source must be a non-empty int batch \[B, S\]"):
        greedy_decode(model, np.array([4, 5]), 4)
    with pytest.raises(ConfigError, match="decoding.length_penalty must be a number >= 0"):
        beam_decode(model, np.array([[4, 5]]), 4, length_penalty=-1)
    with pytest.raises(ConfigError, match=r"learned position table has max_length=16"):
        greedy_decode(model, np.array([[4, 5]]), 20, method="cached", **FAST)


# ------------------------------------------------ a recurrent model through the protocol
def _gru_seq2seq(vocab=12, units=8):
    """Sutskever-style: the encoder's final state starts the decoder (a stand-in for #17)."""
    keras.utils.set_random_seed(0)
    source = keras.Input((None,), dtype="int32", name="source")
    target_in = keras.Input((None,), dtype="int32", name="target_in")
    src = keras.layers.Embedding(vocab, units, mask_zero=True, name="gru_source_embedding")(source)
    _, state = keras.layers.GRU(units, return_state=True, name="gru_encoder")(src)
    tgt = keras.layers.Embedding(vocab, units, name="gru_target_embedding")(target_in)
    out = keras.layers.GRU(units, return_sequences=True, name="gru_decoder")(tgt, initial_state=state)
    logits = keras.layers.Dense(vocab, name="gru_logits")(out)
    return keras.Model({"source": source, "target_in": target_in}, logits, name="gru_seq2seq")


class GRUStep:
    """What a recurrent encoder-decoder registers: memory = the encoder's final state,
    state = the decoder's hidden state, one GRU cell step per token."""

    carries_state = True

    @staticmethod
    def supports(model):
        return None if model.name == "gru_seq2seq" else "not the test's GRU model"

    def __init__(self, model):
        self.model = model
        self.layers = {n: model.get_layer(n) for n in
                       ("gru_source_embedding", "gru_encoder", "gru_target_embedding", "gru_decoder", "gru_logits")}

    def encode(self, source):
        from keras import ops

        x = self.layers["gru_source_embedding"](source)
        _, state = self.layers["gru_encoder"](x, mask=ops.not_equal(source, 0))
        return {"state": state}

    def initial_state(self, memory, length):
        return memory["state"]

    def __call__(self, tokens, t, state, memory):
        from keras import ops

        x = self.layers["gru_target_embedding"](ops.take(tokens, t, axis=1))
        out, new = self.layers["gru_decoder"].cell(x, [state], training=False)
        return ops.cast(self.layers["gru_logits"](out), "float32"), new[0] if isinstance(new, list) else new


def test_a_recurrent_model_decodes_full_and_through_a_registered_step(monkeypatch):
    model = _gru_seq2seq()
    source = np.array([[5, 6, 7, 0, 0], [8, 9, 4, 5, 6]], "int32")
    assert isinstance(make_seq2seq_step(model), FullRecompute)  # nothing registered for it yet
    with pytest.raises(ConfigError, match="has no cached decoding step"):
        make_seq2seq_step(model, "cached")
    full = greedy_decode(model, source, 6, method="full", **FAST)
    full_beam = beam_decode(model, source, 6, beam_width=3, method="full", **FAST)
    monkeypatch.setattr(seq2seq, "_STEPS", list(seq2seq._STEPS))  # undone after the test
    register_seq2seq_step(GRUStep)
    assert isinstance(make_seq2seq_step(model), GRUStep)
    np.testing.assert_array_equal(greedy_decode(model, source, 6, method="cached", **FAST), full)
    beam = beam_decode(model, source, 6, beam_width=3, method="cached", **FAST)
    np.testing.assert_array_equal(beam[0], full_beam[0])
    np.testing.assert_allclose(beam[1], full_beam[1], atol=1e-4)
