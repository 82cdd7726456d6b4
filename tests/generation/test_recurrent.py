"""The state-carrying loop gives exactly the tokens of the naive prefix re-run."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.generation import generate, make_step, stateful_support
from seqlab.generation.recurrent import PrefixStep, StatefulStep

from .conftest import keras_lm, tiny_lm

PROMPT = [3, 1, 4, 1, 5]


MODELS = {
    "keras_gru": lambda: keras_lm(keras.layers.GRU),
    "keras_simple_rnn": lambda: keras_lm(keras.layers.SimpleRNN),
    "keras_lstm_x2_dropout": lambda: keras_lm(keras.layers.LSTM, num_layers=2, dropout=0.3),
    "lstm_x2": lambda: tiny_lm("lstm", num_layers=2),
    "simple_rnn": lambda: tiny_lm("simple_rnn"),
    "residual_tied_variational_dropout": lambda: tiny_lm(
        "gru",
        num_layers=2,
        embedding=16,
        residual=True,
        tie_weights=True,
        variational_dropout=True,
        dropout=0.2,
    ),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_state_carrying_equals_prefix_rerun(name):
    # 12 new tokens: the naive method traces one graph per prefix length, and
    # 12 steps already carry the state through every layer many times.
    model = MODELS[name]()
    assert stateful_support(model) is None
    options = {"seed": 11, "num_samples": 3, "strategy": "top_p", "top_p": 0.95, "temperature": 1.2}
    fast = generate(model, PROMPT, 12, method="stateful", jit_compile=False, **options)
    slow = generate(model, PROMPT, 12, method="naive", **options)
    np.testing.assert_array_equal(fast, slow)
    assert len({tuple(row) for row in fast}) > 1, "samples of one batch should differ"
    greedy_fast = generate(
        model, PROMPT, 12, strategy="greedy", method="stateful", jit_compile=False
    )
    greedy_slow = generate(model, PROMPT, 12, strategy="greedy", method="naive")
    np.testing.assert_array_equal(greedy_fast, greedy_slow)


@pytest.mark.parametrize(
    "builder", [lambda: tiny_lm("lstm", num_layers=2), lambda: keras_lm(keras.layers.LSTM)]
)
def test_step_logits_match_the_full_model_at_every_position(builder):
    model = builder()
    tokens = np.array([PROMPT + [2, 7, 0, 9]], dtype=np.int32)
    full = np.asarray(model(tokens))[0]
    step = StatefulStep(model)
    states = step.initial_states(1)
    for t in range(tokens.shape[1]):
        logits, states = step(tokens, t, states)
        np.testing.assert_allclose(np.asarray(logits)[0], full[t], rtol=1e-5, atol=1e-5)


def test_xla_loop_equals_graph_loop():
    model = tiny_lm("gru", num_layers=2)
    options = {"seed": 3, "num_samples": 2, "strategy": "top_k", "top_k": 4}
    xla = generate(model, PROMPT, 30, method="stateful", jit_compile=True, **options)
    graph = generate(model, PROMPT, 30, method="stateful", jit_compile=False, **options)
    np.testing.assert_array_equal(xla, graph)


def test_one_token_prompt_and_reproducible_seeds():
    model = tiny_lm("lstm")
    a = generate(model, [2], 40, seed=1, jit_compile=False)
    np.testing.assert_array_equal(a, generate(model, [2], 40, seed=1, jit_compile=False))
    assert (a != generate(model, [2], 40, seed=2, jit_compile=False)).any()
    np.testing.assert_array_equal(a, generate(model, [2], 40, seed=1, method="naive"))


def conv_lm(vocab=12):
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(vocab, 8)(tokens)
    x = keras.layers.Conv1D(8, 3, padding="causal")(x)
    return keras.Model(tokens, keras.layers.Dense(vocab)(x))


def test_a_model_that_mixes_time_steps_falls_back_to_the_prefix_rerun():
    model = conv_lm()
    reason = stateful_support(model)
    assert reason is not None and "Conv1D" in reason
    with pytest.raises(ConfigError, match="cannot carry its state"):
        make_step(model, "stateful")
    assert isinstance(make_step(model, "auto"), PrefixStep)
    out = generate(model, PROMPT, 10, seed=0)  # auto: naive, graph mode
    assert out.shape == (1, 10)


def test_unknown_method_is_a_clear_error():
    with pytest.raises(
        ConfigError, match="unknown method 'fast'; choose one of auto, stateful, naive"
    ):
        make_step(tiny_lm(), "fast")
