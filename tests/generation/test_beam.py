"""Beam search vs exhaustive enumeration on a hand-built Markov model."""

from __future__ import annotations

import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.generation import beam_search, generate

from .conftest import enumerate_sequences, markov_lm, sequence_log_prob, tiny_lm

# From token 0: "1" is the likelier first step but leads to a flat row; "2"
# leads to an almost certain "0". Greedy takes 0 -> 1 -> ... ; the best
# sequence goes through 2.
TRANSITION = np.array(
    [
        [0.10, 0.50, 0.40],
        [0.34, 0.33, 0.33],
        [0.96, 0.02, 0.02],
    ]
)


def test_beam_finds_the_most_probable_sequence_where_greedy_does_not():
    model = markov_lm(TRANSITION)
    greedy = generate(model, [0], 2, strategy="greedy")[0]
    best_seq, best_lp, _ = enumerate_sequences(TRANSITION, 0, 2)[0]
    assert tuple(greedy) != best_seq
    assert sequence_log_prob(TRANSITION, 0, greedy) < best_lp
    for method in ("stateful", "naive"):
        beam = beam_search(model, [0], 2, beam_width=2, method=method)[0]
        assert tuple(beam.tokens) == best_seq
        assert beam.log_prob == pytest.approx(best_lp, abs=1e-5)


@pytest.mark.parametrize("length_penalty, end_token", [(0.0, None), (0.0, 2), (1.0, 2)])
def test_exhaustive_width_returns_the_exact_n_best(length_penalty, end_token):
    model = markov_lm(TRANSITION)
    length = 3
    reference = enumerate_sequences(TRANSITION, 0, length, end_token, length_penalty)
    width = 3**length  # keeps every prefix: beam search is then exhaustive
    got = beam_search(
        model,
        [0],
        length,
        beam_width=width,
        num_return=5,
        length_penalty=length_penalty,
        end_token=end_token,
        jit_compile=False,
    )
    assert len(got) == 5
    for hyp, (_, lp, score) in zip(got, reference[:5], strict=True):
        assert hyp.log_prob == pytest.approx(lp, abs=1e-5)
        assert hyp.score == pytest.approx(score, abs=1e-5)
        assert sequence_log_prob(TRANSITION, 0, hyp.tokens) == pytest.approx(hyp.log_prob, abs=1e-5)
    # Equal scores may come in either order; unless the 5th ties the 6th, the sets match.
    if not np.isclose(reference[4][2], reference[5][2]):
        assert {tuple(h.tokens) for h in got} == {seq for seq, _, _ in reference[:5]}
    if end_token is not None:
        for hyp in got:
            assert len(hyp.tokens) == length or hyp.tokens[-1] == end_token
            assert end_token not in list(hyp.tokens[:-1])


def test_length_penalty_prefers_longer_hypotheses():
    model = markov_lm(TRANSITION)
    raw = beam_search(model, [1], 4, beam_width=27, end_token=2, length_penalty=0.0)[0]
    per_token = beam_search(model, [1], 4, beam_width=27, end_token=2, length_penalty=1.0)[0]
    assert len(per_token.tokens) > len(raw.tokens)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_width_one_is_greedy(cell):
    model = tiny_lm(cell, num_layers=2)
    prompt = [1, 2, 3]
    greedy = generate(model, prompt, 20, strategy="greedy", jit_compile=False)[0]
    (beam,) = beam_search(model, prompt, 20, beam_width=1, jit_compile=False)
    np.testing.assert_array_equal(beam.tokens, greedy)


def test_state_carrying_beam_equals_prefix_rerun_beam():
    model = tiny_lm("lstm", num_layers=2)
    fast = beam_search(model, [4, 2], 15, beam_width=4, end_token=3, length_penalty=0.5)
    slow = beam_search(
        model, [4, 2], 15, beam_width=4, end_token=3, length_penalty=0.5, method="naive"
    )
    assert len(fast) == len(slow) == 4
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a.tokens, b.tokens)
        assert a.log_prob == pytest.approx(b.log_prob, abs=1e-4)
    # Returned best first, distinct.
    assert [h.score for h in fast] == sorted((h.score for h in fast), reverse=True)
    assert len({tuple(h.tokens) for h in fast}) == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"beam_width": 0}, "beam_width must be a positive integer, got 0"),
        ({"beam_width": 2, "num_return": 3}, "num_return=3 is more than beam_width=2"),
        ({"length_penalty": "long"}, "length_penalty must be a number, got 'long'"),
        ({"end_token": 99}, "end_token=99 is outside the vocabulary (size 3)"),
    ],
)
def test_bad_beam_options(kwargs, message):
    with pytest.raises(ConfigError) as err:
        beam_search(markov_lm(TRANSITION), [0], 3, **kwargs)
    assert message in str(err.value)
