"""Generation from a Transformer LM through the KV cache equals full recomputation.

The reference is the model itself run on the whole context at every step
(``model(tokens[:, s:t+1])[:, -1]``, what :class:`PrefixStep` does), token by
token, for greedy, sampled and beam decoding, in graph mode and under XLA.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.generation import beam_search, generate, generate_text, make_step
from seqlab.generation.recurrent import PrefixStep
from seqlab.generation.transformer import TransformerStep, context_length, transformer_support
from seqlab.layers.transformer import TransformerEncoderBlock
from seqlab.models.transformer import build_transformer_lm

VOCAB = 13


def tiny_lm(position="learned", max_length=8, seed=0, **options):
    keras.utils.set_random_seed(seed)
    return build_transformer_lm(
        VOCAB,
        max_length=max_length,
        d_model=16,
        num_heads=2,
        num_layers=2,
        position=position,
        init_std=0.3,
        **options,
    )


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rope"])
def test_step_by_step_equals_recomputation_inside_and_past_the_window(position):
    model = tiny_lm(position, norm_first=position != "rope", tie_weights=position != "sinusoidal")
    step = TransformerStep(model)
    assert (step.window, step.keep) == (8, 4)
    tokens = np.random.default_rng(0).integers(0, VOCAB, (2, 21)).astype("int32")
    states = step.initial_states(2)
    for t in range(21):
        logits, states = step(tokens, t, states)
        start = step.window_start(t)
        assert t + 1 - start >= step.keep if t >= step.window else start == 0
        want = np.asarray(model(tokens[:, start : t + 1]))[:, -1]
        np.testing.assert_allclose(logits, want, atol=1e-5, err_msg=f"t={t}, window start {start}")


def test_make_step_picks_the_cache():
    model = tiny_lm()
    assert isinstance(make_step(model), TransformerStep)
    assert isinstance(make_step(model, "stateful"), TransformerStep)
    naive = make_step(model, "naive")
    assert isinstance(naive, PrefixStep) and naive.context == 8
    assert transformer_support(model) is None and context_length(model) == 8


def test_greedy_and_sampling_equal_the_naive_loop():
    """Counter-based noise: the same seed draws the same tokens on both paths
    (the cache under XLA, as ``jit_compile=auto`` runs it, and in graph mode)."""
    model = tiny_lm(max_length=16)
    prompt = [1, 2, 3]
    for options, jit in (
        ({"strategy": "greedy"}, False),
        ({"strategy": "greedy"}, True),
        ({"strategy": "top_k", "top_k": 4, "temperature": 0.8, "seed": 5, "num_samples": 2}, True),
        ({"strategy": "top_p", "top_p": 0.8, "seed": 7, "num_samples": 2}, True),
    ):
        cached = generate(model, prompt, 12, jit_compile=jit, **options)
        naive = generate(model, prompt, 12, method="naive", **options)
        np.testing.assert_array_equal(cached, naive, err_msg=str(options))


def test_beam_search_equals_the_naive_loop():
    model = tiny_lm(max_length=16)
    for jit in (False, True):
        cached = beam_search(model, [4, 5], 8, beam_width=3, jit_compile=jit)
        naive = beam_search(model, [4, 5], 8, beam_width=3, method="naive")
        assert [list(h.tokens) for h in cached] == [list(h.tokens) for h in naive]
        np.testing.assert_allclose(
            [h.log_prob for h in cached], [h.log_prob for h in naive], atol=1e-4
        )


def test_generation_runs_past_the_context_length():
    """A learned-position model of context 8 generates 30 tokens (the window slides);
    the naive loop crops to the last 8 tokens, so both are defined."""
    model = tiny_lm(max_length=8)
    out = generate(model, [1, 2], 24, strategy="temperature", seed=1, num_samples=2)
    assert out.shape == (2, 24) and out.min() >= 0 and out.max() < VOCAB
    assert generate(model, [1, 2], 24, method="naive", strategy="temperature").shape == (1, 24)
    hyps = beam_search(model, [1, 2], 16, beam_width=2)
    assert len(hyps) == 2 and all(h.tokens.size == 16 for h in hyps)


def test_text_api_with_a_tokenizer():
    from seqlab.data.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.fit("to be or not to be")
    keras.utils.set_random_seed(0)
    model = build_transformer_lm(
        tokenizer.vocab_size, max_length=16, d_model=16, num_heads=2, num_layers=1
    )
    text = generate_text(model, tokenizer, "to", 20, strategy="beam", beam_width=2)
    assert len(text) == 20 and set(text) <= set("to be or nt")


def test_models_the_cache_cannot_run():
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 8)(tokens)
    x = TransformerEncoderBlock(2, 16)(x)  # not causal: a bidirectional encoder
    encoder = keras.Model(tokens, keras.layers.Dense(VOCAB)(x))
    assert "is not causal" in transformer_support(encoder)
    with pytest.raises(ConfigError, match="cannot run through a KV cache"):
        TransformerStep(encoder)
    with pytest.raises(ConfigError, match=r"keep must be in \[1, 8\), got 8"):
        TransformerStep(tiny_lm(), keep=8)


def test_cli_on_a_saved_transformer_lm(tmp_path):
    """seqlab-generate (in process) drives a saved Transformer LM through the cache."""
    import io

    from hydra import compose, initialize_config_dir

    from seqlab.cli import CONFIG_DIR
    from seqlab.cli.generate import run
    from seqlab.data.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.fit("ROMEO: what light through yonder window breaks")
    keras.utils.set_random_seed(0)
    model = build_transformer_lm(
        tokenizer.vocab_size, max_length=16, d_model=16, num_heads=2, num_layers=1
    )
    model.save(tmp_path / "model.keras")
    tokenizer.save(tmp_path / "tokenizer.json")
    for strategy in ("greedy", "beam"):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(
                "generate",
                overrides=[
                    f"model_path={tmp_path / 'model.keras'}",
                    f"strategy={strategy}",
                    "max_new_tokens=40",
                    "num_samples=1",
                    "beam_width=2",
                    "num_return=1",
                ],
            )
        out, err = io.StringIO(), io.StringIO()
        assert run(cfg, out=out, err=err) == 0, err.getvalue()
        assert "ROMEO:" in out.getvalue()
