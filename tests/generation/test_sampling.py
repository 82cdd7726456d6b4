"""Logit processors and draws vs NumPy references; option checks."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from seqlab.errors import ConfigError
from seqlab.generation.sampling import (
    process_logits,
    resolve_sampling,
    sample_logits,
    uniform_noise,
)

LOGITS = np.array([2.0, 1.5, 1.2, 0.9, 0.3, 0.0, -0.4, -1.0, -2.0, -3.0], dtype=np.float32)
N_DRAWS = 20000


def softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def reference_distribution(logits, temperature=1.0, top_k=None, top_p=None):
    """NumPy: temperature, keep the k largest, then the smallest set with mass >= p."""
    z = np.asarray(logits, np.float64) / temperature
    order = np.argsort(-z, kind="stable")
    keep = np.zeros(z.size, bool)
    keep[order[: top_k or z.size]] = True
    if top_p is not None:
        probs = softmax(np.where(keep, z, -np.inf))
        mass, nucleus = 0.0, []
        for i in order:
            if not keep[i]:
                break
            nucleus.append(i)
            mass += probs[i]
            if mass >= top_p:
                break
        keep[:] = False
        keep[nucleus] = True
    return softmax(np.where(keep, z, -np.inf))


def draws(strategy="temperature", seed=0, n=N_DRAWS, **options):
    return sample_logits(np.tile(LOGITS, (n, 1)), seed=seed, strategy=strategy, **options)


def chi_square_p(samples, probs):
    counts = np.bincount(samples, minlength=probs.size)
    support = probs > 0
    assert counts[~support].sum() == 0, "drew a token of probability 0"
    expected = probs[support] * samples.size
    return stats.chisquare(counts[support], expected).pvalue


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [
        (1.0, None, None),
        (0.7, 3, None),
        (1.3, None, 0.8),
        (1.0, 5, 0.6),
        (2.0, 1, None),
        (0.5, None, 0.05),
    ],
)
def test_processed_logits_keep_exactly_the_reference_support(temperature, top_k, top_p):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(6, 10)).astype(np.float32) * 2
    out = np.asarray(process_logits(rows, temperature, top_k or 0, top_p or 1.0))
    for row, got in zip(rows, out, strict=True):
        want = reference_distribution(row, temperature, top_k, top_p)
        np.testing.assert_array_equal(np.isfinite(got), want > 0)
        np.testing.assert_allclose(softmax(got), want, atol=1e-6)


def test_top_k_never_leaves_the_k_most_probable():
    samples = draws(top_k=3)
    top3 = set(np.argsort(-LOGITS)[:3])
    assert set(samples) == top3  # all of them, and nothing else
    assert chi_square_p(samples, reference_distribution(LOGITS, top_k=3)) > 1e-3


@pytest.mark.parametrize("p", [0.5, 0.75, 0.9])
def test_top_p_never_leaves_the_nucleus_and_matches_its_distribution(p):
    want = reference_distribution(LOGITS, top_p=p)
    samples = draws(strategy="top_p", top_p=p, seed=1)
    assert set(samples) == set(np.flatnonzero(want > 0))
    assert chi_square_p(samples, want) > 1e-3


def test_top_p_one_is_plain_sampling_in_distribution():
    probs = softmax(LOGITS / 0.9)
    nucleus = draws(strategy="top_p", top_p=1.0, temperature=0.9, seed=2)
    plain = draws(strategy="temperature", temperature=0.9, seed=3)
    assert chi_square_p(nucleus, probs) > 1e-3
    assert chi_square_p(plain, probs) > 1e-3
    # Two-sample test between the two strategies.
    table = np.stack([np.bincount(nucleus, minlength=10), np.bincount(plain, minlength=10)])
    assert stats.chi2_contingency(table[:, table.sum(0) > 0]).pvalue > 1e-3
    # The test has power: the same draws are far from a different temperature.
    assert chi_square_p(plain, softmax(LOGITS / 1.2)) < 1e-6


def test_temperature_to_zero_is_greedy():
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(500, 30)).astype(np.float32)
    got = sample_logits(rows, seed=4, strategy="temperature", temperature=1e-6)
    np.testing.assert_array_equal(got, rows.argmax(-1))
    np.testing.assert_array_equal(sample_logits(rows, strategy="greedy"), rows.argmax(-1))


def test_same_seed_same_draws_other_seed_other_draws():
    np.testing.assert_array_equal(draws(seed=5, n=200), draws(seed=5, n=200))
    assert (draws(seed=5, n=200) != draws(seed=6, n=200)).any()


def test_noise_is_uniform_and_identical_in_eager_graph_and_xla():
    seed, step = tf.constant(123456789012, tf.int64), tf.constant(7, tf.int32)
    eager = uniform_noise(tf.constant([64, 100]), seed, step).numpy()
    graph = tf.function(lambda s, t: uniform_noise(tf.constant([64, 100]), s, t))(
        seed, step
    ).numpy()
    xla = tf.function(lambda s, t: uniform_noise(tf.constant([64, 100]), s, t), jit_compile=True)(
        seed, step
    ).numpy()
    np.testing.assert_array_equal(eager, graph)
    np.testing.assert_array_equal(eager, xla)
    assert 0.0 < eager.min() and eager.max() < 1.0
    assert stats.kstest(eager.ravel(), "uniform").pvalue > 1e-3
    other_step = uniform_noise(tf.constant([64, 100]), seed, step + 1).numpy()
    assert abs(np.corrcoef(eager.ravel(), other_step.ravel())[0, 1]) < 0.05


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strategy": "nucleus"}, "unknown strategy 'nucleus'; choose one of greedy"),
        (
            {"strategy": "top_k", "top_k": 0},
            "top_k must be a positive integer, got 0; set e.g. top_k=40",
        ),
        ({"strategy": "top_k", "top_k": 2.5}, "top_k must be a positive integer, got 2.5"),
        ({"strategy": "top_k"}, "strategy=top_k needs top_k"),
        (
            {"strategy": "top_p", "top_p": 0.0},
            "top_p must be in (0, 1], got 0.0; set e.g. top_p=0.9",
        ),
        ({"strategy": "top_p", "top_p": 1.5}, "top_p must be in (0, 1], got 1.5"),
        ({"strategy": "temperature", "temperature": 0}, "temperature must be a number > 0, got 0"),
        (
            {"strategy": "temperature", "temperature": -1.0},
            "temperature must be a number > 0, got -1.0",
        ),
        ({"strategy": "temperature", "top_p": -0.1}, "top_p must be in (0, 1], got -0.1"),
    ],
)
def test_bad_options_name_the_value_and_the_fix(kwargs, message):
    with pytest.raises(ConfigError) as err:
        resolve_sampling(**{"temperature": 1.0, **kwargs})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_names_appear_in_messages():
    with pytest.raises(ConfigError, match=r"^k must be a positive integer, got -3; set e.g. k=40"):
        resolve_sampling("top_k", 1.0, -3, None, names={"top_k": "k"})
