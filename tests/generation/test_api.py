"""Text-level API: prompts, reproducibility, the next-token view, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.generation import (
    beam_search_text,
    encode_prompt,
    format_distribution,
    generate,
    generate_text,
    next_token_distribution,
)

from .conftest import tiny_lm


@pytest.fixture
def model(char_tokenizer):
    return tiny_lm("gru", vocab=char_tokenizer.vocab_size)


def test_generate_text_is_the_decoded_continuation(model, char_tokenizer):
    text = generate_text(
        model,
        char_tokenizer,
        "the cat",
        max_new_tokens=30,
        seed=4,
        strategy="temperature",
        temperature=0.8,
        top_k=10,
        top_p=0.95,
    )
    assert isinstance(text, str) and len(text) == 30
    ids = generate(
        model, char_tokenizer.encode("the cat"), 30, seed=4, temperature=0.8, top_k=10, top_p=0.95
    )[0]
    assert text == char_tokenizer.decode(ids)


def test_same_seed_same_text_other_seed_other_text(model, char_tokenizer):
    kwargs = {"max_new_tokens": 40, "strategy": "top_p", "top_p": 0.9, "temperature": 1.0}
    a = generate_text(model, char_tokenizer, "ROMEO:", seed=7, **kwargs)
    assert a == generate_text(model, char_tokenizer, "ROMEO:", seed=7, **kwargs)
    assert a != generate_text(model, char_tokenizer, "ROMEO:", seed=8, **kwargs)


def test_greedy_and_beam_through_generate_text(model, char_tokenizer):
    greedy = generate_text(model, char_tokenizer, "the", max_new_tokens=12, strategy="greedy")
    beam1 = generate_text(
        model, char_tokenizer, "the", max_new_tokens=12, strategy="beam", beam_width=1
    )
    assert greedy == beam1
    beams = beam_search_text(model, char_tokenizer, "the", 12, beam_width=3, end_text="\n")
    assert len(beams) == 3 and all(b.log_prob <= 0 for b in beams)
    assert beams[0].score >= beams[1].score >= beams[2].score


def test_next_token_distribution_matches_the_softmax_of_the_last_logits(model, char_tokenizer):
    prompt = "the cat sits on the"
    dist = next_token_distribution(model, char_tokenizer, prompt, k=5)
    logits = np.asarray(model(char_tokenizer.encode(prompt)[None]))[0, -1].astype(np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs)[:5]
    assert [d.id for d in dist] == list(order)
    np.testing.assert_allclose([d.prob for d in dist], probs[order], rtol=1e-5)
    assert [d.token for d in dist] == [char_tokenizer.decode([i]) for i in order]
    line = format_distribution(prompt, dist)
    assert line.startswith("'the cat sits on the' -> ") and f"{dist[0].prob:.3f}" in line


def test_unknown_characters_warn_or_fail_as_asked(model, char_tokenizer):
    with pytest.warns(UserWarning, match=r"outside the vocabulary: 'Z', 'é'; they map to <unk>"):
        ids = encode_prompt(char_tokenizer, "éthe Z", on_unknown="warn")
    assert (ids == char_tokenizer.unk_id).sum() == 2
    with pytest.raises(ConfigError, match=r"outside the vocabulary: 'é'; remove or replace them"):
        generate_text(model, char_tokenizer, "thé", max_new_tokens=5, on_unknown="error")


@pytest.mark.parametrize(
    "prompt, kwargs, message",
    [
        ("", {}, "the prompt is empty"),
        ("the", {"strategy": "sample"}, "unknown strategy 'sample'"),
        ("the", {"strategy": "top_k", "top_k": 0}, "top_k must be a positive integer, got 0"),
        ("the", {"strategy": "top_p", "top_p": 1.01}, "top_p must be in (0, 1], got 1.01"),
        ("the", {"temperature": 0.0}, "temperature must be a number > 0, got 0.0"),
        ("the", {"max_new_tokens": 0}, "max_new_tokens must be a positive integer, got 0"),
        ("the", {"on_unknown": "ignore"}, "on_unknown must be one of warn, error"),
    ],
)
def test_bad_input_is_one_clear_line(model, char_tokenizer, prompt, kwargs, message):
    with pytest.raises(ConfigError) as err:
        generate_text(model, char_tokenizer, prompt, **{"max_new_tokens": 5, **kwargs})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_tokenizer_of_another_model_is_refused(char_tokenizer):
    other = tiny_lm("gru", vocab=char_tokenizer.vocab_size + 3)
    with pytest.raises(ConfigError, match="the model predicts .* tokens but the tokenizer has"):
        generate_text(other, char_tokenizer, "the", max_new_tokens=5)
